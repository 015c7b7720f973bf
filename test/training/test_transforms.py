"""Augmentations (sr3d_training.transforms): points/boxes stay consistent, seeding, parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sr3d_training.datasets import Sample, ScanNetDataset, load_sunrgbd_frame
from sr3d_training.transforms import (
    AugmentationConfig,
    IndoorAugmentation,
    as_numpy_rng,
    flip_points_boxes,
    normalize_colors,
    rotate_points_boxes,
)


def local_coords(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, K, 3) point coordinates in each box's frame, divided by the half sizes (|.| <= 1 in)."""
    b = boxes.astype(np.float64)
    d = points[:, None, :3].astype(np.float64) - b[None, :, :3]
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    lx = d[..., 0] * c + d[..., 1] * s
    ly = -d[..., 0] * s + d[..., 1] * c
    return np.stack([lx, ly, d[..., 2]], -1) / (b[None, :, 3:6] / 2)


def inside(points: np.ndarray, boxes: np.ndarray, tol: float = 0.0) -> np.ndarray:
    """(N, K) bool: point n inside box k (relative tolerance ``tol`` on the half sizes)."""
    return (np.abs(local_coords(points, boxes)) <= 1.0 + tol).all(-1)


def synthetic_sample(rng: np.random.Generator, yaw: bool, n_boxes: int = 6) -> Sample:
    """Boxes with points well inside (|local| <= 0.95) and well outside (>= 1.05 on one axis)."""
    boxes = np.zeros((n_boxes, 7), np.float32)
    boxes[:, :2] = rng.uniform(-4, 4, (n_boxes, 2))
    boxes[:, 2] = rng.uniform(0.2, 1.5, n_boxes)
    boxes[:, 3:6] = rng.uniform(0.3, 2.0, (n_boxes, 3))
    if yaw:
        boxes[:, 6] = rng.uniform(-math.pi, math.pi, n_boxes)
    pts = []
    for b in boxes.astype(np.float64):
        loc = rng.uniform(-0.95, 0.95, (300, 3))
        out = rng.uniform(-1.5, 1.5, (300, 3))
        ax = rng.integers(0, 3, 300)
        out[np.arange(300), ax] = np.sign(out[np.arange(300), ax]) * rng.uniform(1.05, 1.5, 300)
        for q in (loc, out):
            q = q * b[3:6] / 2
            c, s = math.cos(b[6]), math.sin(b[6])
            xyz = np.stack(
                [
                    b[0] + c * q[:, 0] - s * q[:, 1],
                    b[1] + s * q[:, 0] + c * q[:, 1],
                    b[2] + q[:, 2],
                ],
                1,
            )
            pts.append(xyz)
    xyz = np.concatenate(pts)
    rgb = rng.uniform(0, 255, (len(xyz), 3))
    return Sample(
        points=np.concatenate([xyz, rgb], 1),
        gt_boxes=boxes,
        gt_labels=np.arange(n_boxes) % 3,
        class_names=("a", "b", "c"),
        sample_id="synthetic",
        source="test",
    )


@pytest.mark.parametrize("seed", range(12))
def test_yaw_boxes_membership_preserved_exactly(seed):
    rng = np.random.default_rng(seed)
    s = synthetic_sample(rng, yaw=True)
    cfg = AugmentationConfig.sunrgbd(flip_y_prob=0.5, translation_std=0.2)
    out = IndoorAugmentation(cfg)(s, generator=seed)
    idx = out.meta["augmentation"].point_indices
    before = inside(s.points[idx], s.gt_boxes)
    # the synthetic points are >= 5 % away from every face, so membership is unambiguous
    assert np.array_equal(inside(out.points, out.gt_boxes, tol=1e-4), before)
    assert np.array_equal(inside(out.points, out.gt_boxes, tol=-1e-4), before)
    assert before.any()
    assert np.array_equal(out.gt_labels, s.gt_labels)
    assert (out.gt_boxes[:, 6] >= -math.pi).all() and (out.gt_boxes[:, 6] < math.pi).all()


