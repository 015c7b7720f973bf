"""sr3d_ros.ros.bag + ``sr3d-bag``: MCAP bags of real scans, read back, played and recorded.

Bags hold real ScanNet scans (scene0000_00, scene0000_01; 81k points each) and a SUN RGB-D frame
with their ground truth. Play/record run through rclpy (in-process and as separate processes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

import rclpy  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402

from sr3d_ros.ros import bag as B  # noqa: E402
from sr3d_ros.ros.messages import detection3d_array_to_boxes  # noqa: E402
from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
START = 1_700_000_000_123_456_789
SCENES = ["scene0000_00", "scene0000_01"]


@pytest.fixture(scope="module")
def samples(data_root):
    return B.load_samples("scannet", data_root, SCENES)


@pytest.fixture(scope="module")
def scan_bag(samples, tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "scannet"
    summary = B.build_bag(path, samples, rate_hz=4.0, frame_id="scannet_map", start_ns=START)
    return path, summary


def test_typestore_knows_vision_msgs_with_upstream_hashes():
    from test_vision_msgs import UPSTREAM_RIHS01

    ts = B.make_typestore()
    for name, digest in UPSTREAM_RIHS01.items():
        assert ts.hash_rihs01(f"vision_msgs/msg/{name}") == "RIHS01_" + digest, name


def test_build_read_round_trip(scan_bag, samples):
    path, summary = scan_bag
    assert summary.frames == 2 and summary.period_ns == 250_000_000
    info = B.bag_info(path)
    assert info["topics"] == {
        "/points": {
            "type": "sensor_msgs/msg/PointCloud2",
            "count": 2,
            "frame_ids": ["scannet_map"],
        },
        "/ground_truth": {
            "type": "vision_msgs/msg/Detection3DArray",
            "count": 2,
            "frame_ids": ["scannet_map"],
        },
    }
    assert json.loads(info["custom_data"]["sr3d.sample_ids"]) == SCENES
    assert json.loads(info["custom_data"]["sr3d.class_names"]) == list(samples[0].class_names)
    assert (path / "metadata.yaml").is_file() and list(path.glob("*.mcap"))

    msgs = list(B.read_bag(path))
    assert sorted(m.topic for m in msgs) == sorted(["/points", "/ground_truth"] * 2)
    assert [m.timestamp_ns for m in msgs] == sorted(m.timestamp_ns for m in msgs)
    points = [m for m in msgs if m.topic == "/points"]
    gts = [m for m in msgs if m.topic == "/ground_truth"]
    for i, (p, g, s) in enumerate(zip(points, gts, samples)):
        t = START + i * 250_000_000
        assert p.timestamp_ns == g.timestamp_ns == t
        for m in (p.msg, g.msg):
            assert m.header.frame_id == "scannet_map"
            assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == t
        pts, cinfo = pointcloud2_to_array(p.msg)
        assert cinfo.has_color and cinfo.color_source == "rgb"
        np.testing.assert_array_equal(pts, s.points)  # exact: float32 xyz, integral rgb
        boxes, scores, names = detection3d_array_to_boxes(g.msg)
        np.testing.assert_allclose(boxes, s.gt_boxes, atol=1e-6)
        assert names == [s.class_names[k] for k in s.gt_labels]
        assert np.all(scores == 1.0)
        # the same bytes read by rclpy's own deserialiser (wire compatibility of the two stacks)
        from sensor_msgs.msg import PointCloud2
        from vision_msgs.msg import Detection3DArray

        rc = deserialize_message(p.raw, PointCloud2)
        np.testing.assert_array_equal(pointcloud2_to_array(rc)[0], s.points)
        rg = deserialize_message(g.raw, Detection3DArray)
        np.testing.assert_allclose(detection3d_array_to_boxes(rg)[0], s.gt_boxes, atol=1e-6)
        assert rg.detections[0].header.frame_id == "scannet_map"
    assert list(B.read_bag(path, topics=["/nothing"])) == []


def test_sunrgbd_bag_keeps_yaw(data_root, tmp_path):
    s = B.load_samples("sunrgbd", data_root, ["000001"])
    B.build_bag(tmp_path / "sun", s, rate_hz=1.0, frame_id="upright_depth", start_ns=START)
    (gt,) = [m for m in B.read_bag(tmp_path / "sun") if m.topic == "/ground_truth"]
    boxes, _, _names = detection3d_array_to_boxes(gt.msg)
    np.testing.assert_allclose(boxes[:, :6], s[0].gt_boxes[:, :6], atol=1e-6)
    np.testing.assert_allclose(
        np.angle(np.exp(1j * (boxes[:, 6] - s[0].gt_boxes[:, 6]))), 0, atol=1e-6
    )


def test_build_errors(samples, tmp_path, data_root):
    with pytest.raises(ValueError):
        B.build_bag(tmp_path / "a", samples, rate_hz=0)
    with pytest.raises(ValueError):
        B.build_bag(tmp_path / "b", [])
    with pytest.raises(ValueError, match="unknown dataset"):
        B.load_samples("kitti", data_root, ["0"])
    with pytest.raises(FileNotFoundError):
        B.load_samples("scannet", data_root, ["scene9999_99"])
    B.build_bag(tmp_path / "c", samples[:1])
    with pytest.raises(Exception, match="exists"):
        B.build_bag(tmp_path / "c", samples[:1])


# ---------------------------------------------------------------------------------------------
# rclpy


def _by_topic(path, rename=None):
    out = {}
    for m in B.read_bag(path, deserialize=False):
        out.setdefault((rename or {}).get(m.topic, m.topic), []).append(m)
    return out


def test_play_record_in_process(ros, scan_bag, tmp_path):
    """BagPlayer -> DDS -> BagRecorder: the recorded bytes equal the bag's, in order, and the
    playback keeps the bag's timing (scaled by rate)."""
    ctx, ex = ros
    path, _ = scan_bag
    ns = f"/sr3d_bag_{uuid.uuid4().hex[:8]}"
    remap = {"/points": f"{ns}/points", "/ground_truth": f"{ns}/ground_truth"}
    player_node = rclpy.create_node("player", context=ctx)
    rec_node = rclpy.create_node("recorder", context=ctx)
    ex.add_node(player_node)
    ex.add_node(rec_node)
    try:
        player = B.BagPlayer(player_node, path, remap=remap)
        rec = B.BagRecorder(rec_node, tmp_path / "rec", list(remap.values()))
        assert rec.wait_subscribed(10) and player.wait_for_subscribers(10)
        t0 = time.monotonic()
        assert player.play(rate=2.0) == 4  # bag spans 0.25 s -> 0.125 s at rate 2
        assert time.monotonic() - t0 >= 0.12
        deadline = time.monotonic() + 10
        while sum(rec.counts.values()) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rec.close() == {remap["/points"]: 2, remap["/ground_truth"]: 2}
    finally:
        ex.remove_node(player_node)
        ex.remove_node(rec_node)
        player_node.destroy_node()
        rec_node.destroy_node()
    orig = _by_topic(path)
    got = _by_topic(tmp_path / "rec", {v: k for k, v in remap.items()})
    assert_same_messages(got, orig)
    info = B.bag_info(tmp_path / "rec")
    assert info["topics"][remap["/points"]]["type"] == "sensor_msgs/msg/PointCloud2"
    assert info["chunks"]["with_crc"] == info["chunks"]["count"] > 0  # recorded with CRCs
    assert not info["chunks"]["corrupt"]
    stamps = [m.timestamp_ns for m in got["/points"]]
    assert 0.05e9 < stamps[1] - stamps[0] < 2e9  # receive times, ~0.125 s apart


