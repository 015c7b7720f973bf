"""Votes of a dense detector (VRDistill's votes, Sec. 3.1 of the paper, for a dense detector).

VoteNet-style detectors vote object centres from seed points. For our TR3D-architecture detector
(anchor-free, dense) a **vote** is one location of a head level: its coordinate is the predicted
box centre ``x = location + (dx, dy, dz)`` (the head's regressed centre offset; metres, the
input cloud's frame) and its feature is the head-input feature at that location (the neck output
the head's 1x1 convolutions read). Our formulation (the paper has no dense-detector votes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sr3d_ros.models import HeadOutputs, TR3DDetector
from sr3d_ros.sparse import SparseTensor

__all__ = ["Votes", "dense_votes", "top_votes"]


@dataclass
class Votes:
    """Votes of a batch, every location of every head level (or a subset), one row each.

    Attributes:
        coords: ``(V, 3)`` float predicted box centres, metres, input frame.
        feats: ``(V, C)`` float head-input features.
        locations: ``(V, 3)`` float the locations the votes come from (metres).
        batch: ``(V,)`` int64 scene of each vote.
    """

    coords: Tensor
    feats: Tensor
    locations: Tensor
    batch: Tensor

    def select(self, index: Tensor) -> Votes:
        """The rows ``index`` (``(V',)`` int64 or ``(V,)`` bool)."""
        return Votes(
            self.coords[index], self.feats[index], self.locations[index], self.batch[index]
        )


def dense_votes(model: TR3DDetector, x: SparseTensor) -> tuple[HeadOutputs, Votes]:
    """Run ``model`` (backbone -> neck -> head) and read its votes.

    Args:
        model: the detector; its mode (train / eval) and grad mode are the caller's.
        x: voxelized batch at stride 1 (:func:`sr3d_ros.models.points_to_sparse`).

    Returns:
        ``(outputs, votes)``: the head outputs exactly as ``model(x)`` returns them, and the
        votes of all ``L`` locations in the same order (``votes.coords = outputs.locations +
        outputs.bbox_pred[:, :3]``; ``votes.feats`` ``(L, neck channels)``).

    Raises:
        ValueError (sparse engine): input features with the wrong channel count.
    """
    levels: list[SparseTensor] = model.neck(model.backbone(x))
    outputs: HeadOutputs = model.head(levels)
    feats = torch.cat([level.features for level in levels])
    coords = outputs.locations + outputs.bbox_pred[:, :3]
    return outputs, Votes(coords, feats, outputs.locations, outputs.batch)


def top_votes(cls_logits: Tensor, batch: Tensor, num_votes: int) -> Tensor:
    """Indices of the ``num_votes`` locations with the highest max class score in each scene.

    Args:
        cls_logits: ``(L, C)`` float logits (the teacher's).
        batch: ``(L,)`` int64 scene of each location.
        num_votes: votes per scene (a scene with fewer locations keeps all); 0 = all.

    Returns:
        ``(V,)`` int64 indices into the ``L`` locations, scene by scene, each scene's in
        descending score order (all of ``0..L-1`` in order for ``num_votes == 0``).
    """
    if num_votes == 0:
        return torch.arange(len(batch), device=batch.device)
    score = cls_logits.detach().max(dim=1).values
    picks = []
    for b in torch.unique(batch).tolist():
        rows = torch.nonzero(batch == b).squeeze(1)
        k = min(num_votes, len(rows))
        picks.append(rows[score[rows].topk(k).indices])
    if not picks:
        return torch.zeros(0, dtype=torch.long, device=batch.device)
    return torch.cat(picks)
