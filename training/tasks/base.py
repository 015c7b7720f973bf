"""The trainer seam: what a detector kind (or a distillation mode) gives the kind-agnostic
:class:`~sr3d_training.trainer.Trainer`.

A :class:`TrainTask` owns

* ``model``: the detector (``nn.Module``) whose ``state_dict`` is the checkpoint's weights;
* ``kind`` (``"pointcloud"`` | ``"mono"``) and ``detector_config``: what the checkpoint stores
  (``DetectorConfig`` / ``MonoDetectorConfig``);
* ``train_module``: an ``nn.Module`` holding ``model`` as its attribute ``model`` plus any
  training-only modules (a distillation refinement module, a feature adapter, ...). The trainer
  wraps it in DDP and optimises all its parameters; ``train_module(batch)`` returns a
  :class:`TaskLoss`. A frozen teacher is kept outside ``train_module``'s parameters (eval mode,
  no gradients, not in any state_dict): a plain attribute of the task, or of the train module
  stored so that ``nn.Module`` does not register it (see :func:`hold_frozen`);
* ``train_set`` (augmented, deterministic in (seed, epoch, index): see :meth:`set_epoch`),
  ``val_set`` and :meth:`collate`;
* :meth:`evaluate`: the kind's metrics on ``val_set``; :meth:`on_epoch_end`: work between
  epochs (e.g. recomputing BatchNorm statistics).

Distillation modes are tasks that wrap a base task (``VRDistillTask(PointCloudTask, teacher)``,
``A2D2Task(MonoTask, teacher)``): they reuse the base task's model, data and evaluation and
return a ``train_module`` that adds their loss terms.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..datasets.dataset import SampleDataset

__all__ = ["DetectorLossModule", "TaskLoss", "TrainTask", "hold_frozen"]


@dataclass
class TaskLoss:
    """One training step's loss.

    Attributes:
        total: scalar tensor that is back-propagated (finite unless something diverged).
        scalars: named floats for logging (TensorBoard ``train/<name>``, ``history.json``); a
            ``"num_pos"`` entry (positives of the batch) is shown on the progress bar.
    """

    total: torch.Tensor
    scalars: dict[str, float] = field(default_factory=dict)


def hold_frozen(module: nn.Module) -> list[nn.Module]:
    """Freeze ``module`` (eval mode, ``requires_grad=False``) and return it inside a list, so
    that assigning the list to an ``nn.Module`` attribute keeps it out of ``parameters()``,
    ``state_dict()`` and ``.train()``: the way a frozen teacher rides along a train module.

    Args:
        module: the teacher (any ``nn.Module``).

    Returns:
        ``[module]`` (the same object, now frozen).
    """
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return [module]


class DetectorLossModule(nn.Module):
    """The common shape of a base task's train module: ``model`` + its loss callable.

    Args:
        model: the detector (``self.model``: the checkpoint's weights).
        criterion: the detection loss (not an ``nn.Module``: no parameters, no state).
        use_amp: run the model's forward pass under CUDA autocast (the loss stays float32).
    """

    def __init__(self, model: nn.Module, criterion: Any, use_amp: bool) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.use_amp = use_amp


class TrainTask(abc.ABC):
    """What the trainer needs from one detector kind; see the module docstring.

    Subclasses set the attributes in ``__init__`` (the trainer seeds the generators before it
    builds the task, so model initialisation is reproducible).

    Attributes:
        kind: checkpoint kind (``"pointcloud"`` | ``"mono"``).
        model: the detector whose weights the checkpoint stores.
        train_module: ``nn.Module`` with ``train_module.model is model``; the trainer's DDP
            wrapper and optimizer see its parameters.
        train_set: the augmented training samples (indexable, ``len``).
        val_set: validation samples (not augmented), or None.
        device: where ``model`` and ``train_module`` live.
        use_amp: mixed precision in the forward pass (CUDA only).
    """

    kind: str
    model: nn.Module
    train_module: nn.Module
    train_set: Dataset[Any]
    val_set: SampleDataset | None
    device: torch.device
    use_amp: bool

    @property
    @abc.abstractmethod
    def detector_config(self) -> Any:
        """The detector configuration stored in checkpoints (a frozen dataclass with
        ``model`` and ``inference`` fields, e.g. ``DetectorConfig``)."""

    @abc.abstractmethod
    def collate(self, samples: list[Any]) -> dict[str, Any]:
        """Batch a list of training samples for ``train_module`` (CPU tensors)."""

    @abc.abstractmethod
    def evaluate(self, progress: bool = False) -> dict[str, float] | None:
        """The kind's validation metrics on ``val_set`` (``model`` left in training mode), or
        None without a validation set."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called by the trainer on every rank after each epoch (``epoch`` = epochs done),
        before evaluation and the checkpoint; the default does nothing."""
        return None

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (0-based) before its batches are drawn;
        the default sets ``train_set.epoch`` when the training set has one."""
        if hasattr(self.train_set, "epoch"):
            self.train_set.epoch = epoch
