"""End-to-end demo: the ROS 2 detector node on real ScanNet scans replayed from a rosbag2 bag.

    python -m sr3d_ros.demo                      # what `make demo` runs (embedded default model)
    python -m sr3d_ros.demo --checkpoint my.pt   # any sr3d_ros checkpoint
    python -m sr3d_ros.demo --random-init        # pipeline check with an untrained tiny model

Steps:

1. Build an MCAP bag (``demo_output/input_bag``) from the real ScanNet scans scene0000_00/01/02 in
   ``../shared/data`` (relative to the repository root; ``--data-root`` or ``$SR3D_DATA`` to
   change): ``/points`` (PointCloud2 xyz + rgb) and ``/ground_truth`` (Detection3DArray), one scan
   every ``1 / --rate`` seconds of bag time.
2. Start the ``pointcloud_detector`` node as a separate process (``python -m
   sr3d_ros.ros.pointcloud_node`` with ``config/pointcloud_detector.yaml``) in a private
   namespace, reliable input QoS.
3. Play the bag into the node and record everything (input, ground truth, the node's detections,
   markers, label info, its diagnostics) into ``demo_output/output_bag``.
4. Print a per-frame table (frame, scene, points, detections, end-to-end latency, node time) and
   mAP@0.25 / mAP@0.5 (ScanNet protocol, :func:`sr3d_training.evaluation.evaluate_indoor`)
   computed from the RECORDED detections against the bag's ground truth, and write one PNG per
   scan (detections vs ground truth, :func:`sr3d_ros.io.render.render_detections`) plus
   ``results.json`` into ``demo_output/``.

Playback is lock-step: a scan is published only after the node's result for the previous scan
has come back, and never earlier than the bag timing at ``--rate`` (default 0.5 Hz). The node
never queues frames (a frame arriving while it infers replaces the waiting one), and CPU
inference of a ScanNet scan takes ~1-3 s, so a free-running player would see frames dropped by
design; lock-step makes every scan count in the evaluation whatever the machine's speed.

Exit status: 0 when the node answered every scan; 1 when it published nothing or missed a scan
(or exited with an error); 2 when the data or the model is missing (with the reason). A scan
whose input cloud or ground truth is missing from the recorded bag (the recorder lost the
message) is left out of the mAP and the pictures, with a WARNING line under the table; that alone
does not change the exit status, unless no scan is left to evaluate (1).

Environment: DDS discovery is forced to LOCALHOST and ROS logs go to a new temporary folder on
every run (:func:`sr3d_ros.ros.env.ensure_safe_ros_env`); nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCENES = ("scene0000_00", "scene0000_01", "scene0000_02")

__all__ = ["main"]


class DemoError(Exception):
    """A precondition of the demo is not met (the message says what to do)."""


def _data_root(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get("SR3D_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _check_data(root: Path, scenes: Sequence[str]) -> None:
    d = root / "scannet" / "scannet_instance_data"
    missing = [
        s
        for s in scenes
        if not (d / f"{s}_vert_all.npy").is_file() or not (d / f"{s}_bbox.npy").is_file()
    ]
    if missing:
        raise DemoError(
            f"ScanNet sample scans {missing} not found under {d}. The demo reads the real data in "
            "../shared/data next to the repository (see ../shared/data/README.md); pass "
            "--data-root DIR or set SR3D_DATA to use another copy."
        )


def _random_checkpoint(path: Path) -> Path:
    import torch

    from sr3d_ros.checkpoints import save_checkpoint
    from sr3d_ros.config import DetectorConfig, ModelConfig
    from sr3d_ros.models import TR3DDetector

    torch.manual_seed(0)
    cfg = DetectorConfig(ModelConfig(width=0.25))
    save_checkpoint(
        path,
        TR3DDetector(cfg.model).state_dict(),
        cfg,
        provenance={
            "note": "random initialisation (sr3d_ros.demo --random-init): "
            "detections are meaningless"
        },
    )
    return path


def _checkpoint(args: argparse.Namespace, out: Path) -> Path:
    from sr3d_ros.inference import default_checkpoint_path

    if args.random_init:
        return _random_checkpoint(out / "random_init_w025.pt")
    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    if not path.is_file():
        if args.checkpoint:
            raise DemoError(f"checkpoint {path} not found")
        raise DemoError(
            f"the embedded default model {path} is not there yet (it is trained separately and "
            "shipped with the package). Run the demo with --checkpoint PATH (any sr3d_ros "
            "checkpoint), or with --random-init to check the pipeline with an untrained model."
        )
    return path


def _training_scenes(ckpt: Path) -> set[str]:
    """Scene ids the checkpoint was trained on, from its provenance (``train_ids``, as written
    by ``scripts/export_default_model.py``); empty when it does not say."""
    from sr3d_ros.checkpoints import CheckpointError, load_checkpoint

    try:
        prov = load_checkpoint(ckpt, map_location="cpu").get("provenance", {})
    except (CheckpointError, OSError):
        return set()
    ids = prov.get("train_ids") if isinstance(prov, dict) else None
    return {str(i) for i in ids} if isinstance(ids, (list, tuple)) else set()


class _Results:
    """Collects the node's Detection3DArray per input stamp (receive time) and its diagnostics."""

    def __init__(self, diag_name: str) -> None:
        self.lock = threading.Condition()
        self.detections: dict[int, tuple[float, int]] = {}  # stamp ns -> (monotonic, count)
        self.diagnostics: dict[str, dict[str, str]] = {}  # input stamp str -> key-values
        self.diag_name = diag_name

    def on_detections(self, msg: Any) -> None:
        t = time.monotonic()
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.detections.setdefault(key, (t, len(msg.detections)))
            self.lock.notify_all()

    def on_diagnostics(self, msg: Any) -> None:
        for st in msg.status:
            if st.name == self.diag_name:
                kv = {v.key: v.value for v in st.values}
                with self.lock:
                    self.diagnostics[kv.get("input_stamp", "")] = kv
                    self.lock.notify_all()

    def wait(self, pred: Any, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(pred, timeout)


def _render(
    out: Path,
    scene: str,
    points: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    class_names: Sequence[str],
    backend: str,
    note: str,
) -> tuple[Path | None, str]:
    import torch

    from sr3d_ros.detections import Detections

    try:
        from sr3d_ros.io.render import render_detections
    except ImportError as exc:  # pragma: no cover - the renderer ships with the package
        return None, f"no renderer ({exc})"
    det = Detections(
        torch.from_numpy(boxes),
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        tuple(class_names),
    )
    # Trained models: draw the confident boxes. An untrained model has no score >= 0.3: draw
    # its 20 best so that the picture still shows what the node published.
    min_score = 0.3 if len(scores) and scores.max() >= 0.3 else 0.0
    path = out / f"{scene}_detections_vs_gt.png"
    try:
        render_detections(
            points,
            det,
            path,
            gt_boxes=gt_boxes,
            gt_labels=gt_labels,
            class_names=class_names,
            min_score=min_score,
            max_boxes=100 if min_score else 20,
            backend=backend,
            title=f"{scene}: node detections (solid) vs ground truth (dashed){note}",
        )
    except Exception as exc:
        return None, f"render failed: {type(exc).__name__}: {exc}"
    return path, ""


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("frame", "frame"),
        ("scene", "scene"),
        ("points", "points"),
        ("gt", "gt boxes"),
        ("detections", "detections"),
        ("latency_ms", "latency ms"),
        ("node_ms", "node ms"),
        ("inference_ms", "inference ms"),
    ]
    cells = [[h for _, h in cols]]
    for r in rows:
        cells.append(
            [
                (
                    "-"
                    if r.get(k) is None
                    else f"{r[k]:.0f}"
                    if isinstance(r.get(k), float)
                    else str(r[k])
                )
                for k, _ in cols
            ]
        )
    w = [max(len(c[j]) for c in cells) for j in range(len(cols))]
    line = lambda c: (
        "| "
        + " | ".join(x.ljust(w[j]) if j == 1 else x.rjust(w[j]) for j, x in enumerate(c))
        + " |"
    )
    sep = "+" + "+".join("-" * (x + 2) for x in w) + "+"
    return "\n".join([sep, line(cells[0]), sep, *map(line, cells[1:]), sep])


