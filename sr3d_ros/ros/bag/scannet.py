"""A bag of a real ScanNet scan seen by a moving "sensor": the unaligned scan, the
axis-alignment on ``/tf_static`` and the sensor's motion on ``/tf`` (no ROS needed).

Frames (:class:`ScanNetBagFrames`): ``scannet_aligned`` (the axis-aligned scene frame the
labels live in, z up) ``<- /tf_static M <-`` ``scannet_unaligned`` (the raw sensor-mesh frame;
``M`` = the scene's ``axis_align_matrix``, ``aligned = M p``) ``<- /tf S(t) <-``
``scannet_sensor``, a sensor moving along :func:`sensor_pose` (identity at the first frame,
then turning about a tilted axis while translating: the frame is not gravity-aligned).

Per frame ``i`` at ``t_i = start + i / rate`` (bag time = header stamps):

* ``/points`` (``PointCloud2``, xyz + packed rgb) in ``scannet_sensor``: the unaligned scan
  ``S(t_i)^-1 p`` (computed in float64, stored as float32; frame 0 is the file's points bit for
  bit);
* ``/ground_truth`` (``Detection3DArray``) in ``scannet_sensor``: the scene's aligned boxes moved
  into the sensor frame as full poses (tilted, :func:`sr3d_ros.frames.boxes_from_gravity`);
* ``/tf``: ``S(t)`` at ``t_i - period / 2`` and ``t_i + period / 2`` only, so a lookup at a
  frame's stamp must interpolate (exact here: :func:`sensor_pose` turns at a constant rate
  about a fixed axis and moves at a constant velocity, which is what slerp + lerp reproduce);
* ``/tf_static`` (first message): ``M``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sr3d_ros.frames import boxes_from_gravity
from sr3d_ros.ros.bag.builders import (
    DETECTION3DARRAY,
    POINTCLOUD2,
    TF_MESSAGE,
    bag_writer,
    detection_array_msg,
    header_msg,
    pointcloud2_msg,
    tf_msg,
)
from sr3d_ros.ros.bag.building import BagSummary
from sr3d_ros.ros.bag.typestore import make_typestore

__all__ = ["ScanNetBagFrames", "build_scannet_sensor_bag", "sensor_pose"]

_AXIS = np.array([0.2, -0.1, 1.0]) / np.linalg.norm([0.2, -0.1, 1.0])
_TURN_RAD_S = 0.35
_VELOCITY = np.array([0.4, -0.25, 0.1])


@dataclass(frozen=True)
class ScanNetBagFrames:
    """TF frame names of the ScanNet sensor bag (module docstring)."""

    aligned: str = "scannet_aligned"
    unaligned: str = "scannet_unaligned"
    sensor: str = "scannet_sensor"


def sensor_pose(t_s: float) -> np.ndarray:
    """The moving sensor's pose ``S(t)`` (sensor -> unaligned), ``float64 (4, 4)``.

    ``t_s`` seconds after the first frame: a rotation by ``0.35 t`` rad about the fixed tilted
    axis ``(0.2, -0.1, 1) / |.|`` (Rodrigues) and a translation ``(0.4, -0.25, 0.1) t`` metres;
    identity at ``t = 0``. Our formulation (a test trajectory).
    """
    a = _TURN_RAD_S * float(t_s)
    k = np.array([[0, -_AXIS[2], _AXIS[1]], [_AXIS[2], 0, -_AXIS[0]], [-_AXIS[1], _AXIS[0], 0]])
    T = np.eye(4)
    T[:3, :3] = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)
    T[:3, 3] = _VELOCITY * float(t_s)
    return T


def build_scannet_sensor_bag(
    out: str | Path,
    data_root: str | Path,
    frames: int = 3,
    rate_hz: float = 2.0,
    storage: str = "mcap",
    start_ns: int | None = None,
    points_topic: str = "/points",
    gt_topic: str = "/ground_truth",
    names: ScanNetBagFrames = ScanNetBagFrames(),
) -> BagSummary:
    """Write scene0000_00's raw unaligned scan as a moving sensor (module docstring).

    Args:
        out: bag folder to create (must not exist). data_root: the shared data root holding
            ``scannet/raw/scene0000_00_unaligned.bin`` and its info file.
        frames: how many frames (>= 1). rate_hz: frames per second of bag time.
        storage: ``"mcap"`` or ``"sqlite3"``. start_ns: bag time of the first frame (default
            now). points_topic / gt_topic / names: topic and frame names.

    Returns:
        :class:`~sr3d_ros.ros.bag.building.BagSummary` (sample ids ``scene0000_00@i``).

    Raises:
        ValueError: ``frames < 1``, ``rate_hz <= 0`` or an unknown storage. FileNotFoundError:
        the raw scan or its info file is missing. FileExistsError: ``out`` exists (the bag is
        written atomically).
    """
    from sr3d_training.datasets import load_points_bin, load_scannet_raw_scan

    if frames < 1 or not rate_hz > 0:
        raise ValueError(f"need frames >= 1 and rate_hz > 0, got {frames}, {rate_hz}")
    raw_dir = Path(data_root) / "scannet" / "raw"
    bin_path = raw_dir / "scene0000_00_unaligned.bin"
    sample = load_scannet_raw_scan(bin_path, raw_dir / "scene0000_00_infos_with_axis_align.pkl")
    raw = load_points_bin(bin_path, 6)
    M = np.asarray(sample.meta["axis_align_matrix"], np.float64)
    ts = make_typestore()
    period = int(round(1e9 / rate_hz))
    start = time.time_ns() if start_ns is None else int(start_ns)
    ids = [f"{sample.sample_id}@{i}" for i in range(frames)]
    with bag_writer(out, storage) as writer:
        writer.set_custom_data("sr3d.dataset", "scannet")
        writer.set_custom_data("sr3d.sample_ids", json.dumps(ids))
        writer.set_custom_data("sr3d.class_names", json.dumps(list(sample.class_names)))
        with writer:
            c_static = writer.add_connection("/tf_static", TF_MESSAGE, typestore=ts)
            c_tf = writer.add_connection("/tf", TF_MESSAGE, typestore=ts)
            c_pts = writer.add_connection(points_topic, POINTCLOUD2, typestore=ts)
            c_gt = writer.add_connection(gt_topic, DETECTION3DARRAY, typestore=ts)
            static = tf_msg(ts, start, [(names.aligned, names.unaligned, M)])
            writer.write(c_static, start, ts.serialize_cdr(static, TF_MESSAGE))
            for i in range(frames):
                t = start + i * period
                for tt in (t - period // 2, t + period // 2):
                    S = sensor_pose((tt - start) / 1e9)
                    msg = tf_msg(ts, tt, [(names.unaligned, names.sensor, S)])
                    writer.write(c_tf, tt, ts.serialize_cdr(msg, TF_MESSAGE))
                S = sensor_pose(i * period / 1e9)
                pts = raw.copy()
                if i:  # p_sensor = S^-1 p_unaligned, in float64
                    inv = np.linalg.inv(S)
                    pts[:, :3] = raw[:, :3].astype(np.float64) @ inv[:3, :3].T + inv[:3, 3]
                header = header_msg(ts, t, names.sensor)
                writer.write(
                    c_pts, t, ts.serialize_cdr(pointcloud2_msg(ts, header, pts), POINTCLOUD2)
                )
                poses = boxes_from_gravity(sample.gt_boxes, M @ S)
                labels = [sample.class_names[k] for k in sample.gt_labels]
                gt = detection_array_msg(
                    ts,
                    header,
                    poses.centers,
                    poses.quaternions,
                    poses.sizes,
                    np.ones(len(labels)),
                    labels,
                )
                writer.write(c_gt, t, ts.serialize_cdr(gt, DETECTION3DARRAY))
    return BagSummary(Path(out), frames, start, period, ids)
