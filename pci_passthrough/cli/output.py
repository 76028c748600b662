"""Table and JSON output shared by the subcommands."""

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("table", "json"), default="table",
        help="Output format: a readable table (default) or JSON for "
             "scripts.",
    )


def print_json(data: Any) -> None:
    """``data`` as indented JSON and a newline, in one write: json.dump()
    writes every token on its own (a quarter of a million for a scan of
    4,096 VFs), each a system call when standard output is unbuffered
    (PYTHONUNBUFFERED)."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
    return str(value)


def format_table(headers: Sequence[str],
                 rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; None shows as '-'."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths,
                                                  strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(t.ljust(w) for t, w in zip(row, widths,
                                                          strict=True))
                     .rstrip())
    return "\n".join(lines)


def print_table(headers: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> None:
    sys.stdout.write(format_table(headers, rows) + "\n")
