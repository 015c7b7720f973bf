"""Greedy non-maximum suppression for 3D boxes (axis-aligned or rotated).

Boxes follow the convention of :mod:`sr3d_ros.geometry.boxes`. The IoU matrix of the candidates
is computed once, vectorised, by :func:`sr3d_ros.geometry.iou.box_iou_3d` (on the boxes'
device), then the greedy pass runs on the CPU over a boolean "overlaps too much" matrix.

Why the greedy pass is on the host: it is inherently sequential (whether box i survives depends
on every earlier decision), so an on-device version is a Python loop of ~K tiny tensor ops (on
CUDA, one host sync per step to test ``removed[i]``), or a fixed-point iteration of K x K
products that needs up to K rounds in the worst case. torchvision's CUDA NMS does the same as
here: the overlap mask on the GPU, the greedy walk on the host. Moving the ``(K, K)`` bool matrix
costs K^2 bytes (1 MB for TR3D's ``nms_pre`` = 1000) and the numpy walk takes ~1 ms on one CPU
core for 1000 boxes, against ~40 ms for the IoU matrix itself; so the host walk stays.

Except for :func:`batched_nms_3d` of axis-aligned boxes on CUDA (TR3D's ScanNet
post-processing): there the per-class loop costs ~6 host synchronisations and a host walk per
class (18 classes), more than the work itself. All classes run at once instead: one padded
``(classes, K, K)`` IoU tensor, and the greedy pass as the fixed-point iteration
``keep[i] = no kept j before i suppresses i`` (one batched product per round). Its unique fixed
point is the greedy result (induction over i), reached after at most "longest suppression chain
+ 1" rounds, a handful on real detections; after :data:`_MAX_ROUNDS` rounds the host walk
finishes the job, so the result is always exactly the greedy one (our formulation).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .boxes import to_7dof, validate_boxes
from .iou import box_iou_3d

__all__ = ["batched_nms_3d", "nms_3d"]

#: Fixed-point rounds tried on the device before the host walk takes over.
_MAX_ROUNDS = 32
#: Largest ``classes x K x K`` IoU tensor of the all-classes-at-once path (32 M entries; TR3D
#: on ScanNet needs at most 18 x 1000 x 1000; peak memory ~1 GB at that size).
_MAX_PADDED = 1 << 25


def _check_scores(boxes: Tensor, scores: Tensor) -> None:
    validate_boxes(boxes, allow_6=True)
    if boxes.dim() != 2:
        raise ValueError(f"boxes must have shape (N, 7) or (N, 6), got {tuple(boxes.shape)}")
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise TypeError(f"scores must have a floating dtype, got {scores.dtype}")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")


def _check_threshold(iou_threshold: float) -> None:
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")


def _greedy(suppress: np.ndarray) -> np.ndarray:
    """Greedy pass over a score-sorted ``(K, K)`` bool matrix; returns kept positions."""
    k = suppress.shape[0]
    removed = np.zeros(k, dtype=bool)
    keep = []
    for i in range(k):
        if removed[i]:
            continue
        keep.append(i)
        removed |= suppress[i]
    return np.asarray(keep, dtype=np.int64)


def _greedy_fixed_point(suppress: Tensor, valid: Tensor) -> Tensor:
    """Greedy keep mask of score-sorted groups, on the device (module docstring).

    Args:
        suppress: ``(G, K, K)`` bool, ``[g, j, i]``: box j suppresses box i if kept (only
            ``j < i`` may be set).
        valid: ``(G, K)`` bool, real (not padding) boxes.

    Returns:
        ``(G, K)`` bool keep mask, exactly the greedy pass's.
    """
    weights = suppress.to(torch.float32)
    keep = valid
    for _ in range(_MAX_ROUNDS):
        hit = torch.bmm(keep.to(torch.float32).unsqueeze(1), weights).squeeze(1) > 0
        new = valid & ~hit
        if torch.equal(new, keep):
            return keep
        keep = new
    host = suppress.cpu().numpy()
    out = torch.zeros(valid.shape, dtype=torch.bool)
    for g, n in enumerate(valid.sum(1).tolist()):
        out[g, torch.from_numpy(_greedy(host[g, :n, :n]))] = True
    return out.to(valid.device)


def _nms_all_classes(
    boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float
) -> Tensor | None:
    """:func:`batched_nms_3d` of axis-aligned boxes with all classes at once (indices sorted
    like it), or ``None`` when the padded IoU tensor would exceed :data:`_MAX_PADDED`."""
    labels = labels.long()
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(labels[order], stable=True)]  # by class, then by score
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    groups, width = counts.numel(), int(counts.max())
    if groups * width * width > _MAX_PADDED:
        return None
    group = torch.repeat_interleave(torch.arange(groups, device=boxes.device), counts)
    pos = (
        torch.arange(order.numel(), device=boxes.device) - (torch.cumsum(counts, 0) - counts)[group]
    )
    padded = boxes.new_zeros((groups, width, 7))  # zero-size padding: IoU 0 with anything
    padded[group, pos] = to_7dof(boxes)[order]
    valid = torch.zeros((groups, width), dtype=torch.bool, device=boxes.device)
    valid[group, pos] = True
    iou = box_iou_3d(padded[:, :, None], padded[:, None, :], aligned=True, rotated=False)
    later = torch.ones((width, width), dtype=torch.bool, device=boxes.device).triu_(1)
    keep = _greedy_fixed_point((iou > iou_threshold) & later & valid[:, :, None], valid)
    kept = torch.sort(order[keep[group, pos]]).values
    return kept[torch.argsort(scores[kept], descending=True, stable=True)]


@torch.no_grad()
def _nms_sorted(
    boxes: Tensor, scores: Tensor, iou_threshold: float, rotated: bool | None
) -> Tensor:
    """NMS of validated inputs; returns indices into ``boxes`` sorted by descending score."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    b = to_7dof(boxes)[order]
    iou = box_iou_3d(b, b, rotated=rotated)
    suppress = (iou > iou_threshold).cpu().numpy()
    kept = torch.from_numpy(_greedy(suppress)).to(boxes.device)
    return order[kept]


