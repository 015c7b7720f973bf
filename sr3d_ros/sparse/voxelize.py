"""Voxelization of metric points into sparse-tensor coordinates, and the inverse map back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .coordinates import CoordinatePacker

__all__ = ["Voxels", "voxelize"]

Reduction = Literal["mean", "first"]


@dataclass
class Voxels:
    """Result of :func:`voxelize`.

    Attributes:
        coordinates: ``(M, 4)`` int32 ``(batch, x, y, z)`` voxel indices, unique, sorted.
        features: ``(M, C)`` reduced per-voxel features (same dtype as the input).
        inverse: ``(N,)`` int64, the voxel row of every input point (``features[inverse]``
            gives each point its voxel's feature: the inverse map back to points).
        counts: ``(M,)`` int64 number of points per voxel.
    """

    coordinates: torch.Tensor
    features: torch.Tensor
    inverse: torch.Tensor
    counts: torch.Tensor


def voxelize(
    points: torch.Tensor,
    voxel_size: float,
    features: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    batch_index: int | torch.Tensor = 0,
) -> Voxels:
    """Quantise metric points to voxels: ``coordinate = floor(xyz / voxel_size)``.

    This is MinkowskiEngine's quantisation (``batched_coordinates`` floors ``xyz / voxel_size``),
    computed in the points' dtype. Points sharing a voxel are reduced:

    * ``"mean"`` (default): the unweighted average of their features, like ME's
      ``SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE`` used by TR3D;
    * ``"first"``: the features of the first point (in input order) in the voxel.

    On CUDA the ``"mean"`` sums are scatter-adds in no fixed order, so repeated calls may differ
    at float rounding level (as MinkowskiEngine's GPU quantisation does).

    Args:
        points: ``(N, 3)`` or ``(N, 3 + C)`` float xyz in metres (any frame; the detector
            expects a gravity-aligned one), optionally followed by features.
        voxel_size: edge length in metres, > 0.
        features: ``(N, C)`` float features; default: ``points[:, 3:]`` (or one constant 1 per
            point when ``points`` is ``(N, 3)``).
        reduction: ``"mean"`` or ``"first"``.
        batch_index: batch column value, an int or an ``(N,)`` integer tensor.

    Returns:
        :class:`Voxels` (coordinates sorted by (batch, x, y, z)).

    Raises:
        TypeError: non-floating points or features.
        ValueError: bad shapes, features on another device than the points, non-positive or
            non-finite voxel size, non-finite coordinates, voxel indices beyond int32, unknown
            reduction.
    """
    if not isinstance(points, torch.Tensor) or not points.dtype.is_floating_point:
        raise TypeError("points must be a floating-point torch.Tensor of shape (N, 3 + C)")
    if points.dim() != 2 or points.shape[1] < 3:
        raise ValueError(f"points must have shape (N, 3 + C), got {tuple(points.shape)}")
    if not (isinstance(voxel_size, (int, float)) and math.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(
            f"voxel_size must be a positive finite number of metres, got {voxel_size!r}"
        )
    if reduction not in ("mean", "first"):
        raise ValueError(f"unknown reduction {reduction!r}; use 'mean' or 'first'")
    xyz = points[:, :3]
    if features is None:
        features = points[:, 3:] if points.shape[1] > 3 else points.new_ones((points.shape[0], 1))
    if not isinstance(features, torch.Tensor) or not features.dtype.is_floating_point:
        raise TypeError(
            "features must be a floating-point torch.Tensor of shape (N, C), got "
            f"{features.dtype if isinstance(features, torch.Tensor) else type(features).__name__}"
        )
    if features.dim() != 2:
        raise ValueError(f"features must have shape (N, C), got {tuple(features.shape)}")
    if features.device != points.device:
        raise ValueError(f"features on {features.device} but points on {points.device}")
    if features.shape[0] != points.shape[0]:
        raise ValueError(f"{features.shape[0]} feature rows for {points.shape[0]} points")
    finite = torch.isfinite(xyz).all(dim=1)
    if not bool(finite.all()):
        raise ValueError(f"{int((~finite).sum())} points have NaN/inf coordinates; drop them first")
    grid = torch.floor(xyz / voxel_size)
    if grid.numel() and float(grid.abs().max()) >= 2**31:
        raise ValueError("voxel indices exceed int32: the cloud is too large for this voxel size")
    n = points.shape[0]
    batch = torch.as_tensor(batch_index, device=points.device).to(torch.int64).expand(n)
    coords = torch.cat([batch.unsqueeze(1), grid.to(torch.int64)], dim=1).to(torch.int32)
    packer = CoordinatePacker.fit(coords, margin=0)
    keys, inverse, counts = torch.unique(
        packer.pack(coords), sorted=True, return_inverse=True, return_counts=True
    )
    uniq = packer.unpack(keys)
    m = uniq.shape[0]
    if reduction == "mean":
        summed = features.new_zeros((m, features.shape[1])).index_add_(0, inverse, features)
        reduced = summed / counts.unsqueeze(1).to(features.dtype)
    else:
        # first occurrence of each voxel in input order
        order = torch.arange(n, device=points.device)
        first = torch.full((m,), n, dtype=torch.int64, device=points.device).scatter_reduce_(
            0, inverse, order, reduce="amin"
        )
        reduced = features[first]
    return Voxels(uniq, reduced, inverse, counts)
