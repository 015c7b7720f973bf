"""Shared helpers of the classification losses: input checks and reductions."""

from __future__ import annotations

from typing import Literal

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
