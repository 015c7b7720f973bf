"""Calibration files -> PinholeCamera: KITTI calib.txt (real files) and ROS camera_info YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sr3d_ros.geometry.camera_info import camera_setup
from sr3d_ros.io.calibration import (
    camera_info_camera,
    kitti_camera,
    read_camera_file,
    read_camera_info_yaml,
    read_kitti_calib,
)

CALIB = "kitti/training/calib/000007.txt"


def test_kitti_calib_and_p2_camera(data_root: Path) -> None:
    path = data_root / CALIB
    calib = read_kitti_calib(path)
    text = path.read_text().splitlines()
    p2_line = next(line for line in text if line.startswith("P2:"))
    P2 = np.array([float(v) for v in p2_line.split()[1:]]).reshape(3, 4)
    cam = kitti_camera(path, 1242, 375)
    np.testing.assert_array_equal(cam.P, P2)
    np.testing.assert_array_equal(calib.P[2], P2)
    assert (cam.width, cam.height) == (1242, 375)
    assert cam.baseline[0] > 0.05  # P2 = K [I | t]: ~6 cm to the right of camera 0
    setup = read_camera_file(path, 1242, 375)
    np.testing.assert_array_equal(setup.camera.P, P2)
    assert setup.notes == () and setup.undistort is None


def _edit(data_root: Path, tmp_path: Path, old: str, new: str) -> Path:
    out = tmp_path / "calib.txt"
    out.write_text((data_root / CALIB).read_text().replace(old, new, 1))
    return out


def test_kitti_calib_errors(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"calib\.txt: P2 needs 12 values, got missing"):
        kitti_camera(_edit(data_root, tmp_path, "P2:", "Q2:"), 1242, 375)
    # only P2 is needed for a camera; the dataset reader needs every key
    cam = kitti_camera(_edit(data_root, tmp_path, "P3:", "Q3:"), 1242, 375)
    assert cam.fx > 0
    with pytest.raises(ValueError, match="P3 needs 12 values, got missing"):
        read_kitti_calib(tmp_path / "calib.txt")
    p2 = next(line for line in (data_root / CALIB).read_text().splitlines() if "P2:" in line)
    first = p2.split()[1]
    with pytest.raises(ValueError, match="P2 holds non-finite values"):
        kitti_camera(_edit(data_root, tmp_path, f"P2: {first}", "P2: nan"), 1242, 375)
    with pytest.raises(ValueError, match="positive focal lengths"):
        kitti_camera(_edit(data_root, tmp_path, f"P2: {first}", "P2: 0.0"), 1242, 375)
    with pytest.raises(ValueError, match="P2 needs 12 values, got 11"):
        kitti_camera(_edit(data_root, tmp_path, f"P2: {first}", "P2:"), 1242, 375)
    with pytest.raises(FileNotFoundError):
        kitti_camera(tmp_path / "none.txt", 1242, 375)


def _calibration_yaml(P: np.ndarray, d: list[float], w: int = 1242, h: int = 375) -> dict:  # type: ignore[type-arg]
    """The camera_calibration_parsers layout."""
    return {
        "image_width": w,
        "image_height": h,
        "camera_name": "kitti_p2",
        "camera_matrix": {"rows": 3, "cols": 3, "data": P[:, :3].reshape(-1).tolist()},
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": len(d), "data": d},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": np.eye(3).reshape(-1).tolist()},
        "projection_matrix": {"rows": 3, "cols": 4, "data": P.reshape(-1).tolist()},
    }


def test_camera_info_yaml_formats(data_root: Path, tmp_path: Path) -> None:
    P2 = kitti_camera(data_root / CALIB, 1242, 375).P
    path = tmp_path / "camera_info.yaml"
    path.write_text(yaml.safe_dump(_calibration_yaml(P2, [0.0] * 5)))
    setup = read_camera_file(path, 1242, 375)
    np.testing.assert_allclose(setup.camera.P, P2)  # rectified, undistorted: P with its baseline
    assert setup.notes == () and setup.undistort is None
    # a CameraInfo dumped by `ros2 topic echo` (flat lists, lower-case names), P unset -> [K | 0]
    echo = {"height": 375, "width": 1242, "distortion_model": "plumb_bob", "d": [],
            "k": P2[:, :3].reshape(-1).tolist(), "r": np.eye(3).reshape(-1).tolist(),
            "p": [0.0] * 12}  # fmt: skip
    path2 = tmp_path / "info.yml"
    path2.write_text(yaml.safe_dump(echo))
    cam2 = read_camera_file(path2, 1242, 375).camera
    np.testing.assert_allclose(cam2.P[:, :3], P2[:, :3])
    np.testing.assert_array_equal(cam2.P[:, 3], 0.0)
    # a dumped CameraInfo with 2x2 binning describes a half-size image
    path2.write_text(yaml.safe_dump({**echo, "binning_x": 2, "binning_y": 2}))
    binned = read_camera_file(path2, 621, 187).camera
    assert binned.fx == pytest.approx(P2[0, 0] / 2) and binned.fy == pytest.approx(P2[1, 1] / 2)
    path2.write_text(yaml.safe_dump({**echo, "roi": {"x_offset": -1}}))
    with pytest.raises(ValueError, match="roi: x_offset must be a non-negative integer"):
        read_camera_file(path2, 1242, 375)
    # distortion: undistorted into the rectified image of P (as the image node does) ...
    path.write_text(yaml.safe_dump(_calibration_yaml(P2, [-0.3, 0.1, 0, 0, 0])))
    setup3 = read_camera_file(path, 1242, 375)
    np.testing.assert_allclose(setup3.camera.P, P2)
    assert setup3.undistort is not None and setup3.notes == ()
    # ... and the same camera, remap and notes as the node's camera_setup on the dumped message
    info = read_camera_info_yaml(path)
    node = camera_setup(info, 1242, 375)
    np.testing.assert_array_equal(node.camera.P, setup3.camera.P)
    rgb = np.random.default_rng(0).integers(0, 255, (375, 1242, 3), dtype=np.uint8)
    assert node.undistort is not None
    np.testing.assert_array_equal(node.undistort(rgb), setup3.undistort(rgb))
    # without undistortion: K, and a note naming the file says the distortion is ignored
    setup4 = read_camera_file(path, 1242, 375, undistort=False)
    np.testing.assert_array_equal(setup4.camera.P[:, 3], 0.0)
    assert setup4.undistort is None and len(setup4.notes) == 1
    assert setup4.notes[0].startswith(f"{path}: distortion ignored")


def test_camera_info_size_and_errors(data_root: Path, tmp_path: Path) -> None:
    P2 = kitti_camera(data_root / CALIB, 1242, 375).P
    info_path = tmp_path / "c.yaml"
    info_path.write_text(yaml.safe_dump(_calibration_yaml(P2, [])))
    info = read_camera_info_yaml(info_path)
    half = camera_info_camera(info, 621, 188)  # a uniform resize (aspect within 1 %)
    assert half.camera.fx == pytest.approx(P2[0, 0] * 0.5) and "scaled" in half.notes[0]
    with pytest.raises(ValueError, match="aspect ratios differ"):
        camera_info_camera(info, 1242, 300)
    bad = _calibration_yaml(P2, [])
    bad["camera_matrix"]["data"] = bad["camera_matrix"]["data"][:8]
    info_path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="camera_matrix needs 9 values, got 8"):
        read_camera_info_yaml(info_path)
    zero = _calibration_yaml(np.zeros((3, 4)), [])
    info_path.write_text(yaml.safe_dump(zero))
    with pytest.raises(ValueError, match=r"c\.yaml: uncalibrated camera: K is zero"):
        read_camera_file(info_path, 1242, 375)
    info_path.write_text("camera_matrix: [1, 2\n")
    with pytest.raises(ValueError, match="not a readable YAML"):
        read_camera_info_yaml(info_path)
    info_path.write_text(yaml.safe_dump({"image_width": 10}))
    with pytest.raises(ValueError, match="no camera_matrix / k / K"):
        read_camera_info_yaml(info_path)
