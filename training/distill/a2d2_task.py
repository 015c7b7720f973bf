"""``A2D2Task``: A2D2 distillation as a training task (the trainer seam of
:mod:`sr3d_training.tasks`) wrapping the monocular task (our formulation of LeAD-M3D's A2D2).

Per training item the pipeline draws a second frame and builds the asymmetric pair
(:func:`~sr3d_training.distill.mixup_input.make_a2d2_pair`): the student's sample (MixUp +
photometric noise) carries the teacher's clean view in ``meta["a2d2_teacher"]``. The train module

1. runs the student on its images and the base task's detection loss on its labels;
2. runs the frozen teacher on the clean images (no graph), assigns the primary image's objects
   to the teacher's one-to-many locations with the same CM3D rule the detection loss uses
   (on the teacher's clean predictions: its confident locations of each object, on whichever
   levels CM3D picks them; the teacher's targets hold the primary objects only);
3. adds ``kd_weight * L_kd`` (:func:`~sr3d_training.distill.a2d2.a2d2_distill_loss`) between the
   student's and the teacher's one-to-many ``depth_feat`` at those locations (the one-to-one head
   sees detached features, so the one-to-many branch is the one that shapes the network).

With ``kd_weight: 0`` (the MixUp-only student) no teacher is loaded or run. The checkpoint is
the student's alone (``kind: mono``); an adapter (``options.adapter``) lives only in the resume
state. Not imported by :mod:`sr3d_training.distill` itself (it imports the tasks package).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sr3d_ros.config import ConfigError
from sr3d_ros.models.mono import MonoDetectorConfig

from ..batching import AugmentedDataset, collate_mono
from ..config import MonoTrainConfig
from ..datasets.dataset import SampleDataset
from ..datasets.sample import Sample
from ..tasks import MonoCriterion, MonoTask, MonoTrainModule, TaskLoss, TrainTask
from ..tasks.mono import images_to_input
from .a2d2 import a2d2_distill_loss
from .a2d2_options import A2D2Options
from .a2d2_teacher import MonoTeacher, load_mono_teacher
from .mixup_input import make_a2d2_pair

__all__ = ["A2D2Pipeline", "A2D2Task", "A2D2TrainModule", "collate_a2d2"]

logger = logging.getLogger(__name__)

TEACHER_KEY = "a2d2_teacher"


@dataclass
class A2D2Pipeline:
    """``(sample, rng) -> student sample`` with the teacher's view in ``meta["a2d2_teacher"]``.

    The second frame is drawn from ``base`` by the same generator (one draw per item whatever
    the options, so the stream is reproducible in (seed, epoch, index)).

    Attributes:
        base: the training frames (the MixUp partners). width, height: letterbox canvas.
        flip_prob: probability of the shared flip. options: A2D2 options.
    """

    base: SampleDataset
    width: int
    height: int
    flip_prob: float
    options: A2D2Options

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        o = self.options
        partner = self.base[int(rng.integers(len(self.base)))]
        pair = make_a2d2_pair(
            sample,
            partner,
            rng,
            self.width,
            self.height,
            self.flip_prob,
            o.mixup_alpha,
            o.photometric,
            o.second_labels,
            o.mixup_prob,
        )
        pair.student.meta[TEACHER_KEY] = pair.teacher
        pair.student.meta["a2d2_lambda"] = pair.lam
        return pair.student


def collate_a2d2(samples: list[Sample], class_names: tuple[str, ...]) -> dict[str, Any]:
    """Batch A2D2 items: the student's batch (:func:`~sr3d_training.batching.collate_mono`) plus
    ``teacher_images`` (``uint8 (B, 3, H, W)``) and ``teacher_targets`` (the clean primary
    frames' :class:`~sr3d_training.batching.MonoTargets`).

    Raises:
        ValueError: an item without its teacher view, or what :func:`collate_mono` raises.
    """
    teachers = [s.meta.get(TEACHER_KEY) for s in samples]
    if not all(isinstance(t, Sample) for t in teachers):
        raise ValueError("A2D2 batches need samples from A2D2Pipeline (meta['a2d2_teacher'])")
    batch = collate_mono(samples, class_names)
    teacher = collate_mono([t for t in teachers if isinstance(t, Sample)], class_names)
    batch["teacher_images"] = teacher["images"]
    batch["teacher_targets"] = teacher["targets"]
    return batch


class A2D2TrainModule(nn.Module):
    """Student + A2D2's training-only parts: ``forward(batch) -> TaskLoss`` with
    ``L = L_det + kd_weight * L_kd``.

    Args:
        base: the monocular task's train module (student ``model`` + detection loss).
        teacher: the frozen teacher (None when ``options.kd_weight == 0``).
        teacher_criterion: the CM3D assignment on the teacher's predictions (its own model
            config: mean sizes for decoding).
        options: A2D2 options.

    Raises:
        ValueError: ``kd_weight > 0`` without a teacher; a channel mismatch without adapter.
    """

    def __init__(
        self,
        base: MonoTrainModule,
        teacher: MonoTeacher | None,
        teacher_criterion: MonoCriterion | None,
        options: A2D2Options,
    ) -> None:
        super().__init__()
        self.base = base
        self.model = base.model
        self.options = options
        if options.needs_teacher and (teacher is None or teacher_criterion is None):
            raise ValueError("A2D2 with kd_weight > 0 needs a teacher")
        self._teacher = teacher  # not an nn.Module: no parameters, state or .train()
        self._teacher_criterion = teacher_criterion
        c_s = int(base.model.depth_feat_channels)
        c_t = teacher.channels if teacher is not None else c_s
        self.adapter: nn.Linear | None = nn.Linear(c_s, c_t) if options.adapter else None
        if c_s != c_t and self.adapter is None:
            raise ValueError(f"student depth_feat has {c_s} channels, the teacher's {c_t}")

    def forward(self, batch: dict[str, Any]) -> TaskLoss:
        """Loss of one batch from :func:`collate_a2d2`.

        Returns:
            :class:`~sr3d_training.tasks.TaskLoss`: ``total`` = L; scalars: the detection
            loss's (:class:`~sr3d_training.tasks.MonoCriterion`), ``det_loss``, and with a
            teacher ``kd_loss`` (unweighted), ``kd_objects``, ``kd_quality`` (mean q) and
            ``teacher_depth_err`` (metres, at the distilled objects).

        Raises:
            ValueError: images of the wrong size or type; inconsistent targets.
        """
        out = self.base.run_model(batch)
        device = out.anchor_points.device
        det = self.base.criterion(out, batch["targets"].to(device))
        scalars = {**det.scalars, "det_loss": float(det.total.detach())}
        if not self.options.needs_teacher:
            return TaskLoss(det.total, scalars)
        assert self._teacher is not None and self._teacher_criterion is not None
        o = self.options
        t_targets = batch["teacher_targets"].to(device)
        with torch.autocast(device.type, enabled=self.base.use_amp):
            t_out = self._teacher(images_to_input(batch["teacher_images"], device))
        t_head = t_out.one2many
        for name, value in vars(t_head).items():  # float32 under autocast too
            setattr(t_head, name, value.float())
        res = self._teacher_criterion.assign(
            t_head, t_out, t_targets, self._teacher_criterion.assigner.cfg.topk_one2many
        )
        gt_depth = torch.where(t_targets.mask, t_targets.cam_boxes[..., 2], 1.0)
        f_s = out.one2many.depth_feat
        if self.adapter is not None:
            f_s = self.adapter(f_s)
        source = None
        if o.importance == "gradient":
            source = self._teacher.depth_gradient(t_out)[None].expand_as(t_head.depth_feat)
        kd = a2d2_distill_loss(
            f_s,
            t_head.depth_feat,
            t_head.log_depth,
            res.gt_index,
            gt_depth,
            o.tau_q,
            source,
            o.use_quality,
            o.use_importance,
        )
        scalars |= {
            "kd_loss": float(kd.loss.detach()),
            "kd_objects": float(kd.num_objects),
            "kd_quality": kd.mean_quality,
            "teacher_depth_err": kd.mean_abs_depth_error,
        }
        return TaskLoss(det.total + o.kd_weight * kd.loss, scalars)


class A2D2Task(TrainTask):
    """A monocular student trained with A2D2 from a frozen monocular teacher.

    Args:
        base: the student's monocular task (model, detection loss, frames, evaluation).
        teacher: the frozen teacher (moved to ``base.device``), or None with ``kd_weight: 0``.
        options: A2D2 options.

    Raises:
        ValueError: ``kd_weight > 0`` without a teacher, or a channel mismatch without adapter.
        TypeError: ``base`` has another train module than the monocular one.
    """

    def __init__(self, base: MonoTask, teacher: MonoTeacher | None, options: A2D2Options) -> None:
        if not isinstance(base.train_module, MonoTrainModule):
            raise TypeError("A2D2Task wraps a MonoTask (MonoTrainModule)")
        self.base = base
        self.kind = base.kind
        self.model = base.model
        self.device, self.use_amp = base.device, base.use_amp
        cfg = base.cfg
        if cfg.augmentation.mixup_prob > 0:
            logger.warning(
                "A2D2: augmentation.mixup_prob is ignored; the student's MixUp is "
                "distill.options.mixup_prob / mixup_alpha"
            )
        if not isinstance(base.train_set, AugmentedDataset):
            raise TypeError("A2D2Task needs the monocular task's AugmentedDataset")
        frames = base.train_set.base
        height, width = cfg.model.input_size
        pipeline = A2D2Pipeline(frames, width, height, cfg.augmentation.flip_prob, options)
        self.train_set = AugmentedDataset(frames, pipeline, cfg.seed)
        self.val_set = base.val_set
        self.teacher = teacher.to(base.device) if teacher is not None else None
        t_criterion = (
            MonoCriterion(teacher.config.model, cfg.assigner) if teacher is not None else None
        )
        self.train_module = A2D2TrainModule(
            base.train_module, self.teacher, t_criterion, options
        ).to(base.device)

    @classmethod
    def from_config(cls, cfg: MonoTrainConfig, device: torch.device) -> A2D2Task:
        """The task of a monocular training config with ``distill.kind: a2d2``.

        The student is built first (same initialisation as plain training with the seed), then
        the teacher is loaded from its checkpoint with the config stored there, before any
        training step.

        Raises:
            ConfigError: no teacher given although ``kd_weight > 0`` (``distill.teacher`` or
                ``sr3d-train --teacher``); invalid options.
            FileNotFoundError / CheckpointError / TeacherError: the teacher checkpoint is
                missing, invalid, of another kind (point-cloud), incompatible with the student
                (classes, input size, strides) or has other depth-feature channels and no
                adapter is configured.
        """
        if cfg.distill.kind != "a2d2":
            raise ConfigError(f"distill.kind is {cfg.distill.kind!r}, not 'a2d2'")
        options = cfg.distill.options_as(A2D2Options)
        if options.needs_teacher and cfg.distill.teacher is None:
            raise ConfigError(
                "distill.kind a2d2 needs a teacher checkpoint: set distill.teacher or pass "
                "sr3d-train --teacher PATH (or distill.options.kd_weight: 0 for the MixUp-only "
                "student)"
            )
        base = MonoTask(cfg, device)
        teacher = None
        if options.needs_teacher and cfg.distill.teacher is not None:
            teacher = load_mono_teacher(
                cfg.distill.teacher, cfg.model, base.model.depth_feat_channels, options.adapter
            )
        return cls(base, teacher, options)

    @property
    def detector_config(self) -> MonoDetectorConfig:
        return self.base.detector_config

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        return collate_a2d2(samples, self.base.cfg.model.class_names)

    def on_epoch_end(self, epoch: int) -> None:
        """The base task's (precise BatchNorm): the student's statistics are recomputed on the
        plain training stream (clean augmentation, no MixUp), the images it will see."""
        self.base.on_epoch_end(epoch)

    def evaluate(self, progress: bool = False) -> dict[str, float] | None:
        return self.base.evaluate(progress)
