"""Label assigners: which ground-truth box each head output location learns (one scene at a time).

* :class:`TR3DAssigner`: TR3D (Rukhovich et al., ICIP 2023): per-class level, top-6 nearest
  locations to the box centre.
* :class:`SPOTAAssigner`: SR3D's Spatial-Priority Optimal Transport Assignment (our formulation):
  IoU + vertex-distance + centre-prior cost, k units per GT, log-domain Sinkhorn.

Select one from a config with :func:`build_assigner` / :class:`AssignerConfig` (``kind`` =
``"tr3d"`` | ``"spota"``). All assigners share :class:`Assigner.assign` ``(locations (L, 3),
levels (L,), gt_boxes (K, 7), gt_labels (K,), pred_boxes (L, 7) | None, cls_logits (L, C) | None)
-> AssignResult`` with ``gt_index (L,)`` int64, ``-1`` = background.
"""

from ._ops import best_per_group, level_candidates
from .base import Assigner, AssignResult, check_assign_inputs
from .config import ASSIGNER_KINDS, AssignerConfig, build_assigner
from .spota import (
    OT_DECISIONS,
    SPOTAAssigner,
    focal_matching_cost,
    sinkhorn_log,
    sinkhorn_log_sparse,
)
from .tr3d import (
    TR3D_LABEL2LEVEL_S3DIS,
    TR3D_LABEL2LEVEL_SCANNET,
    TR3D_LABEL2LEVEL_SUNRGBD,
    TR3DAssigner,
    check_label2level,
    squared_center_distance,
    topk_then_resolve,
)

__all__ = [
    "ASSIGNER_KINDS",
    "OT_DECISIONS",
    "TR3D_LABEL2LEVEL_S3DIS",
    "TR3D_LABEL2LEVEL_SCANNET",
    "TR3D_LABEL2LEVEL_SUNRGBD",
    "AssignResult",
    "Assigner",
    "AssignerConfig",
    "SPOTAAssigner",
    "TR3DAssigner",
    "best_per_group",
    "build_assigner",
    "check_assign_inputs",
    "check_label2level",
    "focal_matching_cost",
    "level_candidates",
    "sinkhorn_log",
    "sinkhorn_log_sparse",
    "squared_center_distance",
    "topk_then_resolve",
]
