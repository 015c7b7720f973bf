"""SPOTA's matching cost (SR3D; our formulation): IoU + vertex distance + centre prior [+ class].

For a ground-truth box ``g`` and a candidate location ``a`` (position ``p_a``, decoded predicted
box ``b_a``, detached)::

    C(a, g) = (1 - IoU(b_a, g)) + beta * R_VD(b_a, g) + gamma_c(a, g) [+ w_cls * C_cls(a, g)]
    gamma_c(a, g) = 1 - exp(-mu * (|p_a - c_g| / s_l)^2)     (s_l: the stride of g's level, m)

``IoU`` is :func:`sr3d_ros.geometry.box_iou_3d` (exact rotated IoU when any yaw != 0), ``R_VD``
:func:`sr3d_ros.geometry.normalized_vertex_distance` (in ``[0, 1]``). The optional
classification term is the focal matching cost of Deformable DETR (Zhu et al., ICLR 2021).
Why the distance is normalised by the stride: :mod:`sr3d_training.assigners.spota`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sr3d_ros.geometry import box_iou_3d, normalized_vertex_distance

__all__ = ["centre_prior", "focal_matching_cost", "spota_pair_cost"]


def focal_matching_cost(logits: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Focal classification matching cost (Zhu et al., Deformable DETR, ICLR 2021, matcher).

    ``alpha (1-p)^gamma (-log p) - (1-alpha) p^gamma (-log(1-p))``, ``p = sigmoid(logits)``,
    computed with ``logsigmoid`` (stable). Lower = the location already scores the class high.

    Args:
        logits: any shape, floating.
        alpha, gamma: focal parameters (Lin et al., ICCV 2017 defaults 0.25, 2).

    Returns:
        Tensor of the same shape / dtype.
    """
    p = torch.sigmoid(logits)
    pos = alpha * (1 - p).pow(gamma) * (-F.logsigmoid(logits))
    neg = (1 - alpha) * p.pow(gamma) * (-F.logsigmoid(-logits))
    return pos - neg


def centre_prior(d2: Tensor, mu: float) -> Tensor:
    """SPOTA's spatial prior ``gamma_c = 1 - exp(-mu * d2)`` (our formulation), in ``[0, 1)``.

    Args:
        d2: squared centre distances (any shape, float), in the units ``mu`` is the inverse of
            (SPOTA: squared multiples of the level's stride).
        mu: sharpness >= 0.

    Returns:
        Tensor of the shape / dtype of ``d2``.
    """
    return 1.0 - torch.exp(-mu * d2)


def spota_pair_cost(
    pred: Tensor,
    gt: Tensor,
    d2: Tensor,
    mu: float,
    beta: float,
    rotated: bool | None,
    cls_logit: Tensor | None = None,
    cls_weight: float = 1.0,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> Tensor:
    """SPOTA cost ``C`` of ``R`` GTs with ``M`` candidates each (module docstring).

    Args:
        pred: ``(R, M, 7)`` float decoded predicted boxes of the candidates (detached).
        gt: ``(R, 7)`` float GT boxes (project convention: centre, full sizes, metres, yaw).
        d2: ``(R, M)`` float squared centre distances in units of the level's stride
            (``(|p_a - c_g| / s_l)^2``, finite).
        mu: centre-prior sharpness >= 0.
        beta: vertex-distance weight >= 0 (0 drops the term).
        rotated: IoU mode of :func:`sr3d_ros.geometry.box_iou_3d` (``None`` = automatic).
        cls_logit: optional ``(R, M)`` logit of each GT's class at each candidate (adds the
            focal matching cost times ``cls_weight``).
        cls_weight, focal_alpha, focal_gamma: that term's weight and focal parameters.

    Returns:
        ``(R, M)`` cost, dtype of ``pred``.

    Raises:
        ValueError: negative / NaN predicted sizes (from the geometry module).
    """
    r, m = d2.shape
    gb = gt[:, None, :].expand(r, m, 7)
    cost = 1.0 - box_iou_3d(pred, gb, aligned=True, rotated=rotated)
    if beta > 0:
        cost = cost + beta * normalized_vertex_distance(pred, gb)
    cost = cost + centre_prior(d2, mu)
    if cls_logit is not None:
        matching = focal_matching_cost(cls_logit.to(cost.dtype), focal_alpha, focal_gamma)
        cost = cost + cls_weight * matching
    return cost
