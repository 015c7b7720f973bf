"""Integer voxel coordinates: validation, kernel offsets in MinkowskiEngine order, key packing.

Coordinates are ``(N, 4)`` int32 rows ``(batch, x, y, z)`` in voxel units of the *finest* grid
(tensor stride 1). A tensor at tensor stride ``s`` only holds coordinates whose x, y, z are
multiples of ``s`` (MinkowskiEngine's convention).

Key packing turns a row into one int64 so that coordinate sets can be sorted and searched with
plain torch ops (``torch.unique``, ``torch.searchsorted``) on CPU and CUDA alike. The packing is
mixed-radix over per-dimension ranges measured from the data plus a margin, so adding a kernel
offset to a coordinate is adding a constant to its key (no carries while inside the margin).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import torch

__all__ = [
    "KEY_MARGIN",
    "CoordinatePacker",
    "check_coordinates",
    "kernel_offsets",
    "stride_coordinates",
]

#: Margin (voxel units of stride 1) kept around the measured extent of a scene so that kernel
#: offsets and generated children never leave the packed range. It bounds the largest kernel
#: reach ``(kernel_size // 2) * tensor_stride * dilation`` an op may use.
KEY_MARGIN = 4096

_MAX_KEY_BITS = 62


def check_coordinates(coordinates: torch.Tensor, name: str = "coordinates") -> torch.Tensor:
    """Validate and normalise voxel coordinates.

    Args:
        coordinates: ``(N, 4)`` integer tensor ``(batch, x, y, z)``, voxel units. Any integer
            dtype is accepted; floating point is rejected (quantise with
            :func:`sr3d_ros.sparse.voxelize` first).
        name: name used in error messages.

    Returns:
        ``(N, 4)`` int32 contiguous tensor on the same device.

    Raises:
        TypeError: if ``coordinates`` is not a tensor or not of an integer dtype.
        ValueError: on a wrong shape, a negative batch index, or values beyond int32.
    """
    if not isinstance(coordinates, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(coordinates).__name__}")
    if (
        coordinates.dtype.is_floating_point
        or coordinates.dtype.is_complex
        or coordinates.dtype == torch.bool
    ):
        raise TypeError(
            f"{name} must have an integer dtype (voxel indices), got {coordinates.dtype}; "
            "quantise metric points with sr3d_ros.sparse.voxelize()"
        )
    if coordinates.dim() != 2 or coordinates.shape[1] != 4:
        raise ValueError(
            f"{name} must have shape (N, 4) = (batch, x, y, z), got {tuple(coordinates.shape)}"
        )
    if coordinates.numel() > 0:
        lo = int(coordinates.min())
        hi = int(coordinates.max())
        if lo < -(2**31) or hi >= 2**31:
            raise ValueError(f"{name} exceed the int32 range: min {lo}, max {hi}")
        if int(coordinates[:, 0].min()) < 0:
            raise ValueError(f"{name}: batch indices (column 0) must be >= 0")
    return coordinates.to(torch.int32).contiguous()


def kernel_offsets(kernel_size: int, dim: int = 3) -> torch.Tensor:
    """Kernel offsets of a hyper-cube kernel, in MinkowskiEngine's kernel-offset order.

    The offset index ``k`` enumerates the kernel volume with the **first spatial axis (x)
    varying fastest**: ``k = ix + K * iy + K**2 * iz``. Per axis the offsets are
    ``-(K // 2) .. K // 2`` for an odd kernel size and ``0 .. K - 1`` for an even one (ME's
    ``kernel_region``). Multiply by ``tensor_stride * dilation`` to get voxel offsets. Weight
    ``W[k]`` of a convolution multiplies the input at ``output + offset[k]``.

    Args:
        kernel_size: K >= 1.
        dim: number of spatial dimensions (3).

    Returns:
        ``(K**dim, dim)`` int64 tensor of unit offsets.

    Raises:
        ValueError: if ``kernel_size < 1``.
    """
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    if kernel_size % 2 == 1:
        axis = list(range(-(kernel_size // 2), kernel_size // 2 + 1))
    else:
        axis = list(range(kernel_size))
    # itertools.product varies the last factor fastest; reverse so that x varies fastest.
    rows = [tuple(reversed(p)) for p in product(axis, repeat=dim)]
    return torch.tensor(rows, dtype=torch.int64)


def stride_coordinates(coordinates: torch.Tensor, tensor_stride: int) -> torch.Tensor:
    """Quantise coordinates to a coarser tensor stride: ``floor(c / s) * s`` per spatial axis.

    This is MinkowskiEngine's rule for the output coordinates of a strided convolution or
    pooling (negative coordinates round towards -inf).

    Args:
        coordinates: ``(N, 4)`` int32 ``(batch, x, y, z)``.
        tensor_stride: the output tensor stride ``s >= 1``.

    Returns:
        ``(N, 4)`` int32, batch column unchanged (rows are *not* deduplicated).
    """
    out = coordinates.clone()
    out[:, 1:] = torch.div(coordinates[:, 1:], tensor_stride, rounding_mode="floor") * tensor_stride
    return out


@dataclass(frozen=True)
class CoordinatePacker:
    """Mixed-radix packing of ``(batch, x, y, z)`` rows into sortable int64 keys.

    ``key = ((b * RX + (x - x0)) * RY + (y - y0)) * RZ + (z - z0)`` where ``(x0, y0, z0)`` is the
    measured minimum minus :data:`KEY_MARGIN` and ``R*`` the ranges plus twice the margin. Keys
    preserve lexicographic order of ``(b, x, y, z)``.
    """

    origin: tuple[int, int, int]
    ranges: tuple[int, int, int]
    num_batches: int

    @staticmethod
    def fit(coordinates: torch.Tensor, margin: int = KEY_MARGIN) -> CoordinatePacker:
        """Measure the extent of ``coordinates`` ``(N, 4)`` int32 and build a packer.

        Raises:
            ValueError: if the packed keys would not fit in 62 bits (coordinates too large or a
                batch index too high for the key packing).
        """
        if coordinates.numel() == 0:
            return CoordinatePacker((-margin, -margin, -margin), (2 * margin + 1,) * 3, 1)
        lo = coordinates.min(dim=0).values.tolist()
        hi = coordinates.max(dim=0).values.tolist()
        origin = tuple(int(lo[i]) - margin for i in (1, 2, 3))
        ranges = tuple(int(hi[i]) - int(lo[i]) + 1 + 2 * margin for i in (1, 2, 3))
        num_batches = int(hi[0]) + 1
        bits = (
            sum(max(int(r) - 1, 1).bit_length() for r in ranges)
            + max(num_batches - 1, 1).bit_length()
        )
        if bits > _MAX_KEY_BITS:
            raise ValueError(
                "coordinates too large for the key packing: extent "
                f"{[hi[i] - lo[i] + 1 for i in (1, 2, 3)]} voxels and {num_batches} batches need "
                f"{bits} bits (> {_MAX_KEY_BITS}); use a larger voxel size or crop the cloud"
            )
        return CoordinatePacker(origin, ranges, num_batches)  # type: ignore[arg-type]

    def contains(self, coordinates: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: rows inside the packed range (others can be in no coordinate set)."""
        ok = (coordinates[:, 0] >= 0) & (coordinates[:, 0] < self.num_batches)
        for axis in range(3):
            c = coordinates[:, axis + 1]
            ok &= (c >= self.origin[axis]) & (c < self.origin[axis] + self.ranges[axis])
        return ok

    def pack(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Pack ``(N, 4)`` int rows into ``(N,)`` int64 keys.

        Raises:
            ValueError: if a row lies outside the packed range.
        """
        if coordinates.numel() and not bool(self.contains(coordinates).all()):
            raise ValueError(
                "coordinates outside the range measured for this coordinate manager "
                f"(origin {self.origin}, ranges {self.ranges}, batches {self.num_batches})"
            )
        c = coordinates.to(torch.int64)
        rx, ry, rz = self.ranges
        key = c[:, 0] * rx + (c[:, 1] - self.origin[0])
        key = key * ry + (c[:, 2] - self.origin[1])
        return key * rz + (c[:, 3] - self.origin[2])

    def unpack(self, keys: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`pack`: ``(N,)`` int64 keys to ``(N, 4)`` int32 rows."""
        rx, ry, rz = self.ranges
        z = keys % rz
        rest = keys // rz
        y = rest % ry
        rest = rest // ry
        x = rest % rx
        b = rest // rx
        out = torch.stack((b, x + self.origin[0], y + self.origin[1], z + self.origin[2]), dim=1)
        return out.to(torch.int32)

    def delta(self, offsets: torch.Tensor) -> torch.Tensor:
        """Key increments of spatial voxel offsets ``(V, 3)`` int64 -> ``(V,)`` int64.

        Raises:
            ValueError: if an offset exceeds :data:`KEY_MARGIN` (kernel reach too large).
        """
        if offsets.numel() and int(offsets.abs().max()) > KEY_MARGIN:
            raise ValueError(
                f"kernel reach {int(offsets.abs().max())} exceeds KEY_MARGIN={KEY_MARGIN}"
            )
        _, ry, rz = self.ranges
        return (offsets[:, 0] * ry + offsets[:, 1]) * rz + offsets[:, 2]
