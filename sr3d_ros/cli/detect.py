"""``sr3d-detect``: detect 3D objects in a point-cloud file or an image, write JSON (+ PNG).

    sr3d-detect scene.ply --checkpoint model.pt --out detections.json --render detections.png
    sr3d-detect scene0000_00_vert_all.npy --gt scene0000_00_bbox.npy --render out.png
    sr3d-detect 000000.bin --bin-columns 4 --checkpoint kitti_like.pt   # KITTI x, y, z, intensity
    sr3d-detect 000007.png --calib calib/000007.txt --checkpoint mono.pt   # monocular: JSON + PNG

Images (suffix in :data:`sr3d_ros.io.images.IMAGE_SUFFIXES`) go to the monocular detector
(:mod:`sr3d_ros.cli.detect_image`; needs ``--calib``). For point clouds:

The cloud must be in a gravity-aligned frame (z up), metres, rgb 0..255 when present (see
:func:`sr3d_ros.io.read_points`). The JSON holds :meth:`Detections.to_dict` (boxes ``(x, y, z,
dx, dy, dz, yaw)``: geometric centre, full sizes, yaw about +z, metres / radians, in the input's
frame; scores; class names; per-stage timings in ms) plus the input file, the checkpoint and its
provenance, and the device. Exit status: 0 success, 1 error (missing file, bad cloud or
checkpoint), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..checkpoints import CheckpointError
from ..classes import nyu40_boxes_to_labels
from ..config import ConfigError
from ..detections import Detections
from ..inference import PointCloudDetector, default_checkpoint_path
from ..io.atomic import atomic_write_json
from ..io.images import IMAGE_SUFFIXES
from ..io.pointclouds import DEFAULT_BIN_COLUMNS, SUPPORTED_SUFFIXES, read_points
from .detect_image import checkpoint_path, checkpoint_record

__all__ = ["build_parser", "load_gt_boxes", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = argparse.ArgumentParser(
        prog="sr3d-detect",
        description="Detect 3D objects in a point cloud (TR3D architecture) or an image "
        "(LeAD-M3D, with --calib), write JSON (+ PNG).",
    )
    p.add_argument(
        "cloud",
        metavar="INPUT",
        help=f"point cloud file ({', '.join(SUPPORTED_SUFFIXES)}; gravity-aligned, z up, metres) "
        f"or image ({', '.join(IMAGE_SUFFIXES)}; with --calib)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="sr3d_ros checkpoint (.pt) or a shipped model's name (a file stem in "
        "sr3d_ros/models/weights, e.g. sr3d_scannet_default); default: the embedded default "
        "model of the input's kind",
    )
    p.add_argument(
        "--calib",
        default=None,
        help="images: KITTI calib.txt (P2) or ROS camera_info .yaml of the image's camera (read "
        "by the image node's rules: P or K, plumb_bob / rational_polynomial undistortion, roi, "
        "binning, scaling)",
    )
    p.add_argument(
        "--gate-topk",
        type=int,
        default=None,
        help="images: candidates whose 3D branches run (CGI3D; default: the checkpoint's, 50)",
    )
    p.add_argument(
        "--full-3d-head",
        action="store_true",
        help="images: run the 3D branches on the full feature maps (no CGI3D gating; same boxes)",
    )
    p.add_argument(
        "--out", default="detections.json", help="output JSON (default: detections.json)"
    )
    p.add_argument(
        "--render",
        default=None,
        metavar="PNG",
        help="also render the cloud with the detections to this PNG (images: always rendered, "
        "default: the --out path with .png)",
    )
    p.add_argument(
        "--gt",
        default=None,
        metavar="NPY",
        help="ground-truth boxes .npy to draw in the rendering (see --gt-format)",
    )
    p.add_argument(
        "--gt-format",
        choices=("auto", "boxes", "scannet"),
        default="auto",
        help="boxes: (K, 6|7) = x, y, z, dx, dy, dz[, yaw] or (K, 8) with a class index last; "
        "scannet: mmdetection3d ScanNet *_bbox.npy (K, 7) = cx, cy, cz, dx, dy, dz, nyu40 id; "
        "auto: scannet for *_bbox.npy files with integer nyu40 ids in the last column, else boxes",
    )
    p.add_argument(
        "--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ..."
    )
    p.add_argument(
        "--max-range",
        type=float,
        default=20.0,
        help="drop points farther than this many metres from the origin before detection "
        "(default 20, suits the indoor models; 0 = no limit)",
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="override the checkpoint's score threshold",
    )
    p.add_argument(
        "--iou-threshold", type=float, default=None, help="override the per-class NMS IoU threshold"
    )
    p.add_argument("--nms-pre", type=int, default=None, help="override the top-k before NMS")
    p.add_argument(
        "--max-detections", type=int, default=None, help="override the cap on detections (0 = none)"
    )
    p.add_argument(
        "--bin-columns",
        type=int,
        choices=(3, 4, 6),
        default=DEFAULT_BIN_COLUMNS,
        help="float32 values per .bin record: 6 = xyz + rgb (default), "
        "4 = KITTI xyz + intensity, 3 = xyz",
    )
    p.add_argument(
        "--render-min-score",
        type=float,
        default=0.3,
        help="draw detections scoring at least this (default 0.3)",
    )
    p.add_argument(
        "--render-backend",
        choices=("auto", "open3d", "bev"),
        default="auto",
        help="auto: open3d offscreen 3D view, top-down Pillow fallback; bev: top-down only",
    )
    p.add_argument(
        "--image-size", type=int, nargs=2, default=(1280, 960), metavar=("W", "H"), help="PNG size"
    )
    return p


def load_gt_boxes(path: str | Path, fmt: str = "auto") -> tuple[np.ndarray, np.ndarray | None, str]:
    """Read ground-truth boxes for rendering.

    Args:
        path: ``.npy`` file.
        fmt: ``"boxes"``: ``(K, 6)``/``(K, 7)`` boxes in the sr3d_ros convention (geometric
            centre, full sizes, yaw) or ``(K, 8)`` with the class index in the last column;
            ``"scannet"``: mmdetection3d ``*_bbox.npy`` ``(K, 7)`` with nyu40 ids (boxes of
            ids outside the 18 detection classes are dropped); ``"auto"``: see the CLI help.

    Returns:
        ``(boxes (K, 7) float32, labels (K,) int64 or None, format used)``.

    Raises:
        FileNotFoundError: missing file. ValueError: wrong shape or format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: not a plain numeric .npy array: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] not in (6, 7, 8):
        raise ValueError(f"{path}: ground truth must be (K, 6), (K, 7) or (K, 8), got {arr.shape}")
    arr = arr.astype(np.float64)
    if fmt == "auto":
        last = arr[:, 6] if arr.shape[1] == 7 else None
        is_ids = (
            last is not None
            and len(last) > 0
            and np.all(last == np.round(last))
            and np.all((last >= 1) & (last <= 40))
        )
        fmt = "scannet" if (is_ids and path.name.endswith("_bbox.npy")) else "boxes"
    if fmt == "scannet":
        if arr.shape[1] != 7:
            raise ValueError(
                f"{path}: ScanNet *_bbox.npy must be (K, 7) = box + nyu40 id, got {arr.shape}"
            )
        boxes, labels = nyu40_boxes_to_labels(arr)
        return boxes, labels, "scannet"
    if fmt != "boxes":
        raise ValueError(f"unknown ground-truth format {fmt!r}")
    class_index = arr[:, 7].astype(np.int64) if arr.shape[1] == 8 else None
    seven = arr[:, :7] if arr.shape[1] >= 7 else np.concatenate([arr, np.zeros((len(arr), 1))], 1)
    return seven.astype(np.float32), class_index, "boxes"


