#!/usr/bin/env python3
"""Export a trained checkpoint as the embedded default model and write its model card.

Strips the training state (optimizer moments would triple the size), evaluates the model on the
held-out scan(s), and writes ``sr3d_ros/models/weights/<name>.pt`` + ``MODEL_CARD.md``.

Usage:
  python scripts/export_default_model.py --checkpoint outputs/scannet_default_tr3d/final.pt \
      --config config/train_scannet_default.yaml \
      [--compare outputs/scannet_default_sr3d/final.pt config/train_scannet_default_sr3d.yaml ...]

``--compare CKPT CONFIG`` (repeatable) evaluates other runs on the same held-out scan(s) and adds
a comparison table (mAP and IoU-oracle mAP per run) to the card. The exported file must stay
<= 20 MB (the package budget); a larger one is an error. Both files are written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sr3d_ros.checkpoints import (  # noqa: E402 - after the repository is on the path
    config_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from sr3d_ros.config import DetectorConfig  # noqa: E402
from sr3d_ros.io.atomic import atomic_write_text  # noqa: E402
from sr3d_ros.models import TR3DDetector  # noqa: E402


@dataclass
class Run:
    """One trained run evaluated on the held-out scan(s).

    ``metrics``: ``mAP@t`` and ``oracle_mAP@t`` (IoU-oracle scores) for t = 0.25, 0.5;
    ``evaluation``: the per-class result (``sr3d_training.evaluation.IndoorEvalResult``).
    """

    checkpoint: dict[str, Any]
    config: DetectorConfig
    model: TR3DDetector
    metrics: dict[str, float]
    evaluation: Any


def evaluate_run(ckpt_path: Path, data_root: str | Path, ids: list[str]) -> Run:
    """Load ``ckpt_path`` and evaluate it on the ScanNet scans ``ids`` under ``data_root``."""
    from sr3d_training.datasets import ScanNetDataset
    from sr3d_training.evaluate import evaluate_predictions, predict_dataset

    ck = load_checkpoint(ckpt_path)
    dc = config_from_checkpoint(ck, ckpt_path)
    net = TR3DDetector(dc.model)
    net.load_state_dict(ck["state_dict"])
    data = ScanNetDataset(data_root, scene_ids=ids)
    results = predict_dataset(net, [data[i] for i in range(len(data))], dc.inference)
    e = evaluate_predictions(results, dc.model.class_names)
    o = evaluate_predictions(results, dc.model.class_names, oracle=True)
    m = {f"mAP@{t}": float(v) for t, v in e.mAP.items()}
    m.update({f"oracle_mAP@{t}": float(v) for t, v in o.mAP.items()})
    return Run(ck, dc, net, m, e)


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument(
        "--config", required=True, type=Path, help="the training config it was trained with"
    )
    p.add_argument("--name", default="sr3d_scannet_default")
    p.add_argument("--out-dir", type=Path, default=REPO / "sr3d_ros" / "models" / "weights")
    p.add_argument(
        "--card-extra", type=Path, default=None, help="markdown appended to the model card"
    )
    p.add_argument(
        "--compare",
        nargs=2,
        action="append",
        default=[],
        metavar=("CKPT", "CONFIG"),
        help="another run (checkpoint + its training config) to compare on the held-out scan(s)",
    )
    p.add_argument(
        "--max-mb", type=float, default=20.0, help="size budget of the exported file (MB)"
    )
    return p


def comparison_section(runs: list[tuple[Path, Any, dict[str, float]]]) -> str:
    """Markdown table of ``(training config path, training config, metrics)`` per run; empty
    for a single run."""
    if len(runs) < 2:
        return ""
    rows = []
    for path, tc, mm in runs:
        assigner = tc.assigner.kind
        if assigner == "spota":
            assigner += "/" + tc.assigner.ot_decision
        rows.append(
            f"| `{path}` | {assigner} | {tc.cls_loss.kind} | {mm['mAP@0.25']:.4f} "
            f"| {mm['mAP@0.5']:.4f} | {mm['oracle_mAP@0.25']:.4f} | {mm['oracle_mAP@0.5']:.4f} |"
        )
    table = "\n".join(rows)
    return f"""
## Training variants compared (same model, data, schedule and seed; held-out scan)

| config | assigner | cls loss | mAP@0.25 | mAP@0.5 | oracle mAP@0.25 | oracle mAP@0.5 |
|---|---|---|---|---|---|---|
{table}

The first row is the exported model. Three scans of one room cannot reproduce the SR3D paper's
ScanNet gains; the table is what these runs measured.
"""


def model_card(
    name: str,
    run: Run,
    cfg: Any,
    prov: dict[str, Any],
    size_mb: float,
    seen: list[str],
    comparison: str,
) -> str:
    """The model card (markdown) of the exported model; ``cfg`` is its training config."""
    m, inf = run.config.model, run.config.inference
    params = sum(t.numel() for t in run.model.state_dict().values() if t.dtype.is_floating_point)
    metrics, tcfg = run.metrics, prov["training_config"]
    samples = cfg.data.repeat * len(cfg.data.train_ids)
    return f"""# Model card: `{name}.pt`

