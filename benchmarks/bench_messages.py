#!/usr/bin/env python3
"""Benchmark: the node's per-frame message builders, our fast path against plain construction.

Per frame the ``pointcloud_detector`` node builds a ``vision_msgs/Detection3DArray``, a
``visualization_msgs/MarkerArray`` (DELETEALL, then per box a LINE_LIST of its 12 edges = 24
points and a TEXT_VIEW_FACING label) and a ``diagnostic_msgs/DiagnosticArray``.
:mod:`sr3d_ros.ros.messages` builds the first two with
:func:`sr3d_ros.ros.fast_msg.fast_builder` (a slot-filling builder generated once per message
class with ``exec``, skipping the rosidl constructor's checks) while Python's cyclic garbage
collector is paused. The reference here builds exactly the same messages
(asserted equal, field by field, before timing) the way any ROS user writes them: the rosidl
constructors with keyword arguments and attribute assignment, collector on. A third variant,
ours with the collector on, separates the two tricks. The DiagnosticArray is built plainly in
both (one status, ~20 key-values).

Boxes: 10, 50 and 500 real ground-truth boxes (ScanNet scene0000_00..02 + SUN RGB-D frames 1-4,
with yaw; 94 real boxes repeated cyclically). Like the node, the process has imported torch and
holds the embedded default model (~170k objects tracked by the collector, nearly all from
importing torch), so collections cost what they cost there.
The variants alternate frame by frame; per size and variant the median and the mean over
``--repeats`` frames are reported (the mean includes the occasional full collection, which the
median hides).

Decision rule (issue 11): the fast path is kept only if, at the node's realistic size
(``--decide-at``, 50 boxes: score threshold 0.3 on an indoor scene), the full per-frame build is
>= 1.5x faster than plain construction and saves >= 1 ms per frame (medians).

    python benchmarks/bench_messages.py [--boxes 10 50 500] [--repeats 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# first: keeps any DDS use on this machine and puts the repository on sys.path
import bench_pointcloud2 as bp

from sr3d_ros.detections import Detections
from sr3d_ros.frames import BoxPoses, box_corners
from sr3d_ros.palette import class_color
from sr3d_ros.ros import messages as M
from sr3d_ros.ros.status_messages import diagnostics_msg

MIN_SPEEDUP = 1.5
MIN_SAVED_MS = 1.0


def real_boxes(n: int) -> Detections:
    """``n`` real ground-truth boxes (ScanNet scenes, then SUN RGB-D frames with yaw) as
    :class:`Detections` with ScanNet class labels and descending scores."""
    import torch

    from sr3d_ros.config import SCANNET_CLASSES
    from sr3d_training.datasets import load_scannet_scene, load_sunrgbd_frame

    root = bp.data_root()
    boxes, labels = [], []
    for s in bp.SCENES:
        smp = load_scannet_scene(root / "scannet" / "scannet_instance_data", s)
        boxes.append(smp.gt_boxes)
        labels.append(smp.gt_labels)
    for f in range(1, 5):
        smp = load_sunrgbd_frame(root / "sunrgbd" / "sunrgbd_trainval", f)
        boxes.append(smp.gt_boxes)
        # SUN RGB-D names mapped onto ScanNet labels where they exist, else 'cabinet'
        names = [smp.class_names[k] for k in smp.gt_labels]
        labels.append(
            np.array([SCANNET_CLASSES.index(c) if c in SCANNET_CLASSES else 0 for c in names])
        )
    b, lab = np.concatenate(boxes), np.concatenate(labels).astype(np.int64)
    reps = -(-n // len(b))  # 94 real boxes in the samples: repeat them cyclically up to n
    b, lab = np.tile(b, (reps, 1))[:n], np.tile(lab, reps)[:n]
    return Detections(
        torch.from_numpy(np.ascontiguousarray(b)),
        torch.linspace(0.95, 0.05, n),
        torch.from_numpy(lab),
        SCANNET_CLASSES,
    )


# ---------------------------------------------------------------------------------------------
# the reference: the same messages with the rosidl constructors + attribute assignment


def _plain_header(header: Any) -> Any:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    stamp = Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec))
    return Header(stamp=stamp, frame_id=str(header.frame_id))


def plain_detections_to_msg(det: Any, header: Any, poses: BoxPoses | None = None) -> Any:
    """:func:`sr3d_ros.ros.messages.detections_to_msg` with the plain rosidl constructors."""
    from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion, Vector3
    from vision_msgs.msg import (
        BoundingBox3D,
        Detection3D,
        Detection3DArray,
        ObjectHypothesis,
        ObjectHypothesisWithPose,
    )

    rows = M._detection_rows(det, poses)  # the same inputs: only the construction differs
    hdr = _plain_header(header)
    out = Detection3DArray(header=_plain_header(header))
    for (cx, cy, cz), (sx, sy, sz), (qx, qy, qz, qw), score, name in rows:
        pose = Pose(
            position=Point(x=cx, y=cy, z=cz), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw)
        )
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis = ObjectHypothesis(class_id=name, score=score)
        hyp.pose = PoseWithCovariance(pose=pose)
        d = Detection3D(header=hdr)
        d.bbox = BoundingBox3D(center=pose, size=Vector3(x=sx, y=sy, z=sz))
        d.results.append(hyp)
        out.detections.append(d)
    return out


def plain_detections_to_markers(
    det: Any,
    header: Any,
    ns: str = "sr3d",
    lifetime: float = 0.0,
    poses: BoxPoses | None = None,
    line_width: float = 0.02,
    text_height: float = 0.12,
) -> Any:
    """:func:`sr3d_ros.ros.messages.detections_to_markers` with the plain rosidl constructors."""
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    boxes, scores, labels, names = M._det_arrays(det)
    p = M._poses(boxes, poses)
    hdr = _plain_header(header)
    s = max(0.0, float(lifetime))
    whole = int(math.floor(s))
    life = Duration(sec=whole, nanosec=min(int(round((s - whole) * 1e9)), 999_999_999))
    th = float(text_height)
    identity = Pose()
    identity.orientation.w = 1.0
    line_scale = Vector3(x=float(line_width))
    text_scale = Vector3(z=th)
    white = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    out = MarkerArray()
    out.markers.append(Marker(header=hdr, ns=ns, id=0, action=Marker.DELETEALL))
    if len(boxes):
        verts = box_corners(p)[:, M._EDGE_INDEX, :].tolist()  # (M, 24, 3)
        up = p.rotations[:, :, 2]
        text_pos = (p.centers + up * (0.5 * p.sizes[:, 2:3] + 0.6 * th)).tolist()
        quat = p.quaternions.tolist()
    for i, (score, label) in enumerate(zip(scores.tolist(), labels.tolist())):
        line = Marker(header=hdr, ns=ns, id=i, type=Marker.LINE_LIST, action=Marker.ADD)
        line.pose = identity
        line.scale = line_scale
        r, g, b = np.asarray(class_color(label), np.float32).tolist()  # float32, as on the wire
        line.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        line.lifetime = life
        line.points = [Point(x=x, y=y, z=z) for x, y, z in verts[i]]
        (tx, ty, tz), (qx, qy, qz, qw) = text_pos[i], quat[i]
        text = Marker(header=hdr, ns=f"{ns}/labels", id=i, type=Marker.TEXT_VIEW_FACING)
        text.action = Marker.ADD
        text.pose = Pose(
            position=Point(x=tx, y=ty, z=tz), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw)
        )
        text.scale = text_scale
        text.color = white
        text.lifetime = life
        text.text = f"{names[label]} {score:.2f}"
        out.markers.append(line)
        out.markers.append(text)
    return out


def frame_diagnostics(header: Any, n_points: int, n_boxes: int) -> Any:
    """The node's per-frame DiagnosticArray (plain construction in both variants)."""
    timings = dict.fromkeys(
        ("wait", "convert", "voxelize", "backbone", "neck", "head", "nms", "inference"), 1.0
    )
    return diagnostics_msg(
        header.stamp,
        "pointcloud_detector: detector",
        "cpu",
        "OK",
        f"{n_boxes} detections",
        {**timings, "publish": 1.0, "total": 9.0},
        n_points,
        n_boxes,
        0,
        extra={
            "input_stamp": f"{header.stamp.sec}.{header.stamp.nanosec:09d}",
            "input_frame_id": header.frame_id,
            "points_used": n_points,
            "frames_received": 1,
            "frames_processed": 1,
            "bad_input_frames": 0,
        },
    )


