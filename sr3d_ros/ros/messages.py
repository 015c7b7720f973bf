"""Detection message builders for the detector node: pure functions from :class:`Detections` +
a header (the node's LabelInfo and diagnostics: :mod:`sr3d_ros.ros.status_messages`).

* :func:`detections_to_msg` -> ``vision_msgs/Detection3DArray``
* :func:`detections_to_markers` -> ``visualization_msgs/MarkerArray`` (DELETEALL, then per box a
  LINE_LIST of its 12 edges and a TEXT_VIEW_FACING label)
* :func:`detection3d_array_to_boxes`: the inverse of :func:`detections_to_msg`, for tools and tests
  (duck-typed: works on rclpy messages and on ``rosbags``-deserialised ones).
* :func:`optical_frame_poses`: monocular detections (boxes in the camera's body frame) as poses
  in the camera's optical frame (x right, y down, z forward), the frame of the image they come
  from; pass them as ``poses`` to the two builders.

Box convention: ``(x, y, z, dx, dy, dz, yaw)``, metres / radians, ``(x, y, z)`` the geometric
centre, yaw about +z (see :mod:`sr3d_ros.geometry.boxes`). Boxes that are not upright in the
publishing frame (a tilted camera, see :mod:`sr3d_ros.frames`) are passed as
:class:`~sr3d_ros.frames.BoxPoses` with full-rotation quaternions.

Speed: the Detection3DArray and MarkerArray builders create message objects with
:func:`~sr3d_ros.ros.fast_msg.fast_builder` while the cyclic GC is paused
(:mod:`sr3d_ros.ros.fast_msg`); ``benchmarks/bench_messages.py`` shows what that saves against
plain construction of the same messages.

The message classes are imported inside the functions, so importing this module needs no ROS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sr3d_ros.frames import (
    BOX_EDGES,
    BoxPoses,
    box_corners,
    boxes_from_gravity,
    make_transform,
    yaw_from_quaternion,
)
from sr3d_ros.palette import CLASS_COLORS, class_color
from sr3d_ros.ros.fast_msg import fast_builder, gc_paused, point_list_builder

if TYPE_CHECKING:
    import torch  # this module imports without torch: tensors are handled by duck typing

__all__ = [
    "CLASS_COLORS",
    "DetectionsLike",
    "class_color",
    "copy_header",
    "detection3d_array_to_boxes",
    "detections_to_markers",
    "detections_to_msg",
    "optical_frame_poses",
]

_EDGE_INDEX = np.array(BOX_EDGES, dtype=np.int64).reshape(-1)  # (24,) corner index per vertex


_POINTS: Callable[[list[float], int, int], list[Any]] | None = None


def copy_header(header: Any) -> Any:
    """A fresh ``std_msgs/Header`` equal to ``header`` (stamp + frame_id; any object with those
    attributes, e.g. a ``rosbags`` message)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return fast_builder(Header)(
        stamp=fast_builder(Time)(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec)),
        frame_id=str(header.frame_id),
    )


def _duration(seconds: float) -> Any:
    """``builtin_interfaces/Duration`` of ``seconds`` (negative -> 0)."""
    from builtin_interfaces.msg import Duration

    s = max(0.0, float(seconds))
    whole = int(math.floor(s))
    nanosec = min(int(round((s - whole) * 1e9)), 999_999_999)
    return fast_builder(Duration)(sec=whole, nanosec=nanosec)


# ---------------------------------------------------------------------------------------------
# inputs


class DetectionsLike(Protocol):
    """What the builders read: a :class:`~sr3d_ros.detections.Detections` (torch tensors on any
    device) or any object with the same attributes holding array-likes."""

    @property
    def boxes(self) -> torch.Tensor | ArrayLike: ...
    @property
    def scores(self) -> torch.Tensor | ArrayLike: ...
    @property
    def labels(self) -> torch.Tensor | ArrayLike: ...
    @property
    def class_names(self) -> Sequence[str]: ...


def _as_array(x: torch.Tensor | ArrayLike, dtype: type[np.generic]) -> NDArray[Any]:
    detach = getattr(x, "detach", None)  # a torch tensor, on any device
    if detach is not None:
        x = detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _det_arrays(
    det: DetectionsLike,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], tuple[str, ...]]:
    """(boxes float64 (M, 7), scores float64 (M,), labels int64 (M,), class_names) of ``det``.

    Raises:
        ValueError: the arrays disagree in length, or a label is not a class index.
    """
    boxes = _as_array(det.boxes, np.float64).reshape(-1, 7)
    scores = _as_array(det.scores, np.float64).reshape(-1)
    labels = _as_array(det.labels, np.int64).reshape(-1)
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


