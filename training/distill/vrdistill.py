"""VRDistill for the point-cloud detector: the student plus its training-only modules.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sr3d_ros.models import HeadOutputs, TR3DDetector
from sr3d_ros.sparse import SparseTensor

from .config import VRDistillOptions
from .refinement import VoteRefinement, foreground_targets, refinement_loss
from .teacher import FrozenTeacher
from .vote_losses import soft_foreground_mask, vote_consistency_loss
from .votes import dense_votes, top_votes

__all__ = ["VRDistillModule", "VRDistillTerms"]


@dataclass
class VRDistillTerms:
    """What one VRDistill forward pass gives the training loss.

    Attributes:
        outputs: the student's head outputs (for the detection loss L_det).
        vote_consistency: scalar L_vc (unweighted).
        refinement: scalar L_refine (unweighted; 0 without the refinement module).
        scalars: logged values: ``vc_loss``, ``refine_loss``, ``mask_mean``, ``fg_votes``,
            ``refine_shift`` (mean refined - initial teacher vote distance, metres).
    """

    outputs: HeadOutputs
    vote_consistency: Tensor
    refinement: Tensor
    scalars: dict[str, float] = field(default_factory=dict)


class VRDistillModule(nn.Module):
    """Student + feature align + vote refinement (the trainable part of a VRDistill run).

    Its parameters are the student's (``model``), ``align``'s and ``refinement``'s; the teacher
    is held as a :class:`~sr3d_training.distill.teacher.FrozenTeacher` attribute, which is not a
    module: not in ``parameters()``, not in ``state_dict()``, always in eval mode.

    Args:
        student: the student detector (its checkpoint is what training ships).
        teacher: the frozen teacher (same classes, voxels and input: see
            :func:`~sr3d_training.distill.teacher.load_teacher`).
        options: VRDistill options (``use_refinement=False`` builds no refinement module).

    Raises:
        ValueError: ``options.num_heads`` does not divide the teacher's channels.
    """

    def __init__(
        self, student: TR3DDetector, teacher: FrozenTeacher, options: VRDistillOptions
    ) -> None:
        super().__init__()
        self.model = student
        self.teacher = teacher
        self.options = options
        student_channels = int(student.head.conv_cls.in_channels)
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

    def forward(self, x: SparseTensor, gt_boxes: list[Tensor]) -> VRDistillTerms:
        """One distillation forward pass.

        Args:
            x: the voxelized batch (:func:`sr3d_ros.models.points_to_sparse` with the
                student's voxel size; the teacher shares it).
            gt_boxes: per scene ``(G_b, 7)`` GT boxes (our convention, metres).

        Returns:
            :class:`VRDistillTerms`.

        Raises:
            ValueError: the teacher's locations differ from the student's (the models do not
                share their input voxels or strides).
        """
        outputs, student_votes = dense_votes(self.model, x)
        t_out, teacher_votes = self.teacher.votes(x)
        if not torch.equal(t_out.locations, outputs.locations.to(t_out.locations.dtype)) or (
            not torch.equal(t_out.batch, outputs.batch)
        ):
            raise ValueError("teacher and student head locations differ: they cannot share votes")
        picked = top_votes(t_out.cls_logits, t_out.batch, self.options.num_votes)
        tv, sv = teacher_votes.select(picked), student_votes.select(picked)
        tv_feats = tv.feats.to(sv.feats.dtype)
        scalars: dict[str, float] = {}
        if self.refinement is not None:
            coords, feats = self.refinement(tv.coords.float(), tv_feats.float(), tv.batch)
            fg, centres = foreground_targets(tv.locations, tv.batch, gt_boxes)
            l_refine = refinement_loss(coords, fg, centres)
            scalars["fg_votes"] = float(fg.sum())
            scalars["refine_shift"] = float((coords - tv.coords).detach().norm(dim=1).mean())
        else:
            coords, feats = tv.coords, tv_feats
            l_refine = sv.coords.sum() * 0.0
        mask = (
            soft_foreground_mask(coords.detach(), tv.batch, gt_boxes, self.options.sigma)
            if self.options.use_mask
            else None
        )
        l_vc = vote_consistency_loss(
            sv.coords, self.align(sv.feats), sv.batch, coords, feats, tv.batch, mask
        )
        scalars["vc_loss"] = float(l_vc.detach())
        scalars["refine_loss"] = float(l_refine.detach())
        if mask is not None:
            scalars["mask_mean"] = float(mask.mean()) if len(mask) else 0.0
        return VRDistillTerms(outputs, l_vc, l_refine, scalars)
