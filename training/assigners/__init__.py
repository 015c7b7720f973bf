"""Label assigners: which ground-truth box each head output location learns (one scene at a time).

* :class:`TR3DAssigner`: TR3D (Rukhovich et al., ICIP 2023): per-class level, top-6 nearest
  locations to the box centre.
* :class:`CM3DAssigner`: LeAD-M3D's 3D-aware consistent matching for the monocular detector's
  dual heads (our formulation; ``gamma = 0`` is YOLOv10's TAL). It works on batched image-head
  tensors and has its own :class:`CM3DConfig`, outside :class:`AssignerConfig`.
* :class:`SPOTAAssigner`: SR3D's Spatial-Priority Optimal Transport Assignment (our formulation):
  IoU + vertex-distance + centre-prior cost (:mod:`.spota_cost`), k units per GT, log-domain
  Sinkhorn (:mod:`.transport`), plan rounding (:mod:`.spota_decision`).

Select one from a config with :func:`build_assigner` / :class:`AssignerConfig` (``kind`` =
``"tr3d"`` | ``"spota"``). All assigners share :class:`Assigner.assign` ``(locations (L, 3),
levels (L,), gt_boxes (K, 7), gt_labels (K,), pred_boxes (L, 7) | None, cls_logits (L, C) | None)
-> AssignResult`` with ``gt_index (L,)`` int64, ``-1`` = background.
"""

from ._ops import (
    best_per_group,
    level_candidates,
    level_spacing,
    squared_center_distance,
    topk_then_resolve,
)
from .base import Assigner, AssignResult, SceneInputs, check_assign_inputs
from .cm3d import CM3DAssigner, CM3DConfig, CM3DResult
from .config import ASSIGNER_KINDS, AssignerConfig, build_assigner
from .spota import OT_DECISIONS, SPOTAAssigner
from .spota_cost import centre_prior, focal_matching_cost, spota_pair_cost
from .spota_decision import (
    ensure_one_positive,
    max_mass_decision,
    top_k_decision,
    top_mass_decision,
)
from .tr3d import (
    TR3D_LABEL2LEVEL_S3DIS,
    TR3D_LABEL2LEVEL_SCANNET,
    TR3D_LABEL2LEVEL_SUNRGBD,
    TR3DAssigner,
    check_label2level,
)
from .transport import sinkhorn_log, sinkhorn_log_sparse, spota_supplies

__all__ = [
    "ASSIGNER_KINDS",
    "OT_DECISIONS",
    "TR3D_LABEL2LEVEL_S3DIS",
    "TR3D_LABEL2LEVEL_SCANNET",
    "TR3D_LABEL2LEVEL_SUNRGBD",
    "AssignResult",
    "Assigner",
    "AssignerConfig",
    "CM3DAssigner",
    "CM3DConfig",
    "CM3DResult",
    "SPOTAAssigner",
    "SceneInputs",
    "TR3DAssigner",
    "best_per_group",
    "build_assigner",
    "centre_prior",
    "check_assign_inputs",
    "check_label2level",
    "ensure_one_positive",
    "focal_matching_cost",
    "level_candidates",
    "level_spacing",
    "max_mass_decision",
    "sinkhorn_log",
    "sinkhorn_log_sparse",
    "spota_pair_cost",
    "spota_supplies",
    "squared_center_distance",
    "top_k_decision",
    "top_mass_decision",
    "topk_then_resolve",
]
