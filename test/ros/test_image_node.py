"""The ``image_detector`` node on real KITTI frames (000007, 000036), in-process and as a process.

Model: a random-init monocular detector (size n, seed 0) saved with our checkpoint format via
the model API. Its outputs are meaningless but deterministic, so the node's detections are
compared exactly with a direct call of the same detector (``det(image, camera)``) on the same
pixels and camera; the score threshold is 0 so that every frame has boxes (``max_detections``).

A real publisher sends Image + CameraInfo (reliable, as the bag player); every test uses its own
namespace, and /diagnostics is remapped into it.
"""

from __future__ import annotations

import array
import io
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("one_torch_thread")]

import rclpy  # noqa: E402
from node_client import (  # noqa: E402
    NodeClient,
    close_all,
    process_env,
    record_ros_logs,
    start_node,
)
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import LabelInfo  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from sr3d_ros.demo.kitti import random_mono_checkpoint  # noqa: E402
from sr3d_ros.demo.node import node_command  # noqa: E402
from sr3d_ros.geometry.camera import PinholeCamera  # noqa: E402
from sr3d_ros.ros.image_node import ImageDetectorNode  # noqa: E402
from sr3d_ros.ros.messages import optical_frame_poses  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MAX_DET = 20
FRAME = "camera_optical_frame"


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_mono_checkpoint(tmp_path_factory.mktemp("ckpt") / "mono_n_random.pt")


@pytest.fixture(scope="module")
def detector(ckpt):
    from sr3d_ros.inference import load_detector

    return load_detector(ckpt, device="cpu", score_threshold=0.0, max_detections=MAX_DET)


@pytest.fixture(scope="module")
def frames(data_root):
    """{id: (rgb uint8 (H, W, 3), PinholeCamera of P2)} of two real KITTI frames."""
    from sr3d_training.datasets.kitti import load_kitti_image, read_kitti_calib

    root = data_root / "kitti/training"
    out = {}
    for f in ("000007", "000036"):
        rgb = load_kitti_image(root / f"image_2/{f}.png")
        cam = read_kitti_calib(root / f"calib/{f}.txt").camera(rgb.shape[1], rgb.shape[0])
        out[f] = (rgb, cam)
    return out


_EXPECTED: dict = {}


def expected(detector, rgb, cam):
    """detector(rgb, cam), once per input (CPU inference is the slow part of these tests)."""
    key = (rgb.ctypes.data, rgb.shape, cam.P.tobytes(), id(detector))
    if key not in _EXPECTED:
        _EXPECTED[key] = detector(rgb, cam)
    return _EXPECTED[key]


@pytest.fixture(scope="module")
def ros(ros_module):
    return ros_module


def header(sec, nanosec=0, frame=FRAME):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def image_msg(rgb, hdr, encoding="rgb8"):
    from sr3d_ros.ros.image_msgs import rgb_to_image

    return rgb_to_image(rgb, hdr, encoding)


def info_msg(cam, hdr, width=None, height=None):
    m = CameraInfo()
    m.header = hdr
    m.width = cam.width if width is None else width
    m.height = cam.height if height is None else height
    m.k = cam.P[:, :3].ravel().tolist()
    m.p = cam.P.ravel().tolist()
    m.r = np.eye(3).ravel().tolist()
    m.distortion_model = "plumb_bob"
    m.d = [0.0] * 5
    return m


class Client(NodeClient):
    """Publishes images + CameraInfo into a node and collects everything it publishes."""

    def __init__(self, ctx, ex, ns, compressed=False):
        image = (
            (CompressedImage, "input/image/compressed") if compressed else (Image, "input/image")
        )
        inputs = {"image": image, "camera_info": (CameraInfo, "input/camera_info")}
        super().__init__(ctx, ex, ns, "image_detector", inputs)
        self.pub, self.pub_info = self.pubs["image"], self.pubs["camera_info"]
        self.overlays = []
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(
            Image, f"{self.base}/output/image_overlay", self.overlays.append, qos
        )

    def send(self, image, info=None):
        if info is not None:
            self.pub_info.publish(info)
        self.pub.publish(image)

    def diagnostics_for(self, sec, timeout=20.0):
        """The node's diagnostics status of the input stamped ``sec`` (the latest)."""

        def find():
            for d in reversed(self.diagnostics):
                kv = {v.key: v.value for v in d.status[0].values}
                if kv.get("input_stamp", "").startswith(f"{sec}."):
                    return d.status[0]
            return None

        self.wait(lambda: find() is not None, timeout, f"diagnostics of stamp {sec}")
        return find()


