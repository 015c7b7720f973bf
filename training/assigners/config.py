"""Configuration of the label assigners: :class:`AssignerConfig` and :func:`build_assigner`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..config_mapping import MappingConfig
from .base import Assigner
from .spota import SPOTAAssigner
from .tr3d import TR3D_LABEL2LEVEL_SCANNET, TR3DAssigner

__all__ = ["ASSIGNER_KINDS", "AssignerConfig", "build_assigner"]

AssignerKind = Literal["tr3d", "spota"]
ASSIGNER_KINDS: tuple[str, ...] = ("tr3d", "spota")


@dataclass(frozen=True)
class AssignerConfig(MappingConfig):
    """Which assigner to build and its parameters (defaults from the papers / our formulation).

    Attributes:
        kind: ``"tr3d"`` (TR3D, Rukhovich et al. 2023) or ``"spota"`` (SR3D, our formulation).
        label2level: output level per class; default TR3D's ScanNet table
            (:data:`~sr3d_training.assigners.TR3D_LABEL2LEVEL_SCANNET`, 18 classes). Lists are
            converted to tuples.
        top_k: positives per GT (TR3D; SPOTA: also the units each GT supplies); 6 (both papers).
        mu: SPOTA centre-prior sharpness (distances in strides of the GT's level); 1.0.
        beta: SPOTA vertex-distance weight; 1.0.
        sinkhorn_eps: SPOTA entropic temperature (cost units); 0.1.
        sinkhorn_iters: SPOTA Sinkhorn iterations; 50.
        bg_cost: SPOTA background cost; ``None`` -> ``2 + beta`` (does not change the plan).
        max_candidates: SPOTA nearest candidates scored per GT (speed measure); 64, ``None`` =
            all candidates on the level.
        use_ot: SPOTA ablation: ``False`` = plain top-k lowest cost; True.
        ot_decision: SPOTA plan rounding, ``"top_mass"`` (default, SR3D's rule: each GT keeps
            its ``top_k`` largest-mass locations, conflicts to the lower cost) or ``"max_mass"``
            (ablation: each location to the supplier sending it the most mass); see
            :mod:`sr3d_training.assigners.spota`.
        use_vertex_distance: SPOTA ablation: ``False`` drops ``R_VD``; True.
        use_cls_cost: SPOTA ablation: add the focal classification cost; False (SR3D: hurts).
        cls_cost_weight: weight of that term; 1.0.
        focal_alpha, focal_gamma: parameters of that term; 0.25, 2.0 (Lin et al. 2017).
        rotated: IoU mode for SPOTA (``None`` auto, see ``box_iou_3d``).
        keep_cost: keep the dense ``(L, K)`` cost (and SPOTA's plan) in the result; False.

    The SPOTA-only fields are ignored by ``kind="tr3d"``.

    Types are checked by :meth:`from_dict` (the core's strict config validator), values at
    construction.

    Raises:
        ValueError / TypeError: (at construction) unknown ``kind`` or invalid values.
    """

    kind: AssignerKind = "tr3d"
    label2level: tuple[int, ...] = TR3D_LABEL2LEVEL_SCANNET
    top_k: int = 6
    mu: float = 1.0
    beta: float = 1.0
    sinkhorn_eps: float = 0.1
    sinkhorn_iters: int = 50
    bg_cost: float | None = None
    max_candidates: int | None = 64
    use_ot: bool = True
    ot_decision: Literal["top_mass", "max_mass"] = "top_mass"
    use_vertex_distance: bool = True
    use_cls_cost: bool = False
    cls_cost_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    rotated: bool | None = None
    keep_cost: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ASSIGNER_KINDS:
            raise ValueError(f"kind must be one of {ASSIGNER_KINDS}, got {self.kind!r}")
        self.build()  # the value checks live in the assigner constructors

    def build(self) -> Assigner:
        """Instantiate the assigner described by this config."""
        if self.kind == "tr3d":
            return TR3DAssigner(self.label2level, top_k=self.top_k, keep_cost=self.keep_cost)
        return SPOTAAssigner(
            self.label2level,
            top_k=self.top_k,
            mu=self.mu,
            beta=self.beta,
            sinkhorn_eps=self.sinkhorn_eps,
            sinkhorn_iters=self.sinkhorn_iters,
            bg_cost=self.bg_cost,
            max_candidates=self.max_candidates,
            use_ot=self.use_ot,
            ot_decision=self.ot_decision,
            use_vertex_distance=self.use_vertex_distance,
            use_cls_cost=self.use_cls_cost,
            cls_cost_weight=self.cls_cost_weight,
            focal_alpha=self.focal_alpha,
            focal_gamma=self.focal_gamma,
            rotated=self.rotated,
            keep_cost=self.keep_cost,
        )


def build_assigner(
    cfg: AssignerConfig | Mapping[str, Any] | None = None, **overrides: Any
) -> Assigner:
    """Build an assigner from a config (dataclass or mapping) plus keyword overrides.

    Args:
        cfg: :class:`AssignerConfig`, a mapping of its fields (unknown keys raise), or ``None``
            (all defaults: TR3D on the ScanNet level table).
        **overrides: field values that replace those of ``cfg`` (unknown names raise).

    Returns:
        :class:`~sr3d_training.assigners.TR3DAssigner` or
        :class:`~sr3d_training.assigners.SPOTAAssigner`.

    Raises:
        TypeError / ValueError: unknown keys, unknown kind, invalid values.
    """
    if cfg is None:
        cfg = AssignerConfig()
    elif not isinstance(cfg, AssignerConfig):
        cfg = AssignerConfig.from_dict(cfg)
    if overrides:
        cfg = AssignerConfig.from_dict({**cfg.to_dict(), **overrides})
    return cfg.build()
