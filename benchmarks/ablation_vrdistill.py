#!/usr/bin/env python3
"""VRDistill ablation on the real ScanNet scans: does distillation help 1/2- and 1/4-width
students of our TR3D-architecture detector, and which part does the work.

Arms (every student arm: same steps, data, voxels and schedule; only the width and the
distillation change):

* ``teacher``: the widest model the budget allows here (``--teacher-width``, default 0.5),
  trained with ``--teacher-steps``; every distilled arm distils its seed-0 checkpoint, and
  ``--teacher-seeds`` (default 0 1 2) give its seed spread, which the shipping rule needs;
* for each student width ``half`` (teacher width x 1/2) and ``quarter`` (x 1/4):
  ``<w>_alone`` (plain training), ``<w>_vrdistill`` (VRDistill, the defaults of
  :class:`~sr3d_training.distill.VRDistillOptions`), ``<w>_norefine`` (no refinement module: the
  student imitates the raw teacher votes), ``<w>_nomask`` (every vote weighted 1); the default
  ``--runs`` ablate the quarter student only (the real-time candidate; ``half_norefine`` /
  ``half_nomask`` on request);
* the lambda sweep (weight of L_vc) on the quarter student: ``quarter_vrdistill_lam0.005``
  and ``quarter_vrdistill_lam0.08`` (the default is 0.02), run with ``--sweep-seeds`` (seed 0).

Per run: parameters, MACs of one forward pass on the held-out scan (sparse-convolution
multiply-accumulates = kernel-map pairs x C_in x C_out, plus the 1x1 convolutions; BatchNorm,
ReLU, pooling and post-processing not counted), CPU latency per scan (the detector as the node
runs it, ``PointCloudDetector`` on scene0000_02 at one thread, median of 5 after a warm-up) and
mAP@0.25 / 0.5 on the held-out scan scene0000_02 (training on scene0000_00 + scene0000_01;
nothing tuned on scene0000_02). Students: mean ± std over seeds.

Resumable: each run writes ``OUT/<arm>/seed<k>/result.json`` atomically when it ends; finished
runs are skipped, an interrupted one resumes from its ``last.pt``; the table is assembled from
whatever result files exist. ``--runs`` / ``--seeds`` select a subset (the teacher is trained
first whenever a distilled arm needs it); ``--table-only`` trains nothing. A result file made with
another budget is an error (use another ``--out``).

Schedule: ``config/train_scannet_default.yaml``'s shape (12 epochs over the two scans repeated,
lr x0.1 after epochs 8 and 11, batch 1) with ``--steps`` rounded down to a multiple of 24 and a
warm-up of ``min(100, steps // 6)`` steps; the teacher the same with ``--teacher-steps``.

Budget (defaults: 2 cm voxels, students 240 steps, a width-0.5 teacher of 600 steps (the
shipped model's schedule), one CPU thread per run; 3 teacher seeds + 6 student arms x 3 seeds
+ 2 sweep runs). A width-1.0 teacher (the shipped model's width) made the table about 7 h on
the shared 2-core machine (teacher 3235 s, distilled quarter student 1499 s per run: the
teacher's forward pass dominates a distilled step), over the ~2 h target, so the default
teacher is the widest that fits: measured there with two runs in parallel, teacher 650 s,
``half_alone`` 124 s, ``half_vrdistill`` 367 s per run, about 2 h for the table. Runs resume,
so a table can be finished over several sessions.

Usage::

    python benchmarks/ablation_vrdistill.py [--out outputs/ablation_vrdistill] [--steps 240]
        [--teacher-steps 600] [--teacher-width 0.5] [--teacher-seeds 0 1 2] [--voxel 0.02]
        [--seeds 0 1 2]
        [--sweep-seeds 0] [--runs teacher half_alone ...] [--table-only] [--quiet]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402
from _ablation_common import (  # noqa: E402
    VAL_SCENE,
    add_common_arguments,
    compute_footer,
    evaluate_held_out,
    mean_std,
    pending_run_dir,
    rounded_steps,
    run_table,
    seeds_cell,
    short_schedule,
    train_seconds_cell,
    train_timed,
)
from torch import nn  # noqa: E402

from sr3d_ros.inference import PointCloudDetector  # noqa: E402
from sr3d_ros.io.atomic import atomic_write_json  # noqa: E402
from sr3d_ros.models import TR3DDetector, points_to_sparse  # noqa: E402
from sr3d_ros.sparse import SparseConv3d, SparseGenerativeConvTranspose3d  # noqa: E402
from sr3d_training.config import TrainConfig, load_train_config  # noqa: E402
from sr3d_training.datasets import ScanNetDataset  # noqa: E402
from sr3d_training.distill import DistillConfig  # noqa: E402
from sr3d_training.runtime import git_revision  # noqa: E402

logger = logging.getLogger("ablation_vrdistill")

BASE_CONFIG = REPO / "config" / "train_scannet_default.yaml"
#: student width as a fraction of the teacher's
FRACTIONS = {"half": 0.5, "quarter": 0.25}
#: arm -> (student fraction or None for the teacher, distillation options or None for plain)
ARMS: dict[str, tuple[str | None, dict[str, Any] | None]] = {"teacher": (None, None)}
for _w in FRACTIONS:
    ARMS |= {
        f"{_w}_alone": (_w, None),
        f"{_w}_vrdistill": (_w, {}),
        f"{_w}_norefine": (_w, {"use_refinement": False}),
        f"{_w}_nomask": (_w, {"use_mask": False}),
    }
ARMS |= {
    "quarter_vrdistill_lam0.005": ("quarter", {"vc_weight": 0.005}),
    "quarter_vrdistill_lam0.08": ("quarter", {"vc_weight": 0.08}),
}
SWEEP = ("quarter_vrdistill_lam0.005", "quarter_vrdistill_lam0.08")
DEFAULT_RUNS = [a for a in ARMS if a not in ("half_norefine", "half_nomask")]
LATENCY_RUNS = 5


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """What every run of one table shares (recorded in each result file)."""
    return {
        "steps": rounded_steps(args.steps),
        "teacher_steps": rounded_steps(args.teacher_steps),
        "teacher_width": args.teacher_width,
        "voxel_size": args.voxel,
        "base": BASE_CONFIG.name,
    }


def arm_width(arm: str, b: dict[str, Any]) -> float:
    """Model width of an arm (the teacher's, or the teacher's times the student fraction)."""
    fraction = ARMS[arm][0]
    return float(b["teacher_width"]) * (FRACTIONS[fraction] if fraction else 1.0)


def teacher_checkpoint(out: Path) -> Path:
    return out / "teacher" / "seed0" / "train" / "final.pt"


def run_config(arm: str, seed: int, b: dict[str, Any], out: Path) -> TrainConfig:
    """The training config of one (arm, seed): the base config with the shared budget."""
    base = load_train_config(BASE_CONFIG)
    steps = b["teacher_steps"] if arm == "teacher" else b["steps"]
    options = ARMS[arm][1]
    distill = (
        DistillConfig()
        if options is None
        else DistillConfig(
            kind="vrdistill", teacher=str(teacher_checkpoint(out)), options=dict(options)
        )
    )
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, width=arm_width(arm, b), voxel_size=b["voxel_size"]),
        **short_schedule(base, steps),
        distill=distill,
        seed=seed,
        output_dir=str(out / arm / f"seed{seed}" / "train"),
        eval_every=0,
    )


def count_macs(model: TR3DDetector, points: torch.Tensor) -> int:
    """Multiply-accumulates of the sparse convolutions in one forward pass on ``points``."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        x = inputs[0]
        assert isinstance(module, (SparseConv3d, SparseGenerativeConvTranspose3d))
        c = module.in_channels * module.out_channels
        if isinstance(module, SparseGenerativeConvTranspose3d):
            _, kmap = x.manager.generative_transposed(x.set_id, module.kernel_size, module.stride)
            total += kmap.num_pairs * c
        elif module.kernel.dim() == 2 and output.set_id == x.set_id:
            total += len(x) * c
        else:
            kmap = x.manager.conv_kernel_map(
                x.set_id, output.set_id, module.kernel_size, module.dilation
            )
            total += kmap.num_pairs * c

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (SparseConv3d, SparseGenerativeConvTranspose3d))
    ]
    try:
        with torch.no_grad():
            model(points_to_sparse([points], model.config.voxel_size, model.config.color_mean))
    finally:
        for h in handles:
            h.remove()
    return total


