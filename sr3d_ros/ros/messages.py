"""Message builders for the detector node: pure functions from :class:`Detections` + a header.

* :func:`detections_to_msg` -> ``vision_msgs/Detection3DArray``
* :func:`detections_to_markers` -> ``visualization_msgs/MarkerArray`` (DELETEALL, then per box a
  LINE_LIST of its 12 edges and a TEXT_VIEW_FACING label)
* :func:`label_info_msg` -> ``vision_msgs/LabelInfo``
* :func:`diagnostics_msg` -> ``diagnostic_msgs/DiagnosticArray``
* :func:`detection3d_array_to_boxes`: the inverse of :func:`detections_to_msg`, for tools and tests
  (duck-typed: works on rclpy messages and on ``rosbags``-deserialised ones).

Box convention: ``(x, y, z, dx, dy, dz, yaw)``, metres / radians, ``(x, y, z)`` the geometric
centre, yaw about +z (see :mod:`sr3d_ros.geometry.boxes`). Boxes that are not upright in the
publishing frame (a tilted camera, see :mod:`sr3d_ros.frames`) are passed as
:class:`~sr3d_ros.frames.BoxPoses` with full-rotation quaternions.

Speed: the generated rclpy ``__init__`` costs 1-15 us per message object (a Marker builds ~10
nested messages), which for 100 boxes (~3,000 objects with the box edges) would take ~15 ms. The
builders therefore create message objects with :class:`_FastMsg`, which allocates the instance
and fills the ``__slots__`` that rosidl generates (``_<field>``) directly, giving every field a
fresh default exactly like the generated constructor does (checked against it in the tests). The
values written are always of the field's Python type (float for floating-point fields, int for
integers, str for strings), as the C serialiser expects.

The message classes are imported inside the functions, so importing this module needs no ROS.
"""

from __future__ import annotations

import array
import contextlib
import gc
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from sr3d_ros.frames import BOX_EDGES, BoxPoses, box_corners, yaw_from_quaternion
from sr3d_ros.palette import CLASS_COLORS, class_color

__all__ = [
    "CLASS_COLORS",
    "DiagnosticLevel",
    "class_color",
    "detection3d_array_to_boxes",
    "detections_to_markers",
    "detections_to_msg",
    "diagnostics_msg",
    "label_info_msg",
]

_EDGE_INDEX = np.array(BOX_EDGES, dtype=np.int64).reshape(-1)  # (24,) corner index per vertex