The embedded default model of sr3d_ros: what `PointCloudDetector.from_checkpoint()`, the
`pointcloud_detector` node and `make demo` load when no checkpoint is given.

## Model
- Architecture: TR3D (MinkResNet34 backbone, TR3D neck, shared head) at width {m.width},
  {params / 1e6:.2f} M parameters, {size_mb:.1f} MB (float32).
- Voxel size {m.voxel_size} m; axis-aligned boxes (no yaw); {m.num_classes} ScanNet classes:
  {", ".join(m.class_names)}.
- Input: points in metres in a gravity-aligned frame (z up), xyz + rgb 0..255 (clouds
  without colour are given mid grey, which the model never saw in training).
- Post-processing: top {inf.nms_pre} locations, score >= {inf.score_threshold},
  per-class NMS at IoU {inf.iou_threshold}.

## Training data and procedure
- Data: the two real ScanNet v2 scans `{", ".join(cfg.data.train_ids)}` from
  `../shared/data/scannet` (mesh vertices with colour, axis-aligned, ground-truth boxes of the
  18 classes).
- Config: `{tcfg}` (assigner `{cfg.assigner.kind}`, classification loss
  `{cfg.cls_loss.kind}`, {cfg.optim.epochs} epochs x {samples} samples, batch
  {cfg.batch_size}, AdamW lr {cfg.optim.lr}, seed {cfg.seed}), {prov.get("step", "?")} steps, git
  `{prov.get("git", "unknown")}`.
- Reproduce: `.venv/bin/sr3d-train --config {tcfg}` then
  `.venv/bin/python scripts/export_default_model.py --checkpoint {cfg.output_dir}/final.pt \
--config {tcfg}`.

## Evaluation (held-out scan `{", ".join(cfg.data.val_ids)}`, another scan of the same room)

| metric | value |
|---|---|
| mAP@0.25 | {metrics["mAP@0.25"]:.4f} |
| mAP@0.5 | {metrics["mAP@0.5"]:.4f} |
| IoU-oracle mAP@0.25 (scores replaced by IoU with the best GT) | {metrics["oracle_mAP@0.25"]:.4f} |
| IoU-oracle mAP@0.5 | {metrics["oracle_mAP@0.5"]:.4f} |

Per class (AP@0.25 / AP@0.5, classes with ground truth in the scan):

```
{run.evaluation.format_table()}
```

{comparison}
## What it can and cannot be expected to do
- Classes with ground truth in the training scans (the only ones it can know): {", ".join(seen)}.
- It has seen ONE room (two scans of it). On that room, re-scanned, it finds the furniture it
  was trained on; it is a demonstration and test model, not a general ScanNet detector. Expect
  poor results on other rooms, outdoor scenes, LiDAR, or partial single-frame views.
- Classes absent from the training room are never detected.
- To detect in your own environment, retrain (`sr3d-train`) on your data or convert a published
  TR3D checkpoint (`sr3d-convert-tr3d`); both run in the same node.
"""


def main() -> int:
    """Export, evaluate and write the card; prints the evaluation. Returns the exit status."""
    from sr3d_training.config import load_train_config
    from sr3d_training.datasets import ScanNetDataset

    args = build_parser().parse_args()
    cfg = load_train_config(args.config)
    val_ids = list(cfg.data.val_ids)
    run = evaluate_run(args.checkpoint, cfg.data.root, val_ids)
    runs = [(args.config, cfg, run.metrics)]
    for other_ckpt, other_cfg in args.compare:
        other = evaluate_run(Path(other_ckpt), cfg.data.root, val_ids)
        runs.append((Path(other_cfg), load_train_config(Path(other_cfg)), other.metrics))
    train_set = ScanNetDataset(cfg.data.root, scene_ids=list(cfg.data.train_ids))
    names = run.config.model.class_names
    seen = sorted(
        {names[int(c)] for i in range(len(train_set)) for c in train_set[i].gt_labels.tolist()}
    )
    prov = dict(run.checkpoint.get("provenance", {}))
    prov.pop("config", None)
    prov.update(
        {
            "exported_at": datetime.now(timezone.utc).isoformat(),
            "source_checkpoint": str(args.checkpoint),
            "training_config": str(
                args.config.relative_to(REPO) if args.config.is_absolute() else args.config
            ),
            "train_ids": list(cfg.data.train_ids),
            "eval_ids": list(cfg.data.val_ids),
            "eval_metrics": run.metrics,
        }
    )
    out = args.out_dir / f"{args.name}.pt"
    save_checkpoint(out, run.model.state_dict(), run.config, prov)
    size_mb = out.stat().st_size / 1e6
    if size_mb > args.max_mb:
        out.unlink()
        print(
            f"error: {out} is {size_mb:.1f} MB, over the {args.max_mb} MB budget "
            "(lower model.width)",
            file=sys.stderr,
        )
        return 1
    print(run.evaluation.format_table())
    print(json.dumps(run.metrics, indent=2))
    print(f"wrote {out} ({size_mb:.1f} MB)")
    card = model_card(args.name, run, cfg, prov, size_mb, seen, comparison_section(runs))
    if args.card_extra is not None:
        card += "\n" + args.card_extra.read_text()
    print(f"wrote {atomic_write_text(args.out_dir / 'MODEL_CARD.md', card)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
