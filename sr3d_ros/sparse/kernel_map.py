"""Kernel maps: the (input row, output row) pairs of a sparse op, grouped by kernel offset."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["KernelMap"]


@dataclass
class KernelMap:
    """Input/output row pairs of a sparse convolution or pooling, grouped by kernel offset.

    Pairs of offset ``k`` are ``in_idx[start_k:end_k]`` / ``out_idx[start_k:end_k]`` with
    ``start_k = sum(sizes[:k])``. Within one offset every output row and every input row appears
    at most once, so per-offset scatters never collide. Offsets follow
    :func:`sr3d_ros.sparse.coordinates.kernel_offsets` order, which is MinkowskiEngine's.

    Attributes:
        in_idx: ``(P,)`` int64 rows of the input features.
        out_idx: ``(P,)`` int64 rows of the output features.
        sizes: pair count per kernel offset (length = kernel volume).
        num_in: number of input rows ``N_in``.
        num_out: number of output rows ``N_out``.
        identity: index of an offset whose pairs are exactly ``i -> i`` for all rows (the centre
            of a stride-1 convolution on one coordinate set), which ops run as a dense matmul
            without gather/scatter; ``None`` if there is none.
        dense_inputs: every offset's input rows are exactly ``0 .. N_in - 1`` in order (a
            generative transposed convolution: every input emits to every offset), so ops use
            the input features without gathering them.
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    sizes: list[int]
    num_in: int
    num_out: int
    identity: int | None = None
    dense_inputs: bool = False
    _starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        starts = [0]
        for s in self.sizes:
            starts.append(starts[-1] + s)
        self._starts = starts
        if starts[-1] != self.in_idx.numel() or self.in_idx.numel() != self.out_idx.numel():
            raise ValueError("kernel map sizes do not match its index tensors")

    @property
    def volume(self) -> int:
        """Kernel volume V (number of offsets)."""
        return len(self.sizes)

    @property
    def num_pairs(self) -> int:
        """Total number of (input, output) pairs P."""
        return self._starts[-1]

    def pairs(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(in_idx_k, out_idx_k)`` int64 views of offset ``k``."""
        a, b = self._starts[k], self._starts[k + 1]
        return self.in_idx[a:b], self.out_idx[a:b]

    def transposed(self) -> KernelMap:
        """The same pairs with input and output swapped (the map of the transposed op)."""
        return KernelMap(
            self.out_idx, self.in_idx, list(self.sizes), self.num_out, self.num_in, self.identity
        )
