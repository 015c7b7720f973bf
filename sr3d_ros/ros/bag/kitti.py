"""Bags of real KITTI object frames: camera image, CameraInfo, velodyne scan, /tf_static and the
ground truth, for the image node and for retraining (no ROS needed).

Per frame ``i`` (bag time and header stamps ``start + i / rate``; topic names are
:class:`KittiBagTopics`, frame names :class:`KittiBagFrames`):

* ``/tf_static`` (``tf2_msgs/TFMessage``), written for the first frame and again whenever the
  calibration changes (KITTI frames come from different drives; a newer static transform of a
  frame pair replaces the older one, as in tf2): ``camera_link -> camera_optical_frame`` with the
  rotation :data:`~sr3d_ros.geometry.camera.OPTICAL_TO_BODY` (``camera_link``: x forward, y left,
  z up, REP 103) and ``camera_optical_frame -> velodyne`` with ``R0_rect @ Tr_velo_to_cam``
  (LiDAR -> rectified camera; translation exact, rotation as the quaternion of its nearest
  rotation: KITTI's rotation blocks are orthonormal to 1e-7, the stored one is within 1e-7).
* ``sensor_msgs/Image`` ``rgb8`` of ``image_2`` in ``camera_optical_frame``.
* ``sensor_msgs/CameraInfo`` in ``camera_optical_frame``: ``p = P2`` (3 x 4, with KITTI's baseline
  term), ``k = P2[:, :3]``, ``r`` identity, plumb_bob with zero distortion, the image size.
  ``camera_optical_frame`` is KITTI's *rectified reference camera* frame (x right, y down,
  z forward; the frame of the labels and the frame ``P2`` projects from), so
  ``PinholeCamera(P, width, height)`` rebuilds the dataset camera and labels, TF and projection
  agree without a baseline offset.
* ``sensor_msgs/PointCloud2`` of ``velodyne/ID.bin`` in ``velodyne``, where the frame has a scan:
  FLOAT32 fields ``x, y, z, intensity`` (metres, reflectance 0..1), the file's bytes unchanged.
* ``vision_msgs/Detection3DArray`` of the labels (every labelled class, DontCare left out) in
  ``camera_optical_frame``: each box's **geometric centre** (the label's bottom-face centre
  ``(x, y - h/2, z)``), orientation the rotation by ``rotation_y`` about the optical **+y** axis
  (quaternion ``(0, sin(ry/2), 0, cos(ry/2))``), size ``(l, h, w)`` along the box's local
  ``x, y, z`` (length along ``(cos ry, 0, -sin ry)``, height along +y = down, width), class_id
  the KITTI type, score 1. :func:`camera_boxes_from_poses` inverts it.

The bag's ``custom_data`` holds ``sr3d.dataset`` (``kitti``), ``sr3d.sample_ids`` and
``sr3d.class_names`` (JSON).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sr3d_ros.ros.bag.builders import (
    CAMERA_INFO,
    DETECTION3DARRAY,
    IMAGE,
    POINTCLOUD2,
    TF_MESSAGE,
    bag_writer,
    camera_info_msg,
    detection_array_msg,
    header_msg,
    image_msg,
    pointcloud2_msg,
    tf_msg,
)
from sr3d_ros.ros.bag.building import BagSummary
from sr3d_ros.ros.bag.typestore import make_typestore

__all__ = [
    "KITTI_SCAN_FIELDS",
    "KittiBagFrames",
    "KittiBagTopics",
    "build_kitti_bag",
    "camera_box_poses",
    "camera_boxes_from_poses",
]

#: PointCloud2 fields of a KITTI velodyne scan (the ``.bin`` file's float32 columns).
KITTI_SCAN_FIELDS = ("x", "y", "z", "intensity")


@dataclass(frozen=True)
class KittiBagTopics:
    """Topic names of a KITTI bag."""

    image: str = "/kitti/camera/image_raw"
    camera_info: str = "/kitti/camera/camera_info"
    points: str = "/kitti/velodyne/points"
    ground_truth: str = "/kitti/ground_truth"
    tf_static: str = "/tf_static"


@dataclass(frozen=True)
class KittiBagFrames:
    """TF frame names of a KITTI bag (module docstring)."""

    body: str = "camera_link"
    camera: str = "camera_optical_frame"
    lidar: str = "velodyne"


def camera_box_poses(cam_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KITTI camera boxes as poses in the optical frame (module docstring; our formulation).

    Args:
        cam_boxes: ``(M, 7) = (x, y, z, l, h, w, ry)``, bottom-face centre, optical frame,
            metres / radians (:mod:`sr3d_ros.geometry.camera`).

    Returns:
        ``(centers (M, 3), quaternions (M, 4) (x, y, z, w) with w >= 0, sizes (M, 3) = (l, h, w))``,
        float64: geometric centres ``(x, y - h/2, z)`` and rotations by ``ry`` about +y.

    Raises:
        ValueError: not ``(M, 7)``.
    """
    b = np.asarray(cam_boxes, np.float64)
    if b.ndim != 2 or b.shape[1] != 7:
        raise ValueError(f"camera boxes must be (M, 7), got {b.shape}")
    centers = b[:, :3].copy()
    centers[:, 1] -= 0.5 * b[:, 4]
    half = 0.5 * b[:, 6]
    q = np.zeros((len(b), 4))
    q[:, 1], q[:, 3] = np.sin(half), np.cos(half)
    q[q[:, 3] < 0] *= -1.0
    return centers, q, b[:, 3:6].copy()


