"""The monocular criterion (sr3d_training.tasks.mono_criterion) on a tiny hand-made case, every
term computed by hand, and the mono loss functions against their formulas."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_ros.geometry.camera import camera_boxes_to_boxes
from sr3d_ros.geometry.mgiou import mgiou_loss
from sr3d_ros.models.mono import KITTI_MEAN_SIZES, MonoHeadOutputs, MonoModelConfig, MonoOutputs
from sr3d_training.assigners import CM3DConfig
from sr3d_training.batching import MonoTargets
from sr3d_training.losses.mono import (
    MonoLossConfig,
    distribution_focal_loss,
    laplacian_depth_nll,
    orientation_loss,
)
from sr3d_training.tasks.mono_criterion import MonoCriterion

R = 16  # DFL bins
CAR = KITTI_MEAN_SIZES[0]


def _head() -> MonoHeadOutputs:
    """Three locations; only the first lies inside the object's 2D box."""
    cls = torch.tensor([[[0.5, -1.0, -2.0], [-1.0, 0.2, -3.0], [0.0, 0.0, 0.0]]])
    ltrb = torch.tensor([[[10.0, 5, 12, 9], [4, 4, 4, 4], [4, 4, 4, 4]]])
    offset = torch.tensor([[[0.1, 0.3], [0.0, 0.0], [0.0, 0.0]]])
    log_depth = torch.log(torch.tensor([[11.0, 20.0, 20.0]]))
    log_sigma = torch.log(torch.tensor([[2.0, 1.0, 1.0]]))
    dims = torch.tensor([4.2, 1.5, 1.6]) / torch.tensor(CAR)
    log_dims = torch.stack([dims.log(), torch.zeros(3), torch.zeros(3)])[None]
    sincos = torch.tensor([[[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    return MonoHeadOutputs(
        cls_logits=cls,
        box_ltrb=ltrb,
        center_offset=offset,
        log_depth=log_depth,
        log_sigma=log_sigma,
        log_dims=log_dims.float(),
        alpha_sincos=sincos,
        depth_feat=torch.zeros(1, 3, 4),
        box_dist=torch.zeros(1, 3, 4, R),
    )


def _case() -> tuple[MonoOutputs, MonoTargets]:
    anchors = torch.tensor([[39.5, 19.5], [100.0, 100.0], [10.0, 10.0]])
    out = MonoOutputs(_head(), _head(), anchors, torch.full((3,), 8.0), [(1, 3)])
    targets = MonoTargets(
        labels=torch.tensor([[0]]),
        mask=torch.tensor([[True]]),
        boxes2d=torch.tensor([[[20.0, 10.0, 60.0, 35.0]]]),
        cam_boxes=torch.tensor([[[0.0, 1.0, 10.0, 4.0, 1.5, 1.6, 0.3]]]),
        weights=torch.ones(1, 1),
        projections=torch.tensor([[[100.0, 0, 40, 0], [0, 100.0, 20, 0], [0, 0, 1.0, 0]]]),
    )
    return out, targets


def _bce(x: float, y: float) -> float:
    return max(x, 0.0) - x * y + math.log1p(math.exp(-abs(x)))


def test_mono_criterion_by_hand() -> None:
    out, targets = _case()
    crit = MonoCriterion(MonoModelConfig(), CM3DConfig(gamma=0.0), MonoLossConfig())
    loss = crit(out, targets)
    # the positive: location 0 in both heads; predicted box (29.5, 14.5, 51.5, 28.5) lies inside
    # the label box (20, 10, 60, 35): IoU = GIoU = 308 / 1000
    iou = 22 * 14 / (40 * 25)
    p = 1 / (1 + math.exp(-0.5))
    s = p**0.5 * iou**6
    t = s * iou / (s + 1e-9)  # soft target; sum < 1, so the normaliser is 1
    logits = [[0.5, -1.0, -2.0], [-1.0, 0.2, -3.0], [0.0, 0.0, 0.0]]
    cls = sum(
        _bce(x, t if (a, c) == (0, 0) else 0.0)
        for a, row in enumerate(logits)
        for c, x in enumerate(row)
    )
    box = (1 - iou) * t
    dfl = math.log(R) * t  # uniform bins: -log(1/R) whatever the target
    # geometric centre (0, 0.25, 10) projects to (40, 22.5): offset ((0.5, 3) / 8)
    center = abs(0.1 - 0.5 / 8) + abs(0.3 - 3 / 8)
    depth = abs(11 - 10) / 2 + math.log(2)
    dims = 0.2  # |4.2 - 4| + 0 + 0
    orient = 1 - math.cos(0.0 - 0.3)  # alpha* = ry - atan2(0, 10)
    # decoded box: centre pixel (40.3, 21.9) at depth 11 -> (0.033, 0.209, 11), ry = atan2(x, z)
    x, yc = 0.3 * 11 / 100, 1.9 * 11 / 100
    pred = torch.tensor([[x, yc + 0.75, 11.0, 4.2, 1.5, 1.6, math.atan2(x, 11.0)]])
    gt = targets.cam_boxes[0]
    mg = float(mgiou_loss(camera_boxes_to_boxes(pred.double()), camera_boxes_to_boxes(gt.double())))
    head = 0.5 * cls + 7.5 * box + 1.5 * dfl + center + depth + dims + orient + mg
    assert float(loss.total) == pytest.approx(2 * head, rel=1e-5)  # both heads alike
    expected = {
        "cls_loss": cls,
        "box_loss": box,
        "dfl_loss": dfl,
        "center_loss": center,
        "depth_loss": depth,
        "dims_loss": dims,
        "orient_loss": orient,
        "mgiou_loss": mg,
    }
    for k, v in expected.items():
        assert loss.scalars[k] == pytest.approx(2 * v, rel=1e-5, abs=1e-7), k
    assert loss.scalars["num_pos"] == loss.scalars["num_pos_o2o"] == 1
    assert loss.scalars["pos_iou"] == pytest.approx(iou, rel=1e-6)
    assert loss.scalars["depth_err"] == pytest.approx(1.0, rel=1e-5)


def test_mono_criterion_gradients_and_no_positive() -> None:
    out, targets = _case()
    for head in (out.one2many, out.one2one):
        for v in vars(head).values():
            v.requires_grad_(True)
    crit = MonoCriterion(MonoModelConfig(), CM3DConfig(gamma=1.0))
    loss = crit(out, targets)
    loss.total.backward()
    g = out.one2many
    assert g.log_depth.grad is not None and g.log_depth.grad[0, 0] != 0
    assert g.log_depth.grad[0, 1:].abs().sum() == 0  # only the positive regresses
    assert g.cls_logits.grad is not None and (g.cls_logits.grad != 0).all()  # every logit
    # an image without objects: only the classification term (all background)
    empty = MonoTargets(
        torch.zeros(1, 0, dtype=torch.int64),
        torch.zeros(1, 0, dtype=torch.bool),
        torch.zeros(1, 0, 4),
        torch.zeros(1, 0, 7),
        torch.zeros(1, 0),
        targets.projections,
    )
    out2, _ = _case()
    loss = crit(out2, empty)
    bg = sum(_bce(x, 0.0) for x in out2.one2many.cls_logits.flatten().tolist())
    assert float(loss.total) == pytest.approx(2 * 0.5 * bg, rel=1e-6)
    assert loss.scalars["num_pos"] == 0


def test_mono_loss_functions() -> None:
    z = torch.tensor([5.0, 20.0])
    nll = laplacian_depth_nll(
        z.log(), torch.tensor([0.0, math.log(4.0)]), torch.tensor([7.0, 18.0])
    )
    torch.testing.assert_close(nll, torch.tensor([2.0, 0.5 + math.log(4.0)]))
    o = orientation_loss(torch.tensor([[3.0, 0.0], [0.0, -2.0]]), torch.tensor([math.pi / 2, 0.0]))
    torch.testing.assert_close(o, torch.tensor([0.0, 2.0]), atol=1e-6, rtol=0)
    # DFL: a target on a bin is that bin's cross-entropy; between bins the weighted mix
    logits = torch.randn(1, 4, R)
    logp = logits.log_softmax(-1)
    target = torch.tensor([[2.0, 3.25, 0.0, 14.0]])
    expected = (
        -(
            logp[0, 0, 2]
            + 0.75 * logp[0, 1, 3]
            + 0.25 * logp[0, 1, 4]
            + logp[0, 2, 0]
            + logp[0, 3, 14]
        )
        / 4
    )
    torch.testing.assert_close(distribution_focal_loss(logits, target)[0], expected)
