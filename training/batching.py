"""Training batches: the configured datasets, repeated and augmented, collated as lists."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import TrainConfig
from .datasets import SampleDataset, ScanNetDataset, SunRGBDDataset
from .datasets.mixing import MixedDataset, bag_sources
from .datasets.sample import Sample
from .transforms import IndoorAugmentation

__all__ = ["AugmentedDataset", "build_datasets", "collate_samples"]


class _Repeat(Dataset[Sample]):
    """``times`` passes over ``base`` per epoch (TR3D's dataset repeat)."""

    def __init__(self, base: SampleDataset, times: int) -> None:
        self.base, self.times = base, times

    def __len__(self) -> int:
        return len(self.base) * self.times

    def __getitem__(self, i: int) -> Sample:
        return self.base[i % len(self.base)]


class AugmentedDataset(Dataset[Sample]):
    """Applies the augmentation with a per-item generator derived from (seed, epoch, index), so
    an epoch's samples are reproducible (exact resume) whatever the worker count.

    Args:
        base: the samples.
        augmentation: the training augmentation.
        seed: run seed; set :attr:`epoch` before each epoch.
    """

    def __init__(self, base: SampleDataset, augmentation: IndoorAugmentation, seed: int) -> None:
        self.base, self.augmentation, self.seed = base, augmentation, seed
        self.epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch whose augmentation stream (and, for a mixed base, sample rotation) is
        drawn."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = int(value)
        if isinstance(self.base, MixedDataset):
            self.base.epoch = self._epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Sample:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return self.augmentation(self.base[i], rng)


def _dataset(cfg: TrainConfig, ids: tuple[str, ...], split: str | None) -> SampleDataset | None:
    if not ids and split is None:
        return None
    id_list, split = (list(ids), None) if ids else (None, split)
    if cfg.data.dataset == "scannet":
        return ScanNetDataset(cfg.data.root, split, id_list)
    return SunRGBDDataset(cfg.data.root, split, id_list, class_names=cfg.model.class_names)


def build_datasets(cfg: TrainConfig) -> tuple[AugmentedDataset, SampleDataset | None]:
    """(augmented, repeated training set; plain validation set or None) from the config; with
    ``data.sources`` the benchmark and the bag datasets are mixed
    (:class:`~sr3d_training.datasets.mixing.MixedDataset`).

    Raises:
        FileNotFoundError / ValueError from the dataset loaders (they name the file);
        ValueError: the training ids / split give no samples.
    """
    train = _dataset(cfg, cfg.data.train_ids, cfg.data.train_split)
    val = _dataset(cfg, cfg.data.val_ids, cfg.data.val_split)
    base: SampleDataset
    if cfg.data.sources:
        bags = bag_sources(cfg.data.sources, cfg.model.class_names, "points")
        parts: list[tuple[SampleDataset, float]] = [
            *([(train, 1.0)] if train is not None else []),
            *zip(bags, (s.weight for s in cfg.data.sources)),
        ]
        length = len(train) if train is not None else sum(len(b) for b in bags)
        base = MixedDataset(parts, length * cfg.data.repeat, cfg.seed)
    elif train is None:  # DataConfig requires train_ids, train_split or sources
        raise ValueError("data: give train_ids or train_split")
    else:
        base = _Repeat(train, cfg.data.repeat)
    return AugmentedDataset(base, IndoorAugmentation(cfg.augmentation), cfg.seed), val


def collate_samples(samples: list[Sample]) -> dict[str, Any]:
    """Batch samples as lists (clouds differ in size); one collate for both detector kinds.

    Returns:
        ``points`` (``(N_i, 6)`` float32 tensors), ``gt_boxes`` (``(K_i, 7)`` float32),
        ``gt_labels`` (``(K_i,)`` int64) and ``ids`` (sample ids), one entry per sample; when
        every sample is monocular also ``images`` (``uint8 (B, 3, H, W)``: equal sizes, letterbox
        first) and ``cameras`` (``float32 (B, 3, 4)`` projection matrices P).
    """
    out: dict[str, Any] = {
        "points": [torch.as_tensor(s.points, dtype=torch.float32) for s in samples],
        "gt_boxes": [torch.as_tensor(s.gt_boxes, dtype=torch.float32) for s in samples],
        "gt_labels": [torch.as_tensor(s.gt_labels, dtype=torch.int64) for s in samples],
        "ids": [s.sample_id for s in samples],
    }
    mono = [(s.image, s.camera) for s in samples if s.image is not None and s.camera is not None]
    if samples and len(mono) == len(samples):
        out["images"] = torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im, _ in mono])
        out["cameras"] = torch.stack([torch.tensor(c.P, dtype=torch.float32) for _, c in mono])
    return out
