#!/usr/bin/env python3
"""Ship one run of the VRDistill table as a named real-time model with its model card.

Takes a finished run of ``benchmarks/ablation_vrdistill.py`` (``OUT/<arm>/seed<k>``), strips the
training state from its ``train/final.pt``, writes ``sr3d_ros/models/weights/<name>.pt`` (the
node and ``sr3d-detect`` load it by that name) and ``MODEL_CARD_<name>.md``: the model, how it
was trained (the table's command and budget), its held-out mAP next to its arm's and the
teacher's (mean ± std over the table's seeds), and the CPU latency per scan of it, the teacher
and the embedded default model measured in this run (the detector as the node runs it, median
of ``--repeats`` after a warm-up, ``--threads`` intra-op threads).

Usage::

    python scripts/export_student_model.py --table-dir outputs/ablation_vrdistill \\
        --arm quarter_vrdistill --seed 0 --name sr3d_scannet_realtime
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402
from _ablation_common import VAL_SCENE, load_results, mean_std  # noqa: E402

from sr3d_ros.checkpoints import (  # noqa: E402 - after the repository is on the path
    config_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sr3d_ros.checkpoints.shipped import WEIGHTS_DIR  # noqa: E402
from sr3d_ros.inference import PointCloudDetector, default_checkpoint_path  # noqa: E402
from sr3d_ros.io.atomic import atomic_write_text  # noqa: E402


def latency_ms(checkpoint: Path, points: torch.Tensor, repeats: int) -> float:
    """Median wall time (ms) of the detector of ``checkpoint`` on ``points`` (CPU) at the
    node's default score threshold (0.3), after one warm-up call."""
    det = PointCloudDetector.from_checkpoint(checkpoint, device="cpu", score_threshold=0.3)
    det(points)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        det(points)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--table-dir", type=Path, required=True, help="ablation_vrdistill.py --out")
    p.add_argument("--arm", required=True, help="the arm to ship, e.g. quarter_vrdistill")
    p.add_argument("--seed", type=int, default=0, help="which of its runs")
    p.add_argument("--name", required=True, help="the shipped model's name (file stem)")
    p.add_argument("--out-dir", type=Path, default=WEIGHTS_DIR)
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data" / "scannet")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--why", default="", help="one paragraph: why this run ships (the rule)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Export and write the card; prints the latency table. Returns the exit status."""
    from sr3d_training.datasets import ScanNetDataset

    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    run_dir = args.table_dir / args.arm / f"seed{args.seed}"
    result_file, source = run_dir / "result.json", run_dir / "train" / "final.pt"
    for f in (result_file, source):
        if not f.is_file():
            print(f"export_student_model: error: {f} is missing", file=sys.stderr)
            return 1
    result = json.loads(result_file.read_text())
    ck = load_checkpoint(source)
    config = config_from_checkpoint(ck, source)
    prov = dict(ck.get("provenance", {}))
    training_config = prov.pop("config", {})
    prov.update(
        {
            "exported_at": datetime.now(timezone.utc).isoformat(),
            "source_checkpoint": str(source),
            "table": {"arm": args.arm, "seed": args.seed, "budget": result["budget"]},
            "eval_ids": [VAL_SCENE],
            "eval_metrics": result["metrics"],
        }
    )
    out = args.out_dir / f"{args.name}.pt"
    save_checkpoint(out, ck["state_dict"], config, prov)

    points = torch.as_tensor(
        ScanNetDataset(args.data_root, scene_ids=[VAL_SCENE])[0].points, dtype=torch.float32
    )
    teacher_ckpt = args.table_dir / "teacher" / "seed0" / "train" / "final.pt"
    rows = [(f"{args.name} (this model)", out), ("teacher", teacher_ckpt)]
    if default_checkpoint_path().is_file():
        rows.append(("sr3d_scannet_default (embedded default)", default_checkpoint_path()))
    lat = {label: latency_ms(path, points, args.repeats) for label, path in rows}
    print(f"{'model':<44} {'CPU ms/scan':>12}")
    for label, ms in lat.items():
        print(f"{label:<44} {ms:>12.0f}")

    by_arm = load_results(args.table_dir, result["budget"], [args.arm, "teacher"])
    arm_runs, teacher_runs = by_arm[args.arm], by_arm["teacher"]
    cost = result["cost"]
    budget = result["budget"]
    lat_rows = "\n".join(
        f"| {label} | {ms:.0f} | {ms / lat[rows[0][0]]:.2f}x |" for label, ms in lat.items()
    )
    distill = training_config.get("distill", {})

    if distill.get("kind", "none") == "none":
        trained = "Trained alone (no distillation), with the table's student recipe."
    else:
        trained = (
            f"Trained with {distill['kind']} (options `{json.dumps(distill.get('options', {}))}`)"
            f" from the table's teacher (width {budget['teacher_width']}, "
            f"{budget['teacher_steps']} steps); the refinement module and the feature-align MLP "
            "are dropped after training, so inference costs what a plain model of this width "
            "costs."
        )

    def acc_row(label: str, runs: list[dict[str, Any]]) -> str:
        m25 = mean_std([r["metrics"]["mAP@0.25"] for r in runs])
        m50 = mean_std([r["metrics"]["mAP@0.5"] for r in runs])
        return f"| {label} | {len(runs)} | {m25} | {m50} |"

    acc = [
        acc_row(f"this run (seed {args.seed})", [result]),
        acc_row(f"its arm `{args.arm}`", arm_runs),
        acc_row("teacher", teacher_runs),
    ]
    default_eval: dict[str, float] | None = None
    if default_checkpoint_path().is_file():
        default_eval = load_checkpoint(default_checkpoint_path())["provenance"].get("eval_metrics")
        if default_eval:
            label = "sr3d_scannet_default (its own recipe)"
            acc.append(acc_row(label, [{"metrics": default_eval}]))
    acc_rows = "\n".join(acc)
    tradeoff = ""
    default_label = "sr3d_scannet_default (embedded default)"
    if default_checkpoint_path().is_file() and default_eval and default_label in lat:
        tradeoff = (
            f"- It trades accuracy for time: the embedded default model reaches "
            f"{default_eval['mAP@0.25']:.3f} / {default_eval['mAP@0.5']:.3f} mAP@0.25 / 0.5 on the "
            f"same held-out scan (this run: {result['metrics']['mAP@0.25']:.3f} / "
            f"{result['metrics']['mAP@0.5']:.3f}) in {lat[default_label] / lat[rows[0][0]]:.2f}x "
            "this model's CPU time. Choose it where latency matters more than recall.\n"
        )
    timing = (
        f"CPU, {args.threads} thread(s), score >= 0.3 (the node's default), median of "
        f"{args.repeats} on {VAL_SCENE}"
    )
    recipe = (
        f"students {budget['steps']} steps, {budget['voxel_size'] * 100:.0f} cm voxels, "
        f"batch 1, seed {args.seed}; git `{result['git']}`"
    )
    kind = "A VRDistill student" if distill.get("kind", "none") != "none" else "A student"
    card = f"""# Model card: `{args.name}.pt` (real-time option)

{kind} of sr3d_ros's point-cloud detector (arm `{args.arm}`), shipped from the VRDistill table
(README, "VRDistill ablation"). Load it by name: `checkpoint:={args.name}` (node parameter or
launch argument) or `sr3d-detect scan.ply --checkpoint {args.name}`.

## Model
- TR3D architecture at width {config.model.width}: {cost["params"] / 1e6:.2f} M parameters,
  {cost["macs"] / 1e9:.2f} G sparse-convolution MACs on {VAL_SCENE}.
- Voxel size {config.model.voxel_size} m, {config.model.num_classes} ScanNet classes; the same
  input, output and post-processing as the embedded default model (see MODEL_CARD.md).
- {trained}

## Why this run ships
{args.why or "(not given)"}

## Held-out accuracy ({VAL_SCENE}; trained on scene0000_00 + scene0000_01)

| model | seeds | mAP@0.25 | mAP@0.5 |
|---|---|---|---|
{acc_rows}

## Latency ({timing}, measured together)

| model | ms/scan | vs this model |
|---|---|---|
{lat_rows}

No GPU was lent to the session that exported it; `benchmarks/gpu_check.sh` measures the GPU
latency when one is.

## Training budget and how to reproduce
- Table: `python benchmarks/ablation_vrdistill.py --teacher-width {budget["teacher_width"]}
  --out {args.table_dir}` ({recipe}).
- Export: `python scripts/export_student_model.py --table-dir {args.table_dir}
  --arm {args.arm} --seed {args.seed} --name {args.name}`.

## What it can and cannot be expected to do
- Like the embedded default model it has seen ONE room (two scans of it) for a few hundred
  steps: a demonstration of a fast detector that the node runs, not a general ScanNet
  detector. Expect poor results on other rooms, outdoor scenes or single-frame views.
- Its held-out mAP comes from one held-out scan; the seed spread above is the honest error bar.
{tradeoff}- Retrain on your own data with `sr3d-train --config config/vrdistill_scannet_default.yaml
  --teacher TEACHER.pt --width W` to get a real-time model for your environment.
"""
    atomic_write_text(args.out_dir / f"MODEL_CARD_{args.name}.md", card)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and MODEL_CARD_{args.name}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
