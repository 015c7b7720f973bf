"""Coordinate manager: the coordinate sets of one (batched) scene and cached kernel maps.

Every sparse tensor derived from one input (strided, generated, pruned, ...) shares one
:class:`CoordinateManager`. It stores each coordinate set once, and caches the strided set of a
set, and the kernel map of every ``(input set, output set, kernel size, dilation, kind)`` so that
all layers sharing them, and their backward passes, reuse one map (as MinkowskiEngine does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .coordinates import CoordinatePacker, check_coordinates, kernel_offsets, stride_coordinates
from .kernel_map import KernelMap

__all__ = ["CoordinateManager", "CoordinateSet"]

#: Kernel-map queries resolved per chunk (bounds the temporary memory of a map search).
_QUERIES_PER_CHUNK = 1 << 19


def _sort_keys(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(N,)`` int64 keys in ascending order, and the sorting permutation (``None`` when the
    keys already are in order)."""
    sorted_keys, order = torch.sort(keys)
    if sorted_keys.numel() <= 1 or bool((order[1:] > order[:-1]).all()):
        return sorted_keys, None
    return sorted_keys, order


@dataclass
class CoordinateSet:
    """One set of unique coordinates at one tensor stride.

    Attributes:
        coordinates: ``(N, 4)`` int32 ``(batch, x, y, z)`` in stride-1 voxel units.
        keys: ``(N,)`` int64 packed keys (row order = ``coordinates`` order).
        tensor_stride: spacing of the coordinates (x, y, z multiples of it).
        sorted_keys: ``keys`` in ascending order.
        order: permutation with ``keys[order] == sorted_keys``, or ``None`` if already sorted.
    """

    coordinates: torch.Tensor
    keys: torch.Tensor
    tensor_stride: int
    sorted_keys: torch.Tensor
    order: torch.Tensor | None

    def __len__(self) -> int:
        return int(self.keys.numel())

    def find(self, query_keys: torch.Tensor) -> torch.Tensor:
        """Row index of each query key, -1 where absent. ``(...,)`` int64 -> ``(...,)`` int64."""
        n = self.sorted_keys.numel()
        if n == 0:
            return torch.full_like(query_keys, -1)
        pos = torch.searchsorted(self.sorted_keys, query_keys).clamp_(max=n - 1)
        hit = self.sorted_keys[pos] == query_keys
        idx = pos if self.order is None else self.order[pos]
        return torch.where(hit, idx, torch.full_like(idx, -1))


