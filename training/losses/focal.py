"""Sigmoid focal loss (Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object Detection",
ICCV 2017, Sec. 3.1-3.2, eq. 5 with the alpha balance of Sec. 3.2)."""

from __future__ import annotations

from torch import Tensor

from ._common import Reduction, reduce_loss, sigmoid_bce_terms

__all__ = ["sigmoid_focal_loss"]


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    reduction: Reduction = "none",
) -> Tensor:
    """Sigmoid focal loss, element-wise over independent binary (per-class) problems.

    ``FL = alpha_t * (1 - p_t)^gamma * BCE(logit, t)`` with ``p = sigmoid(logit)``,
    ``p_t = p t + (1 - p)(1 - t)``, ``alpha_t = alpha t + (1 - alpha)(1 - t)``
    (Lin et al., ICCV 2017, eq. 5). For binary targets this is exactly
    ``-alpha (1-p)^gamma log p`` (t = 1) and ``-(1-alpha) p^gamma log(1-p)`` (t = 0); soft targets
    in ``[0, 1]`` use the same interpolated form (the torchvision / mmdet convention). The BCE is
    computed from the logit (``binary_cross_entropy_with_logits``: log-sum-exp stable), so large
    logits give finite values and gradients.

    Normalisation: the per-element losses are returned (``"none"``) or summed / averaged over
    all elements; dividing by the number of positive locations (the usual practice, Lin et al.
    Sec. 4) is the caller's job (e.g. the trainer, averaged across scenes / GPUs).

    Args:
        logits: ``(L, C)`` (any shape) float logits.
        targets: same shape, float in ``[0, 1]`` (one-hot for hard labels; all-zero rows for
            background).
        gamma: focusing parameter >= 0 (paper: 2.0).
        alpha: positive-class weight in ``[0, 1]`` (paper: 0.25); ``alpha < 0`` disables the
            balance (weight 1 for both classes).
        reduction: ``"none"`` (same shape as ``logits``), ``"sum"`` or ``"mean"`` (0 for empty
            input).

    Returns:
        Loss tensor in the dtype of ``logits``; differentiable w.r.t. ``logits`` (and
        ``targets`` if they require grad).

    Raises:
        TypeError: non-tensor or non-floating inputs.
        ValueError: shape / device mismatch, ``gamma < 0``, ``alpha > 1``, unknown reduction.
    """
    targets, p, ce = sigmoid_bce_terms(logits, targets)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if alpha > 1:
        raise ValueError(f"alpha must be <= 1 (or < 0 to disable), got {alpha}")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t).pow(gamma) if gamma != 0 else ce
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return reduce_loss(loss, reduction)
