"""``python -m sr3d_ros.demo``: the command line, the console output and the order of the stages.

Progress and problems are logged (logger ``sr3d_ros.demo``) and shown as ``[demo] ...`` lines:
progress and warnings on stdout, errors on stderr. The table and the mAP report are this
command's own output (printed).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .evaluation import evaluable, evaluate, read_recorded
from .kitti import run_kitti
from .node import NodeProcess, start_node
from .prepare import (
    DemoError,
    ScanSample,
    build_input_bag,
    check_data,
    choose_checkpoint,
    data_root,
    training_scenes,
)
from .replay import FrameRow, Replay, ReplayPlan
from .report import TIMING_NOTE, exit_status, frame_table, render_scans, summary

__all__ = ["PARTS", "SCENES", "build_parser", "main", "run", "run_scannet"]

SCENES = ("scene0000_00", "scene0000_01", "scene0000_02")
PARTS = ("scannet", "kitti")

logger = logging.getLogger("sr3d_ros.demo")


class _ConsoleHandler(logging.Handler):
    """``[demo] message`` on stdout (``[demo] WARNING: ...`` for warnings), errors on stderr;
    the streams are looked up at each record (so redirections after set-up are followed)."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname}: "
        stream = sys.stderr if record.levelno >= logging.ERROR else sys.stdout
        stream.write(f"[demo] {level}{record.getMessage()}\n")
        stream.flush()


def run(args: argparse.Namespace) -> int:
    """The demo (see :mod:`sr3d_ros.demo`): the ScanNet part, then the KITTI part (each of
    ``args.parts``). A part that cannot run (missing data or model) is reported and the next
    one still runs. Returns the exit status: 0 when every part succeeded, else 1."""
    from sr3d_ros.ros.env import ensure_safe_ros_env

    env_vars = ensure_safe_ros_env(force=True, fresh_log_dir=True)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    logger.info(
        "ROS_AUTOMATIC_DISCOVERY_RANGE=%s, ROS_LOG_DIR=%s",
        env_vars["ROS_AUTOMATIC_DISCOVERY_RANGE"],
        env_vars["ROS_LOG_DIR"],
    )
    rc = 0
    for part, runner in (("scannet", run_scannet), ("kitti", run_kitti)):
        if part not in args.parts:
            continue
        try:
            rc = max(rc, runner(args, out))
        except DemoError as exc:
            logger.error("%s part: %s", "ScanNet" if part == "scannet" else "KITTI", exc)
            rc = 1
    return rc


def run_scannet(args: argparse.Namespace, out: Path) -> int:
    """The ScanNet part (see :mod:`sr3d_ros.demo`). Returns the exit status.

    Raises:
        DemoError: missing data or model.
    """
    root = data_root(args.data_root)
    check_data(root, args.scenes)
    ckpt = choose_checkpoint(args.checkpoint, args.random_init, out)
    logger.info("model %s", ckpt)
    logger.info("data %s (%s); output %s", root, ", ".join(args.scenes), out)
    in_bag, out_bag = out / "input_bag", out / "output_bag"
    if out_bag.exists():
        shutil.rmtree(out_bag)
    samples = build_input_bag(root, args.scenes, in_bag, args.rate)
    node = start_node(ckpt, args.device, args.score_threshold, args.num_threads, out / "node.log")
    from sr3d_ros.ros.replay import replay  # the rclpy part of the demo

    ns = node.namespace
    plan = ReplayPlan(
        rows=[
            FrameRow(k, scene, s.num_points, s.num_boxes)
            for k, (scene, s) in enumerate(zip(args.scenes, samples))
        ],
        trigger="/points",
        remap={"/points": f"{ns}/points", "/ground_truth": f"{ns}/ground_truth"},
        record=[f"{ns}/points", f"{ns}/ground_truth"],
    )
    played = replay(
        node, in_bag, out_bag, plan, args.playback_speed, args.timeout, args.startup_timeout
    )
    if played.error:
        logger.error("%s", played.error)
    recorded = ", ".join(f"{t.replace(node.namespace, '')} {n}" for t, n in played.recorded.items())
    logger.info("node exited with code %s; recorded %s: %s", node.stop(), out_bag, recorded)
    if played.error:
        return 1
    return _evaluate_and_report(args, ckpt, node, played, samples, out)


