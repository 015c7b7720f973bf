"""Normalized vertex distance between boxes (the SPOTA matching cost; our formulation).

Boxes follow the convention of :mod:`sr3d_ros.geometry.boxes`; corners are compared in the
fixed order documented there (so the distance depends on the yaw parametrisation: a box and the
same box with ``yaw + pi`` are *not* at distance 0 — heading matters, which is what a box
regression target wants).

Definition (our formulation; the SR3D paper does not spell it out)::

    nvd(a, b) = mean_{k=0..7} |corner_k(a) - corner_k(b)|^2 / diag(a, b)^2

where ``diag(a, b)`` is the diagonal of the smallest world-axis-aligned box enclosing the 16
corners of both boxes. It is dimensionless, 0 for identical boxes, and at most 1 (every corner
pair lies inside the enclosing box).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import _corners_unchecked, to_7dof, validate_boxes

__all__ = ["normalized_vertex_distance", "normalized_vertex_distance_pairwise"]


def _check(b1: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    validate_boxes(b1, "pred", allow_6=True)
    validate_boxes(b2, "target", allow_6=True)
    if b1.dtype != b2.dtype:
        raise TypeError(f"pred and target must have the same dtype, got {b1.dtype} and {b2.dtype}")
    if b1.device != b2.device:
        raise ValueError(
            f"pred and target must be on the same device, got {b1.device} and {b2.device}"
        )
    return to_7dof(b1), to_7dof(b2)


def _nvd(c1: Tensor, c2: Tensor) -> Tensor:
    """Corners ``(..., 8, 3)`` (broadcastable) -> normalized vertex distance ``(...)``."""
    sq = ((c1 - c2) ** 2).sum(-1).mean(-1)
    lo = torch.minimum(c1.amin(-2), c2.amin(-2))
    hi = torch.maximum(c1.amax(-2), c2.amax(-2))
    diag2 = ((hi - lo) ** 2).sum(-1)
    ok = diag2 > 0
    safe = torch.where(ok, diag2, torch.ones_like(diag2))
    return torch.where(ok, sq / safe, torch.zeros_like(sq))


def normalized_vertex_distance(pred: Tensor, target: Tensor) -> Tensor:
    """Normalized vertex distance of aligned box pairs (definition in the module docstring).

    Args:
        pred: ``(..., 7)`` (or ``(..., 6)``, yaw 0) floating tensor, metres / radians.
        target: broadcastable with ``pred``, same dtype / device.

    Returns:
        ``(...)`` (e.g. ``(N,)``) dimensionless distance in ``[0, 1]``, dtype of the input;
        differentiable w.r.t. all box parameters (0 when both boxes are a single point).

    Raises:
        TypeError: not tensors, non-floating or different dtypes.
        ValueError: wrong last dimension, negative / NaN sizes, different devices,
            non-broadcastable shapes.
    """
    b1, b2 = _check(pred, target)
    try:
        torch.broadcast_shapes(b1.shape[:-1], b2.shape[:-1])
    except RuntimeError as err:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} are not broadcastable"
        ) from err
    return _nvd(_corners_unchecked(b1), _corners_unchecked(b2))


def normalized_vertex_distance_pairwise(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Normalized vertex distance of all pairs ``(N, 7), (M, 7) -> (N, M)``.

    Args:
        boxes1: ``(N, 7)`` / ``(N, 6)`` floating tensor.
        boxes2: ``(M, 7)`` / ``(M, 6)``, same dtype / device.

    Returns:
        ``(N, M)`` tensor in ``[0, 1]``; differentiable. Memory is ``O(N * M * 8 * 3)``.

    Raises:
        TypeError / ValueError: as :func:`normalized_vertex_distance`; inputs not 2-D.
    """
    b1, b2 = _check(boxes1, boxes2)
    if b1.dim() != 2 or b2.dim() != 2:
        raise ValueError(
            f"pairwise distance needs (N, 7) and (M, 7) boxes, got {tuple(boxes1.shape)} and "
            f"{tuple(boxes2.shape)}"
        )
    return _nvd(_corners_unchecked(b1)[:, None], _corners_unchecked(b2)[None, :])
