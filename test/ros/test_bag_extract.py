"""``sr3d-bag info`` / ``extract`` on real data: a ScanNet scan seen by a moving, unaligned
"sensor" (axis alignment on /tf_static, motion on /tf between the frames) and KITTI frames
(image + CameraInfo, velodyne, /tf_static), in .mcap and .db3 bags. The extracted samples equal
the source arrays (bit for bit without a transform), and boxes moved through TF match the GT.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sr3d_ros.ros import bag as B

START = 1_700_000_000_000_000_000
PERIOD = 500_000_000  # 2 Hz
ALIGNED = "scannet_aligned"


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def sensor_bag(request, data_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("scannet") / f"sensor_{request.param}"
    B.build_scannet_sensor_bag(path, data_root, frames=3, storage=request.param, start_ns=START)
    return path


@pytest.fixture(scope="module")
def scannet(data_root):
    """(aligned reference sample, raw unaligned points, axis_align_matrix)."""
    from sr3d_training.datasets import ScanNetDataset, load_points_bin, load_scannet_raw_scan

    raw_dir = data_root / "scannet" / "raw"
    raw = load_scannet_raw_scan(
        raw_dir / "scene0000_00_unaligned.bin", raw_dir / "scene0000_00_infos_with_axis_align.pkl"
    )
    ref = ScanNetDataset(data_root / "scannet", scene_ids=["scene0000_00"])[0]
    return (
        ref,
        load_points_bin(raw_dir / "scene0000_00_unaligned.bin", 6),
        raw.meta["axis_align_matrix"],
    )


def _dataset(path, **kw):
    from sr3d_training.datasets.bag import BagDataset

    return BagDataset(path, **kw)


def _assert_boxes_match(got, ref, atol):
    np.testing.assert_allclose(got.gt_boxes[:, :6], ref.gt_boxes[:, :6], atol=atol)
    dyaw = np.angle(np.exp(1j * (got.gt_boxes[:, 6] - ref.gt_boxes[:, 6])))
    np.testing.assert_allclose(dyaw, 0.0, atol=1e-6)
    assert got.gt_labels.tolist() == ref.gt_labels.tolist()


def test_info_topics_frames_and_tf(sensor_bag, data_root, tmp_path):
    info = B.bag_info(sensor_bag, target_frame=ALIGNED)
    assert info["storage"] == ("mcap" if sensor_bag.name.endswith("mcap") else "sqlite3")
    t = info["topics"]
    assert t["/points"] == {
        "type": "sensor_msgs/msg/PointCloud2",
        "count": 3,
        "frame_ids": ["scannet_sensor"],
    }
    assert t["/ground_truth"]["frame_ids"] == ["scannet_sensor"]
    assert t["/tf"]["count"] == 6 and t["/tf_static"]["count"] == 1
    tf = info["tf"]
    assert tf["static"] == [[ALIGNED, "scannet_unaligned"]]
    assert tf["dynamic"] == [["scannet_unaligned", "scannet_sensor"]]
    # the sensor reaches the aligned frame only through /tf (it moves)
    assert tf["complete"] and not tf["static_complete"] and tf["unconnected"] == []
    assert B.bag_info(sensor_bag, target_frame="map")["tf"]["unconnected"] == ["scannet_sensor"]
    # 1.5 periods of /tf around 3 frames: from -0.25 s to +1.25 s
    assert info["duration_s"] == pytest.approx(1.5, abs=1e-6)

    kitti = tmp_path / "kitti"
    B.build_kitti_bag(kitti, data_root / "kitti" / "training", ["000000"], start_ns=START)
    kinfo = B.bag_info(kitti)
    kt = B.KittiBagTopics()
    assert kinfo["topics"][kt.points]["frame_ids"] == ["velodyne"]
    assert kinfo["topics"][kt.image]["frame_ids"] == ["camera_optical_frame"]
    assert kinfo["tf"]["static_complete"] and kinfo["tf"]["dynamic"] == []
    assert B.bag_info(kitti, target_frame="camera_link")["tf"]["static_complete"]


def test_player_tf_volatile_tf_static_latched(ros, sensor_bag, scannet):
    """Replayed, /tf keeps tf2's dynamic broadcaster QoS (reliable, volatile, depth 100) and
    /tf_static its static one (transient local), also when remapped; the axis alignment on
    /tf_static reaches a subscriber that joins after the playback."""
    import time

    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from sr3d_ros.ros.bag.tf import tf_from_msg

    ctx, ex = ros
    node = rclpy.create_node("sensor_tf_player", context=ctx)
    ex.add_node(node)
    static = "/sensor_tf_static_" + sensor_bag.name
    try:
        player = B.BagPlayer(node, sensor_bag, remap={"/tf": "/sensor_tf", "/tf_static": static})
        tf, tf_static = player.publishers["/tf"], player.publishers["/tf_static"]
        assert (tf.topic_name, tf_static.topic_name) == ("/sensor_tf", static)
        assert tf.qos_profile.durability == DurabilityPolicy.VOLATILE
        assert tf.qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert tf.qos_profile.depth == 100
        assert tf_static.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert player.play(rate=10.0) == 3 + 3 + 6 + 1  # points, ground truth, /tf, /tf_static
        got: list = []
        latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(TFMessage, static, got.append, latched)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        ((parent, child, _, T),) = tf_from_msg(got[0])
        assert (parent, child) == (ALIGNED, "scannet_unaligned")
        np.testing.assert_allclose(T, scannet[2], atol=1e-6)  # ScanNet's axis_align_matrix
    finally:
        ex.remove_node(node)
        node.destroy_node()


def test_extract_into_aligned_frame_through_tf(sensor_bag, scannet, tmp_path):
    """/tf is recorded only half a period before and after each frame, so every cloud is moved
    with an interpolated sensor pose; the result is the aligned scan and its GT boxes."""
    ref, _, _ = scannet
    out = tmp_path / "aligned"
    opts = B.ExtractOptions(points_topic="/points", gt_topic="/ground_truth", target_frame=ALIGNED)
    s = B.extract_bag(sensor_bag, out, opts)
    assert (s.samples, s.written, s.labelled, s.messages) == (3, 3, 3, 3)
    assert s.frame_id == ALIGNED and s.class_names == list(ref.class_names)
    assert not (tmp_path / "aligned.partial").exists()
    ds = _dataset(out)
    assert ds.sample_ids == ["000000", "000001", "000002"] and ds.class_names == ref.class_names
    for i in range(3):
        x = ds[i]
        assert x.meta["bag"] == str(sensor_bag.resolve()) and x.meta["topic"] == "/points"
        assert x.meta["stamp_ns"] == START + i * PERIOD and x.meta["frame_id"] == "scannet_sensor"
        np.testing.assert_allclose(x.points, ref.points, atol=2e-5)  # float32 round trips
        _assert_boxes_match(x, ref, atol=2e-5)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["kind"] == "points" and meta["frame_id"] == ALIGNED and meta["samples"] == 3


def test_extract_without_transform_is_bit_exact(sensor_bag, scannet, tmp_path):
    ref, raw, M = scannet
    out = tmp_path / "raw"
    B.extract_bag(sensor_bag, out, B.ExtractOptions(points_topic="/points"))
    ds = _dataset(out)
    np.testing.assert_array_equal(ds[0].points, raw)  # frame 0: the file's points
    published = [m.msg for m in B.read_bag(sensor_bag, topics=["/points"])]
    from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array

    for i, msg in enumerate(published):
        np.testing.assert_array_equal(ds[i].points, pointcloud2_to_array(msg)[0])
    assert len(ds[0].gt_boxes) == 0 and ds.labels(0) is None  # no gt topic asked for

    # without TF: the node's gravity transform (frame 0's sensor frame is the unaligned one)
    grav = tmp_path / "gravity"
    opts = B.ExtractOptions(
        points_topic="/points",
        gt_topic="/ground_truth",
        gravity_transform=tuple(np.asarray(M).reshape(16)),
        every=3,
    )
    s = B.extract_bag(sensor_bag, grav, opts)
    assert (s.samples, s.messages, s.frame_id) == (1, 3, "scannet_sensor")
    x = _dataset(grav)[0]
    np.testing.assert_allclose(x.points, ref.points, atol=2e-5)
    _assert_boxes_match(x, ref, atol=2e-5)


def test_extract_every_and_resume(sensor_bag, tmp_path, monkeypatch):
    from sr3d_training.datasets import bag as fmt

    opts = B.ExtractOptions(points_topic="/points", gt_topic="/ground_truth", every=2)
    full = tmp_path / "full"
    B.extract_bag(sensor_bag, full, opts)
    assert _dataset(full).sample_ids == ["000000", "000002"]

    out = tmp_path / "resumed"
    real_add = fmt.BagDatasetWriter.add
    calls = []

    def add_then_interrupt(self, *a, **kw):
        real_add(self, *a, **kw)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(fmt.BagDatasetWriter, "add", add_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        B.extract_bag(sensor_bag, out, opts)
    monkeypatch.setattr(fmt.BagDatasetWriter, "add", real_add)
    partial = tmp_path / "resumed.partial"
    assert not out.exists() and partial.is_dir()
    assert [e["id"] for e in fmt.read_manifest(partial)] == ["000000"]
    with pytest.raises(FileExistsError, match="--resume"):
        B.extract_bag(sensor_bag, out, opts)
    other = B.ExtractOptions(points_topic="/points", every=2)
    with pytest.raises(ValueError, match="other options"):
        B.extract_bag(sensor_bag, out, other, resume=True)
    s = B.extract_bag(sensor_bag, out, opts, resume=True)
    assert (s.samples, s.written) == (2, 1) and not partial.exists()
    a, b = _dataset(full), _dataset(out)
    assert a.sample_ids == b.sample_ids
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i].points, b[i].points)
        np.testing.assert_array_equal(a[i].gt_boxes, b[i].gt_boxes)
    with pytest.raises(FileExistsError, match="already exists"):
        B.extract_bag(sensor_bag, out, opts)


@pytest.fixture(scope="module")
def kitti_bag(data_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("kitti_x") / "kitti"
    B.build_kitti_bag(path, data_root / "kitti" / "training", ["000000", "000010"], start_ns=START)
    return path


def test_extract_kitti_images(kitti_bag, data_root, tmp_path):
    from sr3d_training.datasets.kitti import KittiDataset

    kt = B.KittiBagTopics()
    opts = B.ExtractOptions(
        image_topic=kt.image, camera_info_topic=kt.camera_info, gt_topic=kt.ground_truth
    )
    s = B.extract_bag(kitti_bag, tmp_path / "img", opts)
    assert (s.samples, s.labelled, s.frame_id) == (2, 2, "camera_optical_frame")
    ds = _dataset(tmp_path / "img")
    assert ds.kind == "images"
    ref = KittiDataset(data_root / "kitti" / "training", frame_ids=["000000", "000010"])
    for i in range(2):
        x, r = ds[i], ref[i]
        np.testing.assert_array_equal(x.image, r.image)
        np.testing.assert_array_equal(x.camera.P, r.camera.P)
        assert (x.camera.width, x.camera.height) == (r.camera.width, r.camera.height)
        objects = ref.objects(ref.frame_ids[i])
        objects = objects.subset(objects.cared)
        assert ds.labels(i)["names"] == list(objects.names)
        np.testing.assert_allclose(x.meta["camera_boxes"], objects.camera_boxes(), atol=1e-9)
        _assert_boxes_match(x, r, atol=1e-5)


def test_extract_kitti_velodyne(kitti_bag, data_root, tmp_path):
    """Without a target frame the scan's xyz are the file's bit for bit; into camera_link (the
    camera body frame, z up) they follow the calibration, and the labels are the dataset's
    body-frame boxes."""
    from sr3d_ros.geometry.camera import OPTICAL_TO_BODY
    from sr3d_training.datasets.kitti import KittiDataset
    from sr3d_training.datasets.sample import load_points_bin

    kt = B.KittiBagTopics()
    root = data_root / "kitti" / "training"
    scan = load_points_bin(root / "velodyne" / "000000.bin", 4)
    B.extract_bag(kitti_bag, tmp_path / "velo", B.ExtractOptions(points_topic=kt.points))
    x = _dataset(tmp_path / "velo")[0]
    assert len(_dataset(tmp_path / "velo")) == 1  # 000010 has no scan
    np.testing.assert_array_equal(x.points[:, :3], scan[:, :3])
    assert not x.points[:, 3:].any()  # no colour fields: zeros

    opts = B.ExtractOptions(
        points_topic=kt.points, gt_topic=kt.ground_truth, target_frame="camera_link"
    )
    B.extract_bag(kitti_bag, tmp_path / "body", opts)
    y = _dataset(tmp_path / "body")[0]
    ref = KittiDataset(root, frame_ids=["000000"])
    T = np.eye(4)
    T[:3, :3] = OPTICAL_TO_BODY
    T = T @ ref.calib("000000").velo_to_rect
    expect = scan[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    np.testing.assert_allclose(y.points[:, :3], expect, atol=5e-5)  # rotation stored to 1e-7
    _assert_boxes_match(y, ref[0], atol=1e-5)


def test_cli_extract_and_errors(sensor_bag, tmp_path, capsys):
    from sr3d_ros.cli.bag import main

    out = tmp_path / "cli"
    argv = ["extract", str(sensor_bag), "--out", str(out), "--points-topic", "/points"]
    assert main([*argv, "--gt-topic", "/ground_truth", "--target-frame", ALIGNED, "-q"]) == 0
    assert "3 samples (3 now, 0 resumed), 3 with labels" in capsys.readouterr().out
    assert main([*argv, "-q"]) == 1  # exists
    assert "already exists" in capsys.readouterr().err

    bad = tmp_path / "bad"
    assert main(["extract", str(sensor_bag), "--out", str(bad), "--points-topic", "/nope"]) == 1
    err = capsys.readouterr().err
    assert str(sensor_bag) in err and "no topic /nope" in err and "/points" in err
    assert main([*argv[:3], str(bad), "--points-topic", "/ground_truth"]) == 1
    assert "expected sensor_msgs/msg/PointCloud2" in capsys.readouterr().err
    assert main([*argv[:3], str(bad), "--points-topic", "/points", "--target-frame", "map"]) == 1
    err = capsys.readouterr().err
    assert "no transform from 'scannet_sensor' to 'map'" in err
    assert not bad.exists() and not (tmp_path / "bad.partial").exists()
    with pytest.raises(SystemExit) as e:  # usage: neither topic
        main(["extract", str(sensor_bag), "--out", str(bad)])
    assert e.value.code == 2
