"""3D box representation, conversions, corners and volumes (ROS-free, pure torch).

Box convention (used by every function in :mod:`sr3d_ros.geometry` and, by reference, by the
rest of the project)
------------------------------------------------------------------------------------------
A box is a tensor ``(..., 7) = (x, y, z, dx, dy, dz, yaw)``:

* frame: gravity-aligned, right-handed, **z up**; units are **metres** and **radians**;
* ``(x, y, z)`` is the **geometric centre** of the box (not the bottom centre; see
  :func:`bottom_center_to_center` / :func:`center_to_bottom_center` for datasets that store the
  bottom centre, e.g. KITTI / mmdetection3d LiDAR boxes);
* ``(dx, dy, dz)`` are the **full extents** along the box's own x / y / z axes *before* rotation
  (must be >= 0);
* ``yaw`` is the rotation about **+z**, counter-clockwise seen from above; the box's own x-axis
  points along ``(cos yaw, sin yaw, 0)`` and its y-axis along ``(-sin yaw, cos yaw, 0)``;
* axis-aligned boxes are ``yaw = 0``. Where a function says so, ``(..., 6)`` boxes
  ``(x, y, z, dx, dy, dz)`` are accepted too and read as ``yaw = 0`` (see :func:`to_7dof`).

Corner order (:func:`box_corners`): the bottom face (``-dz/2``) counter-clockwise seen from
above, starting at the box's local ``(-dx/2, -dy/2)`` corner, then the top face (``+dz/2``) in the
same order. In box-local coordinates::

    index :  0     1     2     3     4     5     6     7
    x     : -dx/2 +dx/2 +dx/2 -dx/2 -dx/2 +dx/2 +dx/2 -dx/2
    y     : -dy/2 -dy/2 +dy/2 +dy/2 -dy/2 -dy/2 +dy/2 +dy/2
    z     : -dz/2 -dz/2 -dz/2 -dz/2 +dz/2 +dz/2 +dz/2 +dz/2

so ``corners[..., :4, :2]`` is the box's bird's-eye-view (BEV) polygon in counter-clockwise
order, ``corners[..., i + 4]`` lies straight above ``corners[..., i]``, and the 12 edges are
``(i, (i+1) % 4)``, ``(i + 4, (i+1) % 4 + 4)`` and ``(i, i + 4)`` for ``i`` in ``0..3``.

Every function here is vectorised over leading dimensions, differentiable, and device / dtype
agnostic (float16 / bfloat16 / float32 / float64; CPU or CUDA). Bad input raises ``TypeError``
(not a tensor, non-floating dtype) or ``ValueError`` (wrong last dimension, negative or NaN
sizes).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "AA_BOX_DIM",
    "BOX_DIM",
    "CORNER_SIGNS",
    "bottom_center_to_center",
    "box_bev_corners",
    "box_corners",
    "box_volume",
    "broadcast_leading_shape",
    "center_to_bottom_center",
    "check_box_pair",
    "enclosing_aabb",
    "limit_yaw",
    "to_7dof",
    "validate_boxes",
]

BOX_DIM = 7
AA_BOX_DIM = 6

#: Signs of the corners in box-local coordinates, (8, 3); see the module docstring.
CORNER_SIGNS: tuple[tuple[float, float, float], ...] = (
    (-1.0, -1.0, -1.0),
    (1.0, -1.0, -1.0),
    (1.0, 1.0, -1.0),
    (-1.0, 1.0, -1.0),
    (-1.0, -1.0, 1.0),
    (1.0, -1.0, 1.0),
    (1.0, 1.0, 1.0),
    (-1.0, 1.0, 1.0),
)


def validate_boxes(
    boxes: Tensor,
    name: str = "boxes",
    *,
    allow_6: bool = False,
    check_sizes: bool = True,
) -> None:
    """Check that ``boxes`` follows the box convention of :mod:`sr3d_ros.geometry.boxes`.

    Args:
        boxes: tensor ``(..., 7)`` (or ``(..., 6)`` when ``allow_6``), floating dtype.
        name: argument name used in error messages.
        allow_6: also accept axis-aligned ``(..., 6)`` boxes.
        check_sizes: check that ``dx, dy, dz >= 0`` (one host sync on CUDA).

    Raises:
        TypeError: ``boxes`` is not a ``torch.Tensor`` or its dtype is not floating point.
        ValueError: wrong last dimension, or a negative / NaN size.
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(boxes).__name__}")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {boxes.dtype}")
    dims = (BOX_DIM, AA_BOX_DIM) if allow_6 else (BOX_DIM,)
    if boxes.dim() < 1 or boxes.shape[-1] not in dims:
        want = " or ".join(f"(..., {d})" for d in dims)
        raise ValueError(f"{name} must have shape {want}, got {tuple(boxes.shape)}")
    if check_sizes and boxes.numel() > 0:
        sizes = boxes[..., 3:6].detach()
        if bool((~(sizes >= 0)).any()):  # also catches NaN
            raise ValueError(f"{name} has negative or NaN sizes (dx, dy, dz must be >= 0)")


