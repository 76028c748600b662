"""The demo's Placement step, on an in-process Placement."""

import io

import pytest

from pci_passthrough.demo.placement_step import run_placement_demo

pytestmark = [pytest.mark.functional, pytest.mark.placement]


def test_demo_offers_group_vfs_only_to_the_group_flavor(
        tmp_path, placement_installed) -> None:
    for run in ("first", "second"):
        out = io.StringIO()
        result = run_placement_demo(tmp_path / run, out)
        assert result is not None
        assert result["group_only_to_grp1"] is True
        assert result["offered"]["grp1"] == [
            "demo-host-a_0000:5E:00.0_pcipt", "demo-host-b_0000:D8:00.0_pcipt"]
        assert result["offered"]["mlx"] == []
        assert result["offered"]["net1"] == [
            "demo-host-a_0000:3B:00.0_pcipt", "demo-host-b_0000:AF:00.0_pcipt"]
        text = out.getvalue()
        assert "Grouped VFs offered to grp1 only: yes" in text
        assert result["doctor_fixed"] == [
            "provider demo-host-a_0000:3B:00.0_pcipt"]
        assert "Doctor finds placement-provider provider " \
            "demo-host-a_0000:3B:00.0_pcipt: traits missing: " \
            "CUSTOM_PHYSNET_PHYSNET1" in text
        assert "1 fixed, 0 left." in text
        # Each call has a database of its own: the hosts are new to it.
        assert "Reported demo-host-a: 2 PF provider(s), 22 write(s)" in \
            text
        assert (tmp_path / run / "placement.sqlite3").exists()


def test_the_demo_command_ends_with_the_placement_step(
        tmp_path, capsys, placement_installed) -> None:
    from pci_passthrough.cli import main

    assert main.main(["demo", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    step = out[out.index("== Step 11: fleet scheduling"):]
    assert "Grouped VFs offered to grp1 only: yes" in step
    assert "skipped" not in step
