"""KITTI object reader on the real frames: labels, calibration, images, scans, box frames."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from sr3d_ros.geometry import box_corners
from sr3d_ros.geometry.camera import boxes_to_camera_boxes
from sr3d_training.datasets import Sample
from sr3d_training.datasets.kitti import (
    KITTI_CLASSES,
    KittiDataset,
    kitti_boxes_in_lidar,
    read_kitti_calib,
    read_kitti_label,
)


@pytest.fixture(scope="module")
def kitti(data_root):
    return KittiDataset(data_root / "kitti", load_velodyne=True)


def test_frames_classes_images_and_scans(kitti):
    assert len(kitti) == 14 and kitti.frame_ids[0] == "000000"
    names: Counter[str] = Counter()
    scans = 0
    for s in kitti:
        assert isinstance(s, Sample) and s.source == "kitti"
        assert s.image is not None and s.image.dtype == np.uint8 and s.image.shape[2] == 3
        assert s.camera is not None and (s.camera.height, s.camera.width) == s.image.shape[:2]
        assert 370 <= s.camera.height <= 375 and 1224 <= s.camera.width <= 1242
        np.testing.assert_array_equal(s.camera.P, s.meta["calib"].P[2])
        objs = s.meta["kitti"]
        names.update(objs.names.tolist())
        assert s.num_boxes == int(objs.cared.sum()) and s.points.shape == (0, 6)
        assert [KITTI_CLASSES[i] for i in s.gt_labels] == objs.names[objs.cared].tolist()
        if "velodyne" in s.meta:
            scans += 1
            assert s.meta["velodyne"].shape[1] == 4
    # README: 51 Car, 22 Pedestrian, 10 Cyclist, 1 Van, 27 DontCare; 11 scans
    assert names == Counter(Car=51, Pedestrian=22, Cyclist=10, Van=1, DontCare=27)
    assert scans == 11
    # the image is RGB: KITTI's sky / road are bluish-grey, never red-dominant on average
    img = kitti[0].image.astype(float)
    assert img[:100, :, 2].mean() > img[:100, :, 0].mean() - 5


def test_label_columns_and_body_frame_boxes(kitti):
    s = kitti[0]
    o = s.meta["kitti"]
    # 000000: "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41
    # 0.01"
    assert o.names.tolist() == ["Pedestrian"]
    np.testing.assert_allclose(o.bbox[0], [712.40, 143.00, 810.73, 307.92])
    np.testing.assert_allclose(o.dimensions[0], [1.89, 0.48, 1.20])
    np.testing.assert_allclose(o.location[0], [1.84, 1.47, 8.41])
    assert o.rotation_y[0] == pytest.approx(0.01) and o.alpha[0] == pytest.approx(-0.20)
    # body frame: 8.41 m ahead, 1.84 m to the right (y = -1.84), centre 1.47 - 0.945 m below
    # the camera; l along x at yaw -ry - pi/2
    np.testing.assert_allclose(
        s.gt_boxes[0],
        [8.41, -1.84, -(1.47 - 1.89 / 2), 1.20, 0.48, 1.89, -0.01 - math.pi / 2],
        rtol=1e-6,
    )
    back = boxes_to_camera_boxes(torch.from_numpy(s.gt_boxes.astype(np.float64)))
    np.testing.assert_allclose(back.numpy(), o.camera_boxes(), atol=1e-5)


def _points_in(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    counts = []
    for b in boxes:
        p = points - b[:3]
        c, s = math.cos(b[6]), math.sin(b[6])
        lx, ly = p[:, 0] * c + p[:, 1] * s, -p[:, 0] * s + p[:, 1] * c
        inside = (np.abs(lx) < b[3] / 2) & (np.abs(ly) < b[4] / 2) & (np.abs(p[:, 2]) < b[5] / 2)
        counts.append(int(inside.sum()))
    return np.array(counts)


def _points_in_camera_boxes(points_rect: np.ndarray, cam_boxes: np.ndarray) -> np.ndarray:
    """Independent oracle: KITTI boxes in the rectified camera frame (y down, ry about y)."""
    counts = []
    for x, y, z, l, h, w, ry in cam_boxes:
        p = points_rect - [x, y, z]
        c, s = math.cos(ry), math.sin(ry)
        along = p[:, 0] * c - p[:, 2] * s  # length axis (cos ry, 0, -sin ry)
        across = p[:, 0] * s + p[:, 2] * c  # width axis (sin ry, 0, cos ry)
        inside = (np.abs(along) < l / 2) & (np.abs(across) < w / 2) & (p[:, 1] < 0) & (p[:, 1] > -h)
        counts.append(int(inside.sum()))
    return np.array(counts)


def test_lidar_frame_boxes_hold_the_scan_points(kitti):
    ours, oracle, wrong = [], [], []
    for s in kitti:
        if "velodyne" not in s.meta:
            continue
        calib = s.meta["calib"]
        pts = s.meta["velodyne"][:, :3].astype(np.float64)
        lidar = kitti_boxes_in_lidar(s.meta["kitti"], calib)
        o = s.meta["kitti"]
        rect = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ calib.velo_to_rect[:3].T
        ours.append(_points_in(pts, lidar))
        oracle.append(_points_in_camera_boxes(rect, o.subset(o.cared).camera_boxes()))
        flipped = lidar.copy()
        flipped[:, 6] += math.pi / 2  # length and width axes swapped (yaw off by 90 deg)
        wrong.append(_points_in(pts, flipped))
    ours_a, oracle_a, wrong_a = map(np.concatenate, (ours, oracle, wrong))
    assert len(ours_a) == 62 and ours_a.sum() > 15000
    # the same points as the independent camera-frame test (the dropped 0.5 degree tilt moves a
    # few boundary points)
    assert abs(int(ours_a.sum()) - int(oracle_a.sum())) < 0.01 * oracle_a.sum()
    assert np.all(np.abs(ours_a - oracle_a) <= np.maximum(8, 0.1 * oracle_a))
    assert wrong_a.sum() < 0.8 * ours_a.sum()
    # geometric centres: the LiDAR box spans the labelled height above the bottom centre
    s = kitti[0]
    corners = box_corners(torch.from_numpy(kitti_boxes_in_lidar(s.meta["kitti"], s.meta["calib"])))
    assert float(corners[0, 4:, 2].mean() - corners[0, :4, 2].mean()) == pytest.approx(1.89)


def test_split_file_and_frame_ids(data_root, tmp_path):
    (tmp_path / "training").symlink_to(data_root / "kitti" / "training")
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets" / "val.txt").write_text("000003\n# comment\n000217\n")
    ds = KittiDataset(tmp_path, split="val")
    assert ds.frame_ids == ["000003", "000217"] and ds[1].sample_id == "000217"
    ds = KittiDataset(data_root / "kitti" / "training", frame_ids=["007091"])
    assert len(ds) == 1 and ds[0].num_boxes == 6


def test_malformed_files_give_one_clear_error(tmp_path, data_root):
    bad = tmp_path / "label.txt"
    bad.write_text("Car 0.0 0 0.1 1 2 3 4 1.5 1.6 3.9 1 2\n")
    with pytest.raises(ValueError, match=r"label\.txt:1: expected 15 or 16 columns"):
        read_kitti_label(bad)
    bad.write_text("Car 0.0 0 x 1 2 3 4 1.5 1.6 3.9 1 2 3 0.1\n")
    with pytest.raises(ValueError, match=r"label\.txt:1"):
        read_kitti_label(bad)
    bad.write_text("")
    assert len(read_kitti_label(bad)) == 0
    calib = tmp_path / "calib.txt"
    calib.write_text(
        (data_root / "kitti/training/calib/000000.txt").read_text().replace("R0_rect", "R0")
    )
    with pytest.raises(ValueError, match="R0_rect needs 9 values, got missing"):
        read_kitti_calib(calib)
    with pytest.raises(FileNotFoundError, match="image_2"):
        KittiDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="no_such"):
        read_kitti_label(tmp_path / "no_such.txt")
