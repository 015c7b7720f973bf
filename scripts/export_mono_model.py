#!/usr/bin/env python3
"""Export a trained monocular checkpoint as the embedded default mono model and write its card.

Strips the training state (optimizer moments would triple the size), evaluates the model on the
held-out frames (the config's ``val_ids``) and on its training frames (Car AP|R40 next to the
ceiling the labels reach, and the depth error of matched cars), and writes
``sr3d_ros/models/weights/<name>.pt`` + ``MODEL_CARD_mono.md``, both atomically. The file must
stay <= 20 MB (the package budget).

Usage:
  python scripts/export_mono_model.py --checkpoint outputs/mono_kitti_n/final.pt \
      --config config/mono_kitti_n.yaml
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sr3d_ros.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from sr3d_ros.io.atomic import atomic_write_text  # noqa: E402
from sr3d_ros.mono_inference import MonoDetector  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="trained mono final.pt")
    p.add_argument("--config", type=Path, required=True, help="its training config (YAML)")
    p.add_argument("--name", default="lead_m3d_kitti_n")
    p.add_argument("--out-dir", type=Path, default=REPO / "sr3d_ros" / "models" / "weights")
    p.add_argument("--card", default="MODEL_CARD_mono.md")
    p.add_argument("--max-mb", type=float, default=20.0)
    return p


def _row(label: str, m: dict[str, float]) -> str:
    aps = " | ".join(
        f"{m[f'Car/AP3D_R40@0.5/{d}']:.2f} / {m[f'Car/AP3D_R40@0.5/{d}_ceiling']:.2f}"
        for d in ("easy", "moderate", "hard")
    )
    mae = m["Car/depth_mae"]
    depth = "-" if mae != mae else f"{mae:.2f}"  # nan: no car matched
    return (
        f"| {label} | {aps} | {m['Car/AP3D_R40@0.7/moderate']:.2f} | "
        f"{m['Car/AP2D_R40@0.7/moderate']:.2f} | {depth} ({int(m['Car/depth_matched'])}) |"
    )


def model_card(name: str, det: MonoDetector, cfg: Any, prov: dict[str, Any], evals: dict[str, Any],
               size_mb: float, tcfg: str) -> str:  # fmt: skip
    """The card (markdown) of the exported model from the measured evaluations."""
    m, inf = det.config.model, det.config.inference
    params = sum(t.numel() for t in det.model.state_dict().values() if t.is_floating_point())
    h, w = m.input_size
    held, train = evals["held_out"], evals["train"]
    return f"""# Model card: `{name}.pt`

The embedded default monocular model of sr3d_ros: what `MonoDetector.from_checkpoint()` (and
`Detector.from_checkpoint` on this file) load when no checkpoint is given.

## Model
- Architecture: LeAD-M3D on a YOLOv10-style network, size `{m.size}` (backbone + PAN neck,
  one-to-many and one-to-one heads with the 3D branches), {params / 1e6:.2f} M values in the
  state dict, {size_mb:.1f} MB (float32). Classes: {", ".join(m.class_names)}.
- Input: an RGB image (uint8) and its camera (`PinholeCamera`, K or P), letterboxed to
  {w} x {h}. Output: KITTI camera boxes in the camera's optical frame (and the same boxes in
  the body frame), 2D boxes, scores.
- Inference: one-to-one head, no NMS, CGI3D (3D branches on the {inf.gate_topk} most confident
  locations), score >= {inf.score_threshold}, at most {inf.max_detections} detections.

## Training data and procedure
- Data: {len(cfg.data.train_ids)} real KITTI object training frames from `../shared/data/kitti`
  ({", ".join(cfg.data.train_ids)}). Held out, pre-registered before any training for having
  cars: {", ".join(cfg.data.val_ids)}.
- Config: `{tcfg}` (CM3D gamma {cfg.assigner.gamma}, k = {cfg.assigner.topk_one2many} / {
        cfg.assigner.topk_one2one
    }, {cfg.optim.epochs} epochs x {cfg.data.repeat * len(cfg.data.train_ids)} samples, batch {
        cfg.batch_size
    }, AdamW lr {cfg.optim.lr}, flip {cfg.augmentation.flip_prob}, photometric jitter {
        cfg.augmentation.jitter
    }, precise BatchNorm {cfg.precise_bn_batches} batches, seed {cfg.seed}), {
        prov.get("step", "?")
    } steps, git `{prov.get("git", "unknown")}`.
