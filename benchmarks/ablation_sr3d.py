#!/usr/bin/env python3
"""SR3D ablation on the real ScanNet scans: which of SPOTA / RAS helps, measured over seeds.

Arms (every arm: same model width, voxel size, steps, data, schedule; only the label assignment
and the classification loss change):

* the 2x2 {TR3D assigner, SPOTA} x {focal, RAS}: ``tr3d_focal`` (the TR3D baseline),
  ``tr3d_ras``, ``spota_focal``, ``spota_ras`` (SR3D);
* SPOTA variants with RAS: ``spota_ras_maxmass`` (``ot_decision: max_mass``),
  ``spota_ras_novd`` (no vertex distance), ``spota_ras_clscost`` (with the classification cost);
* the pre-registered centre-prior sweep ``mu`` in {0.25, 1, 4} (``spota_ras`` is mu = 1):
  ``spota_ras_mu0.25``, ``spota_ras_mu4``.

Each (arm, seed) trains on scene0000_00 + scene0000_01 and is evaluated once, at the end, on the
held-out scan scene0000_02: mAP@0.25 / 0.5 and the IoU-oracle mAP (every score replaced by the
box's IoU with its best same-class GT; the gap oracle - mAP is the ranking error SR3D targets).
Nothing is tuned on scene0000_02.

Resumable: run ``OUT/<arm>/seed<k>/result.json`` is written atomically when the run ends;
re-running skips finished runs (and resumes an interrupted one from its ``last.pt``); the table
is assembled from whatever result files exist, so a table can be finished over several days.
``--runs`` / ``--seeds`` select a subset; ``--table-only`` prints the table without training.
Result files record the budget (steps, width, voxel size, git revision); a run directory whose
budget differs from the command's is an error (use another ``--out``).

Schedule (short, for a 2-core CPU; the paper's is in ``config/train_scannet_{tr3d,sr3d}.yaml``):
``config/train_scannet_default.yaml``'s shape (12 epochs over the two scans repeated, lr x0.1
after epochs 8 and 11, batch 1) with ``--steps`` rounded down to a multiple of 24 and a warm-up of
``min(100, steps // 6)`` steps.

Budget. The defaults (the shipped model's 2 cm voxels and width 0.5, 240 steps, one CPU thread)
are sized for about two hours on a 2-core machine: measured 226 s (TR3D + focal) and 224 s
(SPOTA + RAS) per run with other jobs sharing the cores, so 27 runs ~ 1.7 h. In the same time,
912 steps at 4 cm / width 0.25 generalised worse (TR3D mAP@0.25 0.03 vs 0.09). ``--steps 600``
is the shipped model's own recipe (~4.5 h for the table); runs resume, so a longer table can be
finished over several days.

Usage::

    python benchmarks/ablation_sr3d.py [--out outputs/ablation_sr3d] [--steps 240] [--width 0.5]
        [--voxel 0.02] [--seeds 0 1 2] [--runs spota_ras tr3d_focal ...] [--table-only] [--quiet]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

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

from sr3d_ros.io.atomic import atomic_write_json  # noqa: E402
from sr3d_training.assigners import AssignerConfig  # noqa: E402
from sr3d_training.config import TrainConfig, load_train_config  # noqa: E402
from sr3d_training.losses import ClassificationLossConfig  # noqa: E402
from sr3d_training.runtime import git_revision  # noqa: E402

logger = logging.getLogger("ablation_sr3d")

BASE_CONFIG = REPO / "config" / "train_scannet_default.yaml"
SPOTA = {"kind": "spota"}
#: arm -> (assigner overrides, classification-loss kind)
ARMS: dict[str, tuple[dict[str, Any], str]] = {
    "tr3d_focal": ({"kind": "tr3d"}, "focal"),
    "tr3d_ras": ({"kind": "tr3d"}, "ras"),
    "spota_focal": (SPOTA, "focal"),
    "spota_ras": (SPOTA, "ras"),
    "spota_ras_maxmass": ({**SPOTA, "ot_decision": "max_mass"}, "ras"),
    "spota_ras_novd": ({**SPOTA, "use_vertex_distance": False}, "ras"),
    "spota_ras_clscost": ({**SPOTA, "use_cls_cost": True}, "ras"),
    "spota_ras_mu0.25": ({**SPOTA, "mu": 0.25}, "ras"),
    "spota_ras_mu4": ({**SPOTA, "mu": 4.0}, "ras"),
}


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """What every run of one table shares (recorded in each result file)."""
    return {
        "steps": rounded_steps(args.steps),
        "width": args.width,
        "voxel_size": args.voxel,
        "base": BASE_CONFIG.name,
    }


def run_config(arm: str, seed: int, b: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The training config of one (arm, seed): the base config with the shared budget."""
    base = load_train_config(BASE_CONFIG)
    assigner, cls_kind = ARMS[arm]
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, width=b["width"], voxel_size=b["voxel_size"]),
        **short_schedule(base, b["steps"]),
        assigner=AssignerConfig.from_dict(
            {**assigner, "label2level": list(base.model.label2level)}
        ),
        cls_loss=ClassificationLossConfig(kind=cls_kind),  # type: ignore[arg-type]
        seed=seed,
        output_dir=str(run_dir / "train"),
        eval_every=0,
    )


