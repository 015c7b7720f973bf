"""VRDistill's vote refinement module (Sec. 3.2 of the paper): L layers that move the teacher's
votes towards the object centres before the student imitates them. Trained with the student,
dropped after training (never part of the student's checkpoint).

One layer, with ``x`` the current vote coordinates ``(V, 3)``, ``f`` their features ``(V, C)``,
``(x0, f0)`` the initial (unrefined) teacher votes and ``LN`` layer normalisation::

    N_self  = kNN_K(x, x)                     # the K nearest current votes (itself included)
    f = LN(f + SelfAttn(f, x; f, x; N_self))
    N_cross = kNN_K(x, x0)                    # the K nearest initial teacher votes
    f = LN(f + CrossAttn(f, x; f0, x0; N_cross))
    f = LN(f + FFN(f))                        # Linear(C, rC) - ReLU - Linear(rC, C)
    x = x + W_x f                             # coordinate update (W_x starts at zero)

with the attentions of :class:`~sr3d_training.distill.knn_attention.KnnAttention` (relative
position as positional information). The residual + post-norm order, the FFN shape and the
linear coordinate update are our formulation (the paper gives the layer's parts, not these
details); ``W_x`` starts at zero so the untrained module returns the teacher's votes unchanged.

Refinement loss (paper: an L1-type regression of the refined foreground votes to their object
centres; we use smooth L1, beta = 0.1 m): a vote is foreground when its location lies inside a
GT box (VoteNet's seed rule; the smallest such box when several hold it), and
``L_refine = mean over foreground votes of sum_xyz smoothL1(x_L - g)`` with g that box's centre
(0 when the batch has no foreground vote).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .knn_attention import KnnAttention, knn_indices

__all__ = ["RefinementLayer", "VoteRefinement", "foreground_targets", "refinement_loss"]

#: smooth-L1 transition (metres) of the refinement loss.
SMOOTH_L1_BETA = 0.1


class RefinementLayer(nn.Module):
    """One refinement layer (see the module docstring).

    Args:
        channels: C, the teacher's head-input channels.
        heads: attention heads (divide C).
        neighbors: K of both kNN masks.
        ffn_ratio: FFN hidden width / C.
    """

    def __init__(self, channels: int, heads: int, neighbors: int, ffn_ratio: int = 2) -> None:
        super().__init__()
        self.neighbors = neighbors
        self.self_attn = KnnAttention(channels, heads)
        self.cross_attn = KnnAttention(channels, heads)
        self.ffn = nn.Sequential(
            nn.Linear(channels, ffn_ratio * channels),
            nn.ReLU(inplace=True),
            nn.Linear(ffn_ratio * channels, channels),
        )
        self.norm_self = nn.LayerNorm(channels)
        self.norm_cross = nn.LayerNorm(channels)
        self.norm_ffn = nn.LayerNorm(channels)
        self.coord_update = nn.Linear(channels, 3)
        nn.init.zeros_(self.coord_update.weight)
        nn.init.zeros_(self.coord_update.bias)

    def forward(
        self, coords: Tensor, feats: Tensor, init_coords: Tensor, init_feats: Tensor, batch: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Args:
            coords: ``(V, 3)`` current vote coordinates (metres). feats: ``(V, C)``.
            init_coords / init_feats: the initial teacher votes, same shapes.
            batch: ``(V,)`` int64 scene of each vote (attention never crosses scenes).

        Returns:
            ``(coords, feats)``, the updated votes, same shapes and dtypes.
        """
        n_self = knn_indices(coords, coords, self.neighbors, batch, batch)
        feats = self.norm_self(feats + self.self_attn(feats, coords, feats, coords, n_self))
        n_cross = knn_indices(coords, init_coords, self.neighbors, batch, batch)
        feats = self.norm_cross(
            feats + self.cross_attn(feats, coords, init_feats, init_coords, n_cross)
        )
        feats = self.norm_ffn(feats + self.ffn(feats))
        return coords + self.coord_update(feats), feats