def to_7dof(boxes: Tensor) -> Tensor:
    """Return ``(..., 7)`` boxes: ``(..., 6)`` axis-aligned boxes get ``yaw = 0`` appended.

    Args:
        boxes: ``(..., 6)`` or ``(..., 7)`` floating tensor (box convention: module docstring).

    Returns:
        ``(..., 7)`` tensor, same dtype / device; ``(..., 7)`` input is returned as is.

    Raises:
        TypeError / ValueError: see :func:`validate_boxes` (sizes are not checked here).
    """
    validate_boxes(boxes, allow_6=True, check_sizes=False)
    if boxes.shape[-1] == BOX_DIM:
        return boxes
    return torch.cat([boxes, boxes.new_zeros(boxes.shape[:-1] + (1,))], dim=-1)


def check_box_pair(
    boxes1: Tensor, boxes2: Tensor, names: tuple[str, str] = ("boxes1", "boxes2")
) -> tuple[Tensor, Tensor]:
    """Validate two box tensors that a function combines, and read both as ``(..., 7)``.

    Shapes other than the last dimension are not compared (pairwise functions need none;
    element-wise ones use :func:`broadcast_leading_shape`).

    Args:
        boxes1, boxes2: ``(..., 7)`` / ``(..., 6)`` floating tensors (box convention: module
            docstring), of one dtype and on one device.
        names: the two argument names used in error messages.

    Returns:
        ``(b1, b2)``: both as ``(..., 7)`` (see :func:`to_7dof`), same dtype / device.

    Raises:
        TypeError: not tensors, non-floating or different dtypes.
        ValueError: wrong last dimension, negative / NaN sizes, different devices.
    """
    n1, n2 = names
    validate_boxes(boxes1, n1, allow_6=True)
    validate_boxes(boxes2, n2, allow_6=True)
    if boxes1.dtype != boxes2.dtype:
        raise TypeError(
            f"{n1} and {n2} must have the same dtype, got {boxes1.dtype} and {boxes2.dtype}"
        )
    if boxes1.device != boxes2.device:
        raise ValueError(
            f"{n1} and {n2} must be on the same device, got {boxes1.device} and {boxes2.device}"
        )
    return to_7dof(boxes1), to_7dof(boxes2)


def broadcast_leading_shape(
    boxes1: Tensor, boxes2: Tensor, names: tuple[str, str] = ("boxes1", "boxes2")
) -> tuple[int, ...]:
    """Broadcast shape of the leading (batch) dimensions of two ``(..., 7)`` box tensors.

    Raises:
        ValueError: the leading shapes do not broadcast (message names both arguments).
    """
    try:
        return tuple(np.broadcast_shapes(tuple(boxes1.shape[:-1]), tuple(boxes2.shape[:-1])))
    except ValueError as err:
        raise ValueError(
            f"{names[0]} {tuple(boxes1.shape)} and {names[1]} {tuple(boxes2.shape)} must have "
            "broadcastable leading shapes"
        ) from err


def bottom_center_to_center(boxes: Tensor) -> Tensor:
    """Convert boxes whose ``z`` is the bottom-face centre to geometric-centre boxes (``z + dz/2``).

    Args:
        boxes: ``(..., 7)`` or ``(..., 6)`` floating tensor, metres; ``z`` = bottom centre.

    Returns:
        New tensor of the same shape / dtype / device with ``z`` = geometric centre.

    Raises:
        TypeError / ValueError: see :func:`validate_boxes` (sizes are not checked).
    """
    validate_boxes(boxes, allow_6=True, check_sizes=False)
    out = boxes.clone()
    out[..., 2] = boxes[..., 2] + 0.5 * boxes[..., 5]
    return out


def center_to_bottom_center(boxes: Tensor) -> Tensor:
    """Convert geometric-centre boxes to bottom-face-centre boxes (``z - dz/2``).

    Inverse of :func:`bottom_center_to_center`.

    Args:
        boxes: ``(..., 7)`` or ``(..., 6)`` floating tensor, metres; ``z`` = geometric centre.

    Returns:
        New tensor of the same shape / dtype / device with ``z`` = bottom-face centre.

    Raises:
        TypeError / ValueError: see :func:`validate_boxes` (sizes are not checked).
    """
    validate_boxes(boxes, allow_6=True, check_sizes=False)
    out = boxes.clone()
    out[..., 2] = boxes[..., 2] - 0.5 * boxes[..., 5]
    return out


