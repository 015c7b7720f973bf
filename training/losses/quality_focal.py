"""Quality Focal Loss (Li et al., "Generalized Focal Loss: Learning Qualified and Distributed
Bounding Boxes for Dense Object Detection", NeurIPS 2020, Sec. 3, eq. 5)."""

from __future__ import annotations

from torch import Tensor

from ._common import Reduction, reduce_loss, sigmoid_bce_terms

__all__ = ["quality_focal_loss"]


def quality_focal_loss(
    logits: Tensor,
    targets: Tensor,
    beta: float = 2.0,
    reduction: Reduction = "none",
) -> Tensor:
    """QFL: ``|y - sigma|^beta * BCE(sigma, y)`` with a soft target ``y`` (GFL, eq. 5).

    ``QFL(sigma) = -|y - sigma|^beta ((1 - y) log(1 - sigma) + y log sigma)``,
    ``sigma = sigmoid(logit)``. In detection ``y`` is the IoU of the location's predicted box with
    its assigned GT at the GT's class, and 0 for every other class and for background. The BCE
    is computed from the logit (stable); the modulating factor is differentiated too (as in the
    paper's loss). Normalisation by the number of positives is the caller's job.

    Args:
        logits: ``(L, C)`` (any shape) float logits.
        targets: same shape, soft targets ``y`` in ``[0, 1]``.
        beta: modulating exponent >= 0 (paper: 2.0).
        reduction: ``"none"`` | ``"sum"`` | ``"mean"`` (0 for empty input).

    Returns:
        Loss in the dtype of ``logits``.

    Raises:
        TypeError: non-tensor / non-floating inputs.
        ValueError: shape / device mismatch, ``beta < 0``, unknown reduction.
    """
    targets, sigma, ce = sigmoid_bce_terms(logits, targets)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    return reduce_loss((targets - sigma).abs().pow(beta) * ce, reduction)