def build_frame(
    build_msg: Callable[[Any, Any], Any],
    build_markers: Callable[[Any, Any], Any],
    det: Detections,
    header: Any,
    n_points: int,
) -> tuple[Any, Any, Any]:
    """Everything the node builds per frame: detections, markers, diagnostics."""
    return (
        build_msg(det, header),
        build_markers(det, header),
        frame_diagnostics(header, n_points, len(det)),
    )


# ---------------------------------------------------------------------------------------------


def alternate(
    variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Run the variants in turn (``a, b, c, a, b, c, ...``); wall times in ms per variant."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(warmup + repeats):
        for k, fn in variants.items():
            t = time.perf_counter()
            fn()
            dt = (time.perf_counter() - t) * 1e3
            if r >= warmup:
                times[k].append(dt)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--boxes", type=int, nargs="+", default=[10, 50, 500], help="detections")
    ap.add_argument("--decide-at", type=int, default=50, help="the node's realistic box count")
    ap.add_argument("--repeats", type=int, default=60, help="timed frames per size (>= 20)")
    ap.add_argument("--no-model", action="store_true", help="do not load the default model")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.repeats < 20:
        ap.error("use >= 20 repeats")
    if args.decide_at not in args.boxes:
        args.boxes.append(args.decide_at)

    from std_msgs.msg import Header

    model = None
    if not args.no_model:
        from sr3d_ros.inference import PointCloudDetector

        model = PointCloudDetector.from_checkpoint(None, device="cpu")
    tracked = len(gc.get_objects())
    header = Header(frame_id="camera_depth_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 123_456_789
    n_points = 100_000

    fast_msg, fast_markers = M.detections_to_msg, M.detections_to_markers
    gc_on_msg = fast_msg.__wrapped__  # type: ignore[attr-defined]  (the undecorated builders)
    gc_on_markers = fast_markers.__wrapped__  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    for n in sorted(set(args.boxes)):
        det = real_boxes(n)
        # correctness first: all variants build the same messages
        ref_d, ref_m = (
            plain_detections_to_msg(det, header),
            plain_detections_to_markers(det, header),
        )
        assert fast_msg(det, header) == ref_d and gc_on_msg(det, header) == ref_d
        assert fast_markers(det, header) == ref_m and gc_on_markers(det, header) == ref_m
        assert len(ref_m.markers) == 2 * n + 1
        del ref_d, ref_m

        frame_args = (det, header)
        variants = {
            "Detection3DArray ours": partial(fast_msg, *frame_args),
            "Detection3DArray ours, GC on": partial(gc_on_msg, *frame_args),
            "Detection3DArray plain": partial(plain_detections_to_msg, *frame_args),
            "MarkerArray ours": partial(fast_markers, *frame_args),
            "MarkerArray ours, GC on": partial(gc_on_markers, *frame_args),
            "MarkerArray plain": partial(plain_detections_to_markers, *frame_args),
            "DiagnosticArray": partial(frame_diagnostics, header, n_points, n),
            "per frame ours": partial(build_frame, fast_msg, fast_markers, det, header, n_points),
            "per frame ours, GC on": partial(
                build_frame, gc_on_msg, gc_on_markers, det, header, n_points
            ),
            "per frame plain": partial(
                build_frame,
                plain_detections_to_msg,
                plain_detections_to_markers,
                det,
                header,
                n_points,
            ),
        }
        times = alternate(variants, args.repeats)
        for what in ("Detection3DArray", "MarkerArray", "DiagnosticArray", "per frame"):
            row: dict[str, Any] = {"boxes": n, "what": what}
            for suffix, key in (("ours", "ours"), ("ours, GC on", "gc_on"), ("plain", "plain")):
                ts = times.get(f"{what} {suffix}") or times.get(what)
                assert ts is not None
                row[f"{key}_median_ms"] = round(statistics.median(ts), 4)
                row[f"{key}_mean_ms"] = round(statistics.fmean(ts), 4)
            row["ratio"] = round(row["plain_median_ms"] / row["ours_median_ms"], 2)
            row["saved_ms"] = round(row["plain_median_ms"] - row["ours_median_ms"], 3)
            rows.append(row)

    decide = next(r for r in rows if r["boxes"] == args.decide_at and r["what"] == "per frame")
    keep = decide["ratio"] >= MIN_SPEEDUP and decide["saved_ms"] >= MIN_SAVED_MS

    print(
        f"node per-frame message building: ours (fast_builder, GC paused) vs plain rosidl "
        f"construction; {'the default model loaded' if model is not None else 'no model'}, "
        f"{tracked} objects tracked by the GC"
    )
    print(
        f"{args.repeats} frames per size, variants alternating; numpy {np.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print()
    print(
        "| boxes | message          | ours ms med (mean) | ours GC on med (mean) "
        "| plain ms med (mean) | plain/ours | saved ms |"
    )
    print(
        "|------:|:-----------------|-------------------:|----------------------:"
        "|--------------------:|-----------:|---------:|"
    )
    for r in rows:
        print(
            f"| {r['boxes']:5d} | {r['what']:<16} "
            f"| {r['ours_median_ms']:8.3f} ({r['ours_mean_ms']:7.3f}) "
            f"| {r['gc_on_median_ms']:10.3f} ({r['gc_on_mean_ms']:8.3f}) "
            f"| {r['plain_median_ms']:9.3f} ({r['plain_mean_ms']:7.3f}) "
            f"| {r['ratio']:9.2f}x | {r['saved_ms']:8.3f} |"
        )
    print()
    print(
        "per frame = Detection3DArray + MarkerArray + DiagnosticArray (the DiagnosticArray is "
        "built plainly in all variants)."
    )
    print(
        f"decision rule at {args.decide_at} boxes: keep the fast path if plain/ours >= "
        f"{MIN_SPEEDUP}x and it saves >= {MIN_SAVED_MS} ms per frame: "
        f"{decide['ratio']:.2f}x, {decide['saved_ms']:.2f} ms -> "
        + ("KEEP the fast path" if keep else "REPLACE it with plain construction")
    )
    if args.json:
        bp.write_json(
            args.json,
            {
                "benchmark": "node_messages",
                "repeats": args.repeats,
                "model_loaded": model is not None,
                "gc_tracked_objects": tracked,
                **bp.platform_info(),
                "results": rows,
                "decision": {
                    "boxes": args.decide_at,
                    "min_speedup": MIN_SPEEDUP,
                    "min_saved_ms": MIN_SAVED_MS,
                    "keep_fast_path": keep,
                },
            },
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