def _summary(det: Detections, n_points: int, wall_ms: float) -> str:
    lines = [
        f"{len(det)} detections in {n_points} points ({wall_ms:.0f} ms; "
        + ", ".join(f"{k} {v:.1f}" for k, v in det.timings_ms.items())
        + " ms)"
    ]
    for d in det.to_dict()["detections"][:10]:
        c, s = d["box"]["center"], d["box"]["size"]
        lines.append(
            f"  {d['class_name']:<15} {d['score']:.3f}  "
            f"centre ({c[0]:.2f}, {c[1]:.2f}, {c[2]:.2f})  "
            f"size ({s[0]:.2f}, {s[1]:.2f}, {s[2]:.2f})  yaw {d['box']['yaw']:.2f}"
        )
    if len(det) > 10:
        lines.append(f"  ... {len(det) - 10} more in the JSON")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run detection on one file. Returns the exit status (0 ok, 1 error, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if Path(args.cloud).suffix.lower() in IMAGE_SUFFIXES:
        from .detect_image import run_image

        return run_image(args, parser)
    if args.calib is not None or args.gate_topk is not None or args.full_3d_head:
        parser.error("--calib, --gate-topk and --full-3d-head apply to images only")
    overrides = {
        k: v
        for k, v in (
            ("score_threshold", args.score_threshold),
            ("iou_threshold", args.iou_threshold),
            ("nms_pre", args.nms_pre),
            ("max_detections", args.max_detections),
        )
        if v is not None
    }

    def fail(msg: str) -> int:
        print(f"sr3d-detect: error: {msg}", file=sys.stderr)
        return 1

    try:
        ckpt_path = checkpoint_path(args.checkpoint, default_checkpoint_path(), "embedded default")
        points = read_points(args.cloud, bin_columns=args.bin_columns)
        gt = load_gt_boxes(args.gt, args.gt_format) if args.gt else None
        detector = PointCloudDetector.from_checkpoint(ckpt_path, device=args.device, **overrides)
        detector.limits = dataclasses.replace(detector.limits, max_range=args.max_range)
    except (FileNotFoundError, CheckpointError, ConfigError, ValueError, ImportError) as exc:
        return fail(str(exc))
    t0 = time.perf_counter()
    try:
        det = detector(points).to("cpu")
    except ValueError as exc:  # e.g. colours outside 0..255
        return fail(f"{args.cloud}: {exc}")
    wall_ms = (time.perf_counter() - t0) * 1e3

    payload: dict[str, Any] = {
        "sr3d_ros_version": __version__,
        "input": {
            "path": str(Path(args.cloud).resolve()),
            "num_points": int(points.shape[0]),
            "points_non_finite": detector.last_crop.non_finite,
            "points_out_of_range": detector.last_crop.out_of_range,
            "columns": int(points.shape[1]),
            **({"bin_columns": args.bin_columns} if args.cloud.lower().endswith(".bin") else {}),
        },
        "checkpoint": checkpoint_record(ckpt_path, args.checkpoint is None, detector),
        "device": str(detector.device),
        "wall_ms": wall_ms,
        **det.to_dict(),
    }
    if args.render:
        from ..io.render import render_detections

        gt_boxes, gt_labels = (gt[0], gt[1]) if gt is not None else (None, None)
        info: dict[str, str | int] = {}
        try:
            render_detections(
                points,
                det,
                args.render,
                gt_boxes=gt_boxes,
                gt_labels=gt_labels,
                class_names=detector.class_names,
                image_size=tuple(args.image_size),
                min_score=args.render_min_score,
                title=Path(args.cloud).name,
                backend=args.render_backend,
                info=info,
            )
        except (RuntimeError, ValueError) as exc:
            return fail(f"rendering failed: {exc}")
        payload["render"] = {
            "path": str(Path(args.render).resolve()),
            "min_score": args.render_min_score,
            "backend_requested": args.render_backend,
            "backend": info.get("backend"),
            "num_drawn": info.get("num_drawn"),
        }
        if "fallback_reason" in info:
            payload["render"]["fallback_reason"] = info["fallback_reason"]
        if gt is not None:
            payload["render"]["gt"] = {
                "path": str(Path(args.gt).resolve()),
                "format": gt[2],
                "num_boxes": len(gt[0]),
            }
    try:
        atomic_write_json(args.out, payload)
    except OSError as exc:
        return fail(f"cannot write {args.out}: {exc}")
    print(_summary(det, int(points.shape[0]), wall_ms))
    print(f"wrote {args.out}" + (f" and {args.render}" if args.render else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
