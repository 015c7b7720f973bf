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

from .boxes import _corners_unchecked, broadcast_leading_shape, check_box_pair

__all__ = ["normalized_vertex_distance", "normalized_vertex_distance_pairwise"]


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
    b1, b2 = check_box_pair(pred, target, ("pred", "target"))
    broadcast_leading_shape(b1, b2, ("pred", "target"))
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
    b1, b2 = check_box_pair(boxes1, boxes2)
    if b1.dim() != 2 or b2.dim() != 2:
        raise ValueError(
            f"pairwise distance needs (N, 7) and (M, 7) boxes, got {tuple(boxes1.shape)} and "
            f"{tuple(boxes2.shape)}"
        )
    return _nvd(_corners_unchecked(b1)[:, None], _corners_unchecked(b2)[None, :])
