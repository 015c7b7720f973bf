"""The monocular detector's training task (LeAD-M3D): KITTI frames, the image augmentations,
CM3D dual assignment and the mono losses (:mod:`.mono_criterion`), KITTI AP|R40."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import torch
from torch.utils.data import DataLoader

from sr3d_ros.models.mono import MonoDetectorConfig, MonoDetectorModel, MonoOutputs

from ..batching import build_mono_datasets, collate_mono
from ..config import MonoTrainConfig
from ..evaluation.mono import evaluate_mono, predict_mono_dataset
from .base import DetectorLossModule, TaskLoss, TrainTask
from .mono_criterion import MonoCriterion
from .precise_bn import recalibrate_batchnorm

__all__ = ["MonoTask", "MonoTrainModule", "images_to_input"]

logger = logging.getLogger(__name__)


def images_to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``uint8 (B, 3, H, W)`` RGB -> ``float32`` in ``[0, 1]`` on ``device`` (the network input)."""
    return images.to(device=device, dtype=torch.float32) / 255.0


class MonoTrainModule(DetectorLossModule):
    """``model`` (a :class:`MonoDetectorModel`) + :class:`~.mono_criterion.MonoCriterion` (CM3D
    assignment + losses of both heads): ``forward(batch) -> TaskLoss``."""

    model: MonoDetectorModel
    criterion: MonoCriterion

    def run_model(self, batch: dict[str, Any]) -> MonoOutputs:
        """The network's outputs for a batch of :func:`~sr3d_training.batching.collate_mono`
        (float32 even under autocast)."""
        device = next(self.model.parameters()).device
        x = images_to_input(batch["images"], device)
        with torch.autocast(device.type, enabled=self.use_amp):
            out: MonoOutputs = self.model(x)
        if self.use_amp:
            for head in (out.one2many, out.one2one):
                for name, value in vars(head).items():
                    setattr(head, name, value.float())
        return out

    def forward(self, batch: dict[str, Any]) -> TaskLoss:
        """Loss of one batch.

        Args:
            batch: ``images`` (``uint8 (B, 3, H, W)``, letterboxed to the model's input size),
                ``targets`` (:class:`~sr3d_training.batching.MonoTargets`).

        Returns:
            :class:`TaskLoss` (scalars: see :meth:`MonoCriterion.__call__`).

        Raises:
            ValueError: images of the wrong size or type; inconsistent targets.
        """
        out = self.run_model(batch)
        return self.criterion(out, batch["targets"].to(out.anchor_points.device))


class MonoTask(TrainTask):
    """Trains :class:`~sr3d_ros.models.mono.MonoDetectorModel` as a :class:`MonoTrainConfig`
    describes; checkpoints are ``kind="mono"`` with a ``MonoDetectorConfig``.

    Args:
        cfg: the training configuration.
        device: where the model lives.

    Raises:
        FileNotFoundError / ValueError: from the KITTI loader (they name the file).
    """

    kind = "mono"

    def __init__(self, cfg: MonoTrainConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.model: MonoDetectorModel = MonoDetectorModel(cfg.model).to(device)
        self.use_amp = cfg.amp and device.type == "cuda"
        criterion = MonoCriterion(cfg.model, cfg.assigner, cfg.loss)
        self.train_module: MonoTrainModule = MonoTrainModule(self.model, criterion, self.use_amp)
        self.train_set, self.val_set = build_mono_datasets(cfg)

    @property
    def detector_config(self) -> MonoDetectorConfig:
        return self.cfg.detector

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        return collate_mono(samples, self.cfg.model.class_names)

    def on_epoch_end(self, epoch: int) -> None:
        """Precise BatchNorm (:func:`~.precise_bn.recalibrate_batchnorm`): recompute the
        running statistics with the current weights over ``cfg.precise_bn_batches`` augmented
        training batches (a fixed, epoch-seeded order; the global generators are untouched)."""
        n = self.cfg.precise_bn_batches
        if n <= 0:
            return
        loader = DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            shuffle=True,
            num_workers=self.cfg.num_workers,
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(self.cfg.seed + 7919 * epoch),
        )
        used = recalibrate_batchnorm(
            self.model, itertools.islice(loader, n), self.train_module.run_model
        )
        logger.info("precise BatchNorm: statistics of %d training batches", used)

    def evaluate(self, progress: bool = False) -> dict[str, float] | None:
        """KITTI AP|R40 of the one-to-one head (no NMS) on ``val_set`` and the car depth error
        (:meth:`~sr3d_training.evaluation.mono.MonoEvaluation.metrics`), or None."""
        if self.val_set is None:
            return None
        results = predict_mono_dataset(
            self.model, self.val_set, self.cfg.inference, progress=progress
        )
        return evaluate_mono(results).metrics()
