"""3D / BEV IoU, GIoU and DIoU of boxes — axis-aligned and rotated, vectorised and differentiable.

Boxes follow the convention documented once in :mod:`sr3d_ros.geometry.boxes`
(``(x, y, z, dx, dy, dz, yaw)``, geometric centre, full extents, yaw about +z, metres).

The front door is :func:`box_iou_3d` (pairwise ``(N, 7), (M, 7) -> (N, M)`` or aligned
``(..., 7), (..., 7) -> (...)``). ``rotated=None`` picks the exact rotated computation when any
yaw is non-zero and the axis-aligned fast path otherwise; ``rotated=False`` ignores yaw (the boxes
are read as axis-aligned), ``rotated=True`` always uses the polygon computation.

Rotated intersection (our implementation): the boxes are gravity-aligned, so the intersection of
two boxes is (BEV intersection polygon) x (overlap of the z intervals). The BEV intersection of
two convex quadrilaterals is a convex polygon whose vertices are among 24 candidates: the 4
corners of each box that lie inside the other box, and the 16 edge/edge crossing points. The
valid candidates are ordered by angle around their mean (the ordering is piecewise constant, so
it is computed without gradient) and the area is the shoelace formula over the ordered points.
Gradients therefore flow through the vertex positions, i.e. through every box parameter; all
divisions are guarded so identical, touching and disjoint boxes give finite gradients.

Every function: float16 / bfloat16 inputs are computed in float32 and cast back; float32 /
float64 natively; CPU or CUDA (no device-specific code). Bad input raises ``TypeError`` (not a
tensor, non-floating dtype, dtypes differ) or ``ValueError`` (wrong shape, negative / NaN size,
devices differ, aligned shapes not broadcastable).

(~480 lines on purpose: IoU, GIoU and DIoU and their losses are one job built on one shared
intersection core; about half of the file is the docstrings that define them.)
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from .boxes import broadcast_leading_shape, check_box_pair, enclosing_aabb

__all__ = [
    "aligned_box_iou_3d",
    "axis_aligned_iou_3d",
    "box_iou_3d",
    "box_iou_bev",
    "diou_3d",
    "diou_loss",
    "giou_3d",
    "giou_loss",
    "intersection_volume_3d",
    "rotated_iou_3d",
]

Reduction = Literal["none", "mean", "sum"]

# Pairs processed at once by the rotated pairwise path (bounds peak memory, ~2 KB per pair).
_PAIR_CHUNK = 1 << 16


# ----------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------
def _check_pair(b1: Tensor, b2: Tensor, aligned: bool) -> tuple[Tensor, Tensor]:
    """Validate two box tensors and return them as ``(..., 7)``; broadcast when aligned."""
    b1, b2 = check_box_pair(b1, b2)
    if aligned:
        shape = broadcast_leading_shape(b1, b2)
        b1 = b1.expand(shape + (7,))
        b2 = b2.expand(shape + (7,))
    elif b1.dim() != 2 or b2.dim() != 2:
        raise ValueError(
            f"pairwise IoU needs boxes1 (N, 7) and boxes2 (M, 7), got {tuple(b1.shape)} and "
            f"{tuple(b2.shape)} (use aligned=True for element-wise IoU)"
        )
    return b1, b2


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _resolve_rotated(b1: Tensor, b2: Tensor, rotated: bool | None) -> bool:
    if rotated is not None:
        return bool(rotated)
    with torch.no_grad():
        return bool((b1[..., 6] != 0).any()) or bool((b2[..., 6] != 0).any())


def _drop_yaw(b: Tensor) -> Tensor:
    return torch.cat([b[..., :6], b.new_zeros(b.shape[:-1] + (1,))], dim=-1)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0``, else 0; gradients stay finite (double-where)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def _tol(dtype: torch.dtype) -> float:
    """Relative tolerance of the rotated-polygon predicates (inside / parallel / on-segment)."""
    return 1e-10 if dtype == torch.float64 else 1e-5


# ----------------------------------------------------------------------------------------------
# intersections
# ----------------------------------------------------------------------------------------------
def _z_overlap(b1: Tensor, b2: Tensor) -> Tensor:
    top = torch.minimum(b1[..., 2] + 0.5 * b1[..., 5], b2[..., 2] + 0.5 * b2[..., 5])
    bottom = torch.maximum(b1[..., 2] - 0.5 * b1[..., 5], b2[..., 2] - 0.5 * b2[..., 5])
    return (top - bottom).clamp_min(0)


def _aa_intersection(b1: Tensor, b2: Tensor, bev: bool) -> Tensor:
    """Axis-aligned overlap volume (or BEV area) of broadcastable ``(..., 7)`` boxes (no yaw)."""
    k = 2 if bev else 3
    c1, h1 = b1[..., :k], 0.5 * b1[..., 3 : 3 + k]
    c2, h2 = b2[..., :k], 0.5 * b2[..., 3 : 3 + k]
    ext = (torch.minimum(c1 + h1, c2 + h2) - torch.maximum(c1 - h1, c2 - h2)).clamp_min(0)
    return ext.prod(dim=-1)


_SX = (-1.0, 1.0, 1.0, -1.0)  # BEV corner signs, counter-clockwise (see boxes.py)
_SY = (-1.0, -1.0, 1.0, 1.0)


def _bev_rect(b: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """BEV corners of ``(P, 7)`` boxes as two ``(P, 4)`` tensors (x, y), counter-clockwise."""
    lx = 0.5 * b[:, 3:4] * b.new_tensor(_SX)
    ly = 0.5 * b[:, 4:5] * b.new_tensor(_SY)
    return cos * lx - sin * ly + b[:, 0:1], sin * lx + cos * ly + b[:, 1:2]


def _inside(x: Tensor, y: Tensor, b: Tensor, cos: Tensor, sin: Tensor, eps: Tensor) -> Tensor:
    """Bool ``(P, K)``: points ``x, y (P, K)`` inside the BEV rectangle of ``b (P, 7)`` (+eps)."""
    px = x - b[:, 0:1]
    py = y - b[:, 1:2]
    qx = cos * px + sin * py
    qy = cos * py - sin * px
    return (qx.abs() <= 0.5 * b[:, 3:4] + eps) & (qy.abs() <= 0.5 * b[:, 4:5] + eps)


def _rotated_bev_area(b1: Tensor, b2: Tensor) -> Tensor:
    """Exact BEV intersection area of P box pairs, ``(P, 7), (P, 7) -> (P,)``; differentiable."""
    p = b1.shape[0]
    if p == 0:
        return b1.new_zeros(0) + 0 * b2.sum()
    tol = _tol(b1.dtype)
    # Work in a frame centred on box 1 (a detached shift: exact gradients, better rounding).
    origin = b1[:, :2].detach()
    b1 = torch.cat([b1[:, :2] - origin, b1[:, 2:]], dim=-1)
    b2 = torch.cat([b2[:, :2] - origin, b2[:, 2:]], dim=-1)
    c1, s1 = torch.cos(b1[:, 6:7]), torch.sin(b1[:, 6:7])
    c2, s2 = torch.cos(b2[:, 6:7]), torch.sin(b2[:, 6:7])
    x1, y1 = _bev_rect(b1, c1, s1)  # (P, 4) each, counter-clockwise
    x2, y2 = _bev_rect(b2, c2, s2)

    with torch.no_grad():
        scale = b1[:, 3:5].sum(-1) + b2[:, 3:5].sum(-1) + b2[:, :2].abs().amax(-1)
        eps = (tol * scale + torch.finfo(b1.dtype).tiny)[:, None]  # (P, 1), metres
        in1 = _inside(x1, y1, b2, c2, s2, eps)  # corners of box 1 inside box 2, (P, 4)
        in2 = _inside(x2, y2, b1, c1, s1, eps)

    # Edge / edge crossings: edge i of box 1 (a_i + t r_i) with edge j of box 2 (b_j + u s_j).
    rx = (torch.roll(x1, -1, dims=1) - x1)[:, :, None]  # (P, 4, 1)
    ry = (torch.roll(y1, -1, dims=1) - y1)[:, :, None]
    sx = (torch.roll(x2, -1, dims=1) - x2)[:, None, :]  # (P, 1, 4)
    sy = (torch.roll(y2, -1, dims=1) - y2)[:, None, :]
    wx = x2[:, None, :] - x1[:, :, None]  # (P, 4, 4)
    wy = y2[:, None, :] - y1[:, :, None]
    den = rx * sy - ry * sx
    with torch.no_grad():
        # |r| |s| = product of the box sides (rectangles), no square roots needed
        len_r = torch.stack([b1[:, 3], b1[:, 4], b1[:, 3], b1[:, 4]], dim=1)[:, :, None]
        len_s = torch.stack([b2[:, 3], b2[:, 4], b2[:, 3], b2[:, 4]], dim=1)[:, None, :]
        not_parallel = den.abs() > tol * len_r * len_s
    den_safe = torch.where(not_parallel, den, torch.ones_like(den))
    t = (wx * sy - wy * sx) / den_safe
    u = (wx * ry - wy * rx) / den_safe
    with torch.no_grad():
        hit = not_parallel & (t >= -tol) & (t <= 1 + tol) & (u >= -tol) & (u <= 1 + tol)
    t = torch.where(hit, t, torch.zeros_like(t))  # keeps unused points bounded
    cx = (x1[:, :, None] + t * rx).reshape(p, 16)
    cy = (y1[:, :, None] + t * ry).reshape(p, 16)

    px = torch.cat([x1, x2, cx], dim=1)  # (P, 24) candidate vertices
    py = torch.cat([y1, y2, cy], dim=1)
    valid = torch.cat([in1, in2, hit.reshape(p, 16)], dim=1)

    with torch.no_grad():
        vf = valid.to(px.dtype)
        count = vf.sum(-1, keepdim=True).clamp_min(1)
        mx = (px * vf).sum(-1, keepdim=True) / count  # (P, 1) mean of the valid vertices
        my = (py * vf).sum(-1, keepdim=True) / count
        angle = torch.atan2(py - my, px - mx)
        angle = torch.where(valid, angle, torch.full_like(angle, 10.0))  # invalid ones last
        angle, order = torch.sort(angle, dim=1)
        valid_sorted = angle < 5.0
    qx = torch.gather(px, 1, order) - mx
    qy = torch.gather(py, 1, order) - my
    # Pad with the first vertex: the padding adds zero-length edges and closes the polygon.
    qx = torch.where(valid_sorted, qx, qx[:, :1])
    qy = torch.where(valid_sorted, qy, qy[:, :1])
    area = 0.5 * (qx * torch.roll(qy, -1, dims=1) - torch.roll(qx, -1, dims=1) * qy).sum(-1)
    return area.clamp_min(0)


def _rotated_intersection(b1: Tensor, b2: Tensor, bev: bool) -> Tensor:
    """Rotated overlap volume (or BEV area) of ``P`` pairs ``(P, 7), (P, 7) -> (P,)``."""
    area = _rotated_bev_area(b1, b2)
    return area if bev else area * _z_overlap(b1, b2)


def _aligned_intersection(b1: Tensor, b2: Tensor, rotated: bool, bev: bool) -> Tensor:
    """Element-wise intersection of same-shape ``(..., 7)`` boxes -> ``(...)``."""
    if not rotated:
        return _aa_intersection(b1, b2, bev)
    shape = b1.shape[:-1]
    return _rotated_intersection(b1.reshape(-1, 7), b2.reshape(-1, 7), bev).reshape(shape)


def _pairwise_intersection(b1: Tensor, b2: Tensor, rotated: bool, bev: bool) -> Tensor:
    """Pairwise intersection ``(N, 7), (M, 7) -> (N, M)``.

    The rotated path only evaluates pairs whose BEV circumscribed circles (and, in 3D, z
    intervals) overlap; all other pairs are exactly 0.
    """
    n, m = b1.shape[0], b2.shape[0]
    if not rotated:
        return _aa_intersection(b1[:, None, :], b2[None, :, :], bev)
    out = b1.new_zeros((n, m))
    if n == 0 or m == 0:
        return out + 0 * (b1.sum() + b2.sum())
    with torch.no_grad():
        rad1 = 0.5 * torch.linalg.vector_norm(b1[:, 3:5], dim=-1)
        rad2 = 0.5 * torch.linalg.vector_norm(b2[:, 3:5], dim=-1)
        # explicit differences (cdist's matmul shortcut loses precision far from the origin)
        dist2 = ((b1[:, None, :2] - b2[None, :, :2]) ** 2).sum(-1)
        reach = (rad1[:, None] + rad2[None, :]) * (1 + 1e-3) + 1e-6
        cand = dist2 <= reach * reach
        if not bev:
            cand &= _z_overlap(b1[:, None, :], b2[None, :, :]) > 0
        ii, jj = cand.nonzero(as_tuple=True)
    if ii.numel() == 0:
        return out + 0 * (b1.sum() + b2.sum())
    vals = [
        _rotated_intersection(b1[ii[k : k + _PAIR_CHUNK]], b2[jj[k : k + _PAIR_CHUNK]], bev)
        for k in range(0, ii.numel(), _PAIR_CHUNK)
    ]
    return out.index_put((ii, jj), torch.cat(vals))


class _Overlap(NamedTuple):
    """What the IoU family needs of a box pair, in the compute dtype (float32 for half inputs)."""

    iou: Tensor
    intersection: Tensor
    union: Tensor
    rotated: bool  # whether the rotated (polygon) computation was used
    b1: Tensor  # the boxes as (..., 7), broadcast when aligned
    b2: Tensor


def _iou_impl(b1: Tensor, b2: Tensor, aligned: bool, rotated: bool | None, bev: bool) -> _Overlap:
    """Shared IoU core of every public function here."""
    b1, b2 = _check_pair(b1, b2, aligned)
    ct = _compute_dtype(b1.dtype)
    b1, b2 = b1.to(ct), b2.to(ct)
    rot = _resolve_rotated(b1, b2, rotated)
    if aligned:
        inter = _aligned_intersection(b1, b2, rot, bev)
        v1 = b1[..., 3] * b1[..., 4] * (1 if bev else b1[..., 5])
        v2 = b2[..., 3] * b2[..., 4] * (1 if bev else b2[..., 5])
    else:
        inter = _pairwise_intersection(b1, b2, rot, bev)
        v1 = (b1[:, 3] * b1[:, 4] * (1 if bev else b1[:, 5]))[:, None]
        v2 = (b2[:, 3] * b2[:, 4] * (1 if bev else b2[:, 5]))[None, :]
    union = v1 + v2 - inter
    # rounding can push identical rotated boxes a few ulps above 1
    return _Overlap(_safe_div(inter, union).clamp(max=1.0), inter, union, rot, b1, b2)


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def axis_aligned_iou_3d(boxes1: Tensor, boxes2: Tensor, aligned: bool = False) -> Tensor:
    """3D IoU of axis-aligned boxes (yaw, if present, is ignored).

    Args:
        boxes1: ``(N, 7)`` / ``(N, 6)`` (pairwise) or ``(..., 7)`` / ``(..., 6)`` (aligned);
            floating, metres, box convention of :mod:`sr3d_ros.geometry.boxes`.
        boxes2: ``(M, 7)`` / ``(M, 6)`` or broadcastable with ``boxes1`` when aligned.
        aligned: element-wise IoU instead of all pairs.

    Returns:
        ``(N, M)`` (pairwise) or the broadcast leading shape (aligned), in ``[0, 1]``, dtype of
        the input; differentiable w.r.t. centres and sizes. IoU of two empty boxes is 0.

    Raises:
        TypeError / ValueError: see the module docstring.
    """
    return _iou_impl(boxes1, boxes2, aligned, False, bev=False).iou.to(boxes1.dtype)


def rotated_iou_3d(boxes1: Tensor, boxes2: Tensor, aligned: bool = False) -> Tensor:
    """Exact 3D IoU of yawed boxes: BEV polygon intersection x z-overlap (our implementation).

    Args:
        boxes1: ``(N, 7)`` (pairwise) or ``(..., 7)`` (aligned) floating tensor, metres /
            radians, box convention of :mod:`sr3d_ros.geometry.boxes`; ``(..., 6)`` boxes are
            read as yaw 0.
        boxes2: ``(M, 7)`` (pairwise) or broadcastable with ``boxes1`` (aligned).
        aligned: element-wise IoU instead of all pairs.

    Returns:
        ``(N, M)`` or the broadcast leading shape, in ``[0, 1]``, dtype / device of the input.
        Differentiable w.r.t. all 7 parameters, with finite gradients for identical, touching
        and disjoint boxes. Agrees with an exact polygon computation to ~1e-12 in float64 and
        ~1e-5 in float32. Pairwise memory is bounded by chunking (~2 KB per overlapping pair).

    Raises:
        TypeError / ValueError: see :func:`box_iou_3d`.
    """
    return _iou_impl(boxes1, boxes2, aligned, True, bev=False).iou.to(boxes1.dtype)


def box_iou_3d(
    boxes1: Tensor, boxes2: Tensor, aligned: bool = False, rotated: bool | None = None
) -> Tensor:
    """3D IoU of boxes: the front door used by evaluation, NMS, assigners and losses.

    Args:
        boxes1: ``(N, 7)`` (pairwise) or ``(..., 7)`` (aligned) floating tensor, metres / radians,
            box convention of :mod:`sr3d_ros.geometry.boxes`; ``(..., 6)`` axis-aligned boxes
            are accepted (yaw 0).
        boxes2: ``(M, 7)`` (pairwise) or broadcastable with ``boxes1`` (aligned).
        aligned: ``False``: all pairs ``-> (N, M)``; ``True``: element-wise ``-> (...)``.
        rotated: ``None``: exact rotated IoU if any yaw != 0, else the axis-aligned fast path;
            ``True``: always rotated; ``False``: yaw ignored (boxes read as axis-aligned).

    Returns:
        IoU in ``[0, 1]``, dtype / device of the input; differentiable.

    Raises:
        TypeError: not tensors, non-floating or different dtypes.
        ValueError: wrong shapes, negative / NaN sizes, different devices.
    """
    return _iou_impl(boxes1, boxes2, aligned, rotated, bev=False).iou.to(boxes1.dtype)


def aligned_box_iou_3d(boxes1: Tensor, boxes2: Tensor, rotated: bool | None = None) -> Tensor:
    """Element-wise 3D IoU, ``box_iou_3d(boxes1, boxes2, aligned=True, rotated=rotated)``.

    Args:
        boxes1, boxes2: broadcastable ``(..., 7)`` / ``(..., 6)`` floating tensors.
        rotated: see :func:`box_iou_3d`.

    Returns:
        ``(...)`` IoU; differentiable.

    Raises:
        TypeError / ValueError: see :func:`box_iou_3d`.
    """
    return box_iou_3d(boxes1, boxes2, aligned=True, rotated=rotated)


def box_iou_bev(
    boxes1: Tensor, boxes2: Tensor, aligned: bool = False, rotated: bool | None = None
) -> Tensor:
    """Bird's-eye-view IoU (x-y footprints, area ratio); z and dz are ignored (KITTI BEV metric).

    Arguments, shapes, dtypes and errors are those of :func:`box_iou_3d`: ``(N, M)`` pairwise or
    ``(...)`` aligned IoU in ``[0, 1]``, differentiable.
    """
    return _iou_impl(boxes1, boxes2, aligned, rotated, bev=True).iou.to(boxes1.dtype)


def intersection_volume_3d(
    boxes1: Tensor, boxes2: Tensor, aligned: bool = False, rotated: bool | None = None
) -> Tensor:
    """Intersection volume (cubic metres) of boxes; shapes and ``rotated`` as :func:`box_iou_3d`.

    Returns:
        ``(N, M)`` or ``(...)`` tensor >= 0; differentiable.

    Raises:
        TypeError / ValueError: see :func:`box_iou_3d`.
    """
    overlap = _iou_impl(boxes1, boxes2, aligned, rotated, bev=False)
    return overlap.intersection.to(boxes1.dtype)


def _enclosing(b1: Tensor, b2: Tensor, rot: bool, aligned: bool) -> tuple[Tensor, Tensor]:
    if not rot:
        b1, b2 = _drop_yaw(b1), _drop_yaw(b2)
    if not aligned:
        b1, b2 = b1[:, None, :], b2[None, :, :]
    return enclosing_aabb(b1, b2)


def giou_3d(
    boxes1: Tensor, boxes2: Tensor, aligned: bool = False, rotated: bool | None = None
) -> Tensor:
    """Generalized IoU in 3D: ``IoU - (V_enc - V_union) / V_enc``, in ``[-1, 1]``.

    Source: Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019. Enclosing box
    (our choice for rotated boxes): the smallest box **axis-aligned in the world frame** that
    encloses the 16 corners of both boxes (for axis-aligned boxes this is the usual one).

    Args:
        boxes1, boxes2: as :func:`box_iou_3d`.
        aligned: element-wise (``True``) or all pairs (``False``).
        rotated: see :func:`box_iou_3d` (``False`` also ignores yaw in the enclosing box).

    Returns:
        ``(N, M)`` or ``(...)`` GIoU, dtype of the input; differentiable.

    Raises:
        TypeError / ValueError: see :func:`box_iou_3d`.
    """
    o = _iou_impl(boxes1, boxes2, aligned, rotated, bev=False)
    lo, hi = _enclosing(o.b1, o.b2, o.rotated, aligned)
    enc = (hi - lo).prod(dim=-1)
    return (o.iou - _safe_div(enc - o.union, enc)).to(boxes1.dtype)


def diou_3d(pred: Tensor, target: Tensor, rotated: bool | None = None) -> Tensor:
    """Distance-IoU of aligned box pairs: ``IoU - |c1 - c2|^2 / diag^2``, in ``[-1, 1]``.

    Source: Zheng et al., "Distance-IoU Loss", AAAI 2020, lifted to 3D (our formulation): the
    centre term is the full 3D squared distance of the geometric centres, ``diag`` the diagonal
    of the smallest world-axis-aligned box enclosing the corners of both boxes.

    Args:
        pred: ``(..., 7)`` / ``(..., 6)`` floating tensor (box convention of
            :mod:`sr3d_ros.geometry.boxes`).
        target: broadcastable with ``pred``.
        rotated: see :func:`box_iou_3d`.

    Returns:
        ``(...)`` DIoU (e.g. ``(N,)``), dtype of ``pred``; differentiable.

    Raises:
        TypeError / ValueError: see :func:`box_iou_3d`.
    """
    o = _iou_impl(pred, target, True, rotated, bev=False)
    lo, hi = _enclosing(o.b1, o.b2, o.rotated, True)
    diag2 = ((hi - lo) ** 2).sum(-1)
    dist2 = ((o.b1[..., :3] - o.b2[..., :3]) ** 2).sum(-1)
    return (o.iou - _safe_div(dist2, diag2)).to(pred.dtype)


def _reduce(x: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "none":
        return x
    if reduction == "mean":
        return x.mean() if x.numel() else x.sum()
    if reduction == "sum":
        return x.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def giou_loss(
    pred: Tensor, target: Tensor, rotated: bool | None = None, reduction: Reduction = "none"
) -> Tensor:
    """GIoU loss ``1 - giou_3d(pred, target, aligned=True)`` of aligned pairs, in ``[0, 2]``.

    Args:
        pred, target: broadcastable ``(..., 7)`` / ``(..., 6)`` floating tensors.
        rotated: see :func:`box_iou_3d`.
        reduction: ``"none"`` (shape ``(...)``), ``"mean"`` (0 for empty input) or ``"sum"``.

    Raises:
        TypeError / ValueError: see :func:`box_iou_3d`; unknown ``reduction``.
    """
    return _reduce(1 - giou_3d(pred, target, aligned=True, rotated=rotated), reduction)


def diou_loss(
    pred: Tensor, target: Tensor, rotated: bool | None = None, reduction: Reduction = "none"
) -> Tensor:
    """DIoU loss ``1 - diou_3d(pred, target)`` of aligned pairs, in ``[0, 2]``.

    Source: Zheng et al., AAAI 2020 (3D lifting: see :func:`diou_3d`). Arguments (``pred``,
    ``target``, ``rotated``, ``reduction``), shapes and errors are those of :func:`giou_loss`.
    """
    return _reduce(1 - diou_3d(pred, target, rotated=rotated), reduction)
