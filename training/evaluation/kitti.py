"""KITTI 3D object evaluation: AP|R40 and AP|R11 for 2D, BEV and 3D boxes, and AOS.

Protocol: the official KITTI object benchmark as its widely used Python port computes it
(mmdetection3d 1.4 ``kitti_utils/eval.py``, itself from the devkit's ``evaluate_object.cpp``);
the rules are written out in :mod:`.kitti_match`. Summary:

* classes Car, Pedestrian, Cyclist (also Van, Person_sitting), each in three difficulties
  (Easy: 2D box height > 40 px, occlusion 0, truncation <= 0.15; Moderate: > 25 px,
  occlusion <= 1, truncation <= 0.30; Hard: > 25 px, occlusion <= 2, truncation <= 0.50);
* IoU thresholds, two sets (strict / loose) per class and metric::

      class           2D     BEV / 3D (strict)   BEV / 3D (loose)
      Car             0.7    0.7                 0.5
      Pedestrian      0.5    0.5                 0.25
      Cyclist         0.5    0.5                 0.25

  (the 2D threshold is the same in both sets, as in the port);
* Van (for Car) and Person_sitting (for Pedestrian) ground truth, and ground truth failing the
  difficulty filter, are ignored (matching them costs nothing, missing them is no error);
  detections lower than the difficulty's minimum height are ignored; for the 2D metric,
  detections inside DontCare regions are not false positives;
* overlaps: 2D box IoU; BEV IoU of the rotated footprints and 3D IoU with the vertical overlap,
  both from :func:`sr3d_ros.geometry.box_iou_bev` / :func:`~sr3d_ros.geometry.box_iou_3d` on the
  boxes in our convention (camera body frame, :meth:`KittiObjects.boxes`);
* AOS (orientation similarity) with the 2D metric when the detections carry ``alpha``.

Input: per frame the ground truth and the detections as :class:`KittiObjects` (labels / result
files read by :func:`~sr3d_training.datasets.kitti.read_kitti_label`). A class without counted
ground truth gets AP 0, as in the port (``num_gt`` tells). Values are percent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sr3d_ros.geometry import box_iou_3d, box_iou_bev
from sr3d_ros.io.atomic import atomic_write_json

from ..datasets.kitti import KITTI_DETECTED_CLASSES, KittiObjects, read_kitti_label
from ..datasets.scannet import read_split_file
from .kitti_match import DIFFICULTIES, FrameFlags, ap_r11, ap_r40, class_curves, frame_flags

__all__ = [
    "KITTI_MIN_OVERLAPS",
    "KittiEvalResult",
    "evaluate_kitti",
    "evaluate_kitti_folders",
    "image_box_iou",
    "kitti_overlaps",
]

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("bbox", "bev", "3d")
#: IoU thresholds ``[(strict 2D, BEV, 3D), (loose 2D, BEV, 3D)]`` per class (module docstring).
KITTI_MIN_OVERLAPS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "Car": ((0.7, 0.7, 0.7), (0.7, 0.5, 0.5)),
    "Pedestrian": ((0.5, 0.5, 0.5), (0.5, 0.25, 0.25)),
    "Cyclist": ((0.5, 0.5, 0.5), (0.5, 0.25, 0.25)),
    "Van": ((0.7, 0.7, 0.7), (0.7, 0.5, 0.5)),
    "Person_sitting": ((0.5, 0.5, 0.5), (0.5, 0.25, 0.25)),
}
_METRIC_LABEL = {"bbox": "2D", "aos": "AOS", "bev": "BEV", "3d": "3D"}


def image_box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``float64 (N, M)`` IoU of ``(N, 4)`` and ``(M, 4)`` ``x1, y1, x2, y2`` pixel boxes (areas
    without +1, as the devkit port; 0 where they do not overlap)."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    ok = (iw > 0) & (ih > 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inter = np.where(ok, iw * ih, 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, inter / union, 0.0)


def kitti_overlaps(gt: KittiObjects, dt: KittiObjects, metric: str) -> np.ndarray:
    """``float64 (D, G)`` overlaps of one frame's detections with its ground truth.

    Args:
        gt, dt: the frame's objects. metric: ``"bbox"`` (2D IoU), ``"bev"`` or ``"3d"``
            (DontCare ground truth gets 0 there).

    Raises:
        ValueError: unknown metric; a detection with negative / NaN size in BEV / 3D.
    """
    if metric == "bbox":
        return image_box_iou(dt.bbox, gt.bbox)
    if metric not in ("bev", "3d"):
        raise ValueError(f"unknown metric {metric!r} (bbox, bev, 3d)")
    out = np.zeros((len(dt), len(gt)))
    cared = gt.cared & (gt.dimensions >= 0).all(axis=1)
    if len(dt) == 0 or not cared.any():
        return out
    b_dt = torch.from_numpy(dt.boxes())
    b_gt = torch.from_numpy(gt.subset(cared).boxes())
    iou = box_iou_bev(b_dt, b_gt) if metric == "bev" else box_iou_3d(b_dt, b_gt, rotated=True)
    out[:, cared] = iou.numpy()
    return out


@dataclass
class KittiEvalResult:
    """AP per class x difficulty x IoU set, per metric (percent).

    Attributes:
        classes: evaluated classes.
        ap40, ap11: ``{metric: float64 (C, 3, 2)}`` (difficulty easy / moderate / hard; IoU set
            strict / loose), metrics ``bbox``, ``bev``, ``3d`` and ``aos`` when computed.
        min_overlaps: ``float64 (C, 2, 3)`` the thresholds used (set x (2D, BEV, 3D)).
        num_gt: ``int64 (C, 3)`` counted ground truth. num_dt: ``int64 (C,)`` detections.
        num_frames: frames evaluated.
    """

    classes: tuple[str, ...]
    ap40: dict[str, np.ndarray]
    ap11: dict[str, np.ndarray]
    min_overlaps: np.ndarray
    num_gt: np.ndarray
    num_dt: np.ndarray
    num_frames: int
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"num_frames", "per_class": {cls: {"num_gt": {difficulty: n},
        "num_dt", "iou": {"strict": {...}, "loose": {...}}, "AP40": {"strict": {metric:
        {difficulty: ap}}, "loose": ...}, "AP11": ...}}}``."""
        per: dict[str, Any] = {}
        for c, name in enumerate(self.classes):
            d: dict[str, Any] = {
                "num_gt": {k: int(self.num_gt[c, i]) for i, k in enumerate(DIFFICULTIES)},
                "num_dt": int(self.num_dt[c]),
                "iou": {
                    s: dict(zip(METRICS, map(float, self.min_overlaps[c, j])))
                    for j, s in enumerate(("strict", "loose"))
                },
            }
            for key, table in (("AP40", self.ap40), ("AP11", self.ap11)):
                d[key] = {
                    s: {
                        m: {k: float(v[c, i, j]) for i, k in enumerate(DIFFICULTIES)}
                        for m, v in table.items()
                    }
                    for j, s in enumerate(("strict", "loose"))
                }
            per[name] = d
        return {"num_frames": self.num_frames, "per_class": per}

    def format_table(self, recall_points: int = 40) -> str:
        """Text table: rows class x IoU set x metric, columns Easy / Moderate / Hard (AP|R40 or
        AP|R11 in percent), then the number of counted GT per difficulty. 2D / AOS appear once
        (their threshold is the same in both sets)."""
        table = self.ap40 if recall_points == 40 else self.ap11
        head = ["class", "IoU", "metric", "Easy", "Moderate", "Hard"]
        rows: list[list[str]] = []
        for c, name in enumerate(self.classes):
            for j in range(2):
                for m in ("bbox", "aos", "bev", "3d"):
                    if m not in table or (j == 1 and m in ("bbox", "aos")):
                        continue  # 2D thresholds are the same in both sets
                    col = 0 if m == "aos" else METRICS.index(m)
                    iou = f"{self.min_overlaps[c, j, col]:.2f}"
                    rows.append(
                        [name, iou, _METRIC_LABEL[m], *(f"{v:.2f}" for v in table[m][c, :, j])]
                    )
            rows.append([name, "", "#GT", *(str(int(n)) for n in self.num_gt[c])])
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
        title = f"KITTI AP|R{recall_points} (%), {self.num_frames} frames"
        return "\n".join([title, fmt.format(*head), *(fmt.format(*r) for r in rows)])

    def __str__(self) -> str:
        return self.format_table()


