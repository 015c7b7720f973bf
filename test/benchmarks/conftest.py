"""Fixtures for the benchmark scripts' tests: load a script from ``benchmarks/`` as a module."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

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
