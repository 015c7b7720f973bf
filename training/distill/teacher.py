"""The frozen teacher of a distillation run: loaded from our checkpoint format, checked against
the student's model config, held in eval mode with no gradients and outside every optimiser and
state dict (:class:`FrozenTeacher` is not an ``nn.Module``, so a module holding it does not
register its weights)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from sr3d_ros.checkpoints import CheckpointError, config_from_checkpoint, load_checkpoint
from sr3d_ros.config import DetectorConfig, ModelConfig
from sr3d_ros.models import HeadOutputs, TR3DDetector
from sr3d_ros.models.mono import MonoDetectorConfig
from sr3d_ros.sparse import SparseTensor

from .votes import Votes, dense_votes

__all__ = ["FrozenTeacher", "TeacherError", "load_teacher", "read_teacher", "teacher_mismatches"]

logger = logging.getLogger(__name__)

C = TypeVar("C", DetectorConfig, MonoDetectorConfig)
#: how messages name the students / teachers of each detector kind
KIND_NAMES = {"pointcloud": "point-cloud", "mono": "monocular"}

#: Model settings a point-cloud teacher must share with its student: the same classes and head
#: levels, the same voxels and input features (so both see the same locations) and the same box
#: parametrisation. Widths, depths and channel counts may differ.
SHARED_FIELDS = (
    "class_names",
    "label2level",
    "voxel_size",
    "in_channels",
    "color_mean",
    "num_reg_outs",
    "yaw_parametrization",
)


class TeacherError(ValueError):
    """The teacher checkpoint cannot teach this student (one line naming the file and why)."""


def teacher_mismatches(
    teacher: Any, student: Any, fields: Sequence[str] = SHARED_FIELDS
) -> list[str]:
    """``"field: teacher value != student value"`` for each of ``fields`` (default
    :data:`SHARED_FIELDS`) that differs between two model configs (empty when the teacher can
    teach the student)."""
    return [
        f"{name}: teacher {getattr(teacher, name)!r} != student {getattr(student, name)!r}"
        for name in fields
        if getattr(teacher, name) != getattr(student, name)
    ]


def read_teacher(
    path: Path,
    kind: str,
    config_type: type[C],
    build: Callable[[Any], nn.Module],
    student: Any,
    fields: Sequence[str],
    method: str,
) -> tuple[nn.Module, C]:
    """Read and check a teacher checkpoint of any detector kind (weights_only loading): the
    kind, the stored config against the student's model config in ``fields``, the weights.

    Args:
        path: our checkpoint. kind: the detector kind the method needs (``"pointcloud"``,
            ``"mono"``). config_type: that kind's detector config class. build: model config ->
            network. student: the student's model config. fields: settings both must share.
        method: the distillation's name, for messages.

    Returns:
        ``(network with the checkpoint's weights, on the CPU; its detector config)``.

    Raises:
        FileNotFoundError / CheckpointError: missing or invalid file.
        TeacherError: another detector kind, a config differing in ``fields`` (all differences
            listed), or weights that do not fit the stored config.
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    found = ckpt.get("kind", "pointcloud")
    if found != kind:
        what = KIND_NAMES.get(kind, kind)
        raise TeacherError(
            f"{path}: a {found!r} checkpoint cannot teach a {what} student; {method} needs "
            f"a {what} teacher (kind {kind!r})"
        )
    try:
        config = config_from_checkpoint(ckpt, path, config_type=config_type)
    except CheckpointError as exc:
        raise TeacherError(str(exc)) from exc
    diffs = teacher_mismatches(config.model, student, fields)
    if diffs:
        raise TeacherError(
            f"{path}: the teacher's model config is incompatible with the student's ("
            + "; ".join(diffs)
            + ")"
        )
    model = build(config.model)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise TeacherError(f"{path}: weights do not fit the stored config ({first})") from None
    return model, config


class FrozenTeacher:
    """A :class:`~sr3d_ros.models.TR3DDetector` in eval mode whose weights never get gradients.

    Args:
        model: the teacher network (its parameters are set ``requires_grad=False``).
        config: its detector config (what its checkpoint stored).
    """

    def __init__(self, model: TR3DDetector, config: DetectorConfig) -> None:
        self.model = model.eval()
        self.config = config
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def channels(self) -> int:
        """Head-input channels of the teacher's votes."""
        return int(self.model.head.conv_cls.in_channels)

    def to(self, device: torch.device | str) -> FrozenTeacher:
        """Move the teacher's weights (in place); returns self."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def votes(self, x: SparseTensor) -> tuple[HeadOutputs, Votes]:
        """The teacher's head outputs and votes on ``x`` (eval mode, no graph); see
        :func:`~sr3d_training.distill.votes.dense_votes` for shapes. The teacher follows ``x``
        to its device on the first call there."""
        self.model.eval()
        if self.model.head.conv_cls.kernel.device != x.features.device:
            self.model.to(x.features.device)
        return dense_votes(self.model, x)


def load_teacher(path: str | Path, student: ModelConfig) -> FrozenTeacher:
    """Load a point-cloud teacher checkpoint for ``student`` (weights_only loading).

    Args:
        path: our checkpoint (``sr3d-train`` output or a converted TR3D checkpoint).
        student: the student's model config.

    Returns:
        The frozen teacher on the CPU (move it with :meth:`FrozenTeacher.to`).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a valid checkpoint (see :func:`sr3d_ros.checkpoints.load_checkpoint`).
        TeacherError: a checkpoint of another detector kind (e.g. a monocular ``"mono"``
            checkpoint), or a model config that differs from the student's in one of
            :data:`SHARED_FIELDS` (all differences listed), or weights that do not fit its config.
    """
    path = Path(path)
    model, config = read_teacher(
        path, "pointcloud", DetectorConfig, TR3DDetector, student, SHARED_FIELDS, "VRDistill"
    )
    assert isinstance(model, TR3DDetector)
    if config.model.width < student.width:
        logger.warning(
            "teacher %s is narrower (width %s) than the student (width %s)",
            path,
            config.model.width,
            student.width,
        )
    return FrozenTeacher(model, config)
