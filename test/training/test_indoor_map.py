"""Indoor mAP (sr3d_training.evaluation.indoor_map) on hand-built cases with exactly known AP."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sr3d_training.evaluation import evaluate_indoor, voc_ap

CLASSES = ("chair", "table", "sofa")


def aa_iou(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Axis-aligned 3D IoU (ignores yaw), float64: the hand-checkable reference for these tests."""
    lo1, hi1 = b1[:, None, :3] - b1[:, None, 3:6] / 2, b1[:, None, :3] + b1[:, None, 3:6] / 2
    lo2, hi2 = b2[None, :, :3] - b2[None, :, 3:6] / 2, b2[None, :, :3] + b2[None, :, 3:6] / 2
    inter = (torch.minimum(hi1, hi2) - torch.maximum(lo1, lo2)).clamp(min=0).prod(-1)
    v1 = b1[:, 3:6].prod(-1)[:, None]
    v2 = b2[:, 3:6].prod(-1)[None, :]
    return inter / (v1 + v2 - inter)


def box(
    x: float, y: float = 0.0, z: float = 0.0, dx: float = 1.0, dy: float = 1.0, dz: float = 1.0
) -> list[float]:
    return [x, y, z, dx, dy, dz, 0.0]


def scene(boxes: list[list[float]], labels: list[int], scores: list[float] | None = None) -> dict:
    d = {"boxes": np.array(boxes, np.float64).reshape(-1, 7), "labels": np.array(labels, np.int64)}
    if scores is not None:
        d["scores"] = np.array(scores, np.float64)
    return d


def run(preds, gts, **kw):
    kw.setdefault("iou_fn", aa_iou)
    return evaluate_indoor(preds, gts, CLASSES, **kw)


def test_voc_ap_hand_values():
    # single TP at rank 1 -> AP 1; FP then TP -> 0.5; empty -> 0
    assert voc_ap(np.array([1.0]), np.array([1.0])) == 1.0
    assert voc_ap(np.array([0.0, 1.0]), np.array([0.0, 0.5])) == 0.5
    assert voc_ap(np.array([]), np.array([])) == 0.0
    # envelope: TP, FP, TP over 2 GT -> 0.5 * 1 + 0.5 * 2/3
    r = np.array([0.5, 0.5, 1.0])
    p = np.array([1.0, 0.5, 2 / 3])
    assert voc_ap(r, p) == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)
    # non-monotone precision is replaced by its envelope: FP,TP,FP,TP over 2 GT
    r = np.array([0.0, 0.5, 0.5, 1.0])
    p = np.array([0.0, 0.5, 1 / 3, 0.5])
    assert voc_ap(r, p) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5, abs=1e-12)
    with pytest.raises(ValueError):
        voc_ap(np.zeros(2), np.zeros(3))


def test_perfect_predictions_ap_one():
    gts = [scene([box(0), box(3)], [0, 1]), scene([box(0, 5), box(2, 2, dz=2)], [0, 2])]
    preds = [dict(g, scores=np.linspace(0.9, 0.5, len(g["labels"]))) for g in gts]
    res = run(preds, gts)
    for t in (0.25, 0.5):
        assert np.allclose(res.ap[t], 1.0)
        assert np.allclose(res.recall[t], 1.0)
        assert res.mAP[t] == 1.0 and res.mAR[t] == 1.0
    assert res.num_gt.tolist() == [2, 1, 1]
    assert res.num_pred.tolist() == [2, 1, 1]


def test_false_positive_ranked_ahead_of_true_positive():
    gts = [scene([box(0)], [0])]
    preds = [scene([box(10), box(0)], [0, 0], [0.9, 0.8])]  # FP (far away) first, then TP
    res = run(preds, gts)
    assert res.class_ap("chair", 0.25) == pytest.approx(0.5, abs=1e-12)
    assert res.recall[0.5][0] == 1.0
    # the same two predictions with the TP ranked first -> AP 1
    preds = [scene([box(10), box(0)], [0, 0], [0.7, 0.8])]
    assert run(preds, gts).class_ap("chair", 0.25) == 1.0