class CoordinateManager:
    """Owns the coordinate sets of one batched scene and caches maps between them.

    Sets are referred to by integer ids. All tensors live on ``device`` (CPU or CUDA); no op
    moves data to the host except small scalars (sizes).
    """

    def __init__(self, packer: CoordinatePacker, device: torch.device) -> None:
        self.packer = packer
        self.device = device
        self._sets: list[CoordinateSet] = []
        self._strided: dict[tuple[int, int], int] = {}
        # (kind "conv" / "transposed", in set, out set, kernel size, dilation) -> map
        self._kernel_maps: dict[tuple[str, int, int, int, int], KernelMap] = {}
        self._generated: dict[tuple[int, int, int], tuple[int, KernelMap]] = {}
        self._unions: dict[tuple[int, ...], tuple[int, list[torch.Tensor]]] = {}

    # ------------------------------------------------------------------ sets
    @classmethod
    def from_coordinates(
        cls, coordinates: torch.Tensor, tensor_stride: int = 1
    ) -> tuple[CoordinateManager, int]:
        """Create a manager whose first set is ``coordinates`` ``(N, 4)`` (rows must be unique).

        Raises:
            TypeError / ValueError: see :func:`check_coordinates`; ValueError on duplicate rows,
                coordinates not multiples of ``tensor_stride``, or coordinates too large for
                the key packing.
        """
        coordinates = check_coordinates(coordinates)
        manager = cls(CoordinatePacker.fit(coordinates), coordinates.device)
        return manager, manager.add(coordinates, tensor_stride)

    def add(
        self, coordinates: torch.Tensor, tensor_stride: int, *, assume_unique_sorted: bool = False
    ) -> int:
        """Register a coordinate set and return its id.

        Args:
            coordinates: ``(N, 4)`` int32, unique rows, x/y/z multiples of ``tensor_stride``.
            tensor_stride: positive int.
            assume_unique_sorted: skip the uniqueness/order checks (internal callers that built
                the set with ``torch.unique``).

        Raises:
            ValueError: on duplicates, misaligned coordinates, or a bad ``tensor_stride``.
        """
        if tensor_stride < 1:
            raise ValueError(f"tensor_stride must be >= 1, got {tensor_stride}")
        coordinates = check_coordinates(coordinates).to(self.device)
        keys = self.packer.pack(coordinates)
        if assume_unique_sorted:
            sorted_keys, order = keys, None
        else:
            if (
                tensor_stride > 1
                and coordinates.numel()
                and bool((coordinates[:, 1:] % tensor_stride != 0).any())
            ):
                raise ValueError(f"coordinates are not multiples of tensor_stride={tensor_stride}")
            sorted_keys, order = _sort_keys(keys)
            if sorted_keys.numel() > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
                raise ValueError("duplicate coordinates: quantise with voxelize() first")
        self._sets.append(CoordinateSet(coordinates, keys, tensor_stride, sorted_keys, order))
        return len(self._sets) - 1

    def _add_keys(self, sorted_unique_keys: torch.Tensor, tensor_stride: int) -> int:
        coords = self.packer.unpack(sorted_unique_keys)
        self._sets.append(
            CoordinateSet(coords, sorted_unique_keys, tensor_stride, sorted_unique_keys, None)
        )
        return len(self._sets) - 1

    def get(self, set_id: int) -> CoordinateSet:
        """The :class:`CoordinateSet` with id ``set_id``."""
        return self._sets[set_id]

    def stride(self, set_id: int, factor: int) -> int:
        """Id of the set quantised to ``tensor_stride * factor`` (cached).

        Output coordinates are ``floor(c / s) * s`` (ME's strided convolution/pooling rule),
        deduplicated and sorted.
        """
        if factor == 1:
            return set_id
        cache_key = (set_id, factor)
        if cache_key not in self._strided:
            src = self._sets[set_id]
            new_stride = src.tensor_stride * factor
            strided = stride_coordinates(src.coordinates, new_stride)
            keys = torch.unique(self.packer.pack(strided), sorted=True)
            self._strided[cache_key] = self._add_keys(keys, new_stride)
        return self._strided[cache_key]

    def prune(self, set_id: int, keep: torch.Tensor) -> int:
        """Id of a new set holding the rows of ``set_id`` where ``keep`` ``(N,)`` bool is true
        (row order preserved)."""
        src = self._sets[set_id]
        keys = src.keys[keep]
        coords = src.coordinates[keep]
        sorted_keys, order = _sort_keys(keys)
        self._sets.append(CoordinateSet(coords, keys, src.tensor_stride, sorted_keys, order))
        return len(self._sets) - 1

    def union(self, set_ids: list[int]) -> tuple[int, list[torch.Tensor]]:
        """Union of sets at the same tensor stride.

        Returns:
            ``(out_id, rows)`` where ``rows[i]`` ``(N_i,)`` int64 gives, for every row of set
            ``set_ids[i]``, its row in the union set (sorted by key).

        Raises:
            ValueError: if the tensor strides differ.
        """
        strides = {self._sets[i].tensor_stride for i in set_ids}
        if len(strides) != 1:
            raise ValueError(
                f"cannot combine sparse tensors at different tensor strides {sorted(strides)}"
            )
        cached = self._unions.get(tuple(set_ids))
        if cached is not None:
            return cached
        all_keys = torch.cat([self._sets[i].keys for i in set_ids])
        uniq, inverse = torch.unique(all_keys, sorted=True, return_inverse=True)
        out_id = self._add_keys(uniq, strides.pop())
        rows = list(torch.split(inverse, [len(self._sets[i]) for i in set_ids]))
        self._unions[tuple(set_ids)] = (out_id, rows)
        return out_id, rows

    def lookup(self, set_id: int, coordinates: torch.Tensor) -> torch.Tensor:
        """Row of each query coordinate ``(M, 4)`` int in set ``set_id``; -1 where absent.

        Returns:
            ``(M,)`` int64.
        """
        coordinates = check_coordinates(coordinates, "query coordinates").to(self.device)
        inside = self.packer.contains(coordinates)
        result = torch.full((coordinates.shape[0],), -1, dtype=torch.int64, device=self.device)
        if bool(inside.any()):
            result[inside] = self._sets[set_id].find(self.packer.pack(coordinates[inside]))
        return result

    # ------------------------------------------------------------ kernel maps
    def _search_map(
        self, lookup_id: int, center_id: int, offsets: torch.Tensor, symmetric: bool
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Pairs (lookup row, centre row) with ``lookup = centre + offsets[k]``, grouped by k."""
        lookup = self._sets[lookup_id]
        center = self._sets[center_id]
        volume = offsets.shape[0]
        deltas = self.packer.delta(offsets.cpu()).to(self.device)  # range check on the host
        n_center = len(center)
        searched = volume // 2 if symmetric else volume
        # Search a few offsets at a time: bounded temporaries (~2^20 queries), sorted queries
        # within each offset keep searchsorted cache-friendly.
        step = max(1, _QUERIES_PER_CHUNK // max(n_center, 1))
        l_chunks, c_chunks, counts = [], [], []
        for start in range(0, searched, step):
            stop = min(start + step, searched)
            queries = center.keys.unsqueeze(0) + deltas[start:stop].unsqueeze(1)
            found = lookup.find(queries)
            hit = found >= 0
            counts.extend(hit.sum(dim=1).tolist())
            k_idx, c_idx_chunk = hit.nonzero(as_tuple=True)
            l_chunks.append(found[k_idx, c_idx_chunk])
            c_chunks.append(c_idx_chunk)
            del queries, found, hit, k_idx
        l_idx = (
            torch.cat(l_chunks)
            if l_chunks
            else torch.zeros(0, dtype=torch.int64, device=self.device)
        )
        c_idx = (
            torch.cat(c_chunks)
            if c_chunks
            else torch.zeros(0, dtype=torch.int64, device=self.device)
        )
        if not symmetric:
            return l_idx, c_idx, counts
        # Offsets k and V-1-k are opposite; with lookup == centre the pairs of V-1-k are those
        # of k swapped. The centre offset is the identity.
        ar = torch.arange(n_center, device=self.device)
        l_parts = list(torch.split(l_idx, counts))
        c_parts = list(torch.split(c_idx, counts))
        lookup_parts = l_parts + [ar] + [c_parts[k] for k in reversed(range(searched))]
        center_parts = c_parts + [ar] + [l_parts[k] for k in reversed(range(searched))]
        sizes = counts + [n_center] + list(reversed(counts))
        return torch.cat(lookup_parts), torch.cat(center_parts), sizes

    def _search_map_stride2_k3(
        self, in_id: int, out_id: int, offsets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The pairs of a 3x3x3 convolution from set ``in_id`` (stride s) to its strided set
        ``out_id`` (stride 2s), searched from the inputs' side; same pairs, grouped and ordered
        exactly as :meth:`_search_map` gives them for the same ``offsets`` (``(27, 3)``
        :func:`kernel_offsets` ``(3) * s``).

        Input ``c`` (``u = c / s`` per axis) pairs with output ``o = c - d * s`` at offset ``d``
        only where ``o`` is a multiple of 2s: ``d = 0`` on axes with even ``u``, ``d = +-1`` on
        odd ones. So an input has 1-8 candidate outputs (3.4 on average) instead of every output
        probing all 27 offsets: ~8x fewer key searches on real scans.
        """
        src, dst = self._sets[in_id], self._sets[out_id]
        s = src.tensor_stride
        deltas = self.packer.delta(offsets.cpu()).to(self.device)  # range check on the host
        offsets = offsets.to(self.device)
        odd = torch.remainder(torch.div(src.coordinates[:, 1:].long(), s, rounding_mode="floor"), 2)
        pattern = odd[:, 0] + 2 * odd[:, 1] + 4 * odd[:, 2]  # which axes are odd, per input
        need = ((offsets != 0).long() * torch.tensor([1, 2, 4], device=self.device)).sum(1)
        order = torch.argsort(pattern, stable=True)  # inputs grouped by pattern
        group = torch.bincount(pattern, minlength=8)
        starts = torch.cumsum(group, 0) - group
        # every (offset k, input of pattern need[k]) candidate in one flat batch of queries
        sizes = group[need]  # (27,) candidates per offset
        k_of = torch.repeat_interleave(torch.arange(27, device=self.device), sizes)
        first = torch.cumsum(sizes, 0) - sizes
        pos = torch.arange(k_of.numel(), device=self.device) - first[k_of] + starts[need][k_of]
        rows = order[pos]
        found = dst.find(src.keys[rows] - deltas[k_of])
        hit = torch.nonzero(found >= 0).squeeze(1)
        i, o, k_hit = (
            rows.index_select(0, hit),
            found.index_select(0, hit),
            k_of.index_select(0, hit),
        )
        # group by offset, output rows ascending within one (the order _search_map gives)
        perm = torch.argsort(k_hit * max(len(dst), 1) + o)
        counts = torch.bincount(k_hit, minlength=27).tolist()
        return i[perm], o[perm], counts

    def conv_kernel_map(
        self, in_id: int, out_id: int, kernel_size: int, dilation: int = 1
    ) -> KernelMap:
        """Kernel map of a convolution from set ``in_id`` to set ``out_id`` (cached).

        Pair ``(i, o)`` belongs to offset ``k`` when
        ``coord_in[i] = coord_out[o] + kernel_offsets(K)[k] * tensor_stride_in * dilation``
        (MinkowskiEngine's kernel map: the kernel is centred on the output coordinate).
        """
        key = ("conv", in_id, out_id, kernel_size, dilation)
        kmap = self._kernel_maps.get(key)
        if kmap is None:
            src, dst = self._sets[in_id], self._sets[out_id]
            offsets = kernel_offsets(kernel_size) * (src.tensor_stride * dilation)
            symmetric = in_id == out_id and kernel_size % 2 == 1
            if kernel_size == 3 and dilation == 1 and self._strided.get((in_id, 2)) == out_id:
                in_idx, out_idx, sizes = self._search_map_stride2_k3(in_id, out_id, offsets)
            else:
                in_idx, out_idx, sizes = self._search_map(in_id, out_id, offsets, symmetric)
            if symmetric:
                identity = offsets.shape[0] // 2
            elif in_id == out_id:
                # even kernel, stride 1: offset 0 is (0, 0, 0) and its pairs, searched like the
                # others, are exactly i -> i in row order; ops run it as a dense matmul
                identity = 0
            else:
                identity = None
            kmap = KernelMap(in_idx, out_idx, sizes, len(src), len(dst), identity)
            self._kernel_maps[key] = kmap
        return kmap

    def transposed_kernel_map(
        self, in_id: int, out_id: int, kernel_size: int, dilation: int = 1
    ) -> KernelMap:
        """Kernel map of a transposed convolution from coarse ``in_id`` to existing fine
        ``out_id`` (cached): ``coord_out[o] = coord_in[i] + offset[k] * ts_out * dilation`` with
        ``ts_out`` the tensor stride of ``out_id``.
        """
        key = ("transposed", in_id, out_id, kernel_size, dilation)
        kmap = self._kernel_maps.get(key)
        if kmap is None:
            src, dst = self._sets[in_id], self._sets[out_id]
            offsets = kernel_offsets(kernel_size) * (dst.tensor_stride * dilation)
            out_idx, in_idx, sizes = self._search_map(out_id, in_id, offsets, False)
            kmap = KernelMap(in_idx, out_idx, sizes, len(src), len(dst), None)
            self._kernel_maps[key] = kmap
        return kmap

    def generative_transposed(
        self, in_id: int, kernel_size: int, stride: int
    ) -> tuple[int, KernelMap]:
        """Generate the output set and kernel map of a generative transposed convolution (cached).

        Every input voxel ``c`` at tensor stride ``s`` emits outputs ``c + offset[k] * (s /
        stride)`` for every kernel offset ``k`` (for kernel 2 / stride 2: its 8 children), like
        ``MinkowskiGenerativeConvolutionTranspose``. The output set is the union, sorted.

        Raises:
            ValueError: if the input tensor stride is not divisible by ``stride``.
        """
        cache_key = (in_id, kernel_size, stride)
        if cache_key not in self._generated:
            src = self._sets[in_id]
            if stride < 1 or src.tensor_stride % stride != 0:
                raise ValueError(
                    f"cannot upsample tensor stride {src.tensor_stride} by {stride}: "
                    "it must divide it"
                )
            out_stride = src.tensor_stride // stride
            offsets = kernel_offsets(kernel_size) * out_stride  # host tensor: no device sync
            deltas = self.packer.delta(offsets).to(self.device)
            candidates = deltas.unsqueeze(1) + src.keys.unsqueeze(0)  # (V, N_in)
            uniq, inverse = torch.unique(candidates.reshape(-1), sorted=True, return_inverse=True)
            out_id = self._add_keys(uniq, out_stride)
            n_in = len(src)
            in_idx = torch.arange(n_in, device=self.device).repeat(deltas.numel())
            kmap = KernelMap(
                in_idx,
                inverse,
                [n_in] * deltas.numel(),
                n_in,
                int(uniq.numel()),
                None,
                dense_inputs=True,
            )
            self._generated[cache_key] = (out_id, kmap)
        return self._generated[cache_key]
