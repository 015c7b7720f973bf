"""``VRDistillTask``: VRDistill as a training task (the trainer seam of
:mod:`sr3d_training.tasks`) wrapping the point-cloud task.

The task reuses the base :class:`~sr3d_training.tasks.PointCloudTask`'s student model, data,
detection loss and evaluation; its train module adds the feature align and the vote refinement
(:class:`~sr3d_training.distill.vrdistill.VRDistillLoss`, saved only in the resume state) and
holds the frozen teacher outside every parameter list and state dict. The checkpoint is the
student's alone: an ordinary point-cloud checkpoint (``kind: pointcloud``) the node loads.

Not imported by :mod:`sr3d_training.distill` itself (it imports the tasks package, which imports
the training config, which imports :mod:`sr3d_training.distill.config`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from sr3d_ros.config import ConfigError, DetectorConfig
from sr3d_ros.models import TR3DDetector

from ..config import TrainConfig
from ..criterion import DetectionLoss
from ..tasks import PointCloudTask, PointCloudTrainModule, TaskLoss, TrainTask
from ..tasks.pointcloud import sparse_batch
from .config import VRDistillOptions
from .teacher import FrozenTeacher, load_teacher
from .votes import dense_votes
from .vrdistill import VRDistillLoss

__all__ = ["VRDistillTask", "VRDistillTrainModule"]

logger = logging.getLogger(__name__)


class VRDistillTrainModule(nn.Module):
    """Student + VRDistill's training-only modules: ``forward(batch) -> TaskLoss`` with
    ``L = L_det + lambda L_vc + eta L_refine`` (``lambda = options.vc_weight``,
    ``eta = options.refine_weight``).

    Args:
        model: the student (``self.model``: the checkpoint's weights).
        criterion: the student's detection loss (the base task's).
        teacher: the frozen teacher.
        options: VRDistill options.
        use_amp: the student's and teacher's forward passes under CUDA autocast (the losses
            in float32).

    Raises:
        ValueError: ``options.num_heads`` does not divide the teacher's channels.
    """

    def __init__(
        self,
        model: TR3DDetector,
        criterion: DetectionLoss,
        teacher: FrozenTeacher,
        options: VRDistillOptions,
        use_amp: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.options = options
        self.use_amp = use_amp
        self.distill = VRDistillLoss(int(model.head.conv_cls.in_channels), teacher, options)

    def forward(self, batch: dict[str, Any]) -> TaskLoss:
        """Loss of one batch from :func:`~sr3d_training.batching.collate_samples`.

        Args:
            batch: ``points`` (per scene ``(N_i, 6)`` float32 xyz metres + rgb 0..255),
                ``gt_boxes`` (``(K_i, 7)`` float32, our box convention), ``gt_labels``
                (``(K_i,)`` int64); CPU or device tensors.

        Returns:
            :class:`~sr3d_training.tasks.TaskLoss`: ``total`` = L; scalars ``det_loss``,
            ``cls_loss``, ``bbox_loss``, ``num_pos``, ``pos_iou`` and the distillation terms'
            (``vc_loss``, ``refine_loss``, ``mask_mean``, ``fg_votes``, ``refine_shift``).

        Raises:
            ValueError / TypeError: from the assigner or the losses (bad shapes, labels).
        """
        x, gt_boxes, gt_labels = sparse_batch(self.model, batch)
        with torch.autocast(x.features.device.type, enabled=self.use_amp):
            outputs, votes = dense_votes(self.model, x)
            terms = self.distill(x, outputs, votes, gt_boxes)
        det = self.criterion(outputs, gt_boxes, gt_labels)
        total = (
            det.total
            + self.options.vc_weight * terms.vote_consistency
            + self.options.refine_weight * terms.refinement
        )
        scalars = {
            "det_loss": float(det.total.detach()),
            "cls_loss": float(det.cls),
            "bbox_loss": float(det.bbox),
            "num_pos": float(det.num_pos),
            "pos_iou": det.mean_pos_iou,
            **terms.scalars,
        }
        return TaskLoss(total, scalars)


class VRDistillTask(TrainTask):
    """A point-cloud student trained with VRDistill from a frozen point-cloud teacher.

    Args:
        base: the student's point-cloud task (model, data, detection loss, evaluation).
        teacher: the frozen teacher (moved to ``base.device``).
        options: VRDistill options.

    Raises:
        ValueError: ``options.num_heads`` does not divide the teacher's channels.
        TypeError: ``base`` has another train module than the point-cloud one.
    """

    def __init__(
        self, base: PointCloudTask, teacher: FrozenTeacher, options: VRDistillOptions
    ) -> None:
        self.base = base
        self.kind = base.kind
        self.model = base.model
        self.device, self.use_amp = base.device, base.use_amp
        self.train_set, self.val_set = base.train_set, base.val_set
        self.teacher = teacher.to(base.device)
        if not isinstance(base.train_module, PointCloudTrainModule):
            raise TypeError("VRDistillTask wraps a PointCloudTask (PointCloudTrainModule)")
        self.train_module = VRDistillTrainModule(
            base.model, base.train_module.criterion, teacher, options, base.use_amp
        ).to(base.device)

    @classmethod
    def from_config(cls, cfg: TrainConfig, device: torch.device) -> VRDistillTask:
        """The task of a training config with ``distill.kind: vrdistill``.

        The teacher is loaded and checked before the datasets are read, so a wrong teacher
        fails at once.

        Raises:
            ConfigError: no teacher given (``distill.teacher`` or ``sr3d-train --teacher``),
                invalid options.
            FileNotFoundError / CheckpointError / TeacherError: the teacher checkpoint is
                missing, invalid, of another kind (e.g. monocular) or incompatible with the
                student's model config (the message names the file and the differences).
        """
        if cfg.distill.kind != "vrdistill":
            raise ConfigError(f"distill.kind is {cfg.distill.kind!r}, not 'vrdistill'")
        if cfg.distill.teacher is None:
            raise ConfigError(
                "distill.kind vrdistill needs a teacher checkpoint: set distill.teacher or "
                "pass sr3d-train --teacher PATH"
            )
        options = cfg.distill.options_as(VRDistillOptions)
        teacher = load_teacher(cfg.distill.teacher, cfg.model)
        logger.info(
            "VRDistill: teacher %s (width %s), student width %s",
            cfg.distill.teacher,
            teacher.config.model.width,
            cfg.model.width,
        )
        return cls(PointCloudTask(cfg, device), teacher, options)

    @property
    def detector_config(self) -> DetectorConfig:
        return self.base.detector_config

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        return self.base.collate(samples)

    def evaluate(self, progress: bool = False) -> dict[str, float] | None:
        return self.base.evaluate(progress)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)