class DiagnosticLevel:
    """diagnostic_msgs/DiagnosticStatus levels (a byte on the wire)."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3
    NAMES = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}


# ---------------------------------------------------------------------------------------------
# fast message construction


class _FastMsg:
    """Builds instances of one rosidl message class without running its generated ``__init__``.

    ``_FastMsg.of(Marker)(id=3, ns="x")`` equals ``Marker(id=3, ns="x")``: fields not given get a
    fresh default (nested messages are built recursively, lists / arrays are new empty ones, the
    defaults of immutable types are shared). Values given are stored as they are (no type check
    or conversion): pass the Python type of the field. Unknown keyword names raise TypeError.

    The builder is a small function generated once per class from its ``__slots__`` (one
    assignment per slot), ~10x faster than the generated constructor.
    """

    _cache: dict[type, Any] = {}

    def __init__(self, cls: type) -> None:
        template = cls()
        self.cls = cls
        env: dict[str, Any] = {
            "_new": cls.__new__,
            "_cls": cls,
            "_M": _MISSING,
            "_array": array.array,
        }
        params, body = [], ["    o = _new(_cls)"]
        for k, slot in enumerate(cls.__slots__):
            if not slot.isidentifier():  # pragma: no cover - rosidl slots are identifiers
                raise TypeError(f"{cls.__name__}: unexpected slot {slot!r}")
            value = getattr(template, slot)
            name = slot[1:] if slot.startswith("_") else slot
            d = f"_d{k}"
            if hasattr(type(value), "get_fields_and_field_types"):
                env[d] = _FastMsg.of(type(value))
                default = f"{d}()"
            elif isinstance(value, list):
                default = "[]"
            elif isinstance(value, array.array):
                env[d] = value.typecode
                default = f"_array({d})"
            elif isinstance(value, np.ndarray):
                env[d] = value.copy()
                default = f"{d}.copy()"
            else:
                env[d] = value
                default = d
            if name == "check_fields":  # internal flag, not a field: always the class default
                body.append(f"    o.{slot} = {default}")
                continue
            params.append(f"{name}=_M")
            body.append(f"    o.{slot} = {default} if {name} is _M else {name}")
        src = f"def make(*, {', '.join(params)}):\n" + "\n".join(body) + "\n    return o\n"
        exec(compile(src, f"<_FastMsg {cls.__module__}.{cls.__name__}>", "exec"), env)
        self._make = env["make"]

    @classmethod
    def of(cls, msg_cls: type) -> Any:
        """The (cached) builder function of ``msg_cls``: ``make(**fields) -> msg_cls``."""
        b = cls._cache.get(msg_cls)
        if b is None:
            b = cls._cache[msg_cls] = _FastMsg(msg_cls)._make
        return b


_MISSING = object()


def _point_factory() -> Any:
    """``make(xyz, start, count) -> list[geometry_msgs/Point]`` of ``count`` points read from the
    flat float list ``xyz`` (x0, y0, z0, x1, ...) from point ``start`` on: the hot path of the box
    edges (~0.15 us per point against ~1 us for ``Point(x=, y=, z=)``)."""
    from geometry_msgs.msg import Point

    new = Point.__new__
    check = Point()._check_fields

    def make(xyz: list[float], start: int, count: int) -> list[Any]:
        out = []
        append = out.append
        it = iter(xyz[3 * start : 3 * (start + count)])
        for x, y, z in zip(it, it, it):
            p = new(Point)
            p._check_fields = check
            p._x = x
            p._y = y
            p._z = z
            append(p)
        return out

    return make


_POINTS: Any = None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a message tree is built.

    A 100-box MarkerArray creates ~5,000 objects, which triggers several collections; in a
    process holding a model (hundreds of thousands of tracked objects) the occasional full
    collection doubles the build time. Message trees contain no reference cycles, so nothing
    can accumulate while the collector is paused (reference counting frees them as usual).
    """
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _header(header: Any) -> Any:
    """A fresh ``std_msgs/Header`` equal to ``header`` (stamp + frame_id)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return _FastMsg.of(Header)(
        stamp=_FastMsg.of(Time)(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec)),
        frame_id=str(header.frame_id),
    )


def _duration(seconds: float) -> Any:
    """``builtin_interfaces/Duration`` of ``seconds`` (negative -> 0)."""
    from builtin_interfaces.msg import Duration

    s = max(0.0, float(seconds))
    whole = int(math.floor(s))
    return _FastMsg.of(Duration)(sec=whole, nanosec=min(int(round((s - whole) * 1e9)), 999_999_999))


# ---------------------------------------------------------------------------------------------
# inputs


def _det_arrays(det: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(boxes float64 (M, 7), scores float64 (M,), labels int64 (M,), class_names) of a
    :class:`~sr3d_ros.detections.Detections` (torch tensors on any device) or of any object with
    the same attributes holding numpy arrays."""

    def arr(x: Any, dtype: Any) -> np.ndarray:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=dtype)

    boxes = arr(det.boxes, np.float64).reshape(-1, 7)
    scores = arr(det.scores, np.float64).reshape(-1)
    labels = arr(det.labels, np.int64).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(
            f"detections disagree: {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels"
        )
    names = tuple(det.class_names)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(
            f"labels must be in [0, {len(names)}), got [{labels.min()}, {labels.max()}]"
        )
    return boxes, scores, labels, names


def _poses(boxes: np.ndarray, poses: BoxPoses | None) -> BoxPoses:
    if poses is None:
        return BoxPoses.from_boxes(boxes)
    if len(poses) != len(boxes):
        raise ValueError(f"{len(poses)} poses for {len(boxes)} detections")
    return poses


# ---------------------------------------------------------------------------------------------
# Detection3DArray


