"""Indoor 3D detection mAP: the ScanNet / SUN RGB-D protocol (mmdetection3d indoor_eval, VOC AP).

Protocol, per class and IoU threshold:

1. Collect that class's predictions over ALL scenes and sort them by descending score (stable:
   ties keep scene order, then the order within the scene).
2. Walk the list: a prediction's best ground truth is the GT box of the same class in the same
   scene with the highest 3D IoU. It is a true positive when that IoU exceeds the threshold
   (``IoU > threshold``, strict) and that
   GT box is not matched yet (the GT is then marked matched); otherwise (IoU too low, no GT, or
   the best GT already matched -- a duplicate) it is a false positive. As in VOC, a duplicate does
   NOT fall back to the second-best GT.
3. ``recall = cum TP / #GT``, ``precision = cum TP / (cum TP + cum FP)``; AP is the VOC
   all-point interpolated area under the precision-recall curve: precision is replaced by its
   monotone envelope (max precision at any higher recall) and integrated over recall
   (Everingham et al., "The PASCAL VOC Challenge", IJCV 2010; VOC2010+ devkit).
4. A class with GT but no predictions has AP 0 and recall 0 and counts in the mAP; a class with
   no GT in the whole evaluation set has AP NaN and is excluded from the mAP (it cannot be
   measured). mAP / mAR are means over the classes with GT.

The match rule is strict (``IoU > threshold``), as the issue's protocol ("exceeds the threshold"),
mmdetection3d's ``indoor_eval`` and the VOC devkit have it: an IoU exactly at the threshold is a
false positive.

Boxes: ``(x, y, z, dx, dy, dz, yaw)`` (geometric centre, metres, yaw radians about +z; see
:mod:`sr3d_ros.geometry`). The default IoU is :func:`sr3d_ros.geometry.box_iou_3d` (rotated 3D IoU
when any yaw is non-zero, axis-aligned otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["IndoorEvalResult", "IoUFn", "evaluate_indoor", "voc_ap"]

#: ``iou_fn(boxes1, boxes2) -> (N, M)``: called with float64 torch tensors ``(N, 7)``, ``(M, 7)``
#: (N, M >= 1); may return a tensor or an array-like.
IoUFn = Callable[[torch.Tensor, torch.Tensor], Any]


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point interpolated average precision (Everingham et al., VOC2010+ devkit).

    Args:
        recall: ``(P,)`` non-decreasing recalls in [0, 1] after each ranked prediction.
        precision: ``(P,)`` precisions at the same ranks.

    Returns:
        ``sum_i (r_{i+1} - r_i) * max_{r' >= r_{i+1}} p(r')`` over the points where recall
        changes; 0.0 for empty input.

    Raises:
        ValueError: the arrays differ in length.
    """
    r = np.asarray(recall, np.float64).reshape(-1)
    p = np.asarray(precision, np.float64).reshape(-1)
    if r.shape != p.shape:
        raise ValueError(f"recall {r.shape} and precision {p.shape} differ")
    if r.size == 0:
        return 0.0
    mrec = np.concatenate([[0.0], r, [1.0]])
    mpre = np.concatenate([[0.0], p, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # monotone envelope
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def _to_numpy(x: Any, dtype: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _boxes(x: Any, where: str) -> np.ndarray:
    b = _to_numpy(x, np.float64)
    if b.size == 0:
        return np.zeros((0, 7), np.float64)
    if b.ndim != 2 or b.shape[1] not in (6, 7):
        raise ValueError(f"{where}: boxes must be (K, 7) (or (K, 6) axis-aligned), got {b.shape}")
    if b.shape[1] == 6:
        b = np.concatenate([b, np.zeros((len(b), 1))], axis=1)
    return b


def _default_iou_fn() -> IoUFn:
    from sr3d_ros.geometry import box_iou_3d  # lazy: keeps this module importable alone

    return box_iou_3d


@dataclass
class IndoorEvalResult:
    """Per-class AP / recall and their means, per IoU threshold.

    Attributes:
        class_names: the evaluated classes, label order.
        iou_thresholds: thresholds evaluated.
        ap: ``{threshold: (C,) float64}`` AP per class (NaN where the class has no GT).
        recall: ``{threshold: (C,) float64}`` final recall per class (NaN where no GT).
        num_gt: ``(C,) int64`` number of GT boxes per class over all scenes.
        num_pred: ``(C,) int64`` number of predictions per class over all scenes.
    """

    class_names: tuple[str, ...]
    iou_thresholds: tuple[float, ...]
    ap: dict[float, np.ndarray]
    recall: dict[float, np.ndarray]
    num_gt: np.ndarray
    num_pred: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def valid_classes(self) -> np.ndarray:
        """``bool (C,)``: classes with at least one GT box (those averaged into the mAP)."""
        return self.num_gt > 0

    @property
    def mAP(self) -> dict[float, float]:
        """``{threshold: mean AP over classes with GT}`` (NaN when no class has GT)."""
        return {t: self._mean(v) for t, v in self.ap.items()}

    @property
    def mAR(self) -> dict[float, float]:
        """``{threshold: mean final recall over classes with GT}``."""
        return {t: self._mean(v) for t, v in self.recall.items()}

    def _mean(self, v: np.ndarray) -> float:
        m = self.valid_classes
        return float(np.mean(v[m])) if m.any() else float("nan")

    def class_ap(self, class_name: str, iou_threshold: float) -> float:
        """AP of one class at one threshold (NaN when the class has no GT).

        Raises:
            KeyError: unknown class or threshold.
        """
        return float(self.ap[iou_threshold][self.class_names.index(class_name)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"mAP_0.25": .., "mAR_0.25": .., "per_class": {name: {"AP_0.25":
        .., "recall_0.25": .., "num_gt": .., "num_pred": ..}}, ...}``; NaN becomes ``None``."""

        def f(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        out: dict[str, Any] = {"iou_thresholds": list(self.iou_thresholds)}
        for t in self.iou_thresholds:
            out[f"mAP_{t:.2f}"] = f(self.mAP[t])
            out[f"mAR_{t:.2f}"] = f(self.mAR[t])
        per: dict[str, Any] = {}
        for i, name in enumerate(self.class_names):
            d: dict[str, Any] = {"num_gt": int(self.num_gt[i]), "num_pred": int(self.num_pred[i])}
            for t in self.iou_thresholds:
                d[f"AP_{t:.2f}"] = f(float(self.ap[t][i]))
                d[f"recall_{t:.2f}"] = f(float(self.recall[t][i]))
            per[name] = d
        out["per_class"] = per
        return out

    def format_table(self, digits: int = 4) -> str:
        """A plain-text table: one row per class (AP and recall per threshold, #GT, #pred) and an
        ``Overall`` row with mAP / mAR. Classes without GT show ``-``."""

        def fmt(x: float) -> str:
            return "-" if math.isnan(x) else f"{x:.{digits}f}"

        head = ["class"]
        for t in self.iou_thresholds:
            head += [f"AP@{t:.2f}", f"AR@{t:.2f}"]
        head += ["#gt", "#pred"]
        rows = []
        for i, name in enumerate(self.class_names):
            row = [name]
            for t in self.iou_thresholds:
                row += [fmt(float(self.ap[t][i])), fmt(float(self.recall[t][i]))]
            row += [str(int(self.num_gt[i])), str(int(self.num_pred[i]))]
            rows.append(row)
        overall = ["Overall"]
        for t in self.iou_thresholds:
            overall += [fmt(self.mAP[t]), fmt(self.mAR[t])]
        overall += [str(int(self.num_gt.sum())), str(int(self.num_pred.sum()))]
        widths = [max(len(r[j]) for r in [head, *rows, overall]) for j in range(len(head))]

        def line(r: Sequence[str]) -> str:
            return (
                "| "
                + " | ".join(
                    c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))
                )
                + " |"
            )

        sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        return "\n".join([sep, line(head), sep, *map(line, rows), sep, line(overall), sep])

    def __str__(self) -> str:
        return self.format_table()


def evaluate_indoor(
    predictions: Sequence[Mapping[str, Any]],
    ground_truths: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    iou_thresholds: Sequence[float] = (0.25, 0.5),
    iou_fn: IoUFn | None = None,
) -> IndoorEvalResult:
    """Indoor 3D detection AP per class / mAP (mmdetection3d ``indoor_eval`` protocol, VOC
    all-point AP; see the module docstring for the exact rules).

    Args:
        predictions: one dict per scene: ``boxes`` (M, 7) float (metres, radians; (M, 6) means
            yaw 0), ``scores`` (M,) float, ``labels`` (M,) int in [0, C). numpy arrays, torch
            tensors or lists.
        ground_truths: one dict per scene, same order: ``boxes`` (K, 7), ``labels`` (K,).
        class_names: the C evaluated classes, label order.
        iou_thresholds: IoU thresholds (a prediction matches when IoU > threshold, strict).
        iou_fn: pairwise 3D IoU, ``(N, 7), (M, 7) -> (N, M)`` on float64 torch tensors; default
            :func:`sr3d_ros.geometry.box_iou_3d` (imported on first use).

    Returns:
        :class:`IndoorEvalResult`.

    Raises:
        ValueError: different numbers of prediction and GT scenes, mis-shaped arrays, labels
        outside [0, C), non-finite scores, thresholds outside (0, 1], or an ``iou_fn`` result of
        the wrong shape.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(
            f"{len(predictions)} prediction scenes but {len(ground_truths)} ground-truth scenes"
        )
    names = tuple(str(c) for c in class_names)
    n_cls = len(names)
    thresholds = tuple(float(t) for t in iou_thresholds)
    if not thresholds or any(not 0.0 < t <= 1.0 for t in thresholds):
        raise ValueError(f"IoU thresholds must be in (0, 1], got {thresholds}")

    # ---- validate and split per class
    gts: list[tuple[np.ndarray, np.ndarray]] = []
    preds: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for s, (pr, gt) in enumerate(zip(predictions, ground_truths)):
        gb = _boxes(gt["boxes"], f"ground_truths[{s}]")
        gl = _to_numpy(gt["labels"], np.int64).reshape(-1)
        pb = _boxes(pr["boxes"], f"predictions[{s}]")
        ps = _to_numpy(pr["scores"], np.float64).reshape(-1)
        pl = _to_numpy(pr["labels"], np.int64).reshape(-1)
        if len(gl) != len(gb):
            raise ValueError(f"ground_truths[{s}]: {len(gb)} boxes but {len(gl)} labels")
        if not len(pb) == len(ps) == len(pl):
            raise ValueError(
                f"predictions[{s}]: {len(pb)} boxes, {len(ps)} scores, {len(pl)} labels"
            )
        for arr, what in ((gl, f"ground_truths[{s}]"), (pl, f"predictions[{s}]")):
            if len(arr) and (arr.min() < 0 or arr.max() >= n_cls):
                raise ValueError(
                    f"{what}: labels must be in [0, {n_cls}), got [{arr.min()}, {arr.max()}]"
                )
        if not np.isfinite(ps).all():
            raise ValueError(f"predictions[{s}]: non-finite scores")
        gts.append((gb, gl))
        preds.append((pb, ps, pl))

    fn = iou_fn if iou_fn is not None else _default_iou_fn()
    ap = {t: np.full(n_cls, np.nan) for t in thresholds}
    rec = {t: np.full(n_cls, np.nan) for t in thresholds}
    num_gt = np.zeros(n_cls, np.int64)
    num_pred = np.zeros(n_cls, np.int64)

    for c in range(n_cls):
        # per-scene GT of this class; the (pred x gt) IoU of each scene is computed once
        scene_ids, scores, best_iou, best_gt = [], [], [], []
        n_gt_c = 0
        for s, ((gb, gl), (pb, ps, pl)) in enumerate(zip(gts, preds)):
            g = gb[gl == c]
            n_gt_c += len(g)
            pm = pl == c
            if not pm.any():
                continue
            p = pb[pm]
            if len(g):
                iou = _to_numpy(fn(torch.from_numpy(p), torch.from_numpy(g)), np.float64)
                if iou.shape != (len(p), len(g)):
                    raise ValueError(
                        f"iou_fn returned shape {iou.shape}, expected {(len(p), len(g))}"
                    )
                j = np.argmax(iou, axis=1)  # first index among equal maxima
                best_iou.append(iou[np.arange(len(p)), j])
                best_gt.append(j)
            else:
                best_iou.append(np.full(len(p), -np.inf))
                best_gt.append(np.full(len(p), -1))
            scene_ids.append(np.full(len(p), s))
            scores.append(ps[pm])
        num_gt[c] = n_gt_c
        n_pred_c = int(sum(len(x) for x in scores))
        num_pred[c] = n_pred_c
        if n_gt_c == 0:
            continue  # not measurable: NaN, excluded from the mean
        if n_pred_c == 0:
            for t in thresholds:
                ap[t][c] = 0.0
                rec[t][c] = 0.0
            continue
        sc = np.concatenate(scores)
        order = np.argsort(-sc, kind="stable")
        sid = np.concatenate(scene_ids)[order]
        bi = np.concatenate(best_iou)[order]
        bg = np.concatenate(best_gt)[order]
        for t in thresholds:
            matched: set[tuple[int, int]] = set()
            tp = np.zeros(n_pred_c, np.float64)
            for k in range(n_pred_c):
                if bi[k] > t:
                    key = (int(sid[k]), int(bg[k]))
                    if key not in matched:
                        matched.add(key)
                        tp[k] = 1.0
            ctp = np.cumsum(tp)
            cfp = np.cumsum(1.0 - tp)
            recall = ctp / n_gt_c
            precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
            ap[t][c] = voc_ap(recall, precision)
            rec[t][c] = float(recall[-1])

    return IndoorEvalResult(
        class_names=names,
        iou_thresholds=thresholds,
        ap=ap,
        recall=rec,
        num_gt=num_gt,
        num_pred=num_pred,
    )
