"""Distillation training modes: VRDistill for point-cloud students (``kind: vrdistill``).

* :mod:`.config`: :class:`DistillConfig` (the training YAML's ``distill:`` section) and
  :class:`VRDistillOptions`.
* :mod:`.votes`: votes of a dense detector (predicted centres + head-input features).
* :mod:`.knn_attention`, :mod:`.refinement`: the vote refinement module and its loss.
* :mod:`.vote_losses`: the soft foreground mask and the vote consistency loss.
* :mod:`.teacher`: loading and freezing the teacher. :mod:`.vrdistill`: the trainable module.
"""

from .config import DISTILL_KINDS, OPTIONS_TYPES, DistillConfig, VRDistillOptions
from .refinement import VoteRefinement, foreground_targets, refinement_loss
from .teacher import FrozenTeacher, TeacherError, load_teacher
from .vote_losses import soft_foreground_mask, vote_consistency_loss
from .votes import Votes, dense_votes, top_votes
from .vrdistill import VRDistillLoss, VRDistillTerms

__all__ = [
    "DISTILL_KINDS",
    "OPTIONS_TYPES",
    "DistillConfig",
    "FrozenTeacher",
    "TeacherError",
    "VRDistillLoss",
    "VRDistillOptions",
    "VRDistillTerms",
    "VoteRefinement",
    "Votes",
    "dense_votes",
    "foreground_targets",
    "load_teacher",
    "refinement_loss",
    "soft_foreground_mask",
    "top_votes",
    "vote_consistency_loss",
]
