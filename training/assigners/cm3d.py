"""CM3D: LeAD-M3D's 3D-aware consistent matching for the dual (one-to-many / one-to-one) heads.

Source: LeAD-M3D (arXiv 2512.05663), "CM3D"; the paper gives no exact formula, so this is
**our formulation** (issue 15). For a ground-truth object ``g`` and a head location ``a`` whose
anchor point lies strictly inside ``g``'s 2D box (YOLOv8/v10's centre prior,
``min(u - x1, v - y1, x2 - u, y2 - v) > eps``):

    s(a, g) = p^alpha * IoU2D^beta * ((1 + MGIoU3D) / 2)^gamma

with ``p`` the predicted probability of ``g``'s class at ``a``, ``IoU2D`` the IoU of ``a``'s
decoded 2D box with ``g``'s 2D box, and ``MGIoU3D`` (:func:`sr3d_ros.geometry.mgiou_3d`, in
``[-1, 1]``) of ``a``'s decoded 3D box with ``g``'s 3D box (body frame). ``alpha = 0.5``,
``beta = 6`` (YOLOv10's task-aligned values), ``gamma = 1`` pre-registered; ``gamma = 0`` is
exactly YOLOv10's task-aligned assignment (TAL; Feng et al., "TOOD", ICCV 2021, as YOLOv8/v10
use it).

Decision (YOLOv10's consistent dual assignment: both heads ranked by the same metric, each on
its own predictions): every object keeps its ``k`` highest-``s`` candidates (``k = 10`` for the
one-to-many head, ``k = 1`` for the one-to-one head; ties to the lower location index); a
location kept by several objects goes to the one with the higher ``s`` (ties to the lower object
index). Soft classification target of a positive (TAL's normalised metric):
``t = s * max_g q / max_g s`` over the object's positives, with the matching quality
``q = IoU2D * ((1 + MGIoU3D) / 2)^gamma`` (= TAL's IoU for ``gamma = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sr3d_ros.geometry.mgiou import mgiou_3d

from ..config_mapping import MappingConfig
from ..losses.iou2d import image_box_iou

__all__ = ["CM3DAssigner", "CM3DConfig", "CM3DResult"]


@dataclass(frozen=True)
class CM3DConfig(MappingConfig):
    """Parameters of :class:`CM3DAssigner` (module docstring; our formulation).

    Attributes:
        alpha: exponent of the class probability (0.5, YOLOv10).
        beta: exponent of the 2D IoU (6, YOLOv10).
        gamma: exponent of the 3D term ``(1 + MGIoU3D) / 2``; 1.0 pre-registered, 0 = TAL.
        topk_one2many: positives per object of the one-to-many head (10).
        topk_one2one: positives per object of the one-to-one head (1).
        eps: an anchor point must lie more than ``eps`` pixels inside the 2D box (1e-9).

    Raises:
        ValueError: negative exponents, ``k < 1``, negative ``eps``.
    """

    alpha: float = 0.5
    beta: float = 6.0
    gamma: float = 1.0
    topk_one2many: int = 10
    topk_one2one: int = 1
    eps: float = 1e-9

    def __post_init__(self) -> None:
        if min(self.alpha, self.beta, self.gamma) < 0:
            raise ValueError("cm3d: alpha, beta and gamma must be >= 0")
        if min(self.topk_one2many, self.topk_one2one) < 1:
            raise ValueError("cm3d: topk_one2many and topk_one2one must be >= 1")
        if self.eps < 0:
            raise ValueError("cm3d: eps must be >= 0")


@dataclass
class CM3DResult:
    """Assignment of a batch (all tensors ``(B, A)``, detached).

    Attributes:
        gt_index: int64 index of the assigned object in its image's padded GT list, -1 =
            background.
        metric: ``s`` of the assigned pair (0 for background).
        quality: ``q`` of the assigned pair (0 for background).
        target_score: the soft classification target of the assigned class (0 for background).
    """

    gt_index: Tensor
    metric: Tensor
    quality: Tensor
    target_score: Tensor

    def counts(self, num_gt: int) -> Tensor:
        """``(B, num_gt)`` int64: positives per object."""
        b = self.gt_index.shape[0]
        out = torch.zeros(b, num_gt + 1, dtype=torch.int64, device=self.gt_index.device)
        out.scatter_add_(1, self.gt_index.clamp(min=-1) + 1, torch.ones_like(self.gt_index))
        return out[:, 1:]


def _check_shapes(expected: dict[str, tuple[Tensor | None, tuple[int, ...]]]) -> None:
    """ValueError naming the first tensor whose shape is not the expected one (None: skipped)."""
    for name, (t, shape) in expected.items():
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"cm3d: {name} must be {shape}, got {tuple(t.shape)}")


class CM3DAssigner:
    """CM3D label assignment (module docstring).

    Args:
        cfg: the parameters (defaults: alpha 0.5, beta 6, gamma 1, k 10 / 1).
    """

    def __init__(self, cfg: CM3DConfig | None = None) -> None:
        self.cfg = cfg or CM3DConfig()

    @property
    def needs_3d(self) -> bool:
        """Whether the metric uses the 3D boxes (``gamma > 0``)."""
        return self.cfg.gamma > 0

    @torch.no_grad()
    def assign(
        self,
        scores: Tensor,
        pred_boxes2d: Tensor,
        pred_boxes3d: Tensor | None,
        anchor_points: Tensor,
        gt_labels: Tensor,
        gt_boxes2d: Tensor,
        gt_boxes3d: Tensor | None,
        gt_mask: Tensor,
        topk: int,
    ) -> CM3DResult:
        """Assign one head's locations of a batch to the padded ground truth.

        Args:
            scores: ``(B, A, C)`` float class probabilities (sigmoid of the logits).
            pred_boxes2d: ``(B, A, 4)`` decoded 2D boxes ``x1, y1, x2, y2``, input pixels.
            pred_boxes3d: ``(B, A, 7)`` decoded 3D boxes in the body frame (our box
                convention, metres / radians), or ``(B, A, C, 7)`` one per class (the pair
                ``(a, g)`` then uses the box decoded with ``g``'s class); may be None when
                ``gamma == 0``.
            anchor_points: ``(A, 2)`` ``(u, v)`` location centres, input pixels.
            gt_labels: ``(B, G)`` int64 class indices (anything where ``gt_mask`` is False).
            gt_boxes2d: ``(B, G, 4)`` 2D boxes, input pixels.
            gt_boxes3d: ``(B, G, 7)`` 3D boxes, body frame; may be None when ``gamma == 0``.
            gt_mask: ``(B, G)`` bool, True for real objects (the rest is padding).
            topk: positives per object before conflicts (``cfg.topk_one2many`` /
                ``cfg.topk_one2one``).

        Returns:
            :class:`CM3DResult`.

        Raises:
            ValueError / TypeError: inconsistent shapes or dtypes; 3D boxes missing while
                ``gamma > 0``; ``topk < 1``.
        """
        if scores.dim() != 3 or gt_labels.dim() != 2:
            raise ValueError("cm3d: scores must be (B, A, C) and gt_labels (B, G)")
        b, a, c = scores.shape
        g = gt_labels.shape[1]
        per_class = pred_boxes3d is not None and pred_boxes3d.dim() == 4
        _check_shapes(
            {
                "pred_boxes2d": (pred_boxes2d, (b, a, 4)),
                "pred_boxes3d": (pred_boxes3d, (b, a, c, 7) if per_class else (b, a, 7)),
                "anchor_points": (anchor_points, (a, 2)),
                "gt_labels": (gt_labels, (b, g)),
                "gt_boxes2d": (gt_boxes2d, (b, g, 4)),
                "gt_boxes3d": (gt_boxes3d, (b, g, 7)),
                "gt_mask": (gt_mask, (b, g)),
            }
        )
        if gt_labels.dtype != torch.int64 or gt_mask.dtype != torch.bool:
            raise TypeError("cm3d: gt_labels must be int64 and gt_mask bool")
        if self.needs_3d and (pred_boxes3d is None or gt_boxes3d is None):
            raise ValueError("cm3d: gamma > 0 needs pred_boxes3d and gt_boxes3d")
        if topk < 1:
            raise ValueError(f"cm3d: topk must be >= 1, got {topk}")
        device = scores.device
        if g == 0:  # no objects: every location is background
            zero = torch.zeros((b, a), dtype=scores.dtype, device=device)
            none = torch.full((b, a), -1, dtype=torch.int64, device=device)
            return CM3DResult(none, zero, zero.clone(), zero.clone())
        uv = anchor_points.to(scores.dtype)
        lt = uv[None, None] - gt_boxes2d[:, :, None, :2]
        rb = gt_boxes2d[:, :, None, 2:] - uv[None, None]
        inside = torch.cat([lt, rb], dim=-1).amin(-1) > self.cfg.eps  # (B, G, A)
        inside &= gt_mask[:, :, None]
        bi, gi, ai = inside.nonzero(as_tuple=True)
        labels = gt_labels[bi, gi]
        p = scores[bi, ai, labels.clamp(min=0)]
        iou = image_box_iou(pred_boxes2d[bi, ai], gt_boxes2d[bi, gi], aligned=True)
        quality = iou
        metric = p.pow(self.cfg.alpha) * iou.pow(self.cfg.beta)
        if self.needs_3d:
            assert pred_boxes3d is not None and gt_boxes3d is not None
            pred3d = (
                pred_boxes3d[bi, ai, labels.clamp(min=0)] if per_class else pred_boxes3d[bi, ai]
            )
            m = mgiou_3d(pred3d, gt_boxes3d[bi, gi], aligned=True)
            term = ((1 + m) / 2).clamp(0, 1).pow(self.cfg.gamma)
            metric, quality = metric * term, quality * term
        dense_s = torch.full((b, g, a), -1.0, dtype=scores.dtype, device=device)
        dense_s[bi, gi, ai] = metric
        dense_q = torch.zeros((b, g, a), dtype=scores.dtype, device=device)
        dense_q[bi, gi, ai] = quality
        # each object keeps its k best candidates (stable: ties to the lower location index)
        order = torch.sort(dense_s, dim=-1, descending=True, stable=True).indices[..., :topk]
        keep = torch.zeros_like(inside)
        keep.scatter_(-1, order, True)
        keep &= inside
        # a location kept by several objects goes to the higher metric (ties: lower index)
        claimed = torch.where(keep, dense_s, torch.full_like(dense_s, -1.0))
        best_s, best_g = claimed.max(dim=1)  # (B, A); first maximum on ties
        pos = keep.any(dim=1)
        gt_index = torch.where(pos, best_g, torch.full_like(best_g, -1))
        final = torch.zeros_like(keep)
        final.scatter_(1, best_g[:, None, :], pos[:, None, :])
        s_pos = torch.where(final, dense_s, torch.zeros_like(dense_s))
        q_pos = torch.where(final, dense_q, torch.zeros_like(dense_q))
        norm = s_pos * q_pos.amax(-1, keepdim=True) / (s_pos.amax(-1, keepdim=True) + 1e-9)
        zero = torch.zeros_like(best_s)
        return CM3DResult(
            gt_index=gt_index,
            metric=torch.where(pos, best_s, zero),
            quality=q_pos.amax(dim=1),
            target_score=norm.amax(dim=1),
        )