def make_node(ctx, ex, ckpt, ns, **params):
    values = {
        "checkpoint": str(ckpt),
        "device": "cpu",
        "score_threshold": 0.0,
        "max_detections": MAX_DET,
        "num_threads": 1,
    }
    values.update(params)
    return start_node(ImageDetectorNode, ctx, ex, ns, values)


def assert_same_detections(msg, det):
    """The node's message holds ``det``'s boxes, in the optical frame, in the same order."""
    assert len(msg.detections) == len(det) > 0
    poses = optical_frame_poses(det.boxes)
    c = np.array([[p.x, p.y, p.z] for p in (d.bbox.center.position for d in msg.detections)])
    s = np.array([[d.bbox.size.x, d.bbox.size.y, d.bbox.size.z] for d in msg.detections])
    q = np.array(
        [[o.x, o.y, o.z, o.w] for o in (d.bbox.center.orientation for d in msg.detections)]
    )
    np.testing.assert_allclose(c, poses.centers, atol=1e-4)
    np.testing.assert_allclose(s, poses.sizes, atol=1e-4)
    np.testing.assert_allclose(np.abs((q * poses.quaternions).sum(1)), 1.0, atol=1e-5)
    scores = [d.results[0].hypothesis.score for d in msg.detections]
    np.testing.assert_allclose(scores, det.scores.numpy(), rtol=1e-5)
    assert [d.results[0].hypothesis.class_id for d in msg.detections] == det.names


# ---------------------------------------------------------------------------------------------
# the tests


def test_real_publisher_detections_equal_the_python_api(ros, ckpt, detector, frames, ns):
    """KITTI images + their CameraInfo (P2 with the baseline term) from a real publisher: one
    Detection3DArray per image with the image's header, the boxes the Python API gives on the
    same frame, markers (DELETEALL first) and OK diagnostics; LabelInfo names the classes."""
    ctx, ex = ros
    node = make_node(ctx, ex, ckpt, ns)
    cli = Client(ctx, ex, ns)
    got = []
    late = rclpy.create_node(f"li_{uuid.uuid4().hex[:6]}", context=ctx)
    qos = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    late.create_subscription(LabelInfo, f"{ns}/image_detector/output/label_info", got.append, qos)
    ex.add_node(late)
    try:
        cli.wait_matched()
        for k, (fid, (rgb, cam)) in enumerate(frames.items()):
            h = header(100 + k, 250_000_000)
            cli.send(image_msg(rgb, h), info_msg(cam, h))
            msg = cli.result_for(100 + k, 250_000_000)
            assert msg.header == h and all(d.header == h for d in msg.detections), fid
            assert_same_detections(msg, expected(detector, rgb, cam))
            st = cli.diagnostics_for(100 + k)
            kv = {v.key: v.value for v in st.values}
            assert st.level == b"\x00", st.message
            assert kv["image_width"] == str(rgb.shape[1]) and kv["image_encoding"] == "rgb8"
            assert "points_in" not in kv and float(kv["inference_ms"]) > 0
        cli.wait(lambda: len(cli.markers) >= 2, 10, "markers")
        mk = cli.markers[-1].markers
        assert mk[0].action == Marker.DELETEALL and len(mk) == 2 * MAX_DET + 1
        assert mk[1].header.frame_id == FRAME and mk[1].scale.x == pytest.approx(0.05)
        cli.wait(lambda: got, 10, "label info")
        assert [c.class_name for c in got[0].class_map] == list(detector.class_names)
        assert node.stats["processed"] == 2 and node.stats["no_camera_info"] == 0
    finally:
        close_all(ex, cli, late, node)