def _poses(boxes: NDArray[np.float64], poses: BoxPoses | None) -> BoxPoses:
    if poses is None:
        return BoxPoses.from_boxes(boxes)
    if len(poses) != len(boxes):
        raise ValueError(f"{len(poses)} poses for {len(boxes)} detections")
    return poses


def _detection_rows(
    det: DetectionsLike, poses: BoxPoses | None
) -> list[tuple[list[float], list[float], list[float], float, str]]:
    """Per detection: (centre xyz, size xyz, quaternion xyzw, score, class name), Python floats.

    Raises:
        ValueError: inconsistent detection arrays or poses.
    """
    boxes, scores, labels, names = _det_arrays(det)
    p = _poses(boxes, poses)
    return list(
        zip(
            p.centers.tolist(),
            p.sizes.tolist(),
            p.quaternions.tolist(),
            scores.tolist(),
            [names[k] for k in labels.tolist()],
        )
    )


def optical_frame_poses(boxes: torch.Tensor | ArrayLike) -> BoxPoses:
    """Poses in the camera optical frame of boxes given in the camera's body frame.

    Args:
        boxes: ``(M, 7)`` ``(x, y, z, dx, dy, dz, yaw)`` in the body frame (x forward, y left,
            z up; :data:`~sr3d_ros.geometry.camera.OPTICAL_TO_BODY`), as
            :class:`~sr3d_ros.detections.Detections` of a monocular detector hold them; metres.

    Returns:
        :class:`~sr3d_ros.frames.BoxPoses` in the optical frame (x right, y down, z forward):
        centre ``R^T c``, sizes unchanged (box axes: length, width, height), rotation
        ``R^T Rz(yaw)`` with ``R = OPTICAL_TO_BODY`` (the box z axis points along -y).

    Raises:
        ValueError: ``boxes`` is not ``(M, 7)``.
    """
    from sr3d_ros.geometry.camera import OPTICAL_TO_BODY  # imports torch: not at the top

    return boxes_from_gravity(
        _as_array(boxes, np.float64), make_transform(OPTICAL_TO_BODY, [0, 0, 0])
    )


# ---------------------------------------------------------------------------------------------
# Detection3DArray


@gc_paused()
def detections_to_msg(det: DetectionsLike, header: Any, poses: BoxPoses | None = None) -> Any:
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

    rows = _detection_rows(det, poses)
    f_det, f_bbox, f_pose = map(fast_builder, (Detection3D, BoundingBox3D, Pose))
    f_point, f_quat, f_vec = fast_builder(Point), fast_builder(Quaternion), fast_builder(Vector3)
    f_hyp, f_ohwp = fast_builder(ObjectHypothesis), fast_builder(ObjectHypothesisWithPose)
    f_pwc = fast_builder(PoseWithCovariance)
    hdr = copy_header(header)
    dets = []
    for (cx, cy, cz), (sx, sy, sz), (qx, qy, qz, qw), score, name in rows:
        pose = f_pose(
            position=f_point(x=cx, y=cy, z=cz), orientation=f_quat(x=qx, y=qy, z=qz, w=qw)
        )
        hyp = f_ohwp(hypothesis=f_hyp(class_id=name, score=score), pose=f_pwc(pose=pose))
        dets.append(
            f_det(header=hdr, results=[hyp], bbox=f_bbox(center=pose, size=f_vec(x=sx, y=sy, z=sz)))
        )
    return fast_builder(Detection3DArray)(header=copy_header(header), detections=dets)


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
    from sr3d_ros.ros.bag.detections import detection_poses

    poses = detection_poses(msg)
    boxes = np.zeros((len(poses), 7), np.float64)
    boxes[:, :3], boxes[:, 3:6] = poses.centers, poses.sizes
    if len(poses):
        boxes[:, 6] = yaw_from_quaternion(poses.quaternions)
    scores, names = poses.scores.astype(np.float32), poses.names
    return boxes.astype(np.float32), scores, names


# ---------------------------------------------------------------------------------------------
# markers


@gc_paused()
def detections_to_markers(
    det: DetectionsLike,
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
        _POINTS = point_list_builder()
    boxes, scores, labels, names = _det_arrays(det)
    p = _poses(boxes, poses)
    f_marker, f_pose, f_point = fast_builder(Marker), fast_builder(Pose), fast_builder(Point)
    f_quat, f_vec, f_color = map(fast_builder, (Quaternion, Vector3, ColorRGBA))
    th = float(text_height)
    label_ns = f"{ns}/labels"
    # shared, never-modified sub-messages
    hdr, life = copy_header(header), _duration(lifetime)
    texture, mesh = fast_builder(CompressedImage)(), fast_builder(MeshFile)()
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
            r, g, b = np.asarray(class_color(label), np.float32).tolist()
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
    return fast_builder(MarkerArray)(markers=markers)