def same_cdr(got: bytes, orig: bytes) -> bool:
    """Equal CDR messages: same encapsulation kind and body; a sender may pad the body to a
    multiple of 4 bytes (Fast DDS does between processes, noting it in the options bytes)."""
    pad = len(got) - len(orig)
    return (
        got[:2] == orig[:2]
        and 0 <= pad < 4
        and got[4 : len(orig)] == orig[4:]
        and not any(got[len(orig) :])
    )


def assert_same_messages(got, orig):
    assert {t: len(got.get(t, [])) for t in orig} == {t: len(v) for t, v in orig.items()}
    for t in orig:
        for a, b in zip(got[t], orig[t]):
            assert same_cdr(a.raw, b.raw), t


def _env():
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    return env


def _points_only(ns):
    """sr3d-bag play arguments: only /points, published as ``<ns>/points`` once subscribed."""
    return ("--topics", "/points", "--remap", f"/points:={ns}/points", "--wait-subscribers", "20")


def _bag_cmd(*args):
    return [sys.executable, "-m", "sr3d_ros.cli.bag", *args]


def _run_bag(*args):
    """``sr3d-bag ARGS`` in a child process, run to the end (output captured as text)."""
    return subprocess.run(
        _bag_cmd(*args), env=_env(), capture_output=True, text=True, timeout=120, cwd=REPO
    )


def _start_bag(*args):
    """``sr3d-bag ARGS`` started in a child process (stdout + stderr piped, as text)."""
    return subprocess.Popen(
        _bag_cmd(*args),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )


def test_cli_build_info(tmp_path, data_root, capsys):
    from sr3d_ros.cli.bag import main

    out = tmp_path / "cli_bag"
    assert (
        main(
            [
                "build",
                str(out),
                "--ids",
                "scene0000_02",
                "--data-root",
                str(data_root),
                "--rate",
                "2",
                "--frame-id",
                "cam",
            ]
        )
        == 0
    )
    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["topics"]["/points"]["count"] == 1
    assert main(["build", str(out), "--ids", "scene0000_02", "--data-root", str(data_root)]) == 1
    assert main(["info", str(tmp_path / "missing")]) == 1


def test_cli_play_and_record_processes(ros, scan_bag, tmp_path):
    """``sr3d-bag play`` in one process -> in-process recorder; then in-process player ->
    ``sr3d-bag record`` in another process, stopped with SIGINT (bag finished, exit 0)."""
    ctx, ex = ros
    path, _ = scan_bag
    ns = f"/sr3d_bag_{uuid.uuid4().hex[:8]}"
    rec_node = rclpy.create_node("recorder_cli_test", context=ctx)
    ex.add_node(rec_node)
    rec = B.BagRecorder(
        rec_node,
        tmp_path / "from_cli",
        [f"{ns}/points", f"{ns}/ground_truth"],
        types={
            f"{ns}/points": "sensor_msgs/msg/PointCloud2",
            f"{ns}/ground_truth": "vision_msgs/msg/Detection3DArray",
        },
    )
    try:
        proc = _run_bag(
            "play",
            str(path),
            "--rate",
            "2",
            "--remap",
            f"/points:={ns}/points",
            "--remap",
            f"/ground_truth:={ns}/ground_truth",
            "--wait-subscribers",
            "20",
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "published 4 messages" in proc.stdout
        deadline = time.monotonic() + 10
        while sum(rec.counts.values()) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rec.close() == {f"{ns}/points": 2, f"{ns}/ground_truth": 2}
    finally:
        ex.remove_node(rec_node)
        rec_node.destroy_node()
    got = _by_topic(
        tmp_path / "from_cli", {f"{ns}/points": "/points", f"{ns}/ground_truth": "/ground_truth"}
    )
    orig = _by_topic(path)
    assert_same_messages(got, orig)

    # record in a separate process
    out = tmp_path / "recorded_by_cli"
    ns2 = f"/sr3d_bag_{uuid.uuid4().hex[:8]}"
    proc = _start_bag("record", str(out), f"{ns2}/points", f"{ns2}/ground_truth")
    pnode = rclpy.create_node("player_cli_test", context=ctx)
    ex.add_node(pnode)
    try:
        player = B.BagPlayer(
            pnode, path, remap={"/points": f"{ns2}/points", "/ground_truth": f"{ns2}/ground_truth"}
        )
        assert player.wait_for_subscribers(30), (
            proc.stdout.read() if proc.poll() is not None else ""
        )
        time.sleep(0.3)
        player.play(rate=4.0)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, text
    finally:
        if proc.poll() is None:
            proc.kill()
        ex.remove_node(pnode)
        pnode.destroy_node()
    assert (out / "metadata.yaml").is_file()
    got = _by_topic(out, {f"{ns2}/points": "/points", f"{ns2}/ground_truth": "/ground_truth"})
    assert_same_messages(got, orig)


def _clock_ns(msg):
    return msg.clock.sec * 1_000_000_000 + msg.clock.nanosec


def test_cli_play_clock_publishes_bag_time(ros, scan_bag):
    """``sr3d-bag play --clock``: a subscriber on /clock sees the bag's timestamps (the exact stamp
    of each message, interpolated bag time in between, in order), and a node with use_sim_time
    ends up at the bag's time."""
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import PointCloud2

    ctx, ex = ros
    path, _summary = scan_bag
    bag_stamps = sorted({m.timestamp_ns for m in B.read_bag(path, deserialize=False)})
    assert bag_stamps == [START, START + 250_000_000]
    ns = f"/sr3d_bag_{uuid.uuid4().hex[:8]}"
    node = rclpy.create_node(f"clock_test_{uuid.uuid4().hex[:6]}", context=ctx)
    sim = rclpy.create_node(
        f"sim_time_{uuid.uuid4().hex[:6]}",
        context=ctx,
        parameter_overrides=[Parameter("use_sim_time", value=True)],
    )
    clocks, clouds = [], []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Clock, "/clock", lambda m: clocks.append(_clock_ns(m)), qos)
    node.create_subscription(PointCloud2, f"{ns}/points", clouds.append, qos, raw=True)
    ex.add_node(node)
    ex.add_node(sim)
    try:
        proc = _run_bag(
            "play",
            str(path),
            "--clock",
            "--rate",
            "0.5",
            *_points_only(ns),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "published 2 messages" in proc.stdout and "clock messages on /clock" in proc.stdout
        deadline = time.monotonic() + 10
        while (
            len(clouds) < 2 or START + 250_000_000 not in clocks
        ) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(clouds) == 2
        ours = [t for t in clocks if START <= t <= START + 250_000_000]  # ignore foreign clocks
        assert set(bag_stamps) <= set(ours), ours
        assert ours == sorted(ours)
        # 0.5 s of wall time between the two messages at 40 Hz: interpolated ticks in between
        assert sum(START < t < START + 250_000_000 for t in ours) >= 5, ours
        deadline = time.monotonic() + 5
        while sim.get_clock().now().nanoseconds < START and time.monotonic() < deadline:
            time.sleep(0.02)
        assert START <= sim.get_clock().now().nanoseconds <= START + 250_000_000
    finally:
        for n in (node, sim):
            ex.remove_node(n)
            n.destroy_node()


def test_cli_play_loop_replays_until_stopped(ros, scan_bag):
    """``sr3d-bag play --loop``: the bag is published at least twice over (same bytes, bag order)
    within a bounded time; SIGINT then stops it with exit 0."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    ctx, ex = ros
    path, _ = scan_bag
    orig = [m.raw for m in B.read_bag(path, topics=["/points"], deserialize=False)]
    ns = f"/sr3d_bag_{uuid.uuid4().hex[:8]}"
    node = rclpy.create_node(f"loop_test_{uuid.uuid4().hex[:6]}", context=ctx)
    got = []
    node.create_subscription(
        PointCloud2,
        f"{ns}/points",
        got.append,
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
        raw=True,
    )
    ex.add_node(node)
    proc = _start_bag(
        "play",
        str(path),
        "--loop",
        "--rate",
        "1",
        *_points_only(ns),
    )
    try:
        deadline = time.monotonic() + 60
        while len(got) < 2 * len(orig) + 1 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.02)
        assert len(got) >= 2 * len(orig) + 1, f"{len(got)} messages in 60 s"
        assert proc.poll() is None  # still looping
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, text
        n = int(text.split("published ")[1].split()[0])
        assert n >= 2 * len(orig) + 1, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ex.remove_node(node)
        node.destroy_node()
    for k in range(2 * len(orig)):  # pass 1, pass 2, ...: the bag's messages in bag order
        assert same_cdr(bytes(got[k]), orig[k % len(orig)]), k


def test_chunk_crcs_written_and_corruption_reported(ros, scan_bag, tmp_path, capsys):
    """Issue 13 #6: built bags carry chunk CRCs; a byte flipped inside a chunk, or a truncated
    file, is reported by `sr3d-bag info` (exit 1, the chunk and its offset) and refused by the
    player before anything is published."""
    import shutil

    from sr3d_ros.cli.bag import main as bag_main
    from sr3d_ros.ros.bag.integrity import BagIntegrityError, _chunks, check_bag

    scan_bag, _ = scan_bag
    (report,) = check_bag(scan_bag)
    assert report.chunks > 0 and report.with_crc == report.chunks and not report.problems
    assert bag_main(["info", str(scan_bag)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["chunks"]["with_crc"] == info["chunks"]["count"] > 0

    bad = tmp_path / "bad"
    shutil.copytree(scan_bag, bad)
    (mcap,) = sorted(bad.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    pos, _, rec, rlen, _, _ = _chunks(data, mcap)[-1]
    data[rec + rlen // 2] ^= 0xFF  # a flipped byte in the middle of the last chunk's messages
    mcap.write_bytes(bytes(data))
    assert bag_main(["info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "corrupt" in err and f"at byte {pos}" in err and mcap.name in err, err
    ctx, _ex = ros
    node = rclpy.create_node("crc_player", context=ctx)
    try:
        with pytest.raises(BagIntegrityError, match=f"chunk .* at byte {pos} is corrupt"):
            B.BagPlayer(node, bad)
        topics = {t for t, _ in node.get_publisher_names_and_types_by_node("crc_player", "/")}
        assert not topics & {"/points", "/ground_truth"}, topics
    finally:
        node.destroy_node()

    mcap.write_bytes(bytes(data[: rec + rlen // 2]))  # truncated in the middle of a chunk
    (report,) = check_bag(bad)
    assert report.problems and "truncated" in report.problems[0]