def run_one(arm: str, seed: int, b: dict[str, Any], out: Path, device: str, quiet: bool) -> None:
    """Train and evaluate one (arm, seed) unless its result file exists; write it atomically."""
    run_dir = pending_run_dir(out, arm, seed)
    if run_dir is None:
        return
    cfg = run_config(arm, seed, b, run_dir)
    run = train_timed(cfg, run_dir, device, quiet)
    t1 = time.time()
    metrics = evaluate_held_out(
        run.trainer.model,
        cfg.data.root,
        cfg.inference,
        cfg.model.class_names,
        run.trainer.device,
        oracle=True,
    )
    atomic_write_json(
        run_dir / "result.json",
        {"arm": arm, "seed": seed, "budget": b, "metrics": metrics, **run.record(time.time() - t1)},
    )
    logger.info("%s seed %d: %s (%.0f s)", arm, seed, metrics, run.train_seconds)


def table(by_arm: dict[str, list[dict[str, Any]]], b: dict[str, Any], command: str) -> str:
    """Markdown table: mean ± sample std over seeds of mAP and the IoU-oracle gap per arm."""
    lines = [
        f"SR3D ablation on {VAL_SCENE} (trained on scene0000_00 + scene0000_01): "
        f"{b['steps']} steps, width {b['width']}, {b['voxel_size'] * 100:.0f} cm voxels, "
        f"batch 1; mean ± std over seeds; gap = IoU-oracle mAP - mAP.",
        f"Command: `{command}`; git {git_revision()}.",
        "",
        "| arm | seeds | mAP@0.25 | mAP@0.5 | gap@0.25 | gap@0.5 | train s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, runs in by_arm.items():
        m = [r["metrics"] for r in runs]
        cols = [
            mean_std([x["mAP@0.25"] for x in m]),
            mean_std([x["mAP@0.5"] for x in m]),
            mean_std([x["oracle_mAP@0.25"] - x["mAP@0.25"] for x in m]),
            mean_std([x["oracle_mAP@0.5"] - x["mAP@0.5"] for x in m]),
        ]
        cols.append(train_seconds_cell(runs))
        lines.append(f"| {arm} | {seeds_cell(runs)} | " + " | ".join(cols) + " |")
    return "\n".join(lines + compute_footer(by_arm))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(p, REPO / "outputs" / "ablation_sr3d")
    p.add_argument("--runs", nargs="+", choices=sorted(ARMS), default=list(ARMS))
    p.add_argument("--steps", type=int, default=240, help="training steps per run (x24)")
    p.add_argument("--width", type=float, default=0.5)
    args = p.parse_args(argv)
    b = budget(args)
    command = " ".join(["python", "benchmarks/ablation_sr3d.py", *(argv or sys.argv[1:])])

    def train() -> None:
        for arm in args.runs:
            for seed in args.seeds:
                run_one(arm, seed, b, args.out, args.device, args.quiet)

    return run_table("ablation_sr3d", args, b, ARMS, train, lambda r: table(r, b, command))


if __name__ == "__main__":
    raise SystemExit(main())
