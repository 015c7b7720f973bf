"""What the resumable ablation tables share: the timed, resumable training of one run and its
record (all four: ``ablation_sr3d.py``, ``ablation_vrdistill.py``, ``ablation_mono.py``,
``ablation_a2d2.py``); for the ScanNet tables also the short 2-scan schedule, the held-out
evaluation, the per-run result files, the table cells and the command line. Not a benchmark
itself (the leading underscore keeps ``make bench`` globs away from it)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sr3d_ros.config import InferenceConfig
from sr3d_ros.io.atomic import atomic_write_text
from sr3d_training.config import BaseTrainConfig, OptimConfig, TrainConfig
from sr3d_training.datasets import ScanNetDataset
from sr3d_training.evaluate import evaluate_predictions, predict_dataset
from sr3d_training.runtime import git_revision
from sr3d_training.trainer import Trainer

logger = logging.getLogger("ablation")

#: held-out scan (training on scene0000_00 + scene0000_01)
VAL_SCENE = "scene0000_02"
#: ``config/train_scannet_default.yaml``'s schedule shape: epochs, lr drops, scans per epoch
EPOCHS, MILESTONES, SCANS = 12, (8, 11), 2


@dataclasses.dataclass(frozen=True)
class TimedRun:
    """One finished training run of a table."""

    #: the trainer after ``fit()`` (its model, device and history)
    trainer: Trainer
    #: what ``Trainer.fit`` returned (``steps``, ``checkpoint``, ...)
    summary: dict[str, Any]
    #: wall-clock seconds of building the trainer and fitting (this invocation only)
    train_seconds: float
    #: whether it resumed an interrupted run from ``last.pt``
    resumed: bool

    def record(self, eval_seconds: float) -> dict[str, Any]:
        """The result-file fields every table stores about how a run was made: steps trained,
        train / eval seconds, resumed, device, CPU threads, git revision."""
        return {
            "steps_trained": self.summary["steps"],
            "train_seconds": self.train_seconds,
            "eval_seconds": eval_seconds,
            "resumed": self.resumed,
            "device": str(self.trainer.device),
            "threads": torch.get_num_threads(),
            "git": git_revision(),
        }


def pending_run_dir(out: Path, arm: str, seed: int) -> Path | None:
    """``out/<arm>/seed<seed>``, or ``None`` (logged) when its ``result.json`` already exists:
    finished runs are never retrained."""
    run_dir = out / arm / f"seed{seed}"
    if (run_dir / "result.json").is_file():
        logger.info("%s seed %d: done (%s)", arm, seed, run_dir / "result.json")
        return None
    return run_dir


def train_timed(cfg: BaseTrainConfig, run_dir: Path, device: str, quiet: bool) -> TimedRun:
    """Train ``cfg`` (any kind; its ``output_dir`` is ``run_dir / "train"``), resuming from
    ``run_dir/train/last.pt`` when an interrupted run left one, and time it.

    Raises:
        whatever :class:`~sr3d_training.trainer.Trainer` raises for a bad config or data.
    """
    resume = (run_dir / "train" / "last.pt").is_file()
    t0 = time.time()
    trainer = Trainer(cfg, device=device, resume=resume, progress=not quiet)
    summary = trainer.fit()
    return TimedRun(trainer, summary, time.time() - t0, resume)


def rounded_steps(steps: int) -> int:
    """``steps`` rounded down to a whole number of epochs (a multiple of EPOCHS x SCANS), >= 1."""
    per = EPOCHS * SCANS
    return max(steps // per, 1) * per


def short_schedule(base: TrainConfig, steps: int) -> dict[str, Any]:
    """``data`` and ``optim`` of ``base`` for a run of ``steps`` (a multiple of 24) optimizer
    steps: the two scans repeated ``steps / 24`` times per epoch, 12 epochs, lr x0.1 after epochs
    8 and 11, warm-up ``min(100, steps // 6)``; no validation during training. Returns keyword
    arguments for ``dataclasses.replace(base, ...)``."""
    return {
        "data": dataclasses.replace(base.data, repeat=steps // (EPOCHS * SCANS), val_ids=()),
        "optim": OptimConfig(
            lr=base.optim.lr,
            weight_decay=base.optim.weight_decay,
            warmup_steps=min(100, steps // 6),
            warmup_start_lr=base.optim.warmup_start_lr,
            milestones=MILESTONES,
            epochs=EPOCHS,
            grad_clip=base.optim.grad_clip,
        ),
    }


def evaluate_held_out(
    model: nn.Module,
    root: str,
    inference: InferenceConfig,
    class_names: tuple[str, ...],
    device: torch.device,
    oracle: bool = False,
) -> dict[str, float]:
    """``mAP@0.25`` / ``mAP@0.5`` of ``model`` on :data:`VAL_SCENE` (and, with ``oracle``, the
    IoU-oracle ``oracle_mAP@...``: every score replaced by the box's IoU with its best same-class
    GT)."""
    val = ScanNetDataset(root, scene_ids=[VAL_SCENE])
    results = predict_dataset(model, val, inference, device)
    ev = evaluate_predictions(results, class_names)
    metrics = {f"mAP@{t}": float(ev.mAP[t]) for t in ev.mAP}
    if oracle:
        ev_oracle = evaluate_predictions(results, class_names, oracle=True)
        metrics |= {f"oracle_mAP@{t}": float(ev_oracle.mAP[t]) for t in ev_oracle.mAP}
    return metrics


def load_results(
    out: Path, budget: dict[str, Any], arms: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """The result files ``out/<arm>/seed<k>/result.json`` grouped by arm (``arms`` order first).

    Raises:
        ValueError: a result file was made with another budget.
    """
    by_arm: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for f in sorted(out.glob("*/seed*/result.json")):
        r = json.loads(f.read_text())
        if r["budget"] != budget:
            raise ValueError(f"{f}: budget {r['budget']} differs from this table's {budget}")
        by_arm.setdefault(r["arm"], []).append(r)
    return by_arm


def mean_std(values: list[float]) -> str:
    """``"mean ± sample std"`` with 3 decimals (std 0 for one value), ``"-"`` for none."""
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def seeds_cell(runs: list[dict[str, Any]]) -> str:
    """The seeds of an arm's runs, ``"0,1,2"`` (``"-"`` for none)."""
    return ",".join(str(r["seed"]) for r in runs) or "-"


def train_seconds_cell(runs: list[dict[str, Any]]) -> str:
    """Mean training seconds of an arm's runs (``"-"`` for none)."""
    return f"{statistics.mean(r['train_seconds'] for r in runs):.0f}" if runs else "-"


def compute_footer(by_arm: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The table's last lines: the total compute (training + evaluation) of its runs."""
    total = sum(r["train_seconds"] + r["eval_seconds"] for rs in by_arm.values() for r in rs)
    return ["", f"Total compute in these runs: {total / 3600:.2f} h."]


def add_common_arguments(p: argparse.ArgumentParser, out: Path) -> None:
    """``--out`` (default ``out``), ``--seeds``, ``--voxel``, ``--device``, ``--threads``,
    ``--table-only``, ``-q``."""
    p.add_argument("--out", type=Path, default=out)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--voxel", type=float, default=0.02, help="metres")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU intra-op threads (0 = torch's default); on small shared machines one thread "
        "is the fastest (multi-threaded small ops wait on each other)",
    )
    p.add_argument("--table-only", action="store_true", help="assemble the table, train nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars / log lines")


def run_table(
    name: str,
    args: argparse.Namespace,
    budget: dict[str, Any],
    arms: Iterable[str],
    train: Callable[[], None],
    table: Callable[[dict[str, list[dict[str, Any]]]], str],
) -> int:
    """The common main: logging and threads from ``args``; refuse a folder holding another
    budget; ``train()`` unless ``--table-only``; print the table assembled from the result files
    and write it atomically to ``OUT/table.md``. Returns the exit status (2: budget mismatch or a
    missing file, with one error line)."""
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(name)s: %(message)s"
    )
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    arms = list(arms)
    try:
        load_results(args.out, budget, arms)  # refuse to mix budgets before training anything
        if not args.table_only:
            train()
        text = table(load_results(args.out, budget, arms))
    except (ValueError, FileNotFoundError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    atomic_write_text(args.out / "table.md", text + "\n")
    return 0
