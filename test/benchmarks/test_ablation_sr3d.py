"""benchmarks/ablation_sr3d.py: one tiny real run, then resumability (skips finished runs, table
from the result files, budgets never mixed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.mark.slow
def test_ablation_runs_resumes_and_assembles_the_table(
    load_benchmark: Callable[[str], ModuleType],
    data_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rerun_skips_finished: Callable[[ModuleType, list[str], Path], bytes],
    another_run: Callable[[Path, str, int, dict[str, Any]], None],
) -> None:
    ab = load_benchmark("ablation_sr3d")
    tiny = ["--out", str(tmp_path), "--steps", "24", "--width", "0.25", "--voxel", "0.08", "-q"]
    tiny += ["--threads", "0"]  # keep this test process's thread setting
    assert ab.main([*tiny, "--runs", "spota_ras", "--seeds", "0"]) == 0
    result = tmp_path / "spota_ras" / "seed0" / "result.json"
    r = json.loads(result.read_text())
    assert r["arm"] == "spota_ras" and r["seed"] == 0 and r["steps_trained"] == 24
    assert r["budget"] == {
        "steps": 24,
        "width": 0.25,
        "voxel_size": 0.08,
        "base": ab.BASE_CONFIG.name,
    }
    for key in ("mAP@0.25", "mAP@0.5", "oracle_mAP@0.25", "oracle_mAP@0.5"):
        assert 0.0 <= r["metrics"][key] <= 1.0
    assert r["metrics"]["oracle_mAP@0.25"] >= r["metrics"]["mAP@0.25"] - 1e-9
    table = capsys.readouterr().out
    assert "| spota_ras | 0 |" in table and "| tr3d_focal | - |" in table
    assert (tmp_path / "table.md").read_text().strip() == table.strip()

    # a second call skips the finished run (training would fail here) and rebuilds the table
    before = rerun_skips_finished(ab, [*tiny, "--runs", "spota_ras", "--seeds", "0"], result)
    # another arm's result file (as another machine would leave it) enters the table
    other = json.loads(before)
    other.update(arm="tr3d_focal", seed=1)
    other["metrics"] = dict.fromkeys(other["metrics"], 0.5)
    another_run(tmp_path, "tr3d_focal", 1, other)
    assert ab.main([*tiny, "--table-only"]) == 0
    assert "| tr3d_focal | 1 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.000 ± 0.000 |" in (
        capsys.readouterr().out
    )
    # a different budget in the same folder is refused before anything trains
    assert ab.main([*tiny[:3], "48", *tiny[4:], "--table-only"]) == 2  # --steps 48
    assert "budget" in capsys.readouterr().err


def test_ablation_arms_share_everything_but_the_methods(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    ab = load_benchmark("ablation_sr3d")
    b = {"steps": 48, "width": 0.25, "voxel_size": 0.04, "base": ab.BASE_CONFIG.name}
    cfgs = {arm: ab.run_config(arm, 1, b, Path("/tmp/x")) for arm in ab.ARMS}
    assert len(cfgs) == 9
    first = cfgs["tr3d_focal"]
    for arm, cfg in cfgs.items():
        assert (cfg.model, cfg.data, cfg.augmentation, cfg.optim, cfg.seed) == (
            first.model,
            first.data,
            first.augmentation,
            first.optim,
            first.seed,
        ), arm
    assert first.model.width == 0.25 and first.model.voxel_size == 0.04
    assert first.data.repeat * 2 * first.optim.epochs == 48 and first.data.val_ids == ()
    assert cfgs["spota_ras"].assigner.kind == "spota" and cfgs["spota_ras"].cls_loss.kind == "ras"
    assert cfgs["spota_ras_maxmass"].assigner.ot_decision == "max_mass"
    assert [cfgs[f"spota_ras_mu{m}"].assigner.mu for m in ("0.25", "4")] == [0.25, 4.0]
    assert (
        cfgs["tr3d_focal"].assigner.kind == "tr3d" and cfgs["tr3d_focal"].cls_loss.kind == "focal"
    )