def _evaluable(
    rows: list[dict[str, Any]], gts_by_stamp: dict[int, Any], points_by_stamp: dict[int, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows whose ground truth and input cloud are in the recorded bag, and one warning line
    per other row (those are left out of the mAP and the pictures)."""
    keep, warnings = [], []
    for r in rows:
        missing = [
            what
            for what, d in (("ground truth", gts_by_stamp), ("input cloud", points_by_stamp))
            if r["stamp"] not in d
        ]
        if missing:
            warnings.append(
                f"WARNING: frame {r['frame']} ({r['scene']}): the recorded bag has no "
                f"{' and no '.join(missing)} for it; left out of the mAP and the pictures"
            )
        else:
            keep.append(r)
    return keep, warnings


def run(args: argparse.Namespace) -> int:
    """The demo (see the module docstring). Returns the exit status."""
    from sr3d_ros.ros.env import ensure_safe_ros_env

    env_vars = ensure_safe_ros_env(force=True, fresh_log_dir=True)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = _data_root(args.data_root)
    _check_data(root, args.scenes)
    ckpt = _checkpoint(args, out)

    import shutil

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection3DArray

    from sr3d_ros.ros.bag import BagPlayer, BagRecorder, build_bag, load_samples, read_bag
    from sr3d_ros.ros.messages import detection3d_array_to_boxes
    from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array

    print(f"[demo] model {ckpt}")
    print(f"[demo] data {root} ({', '.join(args.scenes)}); output {out}")
    print(
        f"[demo] ROS_AUTOMATIC_DISCOVERY_RANGE={env_vars['ROS_AUTOMATIC_DISCOVERY_RANGE']}, "
        f"ROS_LOG_DIR={env_vars['ROS_LOG_DIR']}"
    )

    # 1. the input bag
    in_bag, out_bag = out / "input_bag", out / "output_bag"
    for p in (in_bag, out_bag):
        if p.exists():
            shutil.rmtree(p)
    samples = load_samples("scannet", root, args.scenes)
    build_bag(in_bag, samples, rate_hz=args.rate, frame_id="map")
    print(f"[demo] built {in_bag} ({len(samples)} scans at {args.rate} Hz)")

    # 2. the node, in its own process and namespace
    ns = f"/sr3d_demo_{uuid.uuid4().hex[:6]}"
    node_fqn = f"{ns}/pointcloud_detector"
    cmd = [
        sys.executable,
        "-m",
        "sr3d_ros.ros.pointcloud_node",
        "--ros-args",
        "-r",
        f"__ns:={ns}",
        "-r",
        f"~/input/points:={ns}/points",
        "--params-file",
        str(REPO / "config" / "pointcloud_detector.yaml"),
        "-p",
        f"checkpoint:={ckpt}",
        "-p",
        f"device:={args.device}",
        "-p",
        f"score_threshold:={args.score_threshold}",
        "-p",
        "qos_reliability:=reliable",  # the player is reliable; big clouds need it
        "-p",
        f"num_threads:={args.num_threads}",
    ]
    node_log = out / "node.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(node_log, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    print(f"[demo] node pid {proc.pid}: {node_fqn} (log {node_log})")

    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=[])
    node = rclpy.create_node("sr3d_demo", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    res = _Results(f"{node_fqn.lstrip('/')}: detector")
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(
        Detection3DArray, f"{node_fqn}/output/detections", res.on_detections, qos
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", res.on_diagnostics, qos)
    remap = {"/points": f"{ns}/points", "/ground_truth": f"{ns}/ground_truth"}
    recorded = [
        f"{ns}/points",
        f"{ns}/ground_truth",
        f"{node_fqn}/output/detections",
        f"{node_fqn}/output/markers",
        f"{node_fqn}/output/label_info",
        "/diagnostics",
    ]
    rows: list[dict[str, Any]] = []
    rc = 0
    recorder = None
    try:
        player = BagPlayer(node, in_bag, remap=remap)
        recorder = BagRecorder(node, out_bag, recorded)
        deadline = time.monotonic() + args.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DemoError(
                    f"the node exited with code {proc.returncode} during start-up; "
                    f"its log:\n{node_log.read_text()[-3000:]}"
                )
            if (
                player.publishers["/points"].get_subscription_count() > 0
                and f"{node_fqn}/output/detections" in recorder.subscribed
            ):
                break
            time.sleep(0.1)
        else:
            raise DemoError(
                f"the node did not come up within {args.startup_timeout:.0f} s (log: {node_log})"
            )
        player.wait_for_subscribers(10.0)
        time.sleep(0.5)  # let every match settle before the first frame
        print(
            f"[demo] node up; playing {len(samples)} scans lock-step (>= {1 / args.rate:.1f} s apart)"
        )

        # 3. lock-step playback: frame k+1 goes out when frame k's result is back, and no
        # earlier than the bag's spacing (scaled by --playback-speed) after frame k went out
        last_pub, last_bag, frame = None, None, 0
        for m in player.messages():
            if m.topic != "/points":
                player.publish(m)
                continue
            if last_pub is not None:
                due = last_pub + (m.timestamp_ns - last_bag) / 1e9 / args.playback_speed
                while time.monotonic() < due:
                    time.sleep(0.01)
            t_pub = time.monotonic()
            player.publish(m)
            last_pub, last_bag = t_pub, m.timestamp_ns
            stamp = m.timestamp_ns  # build_bag: header stamp == bag time
            got = res.wait(lambda: stamp in res.detections, args.timeout)
            row = {
                "frame": frame,
                "scene": args.scenes[frame],
                "points": samples[frame].num_points,
                "gt": samples[frame].num_boxes,
                "detections": None,
                "latency_ms": None,
                "node_ms": None,
                "inference_ms": None,
                "stamp": stamp,
            }
            if got:
                t_res, n = res.detections[stamp]
                row.update(detections=n, latency_ms=(t_res - t_pub) * 1e3)
                key = f"{stamp // 1_000_000_000}.{stamp % 1_000_000_000:09d}"
                res.wait(lambda: key in res.diagnostics, 5.0)
                kv = res.diagnostics.get(key, {})
                row["node_ms"] = float(kv["total_ms"]) if "total_ms" in kv else None
                row["inference_ms"] = float(kv["inference_ms"]) if "inference_ms" in kv else None
                print(
                    f"[demo] frame {frame} ({row['scene']}): {n} detections, "
                    f"latency {row['latency_ms']:.0f} ms"
                )
            else:
                print(f"[demo] WARNING: no result for frame {frame} within {args.timeout:.0f} s")
            rows.append(row)
            frame += 1
        time.sleep(1.0)  # last diagnostics / markers into the recorder
    except DemoError as exc:
        print(f"[demo] ERROR: {exc}", file=sys.stderr)
        rc = 1
    finally:
        counts = recorder.close() if recorder is not None else {}
        ex.shutdown(timeout_sec=2.0)
        spin.join(timeout=5.0)
        node.destroy_node()
        ctx.try_shutdown()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    node_rc = proc.returncode
    print(
        f"[demo] node exited with code {node_rc}; recorded {out_bag}: "
        + ", ".join(f"{t.replace(ns, '')} {n}" for t, n in counts.items())
    )
    if rc:
        return rc

    # 4. evaluation from the recorded bag
    class_names = list(samples[0].class_names)
    index = {c: i for i, c in enumerate(class_names)}
    preds_by_stamp: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    gts_by_stamp: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    points_by_stamp: dict[int, np.ndarray] = {}
    unknown: set[str] = set()
    for m in read_bag(out_bag):
        stamp = (
            m.msg.header.stamp.sec * 1_000_000_000 + m.msg.header.stamp.nanosec
            if hasattr(m.msg, "header")
            else None
        )
        if m.topic.endswith("/output/detections"):
            boxes, scores, names = detection3d_array_to_boxes(m.msg)
            keep = [i for i, n in enumerate(names) if n in index]
            unknown |= {n for n in names if n not in index}
            preds_by_stamp.setdefault(
                stamp,
                (boxes[keep], scores[keep], np.array([index[names[i]] for i in keep], np.int64)),
            )
        elif m.topic == f"{ns}/ground_truth":
            boxes, _, names = detection3d_array_to_boxes(m.msg)
            gts_by_stamp.setdefault(stamp, (boxes, np.array([index[n] for n in names], np.int64)))
        elif m.topic == f"{ns}/points":
            points_by_stamp.setdefault(stamp, pointcloud2_to_array(m.msg)[0])
    if unknown:
        print(
            f"[demo] note: predictions of classes outside the ScanNet list ignored: {sorted(unknown)}"
        )
    answered = [r for r in rows if r["stamp"] in preds_by_stamp]
    if not preds_by_stamp:
        print("[demo] ERROR: the node published no detections", file=sys.stderr)
        return 1

    print()
    print(_table(rows))
    evaluated, skipped = _evaluable(rows, gts_by_stamp, points_by_stamp)
    for line in skipped:
        print(line)
    print(
        "latency: scan published -> its Detection3DArray received (end to end, over DDS); "
        "node: the node's receive -> all its outputs published (markers included); "
        "inference: the model alone."
    )
    if not evaluated:
        print(
            "[demo] ERROR: no scan can be evaluated (the recorded bag lacks their ground truth "
            "or input clouds)",
            file=sys.stderr,
        )
        return 1
    from sr3d_training.evaluation import evaluate_indoor

    stamps = [r["stamp"] for r in evaluated]
    empty = (np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    preds = [dict(zip(("boxes", "scores", "labels"), preds_by_stamp.get(s, empty))) for s in stamps]
    gts = [dict(zip(("boxes", "labels"), gts_by_stamp[s])) for s in stamps]
    result = evaluate_indoor(preds, gts, class_names, iou_thresholds=(0.25, 0.5))
    print()
    print(f"ScanNet mAP over {len(stamps)} scans (recorded detections vs the bag's ground truth):")
    print(result.format_table())
    print(f"mAP@0.25 = {result.mAP[0.25]:.4f}   mAP@0.5 = {result.mAP[0.5]:.4f}")
    held_out = None
    trained_on = _training_scenes(ckpt)
    if trained_on:
        unseen = [i for i, r in enumerate(evaluated) if r["scene"] not in trained_on]
        seen = sorted({r["scene"] for r in evaluated} & trained_on)
        if seen:
            print(
                f"note: the model was trained on {', '.join(seen)}; those scans measure fitting, "
                "not generalisation."
            )
        if unseen and seen:
            held_out = evaluate_indoor(
                [preds[i] for i in unseen],
                [gts[i] for i in unseen],
                class_names,
                iou_thresholds=(0.25, 0.5),
            )
            names = ", ".join(evaluated[i]["scene"] for i in unseen)
            print(
                f"held-out scans only ({names}): mAP@0.25 = {held_out.mAP[0.25]:.4f}   "
                f"mAP@0.5 = {held_out.mAP[0.5]:.4f}"
            )

    # 5. pictures
    note = " [untrained model]" if args.random_init else ""
    pngs = []
    for r in evaluated:
        s = r["stamp"]
        boxes, scores, labels = preds_by_stamp.get(s, empty)
        path, why = _render(
            out,
            r["scene"],
            points_by_stamp[s],
            boxes,
            scores,
            labels,
            gts_by_stamp[s][0],
            gts_by_stamp[s][1],
            class_names,
            args.render_backend,
            note,
        )
        if path is not None:
            pngs.append(str(path))
        else:
            print(f"[demo] no picture for {r['scene']}: {why}")
    if pngs:
        print("[demo] wrote " + ", ".join(pngs))

    summary = {
        "checkpoint": str(ckpt),
        "random_init": bool(args.random_init),
        "scenes": list(args.scenes),
        "frames": [dict(r.items()) for r in rows],
        "evaluated_frames": [r["frame"] for r in evaluated],
        "mAP_0.25": None if math.isnan(result.mAP[0.25]) else result.mAP[0.25],
        "mAP_0.5": None if math.isnan(result.mAP[0.5]) else result.mAP[0.5],
        "evaluation": result.to_dict(),
        "held_out_evaluation": None if held_out is None else held_out.to_dict(),
        "node_exit_code": node_rc,
        "recorded": counts,
        "input_bag": str(in_bag),
        "output_bag": str(out_bag),
        "pictures": pngs,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[demo] wrote {out / 'results.json'}")
    if len(answered) < len(rows):
        print(
            f"[demo] ERROR: the node answered {len(answered)} of {len(rows)} scans", file=sys.stderr
        )
        return 1
    if node_rc != 0:
        print(
            f"[demo] ERROR: the node exited with code {node_rc} (log {node_log})", file=sys.stderr
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line."""
    p = argparse.ArgumentParser(prog="python -m sr3d_ros.demo", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="model checkpoint (default: the embedded default model)")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="use an untrained width-0.25 model (pipeline check; meaningless boxes)",
    )
    p.add_argument("--data-root", type=Path, help="shared data root (default ../shared/data)")
    p.add_argument("--scenes", nargs="+", default=list(SCENES), help="ScanNet scenes to replay")
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.add_argument("--rate", type=float, default=0.5, help="scans per second of bag time")
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
    """``python -m sr3d_ros.demo``; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    if not args.rate > 0 or not args.playback_speed > 0:
        print("[demo] ERROR: --rate and --playback-speed must be > 0", file=sys.stderr)
        return 2
    try:
        return run(args)
    except DemoError as exc:
        print(f"[demo] ERROR: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
