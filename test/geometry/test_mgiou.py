"""MGIoU of yawed 3D boxes: hand-computed cases, symmetry, gradients, and the `mgiou` package."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_ros.geometry import box_corners
from sr3d_ros.geometry.mgiou import mgiou_3d, mgiou_loss


def _b(*v: float) -> torch.Tensor:
    return torch.tensor([v], dtype=torch.float64)


def _random_boxes(n: int, seed: int, spread: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            torch.randn(n, 3, generator=g, dtype=torch.float64) * spread,
            torch.rand(n, 3, generator=g, dtype=torch.float64) * 3 + 0.2,
            (torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 - 1) * math.pi,
        ],
        dim=1,
    )


def _giou_1d(lo1, hi1, lo2, hi2):
    inter = (torch.minimum(hi1, hi2) - torch.maximum(lo1, lo2)).clamp(min=0)
    union = (hi1 - lo1) + (hi2 - lo2) - inter
    hull = torch.maximum(hi1, hi2) - torch.minimum(lo1, lo2)
    return inter / union - (hull - union) / hull


def test_hand_computed_cases():
    a = _b(0, 0, 0, 2, 2, 2, 0)
    assert float(mgiou_3d(a, a, aligned=True)) == pytest.approx(1.0)
    # shifted by 1 along x: x-terms 1/3 (box 1 and box 2 normals), y and z terms 1
    s = _b(1, 0, 0, 2, 2, 2, 0)
    assert float(mgiou_3d(a, s, aligned=True)) == pytest.approx((2 / 3 + 3) / 5)
    # a 4 x 2 x 2 box and the same box turned by 90 degrees: the 4 ground terms are 1/2
    r0, r90 = _b(0, 0, 0, 4, 2, 2, 0), _b(0, 0, 0, 4, 2, 2, math.pi / 2)
    assert float(mgiou_3d(r0, r90, aligned=True)) == pytest.approx((4 * 0.5 + 1) / 5)
    # disjoint unit cubes with a gap of 1 along x: x-terms -1/3
    c1, c2 = _b(0, 0, 0, 1, 1, 1, 0), _b(2, 0, 0, 1, 1, 1, 0)
    assert float(mgiou_3d(c1, c2, aligned=True)) == pytest.approx((3 - 2 / 3) / 5)
    # disjoint vertically (same footprint): z-term -1/3, counted once
    up = _b(0, 0, 2, 1, 1, 1, 0)
    assert float(mgiou_3d(c1, up, aligned=True)) == pytest.approx((4 - 1 / 3) / 5)
    # very far apart in x and y: the 4 ground terms tend to -1
    far = _b(1e4, 1e4, 0, 1, 1, 1, 0)
    assert float(mgiou_3d(c1, far, aligned=True)) == pytest.approx((-4 + 1) / 5, abs=1e-3)
    # yaw by pi is the same box
    assert float(mgiou_3d(r0, _b(0, 0, 0, 4, 2, 2, math.pi), aligned=True)) == pytest.approx(1)
    # loss = (1 - MGIoU) / 2
    assert float(mgiou_loss(a, s, reduction="sum")) == pytest.approx((1 - 11 / 15) / 2)


def test_symmetry_range_pairwise_and_dtypes():
    a, b = _random_boxes(40, 0), _random_boxes(30, 1)
    m = mgiou_3d(a, b)
    assert m.shape == (40, 30)
    torch.testing.assert_close(m, mgiou_3d(b, a).T, rtol=0, atol=1e-12)
    assert bool((m >= -1).all() and (m <= 1).all())
    # aligned == the diagonal of the pairwise matrix; broadcasting
    torch.testing.assert_close(mgiou_3d(a[:30], b, aligned=True), mgiou_3d(a[:30], b).diagonal())
    assert mgiou_3d(a[:, None], b[None], aligned=True).shape == (40, 30)
    # float32 agrees with float64
    torch.testing.assert_close(mgiou_3d(a.float(), b.float()), m.float(), atol=1e-5, rtol=0)
    # loss is 0 exactly for identical boxes, in [0, 1] otherwise
    assert float(mgiou_loss(a, a).abs().max()) < 1e-12
    loss = mgiou_loss(a[:30], b)
    assert bool((loss >= 0).all() and (loss <= 1).all())
    assert float(mgiou_loss(a[:0], b[:0], reduction="mean")) == 0.0


def test_gradcheck():
    a, b = _random_boxes(6, 2, spread=0.8), _random_boxes(6, 3, spread=0.8)
    a.requires_grad_(True)
    b.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: mgiou_3d(x, y, aligned=True), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: mgiou_3d(x, y), (a, b))
    # identical boxes: finite gradients
    c = a.detach().clone().requires_grad_(True)
    mgiou_loss(c, a.detach(), reduction="sum").backward()
    assert c.grad is not None and bool(torch.isfinite(c.grad).all())


def test_agrees_with_the_mgiou_package():
    """``MGIoU3D`` projects on the 3 edge directions of each box (vertical twice):
    ``6 * pkg = 5 * ours + giou_z``."""
    mgiou = pytest.importorskip("mgiou", reason="the mgiou package is the test oracle")
    a, b = _random_boxes(300, 4, spread=1.5), _random_boxes(300, 5, spread=1.5)
    pkg_loss = mgiou.MGIoU3D(reduction="none")(box_corners(a), box_corners(b))
    pkg = 1 - 2 * pkg_loss
    gz = _giou_1d(
        a[:, 2] - a[:, 5] / 2, a[:, 2] + a[:, 5] / 2, b[:, 2] - b[:, 5] / 2, b[:, 2] + b[:, 5] / 2
    )
    ours = mgiou_3d(a, b, aligned=True)
    torch.testing.assert_close(6 * pkg, 5 * ours + gz, rtol=0, atol=1e-9)
    # the cases are varied: overlapping and disjoint pairs
    assert float(ours.min()) < -0.2 and float(ours.max()) > 0.5


def test_bad_input_raises():
    a = _random_boxes(3, 0)
    with pytest.raises(ValueError, match="broadcastable"):
        mgiou_3d(a, _random_boxes(4, 1), aligned=True)
    with pytest.raises(ValueError, match="pairwise IoU"):
        mgiou_3d(a[None], a)
    with pytest.raises(TypeError, match="same dtype"):
        mgiou_3d(a, a.float())
    with pytest.raises(ValueError, match="negative"):
        mgiou_3d(a * torch.tensor([1, 1, 1, -1, 1, 1, 1.0], dtype=torch.float64), a)
    with pytest.raises(ValueError, match="reduction"):
        mgiou_loss(a, a, reduction="max")  # type: ignore[arg-type]