def test_tp_fp_tp_ranking_over_two_scenes():
    # TP (scene 0), FP (scene 1, nothing there), TP (scene 1): AP = 0.5*1 + 0.5*(2/3)
    gts = [scene([box(0)], [0]), scene([box(5)], [0])]
    preds = [scene([box(0)], [0], [0.9]), scene([box(-5), box(5)], [0, 0], [0.8, 0.7])]
    res = run(preds, gts)
    assert res.ap[0.5][0] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)


def test_prediction_cannot_match_gt_of_other_scene():
    gts = [scene([box(0)], [0]), scene([], [])]
    preds = [scene([], [], []), scene([box(0)], [0], [0.9])]  # right place, wrong scene
    res = run(preds, gts)
    assert res.ap[0.25][0] == 0.0 and res.recall[0.25][0] == 0.0


def test_duplicate_is_false_positive():
    gts = [scene([box(0), box(3)], [0, 0])]
    # A (0.9), duplicate of A (0.8), B (0.7) -> TP, FP, TP
    preds = [scene([box(0), box(0.05), box(3)], [0, 0, 0], [0.9, 0.8, 0.7])]
    res = run(preds, gts)
    assert res.ap[0.25][0] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)
    assert res.recall[0.25][0] == 1.0


def test_duplicate_does_not_fall_back_to_second_best_gt():
    # GT A at x=0 and B at x=0.6 (overlapping). Pred 1 = A exactly. Pred 2 at x=0.2 overlaps A
    # best (IoU 0.667) and B above threshold (IoU 0.43), but A is taken -> FP (VOC rule), so B is
    # never found: recall 0.5, AP 0.5.
    gts = [scene([box(0), box(0.6)], [0, 0])]
    preds = [scene([box(0), box(0.2)], [0, 0], [0.9, 0.8])]
    iou = aa_iou(
        torch.tensor([box(0.2)], dtype=torch.float64),
        torch.tensor([box(0), box(0.6)], dtype=torch.float64),
    )[0]
    assert iou[0] > iou[1] > 0.25
    res = run(preds, gts, iou_thresholds=(0.25,))
    assert res.recall[0.25][0] == 0.5
    assert res.ap[0.25][0] == pytest.approx(0.5, abs=1e-12)


def test_missing_class_counts_zero_and_class_without_gt_is_excluded():
    gts = [scene([box(0), box(3)], [0, 1])]  # chair and table have GT, sofa none
    preds = [scene([box(0), box(8)], [0, 2], [0.9, 0.8])]  # chair perfect, no table, a sofa FP
    res = run(preds, gts)
    for t in (0.25, 0.5):
        assert res.ap[t][0] == 1.0
        assert res.ap[t][1] == 0.0 and res.recall[t][1] == 0.0
        assert math.isnan(res.ap[t][2]) and math.isnan(res.recall[t][2])
        assert res.mAP[t] == pytest.approx(0.5)  # (1 + 0) / 2, sofa excluded
    assert res.valid_classes.tolist() == [True, True, False]
    assert res.num_pred.tolist() == [1, 0, 1]


def test_empty_scenes_and_predictions_in_empty_scene():
    empty = scene([], [])
    gts = [empty, scene([box(0)], [0]), empty]
    preds = [scene([], [], []), scene([box(0)], [0], [0.5]), scene([box(1)], [0], [0.9])]
    res = run(preds, gts)
    # FP (0.9, empty scene) ranked first, then TP -> 0.5
    assert res.ap[0.5][0] == pytest.approx(0.5)
    # entirely empty evaluation: no class measurable
    res = run([scene([], [], [])], [empty])
    assert all(math.isnan(v) for v in res.mAP.values())
    assert np.isnan(res.ap[0.25]).all()


