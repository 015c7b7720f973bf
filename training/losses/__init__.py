"""Losses of sr3d_training: classification (focal, RAS, QFL, VFL) and box regression (3D DIoU).

All classification losses take ``(L, C)`` logits; the summed losses are normalised by the number
of positives in the caller. :class:`ClassificationLoss` / :func:`build_classification_loss`
select one from a :class:`ClassificationLossConfig`.
"""

from sr3d_ros.geometry.mgiou import mgiou_loss

from .classification import (
    CLASSIFICATION_LOSS_KINDS,
    ClassificationLoss,
    ClassificationLossConfig,
    build_classification_loss,
    collate_assignments,
    iou_targets,
)
from .focal import sigmoid_focal_loss
from .iou import box_diou_loss
from .quality_focal import quality_focal_loss
from .ras import RANK_GROUPS, check_assignment_inputs, ras_loss, ras_targets, soft_rank
from .varifocal import varifocal_loss

__all__ = [
    "CLASSIFICATION_LOSS_KINDS",
    "RANK_GROUPS",
    "ClassificationLoss",
    "ClassificationLossConfig",
    "box_diou_loss",
    "build_classification_loss",
    "check_assignment_inputs",
    "collate_assignments",
    "iou_targets",
    "mgiou_loss",
    "quality_focal_loss",
    "ras_loss",
    "ras_targets",
    "sigmoid_focal_loss",
    "soft_rank",
    "varifocal_loss",
]