def test_image_before_camera_info_is_dropped_with_a_warning(
    ros, ckpt, detector, frames, ns, monkeypatch
):
    """Images before any CameraInfo (and with one of another frame_id only) are dropped: no
    detections, WARN diagnostics, one warning per reason per throttle period; once a CameraInfo
    of the image's frame comes, the image is detected."""
    emitted = record_ros_logs(monkeypatch)
    ctx, ex = ros
    node = make_node(ctx, ex, ckpt, ns)
    cli = Client(ctx, ex, ns)
    rgb, cam = frames["000007"]
    try:
        cli.wait_matched()
        for k in range(3):  # no CameraInfo yet: dropped, one warning per period
            cli.send(image_msg(rgb, header(200 + k)))
            st = cli.diagnostics_for(200 + k)
            assert st.level == b"\x01" and "no CameraInfo received yet" in st.message, st.message
        assert node.stats["no_camera_info"] == 3
        warned = [m for _, n, m in emitted if n == node.get_logger().name and "dropped" in m]
        assert len(warned) == 1, warned  # 3 images within the throttle period: one warning
        assert not cli.detections and node.stats["processed"] == 0
        # a CameraInfo of another frame_id does not pair either
        cli.send(image_msg(rgb, header(203)), info_msg(cam, header(203, frame="other_camera")))
        st = cli.diagnostics_for(203)
        assert "no CameraInfo for frame_id 'camera_optical_frame'" in st.message, st.message
        assert "'other_camera'" in st.message
        h = header(204)
        cli.send(image_msg(rgb, h), info_msg(cam, h))
        assert_same_detections(cli.result_for(204), expected(detector, rgb, cam))
        assert [m.header.stamp.sec for m in cli.detections] == [204]
    finally:
        close_all(ex, cli, node)


def test_pairing_by_stamp_within_a_tolerance(ros, ckpt, detector, frames, ns):
    """camera_info_tolerance > 0: each image gets the CameraInfo closest in time (the other
    frame's calibration differs), and none when all are farther away than the tolerance."""
    ctx, ex = ros
    node = make_node(ctx, ex, ckpt, ns, camera_info_tolerance=0.05)
    cli = Client(ctx, ex, ns)
    (rgb, cam7), (_, cam36) = frames["000007"], frames["000036"]
    try:
        cli.wait_matched()
        cli.pub_info.publish(info_msg(cam7, header(300, 10_000_000)))
        time.sleep(0.3)  # the publisher keeps one message: let the first one arrive
        cli.pub_info.publish(info_msg(cam36, header(301, 0)))
        time.sleep(0.3)
        cli.send(image_msg(rgb, header(300)))  # 10 ms from cam7's info: paired with it
        assert_same_detections(cli.result_for(300), expected(detector, rgb, cam7))
        cli.send(image_msg(rgb, header(305)))  # 4 s from the nearest: dropped
        st = cli.diagnostics_for(305)
        assert "within camera_info_tolerance 0.05 s" in st.message, st.message
        assert node.stats["no_camera_info"] == 1
    finally:
        close_all(ex, cli, node)


def test_mismatched_sizes(ros, ckpt, detector, frames, ns):
    """A half-size image with the full-size CameraInfo: the camera is scaled (the API on the same
    pixels with the resized camera); an image of another aspect ratio is bad input: a warning
    and an empty result with its header."""
    from PIL import Image as PILImage

    ctx, ex = ros
    node = make_node(ctx, ex, ckpt, ns)
    cli = Client(ctx, ex, ns)
    rgb, cam = frames["000036"]
    small = np.array(PILImage.fromarray(rgb).resize((621, 188), PILImage.BILINEAR))
    try:
        cli.wait_matched()
        h = header(400)
        cli.send(image_msg(small, h), info_msg(cam, h))
        det = expected(detector, np.ascontiguousarray(small), cam.resized(621, 188))
        assert_same_detections(cli.result_for(400), det)
        crop = np.ascontiguousarray(rgb[:, :600])
        h = header(401)
        cli.send(image_msg(crop, h), info_msg(cam, h))
        msg = cli.result_for(401)
        assert msg.header == h and len(msg.detections) == 0
        st = cli.diagnostics_for(401)
        assert st.level == b"\x01" and "cannot be scaled" in st.message, st.message
        assert node.stats["bad_input"] == 1
    finally:
        close_all(ex, cli, node)


