"""VRDistill for the point-cloud detector: its training-only modules and loss terms.

VRDistill (vote refinement distillation; the paper's Sec. 3) distils a wide detector into a
narrow student by matching the student's votes to the teacher's votes after a trainable
refinement module, weighted by a soft foreground mask. Per training batch::

    teacher votes  (x_t, f_t)  = votes of the frozen teacher, at the N (num_votes) locations of
                                  each scene where the teacher's max class score is highest
    student votes  (x_s, f_s)  = the student's votes at the same locations
    (x_r, f_r) = Refine(x_t, f_t)                       # L = 4 layers (refinement.py)
    L_refine   = smoothL1(x_r[fg] - centre[fg])         # refinement.py
    Mask       = sigma / (|x_r - g|^2 / |s|^2 + sigma)  # vote_losses.py, max 1
    L_vc       = mean_i Mask_j(i) (|x_s,i - x_r,j(i)|^2 + |A f_s,i - f_r,j(i)|^2)
    L          = L_det + lambda L_vc + eta L_refine

with ``A`` the feature-align MLP (one linear layer, student channels -> teacher channels; the
paper's one-layer MLP) and ``j(i)`` the refined teacher vote nearest to student vote i. Votes of a
dense detector and the vote subset are our formulation (:mod:`.votes`). The refinement module
and ``A`` are dropped after training: the student's checkpoint is an ordinary point-cloud
checkpoint.

:class:`VRDistillLoss` holds the training-only modules and the teacher and computes L_vc and
L_refine from the student's votes; :class:`~sr3d_training.distill.task.VRDistillTrainModule`
adds the student and L_det (the trainer seam's train module).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sr3d_ros.models import HeadOutputs
from sr3d_ros.sparse import SparseTensor

from .config import VRDistillOptions
from .refinement import VoteRefinement, foreground_targets, refinement_loss
from .teacher import FrozenTeacher
from .vote_losses import soft_foreground_mask, vote_consistency_loss
from .votes import Votes, top_votes

__all__ = ["VRDistillLoss", "VRDistillTerms"]


@dataclass
class VRDistillTerms:
    """The distillation terms of one batch.

    Attributes:
        vote_consistency: scalar L_vc (unweighted).
        refinement: scalar L_refine (unweighted; 0 without the refinement module).
        scalars: logged values: ``vc_loss``, ``refine_loss``, ``mask_mean`` (with the mask),
            ``fg_votes`` and ``refine_shift`` (mean distance refined - initial teacher vote,
            metres; with the refinement module).
    """

    vote_consistency: Tensor
    refinement: Tensor
    scalars: dict[str, float] = field(default_factory=dict)


class VRDistillLoss(nn.Module):
    """Feature align + vote refinement + the frozen teacher: L_vc and L_refine of a batch.

    Its parameters are ``align``'s and ``refinement``'s (trained with the student, dropped
    after training). The teacher is a :class:`~sr3d_training.distill.teacher.FrozenTeacher`
    attribute, which is not a module: not in ``parameters()`` nor ``state_dict()``, never put in
    training mode.

    Args:
        student_channels: the student's head-input channels.
        teacher: the frozen teacher (same classes, voxels and input as the student: see
            :func:`~sr3d_training.distill.teacher.load_teacher`).
        options: VRDistill options (``use_refinement=False`` builds no refinement module).

    Raises:
        ValueError: ``options.num_heads`` does not divide the teacher's channels.
    """

    def __init__(
        self, student_channels: int, teacher: FrozenTeacher, options: VRDistillOptions
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.options = options
        self.align = nn.Linear(student_channels, teacher.channels)
        self.refinement: VoteRefinement | None = None
        if options.use_refinement:
            self.refinement = VoteRefinement(
                teacher.channels,
                options.num_layers,
                options.num_heads,
                options.num_neighbors,
                options.ffn_ratio,
            )

    def forward(
        self,
        x: SparseTensor,
        student_outputs: HeadOutputs,
        student_votes: Votes,
        gt_boxes: list[Tensor],
    ) -> VRDistillTerms:
        """The distillation terms of one batch.

        Args:
            x: the voxelized batch the student saw (the teacher runs on the same voxels).
            student_outputs / student_votes: the student's
                :func:`~sr3d_training.distill.votes.dense_votes` on ``x`` (with gradients).
            gt_boxes: per scene ``(G_b, 7)`` GT boxes (our convention, metres).

        Returns:
            :class:`VRDistillTerms`.

        Raises:
            ValueError: the teacher's locations differ from the student's (the models do not
                share their input voxels or strides).
        """
        t_out, teacher_votes = self.teacher.votes(x)
        same = torch.equal(t_out.batch, student_outputs.batch) and torch.equal(
            t_out.locations, student_outputs.locations.to(t_out.locations.dtype)
        )
        if not same:
            raise ValueError("teacher and student head locations differ: they cannot share votes")
        picked = top_votes(t_out.cls_logits, t_out.batch, self.options.num_votes)
        tv, sv = teacher_votes.select(picked), student_votes.select(picked)
        scalars: dict[str, float] = {}
        if self.refinement is not None:
            coords, feats = self.refinement(tv.coords.float(), tv.feats.float(), tv.batch)
            fg, centres = foreground_targets(tv.locations.float(), tv.batch, gt_boxes)
            l_refine = refinement_loss(coords, fg, centres)
            scalars["fg_votes"] = float(fg.sum())
            scalars["refine_shift"] = float((coords - tv.coords).detach().norm(dim=1).mean())
        else:
            coords, feats = tv.coords.float(), tv.feats.float()
            l_refine = sv.coords.sum() * 0.0
        mask = (
            soft_foreground_mask(coords.detach(), tv.batch, gt_boxes, self.options.sigma)
            if self.options.use_mask
            else None
        )
        l_vc = vote_consistency_loss(
            sv.coords.float(),
            self.align(sv.feats.float()),
            sv.batch,
            coords,
            feats,
            tv.batch,
            mask,
        )
        scalars["vc_loss"] = float(l_vc.detach())
        scalars["refine_loss"] = float(l_refine.detach())
        if mask is not None:
            scalars["mask_mean"] = float(mask.mean()) if len(mask) else 0.0
        return VRDistillTerms(l_vc, l_refine, scalars)