def evaluate_kitti(
    gt: Sequence[KittiObjects],
    dt: Sequence[KittiObjects],
    classes: Sequence[str] = KITTI_DETECTED_CLASSES,
    metrics: Sequence[str] = METRICS,
) -> KittiEvalResult:
    """Evaluate detections against KITTI ground truth (module docstring).

    Args:
        gt: per frame the labels (all types, incl. DontCare, as read from ``label_2``).
        dt: per frame the detections, same order (type, 2D box, 3D box, alpha, score; alpha
            -10 everywhere disables AOS).
        classes: classes to evaluate (keys of :data:`KITTI_MIN_OVERLAPS`).
        metrics: subset of ``("bbox", "bev", "3d")``; AOS comes with ``bbox``.

    Returns:
        :class:`KittiEvalResult`.

    Raises:
        ValueError: lengths differ, unknown class or metric, malformed detection boxes.
    """
    if len(gt) != len(dt):
        raise ValueError(f"{len(gt)} ground-truth frames but {len(dt)} detection frames")
    for cls in classes:
        if cls not in KITTI_MIN_OVERLAPS:
            raise ValueError(f"unknown KITTI class {cls!r} (one of {sorted(KITTI_MIN_OVERLAPS)})")
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"unknown metric {m!r} (one of {METRICS})")
    has_alpha = any((d.alpha != -10).any() for d in dt) and any((g.alpha != -10).any() for g in gt)
    overlaps = {m: [kitti_overlaps(g, d, m) for g, d in zip(gt, dt)] for m in metrics}
    n_c = len(classes)
    ap40 = {m: np.zeros((n_c, 3, 2)) for m in metrics}
    ap11 = {m: np.zeros((n_c, 3, 2)) for m in metrics}
    if "bbox" in metrics and has_alpha:
        ap40["aos"], ap11["aos"] = np.zeros((n_c, 3, 2)), np.zeros((n_c, 3, 2))
    num_gt = np.zeros((n_c, 3), np.int64)
    for c, name in enumerate(classes):
        for diff in range(3):
            flags: list[FrameFlags] = [
                frame_flags(g.names, g.bbox, g.occluded, g.truncated, d.names, d.bbox, name, diff)
                for g, d in zip(gt, dt)
            ]
            num_gt[c, diff] = sum(f.num_valid for f in flags)
            for m in metrics:
                aos = m == "bbox" and has_alpha
                for j in range(2):
                    thr = KITTI_MIN_OVERLAPS[name][j][METRICS.index(m)]
                    prec, _, orient = class_curves(
                        overlaps[m],
                        flags,
                        [d.score for d in dt],
                        [g.alpha for g in gt],
                        [d.alpha for d in dt],
                        [d.bbox for d in dt],
                        thr,
                        use_dontcare=m == "bbox",
                        compute_aos=aos,
                    )
                    ap40[m][c, diff, j], ap11[m][c, diff, j] = ap_r40(prec), ap_r11(prec)
                    if aos:
                        ap40["aos"][c, diff, j] = ap_r40(orient)
                        ap11["aos"][c, diff, j] = ap_r11(orient)
    return KittiEvalResult(
        classes=tuple(classes),
        ap40=ap40,
        ap11=ap11,
        min_overlaps=np.array([KITTI_MIN_OVERLAPS[c] for c in classes], np.float64),
        num_gt=num_gt,
        num_dt=np.array([sum(int((d.names == c).sum()) for d in dt) for c in classes]),
        num_frames=len(gt),
    )


