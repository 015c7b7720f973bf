"""sr3d-train / sr3d-eval with a monocular config and checkpoint (real KITTI frames)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sr3d_ros.checkpoints import load_checkpoint
from sr3d_training.cli.evaluate import main as eval_main
from sr3d_training.cli.train import main as train_main

REPO = Path(__file__).resolve().parents[2]


def _tiny_yaml(data_root: Path, tmp_path: Path) -> Path:
    cfg = tmp_path / "mono_tiny.yaml"
    cfg.write_text(
        f"""kind: mono
model: {{size: n, input_size: [128, 416]}}
inference: {{score_threshold: 0.0, max_detections: 20, gate_topk: 20}}
data:
  dataset: kitti
  root: {data_root / "kitti"}
  train_ids: ["000006"]
  val_ids: ["000007"]
optim: {{lr: 0.001, warmup_steps: 1, epochs: 1, milestones: []}}
batch_size: 1
precise_bn_batches: 1
output_dir: {tmp_path / "run"}
"""
    )
    return cfg


def test_train_and_evaluate_a_mono_checkpoint(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_main(["--config", str(_tiny_yaml(data_root, tmp_path)), "-q"]) == 0

    def no_nan(constant: str) -> None:
        raise AssertionError(f"{constant} in the summary: not strict JSON")

    summary = json.loads(capsys.readouterr().out, parse_constant=no_nan)
    assert summary["steps"] == 1
    assert "Car/AP3D_R40@0.5/moderate" in summary["metrics"]
    # one step matches no car: the depth error is null, not NaN
    metrics = summary["metrics"]
    assert metrics["Car/depth_matched"] == 0 and metrics["Car/depth_mae"] is None
    ckpt_path = tmp_path / "run" / "final.pt"
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt["kind"] == "mono" and ckpt["provenance"]["config"]["model"]["size"] == "n"
    out = tmp_path / "eval.json"
    argv = ["--dataset", "kitti", "--data", str(data_root / "kitti"), "--ids", "000007"]
    assert eval_main([*argv, "--checkpoint", str(ckpt_path), "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "KITTI AP|R40" in text and "Car depth error" in text
    payload = json.loads(out.read_text())
    assert payload["frames"] == ["000007"]
    # 000007 holds one counted moderate car: the ceiling of AP|R40 is 0 there ((n - 1) / 40)
    assert payload["metrics"]["Car/AP3D_R40@0.5/moderate_ceiling"] == 0.0
    assert payload["kitti"]["per_class"]["Car"]["num_gt"]["moderate"] == 1
    # a point-cloud checkpoint is one clear error
    default_pc = REPO / "sr3d_ros" / "models" / "weights" / "sr3d_scannet_default.pt"
    assert eval_main([*argv, "--checkpoint", str(default_pc), "--out", str(out)]) == 1
    assert "pointcloud" in capsys.readouterr().err
