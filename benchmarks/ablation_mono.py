#!/usr/bin/env python3
"""LeAD-M3D ablation on the real KITTI frames: CM3D vs TAL, one-to-one head vs one-to-many + NMS.

Training arms (everything else equal: model size n, input size, steps, data, schedule, seed set):

* ``tal``: the matching metric with ``gamma = 0`` (exactly YOLOv10's task-aligned assignment);
* ``cm3d``: ``gamma = 1`` (the pre-registered CM3D exponent of ``(1 + MGIoU3D) / 2``).

Each trained run is evaluated twice (inference arms, no retraining): the one-to-one head without
NMS (what the detector ships; CGI3D) and the one-to-many head with class-wise 2D NMS (IoU 0.7,
YOLOv8 / YOLOv10's default). Table rows are (training arm, head): mean +- sample std over seeds
of Car AP3D|R40 at IoU 0.5 and 0.7 (moderate), Car AP2D|R40 at 0.7 (moderate), the depth
error of matched cars and their number, on the held-out frames (``val_ids`` of the base config:
000007, 000036, 000217, pre-registered before any training) and, for reference, on the 11
training frames. With so few counted cars the official R40 sampling caps AP at ``(n - 1) / 40``
(6 moderate held-out cars: 12.5); the ceiling is printed in the header. Nothing is tuned on the
held-out frames.

Resumable like ``benchmarks/ablation_sr3d.py``: each (arm, seed) writes
``OUT/<arm>/seed<k>/result.json`` atomically when it ends, finished runs are skipped, an
interrupted run resumes from its ``last.pt``, and the table (``OUT/table.md``, with the command
and the git revision) is assembled from whatever result files exist. A result file made with
another budget is an error (use another ``--out``). ``--runs`` / ``--seeds`` select a subset,
``--table-only`` trains nothing.

Schedule: ``config/mono_kitti_n.yaml``'s (5 epochs, lr x0.1 for the last, batch 4, flip +
photometric augmentation, precise BatchNorm) at ``--input`` (default 192 x 640, half KITTI's
resolution, to fit the CPU) with ``--steps`` rounded to whole epochs.

Budget. The defaults (240 steps at 192 x 640, one CPU thread) cost about 1.1 s per step on an
idle core, ~5 min per run with its evaluations: 6 runs ~ 30 min on one free core (two to three
times that on the shared 2-core machine this was written on).

Usage::

    python benchmarks/ablation_mono.py [--out outputs/ablation_mono] [--steps 240]
        [--input 192x640] [--seeds 0 1 2] [--runs tal cm3d] [--table-only] [--quiet]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _ablation_common import (  # noqa: E402
    compute_footer,
    pending_run_dir,
    run_table,
    train_timed,
)

from sr3d_ros.io.atomic import atomic_write_json  # noqa: E402
from sr3d_training.config import MonoTrainConfig, load_train_config  # noqa: E402
from sr3d_training.datasets import KittiDataset  # noqa: E402
from sr3d_training.evaluation.mono import evaluate_mono, predict_mono_dataset  # noqa: E402
from sr3d_training.runtime import git_revision  # noqa: E402
from sr3d_training.trainer import Trainer  # noqa: E402

logger = logging.getLogger("ablation_mono")

BASE_CONFIG = REPO / "config" / "mono_kitti_n.yaml"
#: training arm -> CM3D gamma
ARMS: dict[str, float] = {"tal": 0.0, "cm3d": 1.0}
HEADS = ("one2one", "one2many")
METRICS = {
    "AP3D@0.5": "Car/AP3D_R40@0.5/moderate",
    "AP3D@0.7": "Car/AP3D_R40@0.7/moderate",
    "AP2D@0.7": "Car/AP2D_R40@0.7/moderate",
    "depth MAE m": "Car/depth_mae",
    "cars matched": "Car/depth_matched",
}


def _base() -> MonoTrainConfig:
    cfg = load_train_config(BASE_CONFIG)
    if not isinstance(cfg, MonoTrainConfig):
        raise ValueError(f"{BASE_CONFIG} is not a mono config")
    return cfg


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """What every run of one table shares (recorded in each result file)."""
    base = _base()
    h, w = (int(v) for v in args.input.lower().split("x"))
    frames, bs, epochs = len(base.data.train_ids), base.batch_size, base.optim.epochs
    repeat = max(1, round(args.steps * bs / (epochs * frames)))
    steps = epochs * math.ceil(frames * repeat / bs)
    return {"steps": steps, "repeat": repeat, "input": [h, w], "base": BASE_CONFIG.name}


def run_config(arm: str, seed: int, b: dict[str, Any], run_dir: Path) -> MonoTrainConfig:
    """The training config of one (arm, seed): the base config with the shared budget."""
    base = _base()
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, input_size=tuple(b["input"])),
        data=dataclasses.replace(base.data, repeat=b["repeat"], val_ids=()),
        assigner=dataclasses.replace(base.assigner, gamma=ARMS[arm]),
        seed=seed,
        output_dir=str(run_dir / "train"),
        eval_every=0,
    )


def _scores(trainer: Trainer, cfg: MonoTrainConfig, ids: tuple[str, ...]) -> dict[str, Any]:
    frames = KittiDataset(cfg.data.root, frame_ids=list(ids))
    out: dict[str, Any] = {}
    for head in HEADS:
        results = predict_mono_dataset(trainer.model, frames, cfg.inference, head=head)
        out[head] = evaluate_mono(results).metrics()
    return out


def run_one(arm: str, seed: int, b: dict[str, Any], out: Path, device: str, quiet: bool) -> None:
    """Train and evaluate one (arm, seed) unless its result file exists; write it atomically."""
    run_dir = pending_run_dir(out, arm, seed)
    if run_dir is None:
        return
    cfg = run_config(arm, seed, b, run_dir)
    run = train_timed(cfg, run_dir, device, quiet)
    t1 = time.time()
    held_out = _base().data.val_ids
    metrics = {
        "held_out": _scores(run.trainer, cfg, held_out),
        "train": _scores(run.trainer, cfg, cfg.data.train_ids),
    }
    atomic_write_json(
        run_dir / "result.json",
        {
            "arm": arm,
            "seed": seed,
            "budget": b,
            "held_out_ids": list(held_out),
            "metrics": metrics,
            **run.record(time.time() - t1),
        },
    )
    logger.info("%s seed %d: %.0f s", arm, seed, run.train_seconds)


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def table(by_arm: dict[str, list[dict[str, Any]]], b: dict[str, Any], command: str) -> str:
    """Markdown table: mean ± sample std over seeds per (arm, head), held-out then train."""
    h, w = b["input"]
    ceilings = {
        split: runs[0]["metrics"][split]["one2one"]["Car/AP3D_R40@0.5/moderate_ceiling"]
        for runs in by_arm.values()
        if runs
        for split in ("held_out", "train")
    }
    lines = [
        f"LeAD-M3D ablation (size n, {b['steps']} steps, input {w}x{h}, batch 4, trained on 11 "
        "KITTI frames); mean ± std over seeds; Car, moderate, AP|R40 in percent (ceiling of "
        f"AP3D@0.5 with perfect detections: held-out {ceilings.get('held_out', '-')}, train "
        f"{ceilings.get('train', '-')}).",
        f"Command: `{command}`; git {git_revision()}.",
        "",
        "| arm | head | seeds | split | " + " | ".join(METRICS) + " | train s/run |",
        "|---|---|---|---|" + "---|" * len(METRICS) + "---|",
    ]
    for arm, runs in by_arm.items():
        seeds = ",".join(str(r["seed"]) for r in runs) or "-"
        secs = f"{statistics.mean(r['train_seconds'] for r in runs):.0f}" if runs else "-"
        for head in HEADS:
            label = "one2one, no NMS" if head == "one2one" else "one2many + NMS"
            for split in ("held_out", "train"):
                cols = [
                    _mean_std([r["metrics"][split][head][key] for r in runs])
                    for key in METRICS.values()
                ]
                lines.append(
                    f"| {arm} | {label} | {seeds} | {split} | " + " | ".join(cols) + f" | {secs} |"
                )
    return "\n".join(lines + compute_footer(by_arm))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=REPO / "outputs" / "ablation_mono")
    p.add_argument("--runs", nargs="+", choices=sorted(ARMS), default=list(ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=240, help="training steps per run (whole epochs)")
    p.add_argument("--input", default="192x640", help="network input HxW (multiples of 32)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (0 = default)")
    p.add_argument("--table-only", action="store_true", help="assemble the table, train nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars / log lines")
    args = p.parse_args(argv)
    command = " ".join(["python", "benchmarks/ablation_mono.py", *(argv or sys.argv[1:])])
    try:
        b = budget(args)
    except ValueError as exc:
        print(f"ablation_mono: error: bad --input {args.input!r} ({exc})", file=sys.stderr)
        return 2

    def train() -> None:
        for arm in args.runs:
            for seed in args.seeds:
                run_one(arm, seed, b, args.out, args.device, args.quiet)

    return run_table("ablation_mono", args, b, ARMS, train, lambda r: table(r, b, command))


if __name__ == "__main__":
    raise SystemExit(main())
