"""Fixtures for the benchmark scripts' tests: load a script from ``benchmarks/`` as a module."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def load_benchmark(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """``load_benchmark("ablation_sr3d")``: the script ``benchmarks/ablation_sr3d.py`` as a module,
    imported with its folder on ``sys.path`` (as when it runs; removed again after the test)."""

    def load(name: str) -> ModuleType:
        monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
        return importlib.import_module(name)

    return load


@pytest.fixture
def rerun_skips_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[ModuleType, list[str], Path], bytes]:
    """``rerun_skips_finished(script, argv, result)``: with the script's training made to fail,
    ``script.main(argv)`` still succeeds (finished runs are skipped, the table is rebuilt) and
    leaves the result file ``result`` byte-identical. Returns its bytes."""

    def check(script: ModuleType, argv: list[str], result: Path) -> bytes:
        def no_training(*args: object, **kwargs: object) -> None:
            raise AssertionError("a finished run was trained again")

        monkeypatch.setattr(script, "train_timed", no_training)
        before = result.read_bytes()
        assert script.main(argv) == 0
        assert result.read_bytes() == before
        return before

    return check


def write_result(out: Path, arm: str, seed: int, record: dict[str, Any]) -> None:
    """Leave ``out/<arm>/seed<seed>/result.json`` as another machine's run would."""
    (out / arm / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    (out / arm / f"seed{seed}" / "result.json").write_text(json.dumps(record))


@pytest.fixture
def another_run() -> Callable[[Path, str, int, dict[str, Any]], None]:
    """:func:`write_result` as a fixture (a conftest is not imported by the tests)."""
    return write_result