def camera_boxes_from_poses(
    centers: np.ndarray, rotations: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """Inverse of :func:`camera_box_poses`: optical-frame box poses -> KITTI camera boxes.

    Args:
        centers: ``(M, 3)`` geometric centres, optical frame. rotations: ``(M, 3, 3)`` box axes as
            columns (e.g. :func:`sr3d_ros.frames.matrix_from_quaternion`). sizes: ``(M, 3)`` =
            ``(l, h, w)`` along the local x, y, z.

    Returns:
        ``float64 (M, 7) = (x, y, z, l, h, w, ry)``: ``ry = atan2(-R[2, 0], R[0, 0])`` (heading of
        the length axis about +y), bottom-face centre ``centre + (h / 2) * R[:, 1]`` (exact for
        boxes rotated about +y only).
    """
    c = np.asarray(centers, np.float64).reshape(-1, 3)
    R = np.asarray(rotations, np.float64).reshape(-1, 3, 3)
    s = np.asarray(sizes, np.float64).reshape(-1, 3)
    ry = np.arctan2(-R[:, 2, 0], R[:, 0, 0])
    bottom = c + 0.5 * s[:, 1:2] * R[:, :, 1]
    return np.concatenate([bottom, s, ry[:, None]], axis=1)


def _transforms(calib: Any, frames: KittiBagFrames) -> list[tuple[str, str, np.ndarray]]:
    """The static (parent, child, child -> parent) transforms of a frame's calibration
    (``calib``: a :class:`sr3d_training.datasets.kitti.KittiCalib`)."""
    from sr3d_ros.geometry.camera import OPTICAL_TO_BODY  # torch: imported when used

    body = np.eye(4)
    body[:3, :3] = OPTICAL_TO_BODY
    velo = np.asarray(calib.velo_to_rect)
    return [(frames.body, frames.camera, body), (frames.camera, frames.lidar, velo)]


def build_kitti_bag(
    out: str | Path,
    kitti_root: str | Path,
    frame_ids: Sequence[str] | None = None,
    rate_hz: float = 10.0,
    storage: str = "mcap",
    start_ns: int | None = None,
    topics: KittiBagTopics = KittiBagTopics(),
    frames: KittiBagFrames = KittiBagFrames(),
) -> BagSummary:
    """Write KITTI object frames as a rosbag2 bag (contents in the module docstring).

    Args:
        out: bag folder to create (must not exist).
        kitti_root: the KITTI object folder holding ``image_2/``, ``calib/``, ``label_2/`` and
            optionally ``velodyne/`` (``../shared/data/kitti/training``), or its parent.
        frame_ids: frames in bag order (default: every image of the folder, sorted).
        rate_hz: frames per second of bag time. storage: ``"mcap"`` or ``"sqlite3"`` (``.db3``).
        start_ns: bag time of the first frame, nanoseconds (default: now).
        topics / frames: topic and TF frame names.

    Returns:
        :class:`~sr3d_ros.ros.bag.building.BagSummary` (frames written, start, period, ids).

    Raises:
        ValueError: ``rate_hz <= 0``, no frames, an unknown storage or a malformed KITTI file
        (named). FileNotFoundError: a missing folder or file (named). FileExistsError: ``out``
        exists. The bag is written atomically (:func:`~.builders.bag_writer`): on an error no
        ``out`` appears.
    """
    from sr3d_training.datasets.kitti import KittiDataset, load_kitti_image
    from sr3d_training.datasets.sample import load_points_bin

    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    ds = KittiDataset(kitti_root, frame_ids=frame_ids)
    if not ds.frame_ids:
        raise ValueError(f"no KITTI frames to write from {kitti_root}")
    ts = make_typestore()
    period = int(round(1e9 / rate_hz))
    start = time.time_ns() if start_ns is None else int(start_ns)
    out = Path(out)
    with bag_writer(out, storage) as writer:
        writer.set_custom_data("sr3d.dataset", "kitti")
        writer.set_custom_data("sr3d.sample_ids", json.dumps(ds.frame_ids))
        writer.set_custom_data("sr3d.class_names", json.dumps(list(ds.class_names)))
        with writer:
            conn = {
                "tf": writer.add_connection(topics.tf_static, TF_MESSAGE, typestore=ts),
                "info": writer.add_connection(topics.camera_info, CAMERA_INFO, typestore=ts),
                "image": writer.add_connection(topics.image, IMAGE, typestore=ts),
                "points": writer.add_connection(topics.points, POINTCLOUD2, typestore=ts),
                "gt": writer.add_connection(topics.ground_truth, DETECTION3DARRAY, typestore=ts),
            }
            last_tf: list[np.ndarray] | None = None
            for i, fid in enumerate(ds.frame_ids):
                t = start + i * period
                calib = ds.calib(fid)
                tfs = _transforms(calib, frames)
                if last_tf is None or any(
                    not np.array_equal(a, b[2]) for a, b in zip(last_tf, tfs, strict=True)
                ):
                    writer.write(conn["tf"], t, ts.serialize_cdr(tf_msg(ts, t, tfs), TF_MESSAGE))
                    last_tf = [m for _, _, m in tfs]
                cam = header_msg(ts, t, frames.camera)
                image = load_kitti_image(ds.folder / "image_2" / f"{fid}.png")
                h, w = image.shape[:2]
                info = camera_info_msg(ts, cam, calib.P[2], w, h)
                writer.write(conn["info"], t, ts.serialize_cdr(info, CAMERA_INFO))
                writer.write(conn["image"], t, ts.serialize_cdr(image_msg(ts, cam, image), IMAGE))
                scan = ds.folder / "velodyne" / f"{fid}.bin"
                if scan.is_file():
                    pts = load_points_bin(scan, 4)
                    cloud = pointcloud2_msg(
                        ts, header_msg(ts, t, frames.lidar), pts, fields=KITTI_SCAN_FIELDS
                    )
                    writer.write(conn["points"], t, ts.serialize_cdr(cloud, POINTCLOUD2))
                objects = ds.objects(fid)
                objects = objects.subset(np.isin(objects.names, ds.class_names) & objects.cared)
                centers, quats, sizes = camera_box_poses(objects.camera_boxes())
                gt = detection_array_msg(
                    ts, cam, centers, quats, sizes, objects.score, objects.names.tolist()
                )
                writer.write(conn["gt"], t, ts.serialize_cdr(gt, DETECTION3DARRAY))
    return BagSummary(out, len(ds.frame_ids), start, period, list(ds.frame_ids))
