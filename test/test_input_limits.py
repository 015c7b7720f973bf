"""Bounded work per cloud (issue 13 #1, #2): crop / max range before voxelisation, the neck-size
prediction against the real network, refusal of over-budget clouds, outliers in a real scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sr3d_ros.inference import PointCloudDetector
from sr3d_ros.input_limits import (
    InputBudgetError,
    InputLimits,
    check_voxel_budget,
    crop_points,
    neck_voxel_counts,
)
from sr3d_ros.models import points_to_sparse


@pytest.fixture(scope="module")
def detector() -> PointCloudDetector:
    return PointCloudDetector.from_checkpoint(device="cpu", score_threshold=0.1)


@pytest.fixture(scope="module")
def scan(data_root: Path) -> np.ndarray:
    return np.load(data_root / "scannet" / "scannet_instance_data" / "scene0000_00_vert_all.npy")


def _neck_counts(det: PointCloudDetector, points: np.ndarray) -> tuple[int, int]:
    x = points_to_sparse([torch.from_numpy(points)], det.config.model.voxel_size)
    with torch.no_grad():
        fine, coarse = det.model.neck(det.model.backbone(x))
    return len(coarse.coordinates), len(fine.coordinates)


def test_neck_prediction_matches_the_network(detector: PointCloudDetector, scan: np.ndarray):
    """The prediction is exact on a real scan and on isolated (spread) points."""
    rng = np.random.default_rng(0)
    spread = np.concatenate(
        [rng.uniform(-6, 6, (3000, 3)), rng.uniform(0, 255, (3000, 3))], axis=1
    ).astype(np.float32)
    for points in (scan, spread):
        voxels = torch.floor(torch.from_numpy(points[:, :3]) / detector.config.model.voxel_size)
        assert neck_voxel_counts(voxels.long()) == _neck_counts(detector, points)


def test_crop_points_counts_and_keeps_order(scan: np.ndarray) -> None:
    pts = torch.from_numpy(scan.copy())
    pts[5, 0] = float("nan")
    pts[7, 4] = float("inf")
    pts[9, :3] = torch.tensor([30.0, 0.0, 0.0])
    kept, counts = crop_points(pts, InputLimits(max_range=20.0))
    assert (counts.non_finite, counts.out_of_range) == (2, 1)
    keep = torch.ones(len(pts), dtype=torch.bool)
    keep[[5, 7, 9]] = False
    assert torch.equal(kept, pts[keep])
    box = (0.0, 0.0, 0.0, 2.0, 2.0, 1.0)
    kept, counts = crop_points(pts[keep], InputLimits(max_range=0.0, crop_box=box))
    assert bool(((kept[:, :3] >= 0) & (kept[:, :3] <= torch.tensor([2.0, 2.0, 1.0]))).all())
    assert counts.out_of_range == int(keep.sum()) - len(kept) > 0
    with pytest.raises(ValueError, match="crop_box"):
        InputLimits(crop_box=(0.0, 0.0, 0.0, -1.0, 1.0, 1.0))


def test_outliers_do_not_lose_the_frame(detector: PointCloudDetector, scan: np.ndarray) -> None:
    """10 points at +-1e30 / +-1e6 inside a real scan: same boxes as the clean scan."""
    clean = detector(scan)
    outliers = np.zeros((10, 6), dtype=np.float32)
    outliers[:5, :3] = [1e30, -1e30, 1e30]
    outliers[5:, :3] = [-1e6, 1e6, 1e6]
    idx = np.arange(0, len(scan), len(scan) // 10)[:10]
    dirty = np.insert(scan, idx, outliers, axis=0)  # spread through the scan
    out = detector(dirty)
    assert detector.last_crop.out_of_range == 10
    assert len(out) == len(clean) > 0
    torch.testing.assert_close(out.boxes, clean.boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.scores, clean.scores, atol=1e-4, rtol=0)


def test_wide_clouds_are_bounded(detector: PointCloudDetector) -> None:
    """100k points over +-10 km: cropped to nothing (empty result), or refused without a crop."""
    rng = np.random.default_rng(1)
    wide = rng.uniform(-1e4, 1e4, (100_000, 3)).astype(np.float32)
    assert len(detector(wide)) == 0
    assert detector.last_crop.out_of_range == 100_000
    unbounded = PointCloudDetector(detector.model, detector.config, detector.device)
    unbounded.limits = InputLimits(max_range=0.0)
    with pytest.raises(InputBudgetError, match="spread out"):
        unbounded(wide)
    cube = rng.uniform(-20, 20, (50_000, 3)).astype(np.float32)  # 4 GB without the budget
    with pytest.raises(InputBudgetError, match="max_neck_voxels"):
        unbounded(cube)


def test_voxel_cap() -> None:
    voxels = torch.arange(3000).reshape(1000, 3)
    check_voxel_budget(voxels, InputLimits(max_voxels=1000))
    with pytest.raises(InputBudgetError, match="1000 voxels > max_voxels 999"):
        check_voxel_budget(voxels, InputLimits(max_voxels=999))
    check_voxel_budget(voxels.repeat(5, 1), InputLimits(max_voxels=1000))  # points, not voxels