def nms_3d(
    boxes: Tensor, scores: Tensor, iou_threshold: float, rotated: bool | None = None
) -> Tensor:
    """Greedy 3D NMS: keep the best-scoring box, drop every box with IoU > threshold, repeat.

    Args:
        boxes: ``(N, 7)`` (or ``(N, 6)``) floating tensor, box convention of
            :mod:`sr3d_ros.geometry.boxes`.
        scores: ``(N,)`` floating tensor (same device).
        iou_threshold: a box is suppressed when its 3D IoU with a kept box is strictly greater.
        rotated: passed to :func:`sr3d_ros.geometry.iou.box_iou_3d` (``None``: rotated IoU if
            any yaw != 0).

    Returns:
        ``(K,)`` int64 indices into ``boxes`` (on ``boxes.device``), sorted by descending score
        (ties keep input order). ``N = 0`` gives an empty tensor. Not differentiable.

    Raises:
        TypeError: non-tensor / non-floating boxes or scores.
        ValueError: wrong shapes, negative / NaN sizes, threshold outside ``[0, 1]``.
    """
    _check_scores(boxes, scores)
    _check_threshold(iou_threshold)
    return _nms_sorted(boxes, scores, float(iou_threshold), rotated)


def batched_nms_3d(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    iou_threshold: float,
    rotated: bool | None = None,
) -> Tensor:
    """Per-class 3D NMS: boxes of different labels never suppress each other.

    Runs :func:`nms_3d` separately for every label (a coordinate-offset trick is not valid for
    rotated 3D boxes), then merges the kept indices.

    Args:
        boxes: ``(N, 7)`` (or ``(N, 6)``) floating tensor.
        scores: ``(N,)`` floating tensor.
        labels: ``(N,)`` integer (or bool) tensor of class ids.
        iou_threshold: as :func:`nms_3d`.
        rotated: as :func:`nms_3d`; ``None`` decides once for all boxes.

    Returns:
        ``(K,)`` int64 indices into ``boxes``, sorted by descending score over all classes
        (ties keep input order); empty for ``N = 0``.

    Raises:
        TypeError: non-tensor inputs, non-floating boxes / scores, floating labels.
        ValueError: wrong shapes, negative / NaN sizes, threshold outside ``[0, 1]``.
    """
    _check_scores(boxes, scores)
    _check_threshold(iou_threshold)
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype}")
    if labels.shape != boxes.shape[:1]:
        raise ValueError(f"labels must have shape ({boxes.shape[0]},), got {tuple(labels.shape)}")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    if rotated is None:
        rotated = boxes.shape[-1] == 7 and bool((boxes[:, 6] != 0).any())
    if boxes.is_cuda and not rotated:
        with torch.no_grad():
            fast = _nms_all_classes(boxes, scores, labels, float(iou_threshold))
        if fast is not None:
            return fast
    kept = []
    for label in torch.unique(labels):
        idx = torch.nonzero(labels == label, as_tuple=True)[0]
        kept.append(idx[_nms_sorted(boxes[idx], scores[idx], float(iou_threshold), rotated)])
    keep = torch.cat(kept)
    # Stable ties by original index: sort indices first, then stable-sort by score.
    keep_sorted = torch.sort(keep).values
    order = torch.argsort(scores[keep_sorted], descending=True, stable=True)
    return keep_sorted[order]
