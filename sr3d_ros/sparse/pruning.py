"""Pruning: keep the voxels selected by a boolean mask (``MinkowskiPruning``)."""

from __future__ import annotations

import torch
from torch import nn

from .tensor import SparseTensor, _require_sparse

__all__ = ["SparsePruning", "prune"]


def prune(x: SparseTensor, keep: torch.Tensor) -> SparseTensor:
    """Keep rows where ``keep`` is true, preserving row order and the tensor stride.

    Args:
        x: ``N`` voxels.
        keep: ``(N,)`` bool on ``x``'s device.

    Returns:
        A tensor on a new coordinate set of the same manager; gradients flow to kept rows.

    Raises:
        TypeError: ``x`` is not a :class:`SparseTensor`, or a non-bool mask.
        ValueError: wrong length.
    """
    _require_sparse(x, "prune")
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool:
        raise TypeError("keep must be a bool tensor")
    if keep.shape != (len(x),):
        raise ValueError(f"keep must have shape ({len(x)},), got {tuple(keep.shape)}")
    keep = keep.to(x.device)
    set_id = x.manager.prune(x.set_id, keep)
    return SparseTensor(x.features[keep], manager=x.manager, set_id=set_id)


class SparsePruning(nn.Module):
    """Module form of :func:`prune`: ``forward(x, keep)``."""

    def forward(self, x: SparseTensor, keep: torch.Tensor) -> SparseTensor:
        """:func:`prune`: rows of ``x`` ``(N, C)`` where ``keep`` ``(N,)`` bool is true.

        Raises:
            TypeError: ``x`` is not a :class:`SparseTensor`, or a non-bool mask.
            ValueError: wrong mask length.
        """
        return prune(x, keep)