def _raw(px, hdr, encoding, pad=0, bigendian=False):
    """An Image message of ``px`` (H, W, C) uint8 / uint16 with ``pad`` bytes per row."""
    h, w = px.shape[:2]
    if px.dtype == np.uint16:
        px = px.astype(">u2" if bigendian else "<u2")
    rows = np.ascontiguousarray(px).reshape(h, -1).view(np.uint8)
    data = np.concatenate([rows, np.zeros((h, pad), np.uint8)], 1)
    m = Image()
    m.header = hdr
    m.height, m.width, m.encoding, m.is_bigendian, m.step = (
        h,
        w,
        encoding,
        int(bigendian),
        data.shape[1],
    )
    m.data = array.array("B", data.tobytes())
    return m


def test_every_encoding(ros, ckpt, detector, frames, ns):
    """rgb8 / bgr8 / rgba8 / bgra8 (padded rows) / rgb16 big-endian give the rgb8 result; mono8
    gives the API's result on the grey image in three channels."""
    from PIL import Image as PILImage

    ctx, ex = ros
    node = make_node(ctx, ex, ckpt, ns)
    cli = Client(ctx, ex, ns)
    rgb, cam = frames["000007"]
    alpha = np.full(rgb.shape[:2] + (1,), 9, np.uint8)
    cases = {
        "rgb8": (rgb, {}),
        "bgr8": (rgb[:, :, ::-1], {"pad": 6}),
        "rgba8": (np.concatenate([rgb, alpha], 2), {}),
        "bgra8": (np.concatenate([rgb[:, :, ::-1], alpha], 2), {"pad": 4}),
        "rgb16": (rgb.astype(np.uint16) * 257, {"bigendian": True}),
    }
    try:
        cli.wait_matched()
        ref = expected(detector, rgb, cam)
        for k, (enc, (px, kw)) in enumerate(cases.items()):
            h = header(500 + k)
            cli.send(_raw(px, h, enc, **kw), info_msg(cam, h))
            assert_same_detections(cli.result_for(500 + k), ref)
        grey = np.asarray(PILImage.fromarray(rgb).convert("L"))
        h = header(510)
        cli.send(_raw(grey[:, :, None], h, "mono8", pad=3), info_msg(cam, h))
        three = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, 2))
        assert_same_detections(cli.result_for(510), expected(detector, three, cam))
    finally:
        close_all(ex, cli, node)


