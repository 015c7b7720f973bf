#!/usr/bin/env python3
"""Benchmark: the pointcloud_detector node's per-frame work outside the model.

For 100k real ScanNet points (scene0000_00..02) in a real ``sensor_msgs/PointCloud2`` and 100
real ground-truth boxes (ScanNet scenes + SUN RGB-D frames, with yaw; the samples hold 94, repeated
cyclically up to 100) as detections:

* conversion: PointCloud2 -> (N, 6) float32 with :func:`sr3d_ros.ros.pointcloud2.pointcloud2_to_array`
  against a naive per-point decoder (``struct.unpack_from`` loop, from bench_pointcloud2.py);
* node overhead: what the node does per frame besides inference, i.e. the conversion plus the
  is_dense check, Detection3DArray + MarkerArray (DELETEALL, 100 LINE_LISTs, 100 labels) +
  DiagnosticArray building, against the naive decoder plus builders written with the plain rclpy
  constructors (the obvious implementation);
* for information: rclpy serialisation of the built messages (part of ``publish``, not of the
  node's own code).

Median of ``--repeats`` (>= 20) runs each, all in this run. Targets: conversion <= 2 ms and >= 20x
the naive one; overhead <= 5 ms.

    python benchmarks/bench_node.py [--repeats 30] [--json out.json] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Any rclpy/DDS use stays on this machine (project rule); building messages starts no DDS.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="sr3d_ros_log_")  # always our own

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
import bench_pointcloud2 as bp  # noqa: E402  (load_points, make_msg, naive_decode)

from sr3d_ros.ros import pointcloud2 as pc2  # noqa: E402
from sr3d_ros.ros.messages import (  # noqa: E402
    detections_to_markers,
    detections_to_msg,
    diagnostics_msg,
)

CONVERSION_MAX_MS = 2.0
CONVERSION_MIN_SPEEDUP = 20.0
OVERHEAD_MAX_MS = 5.0


def real_boxes(n: int):
    """``n`` real ground-truth boxes (ScanNet scenes, then SUN RGB-D frames with yaw) as
    :class:`Detections` with descending scores."""
    import torch

    from sr3d_ros.config import SCANNET_CLASSES
    from sr3d_ros.detections import Detections
    from sr3d_training.datasets import load_scannet_scene, load_sunrgbd_frame

    root = Path(os.environ.get("SR3D_DATA", REPO.parent / "shared" / "data"))
    boxes, labels = [], []
    for s in bp.SCENES:
        smp = load_scannet_scene(root / "scannet" / "scannet_instance_data", s)
        boxes.append(smp.gt_boxes)
        labels.append(smp.gt_labels)
    for f in range(1, 5):
        smp = load_sunrgbd_frame(root / "sunrgbd" / "sunrgbd_trainval", f)
        boxes.append(smp.gt_boxes)
        # SUN RGB-D names mapped onto ScanNet labels where they exist, else 'cabinet'
        labels.append(
            np.array(
                [
                    SCANNET_CLASSES.index(smp.class_names[k])
                    if smp.class_names[k] in SCANNET_CLASSES
                    else 0
                    for k in smp.gt_labels
                ],
                np.int64,
            )
        )
    b, lab = np.concatenate(boxes), np.concatenate(labels)
    reps = -(-n // len(b))  # 94 real boxes in the samples: repeat them cyclically up to n
    b, lab = np.tile(b, (reps, 1))[:n], np.tile(lab, reps)[:n]
    return Detections(
        torch.from_numpy(np.ascontiguousarray(b)),
        torch.linspace(0.95, 0.05, n),
        torch.from_numpy(lab),
        SCANNET_CLASSES,
    )


# ---------------------------------------------------------------------------------------------
# the naive reference: per-point decoding + builders with the plain rclpy constructors


def naive_detections(det, header):
    """Detection3DArray with the plain rclpy constructors."""
    import math

    from std_msgs.msg import Header
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

    arr = Detection3DArray(header=header)
    scores = det.scores.numpy().astype(float)
    labels = det.labels.numpy()
    for i, (x, y, z, dx, dy, dz, yaw) in enumerate(det.boxes.numpy().astype(float).tolist()):
        d = Detection3D(header=Header(frame_id=header.frame_id, stamp=header.stamp))
        d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z = x, y, z
        d.bbox.center.orientation.z, d.bbox.center.orientation.w = (
            math.sin(yaw / 2),
            math.cos(yaw / 2),
        )
        d.bbox.size.x, d.bbox.size.y, d.bbox.size.z = dx, dy, dz
        h = ObjectHypothesisWithPose()
        h.hypothesis.class_id = det.class_names[int(labels[i])]
        h.hypothesis.score = float(scores[i])
        h.pose.pose = d.bbox.center
        d.results.append(h)
        arr.detections.append(d)
    return arr


def naive_markers(det, header):
    """MarkerArray (DELETEALL, LINE_LIST of the 12 edges, TEXT label per box) with the plain rclpy
    constructors."""
    import math

    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA, Header
    from visualization_msgs.msg import Marker, MarkerArray

    ma = MarkerArray()
    ma.markers.append(Marker(header=header, ns="sr3d", action=Marker.DELETEALL))
    signs = [(sx, sy, sz) for sz in (-1, 1) for sy in (-1, 1) for sx in (-1, 1)]
    edges = [
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 7),
        (0, 2),
        (1, 3),
        (4, 6),
        (5, 7),
        (0, 4),
        (1, 5),
        (2, 6),
        (3, 7),
    ]
    scores = det.scores.numpy().astype(float)
    labels = det.labels.numpy()
    for i, (x, y, z, dx, dy, dz, yaw) in enumerate(det.boxes.numpy().astype(float).tolist()):
        c, s = math.cos(yaw), math.sin(yaw)
        corners = [
            (
                x + c * sx * dx / 2 - s * sy * dy / 2,
                y + s * sx * dx / 2 + c * sy * dy / 2,
                z + sz * dz / 2,
            )
            for sx, sy, sz in signs
        ]
        m = Marker(
            header=Header(frame_id=header.frame_id, stamp=header.stamp),
            ns="sr3d",
            id=i,
            type=Marker.LINE_LIST,
            action=Marker.ADD,
            lifetime=Duration(),
        )
        m.pose.orientation.w = 1.0
        m.scale.x = 0.02
        m.color = ColorRGBA(r=1.0, g=0.0, b=0.0, a=1.0)
        for a, b in edges:
            m.points.append(Point(x=corners[a][0], y=corners[a][1], z=corners[a][2]))
            m.points.append(Point(x=corners[b][0], y=corners[b][1], z=corners[b][2]))
        t = Marker(
            header=Header(frame_id=header.frame_id, stamp=header.stamp),
            ns="sr3d/labels",
            id=i,
            type=Marker.TEXT_VIEW_FACING,
            action=Marker.ADD,
            text=f"{det.class_names[int(labels[i])]} {scores[i]:.2f}",
        )
        t.pose.position.x, t.pose.position.y, t.pose.position.z = x, y, z + dz / 2 + 0.07
        t.pose.orientation.w = 1.0
        t.scale.z = 0.12
        t.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        ma.markers.append(m)
        ma.markers.append(t)
    return ma


def naive_diagnostics(header):
    """DiagnosticArray with the plain rclpy constructors."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from std_msgs.msg import Header

    st = DiagnosticStatus(level=b"\x00", name="pointcloud_detector: detector", message="ok")
    st.values = [KeyValue(key="points_in", value="100000")]
    return DiagnosticArray(header=Header(stamp=header.stamp), status=[st])


