"""Training on several sources at once: the benchmark data of the config plus extracted bag
datasets (:mod:`sr3d_training.datasets.bag`), mixed with per-source weights.

Mixing rule (our formulation): an epoch keeps the benchmark's length ``E = len(benchmark) *
data.repeat`` (without benchmark ids: the bag sources' total length times ``repeat``); source
``s`` with weight ``w_s`` fills ``round(E * w_s / sum(w))`` of it (the benchmark's weight is
``data.weight``, 1 by default), cycling through a fixed seeded permutation of its samples and
starting each epoch where the previous one stopped, so a source smaller than its share is
repeated and a larger one is covered over the epochs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sr3d_ros.config import ConfigError

from .bag import BagDataset
from .dataset import SampleDataset
from .kitti import KITTI_CLASSES
from .sample import Sample

__all__ = ["DataSourceConfig", "MixedDataset", "bag_sources", "parse_data_spec"]


@dataclasses.dataclass(frozen=True)
class DataSourceConfig:
    """An extracted bag dataset to train on (a ``data.sources`` entry, or ``--data bag:DIR``).

    Attributes:
        path: the dataset folder (relative: to the config file's folder).
        weight: share of each epoch, relative to the benchmark's 1 (> 0).
        class_map: ``{name in the bag dataset: model class name, or null to drop it}``; names
            neither mapped nor among the model's classes are dropped.
        min_score: drop labels scoring below (pseudo-labels; ground truth scores 1).
    """

    path: str
    weight: float = 1.0
    class_map: dict[str, str | None] = dataclasses.field(default_factory=dict)
    min_score: float = 0.0

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ConfigError(f"data.sources: weight must be > 0, got {self.weight}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"data.sources: min_score must lie in [0, 1], got {self.min_score}")


def parse_data_spec(spec: str) -> DataSourceConfig:
    """``bag:DIR`` or ``bag:DIR@WEIGHT`` (the ``--data`` option) -> :class:`DataSourceConfig`
    with the absolute path.

    Raises:
        ValueError: another prefix, or a weight that is not a positive number.
    """
    kind, sep, rest = spec.partition(":")
    if kind != "bag" or not sep or not rest:
        raise ValueError(f"--data wants bag:DIR[@WEIGHT], got {spec!r}")
    path, at, weight = rest.rpartition("@") if "@" in rest else (rest, "", "")
    try:
        w = float(weight) if at else 1.0
    except ValueError:
        raise ValueError(f"--data {spec!r}: weight {weight!r} is not a number") from None
    try:
        return DataSourceConfig(str(Path(path).resolve()), w)
    except ConfigError as exc:
        raise ValueError(f"--data {spec!r}: {exc}") from None


def bag_sources(
    sources: Sequence[DataSourceConfig], class_names: Sequence[str], kind: str = "points"
) -> list[BagDataset]:
    """The labelled samples of each source, labels in ``class_names`` order.

    Args:
        kind: the samples the model takes, ``"points"`` or ``"images"`` (labels in view only,
            with projected 2D boxes: :mod:`.bag_kitti`).

    Raises:
        FileNotFoundError: a folder is not a finished dataset. ValueError: a source of the
        other kind, a bad ``class_map``, or a source without labelled samples (each names the
        folder); for images, model classes that are not KITTI types.
    """
    if kind == "images":  # the mono pipeline (image_transforms) rebuilds samples as KITTI's
        other = sorted(set(class_names) - set(KITTI_CLASSES))
        if other and sources:
            raise ValueError(
                f"monocular training on bag data keeps KITTI types only ({list(KITTI_CLASSES)});"
                f" the model's classes {other} are not"
            )
    out = []
    for s in sources:
        ds = BagDataset(s.path, class_names, s.class_map, min_score=s.min_score, labelled_only=True)
        if ds.kind != kind:
            raise ValueError(f"{s.path}: a dataset of {ds.kind}, this model trains on {kind}")
        if len(ds) == 0:
            raise ValueError(f"{s.path}: no labelled samples to train on")
        out.append(ds)
    return out


class MixedDataset:
    """Samples of several sources in the proportions of the mixing rule (module docstring).

    Args:
        parts: ``(dataset, weight)`` pairs; the first is the benchmark when ``length`` is its
            repeated length.
        length: samples per epoch (``E``).
        seed: seeds each source's permutation.

    Raises:
        ValueError: no parts, an empty part, or a non-positive weight.
    """

    def __init__(
        self, parts: Sequence[tuple[SampleDataset, float]], length: int, seed: int = 0
    ) -> None:
        if not parts or any(len(d) == 0 or w <= 0 for d, w in parts):
            raise ValueError("MixedDataset needs non-empty sources with positive weights")
        total = sum(w for _, w in parts)
        self.parts = list(parts)
        self.counts = [max(1, round(length * w / total)) for _, w in parts]
        self.starts = np.cumsum([0, *self.counts])
        self.perms = [
            np.random.default_rng([seed, i]).permutation(len(d)) for i, (d, _) in enumerate(parts)
        ]
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.starts[-1])

    def source_of(self, index: int) -> int:
        """Which part item ``index`` comes from."""
        return int(np.searchsorted(self.starts, index, side="right") - 1)

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(index)
        s = self.source_of(index)
        ds, _ = self.parts[s]
        j = index - int(self.starts[s]) + self.epoch * self.counts[s]
        return ds[int(self.perms[s][j % len(ds)])]
