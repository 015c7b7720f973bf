"""benchmarks/ablation_a2d2.py on real KITTI frames with a tiny budget: the teacher is trained
once, the arms share everything but the distillation options, finished runs are skipped, the
table is assembled from the result files and budgets are never mixed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TINY = ["--steps", "2", "--teacher-steps", "3", "--batch", "1", "--input", "96", "320", "-q"]


@pytest.mark.slow
def test_ablation_runs_resumes_and_assembles_the_table(
    load_benchmark: Callable[[str], ModuleType],
    data_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rerun_skips_finished: Callable[[ModuleType, list[str], Path], bytes],
    another_run: Callable[[Path, str, int, dict[str, Any]], None],
) -> None:
    ab = load_benchmark("ablation_a2d2")
    args = ["--out", str(tmp_path), *TINY, "--seeds", "0"]
    assert ab.main([*args, "--runs", "mixup_only", "a2d2"]) == 0
    teacher = json.loads((tmp_path / "teacher" / "result.json").read_text())
    plain = json.loads((tmp_path / "mixup_only" / "seed0" / "result.json").read_text())
    a2d2 = json.loads((tmp_path / "a2d2" / "seed0" / "result.json").read_text())
    assert teacher["steps_trained"] == 3 and plain["steps_trained"] == a2d2["steps_trained"] == 2
    for r in (teacher, plain, a2d2):
        assert 0.0 <= r["metrics"][ab.AP_KEY] <= 100.0
        assert r["metrics"]["Car/depth_matched"] >= 0
        # every held-out car has a located depth (no detection needed), in metres
        assert r["metrics"]["Car/located_count"] > 0 and r["metrics"][ab.LOCATED_KEY] >= 0
    # the MixUp-only arm runs no teacher; the A2D2 arm logs its distillation terms
    assert "kd_loss" not in plain["last_scalars"] and plain["last_scalars"]["det_loss"] > 0
    assert a2d2["last_scalars"]["kd_objects"] > 0
    table = capsys.readouterr().out
    assert "| mixup_only | 0 |" in table and "| a2d2 | 0 |" in table
    assert "| a2d2_noq | - |" in table and "Teacher (trained here, 3 steps" in table
    assert (tmp_path / "table.md").read_text().strip() == table.strip()

    # a second call skips the finished runs and the teacher (training would fail here)
    result = tmp_path / "a2d2" / "seed0" / "result.json"
    before = rerun_skips_finished(ab, [*args, "--runs", "a2d2", "mixup_only"], result)
    capsys.readouterr()
    # another seed's file (as another machine would leave it) enters the mean and std
    other = json.loads(before)
    other["seed"] = 1
    other["metrics"] = {**a2d2["metrics"], "Car/depth_mae": 3.0, ab.AP_KEY: 2.0}
    first = dict(a2d2["metrics"], **{"Car/depth_mae": 1.0, ab.AP_KEY: 0.0})
    another_run(tmp_path, "a2d2", 0, dict(a2d2, metrics=first))
    another_run(tmp_path, "a2d2", 1, other)
    assert ab.main([*args, "--table-only"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| a2d2 |"))
    assert "| 0,1 | 1.00 ± 1.41 |" in row and "| 2.00 ± 1.41 |" in row
    # a different budget in the same folder is refused before anything trains
    assert ab.main(["--out", str(tmp_path), *TINY[2:], "--steps", "4", "--table-only"]) == 2
    assert "budget" in capsys.readouterr().err


def test_arms_share_everything_but_the_distillation(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    ab = load_benchmark("ablation_a2d2")
    args = ab.argparse.Namespace(
        steps=60, batch=2, size="n", input=[192, 640], teacher=None, teacher_steps=120
    )
    b = ab.budget(args)
    configs = {}
    for arm, overrides in ab.ARMS.items():
        options = {**ab.base_config().distill.options, **overrides}
        distill = ab.DistillConfig(kind="a2d2", teacher="t.pt", options=options)
        configs[arm] = ab.run_config(0, b, tmp_path / arm, distill, b["steps"])
    ref = configs["a2d2"]
    assert ref.optim.max_steps == 60 and ref.batch_size == 2
    assert ref.model.input_size == (192, 640) and ref.data.val_ids == ()
    for arm, cfg in configs.items():
        assert (cfg.model, cfg.data, cfg.optim, cfg.augmentation, cfg.seed) == (
            ref.model,
            ref.data,
            ref.optim,
            ref.augmentation,
            ref.seed,
        ), arm
        diff = {
            k
            for k in set(cfg.distill.options) | set(ref.distill.options)
            if cfg.distill.options.get(k) != ref.distill.options.get(k)
        }
        assert diff == set(ab.ARMS[arm]), arm