@_gc_paused()
def detections_to_msg(det: Any, header: Any, poses: BoxPoses | None = None) -> Any:
    """Detections -> ``vision_msgs/Detection3DArray``.

    Args:
        det: :class:`~sr3d_ros.detections.Detections` with ``boxes`` (M, 7) ``(x, y, z, dx, dy,
            dz, yaw)`` in the frame of ``header`` (metres, geometric centre, yaw about +z),
            ``scores`` (M,), ``labels`` (M,) and ``class_names``.
        header: ``std_msgs/Header`` (stamp + frame_id); its values are copied into the array and
            into every Detection3D (the caller's object is not referenced).
        poses: optional :class:`~sr3d_ros.frames.BoxPoses` overriding the box centres, sizes and
            orientations (needed for boxes that are not upright in this frame).

    Returns:
        ``Detection3DArray``: one ``Detection3D`` per box, in input order, with
        ``bbox.center.position`` = centre, ``bbox.center.orientation`` = quaternion of the box
        rotation (``(0, 0, sin(yaw/2), cos(yaw/2))`` for upright boxes), ``bbox.size`` = extents,
        and one ``ObjectHypothesisWithPose`` (``class_id`` = class name, ``score``, ``pose.pose``
        = the box pose, zero covariance). ``id`` is left empty (no tracking). The message is
        meant to be published: equal sub-messages (the detections' header, a box's centre pose
        and its hypothesis pose) are one shared object, so treat it as read-only.

    Raises:
        ValueError: inconsistent detection arrays or poses.
    """
    from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion, Vector3
    from vision_msgs.msg import (
        BoundingBox3D,
        Detection3D,
        Detection3DArray,
        ObjectHypothesis,
        ObjectHypothesisWithPose,
    )

    boxes, scores, labels, names = _det_arrays(det)
    p = _poses(boxes, poses)
    f_det, f_bbox, f_pose = _FastMsg.of(Detection3D), _FastMsg.of(BoundingBox3D), _FastMsg.of(Pose)
    f_point, f_quat, f_vec = _FastMsg.of(Point), _FastMsg.of(Quaternion), _FastMsg.of(Vector3)
    f_hyp, f_ohwp = _FastMsg.of(ObjectHypothesis), _FastMsg.of(ObjectHypothesisWithPose)
    f_pwc = _FastMsg.of(PoseWithCovariance)
    hdr = _header(header)
    dets = []
    rows = zip(
        p.centers.tolist(),
        p.sizes.tolist(),
        p.quaternions.tolist(),
        scores.tolist(),
        labels.tolist(),
    )
    for (cx, cy, cz), (sx, sy, sz), (qx, qy, qz, qw), score, label in rows:
        pose = f_pose(
            position=f_point(x=cx, y=cy, z=cz), orientation=f_quat(x=qx, y=qy, z=qz, w=qw)
        )
        hyp = f_ohwp(hypothesis=f_hyp(class_id=names[label], score=score), pose=f_pwc(pose=pose))
        dets.append(
            f_det(header=hdr, results=[hyp], bbox=f_bbox(center=pose, size=f_vec(x=sx, y=sy, z=sz)))
        )
    return _FastMsg.of(Detection3DArray)(header=_header(header), detections=dets)


