"""Demo stage 5: the per-frame table, one PNG per scan and ``results.json``."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .evaluation import Evaluation, Recorded
from .replay import FrameRow

__all__ = ["COLUMNS", "KITTI_COLUMNS", "exit_status", "frame_table", "render_scans", "summary"]

logger = logging.getLogger(__name__)

#: Table columns: (FrameRow field, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("frame", "frame"),
    ("scene", "scene"),
    ("points", "points"),
    ("gt", "gt boxes"),
    ("detections", "detections"),
    ("latency_ms", "latency ms"),
    ("node_ms", "node ms"),
    ("inference_ms", "inference ms"),
)

#: Columns of the KITTI part's table.
KITTI_COLUMNS: tuple[tuple[str, str], ...] = (
    ("frame", "frame"),
    ("scene", "kitti frame"),
    ("image", "image"),
    ("gt", "gt objects"),
    ("detections", "detections"),
    ("latency_ms", "latency ms"),
    ("node_ms", "node ms"),
    ("inference_ms", "inference ms"),
)

#: Below the table: what the time columns measure.
TIMING_NOTE = (
    "latency: frame published -> its Detection3DArray received (end to end, over DDS); "
    "node: the node's receive -> all its outputs published (markers included); "
    "inference: the model alone."
)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if isinstance(value, float) else str(value)


def frame_table(rows: Sequence[FrameRow], columns: Sequence[tuple[str, str]] = COLUMNS) -> str:
    """The per-frame table (one line per frame; ``-`` where the node did not answer; times in
    whole milliseconds), ASCII-framed, the second column (scene / frame id) left-aligned and the
    others right-aligned. ``columns``: ``(FrameRow field, header)`` pairs."""
    cells = [[h for _, h in columns]]
    cells += [[_cell(getattr(r, k)) for k, _ in columns] for r in rows]
    widths = [max(len(c[j]) for c in cells) for j in range(len(columns))]

    def line(c: list[str]) -> str:
        padded = (x.ljust(widths[j]) if j == 1 else x.rjust(widths[j]) for j, x in enumerate(c))
        return "| " + " | ".join(padded) + " |"

    sep = "+" + "+".join("-" * (x + 2) for x in widths) + "+"
    return "\n".join([sep, line(cells[0]), sep, *map(line, cells[1:]), sep])


def _render_scan(
    path: Path,
    row: FrameRow,
    recorded: Recorded,
    class_names: Sequence[str],
    backend: str,
    note: str,
) -> str:
    """Draw one scan's recorded detections against its ground truth into ``path``; returns ""
    or why no picture was made (a failing renderer must not fail the demo)."""
    import torch

    from sr3d_ros.detections import Detections
    from sr3d_ros.io.render import render_detections

    boxes, scores, labels = recorded.predicted(row.stamp)
    gt_boxes, gt_labels = recorded.ground_truth[row.stamp]
    det = Detections(
        torch.from_numpy(boxes),
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        tuple(class_names),
    )
    # Trained models: draw the confident boxes. An untrained model has no score >= 0.3: draw
    # its 20 best so that the picture still shows what the node published.
    min_score = 0.3 if len(scores) and scores.max() >= 0.3 else 0.0
    try:
        render_detections(
            recorded.points[row.stamp],
            det,
            path,
            gt_boxes=gt_boxes,
            gt_labels=gt_labels,
            class_names=class_names,
            min_score=min_score,
            max_boxes=100 if min_score else 20,
            backend=backend,
            title=f"{row.scene}: node detections (solid) vs ground truth (dashed){note}",
        )
    except Exception as exc:
        return f"render failed: {type(exc).__name__}: {exc}"
    return ""


def render_scans(
    out: Path,
    rows: Sequence[FrameRow],
    recorded: Recorded,
    class_names: Sequence[str],
    backend: str,
    note: str = "",
) -> list[str]:
    """``<out>/<scene>_detections_vs_gt.png`` for each of ``rows`` (evaluable ones: their cloud
    and ground truth are recorded); returns the paths written, logs a warning for the others."""
    written = []
    for r in rows:
        path = out / f"{r.scene}_detections_vs_gt.png"
        why = _render_scan(path, r, recorded, class_names, backend, note)
        if why:
            logger.warning("no picture for %s: %s", r.scene, why)
        else:
            written.append(str(path))
    return written


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def summary(
    *,
    checkpoint: Path,
    random_init: bool,
    scenes: Sequence[str],
    rows: Sequence[FrameRow],
    evaluated: Sequence[FrameRow],
    evaluation: Evaluation,
    node_exit_code: int,
    recorded: dict[str, int],
    input_bag: Path,
    output_bag: Path,
    pictures: list[str],
) -> dict[str, Any]:
    """The content of ``results.json`` (JSON types only; NaN mAPs, i.e. no ground truth at all,
    become null)."""
    result, held_out = evaluation.result, evaluation.held_out
    return {
        "checkpoint": str(checkpoint),
        "random_init": random_init,
        "scenes": list(scenes),
        "frames": [dataclasses.asdict(r) for r in rows],
        "evaluated_frames": [r.frame for r in evaluated],
        "mAP_0.25": _finite(result.mAP[0.25]),
        "mAP_0.5": _finite(result.mAP[0.5]),
        "evaluation": result.to_dict(),
        "held_out_evaluation": None if held_out is None else held_out.to_dict(),
        "node_exit_code": node_exit_code,
        "recorded": recorded,
        "input_bag": str(input_bag),
        "output_bag": str(output_bag),
        "pictures": pictures,
    }


def exit_status(answered: int, frames: int, node_rc: int, log: Path, part: str = "") -> int:
    """A part's exit status once its report is written: 1 (logging why) when the node answered
    fewer than all ``frames`` or exited with a non-zero ``node_rc`` (its ``log`` named), else
    0. ``part`` prefixes the messages (e.g. ``"KITTI part: "``)."""
    if answered < frames:
        logger.error("%sthe node answered %d of %d frames", part, answered, frames)
        return 1
    if node_rc != 0:
        logger.error("%sthe node exited with code %d (log %s)", part, node_rc, log)
        return 1
    return 0