def cost(checkpoint: Path, points: torch.Tensor) -> dict[str, float]:
    """Parameters, MACs and CPU latency (ms, median) of the trained detector, loaded the way the
    node loads it."""
    det = PointCloudDetector.from_checkpoint(checkpoint, device="cpu")
    det(points)  # warm-up
    times = []
    for _ in range(LATENCY_RUNS):
        t0 = time.perf_counter()
        det(points)
        times.append((time.perf_counter() - t0) * 1e3)
    return {
        "params": float(sum(p.numel() for p in det.model.parameters())),
        "macs": float(count_macs(det.model, points)),
        "latency_ms": statistics.median(times),
    }


def run_one(arm: str, seed: int, b: dict[str, Any], out: Path, device: str, quiet: bool) -> None:
    """Train and evaluate one (arm, seed) unless its result file exists; write it atomically."""
    run_dir = pending_run_dir(out, arm, seed)
    if run_dir is None:
        return
    cfg = run_config(arm, seed, b, out)
    run = train_timed(cfg, run_dir, device, quiet)
    t1 = time.time()
    metrics = evaluate_held_out(
        run.trainer.model, cfg.data.root, cfg.inference, cfg.model.class_names, run.trainer.device
    )
    eval_s = time.time() - t1
    val = ScanNetDataset(cfg.data.root, scene_ids=[VAL_SCENE])
    costs = cost(Path(run.summary["checkpoint"]), torch.as_tensor(val[0].points))
    atomic_write_json(
        run_dir / "result.json",
        {
            "arm": arm,
            "seed": seed,
            "width": cfg.model.width,
            "budget": b,
            "metrics": metrics,
            "cost": costs,
            **run.record(eval_s),
        },
    )
    logger.info("%s seed %d: %s %s (%.0f s)", arm, seed, metrics, costs, run.train_seconds)