# ---------------------------------------------------------------------------------------------


def timeit(fn, repeats: int, warmup: int = 2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts), min(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="points per cloud (default 100000)")
    ap.add_argument("--boxes", type=int, default=100, help="detections (default 100)")
    ap.add_argument("--repeats", type=int, default=30, help="timed runs of ours (>= 20)")
    ap.add_argument(
        "--naive-repeats", type=int, default=20, help="timed runs of the naive ones (>= 20)"
    )
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)
    if args.repeats < 20 or args.naive_repeats < 20:
        ap.error("use >= 20 repeats")

    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from sr3d_ros.ros.messages import detection3d_array_to_boxes

    points = bp.load_points(args.n)
    layout, data = pc2.points_to_cloud(points)
    msg, msg_kind = bp.make_msg(layout, data)
    msg.header = Header(frame_id="camera_depth_optical_frame")
    msg.header.stamp.sec = 1_700_000_000
    det = real_boxes(args.boxes)
    header = msg.header

    # correctness first: both converters exact, both builders the same boxes
    ours_pts, _ = pc2.pointcloud2_to_array(msg)
    assert np.array_equal(ours_pts, points) and np.array_equal(bp.naive_decode(msg), points)
    ref = det.boxes.numpy()
    for built in (detections_to_msg(det, header), naive_detections(det, header)):
        b, _, names = detection3d_array_to_boxes(built)
        assert np.allclose(b[:, :6], ref[:, :6], atol=1e-5) and names == det.names
    assert len(detections_to_markers(det, header).markers) == 2 * args.boxes + 1

    def node_overhead():
        pts, info = pc2.pointcloud2_to_array(msg)
        if info.valid_mask is None:  # the node's is_dense verification
            np.isfinite(pts[:, 0]) & np.isfinite(pts[:, 1]) & np.isfinite(pts[:, 2])
        detections_to_msg(det, header)
        detections_to_markers(det, header)
        diagnostics_msg(
            header.stamp,
            "pointcloud_detector: detector",
            "cpu",
            "OK",
            "ok",
            {"convert": 1.0, "backbone": 2.0},
            len(pts),
            len(det),
            0,
        )

    def naive_overhead():
        pts = bp.naive_decode(msg)
        np.isfinite(pts[:, 0]) & np.isfinite(pts[:, 1]) & np.isfinite(pts[:, 2])
        naive_detections(det, header)
        naive_markers(det, header)
        naive_diagnostics(header)

    built = (detections_to_msg(det, header), detections_to_markers(det, header))

    rows = []

    def add(name, ours_fn, naive_fn, target, ours_repeats=args.repeats):
        med, mn = timeit(ours_fn, ours_repeats)
        row = {"what": name, "ours_median_ms": round(med, 3), "ours_min_ms": round(mn, 3)}
        if naive_fn is not None:
            nmed, _ = timeit(naive_fn, args.naive_repeats, warmup=1)
            row.update(naive_median_ms=round(nmed, 2), speedup=round(nmed / med, 1))
        row["target"] = target
        rows.append(row)
        return row

    conv = add(
        f"PointCloud2 -> (N, 6), {args.n} points",
        lambda: pc2.pointcloud2_to_array(msg),
        lambda: bp.naive_decode(msg),
        f"<= {CONVERSION_MAX_MS} ms, >= {CONVERSION_MIN_SPEEDUP:.0f}x",
    )
    add(
        f"Detection3DArray, {args.boxes} boxes",
        lambda: detections_to_msg(det, header),
        lambda: naive_detections(det, header),
        "",
    )
    add(
        f"MarkerArray, {args.boxes} boxes ({2 * args.boxes + 1} markers)",
        lambda: detections_to_markers(det, header),
        lambda: naive_markers(det, header),
        "",
    )
    over = add(
        "node overhead (conversion + all messages)",
        node_overhead,
        naive_overhead,
        f"<= {OVERHEAD_MAX_MS} ms",
    )
    add(
        "(info) rclpy serialisation of detections + markers",
        lambda: [serialize_message(m) for m in built],
        None,
        "",
    )

    conv_ok = (
        conv["ours_median_ms"] <= CONVERSION_MAX_MS and conv["speedup"] >= CONVERSION_MIN_SPEEDUP
    )
    over_ok = over["ours_median_ms"] <= OVERHEAD_MAX_MS
    ok = conv_ok and over_ok

    w = max(len(r["what"]) for r in rows)
    print(
        f"pointcloud_detector per-frame work outside the model: {args.n} real ScanNet points "
        f"({msg_kind}), {args.boxes} real GT boxes"
    )
    print(
        f"median of {args.repeats} runs (ours) / {args.naive_repeats} runs (naive); numpy "
        f"{np.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print()
    print(f"| {'what':<{w}} | ours ms (min)    | naive ms | ratio  | target                    |")
    print(f"|{'-' * (w + 2)}|-----------------:|---------:|-------:|:--------------------------|")
    for r in rows:
        naive = f"{r['naive_median_ms']:8.1f}" if "naive_median_ms" in r else f"{'-':>8}"
        ratio = f"{r['speedup']:5.0f}x" if "speedup" in r else f"{'-':>6}"
        target = r["target"]
        if r is conv:
            target += "  " + ("ok" if conv_ok else "MISS")
        elif r is over:
            target += "  " + ("ok" if over_ok else "MISS")
        print(
            f"| {r['what']:<{w}} | {r['ours_median_ms']:7.3f} ({r['ours_min_ms']:6.3f}) "
            f"| {naive} | {ratio} | {target:<25} |"
        )
    print()
    print(
        "naive: per-point struct.unpack_from decoding; messages built with the plain rclpy "
        "constructors. Serialisation happens inside rclpy's publish (C), for both alike."
    )
    print(
        f"targets: conversion <= {CONVERSION_MAX_MS} ms and >= {CONVERSION_MIN_SPEEDUP:.0f}x "
        f"naive; overhead <= {OVERHEAD_MAX_MS} ms: {'met' if ok else 'MISSED'}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "node_overhead",
                    "n_points": args.n,
                    "n_boxes": args.boxes,
                    "repeats": args.repeats,
                    "naive_repeats": args.naive_repeats,
                    "message_class": msg_kind,
                    "numpy": np.__version__,
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "cpu_count": os.cpu_count(),
                    "results": rows,
                    "targets": {
                        "conversion_max_ms": CONVERSION_MAX_MS,
                        "conversion_min_speedup": CONVERSION_MIN_SPEEDUP,
                        "overhead_max_ms": OVERHEAD_MAX_MS,
                        "met": ok,
                    },
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {args.json}")
    return 0 if (ok or not args.check) else 1


if __name__ == "__main__":
    sys.exit(main())
