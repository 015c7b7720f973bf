"""benchmarks/ablation_mono.py: one tiny real run, then resumability (finished runs skipped, the
table from the result files, budgets never mixed) and arms that differ only in gamma."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.mark.slow
def test_mono_ablation_runs_resumes_and_assembles_the_table(
    load_benchmark: Callable[[str], ModuleType],
    data_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rerun_skips_finished: Callable[[ModuleType, list[str], Path], bytes],
    another_run: Callable[[Path, str, int, dict[str, Any]], None],
) -> None:
    ab = load_benchmark("ablation_mono")
    tiny = ["--out", str(tmp_path), "--steps", "5", "--input", "128x416", "-q", "--threads", "0"]
    assert ab.main([*tiny, "--runs", "cm3d", "--seeds", "0"]) == 0
    result = tmp_path / "cm3d" / "seed0" / "result.json"
    r = json.loads(result.read_text())
    assert r["arm"] == "cm3d" and r["seed"] == 0 and r["steps_trained"] == 15
    assert r["budget"] == {
        "steps": 15,
        "repeat": 1,
        "input": [128, 416],
        "base": "mono_kitti_n.yaml",
    }
    assert r["held_out_ids"] == ["000007", "000036", "000217"]
    for split in ("held_out", "train"):
        for head in ("one2one", "one2many"):
            m = r["metrics"][split][head]
            assert 0.0 <= m["Car/AP3D_R40@0.5/moderate"] <= m["Car/AP3D_R40@0.5/moderate_ceiling"]
    assert r["metrics"]["held_out"]["one2one"]["Car/AP3D_R40@0.5/moderate_ceiling"] == 12.5
    table = capsys.readouterr().out
    assert "| cm3d | one2one, no NMS | 0 | held_out |" in table
    assert "| tal | one2many + NMS | - | held_out |" in table
    assert (tmp_path / "table.md").read_text().strip() == table.strip()

    # a second call skips the finished run (training would fail here) and rebuilds the table
    before = rerun_skips_finished(ab, [*tiny, "--runs", "cm3d", "--seeds", "0"], result)
    # another arm's result file enters the table
    other = json.loads(before)
    other.update(arm="tal", seed=1)
    for split in other["metrics"].values():
        for head in split.values():
            head["Car/AP3D_R40@0.5/moderate"] = 5.0
    another_run(tmp_path, "tal", 1, other)
    assert ab.main([*tiny, "--table-only"]) == 0
    assert "| tal | one2one, no NMS | 1 | held_out | 5.00 ± 0.00 |" in capsys.readouterr().out
    # a different budget in the same folder is refused before anything trains
    assert ab.main([*tiny[:3], "48", *tiny[4:], "--table-only"]) == 2
    assert "budget" in capsys.readouterr().err


def test_mono_ablation_arms_differ_only_in_gamma(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    ab = load_benchmark("ablation_mono")
    b = {"steps": 55, "repeat": 4, "input": [192, 640], "base": "mono_kitti_n.yaml"}
    tal, cm3d = (ab.run_config(arm, 2, b, Path("/tmp/x")) for arm in ("tal", "cm3d"))
    assert (tal.assigner.gamma, cm3d.assigner.gamma) == (0.0, 1.0)
    for field in ("model", "data", "augmentation", "optim", "loss", "seed", "batch_size"):
        assert getattr(tal, field) == getattr(cm3d, field), field
    assert tal.model.input_size == (192, 640) and tal.data.repeat == 4 and tal.data.val_ids == ()
    assert not set(tal.data.train_ids) & {"000007", "000036", "000217"}
