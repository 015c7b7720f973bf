#!/usr/bin/env python3
"""Monocular detector (LeAD-M3D on YOLOv10) per size n / s / m / b / x: parameters, FLOPs at
1280 x 384, end-to-end latency, and what CGI3D saves, next to the paper's figures.

Per size (random weights, seed 0: the network's cost does not depend on them; the score threshold
is 0 so post-processing always decodes ``max_detections`` boxes):

* parameters: all (both heads, what training holds) and deployed (the one-to-one head only,
  what inference runs; YOLOv10 and LeAD-M3D report this one);
* GFLOPs (``torch.utils.flop_counter.FlopCounterMode``: 2 x multiply-adds of convolutions and
  matrix products) of one 1280 x 384 image, with the 3D branches on the full maps and with CGI3D
  (K = 50 patches), and of the 3D branches alone;
* latency of :class:`sr3d_ros.mono_inference.MonoDetector` end to end on the real KITTI image
  000007 (1242 x 375 uint8 in, detections out: letterbox, network, top-K, decoding), median of
  ``--repeats`` calls after ``--warmup``; on the CPU with one thread and with all threads, on
  CUDA on the GPU; CGI3D on and off (the reference, same run), the 3D-head stage time of both and
  the whole-model speed-up (full / gated end to end).

Paper figures (LeAD-M3D, Meier et al., arXiv 2512.05663, as quoted in issue 15): size N about
3.8 M parameters, 9.7 ms on an NVIDIA RTX 8000, KITTI test Car AP3D|R40 (E / M / H) 24.31 /
16.49 / 14.14; size X 30.76 / 21.20 / 18.76. The other sizes' parameters, runtimes and APs were
not found in the public text reachable here (abstract, project page: "not public" in the table).

Usage::

    python benchmarks/bench_mono.py [--sizes n s m b x] [--repeats 5] [--warmup 2]
        [--device cpu|cuda|auto] [--data ROOT] [--json out.json]

Prints a markdown table; writes JSON to ``--json``, else ``$OUT/bench_mono.json`` when ``$OUT`` is
set.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from typing import Any

from _bench_common import REPO, data_root, device_name, write_json

sys.path.insert(0, str(REPO))

import torch
from torch.utils.flop_counter import FlopCounterMode

from sr3d_ros.inference import resolve_device
from sr3d_ros.io.calibration import kitti_camera
from sr3d_ros.io.images import read_image
from sr3d_ros.models.mono import (
    MONO_SIZES,
    MonoDetectorConfig,
    MonoDetectorModel,
    MonoInferenceConfig,
    MonoModelConfig,
)
from sr3d_ros.models.mono.gating import head_topk
from sr3d_ros.mono_inference import MonoDetector

FRAME = "000007"
#: size -> (params M, runtime ms on an RTX 8000, KITTI test Car AP3D|R40 E / M / H), as public.
PAPER: dict[str, tuple[str, str, str]] = {
    "n": ("~3.8", "9.7", "24.31 / 16.49 / 14.14"),
    "x": ("not public", "not public", "30.76 / 21.20 / 18.76"),
}
NOT_PUBLIC = ("not public", "not public", "not public")


def count_params(model: MonoDetectorModel) -> tuple[int, int]:
    """(all parameters, deployed = without the one-to-many head)."""
    total = sum(p.numel() for p in model.parameters())
    o2m = sum(p.numel() for p in model.one2many.parameters())
    return total, total - o2m


def gflops(model: MonoDetectorModel, x: torch.Tensor, k: int) -> dict[str, float]:
    """GFLOPs of one input ``x``: backbone + neck, the one-to-one head's 2D branches, its 3D
    branches on the full maps and with CGI3D (``k`` patches)."""

    def count(fn: Any) -> float:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            fn()
        return float(fc.get_total_flops()) / 1e9

    with torch.no_grad():
        feats = model.neck(model.backbone(x))
        _, strides = model.anchors(feats)
    trunk = count(lambda: model.neck(model.backbone(x)))
    head2d = count(lambda: model.one2one.forward_2d(feats))
    full = count(lambda: head_topk(model.one2one, feats, strides, k, gated=False))
    gated = count(lambda: head_topk(model.one2one, feats, strides, k, gated=True))
    return {
        "gflops_full": trunk + full,
        "gflops_gated": trunk + gated,
        "gflops_3d_full": full - head2d,
        "gflops_3d_gated": gated - head2d,
    }


def time_detector(
    det: MonoDetector, image: Any, camera: Any, warmup: int, repeats: int
) -> tuple[float, float]:
    """(median end-to-end ms, median ``head_3d`` stage ms)."""
    for _ in range(warmup):
        det(image, camera)
    e2e, head3d = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = det(image, camera, timed=False)
        if det.device.type == "cuda":
            torch.cuda.synchronize(det.device)
        e2e.append((time.perf_counter() - t0) * 1e3)
        del r
    for _ in range(repeats):
        head3d.append(det(image, camera).timings_ms["head_3d"])
    return statistics.median(e2e), statistics.median(head3d)


def bench_size(
    size: str, device: torch.device, image: Any, camera: Any, args: argparse.Namespace
) -> dict[str, Any]:
    torch.manual_seed(0)
    cfg = MonoDetectorConfig(MonoModelConfig(size=size), MonoInferenceConfig(score_threshold=0.0))
    model = MonoDetectorModel(cfg.model).eval().to(device)
    total, deployed = count_params(model)
    x = torch.rand(1, 3, *cfg.model.input_size, device=device)
    row: dict[str, Any] = {
        "size": size,
        "params_m": total / 1e6,
        "params_deployed_m": deployed / 1e6,
        **gflops(model, x, cfg.inference.gate_topk),
    }
    settings = [("1t", 1), ("all", os.cpu_count() or 1)] if device.type == "cpu" else [("dev", 0)]
    for tag, threads in settings:
        if threads:
            torch.set_num_threads(threads)
        for gated in (True, False):
            inference = MonoInferenceConfig(score_threshold=0.0, gated=gated)
            det = MonoDetector(model, MonoDetectorConfig(cfg.model, inference), device)
            e2e, h3d = time_detector(det, image, camera, args.warmup, args.repeats)
            name = "gated" if gated else "full"
            row[f"e2e_ms_{tag}_{name}"] = e2e
            row[f"head3d_ms_{tag}_{name}"] = h3d
        row[f"speedup_{tag}"] = row[f"e2e_ms_{tag}_full"] / row[f"e2e_ms_{tag}_gated"]
    torch.set_num_threads(1)
    return row


def table(rows: list[dict[str, Any]], device: torch.device) -> str:
    tags = (
        [("1t", "1 thread"), ("all", f"{os.cpu_count()} threads")]
        if device.type == "cpu"
        else [("dev", str(device))]
    )
    head = (
        "| size | params M (deployed / all) | paper params M | GFLOPs full / CGI3D "
        "| 3D head GFLOPs full / CGI3D |"
    )
    sep = "|---|---|---|---|---|"
    for _, label in tags:
        head += (
            f" e2e ms CGI3D ({label}) | 3D head ms full / CGI3D ({label}) | speed-up ({label}) |"
        )
        sep += "---|---|---|"
    head += " paper ms (RTX 8000) | paper KITTI test Car AP3D R40 E / M / H |"
    sep += "---|---|"
    lines = [head, sep]
    for r in rows:
        p_params, p_ms, p_ap = PAPER.get(r["size"], NOT_PUBLIC)
        line = (
            f"| {r['size']} | {r['params_deployed_m']:.2f} / {r['params_m']:.2f} | {p_params} "
            f"| {r['gflops_full']:.1f} / {r['gflops_gated']:.1f} "
            f"| {r['gflops_3d_full']:.2f} / {r['gflops_3d_gated']:.3f} |"
        )
        for tag, _ in tags:
            line += (
                f" {r[f'e2e_ms_{tag}_gated']:.0f} | {r[f'head3d_ms_{tag}_full']:.1f} / "
                f"{r[f'head3d_ms_{tag}_gated']:.1f} | {r[f'speedup_{tag}']:.2f}x |"
            )
        line += f" {p_ms} | {p_ap} |"
        lines.append(line)
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", choices=sorted(MONO_SIZES), default=list("nsmbx"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--data", default=None, help="data root (default: see _bench_common)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    device = resolve_device(args.device)
    root = data_root(args.data) / "kitti" / "training"
    image = read_image(root / "image_2" / f"{FRAME}.png")
    camera = kitti_camera(root / "calib" / f"{FRAME}.txt", image.shape[1], image.shape[0])
    torch.set_num_threads(1)
    rows = [bench_size(s, device, image, camera, args) for s in args.sizes]
    print(
        f"LeAD-M3D (ours) at 1280 x 384, KITTI {FRAME} ({image.shape[1]} x {image.shape[0]}) end "
        f"to end, {device_name(device)}, median of {args.repeats}; speed-up = e2e full 3D head / "
        "e2e CGI3D (K = 50)"
    )
    print(table(rows, device))
    out = args.json
    if out is None and os.environ.get("OUT"):
        out = os.path.join(os.environ["OUT"], "bench_mono.json")
    if out:
        write_json(
            out,
            {
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "device": str(device),
                "device_name": device_name(device),
                "repeats": args.repeats,
                "rows": rows,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
