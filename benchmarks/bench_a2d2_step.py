#!/usr/bin/env python3
"""Training-step time of A2D2 (frozen teacher + depth-feature distillation) vs plain training of
the monocular detector.

Same student (size ``--size``), real KITTI training frames, seed and batch size; one step =
forward + CM3D assignment + losses + backward + AdamW update (``Trainer.train_step``); A2D2 adds
the teacher's forward pass on the clean images, the teacher's CM3D assignment and the
distillation loss. Each ``--teacher-sizes`` entry adds a row (a teacher with other depth-feature
channels runs with the adapter). Teachers are randomly initialised checkpoints written to a
temporary folder: the cost does not depend on their weights. Median of ``--steps`` steps after
``--warmup``, measured in one process, alternating the variants so machine load hits them alike;
the data time per item (augmentation / the A2D2 input pair) is measured separately. Prints a
table with the ratio to plain training and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    import torch

    from sr3d_ros.checkpoints import save_checkpoint
    from sr3d_ros.io.atomic import atomic_write_json
    from sr3d_ros.models.mono import MonoDetectorConfig, MonoDetectorModel
    from sr3d_training.config import MonoTrainConfig, load_train_config
    from sr3d_training.distill import DistillConfig
    from sr3d_training.trainer import Trainer

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default=str(REPO / "config" / "mono_kitti_a2d2.yaml"))
    p.add_argument("--size", default="n", help="student size")
    p.add_argument("--teacher-sizes", nargs="+", default=["n"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument(
        "--input", nargs=2, type=int, default=None, metavar=("H", "W"), help="network input"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (0 = torch's default)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.steps < 3:
        p.error("--steps must be >= 3")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="sr3d_bench_a2d2_"))
    base = load_train_config(args.config, {"output_dir": str(tmp / "run")})
    if not isinstance(base, MonoTrainConfig):
        p.error(f"{args.config} is not a monocular training config")
    student = dataclasses.replace(base.model, size=args.size)
    if args.input:
        student = dataclasses.replace(student, input_size=tuple(args.input))
    base = dataclasses.replace(base, model=student, batch_size=args.batch)
    variants: dict[str, Any] = {"plain": dataclasses.replace(base, distill=DistillConfig())}
    for size in args.teacher_sizes:
        torch.manual_seed(0)
        t_cfg = MonoDetectorConfig(dataclasses.replace(student, size=size), base.inference)
        t_model = MonoDetectorModel(t_cfg.model)
        path = tmp / f"teacher_{size}.pt"
        save_checkpoint(path, t_model.state_dict(), t_cfg, {"note": "random weights (bench)"})
        adapter = t_model.depth_feat_channels != MonoDetectorModel(student).depth_feat_channels
        options = {**base.distill.options, "kd_weight": 1.0, "adapter": adapter}
        variants[f"a2d2 (teacher {size})"] = dataclasses.replace(
            base, distill=DistillConfig(kind="a2d2", teacher=str(path), options=options)
        )
    trainers = {k: Trainer(v, device=args.device, progress=False) for k, v in variants.items()}
    n_batches = args.steps + args.warmup
    data_ms: dict[str, float] = {}
    batches: dict[str, list[dict[str, Any]]] = {}
    for name, trainer in trainers.items():
        t0 = time.perf_counter()
        items = [
            trainer.train_set[i % len(trainer.train_set)] for i in range(n_batches * args.batch)
        ]
        data_ms[name] = (time.perf_counter() - t0) * 1e3 / len(items)
        batches[name] = [
            trainer.task.collate(items[i * args.batch : (i + 1) * args.batch])
            for i in range(n_batches)
        ]
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for i in range(n_batches):
        for name, trainer in trainers.items():
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.train_step(batches[name][i])
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    dev = trainers["plain"].device
    h, w = student.input_size
    print(
        f"monocular training step, student size {args.size}, {w}x{h}, batch {args.batch}, "
        f"{dev}, {torch.get_num_threads()} threads, median of {args.steps}"
    )
    print(f"{'variant':>20} {'ms/step':>9} {'ratio':>6} {'data ms/item':>13}")
    for name in trainers:
        ratio = med[name] / med["plain"]
        print(f"{name:>20} {med[name]:>9.0f} {ratio:>6.2f} {data_ms[name]:>13.0f}")
    if args.json:
        payload = {
            "device": str(dev),
            "threads": torch.get_num_threads(),
            "student_size": args.size,
            "batch": args.batch,
            "median_ms": med,
            "ratio": {k: med[k] / med["plain"] for k in med},
            "data_ms_per_item": data_ms,
            "times_ms": times,
        }
        atomic_write_json(args.json, payload)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