def test_corrupt_images_warn_and_publish_empty_results(ros, ckpt, detector, frames, ns):
    ctx, ex = ros
    node = make_node(ctx, ex, ckpt, ns)
    cli = Client(ctx, ex, ns)
    rgb, cam = frames["000007"]
    try:
        cli.wait_matched()
        cases = []
        m = image_msg(rgb, header(600, frame="bad_0"))
        m.step = 3 * rgb.shape[1] - 1  # step too small
        cases.append(("step", m))
        m = image_msg(rgb, header(601, frame="bad_1"))
        m.data = m.data[: len(m.data) // 2]  # data short
        cases.append(("data has", m))
        m = image_msg(rgb, header(602, frame="bad_2"))
        m.encoding = "yuv422"
        cases.append(("unsupported encoding", m))
        for i, (why, m) in enumerate(cases):
            cli.send(m, info_msg(cam, m.header))
            res = cli.result_for(600 + i)
            assert res.header.frame_id == f"bad_{i}" and len(res.detections) == 0, why
            st = cli.diagnostics_for(600 + i)
            assert st.level == b"\x01" and why in st.message, st.message
        assert node.stats["bad_input"] == len(cases) and node.stats["errors"] == 0
        cli.wait(lambda: len(cli.markers) >= len(cases), 10, "markers")
        assert all(len(m.markers) == 1 for m in cli.markers[: len(cases)])  # cleared
        h = header(699)  # still alive and detecting
        cli.send(image_msg(rgb, h), info_msg(cam, h))
        assert_same_detections(cli.result_for(699), expected(detector, rgb, cam))
    finally:
        close_all(ex, cli, node)


def test_compressed_transport_and_overlay(ros, ckpt, detector, frames, ns):
    """image_transport compressed: a JPEG gives the API's result on Pillow's decoding of it;
    publish_overlay: an rgb8 image with the input header and the boxes drawn on it."""
    from PIL import Image as PILImage

    from sr3d_ros.ros.image_msgs import image_to_rgb

    ctx, ex = ros
    node = make_node(ctx, ex, ckpt, ns, image_transport="compressed", publish_overlay=True)
    cli = Client(ctx, ex, ns, compressed=True)
    rgb, cam = frames["000036"]
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, "JPEG", quality=92)
    decoded = np.array(PILImage.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    try:
        cli.wait_matched()
        h = header(700)
        m = CompressedImage(header=h, format="rgb8; jpeg compressed bgr8")
        m.data = array.array("B", buf.getvalue())
        cli.send(m, info_msg(cam, h))
        assert_same_detections(cli.result_for(700), expected(detector, decoded, cam))
        cli.wait(lambda: cli.overlays, 20, "overlay")
        ov = cli.overlays[-1]
        assert ov.header == h and ov.encoding == "rgb8"
        drawn = image_to_rgb(ov)
        assert drawn.shape == rgb.shape
        assert 0 < np.mean(np.any(drawn != decoded, axis=2)) < 0.5  # boxes drawn, image kept
    finally:
        close_all(ex, cli, node)


# ---------------------------------------------------------------------------------------------
# as a process


@pytest.mark.parametrize("mode", ["sigint_twice", "sigterm"])
def test_node_process_detects_and_exits_zero(mode, ros, ckpt, detector, frames, ns, tmp_path):
    """``python -m sr3d_ros.ros.image_node``: detections over DDS equal the API's; Ctrl-C twice
    (the process group) or SIGTERM: exit 0, no traceback."""
    ctx, ex = ros
    log = tmp_path / "node.log"
    cmd = node_command(
        ns,
        {
            "checkpoint": ckpt,
            "device": "cpu",
            "score_threshold": 0.0,
            "max_detections": MAX_DET,
            "num_threads": 1,
        },
        {"/diagnostics": f"{ns}/diagnostics"},
        REPO / "config/image_detector.yaml",
        module="sr3d_ros.ros.image_node",
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            env=process_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    cli = Client(ctx, ex, ns)
    rgb, cam = frames["000007"]
    try:
        deadline = time.monotonic() + 90
        while cli.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        cli.wait_matched()
        msg = None
        for k in range(4):  # the node may match our publishers a moment after we see it: resend
            h = header(800, k)
            cli.send(image_msg(rgb, h), info_msg(cam, h))
            try:
                msg = cli.result_for(800, k, timeout=30)
                break
            except AssertionError:
                continue
        assert msg is not None, "no detections from the node process; its log:\n" + log.read_text()
        assert_same_detections(msg, expected(detector, rgb, cam))
        if mode == "sigint_twice":
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        text = log.read_text()
        assert rc == 0, text
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        close_all(ex, cli)


def test_pointcloud_node_refuses_a_mono_checkpoint(ckpt, ns):
    proc = subprocess.run(
        node_command(ns, {"checkpoint": ckpt, "device": "cpu"}),
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "a 'mono' checkpoint, but pointcloud_detector runs 'pointcloud' detectors" in out, out
    assert "image_detector" in out and "Traceback" not in out, out


def test_kitti_camera_geometry_is_the_api_camera(frames):
    """The CameraInfo the tests publish rebuilds the dataset camera exactly (no hidden offset)."""
    from sr3d_ros.geometry.camera_info import camera_setup

    for rgb, cam in frames.values():
        s = camera_setup(info_msg(cam, header(0)), rgb.shape[1], rgb.shape[0])
        assert isinstance(s.camera, PinholeCamera)
        np.testing.assert_array_equal(s.camera.P, cam.P)
