"""sr3d_ros.ros.messages, fast_msg, status_messages: Detection3DArray / MarkerArray / LabelInfo /
DiagnosticArray builders.

Boxes under test are real ground truth: ScanNet scene0000_00 (axis-aligned) and SUN RGB-D frame
000001 (with yaw), wrapped in :class:`Detections`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ros

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from sr3d_ros.detections import Detections  # noqa: E402
from sr3d_ros.frames import BoxPoses, boxes_from_gravity, transform_from_params  # noqa: E402
from sr3d_ros.ros import messages as M  # noqa: E402
from sr3d_ros.ros.fast_msg import fast_builder, point_list_builder  # noqa: E402
from sr3d_ros.ros.status_messages import diagnostics_msg, label_info_msg  # noqa: E402


def make_header(frame="camera_depth_optical_frame", sec=1_700_000_123, nsec=456_789_000):
    h = Header()
    h.frame_id = frame
    h.stamp.sec = sec
    h.stamp.nanosec = nsec
    return h


def as_detections(sample, top: float, bottom: float) -> Detections:
    """A sample's ground truth as Detections, scores evenly from ``top`` down to ``bottom``."""
    scores = np.linspace(top, bottom, len(sample.gt_boxes)).astype(np.float32)
    return Detections(
        torch.from_numpy(sample.gt_boxes),
        torch.from_numpy(scores),
        torch.from_numpy(sample.gt_labels),
        sample.class_names,
    )


@pytest.fixture(scope="module")
def scannet_det(data_root):
    from sr3d_training.datasets import load_scannet_scene

    s = load_scannet_scene(data_root / "scannet/scannet_instance_data", "scene0000_00")
    return as_detections(s, 0.95, 0.05)


@pytest.fixture(scope="module")
def sunrgbd_det(data_root):
    from sr3d_training.datasets import load_sunrgbd_frame

    s = load_sunrgbd_frame(data_root / "sunrgbd/sunrgbd_trainval", 1)
    assert len(s.gt_boxes) and np.abs(s.gt_boxes[:, 6]).max() > 0.05  # real yaw
    return as_detections(s, 0.9, 0.3)


def wrap(a):
    return np.angle(np.exp(1j * np.asarray(a)))


@pytest.mark.parametrize("which", ["scannet_det", "sunrgbd_det"])
def test_detection3d_array_contents(which, request):
    det = request.getfixturevalue(which)
    h = make_header()
    msg = M.detections_to_msg(det, h)
    boxes = det.boxes.numpy().astype(np.float64)
    assert msg.header == h and msg.header is not h
    assert len(msg.detections) == len(det)
    for i, d in enumerate(msg.detections):
        assert d.header.frame_id == h.frame_id and d.header.stamp == h.stamp
        c, s, o = d.bbox.center.position, d.bbox.size, d.bbox.center.orientation
        np.testing.assert_allclose([c.x, c.y, c.z], boxes[i, :3], atol=1e-6)
        np.testing.assert_allclose([s.x, s.y, s.z], boxes[i, 3:6], atol=1e-6)
        yaw = boxes[i, 6]
        np.testing.assert_allclose([o.x, o.y], 0.0, atol=1e-12)
        assert math.hypot(o.z, o.w) == pytest.approx(1.0)
        assert wrap(2 * math.atan2(o.z, o.w) - yaw) == pytest.approx(0.0, abs=1e-6)
        assert len(d.results) == 1
        hyp = d.results[0]
        assert hyp.hypothesis.class_id == det.names[i]
        assert hyp.hypothesis.score == pytest.approx(float(det.scores[i]))
        assert hyp.pose.pose == d.bbox.center
        assert not np.any(hyp.pose.covariance)
        assert d.id == ""
    # the caller's header object is never referenced
    h.frame_id = "changed"
    assert msg.header.frame_id == "camera_depth_optical_frame"
    assert msg.detections[0].header.frame_id == "camera_depth_optical_frame"


@pytest.mark.parametrize("which", ["scannet_det", "sunrgbd_det"])
def test_inverse_and_wire_round_trip(which, request):
    det = request.getfixturevalue(which)
    msg = M.detections_to_msg(det, make_header())
    wire = deserialize_message(serialize_message(msg), type(msg))
    assert wire == msg
    boxes, scores, names = M.detection3d_array_to_boxes(wire)
    ref = det.boxes.numpy()
    assert boxes.dtype == np.float32 and boxes.shape == ref.shape
    np.testing.assert_allclose(boxes[:, :6], ref[:, :6], atol=1e-6)
    np.testing.assert_allclose(wrap(boxes[:, 6] - ref[:, 6]), 0.0, atol=1e-6)
    np.testing.assert_allclose(scores, det.scores.numpy(), atol=1e-7)
    assert names == det.names


