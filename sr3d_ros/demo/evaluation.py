"""Demo stage 4: read the recorded bag back and compute the ScanNet mAP from it.

The mAP is the ScanNet protocol (:func:`sr3d_training.evaluation.evaluate_indoor`, mAP@0.25 and
mAP@0.5) over the detections the node published, as RECORDED, against the bag's ground truth.
Boxes are ``(x, y, z, dx, dy, dz, yaw)`` in the bag's ``map`` frame, metres and radians.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .replay import FrameRow, stamp_ns

__all__ = [
    "Evaluation",
    "IndoorResult",
    "Recorded",
    "evaluable",
    "evaluate",
    "read_recorded",
]

logger = logging.getLogger(__name__)

_NO_BOXES = (np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


class IndoorResult(Protocol):
    """What the demo uses of :class:`sr3d_training.evaluation.IndoorEvalResult`."""

    @property
    def mAP(self) -> dict[float, float]: ...
    def format_table(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class Recorded:
    """The recorded bag's messages by input stamp (ns; the first message of a stamp wins).

    Attributes:
        predictions: ``(boxes float32 (M, 7), scores float32 (M,), labels int64 (M,))`` of the
            node's detections, classes outside ``class_names`` left out.
        ground_truth: ``(boxes (K, 7), labels int64 (K,))``.
        points: the input clouds, float32 ``(N, 3|6)``.
        unknown_classes: predicted class names not in ``class_names``.
    """

    predictions: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    ground_truth: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    points: dict[int, np.ndarray] = field(default_factory=dict)
    unknown_classes: set[str] = field(default_factory=set)

    def predicted(self, stamp: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The predictions for ``stamp`` (no boxes when the node published none)."""
        return self.predictions.get(stamp, _NO_BOXES)


def read_recorded(out_bag: Path, namespace: str, class_names: Sequence[str]) -> Recorded:
    """Read the node's detections, the ground truth and the input clouds from ``out_bag``
    (recorded under ``namespace``; class names mapped to indices of ``class_names``).

    Raises:
        FileNotFoundError: no such bag. KeyError: a ground-truth class not in ``class_names``.
    """
    from sr3d_ros.ros.bag import read_bag
    from sr3d_ros.ros.messages import detection3d_array_to_boxes
    from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array

    index = {c: i for i, c in enumerate(class_names)}
    rec = Recorded()
    for m in read_bag(out_bag):
        if m.topic.endswith("/output/detections"):
            boxes, scores, names = detection3d_array_to_boxes(m.msg)
            keep = [i for i, n in enumerate(names) if n in index]
            rec.unknown_classes |= {n for n in names if n not in index}
            labels = np.array([index[names[i]] for i in keep], np.int64)
            rec.predictions.setdefault(stamp_ns(m.msg), (boxes[keep], scores[keep], labels))
        elif m.topic == f"{namespace}/ground_truth":
            boxes, _, names = detection3d_array_to_boxes(m.msg)
            labels = np.array([index[n] for n in names], np.int64)
            rec.ground_truth.setdefault(stamp_ns(m.msg), (boxes, labels))
        elif m.topic == f"{namespace}/points":
            rec.points.setdefault(stamp_ns(m.msg), pointcloud2_to_array(m.msg)[0])
    return rec


def evaluable(rows: Sequence[FrameRow], recorded: Recorded) -> tuple[list[FrameRow], list[str]]:
    """The rows whose ground truth and input cloud are in the recorded bag, and one warning line
    per other row (those are left out of the mAP and the pictures)."""
    keep, warnings = [], []
    for r in rows:
        missing = [
            what
            for what, d in (
                ("ground truth", recorded.ground_truth),
                ("input cloud", recorded.points),
            )
            if r.stamp not in d
        ]
        if missing:
            warnings.append(
                f"WARNING: frame {r.frame} ({r.scene}): the recorded bag has no "
                f"{' and no '.join(missing)} for it; left out of the mAP and the pictures"
            )
        else:
            keep.append(r)
    return keep, warnings


@dataclass
class Evaluation:
    """mAP over the evaluated scans, and over the held-out ones when the model was trained on
    some of them (``held_out`` None otherwise; ``seen`` / ``held_out_scenes`` name them)."""

    result: IndoorResult
    held_out: IndoorResult | None = None
    seen: list[str] = field(default_factory=list)
    held_out_scenes: list[str] = field(default_factory=list)


def evaluate(
    rows: Sequence[FrameRow],
    recorded: Recorded,
    class_names: Sequence[str],
    trained_on: set[str],
) -> Evaluation:
    """ScanNet mAP@0.25 / 0.5 of the recorded predictions of ``rows`` (all evaluable, see
    :func:`evaluable`), and separately of the scans not in ``trained_on``.

    Source: mmdetection3d's indoor protocol as implemented in
    :func:`sr3d_training.evaluation.evaluate_indoor`.
    """
    from sr3d_training.evaluation import evaluate_indoor

    def map_of(subset: Sequence[FrameRow]) -> IndoorResult:
        preds = [
            dict(zip(("boxes", "scores", "labels"), recorded.predicted(r.stamp))) for r in subset
        ]
        gts = [dict(zip(("boxes", "labels"), recorded.ground_truth[r.stamp])) for r in subset]
        result: IndoorResult = evaluate_indoor(preds, gts, class_names, iou_thresholds=(0.25, 0.5))
        return result

    out = Evaluation(map_of(rows))
    out.seen = sorted({r.scene for r in rows} & trained_on)
    unseen = [r for r in rows if r.scene not in trained_on]
    if trained_on and unseen and out.seen:
        out.held_out = map_of(unseen)
        out.held_out_scenes = [r.scene for r in unseen]
    return out