@pytest.mark.parametrize("seed", range(12))
def test_axis_aligned_boxes_enclose_their_points(seed):
    rng = np.random.default_rng(100 + seed)
    s = synthetic_sample(rng, yaw=False)
    cfg = AugmentationConfig.scannet(rotation_range=math.radians(20), translation_std=0.2)
    out = IndoorAugmentation(cfg)(s, generator=torch.Generator().manual_seed(seed))
    idx = out.meta["augmentation"].point_indices
    before = inside(s.points[idx], s.gt_boxes)
    after = inside(out.points, out.gt_boxes, tol=1e-5)
    assert not (before & ~after).any()  # every point that was inside still is
    assert (out.gt_boxes[:, 6] == 0).all()
    # the enclosing box is the tightest one: it equals the AABB of the rotated box corners
    a = out.meta["augmentation"]
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    for b0, b1 in zip(s.gt_boxes.astype(np.float64), out.gt_boxes.astype(np.float64)):
        c = b0[:3] + corners * b0[3:6] / 2
        if a.flip_x:
            c[:, 0] *= -1
        if a.flip_y:
            c[:, 1] *= -1
        ca, sa = math.cos(a.angle), math.sin(a.angle)
        c[:, :2] = c[:, :2] @ np.array([[ca, -sa], [sa, ca]]).T
        c = c * a.scale + a.translation
        np.testing.assert_allclose(b1[:3], (c.min(0) + c.max(0)) / 2, atol=1e-5)
        np.testing.assert_allclose(b1[3:6], c.max(0) - c.min(0), atol=1e-5)


def test_flip_yaw_rules_follow_heading_vector():
    yaw = np.array([0.3, -2.0, 3.0, 0.0])
    boxes = np.zeros((4, 7))
    boxes[:, 3:6] = 1.0
    boxes[:, 6] = yaw
    pts = np.zeros((1, 6))
    _, bx = flip_points_boxes(pts, boxes, flip_x=True, flip_y=False)
    np.testing.assert_allclose(np.cos(bx[:, 6]), -np.cos(yaw), atol=1e-12)  # heading x mirrored
    np.testing.assert_allclose(np.sin(bx[:, 6]), np.sin(yaw), atol=1e-12)
    np.testing.assert_allclose(bx[:, 6], np.mod(np.pi - yaw + np.pi, 2 * np.pi) - np.pi)
    _, by = flip_points_boxes(pts, boxes, flip_x=False, flip_y=True)
    np.testing.assert_allclose(by[:, 6], -yaw)
    # axis-aligned boxes keep yaw 0 under flips
    _, ba = flip_points_boxes(pts, boxes * [1, 1, 1, 1, 1, 1, 0], True, True, axis_aligned=True)
    assert (ba[:, 6] == 0).all()


def test_rotation_axis_aligned_rejects_yaw_boxes():
    with pytest.raises(ValueError, match="yaw"):
        rotate_points_boxes(
            np.zeros((1, 6)), np.array([[0, 0, 0, 1, 1, 1, 0.1]]), 0.1, axis_aligned=True
        )
    s = synthetic_sample(np.random.default_rng(0), yaw=True)
    with pytest.raises(ValueError, match="yaw"):
        IndoorAugmentation(AugmentationConfig.scannet())(s, generator=0)