def test_empty_detections():
    h = make_header()
    empty = Detections.empty(("chair", "table"))
    msg = M.detections_to_msg(empty, h)
    assert msg.header == h and list(msg.detections) == []
    boxes, scores, names = M.detection3d_array_to_boxes(msg)
    assert boxes.shape == (0, 7) and scores.shape == (0,) and names == []
    mk = M.detections_to_markers(empty, h)
    assert len(mk.markers) == 1 and mk.markers[0].action == mk.markers[0].DELETEALL


@pytest.mark.parametrize("which", ["scannet_det", "sunrgbd_det"])
def test_markers(which, request):
    from visualization_msgs.msg import Marker

    det = request.getfixturevalue(which)
    h = make_header("map")
    arr = M.detections_to_markers(det, h, ns="objs", lifetime=0.25)
    mk = arr.markers
    assert len(mk) == 2 * len(det) + 1
    assert mk[0].action == Marker.DELETEALL and mk[0].header == h
    boxes = det.boxes.numpy().astype(np.float64)
    for i in range(len(det)):
        line, text = mk[1 + 2 * i], mk[2 + 2 * i]
        assert line.type == Marker.LINE_LIST and line.action == Marker.ADD
        assert (line.ns, line.id) == ("objs", i) and (text.ns, text.id) == ("objs/labels", i)
        assert line.header == h and text.header == h
        assert line.lifetime.sec == 0 and line.lifetime.nanosec == 250_000_000
        assert len(line.points) == 24  # 12 edges
        pts = np.array([[p.x, p.y, p.z] for p in line.points])
        seg = pts.reshape(12, 2, 3)
        lengths = np.sort(np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1))
        np.testing.assert_allclose(lengths, np.sort(np.repeat(boxes[i, 3:6], 4)), atol=1e-5)
        # every vertex is a corner: its offset from the centre, in box axes, is +-size/2
        c, yaw = boxes[i, :3], boxes[i, 6]
        rot = np.array(
            [[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]]
        )
        local = (pts - c) @ rot
        np.testing.assert_allclose(
            np.abs(local), np.broadcast_to(boxes[i, 3:6] / 2, local.shape), atol=1e-5
        )
        assert len({tuple(p) for p in np.round(pts, 6)}) == 8
        r, g, b = M.class_color(int(det.labels[i]))
        assert (line.color.r, line.color.g, line.color.b, line.color.a) == pytest.approx(
            (r, g, b, 1.0)
        )
        assert line.scale.x > 0
        assert text.type == Marker.TEXT_VIEW_FACING
        assert text.text == f"{det.names[i]} {float(det.scores[i]):.2f}"
        assert text.pose.position.z > c[2] + boxes[i, 5] / 2  # above the top face
        assert text.scale.z > 0 and text.color.a == 1.0
    # same class -> same colour, different classes -> different colours (fewer than 20 classes)
    by_label = {}
    for i in range(len(det)):
        col = mk[1 + 2 * i].color
        by_label.setdefault(int(det.labels[i]), set()).add((col.r, col.g, col.b))
    assert all(len(v) == 1 for v in by_label.values())
    assert len({next(iter(v)) for v in by_label.values()}) == len(by_label)
    wire = deserialize_message(serialize_message(arr), type(arr))
    assert wire == arr


def test_tilted_poses_are_published_as_full_rotations(sunrgbd_det):
    t = transform_from_params(None, [0.3, -0.25, 0.1], [0.2, 0.0, 1.1])
    poses = boxes_from_gravity(sunrgbd_det.boxes.numpy(), t)
    assert not poses.upright
    msg = M.detections_to_msg(sunrgbd_det, make_header(), poses)
    for i, d in enumerate(msg.detections):
        o, c = d.bbox.center.orientation, d.bbox.center.position
        q = np.array([o.x, o.y, o.z, o.w])
        np.testing.assert_allclose(q, poses.quaternions[i], atol=1e-12)
        np.testing.assert_allclose([c.x, c.y, c.z], poses.centers[i], atol=1e-12)
    mk = M.detections_to_markers(sunrgbd_det, make_header(), poses=poses)
    pts = np.array([[p.x, p.y, p.z] for p in mk.markers[1].points])
    from sr3d_ros.frames import box_corners

    corners = box_corners(poses)[0]
    assert all(np.min(np.linalg.norm(corners - p, axis=1)) < 1e-9 for p in pts)
    with pytest.raises(ValueError, match="poses"):
        M.detections_to_msg(sunrgbd_det, make_header(), BoxPoses.from_boxes(np.zeros((1, 7))))


