"""The demo's Placement step, on an in-process Placement."""

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.functional, pytest.mark.placement]


def test_demo_offers_group_vfs_only_to_the_group_flavor(tmp_path) -> None:
    pytest.importorskip("placement")
    # In a process of its own: placement.direct configures a global
    # database engine once per process.
    code = (
        "import io, json, pathlib, sys\n"
        "from pci_passthrough.placement.demo import run_placement_demo\n"
        "out = io.StringIO()\n"
        f"r = run_placement_demo(pathlib.Path({str(tmp_path)!r}), out)\n"
        "print(json.dumps({'result': r, 'text': out.getvalue()}))\n")
    proc = subprocess.run([sys.executable, "-c", code], check=True,
                          capture_output=True, text=True, timeout=300)
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    result = doc["result"]
    assert result["group_only_to_grp1"] is True
    assert result["offered"]["grp1"] == ["demo-host-a_0000:5E:00.0",
                                         "demo-host-b_0000:D8:00.0"]
    assert result["offered"]["mlx"] == []
    assert result["offered"]["net1"] == ["demo-host-a_0000:3B:00.0",
                                         "demo-host-b_0000:AF:00.0"]
    assert "Grouped VFs offered to grp1 only: yes" in doc["text"]
