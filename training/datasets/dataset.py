"""The dataset protocol every loader of :mod:`sr3d_training.datasets` satisfies."""

from __future__ import annotations

from typing import Protocol

from .sample import Sample

__all__ = ["SampleDataset"]


class SampleDataset(Protocol):
    """``len(ds)`` samples and ``ds[i]`` -> :class:`~sr3d_training.datasets.Sample` (``i`` in
    ``[0, len(ds))``; loaders raise FileNotFoundError / ValueError naming a broken file)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...
