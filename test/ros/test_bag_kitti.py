"""sr3d_ros.ros.bag.build_kitti_bag + ``sr3d-bag build --dataset kitti``: real KITTI frames
(image, CameraInfo, velodyne, /tf_static, ground truth) in .mcap and .db3 bags, read back and
compared with the source files (exactly, or to the precision the message stores)."""

from __future__ import annotations

import numpy as np
import pytest

from sr3d_ros.frames import matrix_from_quaternion
from sr3d_ros.ros import bag as B
from sr3d_ros.ros.pointcloud2 import pointcloud2_to_structured

START = 1_700_000_000_000_000_000
# 000000 and 000003: different drives (two calibrations); 000010 has no velodyne scan
FRAMES = ["000000", "000010", "000003"]


def _kitti(data_root):
    from sr3d_training.datasets.kitti import KittiDataset

    return KittiDataset(data_root / "kitti" / "training", frame_ids=FRAMES)


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def kitti_bag(request, data_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("kitti") / f"bag_{request.param}"
    s = B.build_kitti_bag(
        path,
        data_root / "kitti" / "training",
        FRAMES,
        rate_hz=5.0,
        storage=request.param,
        start_ns=START,
    )
    return path, s, request.param


def _stamp(msg):
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def _tf_matrix(t):
    T = np.eye(4)
    r, p = t.transform.rotation, t.transform.translation
    T[:3, :3] = matrix_from_quaternion(np.array([r.x, r.y, r.z, r.w]))
    T[:3, 3] = (p.x, p.y, p.z)
    return T


def _assert_calibration(transforms, calib, stamp_ns):
    """``transforms`` (a TFMessage's, from rosbags or rclpy) are KITTI's ``calib``: camera_link
    <- optical (the fixed axis swap) and optical <- velodyne (Tr_velo_to_cam, rectified), both
    stamped ``stamp_ns``."""
    from sr3d_ros.geometry.camera import OPTICAL_TO_BODY

    frames = {(x.header.frame_id, x.child_frame_id): x for x in transforms}
    assert set(frames) == {
        ("camera_link", "camera_optical_frame"),
        ("camera_optical_frame", "velodyne"),
    }
    for x in frames.values():
        assert _stamp(x) == stamp_ns
    body = _tf_matrix(frames["camera_link", "camera_optical_frame"])
    np.testing.assert_allclose(body[:3, :3], OPTICAL_TO_BODY, atol=1e-15)
    np.testing.assert_array_equal(body[:3, 3], 0.0)
    velo = _tf_matrix(frames["camera_optical_frame", "velodyne"])
    np.testing.assert_array_equal(velo[:3, 3], calib.velo_to_rect[:3, 3])
    np.testing.assert_allclose(velo[:3, :3], calib.velo_to_rect[:3, :3], atol=1e-7)


def test_kitti_bag_round_trip(kitti_bag, data_root):
    from sr3d_ros.geometry.camera import PinholeCamera
    from sr3d_training.datasets.kitti import load_kitti_image
    from sr3d_training.datasets.sample import load_points_bin

    path, summary, storage = kitti_bag
    assert summary.frames == 3 and summary.sample_ids == FRAMES
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert list(path.glob(f"*{suffix}")) and (path / "metadata.yaml").is_file()
    ds = _kitti(data_root)
    t = B.KittiBagTopics()
    msgs = list(B.read_bag(path))
    by_topic: dict[str, list] = {}
    for m in msgs:
        by_topic.setdefault(m.topic, []).append(m)
    counts = {k: len(v) for k, v in by_topic.items()}
    assert counts == {
        t.tf_static: 2,  # 000010 and 000003 share 000003's drive calibration
        t.camera_info: 3,
        t.image: 3,
        t.points: 2,
        t.ground_truth: 3,
    }
    for m in msgs:
        assert m.timestamp_ns in (START, START + 200_000_000, START + 400_000_000)
        if m.topic != t.tf_static:
            assert _stamp(m.msg) == m.timestamp_ns

    for i, fid in enumerate(FRAMES):
        stamp = START + i * 200_000_000
        calib = ds.calib(fid)
        img = next(m.msg for m in by_topic[t.image] if m.timestamp_ns == stamp)
        ref = load_kitti_image(ds.folder / "image_2" / f"{fid}.png")
        assert (img.encoding, img.height, img.width, img.step) == (
            "rgb8",
            *ref.shape[:2],
            3 * ref.shape[1],
        )
        assert img.header.frame_id == "camera_optical_frame"
        np.testing.assert_array_equal(img.data.reshape(ref.shape), ref)

        info = next(m.msg for m in by_topic[t.camera_info] if m.timestamp_ns == stamp)
        assert info.header.frame_id == "camera_optical_frame"
        assert (info.height, info.width) == ref.shape[:2]
        np.testing.assert_array_equal(info.p.reshape(3, 4), calib.P[2])
        np.testing.assert_array_equal(info.k.reshape(3, 3), calib.P[2][:, :3])
        np.testing.assert_array_equal(info.r.reshape(3, 3), np.eye(3))
        cam = PinholeCamera(info.p.reshape(3, 4), int(info.width), int(info.height))
        ds_cam = ds[i].camera
        np.testing.assert_array_equal(cam.P, ds_cam.P)
        assert (cam.width, cam.height) == (ds_cam.width, ds_cam.height)

        scans = [m.msg for m in by_topic[t.points] if m.timestamp_ns == stamp]
        bin_path = ds.folder / "velodyne" / f"{fid}.bin"
        assert len(scans) == int(bin_path.is_file())
        if scans:
            (scan,) = scans
            assert scan.header.frame_id == "velodyne"
            st = pointcloud2_to_structured(scan).reshape(-1)
            assert st.dtype.names == B.KITTI_SCAN_FIELDS
            got = np.stack([st[n] for n in st.dtype.names], axis=1)
            np.testing.assert_array_equal(got, load_points_bin(bin_path, 4))  # bit-exact

        gt = next(m.msg for m in by_topic[t.ground_truth] if m.timestamp_ns == stamp)
        assert gt.header.frame_id == "camera_optical_frame"
        objects = ds.objects(fid)
        objects = objects.subset(objects.cared)
        poses = B.detection_poses(gt)
        assert poses.names == list(objects.names) and np.all(poses.scores == 1.0)
        c, q, s = poses.centers, poses.quaternions, poses.sizes
        # geometric centre = bottom centre lifted by h/2 (optical y points down)
        loc = objects.location
        np.testing.assert_allclose(
            c, loc - np.c_[0 * loc[:, 0], objects.dimensions[:, 0] / 2, 0 * loc[:, 0]], atol=1e-12
        )
        np.testing.assert_array_equal(s, objects.camera_boxes()[:, 3:6])  # (l, h, w)
        R = matrix_from_quaternion(q)
        length_axis = np.stack(
            [np.cos(objects.rotation_y), 0 * objects.rotation_y, -np.sin(objects.rotation_y)],
            axis=1,
        )
        np.testing.assert_allclose(R[:, :, 0], length_axis, atol=1e-12)
        np.testing.assert_allclose(R[:, :, 1], np.tile([0.0, 1.0, 0.0], (len(R), 1)), atol=1e-12)
        back = B.camera_boxes_from_poses(c, R, s)
        np.testing.assert_allclose(back, objects.camera_boxes(), atol=1e-12)

    # /tf_static: the calibration of each frame, in force from its first frame on
    tfs = by_topic[t.tf_static]
    assert [m.timestamp_ns for m in tfs] == [START, START + 200_000_000]
    for m, fid in zip(tfs, ["000000", "000010"]):
        _assert_calibration(m.msg.transforms, ds.calib(fid), m.timestamp_ns)


def test_kitti_bag_boxes_match_dataset_body_frame(kitti_bag, data_root):
    """The GT poses, moved by the bag's camera_link <- optical transform, are the dataset's own
    body-frame boxes (Sample.gt_boxes) for the labelled classes."""
    import torch

    from sr3d_ros.geometry.camera import camera_boxes_to_boxes

    path, _, _ = kitti_bag
    ds = _kitti(data_root)
    gts = [m.msg for m in B.read_bag(path, topics=[B.KittiBagTopics().ground_truth])]
    for msg, i in zip(gts, range(len(FRAMES))):
        sample = ds[i]
        poses = B.detection_poses(msg)
        c, q, s = poses.centers, poses.quaternions, poses.sizes
        cam = B.camera_boxes_from_poses(c, matrix_from_quaternion(q), s)
        boxes = camera_boxes_to_boxes(torch.from_numpy(cam)).numpy()
        assert sample.gt_boxes.dtype == np.float32  # hence float32 tolerances
        np.testing.assert_allclose(boxes[:, :6], sample.gt_boxes[:, :6], atol=1e-5)
        dyaw = np.angle(np.exp(1j * (boxes[:, 6] - sample.gt_boxes[:, 6])))
        np.testing.assert_allclose(dyaw, 0.0, atol=1e-6)


def test_kitti_bag_errors(data_root, tmp_path):
    root = data_root / "kitti" / "training"
    with pytest.raises(ValueError, match="rate_hz"):
        B.build_kitti_bag(tmp_path / "a", root, ["000000"], rate_hz=0)
    with pytest.raises(ValueError, match="storage"):
        B.build_kitti_bag(tmp_path / "b", root, ["000000"], storage="rosbag1")
    with pytest.raises(FileNotFoundError, match="999999"):
        B.build_kitti_bag(tmp_path / "c", root, ["999999"])
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_cli_build_kitti_sqlite3(data_root, tmp_path, capsys):
    from sr3d_ros.cli.bag import main

    out = tmp_path / "k"
    argv = [
        "build",
        str(out),
        "--dataset",
        "kitti",
        "--ids",
        "000134",
        "--storage",
        "sqlite3",
        "--data-root",
        str(data_root),
        "--rate",
        "10",
    ]
    assert main(argv) == 0
    assert "1 frames (000134)" in capsys.readouterr().out
    assert list(out.glob("*.db3"))
    info = B.bag_info(out)
    assert info["topics"][B.KittiBagTopics().points]["count"] == 1
    assert info["topics"][B.KittiBagTopics().image]["type"] == "sensor_msgs/msg/Image"
    assert main(argv) == 1  # the bag exists: one clear error


def test_player_latches_tf_static(ros, kitti_bag, data_root):
    """Played bags publish /tf_static reliable + transient local (as tf2's static broadcaster
    does): a subscriber that joins after the whole bag was played still gets every calibration
    the bag held, equal to KITTI's calib files."""
    import time

    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    ctx, ex = ros
    path, _, _ = kitti_bag
    node = rclpy.create_node("kitti_tf_player", context=ctx)
    late = rclpy.create_node("kitti_tf_late", context=ctx)
    ex.add_node(node)
    topic = "/kitti_tf_static_" + path.name  # remapped: nothing else on the graph publishes it
    try:
        player = B.BagPlayer(node, path, remap={"/tf_static": topic})
        assert player.skipped == {}
        qos = {t: p.qos_profile.durability for t, p in player.publishers.items()}
        assert qos.pop("/tf_static") == DurabilityPolicy.TRANSIENT_LOCAL
        assert set(qos.values()) == {DurabilityPolicy.VOLATILE}  # image, velodyne, GT
        assert player.play(rate=100.0) == len(list(player.messages()))
        got: list = []
        latched = QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        late.create_subscription(TFMessage, topic, got.append, latched)
        ex.add_node(late)  # subscribes after everything was published
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # nothing more than the bag's two /tf_static messages arrives
        assert len(got) == 2
        ds = _kitti(data_root)
        for msg, fid, stamp in zip(got, ["000000", "000010"], [START, START + 200_000_000]):
            _assert_calibration(msg.transforms, ds.calib(fid), stamp)
    finally:
        ex.remove_node(late)
        ex.remove_node(node)
        late.destroy_node()
        node.destroy_node()


def test_player_skips_topics_without_python_messages(ros, kitti_bag, monkeypatch):
    """Where the tf2_msgs Python package is missing (a pip install without it) the player skips
    /tf_static with a warning and plays the rest, unless /tf_static is asked for by name."""
    import sys

    import rclpy

    for name in ("tf2_msgs", "tf2_msgs.msg"):  # importing it fails as if it were not installed
        monkeypatch.setitem(sys.modules, name, None)
    ctx, _ = ros
    path, _, _ = kitti_bag
    node = rclpy.create_node("kitti_tf_missing", context=ctx)
    try:
        player = B.BagPlayer(node, path)
        assert player.skipped == {"/tf_static": "tf2_msgs/msg/TFMessage"}
        t = B.KittiBagTopics()
        assert set(player.publishers) == {t.image, t.camera_info, t.points, t.ground_truth}
        assert "/tf_static" not in {m.topic for m in player.messages()}
        with pytest.raises(ImportError, match="tf2_msgs/msg/TFMessage are not installed"):
            B.BagPlayer(node, path, topics=["/tf_static"])
    finally:
        node.destroy_node()
