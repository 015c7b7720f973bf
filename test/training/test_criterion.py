"""DetectionLoss (sr3d_training.criterion): a tiny batch with known positives, loss by hand."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_ros.models import HeadOutputs
from sr3d_training.assigners import TR3DAssigner
from sr3d_training.criterion import DetectionLoss
from sr3d_training.losses import ClassificationLoss

F64 = torch.float64


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def focal(x: float, target: int) -> float:
    """Sigmoid focal loss of one logit, alpha 0.25, gamma 2 (Lin et al. 2017, eq. 5)."""
    p = sig(x)
    if target:
        return -0.25 * (1 - p) ** 2 * math.log(p)
    return -0.75 * p**2 * math.log(1 - p)


def diou_loss_aa(a: list[float], b: list[float]) -> float:
    """1 - DIoU of two axis-aligned boxes (x, y, z, dx, dy, dz): IoU minus the squared centre
    distance over the squared diagonal of the enclosing box (Zheng et al. 2020, in 3D)."""
    inter, vol_a, vol_b, diag2, dist2 = 1.0, 1.0, 1.0, 0.0, 0.0
    for i in range(3):
        lo_a, hi_a = a[i] - a[i + 3] / 2, a[i] + a[i + 3] / 2
        lo_b, hi_b = b[i] - b[i + 3] / 2, b[i] + b[i + 3] / 2
        inter *= max(0.0, min(hi_a, hi_b) - max(lo_a, lo_b))
        vol_a, vol_b = vol_a * a[i + 3], vol_b * b[i + 3]
        diag2 += (max(hi_a, hi_b) - min(lo_a, lo_b)) ** 2
        dist2 += (a[i] - b[i]) ** 2
    iou = inter / (vol_a + vol_b - inter)
    return 1 - (iou - dist2 / diag2)


def tiny_batch() -> tuple[HeadOutputs, list[torch.Tensor], list[torch.Tensor]]:
    """Two scenes, one output level, 2 classes.

    Scene 0: one GT of class 0 centred at (0.1, 0, 0), 1 m cube; four locations at 0.1, 0.4, 1.9
    and 2.0 m from its centre, so TR3D with top_k = 2 makes locations 0 and 1 positive. Location
    0 predicts the GT exactly, location 1 a unit cube at its own position (x = 0.5). Scene 1: two
    locations, no GT (all negatives).
    """
    locations = torch.tensor(
        [[0, 0, 0], [0.5, 0, 0], [2.0, 0, 0], [0, 2, 0], [5, 5, 5], [6, 5, 5]], dtype=F64
    )
    offsets = torch.zeros(6, 3, dtype=F64)
    offsets[0, 0] = 0.1
    bbox_pred = torch.cat([offsets, torch.ones(6, 3, dtype=F64)], 1)  # sizes: 1 m
    logits = torch.tensor(
        [[0.5, -1.0], [-0.2, 0.3], [1.5, -2.0], [-3.0, 0.1], [0.0, -0.5], [2.0, 1.0]], dtype=F64
    ).requires_grad_(True)
    outputs = HeadOutputs(
        logits,
        bbox_pred.requires_grad_(True),
        locations,
        torch.zeros(6, dtype=torch.long),
        torch.tensor([0, 0, 0, 0, 1, 1]),
    )
    boxes = [torch.tensor([[0.1, 0, 0, 1, 1, 1, 0]], dtype=F64), torch.zeros(0, 7, dtype=F64)]
    labels = [torch.tensor([0]), torch.zeros(0, dtype=torch.long)]
    return outputs, boxes, labels


def test_detection_loss_focal_by_hand() -> None:
    outputs, boxes, labels = tiny_batch()
    loss_fn = DetectionLoss(TR3DAssigner([0, 0], top_k=2), ClassificationLoss("focal"))
    out = loss_fn(outputs, boxes, labels)
    x = outputs.cls_logits.detach().tolist()
    cls_sum = sum(focal(x[i][c], int(i in (0, 1) and c == 0)) for i in range(6) for c in range(2))
    gt = [0.1, 0, 0, 1, 1, 1]
    box = (diou_loss_aa([0.1, 0, 0, 1, 1, 1], gt) + diou_loss_aa([0.5, 0, 0, 1, 1, 1], gt)) / 2
    assert out.num_pos == 2
    assert float(out.cls) == pytest.approx(cls_sum / 2, rel=1e-12)  # normalised by 2 positives
    assert float(out.bbox) == pytest.approx(box, rel=1e-12)
    assert float(out.total.detach()) == pytest.approx(cls_sum / 2 + box, rel=1e-12)
    iou_b = 0.6 / 1.4  # x-overlap 0.6 of two unit cubes
    assert out.mean_pos_iou == pytest.approx((1.0 + iou_b) / 2, rel=1e-12)
    # the box weight scales only the box term; gradients reach logits and regression
    weighted = DetectionLoss(
        TR3DAssigner([0, 0], top_k=2), ClassificationLoss("focal"), bbox_loss_weight=2.0
    )(outputs, boxes, labels)
    assert float(weighted.total.detach()) == pytest.approx(cls_sum / 2 + 2 * box, rel=1e-12)
    weighted.total.backward()
    grad = outputs.bbox_pred.grad
    assert outputs.cls_logits.grad is not None and grad is not None
    assert float(grad[1].abs().sum()) > 0 and float(grad[2:].abs().sum()) == 0  # negatives: none


def test_detection_loss_ras_by_hand() -> None:
    """RAS on the same batch: the two positives of the GT are ranked against each other with the
    IoUs of their predicted boxes (1 and 3/7) as quality."""
    outputs, boxes, labels = tiny_batch()
    out = DetectionLoss(TR3DAssigner([0, 0], top_k=2), ClassificationLoss("ras"))(
        outputs, boxes, labels
    )
    x = outputs.cls_logits.detach().tolist()
    q = [1.0, 0.6 / 1.4]
    s = [sig(x[0][0]), sig(x[1][0])]

    def rank(v: list[float], i: int) -> float:  # soft rank among the GT's 2 positives, tau 0.1
        return 1 - sig((v[1 - i] - v[i]) / 0.1)

    ras = 0.0
    for i in range(2):
        t, w = q[i] * rank(q, i), rank(s, i)
        rdl = (t - s[i]) ** 2 * -(t * math.log(s[i]) + (1 - t) * math.log(1 - s[i]))
        ras += (1 - w) * focal(x[i][0], 1) + w * rdl
    others = sum(focal(x[i][c], 0) for i in range(6) for c in range(2) if not (i < 2 and c == 0))
    assert float(out.cls) == pytest.approx((ras + others) / 2, rel=1e-12)
