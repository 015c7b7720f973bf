"""VRDistill's soft foreground mask and vote consistency loss (Sec. 3.3 of the paper).

Soft foreground mask of a (refined) teacher vote i at ``x_i``, with ``g_j`` the centre and
``s_j = (dx, dy, dz)`` the size of the GT box of its scene whose centre is nearest to ``x_i``::

    Mask_i = sigma / (||x_i - g_j||^2 / ||s_j||^2 + sigma)

i.e. the paper's ``1 / (||x_i - g_j||^2 / ||s_j||^2 + sigma)`` **normalised by multiplying with
sigma so that its maximum is 1** (reached at a GT centre); it falls to 1/2 at
``||x_i - g_j|| = sqrt(sigma) ||s_j||``. Votes of a scene without GT boxes get 0. The mask is a
weight: it carries no gradient.

Vote consistency loss: every student vote i (coordinate ``x_s,i``, feature ``f_s,i`` after the
feature-align MLP) is matched to the nearest (by coordinate) refined teacher vote j(i) of its
scene, and::

    L_vc = mean_i Mask_j(i) * (||x_s,i - x_t,j(i)||^2 + ||f_s,i - f_t,j(i)||^2)

(the paper's ``mean_i Mask_i (...)`` with the mask of the matched teacher vote). The teacher side
is the target: detached, so the refinement module learns only from ``L_refine`` and cannot move
the teacher's votes towards the student (our reading of the paper's training).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .knn_attention import knn_indices

__all__ = ["soft_foreground_mask", "vote_consistency_loss"]


@torch.no_grad()
def soft_foreground_mask(
    coords: Tensor, batch: Tensor, gt_boxes: list[Tensor], sigma: float = 1.0
) -> Tensor:
    """The normalised soft foreground mask of every vote (see the module docstring).

    Args:
        coords: ``(V, 3)`` float vote coordinates (metres).
        batch: ``(V,)`` int64 scene of each vote, indexing ``gt_boxes``.
        gt_boxes: per scene ``(G_b, 7)`` float boxes ``(x, y, z, dx, dy, dz, yaw)``.
        sigma: > 0 (paper: 1).

    Returns:
        ``(V,)`` float in ``[0, 1]``, 1 exactly at a GT centre, 0 in scenes without boxes.

    Raises:
        ValueError: ``sigma <= 0``.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    mask = torch.zeros(len(coords), dtype=coords.dtype, device=coords.device)
    for b, boxes in enumerate(gt_boxes):
        rows = torch.nonzero(batch == b).squeeze(1)
        if len(rows) == 0 or len(boxes) == 0:
            continue
        boxes = boxes.to(coords)
        d2 = (coords[rows, None, :] - boxes[None, :, :3]).square().sum(-1)  # (V_b, G_b)
        j = d2.argmin(dim=1)
        size2 = boxes[j, 3:6].square().sum(-1)
        mask[rows] = sigma / (d2.gather(1, j[:, None]).squeeze(1) / size2 + sigma)
    return mask


def vote_consistency_loss(
    student_coords: Tensor,
    student_feats: Tensor,
    student_batch: Tensor,
    teacher_coords: Tensor,
    teacher_feats: Tensor,
    teacher_batch: Tensor,
    teacher_mask: Tensor | None,
) -> Tensor:
    """``L_vc`` (see the module docstring).

    Args:
        student_coords: ``(S, 3)`` student vote coordinates (metres; gradients flow).
        student_feats: ``(S, C)`` aligned student features (gradients flow).
        student_batch: ``(S,)`` int64 scene of each student vote.
        teacher_coords: ``(V, 3)`` refined teacher vote coordinates (used detached).
        teacher_feats: ``(V, C)`` refined teacher features (used detached).
        teacher_batch: ``(V,)`` int64.
        teacher_mask: ``(V,)`` soft foreground mask, or ``None`` for weight 1 (ablation).

    Returns:
        Scalar tensor (square metres + squared feature units); zero for ``S == 0``.

    Raises:
        ValueError: channel counts differ, or a student scene has no teacher votes.
    """
    if student_feats.shape[1] != teacher_feats.shape[1]:
        raise ValueError(
            f"student features have {student_feats.shape[1]} channels, the teacher's "
            f"{teacher_feats.shape[1]}: align them first"
        )
    if len(student_coords) == 0:
        return student_coords.sum() * 0.0
    t_coords, t_feats = teacher_coords.detach(), teacher_feats.detach()
    match = knn_indices(student_coords.detach(), t_coords, 1, student_batch, teacher_batch).squeeze(
        1
    )
    per_vote = (student_coords - t_coords[match]).square().sum(-1) + (
        student_feats - t_feats[match]
    ).square().sum(-1)
    if teacher_mask is not None:
        per_vote = per_vote * teacher_mask.detach()[match]
    return per_vote.mean()
