"""The sparse tensor: unique integer coordinates + one feature row per coordinate."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .coordinates import check_coordinates
from .manager import CoordinateManager

__all__ = ["SparseTensor", "sparse_collate"]


def _require_sparse(x: object, owner: str) -> None:
    """Raise TypeError naming ``owner`` unless ``x`` is a :class:`SparseTensor`."""
    if not isinstance(x, SparseTensor):
        raise TypeError(f"{owner} expects a SparseTensor, got {type(x).__name__}")


class SparseTensor:
    """Features on a sparse set of voxels (MinkowskiEngine's ``SparseTensor`` semantics).

    Args:
        features: ``(N, C)`` float tensor, row i belongs to coordinate row i.
        coordinates: ``(N, 4)`` integer ``(batch, x, y, z)`` in stride-1 voxel units, unique rows
            whose x, y, z are multiples of ``tensor_stride``. Omit it when passing
            ``manager`` + ``set_id`` (tensors derived inside the engine).
        tensor_stride: voxel spacing of this tensor (1 for the input).
        manager / set_id: internal: share the coordinate manager of another tensor.

    Raises:
        TypeError: non-tensor or non-floating features, non-integer coordinates.
        ValueError: shape mismatch between features and coordinates, duplicates, features on
            another device than the coordinates.
    """

    __slots__ = ("features", "manager", "set_id")

    def __init__(
        self,
        features: torch.Tensor,
        coordinates: torch.Tensor | None = None,
        tensor_stride: int = 1,
        *,
        manager: CoordinateManager | None = None,
        set_id: int | None = None,
    ) -> None:
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
        if not features.dtype.is_floating_point:
            raise TypeError(f"features must be floating point, got {features.dtype}")
        if features.dim() != 2:
            raise ValueError(f"features must have shape (N, C), got {tuple(features.shape)}")
        if manager is None:
            if coordinates is None:
                raise ValueError("either coordinates or (manager, set_id) is required")
            coordinates = check_coordinates(coordinates)
            if coordinates.shape[0] != features.shape[0]:
                raise ValueError(
                    f"feature count {features.shape[0]} != coordinate count {coordinates.shape[0]}"
                )
            if coordinates.device != features.device:
                raise ValueError(
                    f"features on {features.device} but coordinates on {coordinates.device}"
                )
            manager, set_id = CoordinateManager.from_coordinates(coordinates, tensor_stride)
        elif set_id is None:
            raise ValueError("set_id is required with manager")
        elif len(manager.get(set_id)) != features.shape[0]:
            raise ValueError(
                f"feature count {features.shape[0]} != coordinate count {len(manager.get(set_id))}"
            )
        self.features = features
        self.manager = manager
        self.set_id = set_id

    # ----------------------------------------------------------------- properties
    @property
    def coordinates(self) -> torch.Tensor:
        """``(N, 4)`` int32 ``(batch, x, y, z)``, stride-1 voxel units."""
        return self.manager.get(self.set_id).coordinates

    @property
    def tensor_stride(self) -> int:
        """Voxel spacing (int, in stride-1 voxels) of this tensor's coordinates; 0 for the
        one-voxel-per-batch-entry output of global pooling."""
        return self.manager.get(self.set_id).tensor_stride

    @property
    def F(self) -> torch.Tensor:
        """Alias of :attr:`features` ``(N, C)`` (MinkowskiEngine naming)."""
        return self.features

    @property
    def C(self) -> torch.Tensor:
        """Alias of :attr:`coordinates` ``(N, 4)`` int32 (MinkowskiEngine naming)."""
        return self.coordinates

    @property
    def device(self) -> torch.device:
        """Device of the features (and of the coordinates and kernel maps: one device)."""
        return self.features.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the features (coordinates are always int32)."""
        return self.features.dtype

    @property
    def batch_size(self) -> int:
        """Number of batch entries (max batch index + 1; 0 for an empty tensor)."""
        return self.manager.packer.num_batches if len(self) else 0

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __repr__(self) -> str:
        return (
            f"SparseTensor(N={len(self)}, C={self.features.shape[1]}, "
            f"tensor_stride={self.tensor_stride}, dtype={self.dtype}, device={self.device})"
        )

    # --------------------------------------------------------------------- algebra
    def replace_features(self, features: torch.Tensor) -> SparseTensor:
        """Same coordinates, new ``(N, C')`` floating features.

        Raises:
            TypeError: non-floating features. ValueError: row count != N.
        """
        return SparseTensor(features, manager=self.manager, set_id=self.set_id)

    def __add__(self, other: SparseTensor) -> SparseTensor:
        """Element-wise sum. Same coordinate set: features add. Different sets of one manager at
        the same tensor stride: the result lives on their union (missing rows count as 0), as
        in MinkowskiEngine.

        Raises:
            ValueError: different managers, tensor strides or channel counts.
        """
        if not isinstance(other, SparseTensor):
            return NotImplemented
        if other.manager is not self.manager:
            raise ValueError("cannot add sparse tensors from different coordinate managers")
        if other.features.shape[1] != self.features.shape[1]:
            raise ValueError(
                f"channel mismatch {self.features.shape[1]} vs {other.features.shape[1]}"
            )
        if other.set_id == self.set_id:
            return self.replace_features(self.features + other.features)
        out_id, (rows_a, rows_b) = self.manager.union([self.set_id, other.set_id])
        n = len(self.manager.get(out_id))
        out = self.features.new_zeros((n, self.features.shape[1]))
        out = out.index_add(0, rows_a, self.features).index_add(0, rows_b, other.features)
        return SparseTensor(out, manager=self.manager, set_id=out_id)

    # ----------------------------------------------------------------- lookups
    def lookup(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Row of each query ``(M, 4)`` integer coordinate in this tensor, -1 where absent.

        Returns:
            ``(M,)`` int64 (``M = 0`` gives an empty result).

        Raises:
            TypeError / ValueError: malformed coordinates (see ``check_coordinates``).
        """
        return self.manager.lookup(self.set_id, coordinates)

    def features_at(self, coordinates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features at given coordinates.

        Args:
            coordinates: ``(M, 4)`` integer ``(batch, x, y, z)``.

        Returns:
            ``(features (M, C), found (M,) bool)``; rows not present are zero; ``M = 0`` gives
            empty results.

        Raises:
            TypeError / ValueError: malformed coordinates (see ``check_coordinates``).
        """
        rows = self.lookup(coordinates)
        found = rows >= 0
        out = self.features.new_zeros((rows.shape[0], self.features.shape[1]))
        out[found] = self.features[rows[found]]
        return out, found

    def decompose(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Split by batch index.

        Returns:
            One ``(coordinates (N_b, 3) int32 xyz, features (N_b, C))`` pair per batch entry
            ``0 .. batch_size - 1`` (empty tensors for missing entries), in row order.
        """
        coords = self.coordinates
        out = []
        for b in range(self.batch_size):
            mask = coords[:, 0] == b
            out.append((coords[mask, 1:], self.features[mask]))
        return out

    def batch_rows(self) -> list[torch.Tensor]:
        """``(N_b,)`` int64 row indices of each batch entry."""
        batch = self.coordinates[:, 0]
        return [torch.nonzero(batch == b, as_tuple=True)[0] for b in range(self.batch_size)]


def sparse_collate(
    coordinates: Sequence[torch.Tensor], features: Sequence[torch.Tensor], tensor_stride: int = 1
) -> SparseTensor:
    """Batch per-sample voxels into one :class:`SparseTensor`.

    Args:
        coordinates: per sample ``(N_i, 3)`` integer voxel coordinates (unique within a sample).
        features: per sample ``(N_i, C)`` float features (same C, dtype and device).
        tensor_stride: stride of all samples.

    Returns:
        A tensor whose coordinates are ``(i, x, y, z)`` for sample i.

    Raises:
        ValueError: on mismatched lengths or shapes, or an empty list.
    """
    if len(coordinates) != len(features):
        raise ValueError(
            f"{len(coordinates)} coordinate tensors but {len(features)} feature tensors"
        )
    if len(coordinates) == 0:
        raise ValueError("sparse_collate needs at least one sample")
    rows = []
    for i, (c, f) in enumerate(zip(coordinates, features)):
        if c.dim() != 2 or c.shape[1] != 3:
            raise ValueError(f"sample {i}: coordinates must be (N, 3), got {tuple(c.shape)}")
        if f.shape[0] != c.shape[0]:
            raise ValueError(f"sample {i}: {f.shape[0]} feature rows for {c.shape[0]} coordinates")
        if c.dtype.is_floating_point:
            raise TypeError(f"sample {i}: coordinates must be integer voxel indices, got {c.dtype}")
        batch = torch.full((c.shape[0], 1), i, dtype=torch.int32, device=c.device)
        rows.append(torch.cat([batch, c.to(torch.int32)], dim=1))
    return SparseTensor(torch.cat(list(features), dim=0), torch.cat(rows, dim=0), tensor_stride)
