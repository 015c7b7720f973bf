"""``sr3d-detect IMAGE --calib calib.txt|camera_info.yaml``: the monocular path of sr3d-detect.

Writes JSON (:meth:`Detections.to_dict`: per detection the KITTI camera box ``camera_box``
{location = bottom-face centre, dimensions_lhw, rotation_y, alpha} in the optical frame of the
calibration's ``P`` (x right, y down, z forward, metres), the same box in the camera body frame
``box`` (x forward, y left, z up; geometric centre), the 2D box ``bbox_2d`` in image pixels, class
name and score; plus input, calibration, checkpoint and timings) and a PNG (the 3D boxes
projected on the image, a bird's-eye view beside it; :mod:`sr3d_ros.io.render_image`).
A camera_info YAML is read by the image node's rules (a distorted image is undistorted first and
the PNG shows the undistorted image). Both are written atomically. Exit status as sr3d-detect:
0 ok, 1 error, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..checkpoints import CheckpointError, resolve_checkpoint
from ..config import ConfigError, to_dict
from ..detections import Detections
from ..io.atomic import atomic_write_json
from ..io.calibration import read_camera_file
from ..io.images import read_image
from ..mono_inference import MonoDetector, default_mono_checkpoint_path

__all__ = ["FRAME_NOTE", "checkpoint_record", "run_image"]

FRAME_NOTE = (
    "camera_box: KITTI camera box in the optical frame of the calibration's P (x right, y down, "
    "z forward, metres), location = bottom-face centre, rotation_y about +y, "
    "alpha = rotation_y - atan2(x, z); box: the same box in the camera body frame (x forward, "
    "y left, z up), geometric centre, sizes (l, w, h), yaw about +z; bbox_2d: image pixels"
)


def checkpoint_record(path: Path, default: bool, detector: Any) -> dict[str, Any]:
    """The ``checkpoint`` entry of sr3d-detect's JSON (both detector kinds): resolved path,
    whether it is the default model, provenance and config."""
    return {
        "path": str(path.resolve()),
        "embedded_default": default,
        "provenance": detector.provenance,
        "config": to_dict(detector.config),
    }


def checkpoint_path(option: str | None, default: Path, what: str) -> Path:
    """The file of ``--checkpoint`` (a path or a shipped model's name), or ``default`` (the
    embedded ``what`` model) without the option.

    Raises:
        FileNotFoundError: an unknown shipped-model name, or no option and no default installed.
    """
    if option:
        return resolve_checkpoint(option)
    if not default.is_file():
        raise FileNotFoundError(
            f"no --checkpoint given and the {what} model is not installed ({default}); "
            "pass --checkpoint with a model file or a shipped model's name"
        )
    return default


def _fail(msg: str) -> int:
    print(f"sr3d-detect: error: {msg}", file=sys.stderr)
    return 1


def _summary(det: Detections, wall_ms: float) -> str:
    lines = [
        f"{len(det)} detections ({wall_ms:.0f} ms; "
        + ", ".join(f"{k} {v:.1f}" for k, v in det.timings_ms.items())
        + " ms)"
    ]
    for d in det.to_dict()["detections"][:10]:
        cb = d["camera_box"]
        x, y, z = cb["location"]
        l, h, w = cb["dimensions_lhw"]
        lines.append(
            f"  {d['class_name']:<11} {d['score']:.3f}  bottom centre ({x:.2f}, {y:.2f}, {z:.2f})"
            f"  l h w ({l:.2f}, {h:.2f}, {w:.2f})  ry {cb['rotation_y']:.2f}"
        )
    if len(det) > 10:
        lines.append(f"  ... {len(det) - 10} more in the JSON")
    return "\n".join(lines)


def run_image(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The image path of ``sr3d-detect`` (``args.cloud`` is the image). Returns the exit status;
    usage errors exit 2 through ``parser.error``."""
    if args.calib is None:
        parser.error("an image needs --calib calib.txt (KITTI, P2) or camera_info.yaml")
    for flag, value in (
        ("--iou-threshold", args.iou_threshold),
        ("--nms-pre", args.nms_pre),
        ("--gt", args.gt),
    ):
        if value is not None:
            parser.error(f"{flag} applies to point clouds only (the monocular detector has no NMS)")
    overrides: dict[str, float] = {
        k: v
        for k, v in (
            ("score_threshold", args.score_threshold),
            ("max_detections", args.max_detections),
            ("gate_topk", args.gate_topk),
        )
        if v is not None
    }
    if args.full_3d_head:
        overrides["gated"] = False
    try:
        ckpt_path = checkpoint_path(
            args.checkpoint, default_mono_checkpoint_path(), "default monocular"
        )
        image = read_image(args.cloud)
        setup = read_camera_file(args.calib, image.shape[1], image.shape[0])
        if setup.undistort is not None:
            image = setup.undistort(image)
        camera, notes = setup.camera, setup.notes
        detector = MonoDetector.from_checkpoint(ckpt_path, device=args.device, **overrides)
    except (FileNotFoundError, CheckpointError, ConfigError, ValueError, ImportError) as exc:
        return _fail(str(exc))
    for note in notes:
        print(f"sr3d-detect: note: {note}", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        det = detector(image, camera).to("cpu")
    except ValueError as exc:
        return _fail(f"{args.cloud}: {exc}")
    wall_ms = (time.perf_counter() - t0) * 1e3
    payload: dict[str, Any] = {
        "sr3d_ros_version": __version__,
        "input": {
            "path": str(Path(args.cloud).resolve()),
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "calib": str(Path(args.calib).resolve()),
            "P": camera.P.tolist(),
            "calib_notes": notes,
        },
        "frames": FRAME_NOTE,
        "checkpoint": checkpoint_record(ckpt_path, args.checkpoint is None, detector),
        "device": str(detector.device),
        "wall_ms": wall_ms,
        **det.to_dict(),
    }
    png = Path(args.render) if args.render else Path(args.out).with_suffix(".png")
    from ..io.render_image import render_image_detections

    try:
        info = render_image_detections(
            image, camera, det, png, min_score=args.render_min_score, title=Path(args.cloud).name
        )
    except (ImportError, OSError, ValueError) as exc:
        return _fail(f"rendering failed: {exc}")
    payload["render"] = {
        "path": str(png.resolve()),
        "min_score": args.render_min_score,
        "num_drawn": info["num_drawn"],
    }
    try:
        atomic_write_json(args.out, payload)
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc}")
    print(_summary(det, wall_ms))
    print(f"wrote {args.out} and {png}")
    return 0
