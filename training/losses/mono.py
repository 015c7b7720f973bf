"""Per-location losses of the monocular detector's 3D branches (element-wise, no reduction).

Every function takes the predictions and targets of the ``P`` positive locations and returns a
``(P,)`` float tensor; the criterion (:mod:`sr3d_training.tasks.mono_criterion`) weights and
normalises them. The parametrisations are those of :mod:`sr3d_ros.models.mono.decode`.

* :func:`laplacian_depth_nll`: depth with aleatoric uncertainty, the Laplacian negative
  log-likelihood ``|z - z*| / sigma + log sigma`` (constant ``log 2`` dropped), ``z`` and
  ``sigma`` in metres. Source: Kendall & Gal, "What Uncertainties Do We Need in Bayesian Deep
  Learning for Computer Vision?", NeurIPS 2017 (Laplacian form as MonoDLE / GUPNet train depth);
  ``log sigma`` is clamped to ``[-3, 6]`` (our formulation, for stability).
* :func:`dimension_l1`: L1 of the dimensions in metres, summed over ``(l, h, w)``.
* :func:`orientation_loss`: ``1 - cos(alpha - alpha*)`` from the normalised ``(sin, cos)``
  prediction (our choice among the sin/cos losses; 0 at the target, 2 opposite).
* :func:`center_offset_l1`: L1 of the projected-centre offset in strides, summed over ``(u, v)``.
* :func:`distribution_focal_loss`: YOLOv8 / YOLOv10's DFL of the 2D box edges (Li et al.,
  "Generalized Focal Loss", NeurIPS 2020), averaged over the 4 edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config_mapping import MappingConfig

__all__ = [
    "LOG_SIGMA_RANGE",
    "LOSS_TERMS",
    "MonoLossConfig",
    "center_offset_l1",
    "dimension_l1",
    "distribution_focal_loss",
    "laplacian_depth_nll",
    "orientation_loss",
]

#: the loss terms of one head of the monocular detector, in logging order
LOSS_TERMS = ("cls", "box", "dfl", "center", "depth", "dims", "orient", "mgiou")

#: clamp of the predicted log Laplacian scale (metres): sigma in [0.05 m, 403 m].
LOG_SIGMA_RANGE = (-3.0, 6.0)


@dataclass(frozen=True)
class MonoLossConfig(MappingConfig):
    """Weights of the monocular detector's loss terms
    (:mod:`sr3d_training.tasks.mono_criterion`): ``cls`` 0.5, ``box`` 7.5 and ``dfl`` 1.5 are
    YOLOv8 / YOLOv10's; the 3D weights (1.0) are ours.

    Raises:
        ValueError: a negative weight.
    """

    cls: float = 0.5
    box: float = 7.5
    dfl: float = 1.5
    center: float = 1.0
    depth: float = 1.0
    dims: float = 1.0
    orient: float = 1.0
    mgiou: float = 1.0

    def __post_init__(self) -> None:
        for name in LOSS_TERMS:
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0")


def _same_shape(name: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: prediction {tuple(a.shape)} and target {tuple(b.shape)} differ")


def laplacian_depth_nll(log_depth: Tensor, log_sigma: Tensor, depth: Tensor) -> Tensor:
    """Laplacian NLL of the depth (module docstring).

    Args:
        log_depth: ``(P,)`` predicted log depth (``z = exp``, metres). log_sigma: ``(P,)`` log
            Laplacian scale (metres), clamped to :data:`LOG_SIGMA_RANGE`.
        depth: ``(P,)`` target depth ``z*`` of the geometric centre, metres, > 0.

    Returns:
        ``(P,)`` ``|z - z*| / sigma + log sigma``.

    Raises:
        ValueError: shapes differ.
    """
    _same_shape("laplacian_depth_nll", log_depth, depth)
    _same_shape("laplacian_depth_nll", log_sigma, depth)
    log_s = log_sigma.clamp(*LOG_SIGMA_RANGE)
    z = log_depth.clamp(max=8.0).exp()
    return (z - depth).abs() * torch.exp(-log_s) + log_s


def dimension_l1(log_dims: Tensor, mean_sizes: Tensor, dims: Tensor) -> Tensor:
    """L1 of the dimensions in metres.

    Args:
        log_dims: ``(P, 3)`` predicted ``log(dims / mean)``. mean_sizes: ``(P, 3)`` the class
            mean ``(l, h, w)`` of each location's target. dims: ``(P, 3)`` target ``(l, h, w)``.

    Returns:
        ``(P,)`` summed over the three dimensions, metres.
    """
    _same_shape("dimension_l1", log_dims, dims)
    return (mean_sizes * log_dims.clamp(max=8.0).exp() - dims).abs().sum(-1)


def orientation_loss(alpha_sincos: Tensor, alpha: Tensor) -> Tensor:
    """``1 - cos(alpha_pred - alpha*)``, the prediction normalised to the unit circle.

    Args:
        alpha_sincos: ``(P, 2)`` unnormalised ``(sin, cos)``. alpha: ``(P,)`` target, radians.

    Returns:
        ``(P,)`` in ``[0, 2]``.
    """
    unit = F.normalize(alpha_sincos, dim=-1, eps=1e-6)
    target = torch.stack([torch.sin(alpha), torch.cos(alpha)], dim=-1)
    _same_shape("orientation_loss", unit, target)
    return 1.0 - (unit * target).sum(-1)


def center_offset_l1(center_offset: Tensor, target: Tensor) -> Tensor:
    """L1 of the projected-centre offset.

    Args:
        center_offset: ``(P, 2)`` predicted offset, strides. target: ``(P, 2)``
            ``(projected centre - anchor point) / stride``.

    Returns:
        ``(P,)`` summed over ``(u, v)``, strides.
    """
    _same_shape("center_offset_l1", center_offset, target)
    return (center_offset - target).abs().sum(-1)


def distribution_focal_loss(box_dist: Tensor, ltrb: Tensor) -> Tensor:
    """DFL of the 2D box edges (Li et al. 2020; YOLOv8 / YOLOv10).

    Args:
        box_dist: ``(P, 4, R)`` logits over ``R`` distance bins (strides). ltrb: ``(P, 4)``
            target distances in strides, clamped to ``[0, R - 1 - 0.01]``.

    Returns:
        ``(P,)``: cross-entropy to the two bins around each target, weighted by proximity,
        averaged over the 4 edges.
    """
    r = box_dist.shape[-1]
    t = ltrb.clamp(0, r - 1 - 0.01)
    left = t.floor().long()
    w_left = left.to(t.dtype) + 1 - t
    logp = box_dist.log_softmax(-1)
    lp_left = logp.gather(-1, left[..., None])[..., 0]
    lp_right = logp.gather(-1, (left + 1)[..., None])[..., 0]
    return -(lp_left * w_left + lp_right * (1 - w_left)).mean(-1)