def evaluate_kitti_folders(
    label_dir: str | os.PathLike[str],
    result_dir: str | os.PathLike[str],
    frame_ids: Sequence[str] | None = None,
    classes: Sequence[str] = KITTI_DETECTED_CLASSES,
) -> KittiEvalResult:
    """Evaluate KITTI result files (``result_dir/ID.txt``, 16 columns) against ``label_dir``.

    Args:
        label_dir: folder of ``ID.txt`` labels. result_dir: folder of result files; a missing
            file means no detections for that frame (logged).
        frame_ids: frames (default: every label file). classes: as :func:`evaluate_kitti`.

    Raises:
        FileNotFoundError: a folder or label file is missing. ValueError: malformed files.
    """
    label_dir, result_dir = Path(label_dir), Path(result_dir)
    for d in (label_dir, result_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"folder not found: {d}")
    ids = (
        list(frame_ids)
        if frame_ids is not None
        else sorted(p.stem for p in label_dir.glob("*.txt"))
    )
    gts, dts = [], []
    for fid in ids:
        gts.append(read_kitti_label(label_dir / f"{fid}.txt"))
        res = result_dir / f"{fid}.txt"
        if res.is_file():
            dts.append(read_kitti_label(res))
        else:
            logger.warning("no result file for frame %s (%s): no detections", fid, res)
            dts.append(KittiObjects.empty())
    return evaluate_kitti(gts, dts, classes)


def run_kitti_cli(
    data: str, predictions: str | None, ids: Sequence[str] | None, split: str | None, out: Path
) -> int:
    """``sr3d-eval --dataset kitti``: evaluate result files, print the table, write JSON.

    Args:
        data: KITTI root (``training/label_2`` inside, or the ``training`` folder itself).
        predictions: folder of KITTI result files. ids / split: frames (split from
            ``ImageSets/SPLIT.txt``). out: JSON file (written atomically).

    Returns:
        Exit status: 0; 2 (usage error: no ``--predictions``) or 1 (unreadable or invalid
        files), with one error line on stderr.
    """
    import sys

    root = Path(data)
    folder = root if (root / "label_2").is_dir() else root / "training"
    if predictions is None:
        print(
            "sr3d-eval: error: --predictions DIR (KITTI result files) is required for kitti",
            file=sys.stderr,
        )
        return 2
    try:
        frame_ids = list(ids) if ids else None
        if split:
            frame_ids = read_split_file(folder.parent / "ImageSets" / f"{split}.txt")
        res = evaluate_kitti_folders(folder / "label_2", predictions, frame_ids)
    except (FileNotFoundError, ValueError) as exc:
        print(f"sr3d-eval: error: {exc}", file=sys.stderr)
        return 1
    print(res.format_table())
    payload = {"dataset": "kitti", "predictions": str(predictions), "result": res.to_dict()}
    atomic_write_json(out, payload)
    print(f"wrote {out}")
    return 0
