#!/usr/bin/env python3
"""The device-parametrised test subset for ``benchmarks/gpu_check.sh``.

Runs ``pytest -m cuda`` (or ``-m cpu``: the same tests' CPU cases) over ``test/`` with what
this machine has. Test files that cannot be imported because a module is missing here (ROS,
open3d, ...) are listed as not run, with the missing module; any other collection error, and
every failed test, fails the check. Prints a summary line and, with ``--json``, writes the
counts and the files not run (atomically).

Usage: ``python benchmarks/gpu_check_tests.py --mark cuda [--json tests.json] [-- PYTEST_ARGS]``
Exit status: 0 when nothing failed (and at least one test ran), 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

import pytest
from _bench_common import REPO, write_json

_MISSING = re.compile(r"No module named '([^']+)'")


class _Summary:
    """pytest plugin: collection errors split into missing modules and real errors, and the
    final counts."""

    def __init__(self) -> None:
        self.missing: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if not report.failed:
            return
        text = str(report.longrepr)
        found = _MISSING.search(text)
        if found:
            self.missing[report.nodeid] = found.group(1)
        else:
            lines = [line for line in text.splitlines() if line.strip()]
            self.errors[report.nodeid] = lines[-1] if lines else "collection error"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        stats = terminalreporter.stats
        self.counts = {
            k: len([r for r in stats.get(k, []) if getattr(r, "when", "call") != "collect"])
            for k in ("passed", "failed", "skipped", "error")
        }


def main(argv: list[str] | None = None) -> int:
    """Run the subset (see the module docstring); returns the exit status."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--mark", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--json", default=None, help="write the summary here")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = p.parse_args(argv)
    summary = _Summary()
    rc = pytest.main(
        [
            "-q",
            "-m",
            args.mark,
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            "-rfEs",
            str(REPO / "test"),
            *args.pytest_args,
        ],
        plugins=[summary],
    )
    c = summary.counts
    failed = c.get("failed", 0) + c.get("error", 0) + len(summary.errors)
    ok = failed == 0 and c.get("passed", 0) > 0 and rc in (0, 1)
    print(
        f"\n{args.mark} tests: {c.get('passed', 0)} passed, {c.get('failed', 0)} failed, "
        f"{c.get('error', 0)} errors, {c.get('skipped', 0)} skipped"
    )
    for nodeid, module in sorted(summary.missing.items()):
        print(f"  not run: {nodeid} (module {module!r} is not installed here)")
    for nodeid, error in sorted(summary.errors.items()):
        print(f"  COLLECTION ERROR: {nodeid}: {error}")
    if args.json:
        write_json(
            args.json,
            {
                "mark": args.mark,
                "counts": c,
                "not_run_missing_module": summary.missing,
                "collection_errors": summary.errors,
                "ok": ok,
            },
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
