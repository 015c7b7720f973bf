"""Dataset prediction, the IoU-oracle scores and the sr3d-eval CLI."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sr3d_ros.checkpoints import save_checkpoint
from sr3d_ros.config import DetectorConfig, InferenceConfig, ModelConfig
from sr3d_ros.detections import Detections
from sr3d_ros.models import TR3DDetector
from sr3d_training.cli.evaluate import main as eval_main
from sr3d_training.evaluate import SceneResult, evaluate_predictions, oracle_scores

NAMES = ("a", "b")


def box(x: float, size: float = 1.0) -> list[float]:
    return [x, 0.0, 0.0, size, size, size, 0.0]


def test_oracle_replaces_scores_by_best_same_class_iou() -> None:
    gt = torch.tensor([box(0.0), box(10.0)])
    det = Detections(
        boxes=torch.tensor([box(0.5), box(0.0), box(10.0), box(0.0)]),
        scores=torch.tensor([0.9, 0.2, 0.5, 0.8]),
        labels=torch.tensor([0, 0, 1, 1]),
        class_names=NAMES,
    )
    r = SceneResult("s", det, gt, torch.tensor([0, 1]))
    o = oracle_scores(r)
    # IoU of a unit cube shifted by 0.5 with the original: 0.5 / 1.5 = 1/3
    expected = {(0.5, 0): 1 / 3, (0.0, 0): 1.0, (10.0, 1): 1.0, (0.0, 1): 0.0}
    got = {
        (b[0], lab): s for b, lab, s in zip(o.boxes.tolist(), o.labels.tolist(), o.scores.tolist())
    }
    for k, v in expected.items():
        assert abs(got[k] - v) < 1e-6, (k, got[k], v)
    assert o.scores.tolist() == sorted(o.scores.tolist(), reverse=True)
    # the poorly-ranked perfect box of class 0 makes AP@0.5 = 0.5 with the real scores (FP first),
    # 1.0 with oracle scores
    real = evaluate_predictions([r], NAMES)
    ora = evaluate_predictions([r], NAMES, oracle=True)
    assert abs(real.ap[0.5][0] - 0.5) < 1e-9 and abs(ora.ap[0.5][0] - 1.0) < 1e-9
    assert ora.mAP[0.5] >= real.mAP[0.5]


def test_sr3d_eval_cli_with_oracle(data_root: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = DetectorConfig(
        ModelConfig(voxel_size=0.04, width=0.25), InferenceConfig(score_threshold=0.05)
    )
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, TR3DDetector(cfg.model).state_dict(), cfg)
    out = tmp_path / "eval.json"
    rc = eval_main(
        [
            "--checkpoint",
            str(ckpt),
            "--data",
            str(data_root / "scannet"),
            "--ids",
            "scene0000_02",
            "--device",
            "cpu",
            "--oracle-scores",
            "iou",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "oracle mAP" in printed
    result = json.loads(out.read_text())
    assert result["samples"] == ["scene0000_02"]
    assert "oracle" in result and "result" in result
    assert (
        eval_main(
            [
                "--checkpoint",
                str(tmp_path / "missing.pt"),
                "--data",
                str(data_root / "scannet"),
                "--ids",
                "x",
            ]
        )
        == 1
    )