def limit_yaw(yaw: Tensor | float, offset: float = 0.5, period: float = 2 * math.pi) -> Tensor:
    """Wrap angles into ``[-offset * period, (1 - offset) * period)``.

    ``yaw - floor(yaw / period + offset) * period``; with the defaults the result lies in
    ``[-pi, pi)``; ``offset=0, period=pi`` gives ``[0, pi)`` (heading-free orientation).

    Args:
        yaw: angles in radians, any shape (a Python float is turned into a 0-d tensor).
        offset: fraction of the period below zero that the output range starts at.
        period: wrap period in radians (> 0).

    Returns:
        Tensor of the same shape as ``yaw`` (floating dtype).

    Raises:
        ValueError: ``period <= 0``.
        TypeError: ``yaw`` is a tensor with a non-floating dtype.
    """
    if period <= 0:
        raise ValueError(f"period must be > 0, got {period}")
    if not isinstance(yaw, Tensor):
        yaw = torch.as_tensor(yaw, dtype=torch.get_default_dtype())
    if not yaw.is_floating_point():
        raise TypeError(f"yaw must have a floating dtype, got {yaw.dtype}")
    return yaw - torch.floor(yaw / period + offset) * period


def _corner_signs(boxes: Tensor) -> Tensor:
    return torch.tensor(CORNER_SIGNS, dtype=boxes.dtype, device=boxes.device)


def _corners_unchecked(boxes: Tensor, bev: bool = False) -> Tensor:
    """Corners of already-validated ``(..., 7)`` boxes; ``(..., 8, 3)`` or ``(..., 4, 2)``."""
    signs = _corner_signs(boxes)
    if bev:
        local = 0.5 * boxes[..., None, 3:5] * signs[:4, :2]  # (..., 4, 2)
    else:
        local = 0.5 * boxes[..., None, 3:6] * signs  # (..., 8, 3)
    cos = torch.cos(boxes[..., 6])[..., None]
    sin = torch.sin(boxes[..., 6])[..., None]
    lx, ly = local[..., 0], local[..., 1]
    out = [cos * lx - sin * ly + boxes[..., None, 0], sin * lx + cos * ly + boxes[..., None, 1]]
    if not bev:
        out.append(local[..., 2] + boxes[..., None, 2])
    return torch.stack(out, dim=-1)


def box_corners(boxes: Tensor) -> Tensor:
    """The 8 corners of each box, in the order documented in the module docstring.

    Args:
        boxes: ``(..., 7)`` (or axis-aligned ``(..., 6)``) floating tensor, metres / radians.

    Returns:
        ``(..., 8, 3)`` corners in the boxes' (world) frame, same dtype / device; differentiable
        w.r.t. all 7 box parameters.

    Raises:
        TypeError / ValueError: see :func:`validate_boxes`.
    """
    validate_boxes(boxes, allow_6=True)
    return _corners_unchecked(to_7dof(boxes))


def box_bev_corners(boxes: Tensor) -> Tensor:
    """Bird's-eye-view polygon of each box: its 4 bottom corners' ``(x, y)``, counter-clockwise.

    Same as ``box_corners(boxes)[..., :4, :2]`` (order in the module docstring), cheaper.

    Args:
        boxes: ``(..., 7)`` (or ``(..., 6)``) floating tensor.

    Returns:
        ``(..., 4, 2)`` tensor, metres, same dtype / device; differentiable.

    Raises:
        TypeError / ValueError: see :func:`validate_boxes`.
    """
    validate_boxes(boxes, allow_6=True)
    return _corners_unchecked(to_7dof(boxes), bev=True)


def box_volume(boxes: Tensor) -> Tensor:
    """Volume ``dx * dy * dz`` of each box (cubic metres).

    Args:
        boxes: ``(..., 7)`` or ``(..., 6)`` floating tensor.

    Returns:
        ``(...)`` tensor, same dtype / device; differentiable.

    Raises:
        TypeError / ValueError: see :func:`validate_boxes`.
    """
    validate_boxes(boxes, allow_6=True)
    return boxes[..., 3] * boxes[..., 4] * boxes[..., 5]


def enclosing_aabb(*boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Smallest world-axis-aligned box enclosing the corners of all given boxes.

    Boxes are broadcast against each other; e.g. ``enclosing_aabb(a, b)`` with ``a, b`` of
    shape ``(N, 7)`` gives the per-pair enclosing box, ``(N, 1, 7)`` and ``(1, M, 7)`` the
    pairwise one. Used by GIoU / DIoU / normalized vertex distance (our formulation: the
    enclosing box is axis-aligned in the world frame, also for rotated boxes).

    Args:
        *boxes: one or more ``(..., 7)`` / ``(..., 6)`` floating tensors, broadcastable.

    Returns:
        ``(lo, hi)``: two ``(..., 3)`` tensors, the min and max corner (metres); differentiable.

    Raises:
        ValueError: no boxes given, or see :func:`validate_boxes`.
        TypeError: see :func:`validate_boxes`.
    """
    if not boxes:
        raise ValueError("enclosing_aabb needs at least one boxes tensor")
    for i, b in enumerate(boxes):
        validate_boxes(b, f"boxes[{i}]", allow_6=True)
    corners = [_corners_unchecked(to_7dof(b)) for b in boxes]
    lo = corners[0].amin(dim=-2)
    hi = corners[0].amax(dim=-2)
    for c in corners[1:]:
        lo = torch.minimum(lo, c.amin(dim=-2))
        hi = torch.maximum(hi, c.amax(dim=-2))
    return lo, hi
