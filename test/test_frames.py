"""sr3d_ros.frames: rigid transforms, quaternions, box back-transform, subsampling (no ROS).

The transform tests run on the real raw (unaligned) ScanNet scan and its axis-alignment matrix:
the matrix maps the raw sensor-mesh frame to the gravity-aligned frame the boxes are labelled in.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sr3d_ros import frames as F

RAW = "scannet/raw/scene0000_00_unaligned.bin"
RAW_INFO = "scannet/raw/scene0000_00_infos_with_axis_align.pkl"
ALIGNED = "scannet/scannet_instance_data/scene0000_00_vert_all.npy"


@pytest.fixture(scope="module")
def raw_scan(data_root):
    from sr3d_training.datasets import load_pickle_strict

    pts = np.fromfile(data_root / RAW, dtype="<f4").reshape(-1, 6)
    info = load_pickle_strict(data_root / RAW_INFO)
    rec = info[0] if isinstance(info, list) else info["data_list"][0]
    m = rec["annos"]["axis_align_matrix"] if "annos" in rec else rec["axis_align_matrix"]
    return pts, np.asarray(m, np.float64).reshape(4, 4), np.load(data_root / ALIGNED)


def random_rotations(n, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return F.matrix_from_quaternion(q)


def test_box_edges_are_the_12_unit_cube_edges():
    assert len(F.BOX_EDGES) == 12 and len(set(F.BOX_EDGES)) == 12
    for a, b in F.BOX_EDGES:
        assert bin(a ^ b).count("1") == 1
    # every corner has degree 3
    deg = np.bincount(np.array(F.BOX_EDGES).ravel(), minlength=8)
    assert (deg == 3).all()


def test_rpy_matches_composition_and_is_rotation():
    r = F.rotation_from_rpy(0.3, -0.2, 1.1)
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # roll alone rotates y towards z
    np.testing.assert_allclose(
        F.rotation_from_rpy(math.pi / 2, 0, 0) @ [0, 1, 0], [0, 0, 1], atol=1e-12
    )
    # pitch alone rotates z towards x
    np.testing.assert_allclose(
        F.rotation_from_rpy(0, math.pi / 2, 0) @ [0, 0, 1], [1, 0, 0], atol=1e-12
    )
    np.testing.assert_allclose(F.rotation_from_rpy(0, 0, 0.7), F.rotation_z(0.7), atol=1e-15)


def test_quaternion_round_trip_all_branches():
    rots = random_rotations(500)
    # include the w-small branches: 180 degree turns about each axis
    rots = np.concatenate(
        [
            rots,
            np.diag([1.0, -1, -1])[None],
            np.diag([-1.0, 1, -1])[None],
            np.diag([-1.0, -1, 1])[None],
            np.eye(3)[None],
        ]
    )
    q = F.quaternion_from_matrix(rots)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    assert (q[:, 3] >= 0).all()
    np.testing.assert_allclose(F.matrix_from_quaternion(q), rots, atol=1e-10)


def test_yaw_quaternion_conventions():
    yaw = np.linspace(-math.pi + 1e-3, math.pi - 1e-3, 37)
    q = F.quaternion_from_yaw(yaw)
    np.testing.assert_allclose(q[:, :2], 0.0)
    np.testing.assert_allclose(F.matrix_from_quaternion(q), F.rotation_z(yaw), atol=1e-12)
    np.testing.assert_allclose(F.yaw_from_quaternion(q), yaw, atol=1e-12)
    np.testing.assert_allclose(F.quaternion_from_matrix(F.rotation_z(yaw)), q, atol=1e-12)
    # a zero quaternion (unset message) reads as the identity
    np.testing.assert_allclose(F.matrix_from_quaternion(np.zeros(4)), np.eye(3))


def test_validate_transform_rejects_non_rigid():
    F.validate_transform(np.eye(4).ravel())
    with pytest.raises(ValueError, match="16 values"):
        F.validate_transform(np.eye(3))
    with pytest.raises(ValueError, match="orthonormal"):
        F.validate_transform(np.diag([2.0, 1, 1, 1]))
    with pytest.raises(ValueError, match="reflection"):
        F.validate_transform(np.diag([-1.0, 1, 1, 1]))
    bad = np.eye(4)
    bad[3, 0] = 1
    with pytest.raises(ValueError, match="last row"):
        F.validate_transform(bad)
    with pytest.raises(ValueError, match="non-finite"):
        F.validate_transform(np.full(16, np.nan))


def test_transform_from_params():
    np.testing.assert_array_equal(F.transform_from_params(), np.eye(4))
    np.testing.assert_array_equal(F.transform_from_params([], [], []), np.eye(4))
    t = F.transform_from_params(None, [0.1, 0.2, 0.3], [1, 2, 3])
    np.testing.assert_allclose(t[:3, :3], F.rotation_from_rpy(0.1, 0.2, 0.3))
    np.testing.assert_allclose(t[:3, 3], [1, 2, 3])
    # the matrix wins over rpy/translation
    m = F.make_transform(F.rotation_z(0.5), [4, 5, 6])
    np.testing.assert_allclose(F.transform_from_params(m.ravel().tolist(), [1, 1, 1], [0, 0, 0]), m)
    with pytest.raises(ValueError, match="rpy needs 3"):
        F.transform_from_params(None, [1, 2])
    with pytest.raises(ValueError, match="translation needs 3"):
        F.transform_from_params(None, None, [1, 2, 3, 4])


def test_transform_points_reproduces_scannet_alignment(raw_scan):
    """The axis-alignment matrix applied by transform_points gives the aligned export."""
    raw, m, aligned = raw_scan
    F.validate_transform(m)
    out = F.transform_points(raw, m)
    assert out.dtype == np.float32 and out.shape == raw.shape
    np.testing.assert_allclose(out[:, :3], aligned[:, :3], atol=2e-5)
    np.testing.assert_array_equal(out[:, 3:], raw[:, 3:])  # colours untouched
    assert not np.shares_memory(out, raw)


def test_axis_align_matrix_is_a_rotation_about_z(raw_scan):
    _, m, _ = raw_scan
    assert F.is_z_rotation(m[:3, :3], tol=1e-6)
    assert not F.is_z_rotation(F.rotation_from_rpy(0.1, 0, 0))


def test_boxes_back_to_input_frame_about_z(raw_scan, data_root):
    """ScanNet GT boxes (aligned frame) mapped into the raw frame: centres follow M^-1, yaw -= a,
    and the raw points inside each box are the aligned points inside it."""
    raw, m, aligned = raw_scan
    bbox = np.load(data_root / "scannet/scannet_instance_data/scene0000_00_bbox.npy")
    boxes = np.zeros((len(bbox), 7), np.float32)
    boxes[:, :6] = bbox[:, :6]
    poses = F.boxes_from_gravity(boxes, m)
    assert poses.upright and len(poses) == len(boxes)
    a = math.atan2(m[1, 0], m[0, 0])
    np.testing.assert_allclose(
        poses.centers,
        (np.c_[boxes[:, :3], np.ones(len(boxes))] @ np.linalg.inv(m).T)[:, :3],
        atol=1e-5,
    )
    yaw = np.angle(np.exp(1j * (poses.yaw + a)))
    np.testing.assert_allclose(yaw, 0.0, atol=1e-9)
    np.testing.assert_allclose(poses.sizes, boxes[:, 3:6])
    # membership of points is frame-independent
    for k in range(0, len(boxes), 5):

        def inside(pts, c, r, s):
            local = (pts[:, :3] - c) @ r  # coordinates along the box axes
            return (np.abs(local) <= s / 2 - 1e-3).all(1)

        in_aligned = inside(aligned, boxes[k, :3].astype(np.float64), np.eye(3), boxes[k, 3:6])
        in_raw = inside(raw, poses.centers[k], poses.rotations[k], poses.sizes[k])
        assert in_aligned.sum() > 0
        # float32 rounding may move a few points across a face
        assert np.count_nonzero(in_aligned != in_raw) <= 3


def test_boxes_back_for_tilted_sensor_keep_full_rotation():
    rng = np.random.default_rng(1)
    t = F.transform_from_params(None, [0.4, -0.3, 0.2], [0.5, -1.0, 1.2])
    boxes = np.c_[rng.uniform(-3, 3, (20, 3)), rng.uniform(0.2, 2, (20, 3)), rng.uniform(-3, 3, 20)]
    poses = F.boxes_from_gravity(boxes, t)
    assert not poses.upright
    # corners mapped back with T^-1 equal the corners of the returned poses
    g = F.box_corners(F.BoxPoses.from_boxes(boxes))
    tinv = np.linalg.inv(t)
    expected = g @ tinv[:3, :3].T + tinv[:3, 3]
    np.testing.assert_allclose(F.box_corners(poses), expected, atol=1e-9)
    np.testing.assert_allclose(
        F.matrix_from_quaternion(poses.quaternions), poses.rotations, atol=1e-10
    )


def test_identity_transform_is_a_no_op():
    boxes = np.array([[1, 2, 3, 1, 1, 1, 0.5]], np.float32)
    for t in (None, np.eye(4)):
        p = F.boxes_from_gravity(boxes, t)
        np.testing.assert_allclose(p.as_boxes(), boxes, atol=1e-7)
    assert len(F.boxes_from_gravity(np.zeros((0, 7)), None)) == 0


def test_box_corners_axis_aligned():
    p = F.BoxPoses.from_boxes(np.array([[1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 0.0]]))
    c = F.box_corners(p)[0]
    np.testing.assert_allclose(c.min(0), [0, 0, 0])
    np.testing.assert_allclose(c.max(0), [2, 4, 6])
    np.testing.assert_allclose(c[0], [0, 0, 0])
    np.testing.assert_allclose(c[7], [2, 4, 6])


def test_random_subsample(data_root):
    pts = np.load(data_root / ALIGNED)
    assert F.random_subsample(pts, 0) is pts
    assert F.random_subsample(pts, len(pts)) is pts
    sub = F.random_subsample(pts, 1000, np.random.default_rng(3))
    assert sub.shape == (1000, 6)
    # rows are real rows, unique, in original order
    idx = np.flatnonzero(np.isin(pts[:, 0], sub[:, 0]) & np.isin(pts[:, 1], sub[:, 1]))
    assert len(idx) >= 1000
    np.testing.assert_array_equal(F.random_subsample(pts, 1000, np.random.default_rng(3)), sub)
    assert len(np.unique(sub, axis=0)) == 1000