def _evaluate_and_report(
    args: argparse.Namespace,
    ckpt: Path,
    node: NodeProcess,
    played: Replay,
    samples: Sequence[ScanSample],
    out: Path,
) -> int:
    """Stages 4 and 5 from the recorded bag; returns the exit status."""
    in_bag, out_bag = out / "input_bag", out / "output_bag"
    class_names = list(samples[0].class_names)
    rec = read_recorded(out_bag, node.namespace, class_names)
    if rec.unknown_classes:
        logger.info(
            "note: predictions of classes outside the ScanNet list ignored: %s",
            sorted(rec.unknown_classes),
        )
    rows = played.rows
    answered = [r for r in rows if r.stamp in rec.predictions]
    if not rec.predictions:
        logger.error("the node published no detections")
        return 1
    print()
    print(frame_table(rows))
    evaluated, skipped = evaluable(rows, rec)
    for line in skipped:
        print(line)
    print(TIMING_NOTE)
    if not evaluated:
        logger.error(
            "no scan can be evaluated (the recorded bag lacks their ground truth or input clouds)"
        )
        return 1
    ev = evaluate(evaluated, rec, class_names, training_scenes(ckpt))
    print()
    print(
        f"ScanNet mAP over {len(evaluated)} scans (recorded detections vs the bag's ground truth):"
    )
    print(ev.result.format_table())
    print(f"mAP@0.25 = {ev.result.mAP[0.25]:.4f}   mAP@0.5 = {ev.result.mAP[0.5]:.4f}")
    if ev.seen:
        print(
            f"note: the model was trained on {', '.join(ev.seen)}; those scans measure fitting, "
            "not generalisation."
        )
    if ev.held_out is not None:
        print(
            f"held-out scans only ({', '.join(ev.held_out_scenes)}): "
            f"mAP@0.25 = {ev.held_out.mAP[0.25]:.4f}   mAP@0.5 = {ev.held_out.mAP[0.5]:.4f}"
        )
    note = " [untrained model]" if args.random_init else ""
    pictures = render_scans(out, evaluated, rec, class_names, args.render_backend, note)
    if pictures:
        logger.info("wrote %s", ", ".join(pictures))
    node_rc = node.stop()
    from sr3d_ros.io.atomic import atomic_write_json

    results = summary(
        checkpoint=ckpt,
        random_init=bool(args.random_init),
        scenes=args.scenes,
        rows=rows,
        evaluated=evaluated,
        evaluation=ev,
        node_exit_code=node_rc,
        recorded=played.recorded,
        input_bag=in_bag,
        output_bag=out_bag,
        pictures=pictures,
    )
    logger.info("wrote %s", atomic_write_json(out / "results.json", results))
    return exit_status(len(answered), len(rows), node_rc, node.log)


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line."""
    p = argparse.ArgumentParser(
        prog="python -m sr3d_ros.demo",
        description="End-to-end demo: the ROS 2 detector nodes on real data replayed from "
        "rosbag2 bags: the point-cloud node on ScanNet scans, then the image node on KITTI "
        "frames.",
    )
    p.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="which parts to run, in this order (default: both)",
    )
    p.add_argument(
        "--checkpoint", help="point-cloud model checkpoint (default: the embedded default model)"
    )
    p.add_argument(
        "--mono-checkpoint",
        help="monocular model checkpoint for the KITTI part (default: the embedded "
        "sr3d_ros/models/weights/lead_m3d_kitti_n.pt)",
    )
    p.add_argument(
        "--random-init",
        action="store_true",
        help="use untrained models (point cloud: width 0.25; monocular: size n) to check the "
        "pipeline; the boxes are meaningless",
    )
    p.add_argument("--data-root", type=Path, help="shared data root (default ../shared/data)")
    p.add_argument("--scenes", nargs="+", default=list(SCENES), help="ScanNet scenes to replay")
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.add_argument("--rate", type=float, default=0.5, help="scans per second of bag time")
    p.add_argument(
        "--kitti-frames",
        nargs="+",
        help="KITTI frame ids to replay (default: every frame of kitti/training)",
    )
    p.add_argument(
        "--kitti-rate", type=float, default=2.0, help="KITTI frames per second of bag time"
    )
    p.add_argument(
        "--playback-speed",
        type=float,
        default=1.0,
        help="bag-time speed factor of the lock-step player (frames still wait for results)",
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.01,
        help="node score threshold (0.01 = the mAP evaluation protocol)",
    )
    p.add_argument("--device", default="auto", help="node device: auto, cpu, cuda")
    p.add_argument(
        "--num-threads",
        type=int,
        default=0,
        help="node torch threads (0 = torch default; 1 on a busy shared CPU)",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each result")
    p.add_argument(
        "--startup-timeout", type=float, default=180.0, help="seconds for the node to start"
    )
    p.add_argument(
        "--render-backend",
        default="auto",
        choices=("auto", "open3d", "bev"),
        help="PNG renderer (auto: open3d offscreen, falling back to a top-down view)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sr3d_ros.demo``; returns the exit status (see :mod:`sr3d_ros.demo`)."""
    args = build_parser().parse_args(argv)
    handler = _ConsoleHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        if not args.rate > 0 or not args.playback_speed > 0 or not args.kitti_rate > 0:
            logger.error("--rate, --kitti-rate and --playback-speed must be > 0")
            return 2
        return run(args)
    except DemoError as exc:
        logger.error("%s", exc)
        return 1
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
