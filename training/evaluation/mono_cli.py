"""``sr3d-eval --dataset kitti --checkpoint mono.pt --data ROOT --ids ...``: run a monocular
checkpoint on KITTI frames and score it (AP|R40 table, the reachable ceiling, car depth error)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sr3d_ros.checkpoints import CheckpointError
from sr3d_ros.io.atomic import atomic_write_json
from sr3d_ros.mono_inference import MonoDetector

from ..datasets.kitti import KittiDataset
from .mono import evaluate_mono, predict_mono_dataset

__all__ = ["run_mono_cli"]


def run_mono_cli(
    checkpoint: str,
    data: str,
    ids: Sequence[str] | None,
    split: str | None,
    out: Path,
    device: str = "auto",
    score_threshold: float | None = None,
    quiet: bool = False,
) -> int:
    """Detect with a ``kind="mono"`` checkpoint on KITTI frames, print the AP|R40 table, the
    Car 3D AP next to the ceiling the labels reach, and the car depth error; write JSON.

    Args:
        checkpoint: the mono checkpoint. data: KITTI root. ids / split: frames (default: every
            image). out: JSON file (atomic). device: ``auto`` | ``cpu`` | ``cuda``.
        score_threshold: override of the checkpoint's. quiet: no progress bar.

    Returns:
        Exit status 0, or 1 with one error line (missing / invalid checkpoint or data, a
        checkpoint of the other kind).
    """
    overrides = {} if score_threshold is None else {"score_threshold": score_threshold}
    try:
        det = MonoDetector.from_checkpoint(checkpoint, device=device, **overrides)
        frames = KittiDataset(data, frame_ids=list(ids) if ids else None, split=split)
        results = predict_mono_dataset(det.model, frames, det.inference_config, progress=not quiet)
        ev = evaluate_mono(results)
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        print(f"sr3d-eval: error: {exc}", file=sys.stderr)
        return 1
    print(ev.result.format_table())
    m = ev.metrics()
    print("Car AP3D|R40 @0.5 (easy / moderate / hard) and the ceiling the labels reach:")
    for diff in ("easy", "moderate", "hard"):
        key = f"Car/AP3D_R40@0.5/{diff}"
        print(f"  {diff:>8}: {m[key]:6.2f} of {m[key + '_ceiling']:6.2f}")
    print(
        f"Car depth error (matched at 2D IoU >= 0.5): {ev.depth_mae:.3f} m over {ev.depth_matched}"
    )
    payload = {
        "dataset": "kitti",
        "checkpoint": str(checkpoint),
        "frames": list(frames.frame_ids),
        "metrics": m,
        **ev.to_dict(),
    }
    atomic_write_json(out, payload)
    print(f"wrote {out}")
    return 0
