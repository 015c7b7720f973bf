"""``sr3d-eval --dataset kitti --checkpoint mono.pt --data ROOT --ids ...`` (or ``--data
bag:DIR``): run a monocular checkpoint on KITTI frames (or image bag samples with ground truth)
and score it (AP|R40 table, the reachable ceiling, car depth error)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sr3d_ros.checkpoints import CheckpointError
from sr3d_ros.io.atomic import atomic_write_json
from sr3d_ros.mono_inference import MonoDetector

from ..datasets.bag import bag_eval_set
from ..datasets.dataset import SampleDataset
from ..datasets.kitti import KittiDataset
from .mono import evaluate_mono, predict_mono_dataset

__all__ = ["BAG_NOTE", "run_mono_cli"]

#: printed with (and stored in the JSON of) every evaluation on bag data
BAG_NOTE = (
    "bag ground truth has no annotated 2D boxes: 2D boxes are the projected 3D boxes (clipped), "
    "truncation the clipped fraction, occlusion unknown (0), so the difficulty levels are "
    "approximate (sr3d_training.datasets.bag_kitti); no DontCare regions"
)


def run_mono_cli(
    checkpoint: str | None,
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
        checkpoint: the mono checkpoint (None: the default mono model). data: KITTI root, or
            ``bag:DIR``: the labelled samples of an extracted image bag dataset (2D boxes,
            truncation and occlusion approximated: :data:`BAG_NOTE`). ids / split: frames
            (default: every image; a bag takes ids only). out: JSON file (atomic). device:
            ``auto`` | ``cpu`` | ``cuda``.
        score_threshold: override of the checkpoint's. quiet: no progress bar.

    Returns:
        Exit status 0, or 1 with one error line (missing / invalid checkpoint or data, a
        checkpoint of the other kind).
    """
    overrides = {} if score_threshold is None else {"score_threshold": score_threshold}
    try:
        det = MonoDetector.from_checkpoint(checkpoint, device=device, **overrides)
        bag = data.startswith("bag:")  # labelled image samples of an extracted bag dataset
        frames: SampleDataset = (
            bag_eval_set(data[4:], None, ids, kind="images")
            if bag
            else KittiDataset(data, frame_ids=list(ids) if ids else None, split=split)
        )
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
    if bag:
        print(f"note: {BAG_NOTE}")
    payload = {
        "dataset": "bag" if bag else "kitti",
        "checkpoint": str(checkpoint),
        "frames": [r.sample_id for r in results],
        **({"note": BAG_NOTE} if bag else {}),
        "metrics": m,
        **ev.to_dict(),
    }
    atomic_write_json(out, payload)
    print(f"wrote {out}")
    return 0
