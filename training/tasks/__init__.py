"""Training tasks: what each detector kind (and each distillation mode) gives the trainer.

:class:`TrainTask` is the seam (model, checkpoint kind and config, train module -> loss, data,
evaluation); :class:`PointCloudTask` trains the point-cloud detector, :class:`MonoTask` the
monocular one. :func:`build_task` picks the task of a training config.
"""

from __future__ import annotations

import torch

from sr3d_ros.config import ConfigError

from ..config import BaseTrainConfig, MonoTrainConfig, TrainConfig
from .base import DetectorLossModule, TaskLoss, TrainTask, hold_frozen
from .mono import MonoTask, MonoTrainModule
from .mono_criterion import MonoCriterion
from .pointcloud import PointCloudTask, PointCloudTrainModule

__all__ = [
    "DetectorLossModule",
    "MonoCriterion",
    "MonoTask",
    "MonoTrainModule",
    "PointCloudTask",
    "PointCloudTrainModule",
    "TaskLoss",
    "TrainTask",
    "build_task",
    "hold_frozen",
]


def build_task(cfg: BaseTrainConfig, device: torch.device) -> TrainTask:
    """The task a training config describes: the base task of its detector kind; a
    distillation mode (``cfg.distill``) wraps that base task here.

    Args:
        cfg: a training config (:class:`TrainConfig`, ...).
        device: where the model lives.

    Raises:
        TypeError: a config class without a task.
        FileNotFoundError / ValueError / ConfigError: from the task (datasets, settings).
    """
    if isinstance(cfg, TrainConfig):
        if cfg.distill.kind == "vrdistill":
            from ..distill.task import VRDistillTask  # imports this package

            return VRDistillTask.from_config(cfg, device)
        if cfg.distill.kind != "none":
            raise ConfigError(
                f"distill.kind {cfg.distill.kind!r} does not train point-cloud models"
            )
        return PointCloudTask(cfg, device)
    if isinstance(cfg, MonoTrainConfig):
        if cfg.distill.kind == "a2d2":
            from ..distill.a2d2_task import A2D2Task  # imports this package

            return A2D2Task.from_config(cfg, device)
        if cfg.distill.kind != "none":
            raise ConfigError(f"distill.kind {cfg.distill.kind!r} does not train monocular models")
        return MonoTask(cfg, device)
    raise TypeError(f"no training task for {type(cfg).__name__} (kind {cfg.kind!r})")