def detection3d_array_to_boxes(msg: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The inverse of :func:`detections_to_msg`: ``Detection3DArray`` -> arrays.

    Args:
        msg: a ``vision_msgs/Detection3DArray`` (rclpy, rosbags or any object with the same
            attribute names).

    Returns:
        ``(boxes float32 (M, 7), scores float32 (M,), class_names list[str] (M,))``: centre,
        size and yaw (heading of the box x axis, exact for upright boxes; see
        :func:`sr3d_ros.frames.yaw_from_quaternion`) in the message frame; the score and
        ``class_id`` of the highest-scoring hypothesis of each detection (score 0 and class ``""``
        when a detection has no hypothesis).
    """
    n = len(msg.detections)
    boxes = np.zeros((n, 7), np.float64)
    quats = np.zeros((n, 4), np.float64)
    scores = np.zeros(n, np.float32)
    names: list[str] = []
    for i, d in enumerate(msg.detections):
        c, s = d.bbox.center, d.bbox.size
        boxes[i, :6] = (c.position.x, c.position.y, c.position.z, s.x, s.y, s.z)
        quats[i] = (c.orientation.x, c.orientation.y, c.orientation.z, c.orientation.w)
        if len(d.results):
            best = max(d.results, key=lambda r: r.hypothesis.score)
            scores[i] = best.hypothesis.score
            names.append(str(best.hypothesis.class_id))
        else:
            names.append("")
    if n:
        boxes[:, 6] = yaw_from_quaternion(quats)
    return boxes.astype(np.float32), scores, names


# ---------------------------------------------------------------------------------------------
# markers


@_gc_paused()
def detections_to_markers(
    det: Any,
    header: Any,
    ns: str = "sr3d",
    lifetime: float = 0.0,
    poses: BoxPoses | None = None,
    line_width: float = 0.02,
    text_height: float = 0.12,
) -> Any:
    """Detections -> ``visualization_msgs/MarkerArray`` for RViz.

    Args:
        det: :class:`~sr3d_ros.detections.Detections` (see :func:`detections_to_msg`).
        header: ``std_msgs/Header`` whose values are copied into every marker (frame_id + stamp).
        ns: marker namespace of the boxes; the labels use ``ns + "/labels"``.
        lifetime: seconds a marker stays up without an update (0 = until deleted).
        poses: optional :class:`~sr3d_ros.frames.BoxPoses` (tilted boxes), as in
            :func:`detections_to_msg`.
        line_width: edge width in metres (``scale.x`` of the LINE_LIST).
        text_height: label height in metres (``scale.z`` of the TEXT_VIEW_FACING).

    Returns:
        ``MarkerArray``: ``markers[0]`` is a DELETEALL (clears the previous frame's markers), then
        for detection ``i`` (input order) a LINE_LIST (namespace ``ns``, ``id = i``, 24 points in
        the header frame = the 12 box edges, opaque colour of its class) and a TEXT_VIEW_FACING
        (namespace ``ns/labels``, ``id = i``, text ``"name 0.87"``, white, just above the box's
        top face). ``2 M + 1`` markers in all. Meant to be published: equal sub-messages
        (header, scale, colour, lifetime, the unused texture / mesh fields) are shared between
        the markers, so treat the result as read-only.

    Raises:
        ValueError: inconsistent detection arrays or poses.
    """
    from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray, MeshFile

    global _POINTS
    if _POINTS is None:
        _POINTS = _point_factory()
    boxes, scores, labels, names = _det_arrays(det)
    p = _poses(boxes, poses)
    f_marker, f_pose, f_point = _FastMsg.of(Marker), _FastMsg.of(Pose), _FastMsg.of(Point)
    f_quat, f_vec, f_color = _FastMsg.of(Quaternion), _FastMsg.of(Vector3), _FastMsg.of(ColorRGBA)
    th = float(text_height)
    label_ns = f"{ns}/labels"
    # shared, never-modified sub-messages
    hdr, life = _header(header), _duration(lifetime)
    texture, mesh = _FastMsg.of(CompressedImage)(), _FastMsg.of(MeshFile)()
    identity = f_pose(position=f_point(), orientation=f_quat(x=0.0, y=0.0, z=0.0, w=1.0))
    line_scale = f_vec(x=float(line_width), y=0.0, z=0.0)
    text_scale = f_vec(x=0.0, y=0.0, z=th)
    white = f_color(r=1.0, g=1.0, b=1.0, a=1.0)
    colors: dict[int, Any] = {}

    markers = [
        f_marker(header=hdr, ns=ns, id=0, action=Marker.DELETEALL, texture=texture, mesh_file=mesh)
    ]
    if len(boxes):
        verts = box_corners(p)[:, _EDGE_INDEX, :].ravel().tolist()  # (M * 24 * 3,) flat
        up = p.rotations[:, :, 2]  # box z axis in this frame
        text_pos = (p.centers + up * (0.5 * p.sizes[:, 2:3] + 0.6 * th)).tolist()
        quat = p.quaternions.tolist()
    line_list, text_view, add = Marker.LINE_LIST, Marker.TEXT_VIEW_FACING, Marker.ADD
    points, append = _POINTS, markers.append
    for i, (score, label) in enumerate(zip(scores.tolist(), labels.tolist())):
        color = colors.get(label)
        if color is None:
            # ColorRGBA is float32: store float32-exact values so the object equals its wire copy
            r, g, b = (float(v) for v in np.float32(class_color(label)))
            color = colors[label] = f_color(r=r, g=g, b=b, a=1.0)
        append(
            f_marker(
                header=hdr,
                ns=ns,
                id=i,
                type=line_list,
                action=add,
                pose=identity,
                scale=line_scale,
                color=color,
                lifetime=life,
                points=points(verts, 24 * i, 24),
                texture=texture,
                mesh_file=mesh,
            )
        )
        (tx, ty, tz), (qx, qy, qz, qw) = text_pos[i], quat[i]
        append(
            f_marker(
                header=hdr,
                ns=label_ns,
                id=i,
                type=text_view,
                action=add,
                pose=f_pose(
                    position=f_point(x=tx, y=ty, z=tz), orientation=f_quat(x=qx, y=qy, z=qz, w=qw)
                ),
                scale=text_scale,
                color=white,
                lifetime=life,
                text=f"{names[label]} {score:.2f}",
                texture=texture,
                mesh_file=mesh,
            )
        )
    return _FastMsg.of(MarkerArray)(markers=markers)


# ---------------------------------------------------------------------------------------------
# LabelInfo, diagnostics


def label_info_msg(class_names: Sequence[str], header: Any, threshold: float = 0.0) -> Any:
    """``vision_msgs/LabelInfo`` mapping class index -> class name.

    Args:
        class_names: the detector's classes in label order (index ``i`` -> ``class_id = i``).
        header: ``std_msgs/Header`` (copied).
        threshold: the score threshold detections are published above (``LabelInfo.threshold``).

    Returns:
        ``LabelInfo`` with one ``VisionClass(class_id=i, class_name=name)`` per class.

    Raises:
        ValueError: more than 65536 classes (``class_id`` is uint16).
    """
    from vision_msgs.msg import LabelInfo, VisionClass

    if len(class_names) > 65536:
        raise ValueError("LabelInfo.class_id is uint16: at most 65536 classes")
    msg = LabelInfo()
    msg.header = _header(header)
    msg.class_map = [VisionClass(class_id=i, class_name=str(n)) for i, n in enumerate(class_names)]
    msg.threshold = float(threshold)
    return msg


def _kv_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def diagnostics_msg(
    stamp: Any,
    name: str,
    hardware_id: str,
    level: int | str,
    message: str,
    timings_ms: Mapping[str, float] | None = None,
    points_in: int = 0,
    detections_out: int = 0,
    frames_dropped: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """One frame's health as ``diagnostic_msgs/DiagnosticArray`` (one DiagnosticStatus).

    Args:
        stamp: ``builtin_interfaces/Time`` of the report (usually the node's clock now).
        name: status name, by convention ``"<node name>: <component>"``.
        hardware_id: e.g. the compute device (``"cpu"``, ``"cuda:0"``).
        level: ``0..3`` or ``"OK"`` / ``"WARN"`` / ``"ERROR"`` / ``"STALE"``.
        message: one-line summary.
        timings_ms: per-stage wall times in milliseconds; each becomes a key ``"<stage>_ms"``.
        points_in: points in the input cloud.
        detections_out: detections published for the frame.
        frames_dropped: frames replaced before they were processed, since start.
        extra: more key-values (values formatted with ``str``; floats with 3 decimals, bools as
            ``true`` / ``false``).

    Returns:
        ``DiagnosticArray`` with ``header.stamp = stamp`` and ``status[0]`` holding the level,
        message and key-values ``points_in``, ``detections_out``, ``frames_dropped``, the timings
        and ``extra``, in that order.

    Raises:
        ValueError: unknown level.
    """
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    lvl = DiagnosticLevel.NAMES.get(level.upper()) if isinstance(level, str) else int(level)
    if lvl not in (0, 1, 2, 3):
        raise ValueError(f"unknown diagnostic level {level!r}")
    st = DiagnosticStatus()
    st.level = bytes([lvl])
    st.name = str(name)
    st.hardware_id = str(hardware_id)
    st.message = str(message)
    values = [
        KeyValue(key="points_in", value=str(int(points_in))),
        KeyValue(key="detections_out", value=str(int(detections_out))),
        KeyValue(key="frames_dropped", value=str(int(frames_dropped))),
    ]
    for k, v in (timings_ms or {}).items():
        values.append(KeyValue(key=f"{k}_ms", value=f"{float(v):.3f}"))
    for k, v in (extra or {}).items():
        values.append(KeyValue(key=str(k), value=_kv_value(v)))
    st.values = values
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = [st]
    return arr
