"""sr3d_ros.geometry.camera_info: CameraInfo -> PinholeCamera, with the real KITTI calibration of
000007 (P2 with its baseline term) and a distorted camera built around it.

References: the camera of a CameraInfo built from P2 is P2 itself; scaled / cropped / binned
infos must give camera.py's resized / cropped cameras; undistortion must move a feature rendered
at the distorted position of a 3D point to where P projects that point.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros

from sensor_msgs.msg import CameraInfo  # noqa: E402

from sr3d_ros.geometry.camera import PinholeCamera  # noqa: E402
from sr3d_ros.geometry.camera_info import CameraInfoError, camera_setup, info_key  # noqa: E402

W, H = 1242, 375
PLUMB_BOB = [-0.30, 0.10, 0.0012, -0.0021, -0.02]


@pytest.fixture(scope="module")
def p2(data_root):
    from sr3d_training.datasets.kitti import read_kitti_calib

    calib = read_kitti_calib(data_root / "kitti/training/calib/000007.txt")
    return calib.camera(W, H).P.copy()


def info(P, K=None, d=(), model="", width=W, height=H, r=None):
    m = CameraInfo()
    m.width, m.height = width, height
    m.k = (P[:, :3] if K is None else K).ravel().tolist()
    m.p = P.ravel().tolist()
    m.r = (np.eye(3) if r is None else r).ravel().tolist()
    m.d = list(d)
    m.distortion_model = model
    return m


def test_kitti_p2_with_baseline(p2):
    s = camera_setup(info(p2), W, H)
    np.testing.assert_allclose(s.camera.P, p2)
    assert (s.camera.width, s.camera.height) == (W, H)
    # the baseline term stays in the camera: boxes are in the frame P2 projects from (camera 0)
    assert 0.05 < s.camera.baseline[0] < 0.07  # KITTI camera 2 sits ~6 cm right of camera 0
    assert s.undistort is None and s.notes == ()


def test_k_versus_p(p2):
    K = p2[:, :3].copy()
    K[0, 0] *= 1.05  # a raw camera whose K differs from the rectified P
    m = info(p2, K=K)
    np.testing.assert_allclose(camera_setup(m, W, H).camera.P, p2)  # auto, no distortion: P
    np.testing.assert_allclose(camera_setup(m, W, H, intrinsics="P").camera.P, p2)
    cam_k = camera_setup(m, W, H, intrinsics="K")
    np.testing.assert_allclose(cam_k.camera.P, np.concatenate([K, np.zeros((3, 1))], 1))
    np.testing.assert_allclose(cam_k.camera.baseline, 0)
    m.p = [0.0] * 12  # P not set: K
    np.testing.assert_allclose(camera_setup(m, W, H).camera.K, K)
    with pytest.raises(CameraInfoError, match="P is zero"):
        camera_setup(m, W, H, intrinsics="P")
    with pytest.raises(ValueError, match="intrinsics"):
        camera_setup(m, W, H, intrinsics="Q")


def test_uncalibrated_and_malformed(p2):
    zero = info(np.zeros((3, 4)))
    with pytest.raises(CameraInfoError, match="uncalibrated"):
        camera_setup(zero, W, H)
    bad = info(p2)
    bad.p = [float("nan")] + list(bad.p[1:])
    with pytest.raises(CameraInfoError, match="finite"):
        camera_setup(bad, W, H)
    skew = p2.copy()
    skew[1, 0] = 3.0  # not K [I | t]
    with pytest.raises(CameraInfoError, match="upper triangular"):
        camera_setup(info(skew), W, H)


@pytest.mark.parametrize("w,h", [(621, 188), (1242 // 3, 125), (2484, 750)])
def test_mismatched_size_is_scaled(p2, w, h):
    s = camera_setup(info(p2), w, h)
    ref = PinholeCamera(p2, W, H).resized(w, h)
    np.testing.assert_allclose(s.camera.P, ref.P, atol=1e-9)
    assert (s.camera.width, s.camera.height) == (w, h)
    assert any("scaled" in n for n in s.notes)
    np.testing.assert_allclose(s.camera.baseline, PinholeCamera(p2, W, H).baseline, atol=1e-12)


@pytest.mark.parametrize("w,h", [(640, 640), (1242, 300)])
def test_inconsistent_size_is_refused(p2, w, h):
    with pytest.raises(CameraInfoError, match=f"1242 x 375 pixels but the image is {w} x {h}"):
        camera_setup(info(p2), w, h)


def test_binning_and_roi(p2):
    m = info(p2)
    m.binning_x = m.binning_y = 2
    s = camera_setup(m, W // 2, H // 2)
    sx, sy = 0.5, 0.5
    A = np.array([[sx, 0, 0.5 * (sx - 1)], [0, sy, 0.5 * (sy - 1)], [0, 0, 1]])
    np.testing.assert_allclose(s.camera.P, A @ p2, atol=1e-9)
    assert s.notes == ()  # binning is not a mismatch
    m = info(p2)
    m.roi.x_offset, m.roi.y_offset, m.roi.width, m.roi.height = 100, 50, 640, 240
    s = camera_setup(m, 640, 240)
    np.testing.assert_allclose(s.camera.P, PinholeCamera(p2, W, H).cropped(100, 50, 640, 240).P)
    m = info(p2, width=0, height=0)  # no size: taken to be the image's
    assert camera_setup(m, 800, 600).camera.width == 800


def test_distortion_ignored_when_asked_or_unknown(p2):
    K = p2[:, :3]
    m = info(np.concatenate([K, np.zeros((3, 1))], 1), d=PLUMB_BOB, model="plumb_bob")
    s = camera_setup(m, W, H, undistort=False)
    assert s.undistort is None and any(
        "distortion ignored (undistort is off)" in n for n in s.notes
    )
    np.testing.assert_allclose(s.camera.K, K)
    m = info(np.concatenate([K, np.zeros((3, 1))], 1), d=[0.1, 0.01, 0, 0], model="equidistant")
    s = camera_setup(m, W, H)
    assert s.undistort is None and any("'equidistant'" in n for n in s.notes)


def _distort(K, d, X):
    """Pixel of optical-frame points X (N, 3) in the raw image (plumb_bob, as ROS defines it)."""
    k1, k2, p1, p2_, k3 = d
    x, y = X[:, 0] / X[:, 2], X[:, 1] / X[:, 2]
    r2 = x * x + y * y
    rad = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * rad + 2 * p1 * x * y + p2_ * (r2 + 2 * x * x)
    yd = y * rad + p1 * (r2 + 2 * y * y) + 2 * p2_ * x * y
    return np.stack([K[0, 0] * xd + K[0, 2], K[1, 1] * yd + K[1, 2]], 1)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_undistortion_moves_features_to_their_projection(p2, scale):
    """Gaussian dots rendered at the distorted pixel of 3D points land, after undistortion, at
    P's projection of the points (centroid within 0.15 px), also with a half-size image."""
    K = p2[:, :3].copy()
    P = np.concatenate([K, np.zeros((3, 1))], 1)
    P[0, 0] = P[1, 1] = K[0, 0] * 0.9  # rectified camera with a wider view, as image_proc
    m = info(P, K=K, d=PLUMB_BOB, model="plumb_bob")
    w, h = round(W * scale), round(H * scale)
    s = camera_setup(m, w, h)
    assert s.undistort is not None
    A = PinholeCamera(P, W, H).resized(w, h).P
    np.testing.assert_allclose(s.camera.P, A, atol=1e-9)
    X = np.array([[x, y, 10.0] for x in (-6.0, -2.0, 3.0, 7.0) for y in (-1.5, 0.5, 1.6)])
    Ks = PinholeCamera.from_intrinsics(K, W, H).resized(w, h).K
    raw_uv = _distort(Ks, PLUMB_BOB, X)
    uu, vv = np.meshgrid(np.arange(w), np.arange(h))
    img = np.zeros((h, w), np.float64)
    for u, v in raw_uv:
        img += 250 * np.exp(-((uu - u) ** 2 + (vv - v) ** 2) / (2 * 2.0**2))
    raw = np.repeat(np.clip(img, 0, 255).round().astype(np.uint8)[:, :, None], 3, 2)
    rect = s.undistort(raw)[:, :, 0].astype(np.float64)
    uv, _ = s.camera.project(torch.from_numpy(X))
    moved = np.linalg.norm(raw_uv - uv.numpy(), axis=1)
    assert moved.max() > 15 * scale  # the distortion is large at the border
    for u, v in uv.numpy():
        r = 6
        iu, iv = round(u), round(v)
        win = rect[iv - r : iv + r + 1, iu - r : iu + r + 1]
        gu, gv = np.meshgrid(np.arange(iu - r, iu + r + 1), np.arange(iv - r, iv + r + 1))
        cu, cv = (win * gu).sum() / win.sum(), (win * gv).sum() / win.sum()
        assert abs(cu - u) < 0.15 and abs(cv - v) < 0.15, (u, v, cu, cv)
    with pytest.raises(ValueError, match="undistortion map"):
        s.undistort(raw[:-1])


def test_info_key_ignores_header_only(p2):
    a, b = info(p2), info(p2)
    b.header.stamp.sec = 99
    b.header.frame_id = "other"
    assert info_key(a) == info_key(b)
    b.d = [0.1, 0, 0, 0, 0]
    assert info_key(a) != info_key(b)
