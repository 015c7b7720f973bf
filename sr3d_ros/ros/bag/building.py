"""Bags from real dataset samples: scans as ``sensor_msgs/PointCloud2`` (xyz + packed rgb) on
``/points`` and their ground truth as ``vision_msgs/Detection3DArray`` on ``/ground_truth`` (same
header stamp and frame), one frame per ``1 / rate`` seconds of bag time. No ROS needed.

Bag time: the header stamps and the bag timestamps are equal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sr3d_ros.ros.bag.builders import (
    DETECTION3DARRAY,
    POINTCLOUD2,
    bag_writer,
    header_msg,
    pointcloud2_msg,
    yaw_detection_array_msg,
)
from sr3d_ros.ros.bag.typestore import make_typestore

__all__ = [
    "DETECTION3DARRAY",
    "GT_TOPIC",
    "POINTCLOUD2",
    "POINTS_TOPIC",
    "BagSummary",
    "build_bag",
    "load_samples",
]

POINTS_TOPIC = "/points"
GT_TOPIC = "/ground_truth"


def load_samples(dataset: str, data_root: str | Path, ids: Sequence[str]) -> list[Any]:
    """Real dataset samples (:class:`sr3d_training.datasets.Sample`) for a bag.

    Args:
        dataset: ``"scannet"`` (ids = scene ids, from ``<root>/scannet/scannet_instance_data``)
            or ``"sunrgbd"`` (ids = frame ids, from ``<root>/sunrgbd/sunrgbd_trainval``).
        data_root: the shared data root (``../shared/data``).
        ids: which scenes / frames, in bag order.

    Returns:
        ``Sample`` objects: points float32 (N, 6) gravity-aligned, rgb 0..255; gt boxes (K, 7).
        (``Any``: the core does not import the training package's types.)

    Raises:
        ValueError: unknown dataset. FileNotFoundError: missing files (the message names them).
    """
    root = Path(data_root)
    if dataset == "scannet":
        from sr3d_training.datasets import ScanNetDataset

        ds = ScanNetDataset(root / "scannet", scene_ids=list(ids))
        return [ds[i] for i in range(len(ds))]
    if dataset == "sunrgbd":
        from sr3d_training.datasets import load_sunrgbd_frame

        return [load_sunrgbd_frame(root / "sunrgbd" / "sunrgbd_trainval", i) for i in ids]
    raise ValueError(f"unknown dataset {dataset!r}: use 'scannet' or 'sunrgbd'")


@dataclass
class BagSummary:
    """What :func:`build_bag` wrote: the bag folder, the number of frames, the bag time of the
    first frame and the period between frames (nanoseconds), and the samples' ids in order."""

    path: Path
    frames: int
    start_ns: int
    period_ns: int
    sample_ids: list[str] = field(default_factory=list)


def build_bag(
    out: str | Path,
    samples: Sequence[Any],
    rate_hz: float = 0.5,
    frame_id: str = "map",
    start_ns: int | None = None,
    points_topic: str = POINTS_TOPIC,
    gt_topic: str = GT_TOPIC,
    storage: str = "mcap",
) -> BagSummary:
    """Write dataset samples as a rosbag2 bag (MCAP or SQLite 3).

    Args:
        out: bag folder to create (must not exist).
        samples: objects with ``points`` float32 (N, 6) (xyz metres + rgb 0..255),
            ``gt_boxes`` (K, 7) ``(x, y, z, dx, dy, dz, yaw)`` in the points' frame,
            ``gt_labels`` (K,), ``class_names`` and ``sample_id``
            (:class:`sr3d_training.datasets.Sample`).
        rate_hz: frames per second of bag time (frame ``i`` at ``start + i / rate``).
        frame_id: ``header.frame_id`` of every message (the points' frame).
        start_ns: bag time of the first frame, nanoseconds (default: now).
        points_topic / gt_topic: topic names.
        storage: ``"mcap"`` (chunk CRCs written) or ``"sqlite3"`` (``.db3``).

    Returns:
        :class:`BagSummary`. The bag's ``custom_data`` holds ``sr3d.sample_ids`` and
        ``sr3d.class_names`` (JSON lists). Ground-truth hypotheses have score 1.

    Raises:
        ValueError: ``rate_hz <= 0``, no samples or an unknown storage. FileExistsError:
        ``out`` exists. The bag is written atomically (:func:`~.builders.bag_writer`).
    """
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    if not samples:
        raise ValueError("no samples to write")
    ts = make_typestore()
    period = int(round(1e9 / rate_hz))
    start = time.time_ns() if start_ns is None else int(start_ns)
    out = Path(out)
    with bag_writer(out, storage) as writer:
        writer.set_custom_data("sr3d.sample_ids", json.dumps([str(s.sample_id) for s in samples]))
        writer.set_custom_data("sr3d.class_names", json.dumps(list(samples[0].class_names)))
        with writer:
            c_pts = writer.add_connection(points_topic, POINTCLOUD2, typestore=ts)
            c_gt = writer.add_connection(gt_topic, DETECTION3DARRAY, typestore=ts)
            for i, s in enumerate(samples):
                t = start + i * period
                header = header_msg(ts, t, frame_id)
                cloud = pointcloud2_msg(ts, header, np.asarray(s.points, np.float32))
                writer.write(c_pts, t, ts.serialize_cdr(cloud, POINTCLOUD2))
                names = [s.class_names[int(k)] for k in np.asarray(s.gt_labels).reshape(-1)]
                gt = yaw_detection_array_msg(ts, header, s.gt_boxes, np.ones(len(names)), names)
                writer.write(c_gt, t, ts.serialize_cdr(gt, DETECTION3DARRAY))
    return BagSummary(out, len(samples), start, period, [str(s.sample_id) for s in samples])
