"""Box convention helpers: conversions, yaw wrapping, corners (order), volume, validation."""

from __future__ import annotations

import math

import pytest
import torch

from sr3d_ros.geometry import (
    bottom_center_to_center,
    box_bev_corners,
    box_corners,
    box_volume,
    center_to_bottom_center,
    enclosing_aabb,
    limit_yaw,
    to_7dof,
    validate_boxes,
)

F64 = torch.float64


def test_bottom_center_round_trip_and_value():
    b = torch.tensor([[1.0, 2.0, 0.0, 2.0, 4.0, 6.0, 0.3]], dtype=F64)
    c = bottom_center_to_center(b)
    assert c[0, 2].item() == pytest.approx(3.0)
    assert torch.equal(c[0, [0, 1, 3, 4, 5, 6]], b[0, [0, 1, 3, 4, 5, 6]])
    assert torch.allclose(center_to_bottom_center(c), b)
    assert b[0, 2].item() == 0.0  # input untouched
    six = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0, 4.0]])
    assert center_to_bottom_center(six)[0, 2].item() == pytest.approx(-1.0)


def test_limit_yaw():
    yaw = torch.tensor(
        [0.0, math.pi, -math.pi, 1.5 * math.pi, -1.5 * math.pi, 5 * math.pi + 0.1], dtype=F64
    )
    out = limit_yaw(yaw)
    expected = torch.tensor(
        [0.0, -math.pi, -math.pi, -0.5 * math.pi, 0.5 * math.pi, -math.pi + 0.1], dtype=F64
    )
    assert torch.allclose(out, expected, atol=1e-12)
    assert bool(((out >= -math.pi) & (out < math.pi)).all())
    half = limit_yaw(
        torch.tensor([1.5 * math.pi, -0.25 * math.pi], dtype=F64), offset=0.0, period=math.pi
    )
    assert torch.allclose(half, torch.tensor([0.5 * math.pi, 0.75 * math.pi], dtype=F64))
    assert limit_yaw(4.0).item() == pytest.approx(4.0 - 2 * math.pi)
    with pytest.raises(ValueError):
        limit_yaw(torch.zeros(1), period=0.0)
    with pytest.raises(TypeError):
        limit_yaw(torch.zeros(1, dtype=torch.int64))


def test_corner_order_axis_aligned_hand_case():
    b = torch.tensor([0.0, 0.0, 0.0, 2.0, 4.0, 6.0, 0.0], dtype=F64)
    expected = torch.tensor(
        [
            [-1, -2, -3],
            [1, -2, -3],
            [1, 2, -3],
            [-1, 2, -3],
            [-1, -2, 3],
            [1, -2, 3],
            [1, 2, 3],
            [-1, 2, 3],
        ],
        dtype=F64,
    )
    assert torch.allclose(box_corners(b), expected)
    assert torch.allclose(box_corners(b[:6]), expected)  # (6,) axis-aligned accepted


def test_corner_order_rotated_hand_case():
    # yaw = 90 deg: box x-axis points along world +y, local (lx, ly) -> world (-ly, lx)
    b = torch.tensor([[1.0, 2.0, 3.0, 2.0, 4.0, 6.0, math.pi / 2]], dtype=F64)
    expected = torch.tensor(
        [
            [3, 1, 0],
            [3, 3, 0],
            [-1, 3, 0],
            [-1, 1, 0],
            [3, 1, 6],
            [3, 3, 6],
            [-1, 3, 6],
            [-1, 1, 6],
        ],
        dtype=F64,
    )
    c = box_corners(b)
    assert c.shape == (1, 8, 3)
    assert torch.allclose(c[0], expected, atol=1e-12)
    assert torch.allclose(box_bev_corners(b)[0], expected[:4, :2], atol=1e-12)


def test_bev_corners_counter_clockwise_and_top_above_bottom():
    g = torch.Generator().manual_seed(0)
    b = torch.rand(2, 5, 7, generator=g, dtype=F64) * 3
    b[..., 6] = (b[..., 6] - 1.5) * 4
    c = box_corners(b)
    assert c.shape == (2, 5, 8, 3)
    poly = box_bev_corners(b)
    x, y = poly[..., 0], poly[..., 1]
    area = 0.5 * (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1)
    assert torch.allclose(area, b[..., 3] * b[..., 4])  # positive => counter-clockwise
    assert torch.allclose(c[..., 4:, :2], c[..., :4, :2])
    assert torch.allclose(c[..., 4:, 2] - c[..., :4, 2], b[..., 5:6].expand(2, 5, 4))
    assert torch.allclose(c.mean(-2), b[..., :3])


def test_volume_and_to_7dof():
    b = torch.tensor([[0.0, 0.0, 0.0, 2.0, 3.0, 4.0, 1.0], [1.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.0]])
    assert torch.allclose(box_volume(b), torch.tensor([24.0, 0.0]))
    six = b[:, :6]
    seven = to_7dof(six)
    assert seven.shape == (2, 7) and torch.all(seven[:, 6] == 0)
    assert to_7dof(b) is b
    assert box_volume(torch.zeros(0, 7)).shape == (0,)
    assert box_corners(torch.zeros(0, 7)).shape == (0, 8, 3)


def test_enclosing_aabb():
    a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]], dtype=F64)
    b = torch.tensor([[3.0, 0.0, 0.0, 1.0, 1.0, 1.0, math.pi / 4]], dtype=F64)
    lo, hi = enclosing_aabb(a, b)
    r = math.sqrt(0.5)
    assert torch.allclose(lo, torch.tensor([[-1.0, -1.0, -1.0]], dtype=F64))
    assert torch.allclose(hi, torch.tensor([[3.0 + r, 1.0, 1.0]], dtype=F64))


@pytest.mark.parametrize(
    "bad, exc",
    [
        ([[0.0, 0.0, 0.0, 1.0, 1.0]], ValueError),  # 5 columns
        (torch.zeros(2, 8), ValueError),
        (torch.zeros(2, 7, dtype=torch.int64), TypeError),
        ([[0.0] * 7], TypeError),  # a list, not a tensor
        (torch.tensor([[0.0, 0.0, 0.0, -1.0, 1.0, 1.0, 0.0]]), ValueError),
        (torch.tensor([[0.0, 0.0, 0.0, float("nan"), 1.0, 1.0, 0.0]]), ValueError),
    ],
)
def test_bad_input(bad, exc):
    if isinstance(bad, list) and exc is ValueError:
        bad = torch.tensor(bad)
    with pytest.raises(exc):
        box_corners(bad)
    with pytest.raises(exc):
        validate_boxes(bad)


def test_error_messages_are_clear():
    with pytest.raises(ValueError, match=r"\(\.\.\., 7\)"):
        validate_boxes(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="negative"):
        box_volume(torch.tensor([[0.0, 0.0, 0.0, 1.0, -2.0, 1.0, 0.0]]))
    with pytest.raises(TypeError, match="floating"):
        box_volume(torch.zeros(1, 7, dtype=torch.int32))
