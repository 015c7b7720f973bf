#!/usr/bin/env python3
"""Detector latency table of the GPU check (``benchmarks/gpu_check.sh``); runs on the CPU too.

Cases, each on the real ScanNet scan ``scene0000_00`` (81,369 points, as TR3D evaluates it):

* ``tr3d``: TR3D at full width (1.0) with 1 cm voxels, as TR3D, random weights (seed 0). The
  network stages do not depend on the weights; post-processing does (random weights put about
  half of the 1000 pre-NMS locations x 18 classes just above the 0.01 score threshold, more
  than a trained model), so its ``post`` column is an upper bound.
* ``default``: the embedded default model (width 0.5, 2 cm voxels, trained on this scan): real
  post-processing load.
* ``tr3d_loop`` (CUDA only, by default): ``tr3d`` with the sparse convolutions forced to the
  per-offset loop (the CPU's strategy) instead of the all-offsets batch, to show what the
  batched CUDA path (:mod:`sr3d_ros.sparse.batched`) gains.
* the monocular detector (LeAD-M3D) has its own table, ``benchmarks/bench_mono.py`` (step 5
  of ``gpu_check.sh``).

Per case: ``--warmup`` untimed calls, then ``--runs`` calls with per-stage timing (voxelise,
backbone, neck, head, post-processing = scores + top-k + decoding + NMS; the detector's
:class:`~sr3d_ros.timing.StageTimer`, which synchronises CUDA at every stage boundary) and
``--runs`` calls timed end to end (numpy points on the host in, detections out, one
synchronisation at the end); medians. Also the voxel count and, on CUDA, the peak memory
allocated by one call.

Target (issue 11): TR3D at full width <= 25 ms per ScanNet scan end to end on a data-centre
GPU (TR3D and SR3D report ~42 ms on a desktop GPU, RTX 4090 with MinkowskiEngine).

Prints one table; writes the results as JSON to ``--json``, else ``$OUT/latency.json`` when
``$OUT`` is set. The data root is ``--data``, else ``$SR3D_DATA``, else ``.gpu_data`` in the
repository if it exists, else ``../shared/data``.

Usage::

    python benchmarks/bench_latency.py [--device auto|cuda|cpu] [--runs 20] [--warmup 5]
        [--cases tr3d default tr3d_loop] [--data ROOT] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _bench_common import REPO, data_root, device_name, write_json
from bench_detector import STAGES, build_detector, load_scene, measure

sys.path.insert(0, str(REPO))

import torch

from sr3d_ros.inference import PointCloudDetector, resolve_device
from sr3d_ros.models import points_to_sparse
from sr3d_ros.sparse import conv_strategy

SCENE = "scene0000_00"
TARGET_MS = 25.0
COLUMNS = (*STAGES, "total")
HEADINGS = {"nms": "post", "total": "e2e"}


def _cases() -> dict[str, tuple[str, Callable[[torch.device], PointCloudDetector]]]:
    """Case name -> (table label, builder on a device)."""
    return {
        "tr3d": (
            "TR3D w1.0 1cm (random init)",
            lambda dev: build_detector(1.0, dev, voxel_size=0.01),
        ),
        "default": (
            "default model w0.5 2cm",
            lambda dev: PointCloudDetector.from_checkpoint(None, device=dev),
        ),
        "tr3d_loop": (
            "TR3D w1.0 1cm, offset loop",
            lambda dev: build_detector(1.0, dev, voxel_size=0.01),
        ),
    }


def _voxels(detector: PointCloudDetector, points: Any) -> int:
    cfg = detector.config.model
    pts = torch.from_numpy(points).to(detector.device)
    return len(points_to_sparse([pts], cfg.voxel_size, cfg.color_mean))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring); returns the exit status."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--device", default="auto", help="auto (default: cuda if available), cuda, cpu")
    p.add_argument("--runs", type=int, default=20, help="timed runs per case and mode")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    p.add_argument(
        "--cases",
        nargs="+",
        default=None,
        choices=list(_cases()),
        help="default: tr3d default, and tr3d_loop on CUDA",
    )
    p.add_argument("--data", default=None, help="data root (default: see the module docstring)")
    p.add_argument("--json", default=None, help="JSON output (default: $OUT/latency.json)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    device = resolve_device(args.device)
    cases = args.cases or ["tr3d", "default"] + (["tr3d_loop"] if device.type == "cuda" else [])
    points = load_scene(data_root(args.data), SCENE)
    cuda = torch.version.cuda if device.type == "cuda" else None
    print(
        f"detector latency on {device} ({device_name(device)}), torch {torch.__version__}"
        + (f", CUDA {cuda}" if cuda else f", {torch.get_num_threads()} CPU threads")
        + f", {datetime.date.today().isoformat()}"
    )
    print(
        f"ScanNet {SCENE} ({len(points):,} points); median of {args.runs} runs after "
        f"{args.warmup} warm-up calls; milliseconds"
    )
    header = (
        f"{'case':<29}{'voxels':>8}"
        + "".join(f"{HEADINGS.get(c, c):>9}" for c in COLUMNS)
        + f"{'peak MiB':>10}{'dets':>6}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for name in cases:
        label, build = _cases()[name]
        det = build(device)
        strategy = conv_strategy("per_offset") if name == "tr3d_loop" else contextlib.nullcontext()
        with strategy:
            r = measure(det, points, args.runs, args.warmup)
        m = r["median_ms"]
        voxels = _voxels(det, points)
        peak = f"{r['peak_mib']:>10.0f}" if device.type == "cuda" else f"{'-':>10}"
        print(
            f"{label:<29}{voxels:>8}"
            + "".join(f"{m[c]:>9.1f}" for c in COLUMNS)
            + f"{peak}{r['num_detections'][-1]:>6}"
        )
        results.append(
            {
                "case": name,
                "label": label,
                "width": det.config.model.width,
                "voxel_size": det.config.model.voxel_size,
                "voxels": voxels,
                **r,
            }
        )
        del det
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print("monocular detector (LeAD-M3D): see benchmarks/bench_mono.py")
    verdict = None
    tr3d = next((r for r in results if r["case"] == "tr3d"), None)
    if tr3d is not None:
        e2e = tr3d["median_ms"]["total"]
        verdict = e2e <= TARGET_MS
        where = "" if device.type == "cuda" else " (the target is for a data-centre GPU)"
        print(
            f"target: TR3D full width end to end <= {TARGET_MS:.0f} ms{where}: "
            f"{'met' if verdict else 'NOT met'} ({e2e:.1f} ms; TR3D / SR3D report ~42 ms on a "
            "desktop GPU)"
        )
    out = args.json or (Path(os.environ["OUT"]) / "latency.json" if os.environ.get("OUT") else None)
    if out:
        payload = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "device": str(device),
            "device_name": device_name(device),
            "torch": torch.__version__,
            "cuda": cuda,
            "threads": torch.get_num_threads(),
            "scene": SCENE,
            "num_points": len(points),
            "runs": args.runs,
            "warmup": args.warmup,
            "target_ms": TARGET_MS,
            "target_met": verdict,
            "results": results,
        }
        print(f"wrote {write_json(out, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
