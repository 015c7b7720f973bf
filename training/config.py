"""Training configuration: one YAML file -> the config of its detector ``kind`` (unknown keys
are errors): :class:`TrainConfig` for the point-cloud detector; every kind shares the run
settings of :class:`BaseTrainConfig`; :class:`MonoTrainConfig` (``kind: mono``) for the
monocular detector.

Relative data paths are resolved against the config file's folder, so configs in ``config/``
can point at ``../../shared/data/...`` and work from any working directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from sr3d_ros.config import (
    ConfigError,
    DetectorConfig,
    InferenceConfig,
    ModelConfig,
    from_dict,
    read_yaml_mapping,
)
from sr3d_ros.models.mono.config import MonoDetectorConfig, MonoInferenceConfig, MonoModelConfig

from .assigners import AssignerConfig, CM3DConfig
from .datasets.mixing import DataSourceConfig
from .distill.config import DistillConfig
from .losses import ClassificationLossConfig
from .losses.mono import MonoLossConfig
from .transforms import AugmentationConfig

__all__ = [
    "TRAIN_CONFIG_KINDS",
    "BaseTrainConfig",
    "DataConfig",
    "MonoAugmentationConfig",
    "MonoTrainConfig",
    "OptimConfig",
    "TrainConfig",
    "load_train_config",
]


#: dataset kinds of :class:`DataConfig` (scannet / sunrgbd: point clouds; kitti: images)
DATASETS: tuple[str, ...] = ("scannet", "sunrgbd", "kitti")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which samples to train and validate on.

    Attributes:
        dataset: ``"scannet"`` (per-scene export), ``"sunrgbd"`` (standard export) or
            ``"kitti"`` (official object layout; the monocular detector).
        root: dataset root (relative: to the config file's folder).
        train_ids: scene ids (ScanNet) or frame ids (SUN RGB-D, KITTI) to train on; empty with
            ``train_split`` set uses the split file.
        val_ids: ids evaluated after each ``eval_every`` epochs and at the end.
        train_split / val_split: split names used when the id lists are empty.
        repeat: how many times the training list is repeated per epoch (TR3D: 15 ScanNet).
        sources: extracted bag datasets mixed in with per-source weights
            (:mod:`sr3d_training.datasets.mixing`; ``--data bag:DIR`` adds one).
    """

    dataset: str = "scannet"
    root: str = "../../shared/data/scannet"
    train_ids: tuple[str, ...] = ()
    val_ids: tuple[str, ...] = ()
    train_split: str | None = None
    val_split: str | None = None
    repeat: int = 1
    sources: tuple[DataSourceConfig, ...] = ()

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"data.dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.repeat < 1:
            raise ConfigError("data.repeat must be >= 1")
        if not self.train_ids and self.train_split is None and not self.sources:
            raise ConfigError("data: give train_ids, train_split or sources")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW + linear warm-up + step decay; the defaults are the SR3D paper's schedule (13
    epochs, lr x0.1 after epochs 8, 11 and 12, 300-step linear warm-up; TR3D published 12
    epochs with drops after 8 and 11). Configs with other values say so (the 2-scan
    ``config/train_scannet_default*.yaml`` use a short schedule).

    Attributes:
        lr: peak learning rate (1e-3). weight_decay: AdamW decay (1e-4).
        warmup_steps: linear warm-up length in optimizer steps (300), from ``warmup_start_lr``.
        milestones: epochs after which the lr is multiplied by ``gamma`` (8, 11, 12).
        gamma: decay factor (0.1). epochs: total epochs (13).
        grad_clip: max gradient L2 norm (10; 0 disables).
        max_steps: stop after this many optimizer steps (0 = no limit; for quick runs).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    warmup_start_lr: float = 1e-5
    milestones: tuple[int, ...] = (8, 11, 12)
    gamma: float = 0.1
    epochs: int = 13
    grad_clip: float = 10.0
    max_steps: int = 0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.warmup_start_lr <= 0:
            raise ConfigError("optim.lr and optim.warmup_start_lr must be > 0")
        if self.epochs < 1:
            raise ConfigError("optim.epochs must be >= 1")

    def lr_at(self, step: int, epoch: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based) in epoch ``epoch`` (0-based)."""
        decay = self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        if step < self.warmup_steps:
            t = step / max(self.warmup_steps, 1)
            return (self.warmup_start_lr + t * (self.lr - self.warmup_start_lr)) * decay
        return self.lr * decay


@dataclasses.dataclass(frozen=True)
class BaseTrainConfig:
    """What every training run needs, whatever the detector kind (see ``config/train_*.yaml``
    and ``config/mono_kitti_*.yaml`` for documented examples). A kind's config subclasses it and
    adds its model, inference, augmentation, assignment and loss sections; ``kind`` (a class
    attribute, the YAML's top-level ``kind:`` key) selects the subclass.

    Attributes:
        data: samples.
        optim: optimizer and schedule.
        batch_size: samples per optimizer step per process.
        num_workers: DataLoader workers.
        seed: seeds python, numpy and torch (each rank adds its rank).
        amp: mixed precision (CUDA only; ignored on CPU).
        max_nonfinite_steps: stop with an error after this many non-finite losses in a row.
        output_dir: checkpoints + TensorBoard logs (relative: to the current directory).
        eval_every: evaluate on ``data.val_ids`` every n epochs (0 = only at the end).
        log_every: log scalars every n steps.
        distill: distillation (``kind: none`` = plain training; ``vrdistill`` for point-cloud
            students, see :class:`~sr3d_training.distill.DistillConfig`).
    """

    kind: ClassVar[str] = ""

    data: DataConfig = dataclasses.field(
        default_factory=lambda: DataConfig(train_ids=("scene0000_00",))
    )
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    batch_size: int = 4
    num_workers: int = 0
    seed: int = 0
    amp: bool = True
    max_nonfinite_steps: int = 10
    output_dir: str = "outputs/run"
    eval_every: int = 0
    log_every: int = 10
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class TrainConfig(BaseTrainConfig):
    """A point-cloud detector's training run (``kind: pointcloud``, the default); the fields of
    :class:`BaseTrainConfig` plus:

    Attributes:
        model / inference: the detector (travels with every checkpoint).
        augmentation: training augmentations (colour normalisation is done by the model, so
            keep ``normalize_colors: false``).
        assigner: label assignment (``kind: tr3d`` baseline or ``spota`` for SR3D).
        cls_loss: classification loss (``kind: focal`` baseline, ``ras`` for SR3D, ``qfl``,
            ``vfl``).
        bbox_loss_weight: weight of the DIoU box loss.
    """

    kind: ClassVar[str] = "pointcloud"

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    inference: InferenceConfig = dataclasses.field(default_factory=InferenceConfig)
    augmentation: AugmentationConfig = dataclasses.field(
        default_factory=lambda: AugmentationConfig(normalize_colors=False)
    )
    assigner: AssignerConfig = dataclasses.field(default_factory=AssignerConfig)
    cls_loss: ClassificationLossConfig = dataclasses.field(default_factory=ClassificationLossConfig)
    bbox_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data.dataset == "kitti":
            raise ConfigError("data.dataset 'kitti' needs 'kind: mono' (the monocular detector)")
        if self.augmentation.normalize_colors:
            raise ConfigError(
                "augmentation.normalize_colors must be false: the model normalises colours itself"
            )

    @property
    def detector(self) -> DetectorConfig:
        return DetectorConfig(self.model, self.inference)


@dataclasses.dataclass(frozen=True)
class MonoAugmentationConfig:
    """Training augmentations of the monocular detector (:class:`~sr3d_training.image_transforms.
    MonoAugmentation`: [MixUp] -> letterbox to ``model.input_size`` -> [flip] -> [photometric]).

    Attributes:
        flip_prob: probability of a horizontal flip (0.5).
        jitter: photometric jitter (brightness, contrast, saturation, hue; True).
        mixup_prob: probability of MixUp with another training frame (0 = off).
        mixup_alpha: Beta parameter of the MixUp factor (32, as YOLO detectors).
    """

    flip_prob: float = 0.5
    jitter: bool = True
    mixup_prob: float = 0.0
    mixup_alpha: float = 32.0

    def __post_init__(self) -> None:
        if not (0 <= self.flip_prob <= 1 and 0 <= self.mixup_prob <= 1):
            raise ConfigError("augmentation.flip_prob and mixup_prob must be in [0, 1]")
        if self.mixup_alpha <= 0:
            raise ConfigError("augmentation.mixup_alpha must be > 0")


@dataclasses.dataclass(frozen=True)
class MonoTrainConfig(BaseTrainConfig):
    """A monocular detector's training run (``kind: mono``; LeAD-M3D): the fields of
    :class:`BaseTrainConfig` plus:

    Attributes:
        model / inference: the detector (``MonoDetectorConfig``, travels with every checkpoint).
        augmentation: :class:`MonoAugmentationConfig`.
        assigner: CM3D matching (``gamma: 0`` = YOLOv10's TAL).
        loss: weights of the loss terms.
        precise_bn_batches: after every epoch, recompute the BatchNorm statistics over this many
            augmented training batches with the final weights of the epoch (PreciseBN, Wu &
            Johnson 2021; 0 = keep the running averages).
    """

    kind: ClassVar[str] = "mono"

    data: DataConfig = dataclasses.field(
        default_factory=lambda: DataConfig(
            dataset="kitti", root="../../shared/data/kitti", train_ids=("000000",)
        )
    )
    model: MonoModelConfig = dataclasses.field(default_factory=MonoModelConfig)
    inference: MonoInferenceConfig = dataclasses.field(default_factory=MonoInferenceConfig)
    augmentation: MonoAugmentationConfig = dataclasses.field(default_factory=MonoAugmentationConfig)
    assigner: CM3DConfig = dataclasses.field(default_factory=CM3DConfig)
    loss: MonoLossConfig = dataclasses.field(default_factory=MonoLossConfig)
    precise_bn_batches: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.precise_bn_batches < 0:
            raise ConfigError("precise_bn_batches must be >= 0")
        if self.data.dataset != "kitti":
            raise ConfigError(
                f"kind mono trains on data.dataset 'kitti', not {self.data.dataset!r}"
            )

    @property
    def detector(self) -> MonoDetectorConfig:
        return MonoDetectorConfig(self.model, self.inference)


#: YAML ``kind:`` -> the config class of that detector kind.
TRAIN_CONFIG_KINDS: dict[str, type[BaseTrainConfig]] = {
    "pointcloud": TrainConfig,
    "mono": MonoTrainConfig,
}


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> BaseTrainConfig:
    """Read a training YAML; its top-level ``kind`` (default ``pointcloud``) picks the config
    class (:data:`TRAIN_CONFIG_KINDS`); ``data.root`` is resolved against the file's folder.

    Args:
        path: YAML file.
        overrides: nested mapping merged over the file's content (e.g. from the CLI).

    Returns:
        A :class:`TrainConfig` (``kind: pointcloud``) or the config of another kind.

    Raises:
        FileNotFoundError, ConfigError (naming the file and key, or an unknown ``kind``).
    """
    path = Path(path)
    data = read_yaml_mapping(path, "training config")
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    kind = data.pop("kind", "pointcloud")
    cls = TRAIN_CONFIG_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"{path}: kind must be one of {sorted(TRAIN_CONFIG_KINDS)}, got {kind!r}")
    root = (data.get("data") or {}).get("root")
    if isinstance(root, str) and not Path(root).is_absolute():
        data.setdefault("data", {})["root"] = str((path.parent / root).resolve())
    for src in (data.get("data") or {}).get("sources") or []:  # bag datasets, same rule
        if isinstance(src, dict) and isinstance(src.get("path"), str):
            src["path"] = str((path.parent / src["path"]).resolve())
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
