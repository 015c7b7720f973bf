"""Options of A2D2 distillation (``distill.kind: a2d2``, the ``distill.options`` mapping of a
monocular training YAML); see :mod:`sr3d_training.distill.a2d2` for the loss (our formulation)
and :mod:`sr3d_training.distill.mixup_input` for the teacher / student inputs."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from sr3d_ros.config import ConfigError

from ..config_mapping import MappingConfig

__all__ = ["A2D2Options"]


@dataclasses.dataclass(frozen=True)
class A2D2Options(MappingConfig):
    """A2D2 options; the defaults are what we train with (pre-registered, not tuned).

    Attributes:
        kd_weight: ``lambda_kd`` in ``L = L_det + lambda_kd * L_kd`` (10: ``L_kd`` is a
            channel-weighted mean of squared feature differences, measured 0.1-0.4 in the
            first steps of a size-n student with a trained size-n teacher on the KITTI frames,
            while one detection term, the depth NLL, is 5-20; 10 puts ``L_kd`` on the scale of
            one detection term; set from that scale, not tuned on held-out frames). 0 = the
            MixUp-only student: the same inputs and labels, no teacher needed and none run.
        tau_q: relative depth error at which the teacher's quality ``q`` falls to ``1/e`` (0.2).
        use_quality: ablation switch: ``False`` sets ``q = 1``.
        use_importance: ablation switch: ``False`` weighs every channel ``1 / C``.
        importance: ``"magnitude"`` (softmax of the teacher's mean ``|f_t|``, the default) or
            ``"gradient"`` (softmax of the mean ``|d log z_t / d f_t|``; the depth output layer is
            a 1x1 conv, so this is ``|W|`` of the level's depth output row).
        mixup_prob: probability that the student's image is MixUp-blended (1.0); without the
            blend the student still gets the photometric noise.
        mixup_alpha: Beta parameter of the blend factor (32, YOLO's MixUp), folded to >= 0.5.
        photometric: photometric jitter on the student's image (True; the teacher's is clean).
        second_labels: the student's detection loss also uses the second image's objects,
            weighted ``1 - lambda`` (True); ``False`` uses the primary image's only.
        adapter: a learnt linear map (1x1 conv) from the student's ``depth_feat`` channels to
            the teacher's, needed when they differ (a larger teacher); training-only, not in the
            student's checkpoint. Without it a channel mismatch is an error.

    Raises:
        ConfigError: negative weight, non-positive ``tau_q`` / ``mixup_alpha``, probability
            outside [0, 1].
    """

    kd_weight: float = 10.0
    tau_q: float = 0.2
    use_quality: bool = True
    use_importance: bool = True
    importance: Literal["magnitude", "gradient"] = "magnitude"
    mixup_prob: float = 1.0
    mixup_alpha: float = 32.0
    photometric: bool = True
    second_labels: bool = True
    adapter: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.kd_weight) and self.kd_weight >= 0):
            raise ConfigError(f"kd_weight must be >= 0, got {self.kd_weight}")
        if not (math.isfinite(self.tau_q) and self.tau_q > 0):
            raise ConfigError(f"tau_q must be > 0, got {self.tau_q}")
        if not 0.0 <= self.mixup_prob <= 1.0:
            raise ConfigError(f"mixup_prob must be in [0, 1], got {self.mixup_prob}")
        if not self.mixup_alpha > 0:
            raise ConfigError(f"mixup_alpha must be > 0, got {self.mixup_alpha}")
        if self.importance not in ("magnitude", "gradient"):
            raise ConfigError(
                f"importance must be 'magnitude' or 'gradient', got {self.importance!r}"
            )

    @property
    def needs_teacher(self) -> bool:
        """Whether a teacher is run (``kd_weight > 0``)."""
        return self.kd_weight > 0