def test_seeding_reproducible_and_parameters_in_range():
    s = synthetic_sample(np.random.default_rng(1), yaw=True)
    aug = IndoorAugmentation(AugmentationConfig.sunrgbd())
    a, b = aug(s, generator=7), aug(s, generator=np.random.default_rng(7))
    assert np.array_equal(a.points, b.points) and np.array_equal(a.gt_boxes, b.gt_boxes)
    t1 = aug(s, generator=torch.Generator().manual_seed(3))
    t2 = aug(s, generator=torch.Generator().manual_seed(3))
    assert np.array_equal(t1.points, t2.points)
    assert not np.array_equal(aug(s, generator=8).points, a.points)
    # constructor-level generator: two augmenters with the same seed give the same stream
    x, y = IndoorAugmentation(aug.config, generator=5), IndoorAugmentation(aug.config, generator=5)
    for _ in range(3):
        assert np.array_equal(x(s).gt_boxes, y(s).gt_boxes)
    angles, scales, flips = [], [], []
    for seed in range(200):
        m = aug(s, generator=seed).meta["augmentation"]
        angles.append(m.angle)
        scales.append(m.scale)
        flips.append((m.flip_x, m.flip_y))
        assert len(m.point_indices) == round(0.66 * s.num_points)
        assert np.all(np.diff(m.point_indices) > 0)
    assert max(abs(v) for v in angles) <= math.radians(30) and max(angles) > math.radians(20)
    assert min(scales) >= 0.6 and max(scales) <= 1.4 and max(scales) - min(scales) > 0.6
    fx = np.mean([f[0] for f in flips])
    assert 0.35 < fx < 0.65 and not any(f[1] for f in flips)  # SUN RGB-D: no y flip
    assert as_numpy_rng(None) is not None
    with pytest.raises(TypeError):
        as_numpy_rng("seed")  # type: ignore[arg-type]


def test_defaults_are_sr3d_recipe():
    c = AugmentationConfig()
    assert c.point_ratio == 0.66 and c.flip_x_prob == 0.5 and c.flip_y_prob == 0.5
    assert c.rotation_range == pytest.approx(math.radians(5))
    assert c.scale_range == (0.6, 1.4) and c.translation_std == (0.0, 0.0, 0.0)
    assert c.axis_aligned_boxes and c.normalize_colors
    sun = AugmentationConfig.sunrgbd()
    assert sun.rotation_range == pytest.approx(math.radians(30)) and not sun.axis_aligned_boxes
    with pytest.raises(ValueError):
        AugmentationConfig(scale_range=(1.4, 0.6))
    with pytest.raises(ValueError):
        AugmentationConfig(point_ratio=0.0)


def test_evaluation_config_is_identity_except_colors():
    s = synthetic_sample(np.random.default_rng(2), yaw=False)
    out = IndoorAugmentation(AugmentationConfig.evaluation())(s, generator=0)
    np.testing.assert_array_equal(out.points[:, :3], s.points[:, :3])
    np.testing.assert_array_equal(out.gt_boxes, s.gt_boxes)
    np.testing.assert_allclose(out.points[:, 3:], s.points[:, 3:] / 255 - 0.5, atol=1e-6)
    assert out.color_scale == "unit_centered"
    assert normalize_colors(out) is out  # idempotent
    assert out.points[:, 3:].min() >= -0.5 and out.points[:, 3:].max() <= 0.5


def test_real_scannet_scene_points_stay_in_enclosing_boxes(data_root):
    s = ScanNetDataset(data_root / "scannet", "train")[0]
    before_all = inside(s.points, s.gt_boxes)
    for seed in range(3):
        out = IndoorAugmentation(AugmentationConfig.scannet())(s, generator=seed)
        idx = out.meta["augmentation"].point_indices
        before = before_all[idx]
        after = inside(out.points, out.gt_boxes, tol=1e-5)
        assert before.sum() > 1000
        assert not (before & ~after).any()


def test_real_sunrgbd_frame_membership_preserved(data_root):
    s = load_sunrgbd_frame(data_root / "sunrgbd" / "sunrgbd_trainval", 1)
    # drop points within 1e-4 (relative) of a face: their membership is decided by float rounding
    loc = np.abs(local_coords(s.points, s.gt_boxes))
    margin = np.abs(loc - 1.0).min(-1) > 1e-4
    s = s.replace(points=s.points[margin.all(1)])
    before_all = inside(s.points, s.gt_boxes)
    for seed in range(3):
        out = IndoorAugmentation(AugmentationConfig.sunrgbd(translation_std=0.1))(s, generator=seed)
        before = before_all[out.meta["augmentation"].point_indices]
        assert before.sum() > 1000
        assert np.array_equal(inside(out.points, out.gt_boxes), before)
