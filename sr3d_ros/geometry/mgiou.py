"""Marginalised generalised IoU (MGIoU) of yawed 3D boxes, and its loss.

Source: Le, Pham, Cai, Rezatofighi, "Marginalized Generalized IoU (MGIoU): A Unified Objective
Function for Optimizing Any Convex Parametric Shapes", arXiv 2504.16443, 2025 (method
section): project both shapes onto their unique face normals, take the 1-D GIoU of the two
projected intervals on each normal and average; the loss is ``(1 - MGIoU) / 2``. It is the 3D
box loss planned for the monocular detector.

For our gravity-aligned boxes (:mod:`sr3d_ros.geometry.boxes`: ``(x, y, z, dx, dy, dz, yaw)``,
yaw about +z) the normals are the two ground-plane face normals of each box,
``(cos yaw, sin yaw, 0)`` and ``(-sin yaw, cos yaw, 0)``, plus the vertical axis, which is a face
normal of both boxes and so counted once (the paper prunes duplicate normals): 5 axes. The
ground-plane normals of the two boxes are always all kept (4 terms), so MGIoU is continuous in
yaw. (The ``mgiou`` package's ``MGIoU3D`` projects on the 3 edge directions of each box without
pruning, i.e. the vertical term counts twice: ``6 * pkg = 5 * ours + giou_z``; the tests check
this identity.)

Projections are computed in closed form (no corners): on a unit axis ``a`` a box covers
``c . a +- (dx |a . e_x| + dy |a . e_y| + dz |a . e_z|) / 2``, and only the centre offset of
the two boxes enters, so far-from-origin boxes lose no precision. 1-D GIoU of intervals ``A, B``
with hull ``C``: ``|A n B| / |A u B| - (|C| - |A u B|) / |C|``, in ``[-1, 1]``.

MGIoU lies in ``[-1, 1]``: 1 for identical boxes, -> -1 for boxes far apart. Differentiable in
all 7 parameters, batched (aligned ``(..., 7)`` pairs or pairwise ``(N, 7) x (M, 7)``), float32 /
float64 natively, float16 / bfloat16 computed in float32. Errors as
:func:`sr3d_ros.geometry.boxes.validate_boxes` (``TypeError`` / ``ValueError``), plus
``ValueError`` for shapes that do not broadcast and unknown reductions.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .iou import _check_pair, _compute_dtype

__all__ = ["mgiou_3d", "mgiou_loss"]

Reduction = Literal["none", "mean", "sum"]


def _giou_1d(offset: Tensor, r1: Tensor, r2: Tensor) -> Tensor:
    """1-D GIoU of ``[-r1, r1]`` and ``[offset - r2, offset + r2]`` (half-lengths >= 0)."""
    lo2, hi2 = offset - r2, offset + r2
    inter = (torch.minimum(r1, hi2) - torch.maximum(-r1, lo2)).clamp(min=0)
    union = 2 * r1 + 2 * r2 - inter
    hull = torch.maximum(r1, hi2) - torch.minimum(-r1, lo2)
    tiny = torch.finfo(union.dtype).tiny
    return inter / union.clamp(min=tiny) - (hull - union) / hull.clamp(min=tiny)


def _mgiou(b1: Tensor, b2: Tensor) -> Tensor:
    """MGIoU of broadcastable ``(..., 7)`` boxes (already validated, compute dtype)."""
    d = b2[..., :3] - b1[..., :3]
    c1, s1 = torch.cos(b1[..., 6]), torch.sin(b1[..., 6])
    c2, s2 = torch.cos(b2[..., 6]), torch.sin(b2[..., 6])
    # |cos|, |sin| of the yaw difference, from the unit vectors (no angle wrapping needed)
    cd = (c1 * c2 + s1 * s2).abs()
    sd = (c1 * s2 - s1 * c2).abs()
    dx1, dy1, dz1 = b1[..., 3] / 2, b1[..., 4] / 2, b1[..., 5] / 2
    dx2, dy2, dz2 = b2[..., 3] / 2, b2[..., 4] / 2, b2[..., 5] / 2
    terms = (
        # box 1's x and y normals
        _giou_1d(d[..., 0] * c1 + d[..., 1] * s1, dx1, dx2 * cd + dy2 * sd),
        _giou_1d(-d[..., 0] * s1 + d[..., 1] * c1, dy1, dx2 * sd + dy2 * cd),
        # box 2's x and y normals
        _giou_1d(d[..., 0] * c2 + d[..., 1] * s2, dx1 * cd + dy1 * sd, dx2),
        _giou_1d(-d[..., 0] * s2 + d[..., 1] * c2, dx1 * sd + dy1 * cd, dy2),
        # the shared vertical normal
        _giou_1d(d[..., 2], dz1, dz2),
    )
    return torch.stack(terms, dim=-1).mean(dim=-1)


def mgiou_3d(boxes1: Tensor, boxes2: Tensor, aligned: bool = False) -> Tensor:
    """Marginalised generalised IoU of yawed 3D boxes (Le et al. 2025; see module docstring).

    Args:
        boxes1: ``(N, 7)`` (pairwise) or ``(..., 7)`` (aligned) floating tensor, metres /
            radians, box convention of :mod:`sr3d_ros.geometry.boxes`; ``(..., 6)`` boxes are
            read as yaw 0.
        boxes2: ``(M, 7)`` (pairwise) or broadcastable with ``boxes1`` (aligned).
        aligned: element-wise ``(...)`` instead of all pairs ``(N, M)``.

    Returns:
        MGIoU in ``[-1, 1]``, dtype / device of ``boxes1``; differentiable.

    Raises:
        TypeError: not tensors, non-floating or different dtypes.
        ValueError: wrong shapes, negative / NaN sizes, devices differ, not broadcastable,
            pairwise inputs that are not 2-D.
    """
    b1, b2 = _check_pair(boxes1, boxes2, aligned)
    ct = _compute_dtype(b1.dtype)
    b1, b2 = b1.to(ct), b2.to(ct)
    out = _mgiou(b1, b2) if aligned else _mgiou(b1[:, None, :], b2[None, :, :])
    return out.to(boxes1.dtype)


def mgiou_loss(pred: Tensor, target: Tensor, reduction: Reduction = "none") -> Tensor:
    """MGIoU loss ``(1 - mgiou_3d(pred, target, aligned=True)) / 2`` in ``[0, 1]``.

    Source: Le et al. 2025 (module docstring). 0 for identical boxes.

    Args:
        pred, target: broadcastable ``(..., 7)`` floating tensors (our box convention).
        reduction: ``"none"`` (shape ``(...)``), ``"mean"`` (0 for empty input) or ``"sum"``.

    Raises:
        TypeError / ValueError: see :func:`mgiou_3d`; unknown ``reduction``.
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    loss = 0.5 * (1 - mgiou_3d(pred, target, aligned=True))
    if reduction == "none":
        return loss
    if reduction == "mean" and loss.numel():
        return loss.mean()
    return loss.sum()
