"""Run every benchmark in this folder (bench_*.py) and print its figures.

    tox -e bench                  # all of them
    tox -e bench -- scan tracker  # only bench_scan.py and bench_tracker.py
    tox -e bench -- config        # bench_config.py: settings and regexes
    tox -e bench -- ledger        # ledger open and load at 1k/16k rows

bench_agent_memory.py (claim/release memory), bench_cli_scan.py
(``pci-passthrough scan --format json`` beside the library scan),
bench_config.py (settings and regexes), bench_doctor.py (doctor),
bench_hygiene.py (netdev state), bench_ledger.py (ledger load),
bench_metrics.py (health and scrapes), bench_network.py (plug/release,
reconcile), bench_scan.py (sysfs scan), bench_startup.py (start-up of
the pci-passthrough command) and bench_tracker.py (claims, explain).
"""

import pathlib
import subprocess
import sys


def main(argv: list[str]) -> int:
    here = pathlib.Path(__file__).resolve().parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
    if not scripts:
        print(f"no benchmark matches {argv}", file=sys.stderr)
        return 2
    failed = 0
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        failed |= subprocess.call([sys.executable, str(script)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