def test_fast_builder_equals_generated_constructor():
    """fast_builder must give exactly what the rosidl constructor gives (defaults and values)."""
    from geometry_msgs.msg import Point, Pose, PoseWithCovariance
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose
    from visualization_msgs.msg import Marker, MarkerArray

    for cls in (
        Marker,
        MarkerArray,
        Detection3D,
        Detection3DArray,
        ObjectHypothesisWithPose,
        Pose,
        PoseWithCovariance,
        Point,
        Header,
    ):
        fast = fast_builder(cls)()
        ref = cls()
        assert fast == ref, cls
        # (byte comparison would be flaky: CDR alignment padding is not zeroed by the serialiser)
        assert deserialize_message(serialize_message(fast), cls) == ref
        for slot in cls.__slots__:  # no mutable default shared with another instance
            v = getattr(fast, slot)
            if isinstance(v, (list, np.ndarray)) or hasattr(v, "get_fields_and_field_types"):
                assert v is not getattr(fast_builder(cls)(), slot)
    m = fast_builder(Marker)(id=7, ns="x", text="hello", type=Marker.CUBE)
    assert m == Marker(id=7, ns="x", text="hello", type=Marker.CUBE)
    with pytest.raises(TypeError):
        fast_builder(Point)(w=1.0)
    pts = point_list_builder()([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1, 2)
    assert pts == [Point(x=1.0, y=2.0, z=3.0), Point(x=4.0, y=5.0, z=6.0)]


def test_label_info():
    from vision_msgs.msg import LabelInfo

    from sr3d_ros.config import SCANNET_CLASSES

    h = make_header("")
    msg = label_info_msg(SCANNET_CLASSES, h, threshold=0.25)
    assert isinstance(msg, LabelInfo) and msg.header == h
    assert [(c.class_id, c.class_name) for c in msg.class_map] == list(enumerate(SCANNET_CLASSES))
    assert msg.threshold == pytest.approx(0.25)
    assert deserialize_message(serialize_message(msg), LabelInfo) == msg


def test_diagnostics():
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    stamp = Time(sec=10, nanosec=5)
    msg = diagnostics_msg(
        stamp,
        "pointcloud_detector: detector",
        "cpu",
        "WARN",
        "slow",
        {"convert": 1.23456, "backbone": 500.0},
        points_in=81369,
        detections_out=12,
        frames_dropped=3,
        extra={"gpu": False, "fps": 1.5},
    )
    assert isinstance(msg, DiagnosticArray) and msg.header.stamp == stamp
    (st,) = msg.status
    assert st.level == DiagnosticStatus.WARN and st.message == "slow" and st.hardware_id == "cpu"
    kv = {v.key: v.value for v in st.values}
    assert kv == {
        "points_in": "81369",
        "detections_out": "12",
        "frames_dropped": "3",
        "convert_ms": "1.235",
        "backbone_ms": "500.000",
        "gpu": "false",
        "fps": "1.500",
    }
    for lvl, code in (("OK", DiagnosticStatus.OK), (2, DiagnosticStatus.ERROR)):
        assert diagnostics_msg(stamp, "n", "h", lvl, "").status[0].level == code
    with pytest.raises(ValueError):
        diagnostics_msg(stamp, "n", "h", "BAD", "")
    assert deserialize_message(serialize_message(msg), DiagnosticArray) == msg


def test_bad_detections_rejected():
    det = Detections(torch.zeros((2, 7)), torch.zeros(2), torch.tensor([0, 5]), ("a", "b"))
    with pytest.raises(ValueError, match="labels"):
        M.detections_to_msg(det, make_header())
    det = Detections(torch.zeros((2, 7)), torch.zeros(3), torch.tensor([0, 1]), ("a", "b"))
    with pytest.raises(ValueError, match="disagree"):
        M.detections_to_markers(det, make_header())
