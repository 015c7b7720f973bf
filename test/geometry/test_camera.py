"""Camera geometry on the real KITTI calibrations and labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sr3d_ros.geometry import box_corners
from sr3d_ros.geometry.camera import (
    OPTICAL_TO_BODY,
    PinholeCamera,
    alpha_to_rotation_y,
    boxes_to_camera_boxes,
    camera_box_corners,
    camera_boxes_to_boxes,
    corners_to_image_boxes,
    depth_from_height,
    rotation_y_to_alpha,
    transform_boxes,
)
from sr3d_training.datasets.kitti import read_kitti_calib, read_kitti_label
from sr3d_training.evaluation.kitti import image_box_iou


@pytest.fixture(scope="module")
def calibs(data_root):
    folder = data_root / "kitti" / "training" / "calib"
    return [read_kitti_calib(p) for p in sorted(folder.glob("*.txt"))]


def _rand_points(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return p * torch.tensor([40.0, 6.0, 60.0]) + torch.tensor([-20.0, -3.0, 2.0])


def test_project_matches_homogeneous_P_and_unproject_inverts(calibs):
    for calib in calibs:
        for idx in range(4):
            cam = calib.camera(1242, 375, idx)
            pts = _rand_points(200, idx)
            uv, depth = cam.project(pts)
            h = np.concatenate([pts.numpy(), np.ones((200, 1))], 1) @ calib.P[idx].T
            np.testing.assert_allclose(uv.numpy(), h[:, :2] / h[:, 2:], rtol=1e-12, atol=1e-9)
            assert torch.equal(depth, pts[:, 2])
            back = cam.unproject(uv, depth)
            np.testing.assert_allclose(back.numpy(), pts.numpy(), atol=1e-9)
            # P = K [I | t]: the baseline term reproduces the 4th column
            np.testing.assert_allclose(cam.K @ cam.baseline, calib.P[idx][:, 3], atol=1e-9)
    # P2 / P3 of KITTI sit ~6 cm left / ~48 cm right of camera 0 (stereo baseline 0.54 m)
    c = calibs[0]
    assert 0.04 < c.camera(1, 1, 2).baseline[0] < 0.08
    assert -0.5 < c.camera(1, 1, 3).baseline[0] < -0.45


def test_rays_pass_through_the_points(calibs):
    cam = calibs[3].camera(1242, 375)
    pts = _rand_points(100)
    uv, _ = cam.project(pts)
    origin, d = cam.rays(uv)
    np.testing.assert_allclose(torch.linalg.vector_norm(d, dim=-1).numpy(), 1.0, atol=1e-12)
    t = (pts[:, 2] - origin[2]) / d[:, 2]
    np.testing.assert_allclose((origin + d * t[:, None]).numpy(), pts.numpy(), atol=1e-9)
    # the camera centre projects nowhere: P [C; 1] = 0
    np.testing.assert_allclose(cam.P @ np.append(origin.numpy(), 1.0), 0.0, atol=1e-9)


def test_depth_from_height_and_projected_centre(calibs):
    cam = calibs[0].camera(1224, 370)
    # a 1.5 m vertical segment at depth z, centred on the principal row, spans fy * 1.5 / z px
    for z in (5.0, 20.0, 60.0):
        top = torch.tensor([[2.0, -0.75, z]], dtype=torch.float64)
        bottom = torch.tensor([[2.0, 0.75, z]], dtype=torch.float64)
        h_px = cam.project(bottom)[0][0, 1] - cam.project(top)[0][0, 1]
        est = depth_from_height(torch.tensor(1.5, dtype=torch.float64), h_px, cam.fy)
        assert float(est) == pytest.approx(z + cam.baseline[2], rel=1e-9)


def test_image_transforms_of_the_camera(calibs):
    cam = calibs[5].camera(1242, 375)
    pts = _rand_points(300, 1)
    uv, _ = cam.project(pts)
    # resize: pixel centres map u -> s (u + 0.5) - 0.5
    r = cam.resized(621, 250)
    uv_r, _ = r.project(pts)
    sx, sy = 621 / 1242, 250 / 375
    np.testing.assert_allclose(uv_r[:, 0].numpy(), (sx * (uv[:, 0] + 0.5) - 0.5).numpy(), 1e-9)
    np.testing.assert_allclose(uv_r[:, 1].numpy(), (sy * (uv[:, 1] + 0.5) - 0.5).numpy(), 1e-9)
    # crop: shift
    c = cam.cropped(100, 50, 600, 200)
    np.testing.assert_allclose((c.project(pts)[0] - uv).numpy(), [[-100, -50]] * 300, atol=1e-9)
    # letterbox 1280 x 384: 1242 x 375 -> scale 1.024, resized 1272 x 384, 4 px pad each side
    box = cam.letterbox()
    assert (box.new_width, box.new_height, box.pad_left, box.pad_top) == (1272, 384, 4, 0)
    lb = cam.letterboxed(box)
    assert (lb.width, lb.height) == (1280, 384)
    A = box.affine()
    want = uv.numpy() * [A[0, 0], A[1, 1]] + [A[0, 2], A[1, 2]]
    np.testing.assert_allclose(lb.project(pts)[0].numpy(), want, atol=1e-9)
    # flip: the mirrored point lands on the mirrored pixel; flipping twice is the identity
    f = cam.flipped()
    mirrored = pts * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    uv_f, _ = f.project(mirrored)
    np.testing.assert_allclose(uv_f[:, 0].numpy(), (1241 - uv[:, 0]).numpy(), atol=1e-9)
    np.testing.assert_allclose(uv_f[:, 1].numpy(), uv[:, 1].numpy(), atol=1e-9)
    np.testing.assert_allclose(f.flipped().P, cam.P, atol=1e-9)


def test_bad_cameras_and_inputs_raise():
    with pytest.raises(ValueError, match="3, 4"):
        PinholeCamera(np.eye(3), 10, 10)
    rotated = np.eye(3, 4)
    rotated[2, 0] = 0.1
    with pytest.raises(ValueError, match="upper triangular"):
        PinholeCamera(rotated, 10, 10)
    with pytest.raises(ValueError, match="size"):
        PinholeCamera(np.eye(3, 4), 0, 10)
    cam = PinholeCamera.from_intrinsics(np.diag([500.0, 500.0, 1.0]), 640, 480)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        cam.project(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="floating"):
        cam.project(torch.zeros(4, 3, dtype=torch.int64))


def _alpha_err(pred: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs((pred - want + math.pi) % (2 * math.pi) - math.pi)


def test_alpha_convention_on_real_labels(data_root):
    """alpha = ry - atan2(x, z): the labels hold both; the other sign is far off."""
    folder = data_root / "kitti" / "training" / "label_2"
    objs = [read_kitti_label(p) for p in sorted(folder.glob("*.txt"))]
    errs, other = [], []
    for o in objs:
        o = o.subset(o.cared)
        ry, x, z = (torch.from_numpy(a) for a in (o.rotation_y, o.location[:, 0], o.location[:, 2]))
        errs.append(_alpha_err(rotation_y_to_alpha(ry, x, z).numpy(), o.alpha))
        other.append(_alpha_err((ry + torch.atan2(x, z)).numpy(), o.alpha))
        back = alpha_to_rotation_y(torch.from_numpy(o.alpha), x, z).numpy()
        assert _alpha_err(back, o.rotation_y).max() < 0.05
    errs_a, other_a = np.concatenate(errs), np.concatenate(other)
    assert len(errs_a) == 84  # 51 Car + 22 Pedestrian + 10 Cyclist + 1 Van
    assert np.median(errs_a) < 0.005 and errs_a.max() < 0.05  # labels have 2 decimals
    assert np.median(other_a) > 0.1


def test_camera_box_conversion_round_trip_and_corners():
    g = torch.Generator().manual_seed(3)
    cam = torch.cat(
        [
            torch.rand(50, 3, generator=g, dtype=torch.float64) * 20 - 10,
            torch.rand(50, 3, generator=g, dtype=torch.float64) * 4 + 0.3,
            torch.rand(50, 1, generator=g, dtype=torch.float64) * 2 * math.pi - math.pi,
        ],
        dim=1,
    )
    ours = camera_boxes_to_boxes(cam)
    np.testing.assert_allclose(boxes_to_camera_boxes(ours).numpy(), cam.numpy(), atol=1e-12)
    # corners: the body-frame corners turned back to the optical frame; bottom face at y = y0
    corners = camera_box_corners(cam)
    body = box_corners(ours)
    np.testing.assert_allclose(corners.numpy(), (body.numpy() @ OPTICAL_TO_BODY), atol=1e-12)
    np.testing.assert_allclose(
        corners[:, :4, 1].numpy(), cam[:, None, 1].expand(-1, 4).numpy(), atol=1e-12
    )
    np.testing.assert_allclose(
        corners[:, 4:, 1].numpy(),
        (cam[:, None, 1] - cam[:, None, 4]).expand(-1, 4).numpy(),
        atol=1e-12,
    )
    # the length axis (corner 0 -> 1) points along (cos ry, 0, -sin ry), length l
    axis = corners[:, 1] - corners[:, 0]
    want = torch.stack([torch.cos(cam[:, 6]), 0 * cam[:, 6], -torch.sin(cam[:, 6])], 1)
    np.testing.assert_allclose(axis.numpy(), (want * cam[:, 3:4]).numpy(), atol=1e-12)


def test_projected_label_boxes_enclose_the_2d_labels(data_root, calibs):
    """Real labels projected with P2 match their 2D boxes (README: median IoU 0.81-0.98)."""
    folder = data_root / "kitti" / "training"
    ids = sorted(p.stem for p in (folder / "label_2").glob("*.txt"))
    medians = []
    for fid in ids:
        o = read_kitti_label(folder / "label_2" / f"{fid}.txt")
        o = o.subset(o.cared & (o.truncated < 0.01))
        if not len(o):
            continue
        cam = read_kitti_calib(folder / "calib" / f"{fid}.txt").camera(1242, 375)
        b, valid = corners_to_image_boxes(
            cam, camera_box_corners(torch.from_numpy(o.camera_boxes())), clip=False
        )
        assert bool(valid.all())
        medians.append(float(np.median(np.diag(image_box_iou(b.numpy(), o.bbox)))))
    assert len(medians) == 14
    assert min(medians) > 0.6 and np.median(medians) > 0.9


def test_transform_boxes_is_rigid_for_yaw_rotations():
    g = torch.Generator().manual_seed(0)
    boxes = torch.cat(
        [
            torch.randn(20, 3, generator=g, dtype=torch.float64) * 5,
            torch.rand(20, 3, generator=g, dtype=torch.float64) + 0.5,
            torch.rand(20, 1, generator=g, dtype=torch.float64) * 6 - 3,
        ],
        1,
    )
    th = 0.7
    T = np.eye(4)
    T[:2, :2] = [[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]]
    T[:3, 3] = [1.0, -2.0, 0.5]
    moved = transform_boxes(boxes, T)
    c = box_corners(boxes).numpy() @ T[:3, :3].T + T[:3, 3]
    np.testing.assert_allclose(box_corners(moved).numpy(), c, atol=1e-9)
