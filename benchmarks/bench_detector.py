#!/usr/bin/env python3
"""Per-stage latency of :class:`sr3d_ros.inference.PointCloudDetector` on real ScanNet scenes.

For each width multiplier (default 1, 0.5, 0.25) and each of the three ScanNet sample scenes
(``scene0000_0{0,1,2}_vert_all.npy``, 81-86k points, full scans as TR3D evaluates them), it runs
the detector ``--warmup`` times untimed, then ``--runs`` times (>= 5) with per-stage timing
(``Detections.timings_ms``: ``voxelize``, ``backbone``, ``neck``, ``head``, ``nms``; synchronised
on CUDA) and ``--runs`` times without it for the end-to-end wall time of the call (numpy points
in, detections out; no synchronisation between stages), and reports medians.

Weights: random initialisation (seed 0) unless ``--checkpoint`` is given. Network stages do not
depend on the weights, but NMS time does (it depends on how many candidates pass the score
threshold), so treat the ``nms`` column of a random model as indicative only.

Reference point: TR3D runs at 23.7 scenes/s, i.e. ~42 ms per ScanNet scene, on a desktop GPU
(mmdetection3d projects/TR3D README: one RTX 4090, MinkowskiEngine).

The data root is ``--data``, else ``$SR3D_DATA``, else ``.gpu_data`` in the repository if it
exists, else ``../shared/data``.

Usage::

    python benchmarks/bench_detector.py [--device cpu|cuda|auto] [--widths 1 0.5 0.25]
        [--runs 5] [--json out.json] [--checkpoint model.pt] [--data ROOT]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _bench_common import REPO, data_root, device_name, write_json

sys.path.insert(0, str(REPO))

import numpy as np
import torch

from sr3d_ros.config import DetectorConfig, ModelConfig, to_dict
from sr3d_ros.inference import PointCloudDetector, resolve_device
from sr3d_ros.models import TR3DDetector

STAGES = ("voxelize", "backbone", "neck", "head", "nms")
SCENES = ("scene0000_00", "scene0000_01", "scene0000_02")
REFERENCE_MS = 42.0
REFERENCE = (
    "TR3D reference: ~42 ms per ScanNet scene (23.7 scenes/s) on a desktop GPU "
    "(mmdetection3d projects/TR3D README: one RTX 4090, MinkowskiEngine)"
)


def load_scene(root: Path, scene: str) -> np.ndarray:
    """``(N, 6)`` float32 xyz + rgb of a ScanNet sample scene under the data ``root``.

    Raises:
        SystemExit: the file is missing (names it and how to point at the data).
    """
    path = root / "scannet" / "scannet_instance_data" / f"{scene}_vert_all.npy"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; set SR3D_DATA or --data to the data root")
    return np.load(path)


def build_detector(
    width: float,
    device: torch.device,
    checkpoint: str | None = None,
    voxel_size: float | None = None,
) -> PointCloudDetector:
    """The detector of ``checkpoint``, else TR3D at ``width`` (and ``voxel_size``, default
    the config's 1 cm) with random weights (seed 0), in eval mode on ``device``."""
    if checkpoint:
        return PointCloudDetector.from_checkpoint(checkpoint, device=device)
    torch.manual_seed(0)
    model_cfg = ModelConfig(width=width)
    if voxel_size is not None:
        model_cfg = dataclasses.replace(model_cfg, voxel_size=voxel_size)
    cfg = DetectorConfig(model=model_cfg)
    return PointCloudDetector(TR3DDetector(cfg.model), cfg, device)


def measure(
    detector: PointCloudDetector, points: np.ndarray, runs: int, warmup: int
) -> dict[str, Any]:
    """Median per-stage and end-to-end milliseconds (see the module docstring) and, on CUDA,
    the peak memory allocated by one call (MiB; 0 on the CPU)."""
    cuda = detector.device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(detector.device)

    for _ in range(warmup):
        detector(points, timed=False)
    per_stage: dict[str, list[float]] = {s: [] for s in STAGES}
    counts = []
    for _ in range(runs):
        det = detector(points)
        counts.append(len(det))
        for s in STAGES:
            per_stage[s].append(det.timings_ms.get(s, 0.0))
    wall = []
    for _ in range(runs):
        sync()
        t0 = time.perf_counter()
        detector(points, timed=False)
        sync()
        wall.append((time.perf_counter() - t0) * 1e3)
    peak_mib = 0.0
    if cuda:
        torch.cuda.reset_peak_memory_stats(detector.device)
        detector(points, timed=False)
        sync()
        peak_mib = torch.cuda.max_memory_allocated(detector.device) / 2**20
    median = {s: statistics.median(v) for s, v in per_stage.items()}
    median["total"] = statistics.median(wall)
    return {
        "median_ms": median,
        "runs_ms": {**per_stage, "total": wall},
        "num_detections": counts,
        "peak_mib": peak_mib,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring); returns the exit status."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    p.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    p.add_argument("--runs", type=int, default=5, help="timed runs per (width, scene); >= 5")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--scenes", nargs="+", default=list(SCENES))
    p.add_argument("--data", default=None, help="data root (default: see the module docstring)")
    p.add_argument(
        "--checkpoint", default=None, help="benchmark this checkpoint instead of random-init widths"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument("--json", default=None, help="write all results here")
    args = p.parse_args(argv)
    if args.runs < 5:
        p.error("--runs must be >= 5 (medians of fewer runs are too noisy)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    root = data_root(args.data)
    clouds = {s: load_scene(root, s) for s in args.scenes}
    load_before = os.getloadavg()
    widths = [None] if args.checkpoint else args.widths

    print(
        f"device {device} ({device_name(device)}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, load average {load_before[0]:.2f}"
    )
    print(f"median of {args.runs} runs after {args.warmup} warm-up; {REFERENCE}\n")
    header = (
        f"{'width':>6} {'params':>9} {'scene':<13} {'points':>7}"
        + "".join(f"{s:>10}" for s in STAGES)
        + f"{'total':>10}"
    )
    print(header + "   (ms)")
    print("-" * len(header))
    results = []
    det = None
    for width in widths:
        det = build_detector(width if width is not None else 1.0, device, args.checkpoint)
        w = det.config.model.width
        params = sum(q.numel() for q in det.model.parameters())
        totals = []
        for scene, pts in clouds.items():
            r = measure(det, pts, args.runs, args.warmup)
            m = r["median_ms"]
            totals.append(m["total"])
            print(
                f"{w:>6g} {params / 1e6:>8.2f}M {scene:<13} {len(pts):>7}"
                + "".join(f"{m[s]:>10.1f}" for s in STAGES)
                + f"{m['total']:>10.1f}"
            )
            results.append(
                {"width": w, "params": params, "scene": scene, "num_points": len(pts), **r}
            )
        mean_total = statistics.mean(totals)
        print(
            f"{'':>6} {'':>9} {'mean':<13} {'':>7}"
            + " " * (10 * len(STAGES))
            + f"{mean_total:>10.1f}"
            f"   = {mean_total / REFERENCE_MS:.1f}x the 42 ms reference"
        )
    load_after = os.getloadavg()
    print(
        f"\nload average before / after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        f"({os.cpu_count()} CPUs; values above the CPU count mean other processes competed "
        "for the CPU)"
    )
    if args.json and det is not None:
        payload = {
            "device": str(device),
            "device_name": device_name(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "runs": args.runs,
            "warmup": args.warmup,
            "checkpoint": args.checkpoint,
            "weights": "checkpoint" if args.checkpoint else "random init (seed 0)",
            "reference": {"ms_per_scannet_scene": REFERENCE_MS, "text": REFERENCE},
            "inference": to_dict(det.config.inference),
            "results": results,
        }
        print(f"wrote {write_json(args.json, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
