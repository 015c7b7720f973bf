"""Sparse pooling: local max pooling and global (per batch entry) average / max pooling."""

from __future__ import annotations

import torch
from torch import nn

from .functional import sparse_max_pool
from .tensor import SparseTensor, _require_sparse

__all__ = ["SparseGlobalAvgPool", "SparseGlobalMaxPool", "SparseMaxPool3d", "global_pool"]


class SparseMaxPool3d(nn.Module):
    """Local max pooling (``MinkowskiMaxPooling``): per channel, the max over the kernel window.

    Output coordinates follow :class:`~sr3d_ros.sparse.conv.SparseConv3d`'s rule (for kernel 2,
    stride 2: the input quantised to ``2 * tensor_stride``; each output is the max of its
    existing children). Shapes: ``(N, C)`` -> ``(N_out, C)``.
    """

    def __init__(self, kernel_size: int = 2, stride: int = 2, dilation: int = 1) -> None:
        super().__init__()
        if kernel_size < 1 or stride < 1 or dilation < 1:
            raise ValueError("kernel_size, stride and dilation must be >= 1")
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Max-pool ``x``.

        Args:
            x: ``(N, C)`` floating features at tensor stride ``ts``.

        Returns:
            ``(N_out, C)`` at tensor stride ``ts * stride`` (floor-quantised coordinates); the
            gradient goes to each output's arg-max input row. N = 0 gives an empty result.

        Raises:
            TypeError: ``x`` is not a :class:`SparseTensor`.
        """
        _require_sparse(x, type(self).__name__)
        out_id = x.manager.stride(x.set_id, self.stride)
        kmap = x.manager.conv_kernel_map(x.set_id, out_id, self.kernel_size, self.dilation)
        return SparseTensor(sparse_max_pool(x.features, kmap), manager=x.manager, set_id=out_id)

    def extra_repr(self) -> str:
        """Layer settings shown in ``repr(module)``."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, dilation={self.dilation}"


def global_pool(x: SparseTensor, mode: str = "avg") -> torch.Tensor:
    """Pool all voxels of each batch entry.

    Args:
        x: sparse tensor with B batch entries.
        mode: ``"avg"`` (mean over the entry's voxels) or ``"max"`` (per-channel max).

    Returns:
        ``(B, C)`` dense features; entries without voxels are 0.

    Raises:
        TypeError: ``x`` is not a :class:`SparseTensor`. ValueError: unknown mode.
    """
    _require_sparse(x, "global_pool")
    if mode not in ("avg", "max"):
        raise ValueError(f"unknown global pooling mode {mode!r}")
    b = x.batch_size
    batch = x.coordinates[:, 0].to(torch.int64)
    channels = x.features.shape[1]
    if mode == "avg":
        sums = x.features.new_zeros((b, channels)).index_add(0, batch, x.features)
        counts = torch.bincount(batch, minlength=b).clamp_(min=1).to(x.features.dtype)
        return sums / counts.unsqueeze(1)
    out = x.features.new_zeros((b, channels)).scatter_reduce(
        0, batch.unsqueeze(1).expand(-1, channels), x.features, reduce="amax", include_self=False
    )
    return out


class _GlobalPool(nn.Module):
    mode = "avg"

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Pool each batch entry of ``x`` ``(N, C)`` to one voxel.

        Returns:
            ``(B, C)`` features on coordinates ``(b, 0, 0, 0)``, b = 0 .. B - 1, tensor stride
            0 (ME's origin set); B = 0 (an empty result) for N = 0.

        Raises:
            TypeError: ``x`` is not a :class:`SparseTensor`.
        """
        _require_sparse(x, type(self).__name__)
        pooled = global_pool(x, self.mode)
        b = pooled.shape[0]
        coords = torch.zeros((b, 4), dtype=torch.int32, device=x.device)
        coords[:, 0] = torch.arange(b, dtype=torch.int32, device=x.device)
        keys = x.manager.packer.pack(coords)
        set_id = x.manager._add_keys(keys, 0)  # the "origin" set, ME's tensor stride 0
        return SparseTensor(pooled, manager=x.manager, set_id=set_id)


class SparseGlobalAvgPool(_GlobalPool):
    """``MinkowskiGlobalAvgPooling``: one row ``(b, 0, 0, 0)`` per batch entry, mean features."""

    mode = "avg"


class SparseGlobalMaxPool(_GlobalPool):
    """``MinkowskiGlobalMaxPooling``: one row ``(b, 0, 0, 0)`` per batch entry, max features."""

    mode = "max"
