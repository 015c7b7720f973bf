"""Training batches: the configured datasets, repeated and augmented; point clouds collated as
lists (:func:`collate_samples`), letterboxed images as tensors with padded targets
(:func:`collate_mono`, :class:`MonoTargets`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import DataConfig, MonoTrainConfig, TrainConfig
from .datasets import KittiDataset, SampleDataset, ScanNetDataset, SunRGBDDataset
from .datasets.kitti import KittiObjects
from .datasets.sample import Sample
from .image_transforms import MonoAugmentation
from .transforms import IndoorAugmentation

__all__ = [
    "AugmentedDataset",
    "MonoTargets",
    "build_datasets",
    "build_mono_datasets",
    "collate_mono",
    "collate_samples",
]

#: an augmentation: ``(sample, generator) -> augmented sample``
Augment = Callable[[Sample, np.random.Generator], Sample]


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
        augmentation: the training augmentation, ``(sample, rng) -> sample``.
        seed: run seed; set :attr:`epoch` before each epoch.
    """

    def __init__(self, base: SampleDataset, augmentation: Augment, seed: int) -> None:
        self.base, self.augmentation, self.seed = base, augmentation, seed
        self.epoch = 0

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
    """(augmented, repeated training set; plain validation set or None) from the config.

    Raises:
        FileNotFoundError / ValueError from the dataset loaders (they name the file);
        ValueError: the training ids / split give no samples.
    """
    train = _dataset(cfg, cfg.data.train_ids, cfg.data.train_split)
    if train is None:  # DataConfig requires train_ids or train_split
        raise ValueError("data: give train_ids or train_split")
    val = _dataset(cfg, cfg.data.val_ids, cfg.data.val_split)
    repeated = _Repeat(train, cfg.data.repeat)
    return AugmentedDataset(repeated, IndoorAugmentation(cfg.augmentation), cfg.seed), val


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


@dataclass
class _MonoPipeline:
    """:class:`MonoAugmentation` with a MixUp partner drawn from ``base`` by the same generator
    (one draw per sample, whether or not MixUp happens, so the stream does not depend on it)."""

    base: SampleDataset
    augmentation: MonoAugmentation

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        j = int(rng.integers(len(self.base)))
        partner = self.base[j] if self.augmentation.mixup_prob > 0 else None
        return self.augmentation(sample, rng, partner)


def _kitti(data: DataConfig, ids: tuple[str, ...], split: str | None) -> KittiDataset | None:
    if not ids and split is None:
        return None
    return KittiDataset(data.root, frame_ids=list(ids) if ids else None, split=split)


def build_mono_datasets(cfg: MonoTrainConfig) -> tuple[AugmentedDataset, KittiDataset | None]:
    """(augmented, repeated KITTI training frames; plain validation frames or None).

    The training pipeline letterboxes to ``cfg.model.input_size`` (see
    :class:`~sr3d_training.config.MonoAugmentationConfig`); validation frames stay as read.

    Raises:
        FileNotFoundError / ValueError: from :class:`KittiDataset` (they name the file).
    """
    train = _kitti(cfg.data, cfg.data.train_ids, cfg.data.train_split)
    if train is None:  # DataConfig requires train_ids or train_split
        raise ValueError("data: give train_ids or train_split")
    val = _kitti(cfg.data, cfg.data.val_ids, cfg.data.val_split)
    a = cfg.augmentation
    height, width = cfg.model.input_size
    aug = MonoAugmentation(width, height, a.flip_prob, a.jitter, a.mixup_prob, a.mixup_alpha)
    repeated = _Repeat(train, cfg.data.repeat)
    return AugmentedDataset(repeated, _MonoPipeline(repeated, aug), cfg.seed), val


@dataclass
class MonoTargets:
    """Padded ground truth of a batch of letterboxed images (``G`` = most objects in an image).

    Attributes:
        labels: ``(B, G)`` int64 class index into the model's classes (padding: 0).
        mask: ``(B, G)`` bool, True for real objects.
        boxes2d: ``(B, G, 4)`` float32 2D boxes ``x1, y1, x2, y2``, network-input pixels.
        cam_boxes: ``(B, G, 7)`` float32 KITTI camera boxes ``(x, y, z, l, h, w, ry)``
            (bottom-face centre, optical frame of the labels, metres / radians).
        weights: ``(B, G)`` float32 training weight (1; MixUp factors).
        projections: ``(B, 3, 4)`` float32 ``P`` of the network input (letterboxed camera).
    """

    labels: torch.Tensor
    mask: torch.Tensor
    boxes2d: torch.Tensor
    cam_boxes: torch.Tensor
    weights: torch.Tensor
    projections: torch.Tensor

    def to(self, device: torch.device) -> MonoTargets:
        """The same targets on ``device``."""
        return MonoTargets(
            self.labels.to(device),
            self.mask.to(device),
            self.boxes2d.to(device),
            self.cam_boxes.to(device),
            self.weights.to(device),
            self.projections.to(device),
        )


def _objects(sample: Sample) -> KittiObjects:
    objs = sample.meta.get("kitti")
    if not isinstance(objs, KittiObjects) or sample.image is None or sample.camera is None:
        raise ValueError(f"sample {sample.sample_id!r} is not a monocular KITTI sample")
    return objs


def collate_mono(samples: Sequence[Sample], class_names: Sequence[str]) -> dict[str, Any]:
    """Batch letterboxed monocular samples; objects of other classes (Van, DontCare, ...) are
    not targets.

    Args:
        samples: KITTI samples of equal image size (letterbox first), ``meta["kitti"]`` set.
        class_names: the model's classes (label order of the targets).

    Returns:
        ``images`` (``uint8 (B, 3, H, W)``), ``targets`` (:class:`MonoTargets`), ``ids``.

    Raises:
        ValueError: a sample without image / camera / KITTI objects, or images of different
            sizes.
    """
    objs = [_objects(s) for s in samples]
    sizes = {s.image.shape for s in samples if s.image is not None}
    if len(sizes) != 1:
        raise ValueError(f"images of one batch must have one size (letterbox first): {sizes}")
    keep = [np.isin(o.names, list(class_names)) for o in objs]
    g = max([int(k.sum()) for k in keep] + [0])
    b = len(samples)
    labels = torch.zeros(b, g, dtype=torch.int64)
    mask = torch.zeros(b, g, dtype=torch.bool)
    boxes2d = torch.zeros(b, g, 4)
    cam = torch.zeros(b, g, 7)
    weights = torch.zeros(b, g)
    for i, (o, k) in enumerate(zip(objs, keep)):
        sel = o.subset(k)
        n = len(sel)
        labels[i, :n] = torch.tensor([list(class_names).index(c) for c in sel.names])
        mask[i, :n] = True
        boxes2d[i, :n] = torch.from_numpy(sel.bbox).float()
        cam[i, :n] = torch.from_numpy(sel.camera_boxes()).float()
        weights[i, :n] = torch.from_numpy(sel.weight).float()
    images = [s.image for s in samples if s.image is not None]
    cams = [s.camera for s in samples if s.camera is not None]
    return {
        "images": torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im in images]),
        "targets": MonoTargets(
            labels,
            mask,
            boxes2d,
            cam,
            weights,
            torch.stack([torch.tensor(c.P, dtype=torch.float32) for c in cams]),
        ),
        "ids": [s.sample_id for s in samples],
    }
