"""Config-selected classification loss: focal | RAS | QFL | VFL behind one call signature.

The trainer builds one :class:`ClassificationLoss` from a :class:`ClassificationLossConfig`
(``kind`` = ``"focal"`` baseline / TR3D, ``"ras"`` SR3D, ``"qfl"`` GFL, ``"vfl"`` VarifocalNet)
and calls it with the assignment of a scene or of a whole batch::

    loss_sum = cls_loss(cls_logits, gt_index, gt_labels, ious, scene_ids)   # scalar, summed
    loss = loss_sum / max(num_positives, 1)                                  # caller normalises

Targets: focal uses one-hot labels; QFL / VFL use ``IoU`` at the true class (0 elsewhere) as
soft targets; RAS see :mod:`sr3d_training.losses.ras`. ``ious`` is always detached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ..config_mapping import MappingConfig
from ._common import onehot_targets
from .focal import sigmoid_focal_loss
from .quality_focal import quality_focal_loss
from .ras import RANK_GROUPS, RankGroup, check_assignment_inputs, ras_loss
from .varifocal import varifocal_loss

__all__ = [
    "CLASSIFICATION_LOSS_KINDS",
    "ClassificationLoss",
    "ClassificationLossConfig",
    "build_classification_loss",
    "collate_assignments",
    "iou_targets",
]

ClassificationLossKind = Literal["focal", "ras", "qfl", "vfl"]
CLASSIFICATION_LOSS_KINDS: tuple[str, ...] = ("focal", "ras", "qfl", "vfl")


@dataclass(frozen=True)
class ClassificationLossConfig(MappingConfig):
    """Which classification loss and its parameters (defaults from the cited papers).

    Attributes:
        kind: ``"focal"`` (Lin et al. 2017; TR3D), ``"ras"`` (SR3D, our formulation), ``"qfl"``
            (Li et al. 2020), ``"vfl"`` (Zhang et al. 2021).
        focal_gamma, focal_alpha: focal loss (also the focal part of RAS); 2.0, 0.25.
        qfl_beta: QFL exponent; 2.0.
        vfl_alpha, vfl_gamma: VFL negative weight / exponent; 0.75, 2.0.
        ras_tau: RAS soft-rank temperature; 0.1.
        ras_beta: RAS distillation exponent; 2.0.
        ras_rank_group: among which positives RAS ranks a positive: ``"gt"`` (default, the
            positives of the same GT), ``"class"`` (same class and scene) or ``"scene"``
            (ablation); see :mod:`sr3d_training.losses.ras`.

    Fields of other kinds are ignored. Types are checked by :meth:`from_dict` (the core's strict
    config validator), values at construction.

    Raises:
        ValueError / TypeError: (at construction) unknown kind, invalid values.
    """

    kind: ClassificationLossKind = "focal"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    qfl_beta: float = 2.0
    vfl_alpha: float = 0.75
    vfl_gamma: float = 2.0
    ras_tau: float = 0.1
    ras_beta: float = 2.0
    ras_rank_group: RankGroup = "gt"

    def __post_init__(self) -> None:
        if self.kind not in CLASSIFICATION_LOSS_KINDS:
            raise ValueError(f"kind must be one of {CLASSIFICATION_LOSS_KINDS}, got {self.kind!r}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and f.name != "focal_alpha" and not v >= 0:
                raise ValueError(f"{f.name} must be >= 0, got {v}")
        if self.focal_alpha > 1:
            raise ValueError(
                f"focal_alpha must be <= 1 (or < 0 to disable), got {self.focal_alpha}"
            )
        if not self.ras_tau > 0:
            raise ValueError(f"ras_tau must be > 0, got {self.ras_tau}")
        if self.ras_rank_group not in RANK_GROUPS:
            raise ValueError(f"ras_rank_group must be one of {RANK_GROUPS}")


def iou_targets(cls_logits: Tensor, gt_index: Tensor, gt_labels: Tensor, ious: Tensor) -> Tensor:
    """Soft ``(L, C)`` targets: the (detached, clamped to ``[0, 1]``) IoU at each positive's
    class, 0 elsewhere (GFL / VarifocalNet targets). Dtype / device of ``cls_logits``."""
    targets = torch.zeros_like(cls_logits)
    pos_idx = (gt_index >= 0).nonzero().flatten()
    if pos_idx.numel():
        lab = gt_labels[gt_index[pos_idx]]
        targets[pos_idx, lab] = ious.detach()[pos_idx].to(targets.dtype).clamp(0.0, 1.0)
    return targets


class ClassificationLoss:
    """One callable for every classification loss kind (selected by config).

    Args:
        kind: ``"focal"`` | ``"ras"`` | ``"qfl"`` | ``"vfl"``.
        **params: other :class:`ClassificationLossConfig` fields (e.g. ``ras_tau=0.2``);
            unknown names raise ``ValueError``.

    Raises:
        ValueError / TypeError: unknown kind / keys, invalid values.
    """

    def __init__(self, kind: ClassificationLossKind = "focal", **params: Any) -> None:
        self.config = ClassificationLossConfig.from_dict({"kind": kind, **params})

    @classmethod
    def from_config(cls, cfg: ClassificationLossConfig) -> ClassificationLoss:
        """Build from a :class:`ClassificationLossConfig`."""
        return cls(**cfg.to_dict())

    @property
    def kind(self) -> str:
        """The selected loss kind."""
        return self.config.kind

    @property
    def needs_ious(self) -> bool:
        """Whether ``ious`` must be passed (``ras``, ``qfl``, ``vfl``)."""
        return self.config.kind != "focal"

    def __repr__(self) -> str:
        return f"ClassificationLoss({self.config})"

    def __call__(
        self,
        cls_logits: Tensor,
        gt_index: Tensor,
        gt_labels: Tensor,
        ious: Tensor | None = None,
        scene_ids: Tensor | None = None,
    ) -> Tensor:
        """Summed classification loss of one scene or a collated batch.

        Args:
            cls_logits: ``(L, C)`` float logits (all locations of the scene(s)).
            gt_index: ``(L,)`` int64 assigned GT per location, ``-1`` = background; for a batch,
                an index into the concatenated ``gt_labels`` (:func:`collate_assignments`).
            gt_labels: ``(K,)`` int64 GT classes in ``[0, C)``.
            ious: ``(L,)`` float IoU of each location's decoded predicted box with its assigned
                GT (0 / ignored for negatives), used detached; required unless
                ``kind == "focal"`` (ignored there).
            scene_ids: ``(L,)`` int64 scene of each location when several scenes are passed at
                once (RAS's ``"class"`` / ``"scene"`` rank groups; other kinds ignore it).
                ``None`` = one scene.

        Returns:
            Scalar float loss SUMMED over all locations and classes (dtype of ``cls_logits``);
            normalise by the number of positives (e.g. ``max(num_pos, 1)``, averaged across
            GPUs) in the caller.

        Raises:
            TypeError / ValueError: invalid inputs (see
                :func:`~sr3d_training.losses.ras.check_assignment_inputs`), missing ``ious``.
        """
        cfg = self.config
        if self.needs_ious and ious is None:
            raise ValueError(f"classification loss {cfg.kind!r} needs ious (L,)")
        check_assignment_inputs(
            cls_logits, gt_index, gt_labels, ious if self.needs_ious else None, scene_ids
        )
        if cfg.kind == "focal":
            onehot, _, _ = onehot_targets(cls_logits, gt_index, gt_labels)
            return sigmoid_focal_loss(
                cls_logits, onehot, cfg.focal_gamma, cfg.focal_alpha, reduction="sum"
            )
        assert ious is not None
        if cfg.kind == "ras":
            return ras_loss(
                cls_logits,
                gt_index,
                gt_labels,
                ious,
                tau=cfg.ras_tau,
                beta=cfg.ras_beta,
                focal_gamma=cfg.focal_gamma,
                focal_alpha=cfg.focal_alpha,
                scene_ids=scene_ids,
                reduction="sum",
                rank_group=cfg.ras_rank_group,
            )
        targets = iou_targets(cls_logits, gt_index, gt_labels, ious)
        if cfg.kind == "qfl":
            return quality_focal_loss(cls_logits, targets, cfg.qfl_beta, reduction="sum")
        return varifocal_loss(cls_logits, targets, cfg.vfl_alpha, cfg.vfl_gamma, reduction="sum")


def build_classification_loss(
    cfg: ClassificationLossConfig | Mapping[str, Any] | None = None, **overrides: Any
) -> ClassificationLoss:
    """Build a :class:`ClassificationLoss` from a config (dataclass or mapping) plus overrides.

    Args:
        cfg: :class:`ClassificationLossConfig`, a mapping of its fields (unknown keys raise), or
            ``None`` (focal loss with the paper defaults).
        **overrides: field values replacing those of ``cfg``.

    Raises:
        TypeError / ValueError: unknown keys / kind, invalid values.
    """
    if cfg is None:
        cfg = ClassificationLossConfig()
    elif not isinstance(cfg, ClassificationLossConfig):
        cfg = ClassificationLossConfig.from_dict(cfg)
    return ClassificationLoss(**{**cfg.to_dict(), **overrides})


def collate_assignments(
    gt_indices: Sequence[Tensor], gt_labels: Sequence[Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenate per-scene assignments into batch form for one :class:`ClassificationLoss` call.

    Args:
        gt_indices: ``B`` tensors ``(L_b,)`` int64 (per-scene ``gt_index``, -1 = background).
        gt_labels: ``B`` tensors ``(K_b,)`` int64.

    Returns:
        ``(gt_index (sum L_b,), gt_labels (sum K_b,), scene_ids (sum L_b,))``, int64: GT indices
        offset into the concatenated labels (background stays -1), and the scene of each location.
        The caller concatenates ``cls_logits`` / ``ious`` in the same scene order.

    Raises:
        ValueError: sequences of different or zero length.
    """
    if len(gt_indices) != len(gt_labels) or not gt_indices:
        raise ValueError("gt_indices and gt_labels must be non-empty sequences of equal length")
    idx, sid, off = [], [], 0
    for b, (gi, gl) in enumerate(zip(gt_indices, gt_labels)):
        idx.append(torch.where(gi >= 0, gi + off, gi))
        sid.append(torch.full_like(gi, b))
        off += gl.shape[0]
    return torch.cat(idx), torch.cat(list(gt_labels)), torch.cat(sid)
