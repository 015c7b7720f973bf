"""Shared helpers of the classification losses: input checks and reductions."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Reduction = Literal["none", "sum", "mean"]
REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean")


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` unless ``reduction`` is ``"none"``, ``"sum"`` or ``"mean"``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """Apply ``reduction``; ``"mean"`` of an empty tensor is 0 (not NaN), with a graph."""
    check_reduction(reduction)
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()
    return loss.mean()


def check_logits_targets(logits: Tensor, targets: Tensor) -> None:
    """Check ``logits`` / ``targets``: tensors, floating, same shape / device.

    Raises:
        TypeError: not tensors or not floating.
        ValueError: shapes or devices differ.
    """
    if not isinstance(logits, Tensor) or not isinstance(targets, Tensor):
        raise TypeError("logits and targets must be torch.Tensors")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating, got {logits.dtype}")
    if not targets.is_floating_point():
        raise TypeError(f"targets must be floating (soft targets in [0, 1]), got {targets.dtype}")
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits and targets must have the same shape, got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if logits.device != targets.device:
        raise ValueError(
            f"logits and targets are on different devices ({logits.device}, {targets.device})"
        )


def sigmoid_bce_terms(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Checked inputs and the terms every sigmoid classification loss here starts from.

    Args:
        logits: ``(L, C)`` (any shape) float logits.
        targets: same shape, float in ``[0, 1]``.

    Returns:
        ``(t, p, ce)``: ``targets`` in the dtype of ``logits``, ``p = sigmoid(logits)`` and the
        element-wise ``BCE(logits, t)`` computed from the logit (log-sum-exp stable).

    Raises:
        TypeError / ValueError: see :func:`check_logits_targets`.
    """
    check_logits_targets(logits, targets)
    t = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    return t, torch.sigmoid(logits), ce


def onehot_targets(
    cls_logits: Tensor, gt_index: Tensor, gt_labels: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """One-hot ``(L, C)`` targets plus the positives' location indices and classes.

    Args:
        cls_logits: ``(L, C)`` float (dtype / device of the targets).
        gt_index: ``(L,)`` int64 assigned GT per location, ``-1`` = background.
        gt_labels: ``(K,)`` int64 class of each GT.

    Returns:
        ``(onehot (L, C), pos_idx (P,) int64, pos_lab (P,) int64)``.
    """
    pos_idx = (gt_index >= 0).nonzero().flatten()
    pos_lab = gt_labels[gt_index[pos_idx]] if pos_idx.numel() else pos_idx
    onehot = torch.zeros_like(cls_logits)
    if pos_idx.numel():
        onehot[pos_idx, pos_lab] = 1.0
    return onehot, pos_idx, pos_lab