def test_threshold_boundary_is_strict():
    """A prediction must EXCEED the threshold (IoU > t), as mmdetection3d's indoor_eval."""
    gt = [scene([box(0)], [0])]
    # nested boxes: pred twice as tall (IoU exactly 1/2), four times as tall (exactly 1/4)
    half = [scene([box(0, dz=2.0)], [0], [0.9])]
    quarter = [scene([box(0, dz=4.0)], [0], [0.9])]
    res = run(half, gt)
    assert res.ap[0.5][0] == 0.0 and res.ap[0.25][0] == 1.0
    res = run(quarter, gt)
    assert res.ap[0.25][0] == 0.0 and res.ap[0.5][0] == 0.0
    # just above the threshold -> TP
    above = [scene([box(0, dz=2.0 - 1e-9)], [0], [0.9])]
    res = run(above, gt)
    assert res.ap[0.5][0] == 1.0 and res.ap[0.25][0] == 1.0


def test_equal_scores_keep_input_order():
    gts = [scene([box(0)], [0])]
    preds = [scene([box(9), box(0)], [0, 0], [0.5, 0.5])]  # tie: FP listed first -> ranked first
    assert run(preds, gts).ap[0.5][0] == pytest.approx(0.5)
    preds = [scene([box(0), box(9)], [0, 0], [0.5, 0.5])]
    assert run(preds, gts).ap[0.5][0] == 1.0


def test_accepts_torch_and_six_column_boxes():
    gts = [{"boxes": torch.tensor([box(0)[:6]]), "labels": torch.tensor([1])}]
    preds = [
        {
            "boxes": torch.tensor([box(0)]),
            "scores": torch.tensor([0.3]),
            "labels": torch.tensor([1]),
        }
    ]
    res = run(preds, gts)
    assert res.ap[0.5][1] == 1.0


def test_table_and_dict():
    gts = [scene([box(0), box(3)], [0, 1])]
    preds = [scene([box(0)], [0], [0.9])]
    res = run(preds, gts)
    d = res.to_dict()
    json.dumps(d)  # JSON-ready (NaN -> None)
    assert d["mAP_0.25"] == pytest.approx(0.5)
    assert d["per_class"]["sofa"]["AP_0.50"] is None
    assert d["per_class"]["chair"]["num_gt"] == 1
    table = res.format_table()
    lines = table.splitlines()
    assert any(ln.startswith("| chair") and "1.0000" in ln for ln in lines)
    assert any(ln.startswith("| sofa") and " - " in ln for ln in lines)
    assert any(ln.startswith("| Overall") and "0.5000" in ln for ln in lines)
    assert "AP@0.25" in table and "AR@0.50" in table


def test_input_validation():
    g = [scene([box(0)], [0])]
    with pytest.raises(ValueError, match="scenes"):
        run([], g)
    with pytest.raises(ValueError, match="labels"):
        run([scene([box(0)], [3], [0.5])], g)
    with pytest.raises(ValueError, match="boxes"):
        run([{"boxes": np.zeros((1, 5)), "scores": [0.5], "labels": [0]}], g)
    with pytest.raises(ValueError):
        run([scene([box(0)], [0], [0.5, 0.4])], g)
    with pytest.raises(ValueError, match="thresholds"):
        run([scene([box(0)], [0], [0.5])], g, iou_thresholds=(0.0,))
    with pytest.raises(ValueError, match="non-finite"):
        run([scene([box(0)], [0], [float("nan")])], g)


def test_default_iou_is_project_geometry_and_handles_yaw():
    geometry = pytest.importorskip("sr3d_ros.geometry")
    assert hasattr(geometry, "box_iou_3d")
    # a yawed GT matched by the same box with yaw + pi (same box): IoU 1 -> AP 1; a box of the
    # same size but turned by 90 degrees (2 x 1 footprint): IoU 1/3 -> TP at 0.25, FP at 0.5
    g = [[0, 0, 0, 2, 1, 1, 0.3]]
    gts = [scene(g, [0])]
    same = [scene([[0, 0, 0, 2, 1, 1, 0.3 + math.pi]], [0], [0.9])]
    res = evaluate_indoor(same, gts, CLASSES)
    assert res.ap[0.5][0] == pytest.approx(1.0)
    turned = [scene([[0, 0, 0, 2, 1, 1, 0.3 + math.pi / 2]], [0], [0.9])]
    res = evaluate_indoor(turned, gts, CLASSES)
    assert res.ap[0.25][0] == pytest.approx(1.0) and res.ap[0.5][0] == 0.0