def table(by_arm: dict[str, list[dict[str, Any]]], b: dict[str, Any], command: str) -> str:
    """Markdown table: cost and mean ± sample std over seeds of mAP per arm."""
    lines = [
        f"VRDistill ablation on {VAL_SCENE} (trained on scene0000_00 + scene0000_01): students "
        f"{b['steps']} steps, teacher (width {b['teacher_width']}) {b['teacher_steps']} steps, "
        f"{b['voxel_size'] * 100:.0f} cm voxels, batch 1; mean ± std over seeds; MACs of the "
        f"sparse convolutions and CPU latency (1 thread, median) on {VAL_SCENE}.",
        f"Command: `{command}`; git {git_revision()}.",
        "",
        "| arm | width | seeds | params (M) | MACs (G) | CPU ms/scan | mAP@0.25 | mAP@0.5 "
        "| train s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, runs in by_arm.items():
        m = [r["metrics"] for r in runs]
        c = [r["cost"] for r in runs]
        width = f"{arm_width(arm, b):g}" if arm in ARMS else str(runs[0]["width"])
        cols = [
            f"{c[0]['params'] / 1e6:.2f}" if c else "-",
            f"{statistics.mean(x['macs'] for x in c) / 1e9:.1f}" if c else "-",
            f"{statistics.median(x['latency_ms'] for x in c):.0f}" if c else "-",
            mean_std([x["mAP@0.25"] for x in m]),
            mean_std([x["mAP@0.5"] for x in m]),
            train_seconds_cell(runs),
        ]
        lines.append(f"| {arm} | {width} | {seeds_cell(runs)} | " + " | ".join(cols) + " |")
    return "\n".join(lines + compute_footer(by_arm))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(p, REPO / "outputs" / "ablation_vrdistill")
    p.add_argument("--runs", nargs="+", choices=list(ARMS), default=DEFAULT_RUNS)
    p.add_argument("--sweep-seeds", nargs="+", type=int, default=[0], help="seeds of the sweep")
    p.add_argument("--steps", type=int, default=240, help="student training steps (x24)")
    p.add_argument("--teacher-steps", type=int, default=600, help="teacher steps (x24)")
    p.add_argument("--teacher-width", type=float, default=0.5)
    p.add_argument(
        "--teacher-seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2],
        help="teacher runs (its seed spread; distilled arms use seed 0), with 'teacher' in --runs",
    )
    args = p.parse_args(argv)
    b = budget(args)
    command = " ".join(["python", "benchmarks/ablation_vrdistill.py", *(argv or sys.argv[1:])])

    def train() -> None:
        if "teacher" in args.runs or any(ARMS[a][1] is not None for a in args.runs):
            run_one("teacher", 0, b, args.out, args.device, args.quiet)  # distilled arms need it
        if "teacher" in args.runs:
            for seed in (s for s in args.teacher_seeds if s != 0):
                run_one("teacher", seed, b, args.out, args.device, args.quiet)
        for arm in (a for a in args.runs if a != "teacher"):
            for seed in args.sweep_seeds if arm in SWEEP else args.seeds:
                run_one(arm, seed, b, args.out, args.device, args.quiet)

    return run_table("ablation_vrdistill", args, b, ARMS, train, lambda r: table(r, b, command))


if __name__ == "__main__":
    raise SystemExit(main())
