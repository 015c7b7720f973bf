"""Varifocal Loss (Zhang, Wang, Dayoub, Sunderhauf, "VarifocalNet: An IoU-aware Dense Object
Detector", CVPR 2021, Sec. 3.2, eq. 2)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import Reduction, reduce_loss, sigmoid_bce_terms

__all__ = ["varifocal_loss"]


def varifocal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float = 0.75,
    gamma: float = 2.0,
    reduction: Reduction = "none",
) -> Tensor:
    """VFL (VarifocalNet, eq. 2): positives ``q BCE(p, q)``, negatives ``alpha p^gamma BCE(p, 0)``.

    ``VFL(p, q) = -q (q log p + (1 - q) log(1 - p))`` if ``q > 0`` else
    ``-alpha p^gamma log(1 - p)``, ``p = sigmoid(logit)``; ``q`` is the IoU-aware classification
    target (IoU of the predicted box with its GT at the GT's class, 0 elsewhere). The BCE is
    computed from the logit (stable); the weights ``q`` (a target) and ``p^gamma`` are
    differentiated as in the paper's loss (``q`` only if it requires grad). Normalisation by the
    number of positives is the caller's job.

    Args:
        logits: ``(L, C)`` (any shape) float logits.
        targets: same shape, ``q`` in ``[0, 1]``.
        alpha: negative weight (paper: 0.75).
        gamma: negative focusing exponent >= 0 (paper: 2.0).
        reduction: ``"none"`` | ``"sum"`` | ``"mean"`` (0 for empty input).

    Returns:
        Loss in the dtype of ``logits``.

    Raises:
        TypeError: non-tensor / non-floating inputs.
        ValueError: shape / device mismatch, ``alpha < 0``, ``gamma < 0``, unknown reduction.
    """
    q, p, ce = sigmoid_bce_terms(logits, targets)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    weight = torch.where(q > 0, q, alpha * p.pow(gamma))
    return reduce_loss(weight * ce, reduction)
