"""The point-cloud detector's training task: TR3D architecture, TR3D or SR3D (SPOTA + RAS) label
assignment and losses (:class:`~sr3d_training.criterion.DetectionLoss`), indoor mAP."""

from __future__ import annotations

from typing import Any

import torch

from sr3d_ros.config import DetectorConfig
from sr3d_ros.models import TR3DDetector, points_to_sparse
from sr3d_ros.sparse import SparseTensor

from ..assigners import AssignerConfig
from ..batching import build_datasets, collate_samples
from ..config import TrainConfig
from ..criterion import DetectionLoss
from ..evaluate import evaluate_predictions, predict_dataset
from ..losses import build_classification_loss
from .base import DetectorLossModule, TaskLoss, TrainTask

__all__ = ["PointCloudTask", "PointCloudTrainModule", "sparse_batch"]


def sparse_batch(
    model: TR3DDetector, batch: dict[str, Any]
) -> tuple[SparseTensor, list[torch.Tensor], list[torch.Tensor]]:
    """A :func:`~sr3d_training.batching.collate_samples` batch on ``model``'s device.

    Args:
        model: the detector (its device, voxel size and colour mean are used).
        batch: ``points`` (per scene ``(N_i, 6)`` float32 xyz metres + rgb 0..255),
            ``gt_boxes`` (``(K_i, 7)`` float32, our box convention), ``gt_labels``
            (``(K_i,)`` int64); CPU or device tensors.

    Returns:
        ``(x, gt_boxes, gt_labels)``: the voxelized batch at stride 1
        (:func:`sr3d_ros.models.points_to_sparse`) and the per-scene GT on the device.
    """
    device = next(model.parameters()).device
    points = [p.to(device) for p in batch["points"]]
    gt_boxes = [b.to(device) for b in batch["gt_boxes"]]
    gt_labels = [lab.to(device) for lab in batch["gt_labels"]]
    x = points_to_sparse(points, model.config.voxel_size, model.config.color_mean)
    return x, gt_boxes, gt_labels


class PointCloudTrainModule(DetectorLossModule):
    """``model`` (a :class:`TR3DDetector`) + its :class:`DetectionLoss` (label assignment +
    classification + DIoU box loss): ``forward(batch) -> TaskLoss``."""

    model: TR3DDetector
    criterion: DetectionLoss

    def forward(self, batch: dict[str, Any]) -> TaskLoss:
        """Loss of one batch from :func:`~sr3d_training.batching.collate_samples`.

        Args:
            batch: ``points`` (per scene ``(N_i, 6)`` float32 xyz metres + rgb 0..255),
                ``gt_boxes`` (``(K_i, 7)`` float32, our box convention), ``gt_labels``
                (``(K_i,)`` int64); CPU or device tensors.

        Returns:
            :class:`TaskLoss` with scalars ``cls_loss``, ``bbox_loss``, ``num_pos`` and
            ``pos_iou`` (mean IoU of the positives' predicted boxes with their targets).

        Raises:
            ValueError / TypeError: from the assigner or the losses (bad shapes, labels).
        """
        x, gt_boxes, gt_labels = sparse_batch(self.model, batch)
        with torch.autocast(x.features.device.type, enabled=self.use_amp):
            outputs = self.model(x)
        loss = self.criterion(outputs, gt_boxes, gt_labels)
        return TaskLoss(
            loss.total,
            {
                "cls_loss": float(loss.cls),
                "bbox_loss": float(loss.bbox),
                "num_pos": float(loss.num_pos),
                "pos_iou": loss.mean_pos_iou,
            },
        )


class PointCloudTask(TrainTask):
    """Trains :class:`~sr3d_ros.models.TR3DDetector` as a :class:`TrainConfig` describes.

    Args:
        cfg: the training configuration.
        device: where the model lives.

    Raises:
        FileNotFoundError / ValueError: from the dataset loaders (they name the file).
        ConfigError: an invalid assigner / loss configuration.
    """

    kind = "pointcloud"

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.model: TR3DDetector = TR3DDetector(cfg.model).to(device)
        assigner_cfg = AssignerConfig.from_dict(
            {**cfg.assigner.to_dict(), "label2level": list(cfg.model.label2level)}
        )
        criterion = DetectionLoss(
            assigner_cfg.build(),
            build_classification_loss(cfg.cls_loss),
            cfg.model.yaw_parametrization,
            cfg.model.with_yaw,
            cfg.bbox_loss_weight,
        )
        self.use_amp = cfg.amp and device.type == "cuda"
        self.train_module = PointCloudTrainModule(self.model, criterion, self.use_amp)
        self.train_set, self.val_set = build_datasets(cfg)

    @property
    def detector_config(self) -> DetectorConfig:
        return self.cfg.detector

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        return collate_samples(samples)

    def evaluate(self, progress: bool = False) -> dict[str, float] | None:
        """mAP@0.25/0.5 (keys ``"mAP@0.25"``, ``"mAP@0.5"``) on ``val_set``, or None."""
        if self.val_set is None:
            return None
        results = predict_dataset(
            self.model, self.val_set, self.cfg.inference, self.device, progress
        )
        ev = evaluate_predictions(results, self.cfg.model.class_names)
        return {f"mAP@{t}": float(ev.mAP[t]) for t in ev.mAP}