- Reproduce: `.venv/bin/sr3d-train --config {tcfg}` then
  `.venv/bin/python scripts/export_mono_model.py --checkpoint {cfg.output_dir}/final.pt \\
--config {tcfg}`.

## Evaluation (KITTI AP|R40 in percent, official rules; Car)

With fewer than 40 counted cars the official R40 recall sampling caps AP at (n - 1) / 40 even
for perfect detections, so each AP is given as "AP / ceiling" (the ceiling is the AP of the
labels themselves). Depth error: mean |z_det - z_gt| of the cars matched by a car detection at
2D IoU >= 0.5 (metres; number matched).

| frames | 3D@0.5 easy | 3D@0.5 moderate | 3D@0.5 hard | 3D@0.7 mod. | 2D@0.7 mod. | depth m |
|---|---|---|---|---|---|---|
{_row(f"held-out ({len(cfg.data.val_ids)})", held)}
{_row(f"training ({len(cfg.data.train_ids)})", train)}

## What it can and cannot be expected to do
- It has seen {len(cfg.data.train_ids)} real frames, for {prov.get("step", "?")} steps. On those
  frames it finds most cars in the image (AP2D@0.7 moderate {
        train["Car/AP2D_R40@0.7/moderate"]:.1f} of a reachable {
        train["Car/AP3D_R40@0.5/moderate_ceiling"]:.1f}) but places them in 3D only roughly
  (depth error {train["Car/depth_mae"]:.2f} m). On frames it has not seen it is a demonstration
  and test model, not a KITTI detector: on the held-out frames it matches {
        int(held["Car/depth_matched"])
    } cars. Pedestrians and cyclists are rare in its data.
- Its geometry is general (boxes are decoded with the given camera, any K / P and image size),
  but it learnt depth from one camera's KITTI frames; other cameras, heights or scenes are out
  of its experience.
- For a usable detector, train `config/mono_kitti_n.yaml`'s recipe on the full KITTI training
  split (`data.train_split`) with a longer schedule.
"""


def main() -> int:
    from sr3d_training.config import MonoTrainConfig, load_train_config
    from sr3d_training.datasets import KittiDataset
    from sr3d_training.evaluation.mono import evaluate_mono, predict_mono_dataset

    args = build_parser().parse_args()
    cfg = load_train_config(args.config)
    if not isinstance(cfg, MonoTrainConfig):
        print(f"error: {args.config} is not a mono training config", file=sys.stderr)
        return 1
    det = MonoDetector.from_checkpoint(args.checkpoint, device="cpu")
    if det.config != cfg.detector:
        print(f"error: {args.checkpoint} was not trained with {args.config}", file=sys.stderr)
        return 1
    evals: dict[str, Any] = {}
    for split, ids in (("held_out", cfg.data.val_ids), ("train", cfg.data.train_ids)):
        frames = KittiDataset(cfg.data.root, frame_ids=list(ids))
        res = predict_mono_dataset(det.model, frames, det.inference_config)
        ev = evaluate_mono(res)
        evals[split] = ev.metrics()
        print(f"{split}:\n{ev.result.format_table()}")
    tcfg = str(args.config.relative_to(REPO) if args.config.is_absolute() else args.config)
    prov = dict(load_checkpoint(args.checkpoint).get("provenance", {}))
    prov.pop("config", None)
    prov.update(
        {
            "exported_at": datetime.now(timezone.utc).isoformat(),
            "source_checkpoint": str(args.checkpoint),
            "training_config": tcfg,
            "train_ids": list(cfg.data.train_ids),
            "eval_ids": list(cfg.data.val_ids),
            "eval_metrics": evals,
        }
    )
    out = args.out_dir / f"{args.name}.pt"
    save_checkpoint(out, det.model.state_dict(), det.config, prov, kind="mono")
    size_mb = out.stat().st_size / 1e6
    if size_mb > args.max_mb:
        out.unlink()
        print(f"error: {out} is {size_mb:.1f} MB, over {args.max_mb} MB", file=sys.stderr)
        return 1
    card = model_card(args.name, det, cfg, prov, evals, size_mb, tcfg)
    atomic_write_text(args.out_dir / args.card, card)
    print(f"wrote {out} ({size_mb:.1f} MB) and {args.out_dir / args.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
