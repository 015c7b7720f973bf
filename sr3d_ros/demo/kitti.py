"""Demo, KITTI part: real KITTI frames through the ``image_detector`` node by bag replay.

Runs after the ScanNet part (``--parts`` selects). Steps, as the ScanNet part:

1. Build an MCAP bag (``demo_output/kitti_input_bag``) of the KITTI frames in
   ``../shared/data/kitti/training`` with :func:`sr3d_ros.ros.bag.build_kitti_bag`: per frame the
   image (rgb8), its CameraInfo (``P2``), the velodyne scan, ``/tf_static`` and the ground truth,
   one frame every ``1 / --kitti-rate`` s of bag time.
2. Start the ``image_detector`` node (``config/image_detector.yaml``) in a private namespace
   with the monocular model (``--mono-checkpoint``, default the embedded
   ``sr3d_ros/models/weights/lead_m3d_kitti_n.pt``; ``--random-init``: an untrained one).
3. Play the images and CameraInfos lock-step into the node, recording them, the ground truth and
   every output of the node into ``demo_output/kitti_output_bag``.
4. Print the per-frame table and KITTI AP|R40 (2D, AOS, BEV, 3D; Car / Pedestrian / Cyclist) of
   the RECORDED detections against the frames' labels, on the held-out frames 000007, 000036,
   000217 (and on all frames played, noting which ones the model was trained on), write one PNG
   per frame (``kitti_<frame>_detections_vs_gt.png``: the image with the projected boxes beside
   a bird's-eye view, ground truth dashed) and ``kitti_results.json``.

A missing monocular model is reported in one clear line (exit status 1), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .kitti_eval import KittiEvaluation, detections_to_kitti, evaluate_frames
from .node import NodeProcess, start_node
from .prepare import DemoError, data_root, training_scenes
from .replay import FrameRow, Replay, ReplayPlan, stamp_ns
from .report import KITTI_COLUMNS, TIMING_NOTE, exit_status, frame_table

__all__ = [
    "KITTI_HELD_OUT",
    "choose_mono_checkpoint",
    "kitti_frames",
    "random_mono_checkpoint",
    "run_kitti",
]

logger = logging.getLogger("sr3d_ros.demo")

#: Frames never used for training the default monocular model: the demo's AP is on these.
KITTI_HELD_OUT = ("000007", "000036", "000217")


def kitti_frames(root: Path, wanted: Sequence[str] | None) -> list[str]:
    """The frames to play: ``wanted``, else every ``image_2/*.png`` of ``root`` (sorted).

    Raises:
        DemoError: no KITTI folder, or a frame without its image, calibration or label (named,
            with what to do).
    """
    if not (root / "image_2").is_dir():
        raise DemoError(
            f"KITTI frames not found under {root} (image_2/, calib/, label_2/). The demo reads "
            "the real data in ../shared/data next to the repository (see its README.md); pass "
            "--data-root DIR or set SR3D_DATA to use another copy."
        )
    frames = list(wanted) if wanted else sorted(p.stem for p in (root / "image_2").glob("*.png"))
    missing = [
        f"{f} ({sub})"
        for f in frames
        for sub, ext in (("image_2", "png"), ("calib", "txt"), ("label_2", "txt"))
        if not (root / sub / f"{f}.{ext}").is_file()
    ]
    if missing or not frames:
        raise DemoError(f"KITTI frames incomplete under {root}: missing {missing or 'all'}")
    return frames


def random_mono_checkpoint(path: Path) -> Path:
    """An untrained size-n monocular detector (seed 0) saved at ``path``."""
    import torch

    from sr3d_ros.checkpoints import save_checkpoint
    from sr3d_ros.models.mono import MonoDetectorConfig, MonoDetectorModel, MonoModelConfig

    torch.manual_seed(0)
    cfg = MonoDetectorConfig(MonoModelConfig(size="n"))
    note = "random initialisation (sr3d_ros.demo --random-init): detections are meaningless"
    save_checkpoint(path, MonoDetectorModel(cfg.model).state_dict(), cfg, {"note": note})
    return path


def choose_mono_checkpoint(checkpoint: str | None, random_init: bool, out: Path) -> Path:
    """The monocular model the image node runs: an untrained one written into ``out``
    (``random_init``), the given ``checkpoint``, or the embedded default model.

    Raises:
        DemoError: the file is missing (the message says what to pass instead).
    """
    from sr3d_ros.mono_inference import default_mono_checkpoint_path

    if random_init:
        return random_mono_checkpoint(out / "random_init_mono_n.pt")
    path = Path(checkpoint) if checkpoint else default_mono_checkpoint_path()
    if not path.is_file():
        if checkpoint:
            raise DemoError(f"monocular checkpoint {path} not found")
        raise DemoError(
            f"the embedded default monocular model {path} is not there yet (it is trained "
            "separately and shipped with the package), so the KITTI part cannot run. Pass "
            "--mono-checkpoint PATH (any sr3d_ros 'mono' checkpoint), --random-init to check "
            "the pipeline with an untrained model, or --parts scannet to skip it."
        )
    return path


@dataclasses.dataclass
class _Recorded:
    """The recorded KITTI bag by input stamp (ns): detections (Detection3DArray), images
    (``uint8 (H, W, 3)``) and CameraInfos (rosbags messages)."""

    detections: dict[int, Any] = dataclasses.field(default_factory=dict)
    images: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    infos: dict[int, Any] = dataclasses.field(default_factory=dict)


def _read_recorded(out_bag: Path, node: NodeProcess) -> _Recorded:
    from sr3d_ros.ros.bag import read_bag
    from sr3d_ros.ros.image_msgs import image_to_rgb

    rec = _Recorded()
    ns = node.namespace
    for m in read_bag(out_bag):
        if m.topic == node.output("detections"):
            rec.detections.setdefault(stamp_ns(m.msg), m.msg)
        elif m.topic == f"{ns}/image":
            rec.images.setdefault(stamp_ns(m.msg), image_to_rgb(m.msg, 0))
        elif m.topic == f"{ns}/camera_info":
            rec.infos.setdefault(stamp_ns(m.msg), m.msg)
    return rec


def _build_bag(root: Path, frames: Sequence[str], in_bag: Path, rate: float) -> list[FrameRow]:
    """The input bag and one (unplayed) row per frame."""
    from sr3d_ros.ros.bag import build_kitti_bag
    from sr3d_training.datasets.kitti import read_kitti_label

    if in_bag.exists():
        shutil.rmtree(in_bag)
    build_kitti_bag(in_bag, root, frame_ids=list(frames), rate_hz=rate)
    logger.info("built %s (%d KITTI frames at %g Hz)", in_bag, len(frames), rate)
    rows = []
    for k, f in enumerate(frames):
        from PIL import Image

        with Image.open(root / "image_2" / f"{f}.png") as im:
            size = f"{im.width}x{im.height}"
        objs = read_kitti_label(root / "label_2" / f"{f}.txt")
        n_gt = int(np.isin(objs.names, ("Car", "Pedestrian", "Cyclist")).sum())
        rows.append(FrameRow(k, f, 0, n_gt, image=size))
    return rows


def run_kitti(args: argparse.Namespace, out: Path) -> int:
    """The KITTI part (module docstring); returns the exit status.

    Raises:
        DemoError: missing data or model (the message says what to do).
    """
    from sr3d_ros.ros.bag import KittiBagTopics

    root = data_root(args.data_root) / "kitti" / "training"
    frames = kitti_frames(root, args.kitti_frames)
    ckpt = choose_mono_checkpoint(args.mono_checkpoint, args.random_init, out)
    logger.info("KITTI part: model %s, %d frames from %s", ckpt, len(frames), root)
    in_bag, out_bag = out / "kitti_input_bag", out / "kitti_output_bag"
    if out_bag.exists():
        shutil.rmtree(out_bag)
    rows = _build_bag(root, frames, in_bag, args.kitti_rate)
    # an untrained model scores below any useful threshold: publish its best boxes anyway
    threshold = 0.0 if args.random_init else args.score_threshold
    node = start_node(
        ckpt, args.device, threshold, args.num_threads, out / "kitti_node.log", "image"
    )
    from sr3d_ros.ros.replay import replay  # the rclpy part of the demo

    ns, topics = node.namespace, KittiBagTopics()
    remap = {
        topics.camera_info: f"{ns}/camera_info",
        topics.image: f"{ns}/image",
        topics.ground_truth: f"{ns}/ground_truth",
    }
    plan = ReplayPlan(
        rows,
        topics.image,
        remap,
        record=list(remap.values()),
        inputs=[topics.image, topics.camera_info],
    )
    played = replay(
        node, in_bag, out_bag, plan, args.playback_speed, args.timeout, args.startup_timeout
    )
    if played.error:
        logger.error("%s", played.error)
    logger.info("node exited with code %s; recorded %s", node.stop(), out_bag)
    if played.error:
        return 1
    return _report(args, root, ckpt, node, played, out)


def _report(
    args: argparse.Namespace, root: Path, ckpt: Path, node: NodeProcess, played: Replay, out: Path
) -> int:
    """Table, AP, pictures and ``kitti_results.json`` from the recorded bag."""
    rec = _read_recorded(out / "kitti_output_bag", node)
    rows = played.rows
    if not rec.detections:
        logger.error("KITTI part: the node published no detections")
        return 1
    print()
    print(frame_table(rows, KITTI_COLUMNS))
    detections: dict[str, Any] = {}
    for r in rows:
        if r.stamp not in rec.detections or r.stamp not in rec.infos:
            print(f"WARNING: frame {r.frame} ({r.scene}): no recorded detections or CameraInfo")
            continue
        info = rec.infos[r.stamp]
        P = np.asarray(info.p, np.float64).reshape(3, 4)
        detections[r.scene] = detections_to_kitti(
            rec.detections[r.stamp], P, int(info.width), int(info.height)
        )
    print(TIMING_NOTE)
    ev = evaluate_frames(root, detections, KITTI_HELD_OUT, training_scenes(ckpt))
    _print_ap(ev, len(detections))
    pictures = _render(out, rows, rec, detections, root, bool(args.random_init))
    if pictures:
        logger.info("wrote %s", ", ".join(pictures))
    node_rc = node.stop()
    from sr3d_ros.io.atomic import atomic_write_json

    results = {
        "checkpoint": str(ckpt),
        "random_init": bool(args.random_init),
        "frames": [dataclasses.asdict(r) for r in rows],
        "evaluated_frames": list(detections),
        "held_out_frames": ev.held_out_frames,
        "trained_on_frames": ev.seen,
        "held_out_evaluation": None if ev.held_out is None else ev.held_out.to_dict(),
        "evaluation": ev.all_frames.to_dict(),
        "node_exit_code": node_rc,
        "recorded": played.recorded,
        "input_bag": str(out / "kitti_input_bag"),
        "output_bag": str(out / "kitti_output_bag"),
        "pictures": pictures,
    }
    logger.info("wrote %s", atomic_write_json(out / "kitti_results.json", results))
    answered = sum(r.stamp in rec.detections for r in rows)
    return exit_status(answered, len(rows), node_rc, node.log, "KITTI part: ")


def _moderate(result: Any, metric: str) -> str:
    """``"Car 12.34  Pedestrian 0.00  Cyclist 0.00"``: moderate AP|R40 at the strict IoU."""
    return "  ".join(
        f"{c} {result.ap40[metric][i, 1, 0]:.2f}" for i, c in enumerate(result.classes)
    )


def _print_ap(ev: KittiEvaluation, n_frames: int) -> None:
    print()
    if ev.held_out is not None:
        print(f"KITTI AP|R40 on the held-out frames ({', '.join(ev.held_out_frames)}):")
        print(ev.held_out.format_table())
        print(f"held-out moderate 3D AP|R40 (%): {_moderate(ev.held_out, '3d')}")
    else:
        print("no held-out frame was played: no held-out AP")
    print(f"all {n_frames} frames played, moderate 3D AP|R40 (%): {_moderate(ev.all_frames, '3d')}")
    if ev.seen:
        print(
            f"note: the model was trained on {', '.join(ev.seen)}; those frames measure fitting, "
            "not generalisation."
        )


def _render_frame(path: Path, rgb: np.ndarray, info: Any, objs: Any, gt: Any, title: str) -> None:
    """One PNG: ``objs`` (recorded detections as KITTI objects) and the labels ``gt`` projected
    on the image, beside a bird's-eye view
    (:func:`sr3d_ros.io.render_image.render_image_detections`). Detections of an untrained model
    score below 0.3: then its 20 best are drawn."""
    import torch

    from sr3d_ros.detections import Detections
    from sr3d_ros.geometry.camera_info import camera_setup
    from sr3d_ros.io.render_image import render_image_detections

    classes = ("Car", "Pedestrian", "Cyclist")
    keep = np.isin(objs.names, classes)
    objs = objs.subset(keep)
    order = np.argsort(-objs.score, kind="stable")
    min_score = 0.3 if len(objs) and objs.score.max() >= 0.3 else 0.0
    if not min_score:
        order = order[:20]
    objs = objs.subset(order)
    det = Detections(
        torch.from_numpy(objs.boxes()).float(),
        torch.from_numpy(objs.score).float(),
        torch.tensor([classes.index(n) for n in objs.names], dtype=torch.int64),
        classes,
        camera_boxes=torch.from_numpy(objs.camera_boxes()).float(),
    )
    camera = camera_setup(info, rgb.shape[1], rgb.shape[0]).camera
    gt = gt.subset(np.isin(gt.names, classes))
    render_image_detections(
        rgb, camera, det, path, min_score, title, gt_camera_boxes=gt.camera_boxes()
    )


def _render(
    out: Path,
    rows: Sequence[FrameRow],
    rec: _Recorded,
    detections: dict[str, Any],
    root: Path,
    untrained: bool,
) -> list[str]:
    """``<out>/kitti_<frame>_detections_vs_gt.png`` per evaluated frame; returns the paths
    written (a failing renderer is a warning, not a failure)."""
    from sr3d_training.datasets.kitti import read_kitti_label

    note = " [untrained model]" if untrained else ""
    written = []
    for r in rows:
        if r.scene not in detections or r.stamp not in rec.images:
            continue
        path = out / f"kitti_{r.scene}_detections_vs_gt.png"
        try:
            gt = read_kitti_label(root / "label_2" / f"{r.scene}.txt")
            title = f"KITTI {r.scene}: node detections (solid) vs ground truth (dashed){note}"
            _render_frame(
                path, rec.images[r.stamp], rec.infos[r.stamp], detections[r.scene], gt, title
            )
        except Exception as exc:
            logger.warning("no picture for %s: %s: %s", r.scene, type(exc).__name__, exc)
            continue
        written.append(str(path))
    return written
