#!/usr/bin/env python3
"""Benchmark: the pointcloud_detector node's per-frame work outside the model.

For 100k real ScanNet points (scene0000_00..02) in a real ``sensor_msgs/PointCloud2`` and 100
real ground-truth boxes (ScanNet scenes + SUN RGB-D frames, with yaw; the samples hold 94,
repeated cyclically up to 100) as detections:

* conversion: PointCloud2 -> (N, 6) float32 with
  :func:`sr3d_ros.ros.pointcloud2.pointcloud2_to_array` against a naive per-point decoder
  (``struct.unpack_from`` loop, from bench_pointcloud2.py);
* node overhead: what the node does per frame besides inference, i.e. the conversion plus the
  is_dense check, Detection3DArray + MarkerArray (DELETEALL, 100 LINE_LISTs, 100 labels) +
  DiagnosticArray building, against the naive decoder plus the same messages built with the plain
  rosidl constructors (bench_messages.py, which also times the builders at 10 / 50 / 500 boxes);
* for information: rclpy serialisation of the built messages (part of ``publish``, not of the
  node's own code).

Median of ``--repeats`` (>= 20) runs each, all in this run. Targets: conversion <= 2 ms and >= 20x
the naive one; overhead <= 5 ms.

    python benchmarks/bench_node.py [--repeats 30] [--json out.json] [--check]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# first: keeps any DDS use on this machine and puts the repository on sys.path
import bench_pointcloud2 as bp
from bench_messages import (
    build_frame,
    plain_detections_to_markers,
    plain_detections_to_msg,
    real_boxes,
)

from sr3d_ros.ros import pointcloud2 as pc2
from sr3d_ros.ros.messages import detections_to_markers, detections_to_msg

CONVERSION_MAX_MS = 2.0
CONVERSION_MIN_SPEEDUP = 20.0
OVERHEAD_MAX_MS = 5.0


def node_overhead(
    decode: Callable[[Any], np.ndarray],
    build_msg: Callable[[Any, Any], Any],
    build_markers: Callable[[Any, Any], Any],
    msg: Any,
    det: Any,
) -> None:
    """One frame of the node's work outside the model: decode, the is_dense check, messages."""
    pts = decode(msg)
    np.isfinite(pts[:, 0]) & np.isfinite(pts[:, 1]) & np.isfinite(pts[:, 2])
    build_frame(build_msg, build_markers, det, msg.header, len(pts))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
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

    points = bp.load_points(args.n)
    layout, data = pc2.points_to_cloud(points)
    msg, msg_kind = bp.make_msg(layout, data)
    msg.header = Header(frame_id="camera_depth_optical_frame")
    msg.header.stamp.sec = 1_700_000_000
    det = real_boxes(args.boxes)
    header = msg.header

    def ours_decode(m: Any) -> np.ndarray:
        return pc2.pointcloud2_to_array(m)[0]

    # correctness first: both converters exact, both builders the same messages
    assert np.array_equal(ours_decode(msg), points)
    assert np.array_equal(bp.naive_decode(msg), points)
    built = (detections_to_msg(det, header), detections_to_markers(det, header))
    assert built[0] == plain_detections_to_msg(det, header)
    assert built[1] == plain_detections_to_markers(det, header)

    rows: list[dict[str, Any]] = []

    def add(
        name: str,
        ours_fn: Callable[[], object],
        naive_fn: Callable[[], object] | None,
        target: str,
    ) -> dict[str, Any]:
        med, mn = bp.timeit(ours_fn, args.repeats)
        row: dict[str, Any] = {
            "what": name,
            "ours_median_ms": round(med, 3),
            "ours_min_ms": round(mn, 3),
        }
        if naive_fn is not None:
            nmed, _ = bp.timeit(naive_fn, args.naive_repeats, warmup=1)
            row.update(naive_median_ms=round(nmed, 2), speedup=round(nmed / med, 1))
        row["target"] = target
        rows.append(row)
        return row

    conv = add(
        f"PointCloud2 -> (N, 6), {args.n} points",
        partial(pc2.pointcloud2_to_array, msg),
        partial(bp.naive_decode, msg),
        f"<= {CONVERSION_MAX_MS} ms, >= {CONVERSION_MIN_SPEEDUP:.0f}x",
    )
    add(
        f"Detection3DArray, {args.boxes} boxes",
        partial(detections_to_msg, det, header),
        partial(plain_detections_to_msg, det, header),
        "",
    )
    add(
        f"MarkerArray, {args.boxes} boxes ({2 * args.boxes + 1} markers)",
        partial(detections_to_markers, det, header),
        partial(plain_detections_to_markers, det, header),
        "",
    )
    over = add(
        "node overhead (conversion + all messages)",
        partial(node_overhead, ours_decode, detections_to_msg, detections_to_markers, msg, det),
        partial(
            node_overhead,
            bp.naive_decode,
            plain_detections_to_msg,
            plain_detections_to_markers,
            msg,
            det,
        ),
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
        ratio = f"{r['speedup']:5.1f}x" if "speedup" in r else f"{'-':>6}"
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
        "naive: per-point struct.unpack_from decoding; the same messages built with the plain "
        "rosidl constructors. Serialisation happens inside rclpy's publish (C), for both alike."
    )
    print(
        f"targets: conversion <= {CONVERSION_MAX_MS} ms and >= {CONVERSION_MIN_SPEEDUP:.0f}x "
        f"naive; overhead <= {OVERHEAD_MAX_MS} ms: {'met' if ok else 'MISSED'}"
    )
    if args.json:
        bp.write_json(
            args.json,
            {
                "benchmark": "node_overhead",
                "n_points": args.n,
                "n_boxes": args.boxes,
                "repeats": args.repeats,
                "naive_repeats": args.naive_repeats,
                "message_class": msg_kind,
                **bp.platform_info(),
                "results": rows,
                "targets": {
                    "conversion_max_ms": CONVERSION_MAX_MS,
                    "conversion_min_speedup": CONVERSION_MIN_SPEEDUP,
                    "overhead_max_ms": OVERHEAD_MAX_MS,
                    "met": ok,
                },
            },
        )
        print(f"wrote {args.json}")
    return 0 if (ok or not args.check) else 1


if __name__ == "__main__":
    sys.exit(main())
