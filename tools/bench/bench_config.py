"""Configuration benchmark: validating a configuration, and matching
device_spec address regexes in linear time.

It prints:

* load_settings() on a realistic configuration (64 device_spec objects
  mixing globs, regexes and devnames, 64 flavors), median of --n runs;
* the refusals that guard the JSON parser (deep nesting, a 64 KiB entry);
* per operator-style pattern: compile time, one uncached match and one
  cached match with the linear-time engine, next to re.match;
* the engine at its bound (a 512-state pattern, uncached, 8-digit field);
* matching every VF of a 16,384-VF host against regex specs;
* patterns that make re.match backtrack: ``(?:(?:0?){k}){k}x`` on the
  domain ``0000``, the engine's time next to re.match's, re run in a
  child process stopped after --re-limit seconds.

    python tools/bench/bench_config.py [--n 50] [--re-limit 5]
"""

import argparse
import contextlib
import json
import multiprocessing
import re
import statistics
import sys
import time
from collections.abc import Callable

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.config import devspec, opts, settings
from pci_passthrough.model._address_regex import MAX_STATES, FieldRegex
from pci_passthrough.model.device import DEV_TYPE_VF, PciDevice

PATTERNS = ["0000", ".*", "0[0-9]", "[0-9a-f]{2}", "0a|0b|1[0-9]",
            "(?i)0A", "1000[0-9]", "^(?:0|1)+$", "\\b[0-7]\\b"]


def median_time(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


def realistic_conf() -> cfg.ConfigOpts:
    specs, flavors = [], []
    for i in range(64):
        kind = i % 3
        if kind == 0:
            spec = {"address": f"0000:{i + 1:02x}:*.*", "group": f"g{i}"}
        elif kind == 1:
            spec = {"vendor_id": "8086", "address": {
                "domain": "0000", "bus": f"{i + 1:02x}",
                "slot": "0[0-9a-f]|1[0-7]", "function": "[0-7]"},
                "physical_network": f"physnet{i}", "trusted": "yes"}
        else:
            spec = {"devname": f"ens{i}f0", "physical_network": "physnet1"}
        specs.append(json.dumps(spec))
        flavors.append(json.dumps({"name": f"flavor-{i}",
                                   "physical_network": f"physnet{i}",
                                   "numa_policy": "preferred"}))
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([])
    conf.set_override("device_spec", specs, group="pci_passthrough")
    conf.set_override("flavor", flavors, group="pci_passthrough")
    return conf


def bench_settings(n: int) -> None:
    conf = realistic_conf()
    t = median_time(lambda: settings.load_settings(conf), n)
    print(f"load_settings, 64 specs + 64 flavors: {t * 1e3:.2f} ms")
    for label, text in (
            ("60,000-deep list", "[" * 30000 + "]" * 30000),
            ("64 KiB entry", json.dumps(
                [{"group": "x" * 60}] * 800)[:65536])):
        def refuse(text: str = text) -> None:
            with contextlib.suppress(exception.ConfigError):
                devspec.parse_device_specs([text])
        print(f"device_spec refusal of a {label}: "
              f"{median_time(refuse, n) * 1e3:.2f} ms")


def bench_patterns(n: int) -> None:
    print(f"{'pattern':<22}{'compile':>12}{'uncached':>12}{'cached':>10}"
          f"{'re.match':>11}")
    for pattern in PATTERNS:
        compile_t = median_time(lambda p=pattern: FieldRegex(p), n)
        regexes = [FieldRegex(pattern) for _ in range(n)]
        it = iter(regexes)
        uncached = median_time(lambda it=it: next(it).match("0a"), n)
        warm = regexes[0]
        cached = median_time(lambda w=warm: w.match("0a"), n)
        compiled = re.compile(pattern)
        rematch = median_time(lambda c=compiled: c.match("0a"), n)
        print(f"{pattern:<22}{us(compile_t):>12}{us(uncached):>12}"
              f"{us(cached):>10}{us(rematch):>11}")
    big = f"(?:[0-9a-f]?){{{MAX_STATES // 2 - 1}}}x"
    regexes = [FieldRegex(big) for _ in range(n)]
    it = iter(regexes)
    worst = median_time(lambda: next(it).match("0000abcd"), n)
    print(f"at the bound ({MAX_STATES} states), uncached, 8 digits: "
          f"{us(worst)}")


def bench_host(vfs: int) -> None:
    devices = [PciDevice(address=f"0000:{(i >> 8) + 1:02x}:"
                                 f"{(i >> 3) & 0x1f:02x}.{i & 7}",
                         dev_type=DEV_TYPE_VF, vendor_id="8086",
                         product_id="1889", parent_addr="0000:00:00.0")
               for i in range(vfs)]
    for label, spec in (
            ("glob", {"address": "0000:*:*.*"}),
            ("regex", {"address": {"domain": "0000", "bus": "[0-9a-f]{2}",
                                   "slot": "[01][0-9a-f]",
                                   "function": "[0-7]"}})):
        specs = devspec.parse_device_specs([json.dumps(spec)])
        start = time.perf_counter()
        matched = sum(specs.match(d) is not None for d in devices)
        took = time.perf_counter() - start
        print(f"{vfs} VFs matched by a {label} spec: {took * 1e3:.1f} ms "
              f"({matched} matched)")


def _re_child(pattern: str, subject: str) -> None:
    re.match(pattern, subject)


def time_re(pattern: str, subject: str, limit: float) -> str:
    proc = multiprocessing.Process(target=_re_child,
                                   args=(pattern, subject))
    start = time.perf_counter()
    proc.start()
    proc.join(limit)
    took = time.perf_counter() - start
    if proc.is_alive():
        proc.kill()
        proc.join()
        return f"> {limit:.0f} s (stopped)"
    return f"{took:.3f} s (with process start)"


def bench_backtracking(limit: float) -> None:
    print("(?:(?:0?){k}){k}x on '0000':  engine            re.match")
    for k in (4, 6, 8, 10, 12, 15):
        pattern = f"(?:(?:0?){{{k}}}){{{k}}}x"
        start = time.perf_counter()
        result = FieldRegex(pattern).match("0000")
        took = time.perf_counter() - start
        assert result is False
        print(f"  k={k:>2}{'':22}{us(took):>12}   "
              f"{time_re(pattern, '0000', limit)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--re-limit", type=float, default=5.0)
    args = parser.parse_args()
    bench_settings(args.n)
    bench_patterns(args.n)
    bench_host(16384)
    bench_backtracking(args.re_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
