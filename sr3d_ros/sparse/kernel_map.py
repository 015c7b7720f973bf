"""Kernel maps: the (input row, output row) pairs of a sparse op, grouped by kernel offset."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["KernelMap", "PaddedPairs"]


@dataclass(frozen=True)
class PaddedPairs:
    """The pairs of a kernel map's non-identity offsets as one padded batch (for ops that run
    all offsets at once: one gather, one batched matmul, one scatter).

    Attributes:
        offsets: ``(V',)`` int64 kernel-offset indices of the rows (offsets with pairs, the
            identity offset excluded), on the map's device.
        in_idx: ``(V', M)`` int64 input rows, ``M`` = the largest pair count of those offsets;
            padding points at row ``N_in`` (one zero row appended to the inputs).
        out_idx: ``(V', M)`` int64 output rows; padding points at row ``N_out`` (one scratch
            row appended to the outputs).
    """

    offsets: torch.Tensor
    in_idx: torch.Tensor
    out_idx: torch.Tensor


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
    _padded: PaddedPairs | None = field(default=None, repr=False)

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

    def padded_pairs(self) -> PaddedPairs:
        """The non-identity pairs as a padded ``(V', M)`` batch (:class:`PaddedPairs`; built
        once per map, on the map's device, then cached)."""
        if self._padded is None:
            device = self.in_idx.device
            ks = [k for k, n in enumerate(self.sizes) if n > 0 and k != self.identity]
            counts = [self.sizes[k] for k in ks]
            width = max(counts, default=0)
            in_pad = torch.full((len(ks), width), self.num_in, dtype=torch.int64, device=device)
            out_pad = torch.full((len(ks), width), self.num_out, dtype=torch.int64, device=device)
            if ks:
                # pair p of the map belongs to offset offset_of[p]; the kept pairs, in map order,
                # fill row r (the r-th kept offset) from column 0
                sizes = torch.tensor(self.sizes, device=device)
                offset_of = torch.repeat_interleave(torch.arange(self.volume, device=device), sizes)
                kept = sizes > 0
                if self.identity is not None:
                    kept[self.identity] = False
                row_of_offset = torch.cumsum(kept.long(), 0) - 1
                pair_kept = kept[offset_of]
                rows = row_of_offset[offset_of[pair_kept]]
                first = torch.tensor(self._starts[:-1], device=device)[offset_of[pair_kept]]
                cols = torch.nonzero(pair_kept).squeeze(1) - first
                in_pad[rows, cols] = self.in_idx[pair_kept]
                out_pad[rows, cols] = self.out_idx[pair_kept]
            offsets = torch.tensor(ks, dtype=torch.int64, device=device)
            self._padded = PaddedPairs(offsets, in_pad, out_pad)
        return self._padded

    def transposed(self) -> KernelMap:
        """The same pairs with input and output swapped (the map of the transposed op)."""
        return KernelMap(
            self.out_idx, self.in_idx, list(self.sizes), self.num_out, self.num_in, self.identity
        )
