"""The frozen monocular teacher of A2D2: loaded from a ``kind="mono"`` checkpoint (its own model
config read from the checkpoint), checked against the student, held in eval mode with no
gradients and outside every optimiser and state dict (:class:`MonoTeacher` is not an
``nn.Module``)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from sr3d_ros.models.mono import MonoDetectorConfig, MonoDetectorModel, MonoModelConfig, MonoOutputs
from sr3d_ros.models.mono.head import Head3D

from ..tasks.base import hold_frozen
from .teacher import TeacherError, read_teacher

__all__ = ["SHARED_MONO_FIELDS", "MonoTeacher", "load_mono_teacher"]

logger = logging.getLogger(__name__)

#: Model settings a monocular teacher must share with its student, so that both have the same
#: classes and the same locations (anchor points) on the same network input. Size, width and the
#: depth-feature channels may differ (channels: only with an adapter).
SHARED_MONO_FIELDS = ("class_names", "input_size", "strides")


class MonoTeacher:
    """A :class:`~sr3d_ros.models.mono.MonoDetectorModel` in eval mode, no gradients.

    Args:
        model: the teacher network (its parameters are set ``requires_grad=False``).
        config: its detector config (what its checkpoint stored).
    """

    def __init__(self, model: MonoDetectorModel, config: MonoDetectorConfig) -> None:
        hold_frozen(model)  # eval mode, requires_grad False
        self.model = model
        self.config = config

    @property
    def channels(self) -> int:
        """``Cd`` of the teacher's ``depth_feat``."""
        return int(self.model.depth_feat_channels)

    def to(self, device: torch.device | str) -> MonoTeacher:
        """Move the weights (in place); returns self."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: Tensor) -> MonoOutputs:
        """The teacher's outputs for ``float32 (B, 3, H, W)`` images in [0, 1] (eval mode, no
        graph; the weights follow ``images`` to their device)."""
        self.model.eval()
        if next(self.model.parameters()).device != images.device:
            self.model.to(images.device)
        out: MonoOutputs = self.model(images)
        return out

    @torch.no_grad()
    def depth_gradient(self, out: MonoOutputs) -> Tensor:
        """``float32 (A, Cd)``: ``d log_depth / d depth_feat`` of the one-to-many head at every
        location. The depth output layer is a 1x1 conv, so this is its log-depth weight row of
        the location's level, the same at every location of a level (``importance:
        gradient``)."""
        rows = []
        for head3d, (h, w) in zip(self.model.one2many.head3d, out.level_shapes):
            assert isinstance(head3d, Head3D)
            conv = head3d.out["depth"]
            assert isinstance(conv, nn.Conv2d)
            # (2, Cd, 1, 1): rows log depth, log sigma
            rows.append(conv.weight[0, :, 0, 0].expand(h * w, -1))
        return torch.cat(rows)


def load_mono_teacher(
    path: str | Path, student: MonoModelConfig, student_channels: int, adapter: bool
) -> MonoTeacher:
    """Load a monocular teacher for ``student`` (weights_only loading; config from the file).

    Args:
        path: our checkpoint of a monocular model (``sr3d-train`` output, ``kind="mono"``).
        student: the student's model config. student_channels: the student's ``Cd``.
        adapter: whether the run maps the student's ``depth_feat`` to the teacher's channels.

    Returns:
        The frozen teacher on the CPU (move it with :meth:`MonoTeacher.to`).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a valid checkpoint.
        TeacherError: a checkpoint of another detector kind (point-cloud), a model config that
            differs in :data:`SHARED_MONO_FIELDS`, weights that do not fit the stored config, or
            a ``depth_feat`` channel count unlike the student's without ``adapter``.
    """
    path = Path(path)
    model, config = read_teacher(
        path, "mono", MonoDetectorConfig, MonoDetectorModel, student, SHARED_MONO_FIELDS, "A2D2"
    )
    assert isinstance(model, MonoDetectorModel)
    teacher = MonoTeacher(model, config)
    if teacher.channels != student_channels and not adapter:
        raise TeacherError(
            f"{path}: the teacher's depth features have {teacher.channels} channels, the "
            f"student's {student_channels}; set distill.options.adapter: true to learn a map"
        )
    logger.info(
        "A2D2 teacher %s: size %s, depth_feat %d channels (student %d)",
        path,
        config.model.size,
        teacher.channels,
        student_channels,
    )
    return teacher
