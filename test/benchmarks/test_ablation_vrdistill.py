"""benchmarks/ablation_vrdistill.py: one tiny real teacher + distilled student, then resumability
(finished runs skipped, table from the result files, budgets never mixed)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

SCAN = "scannet/scannet_instance_data/scene0000_02_vert_all.npy"


@pytest.mark.slow
def test_ablation_runs_resumes_and_assembles_the_table(
    load_benchmark: Callable[[str], ModuleType],
    data_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rerun_skips_finished: Callable[[ModuleType, list[str], Path], bytes],
    another_run: Callable[[Path, str, int, dict[str, Any]], None],
) -> None:
    ab = load_benchmark("ablation_vrdistill")
    tiny = ["--out", str(tmp_path), "--steps", "24", "--teacher-steps", "24", "--voxel", "0.08"]
    tiny += ["--teacher-width", "0.5", "-q", "--threads", "0"]
    # a distilled arm trains the teacher first
    assert ab.main([*tiny, "--runs", "quarter_vrdistill", "--seeds", "0"]) == 0
    teacher = json.loads((tmp_path / "teacher" / "seed0" / "result.json").read_text())
    student = json.loads((tmp_path / "quarter_vrdistill" / "seed0" / "result.json").read_text())
    assert teacher["width"] == 0.5 and student["width"] == 0.125
    assert student["steps_trained"] == teacher["steps_trained"] == 24
    for r in (teacher, student):
        assert 0.0 <= r["metrics"]["mAP@0.25"] <= 1.0 and 0.0 <= r["metrics"]["mAP@0.5"] <= 1.0
        assert r["cost"]["latency_ms"] > 0
    # a 1/4-width student: ~1/16 of the teacher's parameters and convolution MACs
    assert 0.04 < student["cost"]["params"] / teacher["cost"]["params"] < 0.1
    assert 0.02 < student["cost"]["macs"] / teacher["cost"]["macs"] < 0.15
    table = capsys.readouterr().out
    assert "| teacher | 0.5 | 0 |" in table and "| quarter_vrdistill | 0.125 | 0 |" in table
    assert "| half_alone | 0.25 | - |" in table
    assert (tmp_path / "table.md").read_text().strip() == table.strip()

    # a second call skips the finished runs (training would fail here)
    result = tmp_path / "quarter_vrdistill" / "seed0" / "result.json"
    before = rerun_skips_finished(
        ab, [*tiny, "--runs", "quarter_vrdistill", "--seeds", "0"], result
    )
    capsys.readouterr()
    # another seed's result file (as another machine would leave it) enters the mean and std
    other = json.loads(before)
    other.update(seed=1)
    other["metrics"] = {"mAP@0.25": student["metrics"]["mAP@0.25"] + 0.2, "mAP@0.5": 0.0}
    another_run(tmp_path, "quarter_vrdistill", 1, other)
    assert ab.main([*tiny, "--table-only"]) == 0
    row = next(
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| quarter_vrdistill |")
    )
    assert "| 0,1 |" in row and f"{student['metrics']['mAP@0.25'] + 0.1:.3f} ± 0.141" in row
    # a different budget in the same folder is refused before anything trains
    assert ab.main([*tiny[:3], "48", *tiny[4:], "--table-only"]) == 2  # --steps 48
    assert "budget" in capsys.readouterr().err


def test_arms_share_everything_but_width_and_distillation(
    load_benchmark: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    ab = load_benchmark("ablation_vrdistill")
    b = {
        "steps": 48,
        "teacher_steps": 96,
        "teacher_width": 1.0,
        "voxel_size": 0.04,
        "base": ab.BASE_CONFIG.name,
    }
    configs = {arm: ab.run_config(arm, 0, b, tmp_path) for arm in ab.ARMS}
    teacher = configs.pop("teacher")
    assert teacher.model.width == 1.0 and teacher.distill.kind == "none"
    assert teacher.data.repeat * 24 == 96
    reference = configs["half_alone"]
    for arm, cfg in configs.items():
        fraction, options = ab.ARMS[arm]
        assert cfg.model.width == ab.FRACTIONS[fraction]
        assert cfg.model.voxel_size == 0.04 == teacher.model.voxel_size
        if options is None:
            assert cfg.distill.kind == "none"
        else:
            assert cfg.distill.kind == "vrdistill"
            assert cfg.distill.teacher == str(ab.teacher_checkpoint(tmp_path))
            assert cfg.distill.options == options
        same = dataclasses.replace(
            cfg,
            model=reference.model,
            distill=reference.distill,
            output_dir=reference.output_dir,
        )
        assert same == reference, arm  # data, steps, schedule, losses, seed: all shared
        assert cfg.data.repeat * 24 == 48
    # the sweep and the ablations differ from the default arm in one option each
    assert configs["quarter_vrdistill_lam0.08"].distill.options == {"vc_weight": 0.08}
    assert configs["half_norefine"].distill.options == {"use_refinement": False}
    assert configs["half_nomask"].distill.options == {"use_mask": False}


@pytest.mark.slow
def test_export_student_ships_a_table_run_by_name(
    load_benchmark: Callable[[str], ModuleType],
    data_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """scripts/export_student_model.py: a tiny table's distilled student becomes a weights-only
    checkpoint that loads as a plain detector, equal to the trained one, with a card whose
    numbers are the run's."""
    import importlib.util

    import torch

    from sr3d_ros.checkpoints import load_checkpoint
    from sr3d_ros.inference import PointCloudDetector

    ab = load_benchmark("ablation_vrdistill")
    table = tmp_path / "table"
    tiny = ["--out", str(table), "--steps", "24", "--teacher-steps", "24", "--voxel", "0.08"]
    tiny += ["--teacher-width", "0.5", "-q", "--threads", "0"]
    # extra teacher seeds give the teacher's spread; distillation uses seed 0
    runs = ["--runs", "teacher", "quarter_vrdistill", "--seeds", "0", "--teacher-seeds", "0", "1"]
    assert ab.main([*tiny, *runs]) == 0
    assert (table / "teacher" / "seed1" / "result.json").is_file()
    student_cfg = load_checkpoint(table / "quarter_vrdistill" / "seed0" / "train" / "final.pt")
    distilled_from = student_cfg["provenance"]["config"]["distill"]["teacher"]
    assert distilled_from == str(table / "teacher" / "seed0" / "train" / "final.pt")
    spec = importlib.util.spec_from_file_location(
        "export_student_model", Path(ab.REPO) / "scripts" / "export_student_model.py"
    )
    assert spec is not None and spec.loader is not None
    export = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export)
    out = tmp_path / "weights"
    out.mkdir()
    args = ["--table-dir", str(table), "--arm", "quarter_vrdistill", "--name", "tiny_rt"]
    args += ["--out-dir", str(out), "--repeats", "1", "--threads", "1", "--why", "a test"]
    args += ["--data-root", str(data_root / "scannet")]
    n_threads = torch.get_num_threads()
    try:
        assert export.main(args) == 0
    finally:
        torch.set_num_threads(n_threads)
    shipped = load_checkpoint(out / "tiny_rt.pt")
    assert "training_state" not in shipped and shipped["kind"] == "pointcloud"
    assert shipped["provenance"]["table"]["arm"] == "quarter_vrdistill"
    source = table / "quarter_vrdistill" / "seed0" / "train" / "final.pt"
    points = torch.as_tensor(np.load(data_root / SCAN), dtype=torch.float32)
    a = PointCloudDetector.from_checkpoint(out / "tiny_rt.pt", device="cpu")(points)
    b = PointCloudDetector.from_checkpoint(source, device="cpu")(points)
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    card = (out / "MODEL_CARD_tiny_rt.md").read_text()
    result = json.loads((table / "quarter_vrdistill" / "seed0" / "result.json").read_text())
    assert f"| this run (seed 0) | 1 | {result['metrics']['mAP@0.25']:.3f} ± 0.000 |" in card
    assert "width 0.125" in card and "checkpoint:=tiny_rt" in card and "a test" in card
    assert "| teacher | 2 |" in card
    assert "tiny_rt (this model)" in capsys.readouterr().out

    # bench_students.py times the table's models stage by stage, relative to the teacher
    bench = load_benchmark("bench_students")
    try:
        assert bench.main(["--table-dir", str(table), "--repeats", "1", "--seeds", "0"]) == 0
    finally:
        torch.set_num_threads(n_threads)
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"teacher", "quarter_vrdistill"}
    assert rows["teacher"][-2] == "1.00x" and rows["quarter_vrdistill"][1] == "0.125"
    assert bench.main(["--table-dir", str(tmp_path / "none"), "--repeats", "1"]) == 1
