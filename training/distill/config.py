"""Distillation settings of a training run: :class:`DistillConfig` (the ``distill:`` section of a
training YAML) and the options of each method (:class:`VRDistillOptions`).

``distill.options`` is a plain mapping that the method's own options dataclass validates (strict
keys and types through :func:`sr3d_ros.config.from_dict`); a method registers that dataclass in
:data:`OPTIONS_TYPES` so a bad option is reported when the config is read, before any training.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypeVar

from sr3d_ros.config import ConfigError

from ..config_mapping import MappingConfig
from .a2d2_options import A2D2Options

__all__ = ["DISTILL_KINDS", "OPTIONS_TYPES", "DistillConfig", "VRDistillOptions"]

DistillKind = Literal["none", "vrdistill", "a2d2"]
DISTILL_KINDS: tuple[str, ...] = ("none", "vrdistill", "a2d2")

O = TypeVar("O", bound=MappingConfig)


@dataclasses.dataclass(frozen=True)
class VRDistillOptions(MappingConfig):
    """VRDistill (vote refinement distillation) options; the defaults are what we train with.

    Attributes:
        vc_weight: lambda, weight of the vote consistency loss L_vc in
            ``L = L_det + lambda L_vc + eta L_refine`` (0.02; L_vc sums squared differences over
            the teacher's 128 feature channels, so it starts near 75x L_det: measured ~150 vs
            ~2 with a width-1 teacher on the real scans; 0.02 makes lambda L_vc ~1.5x L_det at
            the start; 0.005 and 0.08 are swept in ``benchmarks/ablation_vrdistill.py``).
        refine_weight: eta, weight of the refinement loss L_refine (1.0).
        num_layers: L, refinement layers (4, the paper's).
        num_neighbors: K, votes each vote attends to in the kNN-masked attentions (5, the
            paper's; the vote itself is one of them).
        num_heads: attention heads (4; must divide the teacher's head-input channels).
        ffn_ratio: hidden width of each layer's FFN in multiples of the channels (2).
        sigma: sigma of the soft foreground mask ``1 / (d^2 / |s|^2 + sigma)`` (1.0, the
            paper's).
        num_votes: votes per scene, the teacher's locations with the highest class score (1024,
            VoteNet's vote count and about TR3D's ``nms_pre``: the locations that can become
            detections); 0 = every location of both head levels.
        use_refinement: ablation switch: ``False`` distils to the unrefined teacher votes and
            drops L_refine.
        use_mask: ablation switch: ``False`` weighs every vote 1 in L_vc.
    """

    vc_weight: float = 0.02
    refine_weight: float = 1.0
    num_layers: int = 4
    num_neighbors: int = 5
    num_heads: int = 4
    ffn_ratio: int = 2
    sigma: float = 1.0
    num_votes: int = 1024
    use_refinement: bool = True
    use_mask: bool = True

    def __post_init__(self) -> None:
        if self.vc_weight < 0 or self.refine_weight < 0:
            raise ConfigError("vc_weight and refine_weight must be >= 0")
        if self.num_layers < 1 or self.num_neighbors < 1 or self.num_heads < 1:
            raise ConfigError("num_layers, num_neighbors and num_heads must be >= 1")
        if self.ffn_ratio < 1:
            raise ConfigError("ffn_ratio must be >= 1")
        if not self.sigma > 0:
            raise ConfigError(f"sigma must be > 0, got {self.sigma}")
        if self.num_votes < 0:
            raise ConfigError("num_votes must be >= 0 (0 = all locations)")


#: Options dataclass of each distillation kind (a method adds its own entry).
OPTIONS_TYPES: dict[str, type[MappingConfig]] = {
    "vrdistill": VRDistillOptions,
    "a2d2": A2D2Options,
}


@dataclasses.dataclass(frozen=True)
class DistillConfig(MappingConfig):
    """Which distillation a training run uses (the ``distill:`` section of a training YAML).

    Attributes:
        kind: ``"none"`` (plain training), ``"vrdistill"`` (point-cloud students,
            :mod:`sr3d_training.distill.vrdistill`) or ``"a2d2"`` (monocular students).
        teacher: the teacher checkpoint (our format; a relative path is relative to the current
            directory), or ``None`` (then ``sr3d-train --teacher PATH`` must give it).
        options: the method's options, validated by its options dataclass
            (:data:`OPTIONS_TYPES`, e.g. :class:`VRDistillOptions`); unknown keys are errors.

    Raises:
        ConfigError: (at construction) an unknown kind, a teacher or options with
            ``kind: none``, or options the method's dataclass rejects (the message names
            ``distill.options``).
    """

    kind: DistillKind = "none"
    teacher: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DISTILL_KINDS:
            raise ConfigError(f"distill.kind must be one of {DISTILL_KINDS}, got {self.kind!r}")
        if self.kind == "none" and (self.teacher is not None or self.options):
            raise ConfigError(
                "distill.teacher / distill.options are set but distill.kind is 'none'; "
                "set distill.kind (vrdistill or a2d2)"
            )
        if self.kind in OPTIONS_TYPES:
            self.options_as(OPTIONS_TYPES[self.kind])

    def options_as(self, cls: type[O]) -> O:
        """``options`` as the method's dataclass ``cls``.

        Raises:
            ConfigError: unknown keys, wrong types or values (message starts
                ``distill.options``).
        """
        try:
            return cls.from_dict(self.options)
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"distill.options ({self.kind}): {exc}") from exc
