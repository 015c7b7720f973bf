"""``rosbags`` messages for the bags we write (no ROS needed), and the bag writer.

Every builder returns a ``rosbags`` dataclass of the Kilted typestore plus our ``vision_msgs``
(:func:`~sr3d_ros.ros.bag.typestore.make_typestore`); ``Any``: the classes are generated.
Lengths in metres, angles in radians, quaternions ``(x, y, z, w)``, stamps in nanoseconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sr3d_ros.ros.bag.typestore import new_msg

if TYPE_CHECKING:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys.store import Typestore

__all__ = [
    "CAMERA_INFO",
    "DETECTION3DARRAY",
    "IMAGE",
    "POINTCLOUD2",
    "STORAGES",
    "TF_MESSAGE",
    "bag_writer",
    "camera_info_msg",
    "detection_array_msg",
    "finish_bag",
    "header_msg",
    "image_msg",
    "open_writer",
    "pointcloud2_msg",
    "pose_msg",
    "tf_msg",
    "yaw_detection_array_msg",
]

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
DETECTION3DARRAY = "vision_msgs/msg/Detection3DArray"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
#: rosbag2 storage formats we write: MCAP (``.mcap``) and SQLite 3 (``.db3``).
STORAGES = ("mcap", "sqlite3")


def header_msg(ts: Typestore, stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/Header`` with the stamp ``stamp_ns`` (ns since the epoch) and ``frame_id``."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    stamp = new_msg(ts, "builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)
    return new_msg(ts, "std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)


def pointcloud2_msg(
    ts: Typestore, header: Any, points: NDArray[Any], fields: Sequence[str] | None = None
) -> Any:
    """``sensor_msgs/PointCloud2`` of a cloud.

    Args:
        points: ``(N, 3|6)`` xyz [+ rgb 0..255] (packed ``rgb`` field,
            :func:`sr3d_ros.ros.pointcloud2.points_to_cloud`) when ``fields`` is None; else
            ``(N, len(fields))`` stored as little-endian FLOAT32 fields of these names, in order,
            no padding (e.g. a LiDAR scan ``("x", "y", "z", "intensity")``), bytes unchanged.

    Raises:
        ValueError: a shape that does not match.
    """
    from sr3d_ros.ros.pointcloud2 import FLOAT32, CloudLayout, Field, points_to_cloud

    if fields is None:
        layout, data = points_to_cloud(points)
    else:
        pts = np.ascontiguousarray(points, dtype="<f4")
        if pts.ndim != 2 or pts.shape[1] != len(fields):
            raise ValueError(f"points must be (N, {len(fields)}) for {fields}, got {pts.shape}")
        step = 4 * len(fields)
        flds = tuple(Field(n, 4 * i, FLOAT32) for i, n in enumerate(fields))
        dense = bool(np.isfinite(pts[:, :3]).all())
        layout = CloudLayout(1, len(pts), step, step * len(pts), flds, False, dense)
        data = pts.tobytes()
    kw = asdict(layout)  # height, width, point_step, row_step, fields, is_bigendian, is_dense
    kw["fields"] = [new_msg(ts, "sensor_msgs/msg/PointField", **f) for f in kw["fields"]]
    return new_msg(ts, POINTCLOUD2, header=header, data=np.frombuffer(data, np.uint8), **kw)


def pose_msg(ts: Typestore, xyz: Sequence[float], xyzw: Sequence[float]) -> Any:
    """``geometry_msgs/Pose`` of a position and a quaternion ``(x, y, z, w)``."""
    x, y, z = (float(v) for v in xyz)
    qx, qy, qz, qw = (float(v) for v in xyzw)
    return new_msg(
        ts,
        "geometry_msgs/msg/Pose",
        position=new_msg(ts, "geometry_msgs/msg/Point", x=x, y=y, z=z),
        orientation=new_msg(ts, "geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw),
    )


def detection_array_msg(
    ts: Typestore,
    header: Any,
    centers: ArrayLike,
    quaternions: ArrayLike,
    sizes: ArrayLike,
    scores: ArrayLike,
    names: Sequence[str],
) -> Any:
    """``vision_msgs/Detection3DArray``: one Detection3D per box with one hypothesis.

    Args:
        centers: ``(M, 3)`` geometric centres in ``header.frame_id``. quaternions: ``(M, 4)``
            box orientations ``(x, y, z, w)`` (box frame -> message frame). sizes: ``(M, 3)``
            full extents along the box's local x, y, z. scores: ``(M,)``. names: M class ids.
            The hypothesis pose equals the bbox centre.
    """
    c = np.asarray(centers, np.float64).reshape(-1, 3)
    q = np.asarray(quaternions, np.float64).reshape(-1, 4)
    sz = np.asarray(sizes, np.float64).reshape(-1, 3)
    s = np.asarray(scores, np.float64).reshape(-1)
    dets = []
    for ctr, quat, size, score, name in zip(c.tolist(), q.tolist(), sz.tolist(), s.tolist(), names):
        hyp = new_msg(
            ts,
            "vision_msgs/msg/ObjectHypothesisWithPose",
            hypothesis=new_msg(
                ts, "vision_msgs/msg/ObjectHypothesis", class_id=str(name), score=score
            ),
            pose=new_msg(ts, "geometry_msgs/msg/PoseWithCovariance", pose=pose_msg(ts, ctr, quat)),
        )
        bbox = new_msg(
            ts,
            "vision_msgs/msg/BoundingBox3D",
            center=pose_msg(ts, ctr, quat),
            size=new_msg(ts, "geometry_msgs/msg/Vector3", x=size[0], y=size[1], z=size[2]),
        )
        dets.append(
            new_msg(ts, "vision_msgs/msg/Detection3D", header=header, results=[hyp], bbox=bbox)
        )
    return new_msg(ts, DETECTION3DARRAY, header=header, detections=dets)


def yaw_detection_array_msg(
    ts: Typestore, header: Any, boxes: ArrayLike, scores: ArrayLike, names: Sequence[str]
) -> Any:
    """:func:`detection_array_msg` of our boxes ``(M, 7) = (x, y, z, dx, dy, dz, yaw)``
    (:mod:`sr3d_ros.geometry.boxes`): upright, yaw about +z of the message frame."""
    from sr3d_ros.frames import quaternion_from_yaw

    b = np.asarray(boxes, np.float64).reshape(-1, 7)
    q = quaternion_from_yaw(b[:, 6]).reshape(-1, 4)
    return detection_array_msg(ts, header, b[:, :3], q, b[:, 3:6], scores, names)


def tf_msg(ts: Typestore, stamp_ns: int, transforms: Sequence[tuple[str, str, ArrayLike]]) -> Any:
    """``tf2_msgs/TFMessage`` of ``(parent, child, T)`` triples.

    ``T`` is the ``(4, 4)`` (or ``(3, 4)``) rigid transform child -> parent
    (``p_parent = R p_child + t``, the TF convention). Its rotation is stored as the quaternion
    of ``R`` (:func:`sr3d_ros.frames.quaternion_from_matrix`; a nearly orthonormal ``R``, as in
    calibration files, is stored as its nearest rotation's quaternion).
    """
    from sr3d_ros.frames import quaternion_from_matrix

    out = []
    for parent, child, transform in transforms:
        T = np.asarray(transform, np.float64)
        x, y, z = T[:3, 3].tolist()
        qx, qy, qz, qw = quaternion_from_matrix(T[:3, :3]).tolist()
        out.append(
            new_msg(
                ts,
                "geometry_msgs/msg/TransformStamped",
                header=header_msg(ts, stamp_ns, parent),
                child_frame_id=child,
                transform=new_msg(
                    ts,
                    "geometry_msgs/msg/Transform",
                    translation=new_msg(ts, "geometry_msgs/msg/Vector3", x=x, y=y, z=z),
                    rotation=new_msg(ts, "geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw),
                ),
            )
        )
    return new_msg(ts, TF_MESSAGE, transforms=out)


def image_msg(ts: Typestore, header: Any, rgb: NDArray[np.uint8]) -> Any:
    """``sensor_msgs/Image`` ``rgb8`` of a ``uint8 (H, W, 3)`` RGB image (rows top to bottom).

    Raises:
        ValueError: not ``uint8 (H, W, 3)``.
    """
    img = np.asarray(rgb)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    data = np.ascontiguousarray(img).reshape(-1)
    return new_msg(
        ts, IMAGE, header=header, height=h, width=w, encoding="rgb8", step=3 * w, data=data
    )


def camera_info_msg(
    ts: Typestore, header: Any, P: ArrayLike, width: int, height: int, distortion: str = "plumb_bob"
) -> Any:
    """``sensor_msgs/CameraInfo`` of a rectified camera with projection ``P = K [I | t]``.

    ``k = P[:, :3]``, ``p = P`` (3 x 4, row-major, the baseline term kept), ``r`` identity,
    ``d`` five zeros (a rectified image has no distortion), binning 0, full-image ROI.
    """
    Pm = np.asarray(P, np.float64).reshape(3, 4)
    return new_msg(
        ts,
        CAMERA_INFO,
        header=header,
        height=int(height),
        width=int(width),
        distortion_model=distortion,
        d=np.zeros(5),
        k=np.ascontiguousarray(Pm[:, :3]).reshape(9),
        r=np.eye(3).reshape(9),
        p=Pm.reshape(12).copy(),
    )


def open_writer(out: str | Path, storage: str = "mcap") -> Writer:
    """A ``rosbags`` rosbag2 writer (bag format version 9) for a new bag folder.

    Args:
        out: bag folder to create (must not exist). storage: ``"mcap"`` or ``"sqlite3"``.

    Raises:
        ValueError: unknown storage. rosbags ``WriterError``: ``out`` exists (on ``open``).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"unknown bag storage {storage!r}: use one of {STORAGES}")
    return Writer(Path(out), version=9, storage_plugin=plugins[storage])


def finish_bag(out: str | Path) -> None:
    """After the writer is closed: chunk CRCs into an MCAP bag's files (rosbags writes 0, "not
    computed", so corruption would pass silently; :mod:`~sr3d_ros.ros.bag.integrity`)."""
    from sr3d_ros.ros.bag.integrity import add_chunk_crcs

    add_chunk_crcs(out)


@contextmanager
def bag_writer(out: str | Path, storage: str = "mcap") -> Iterator[Writer]:
    """A new bag written atomically: the caller gets an unopened ``rosbags`` writer (set custom
    data, then ``with writer: ...``) for a bag in a temporary sibling folder; when the block
    ends without an error the bag gets its chunk CRCs (:func:`finish_bag`) and is renamed to
    ``out``; on an error the temporary folder is removed and ``out`` never appears.

    Raises:
        FileExistsError: ``out`` exists. ValueError: unknown storage.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: the bag already exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield open_writer(tmp / out.name, storage)  # files named after ``out``, as rosbag2 does
        finish_bag(tmp / out.name)
        os.rename(tmp / out.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