class VoteRefinement(nn.Module):
    """``num_layers`` :class:`RefinementLayer` s applied in turn to the teacher's votes.

    Args:
        channels: teacher head-input channels C.
        num_layers: L (paper: 4). heads, neighbors, ffn_ratio: per layer (K = 5 in the paper).

    Raises:
        ValueError: ``heads`` does not divide ``channels``.
    """

    def __init__(
        self,
        channels: int,
        num_layers: int = 4,
        heads: int = 4,
        neighbors: int = 5,
        ffn_ratio: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            RefinementLayer(channels, heads, neighbors, ffn_ratio) for _ in range(num_layers)
        )

    def forward(self, coords: Tensor, feats: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        """Refine teacher votes.

        Args:
            coords: ``(V, 3)`` float teacher vote coordinates (metres, input frame).
            feats: ``(V, C)`` float teacher vote features.
            batch: ``(V,)`` int64 scene of each vote.

        Returns:
            ``(coords, feats)`` after the last layer, ``(V, 3)`` and ``(V, C)``.
        """
        x, f = coords, feats
        for layer in self.layers:
            x, f = layer(x, f, coords, feats, batch)
        return x, f


def _inside(points: Tensor, boxes: Tensor) -> Tensor:
    """``(P, G)`` bool: point p inside box g (closed; yaw about +z; our box convention)."""
    rel = points[:, None, :] - boxes[None, :, :3]
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    local_x = rel[..., 0] * cos + rel[..., 1] * sin
    local_y = -rel[..., 0] * sin + rel[..., 1] * cos
    half = boxes[:, 3:6] / 2
    return (
        (local_x.abs() <= half[:, 0])
        & (local_y.abs() <= half[:, 1])
        & (rel[..., 2].abs() <= half[:, 2])
    )


def foreground_targets(
    locations: Tensor, batch: Tensor, gt_boxes: list[Tensor]
) -> tuple[Tensor, Tensor]:
    """Which votes are foreground and the centre each should reach.

    Args:
        locations: ``(V, 3)`` float vote locations (where the vote comes from, not its
            predicted centre), metres. batch: ``(V,)`` int64 scene of each vote.
        gt_boxes: per scene ``(G_b, 7)`` boxes ``(x, y, z, dx, dy, dz, yaw)``.

    Returns:
        ``(foreground (V,) bool, centres (V, 3))``: a vote is foreground when its location lies
        inside a GT box of its scene (the smallest by volume when several hold it); ``centres``
        holds that box's centre (zeros for background votes).
    """
    fg = torch.zeros(len(batch), dtype=torch.bool, device=batch.device)
    centres = torch.zeros_like(locations)
    for b, boxes in enumerate(gt_boxes):
        rows = torch.nonzero(batch == b).squeeze(1)
        if len(rows) == 0 or len(boxes) == 0:
            continue
        boxes = boxes.to(locations)
        inside = _inside(locations[rows], boxes)
        volume = boxes[:, 3:6].prod(dim=1)
        cost = torch.where(
            inside, volume[None, :], torch.full_like(inside, torch.inf, dtype=volume.dtype)
        )
        best = cost.argmin(dim=1)
        hit = inside.any(dim=1)
        fg[rows[hit]] = True
        centres[rows[hit]] = boxes[best[hit], :3]
    return fg, centres


def refinement_loss(refined: Tensor, foreground: Tensor, centres: Tensor) -> Tensor:
    """``L_refine``: mean over foreground votes of ``sum_xyz smoothL1(refined - centre)``
    (beta :data:`SMOOTH_L1_BETA`); a zero scalar (with a graph) without foreground votes.

    Args:
        refined: ``(V, 3)`` refined vote coordinates. foreground: ``(V,)`` bool.
        centres: ``(V, 3)`` target centres (:func:`foreground_targets`).

    Returns:
        Scalar tensor, metres-like units.
    """
    if not bool(foreground.any()):
        return refined.sum() * 0.0
    diff = F.smooth_l1_loss(
        refined[foreground], centres[foreground], reduction="none", beta=SMOOTH_L1_BETA
    )
    return diff.sum(dim=1).mean()
