"""Bounds on the work one point cloud may cause: crop box / max range, voxel budget.

The cost of the TR3D network is not set by the number of points but by the voxels its layers
touch. The neck upsamples generatively (kernel 3, stride 2: up to 27 new voxels around every
coarse voxel, no pruning), so a cloud whose points are isolated - spread over tens of metres, a
few outliers far away - makes the neck grow ~27x per level: 100k points over +-10 km needed
24 GB. :func:`crop_points` removes what the model cannot use before voxelisation (non-finite
values, points beyond ``max_range`` or outside the crop box) and :func:`check_voxel_budget`
predicts the voxel counts from the coordinates alone (cheap integer ops) and refuses a cloud
over budget before any feature is computed. Peak memory then stays bounded for any input
(``benchmarks/bench_node_memory.py`` measures it).

The neck-size prediction is our formulation: coordinates at tensor stride ``s`` (voxel units)
are the voxel indices floored to multiples of ``s``; the stride-64 -> 32 -> 16 generative
upsampling adds ``c + o * s_out`` for ``o`` in ``{-1, 0, 1}^3`` around each coarse coordinate
``c`` (MinkowskiEngine's transposed-kernel region at the output stride), united with the
backbone's coordinates at that stride.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

__all__ = [
    "CropCounts",
    "InputBudgetError",
    "InputLimits",
    "check_voxel_budget",
    "crop_points",
    "neck_voxel_counts",
]

#: Tensor strides (voxel units) of the backbone outputs the TR3D neck upsamples from/to.
_NECK_STRIDES = (16, 32, 64)
_OFFSETS = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), dtype=torch.int64)


class InputBudgetError(ValueError):
    """The cloud would need more voxels than the budget allows (message: counts and limits)."""


@dataclass(frozen=True)
class InputLimits:
    """What a cloud may cost (see the module docstring).

    Attributes:
        max_range: drop points farther than this (metres, Euclidean, from the origin of the
            detection frame: the gravity-aligned frame); 0 = no limit. Default 20 m suits the
            indoor models (rooms of a few metres).
        crop_box: ``()`` or ``(x_min, y_min, z_min, x_max, y_max, z_max)`` metres in the same
            frame; points outside are dropped.
        max_voxels: refuse clouds with more occupied voxels (input voxel size) than this.
        max_neck_voxels: refuse clouds whose predicted neck voxels (strides 32 + 16) exceed
            this (isolated, widely spread points).
    """

    max_range: float = 20.0
    crop_box: tuple[float, ...] = ()
    max_voxels: int = 400_000
    max_neck_voxels: int = 1_000_000

    def __post_init__(self) -> None:
        if not (self.max_range >= 0.0):
            raise ValueError(f"max_range must be >= 0 metres, got {self.max_range}")
        if self.crop_box and (
            len(self.crop_box) != 6
            or any(lo >= hi for lo, hi in zip(self.crop_box[:3], self.crop_box[3:], strict=True))
        ):
            raise ValueError(
                "crop_box must be () or (x_min, y_min, z_min, x_max, y_max, z_max) with "
                f"min < max, got {self.crop_box}"
            )
        if self.max_voxels < 1 or self.max_neck_voxels < 1:
            raise ValueError("max_voxels and max_neck_voxels must be >= 1")


@dataclass(frozen=True)
class CropCounts:
    """Points removed by :func:`crop_points`: ``non_finite`` (NaN/inf in any column) and
    ``out_of_range`` (beyond ``max_range`` or outside ``crop_box``)."""

    non_finite: int = 0
    out_of_range: int = 0


def crop_points(points: torch.Tensor, limits: InputLimits) -> tuple[torch.Tensor, CropCounts]:
    """Keep the rows the model can use.

    Args:
        points: ``(N, C)`` float tensor, columns 0..2 = x, y, z metres in the detection frame.
        limits: :class:`InputLimits` (``max_range``, ``crop_box``).

    Returns:
        ``(N', C)`` kept rows (same dtype / device, order kept) and the :class:`CropCounts`.
    """
    keep = torch.isfinite(points).all(dim=1)
    n_finite = int(keep.sum())
    xyz = points[:, :3]
    if limits.max_range > 0:
        keep &= (xyz * xyz).sum(dim=1) <= limits.max_range**2
    if limits.crop_box:
        lo = torch.tensor(limits.crop_box[:3], dtype=points.dtype, device=points.device)
        hi = torch.tensor(limits.crop_box[3:], dtype=points.dtype, device=points.device)
        keep &= ((xyz >= lo) & (xyz <= hi)).all(dim=1)
    n_kept = int(keep.sum())
    counts = CropCounts(len(points) - n_finite, n_finite - n_kept)
    return (points if n_kept == len(points) else points[keep]), counts


def _pack(coords: torch.Tensor, lo: torch.Tensor, radix: torch.Tensor) -> torch.Tensor:
    c = coords - lo
    return (c[:, 0] * radix[1] + c[:, 1]) * radix[2] + c[:, 2]


def neck_voxel_counts(voxels: torch.Tensor, limit: int | None = None) -> tuple[int, int]:
    """Predicted voxel counts of the TR3D neck outputs at strides 32 and 16.

    Args:
        voxels: ``(N, 3)`` int64 voxel indices (input voxel size; duplicates allowed).
        limit: once ``27 * n`` rows of a generation step would exceed ``4 * limit``, that step
            is not computed and ``27 * n`` (an upper bound, surely over ``limit``) is returned
            for it (and 0 for the next).

    Returns:
        ``(n_32, n_16)`` voxels.

    Raises:
        InputBudgetError: the coordinates span more than 2**20 coarse voxels per axis (points
            thousands of kilometres apart).
    """
    if len(voxels) == 0:
        return 0, 0
    lo = voxels.min(dim=0).values - 64
    radix = voxels.max(dim=0).values + 64 - lo + 1
    if bool((radix > 2**20 * 16).any()):
        raise InputBudgetError(
            f"the points span {radix.tolist()} voxels per axis: too spread out to detect in; "
            "reduce max_range / crop_box"
        )
    levels = {s: torch.div(voxels, s, rounding_mode="floor") * s for s in _NECK_STRIDES}
    x = levels[64][_unique_first(_pack(levels[64], lo, radix))[1]]
    counts: list[int] = []
    offsets = _OFFSETS.to(voxels.device)
    for s_out in (32, 16):
        if limit is not None and 27 * len(x) > 4 * limit:  # surely over: skip the allocation
            counts.append(27 * len(x))
            break
        gen = torch.cat([(x[:, None, :] + offsets[None] * s_out).reshape(-1, 3), levels[s_out]])
        keys, first = _unique_first(_pack(gen, lo, radix))
        x = gen[first]
        counts.append(len(keys))
    counts += [0] * (2 - len(counts))
    return counts[0], counts[1]


def _unique_first(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique ``keys`` and, for each, the index of one row holding it."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.empty(len(uniq), dtype=torch.int64, device=keys.device)
    first.scatter_(0, inverse, torch.arange(len(keys), device=keys.device))
    return uniq, first


def check_voxel_budget(voxels: torch.Tensor, limits: InputLimits) -> None:
    """Refuse a cloud whose voxels exceed the budget (before the network runs).

    Args:
        voxels: ``(N, 3)`` int64 voxel indices of the cloud's points (input voxel size;
            duplicates allowed, distinct voxels are counted).
        limits: ``max_voxels``, ``max_neck_voxels``.

    Raises:
        InputBudgetError: too many voxels, or too many predicted neck voxels (the message gives
            the count, the limit and what to do).
    """
    if len(voxels) > limits.max_voxels:  # more points than the cap: count distinct voxels
        lo = voxels.min(dim=0).values
        radix = voxels.max(dim=0).values - lo + 1
        if bool((radix > 2**20 * 16).any()):
            raise InputBudgetError(
                f"the points span {radix.tolist()} voxels per axis: too spread out to detect "
                "in; reduce max_range / crop_box"
            )
        n = int(torch.unique(_pack(voxels, lo, radix)).numel())
        if n > limits.max_voxels:
            raise InputBudgetError(
                f"{n} voxels > max_voxels {limits.max_voxels}: subsample the cloud or "
                "reduce max_range / crop_box"
            )
    n32, n16 = neck_voxel_counts(voxels, limits.max_neck_voxels)
    if n32 + n16 > limits.max_neck_voxels:
        raise InputBudgetError(
            f"the points are too spread out: ~{n32 + n16} neck voxels predicted > "
            f"max_neck_voxels {limits.max_neck_voxels} (isolated points far apart); reduce "
            "max_range / crop_box"
        )
