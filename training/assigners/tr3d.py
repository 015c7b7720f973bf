"""TR3D label assignment: per-class output level, top-k nearest locations to the box centre.

Source: Rukhovich, Vorontsova, Konushin, "TR3D: Towards Real-Time Indoor 3D Object Detection",
ICIP 2023, Sec. 3 ("Assigner"): every ground-truth box is assigned to one head output level
fixed by its class (large classes to the coarse level, small ones to the fine level), and on
that level the ``top_k = 6`` locations nearest to the box centre become its positives; a
location claimed by several boxes goes to the box with the nearest centre. The per-class level
tables below are the ones published with the paper's configs (read for facts only).

Implementation (ours): per output level, one ``(K_l, L_l)`` squared-distance block between the
boxes and the locations of that level, ``topk`` per box, then each picked location to the
picking box with the nearest centre; vectorised, deterministic given the distances, a few host
syncs (input checks, the set of levels).
Differences from the published code, on purpose: exactly ``min(top_k, n_candidates)``
locations are chosen per box (the published threshold test ``d < d_(k+1)`` keeps fewer than
``k`` when distances tie and drops the farthest candidate when the scene has ``<= k``
locations in total). Exact distance ties between locations at the k-th place are broken by
``torch.topk`` (unspecified order); ties between boxes go to the lower box index.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sr3d_ros.classes import SCANNET_LABEL2LEVEL, SUNRGBD_LABEL2LEVEL

from ._ops import level_candidates, squared_center_distance, topk_then_resolve
from .base import Assigner, AssignResult, SceneInputs

__all__ = [
    "TR3D_LABEL2LEVEL_S3DIS",
    "TR3D_LABEL2LEVEL_SCANNET",
    "TR3D_LABEL2LEVEL_SUNRGBD",
    "TR3DAssigner",
    "check_label2level",
]

#: TR3D level per ScanNet class, in :data:`sr3d_training.datasets.SCANNET_CLASSES` order
#: (cabinet, bed, chair, sofa, table, door, window, bookshelf, picture, counter, desk, curtain,
#: refrigerator, showercurtrain, toilet, sink, bathtub, garbagebin); 0 = finest output level.
TR3D_LABEL2LEVEL_SCANNET: tuple[int, ...] = SCANNET_LABEL2LEVEL
#: TR3D level per SUN RGB-D class, :data:`sr3d_training.datasets.SUNRGBD_CLASSES` order (bed,
#: table, sofa, chair, toilet, desk, dresser, night_stand, bookshelf, bathtub).
TR3D_LABEL2LEVEL_SUNRGBD: tuple[int, ...] = SUNRGBD_LABEL2LEVEL
#: TR3D level per S3DIS class (table, chair, sofa, bookcase, board).
TR3D_LABEL2LEVEL_S3DIS: tuple[int, ...] = (1, 0, 1, 1, 0)


def check_label2level(label2level: Sequence[int]) -> tuple[int, ...]:
    """Validate a class -> output-level table and return it as a tuple of ints.

    Args:
        label2level: one non-negative int per class (index = class id).

    Returns:
        The table as ``tuple[int, ...]``.

    Raises:
        TypeError: not a sequence of ints (bools and floats are rejected).
        ValueError: empty, or a negative level.
    """
    if isinstance(label2level, (str, bytes)) or not isinstance(label2level, Sequence):
        raise TypeError(f"label2level must be a sequence of ints, got {type(label2level).__name__}")
    out = []
    for v in label2level:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"label2level entries must be ints, got {v!r}")
        if v < 0:
            raise ValueError(f"label2level entries must be >= 0, got {v}")
        out.append(int(v))
    if not out:
        raise ValueError("label2level must have one entry per class (got an empty table)")
    return tuple(out)


class TR3DAssigner(Assigner):
    """TR3D assigner (Rukhovich et al., ICIP 2023, Sec. 3): see the module docstring.

    Args:
        label2level: output level of each class (e.g. :data:`TR3D_LABEL2LEVEL_SCANNET`).
        top_k: positives per ground-truth box (paper: 6), >= 1.
        keep_cost: store the ``(L, K)`` squared centre distance (``inf`` off-level) in
            :attr:`AssignResult.cost` for debugging.

    Raises:
        TypeError / ValueError: invalid ``label2level`` or ``top_k < 1``.
    """

    def __init__(self, label2level: Sequence[int], top_k: int = 6, keep_cost: bool = False) -> None:
        self.label2level = check_label2level(label2level)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
        self.top_k = top_k
        self.keep_cost = bool(keep_cost)

    def __repr__(self) -> str:
        return f"TR3DAssigner(top_k={self.top_k}, label2level={list(self.label2level)})"

    @torch.no_grad()
    def _assign_scenes(self, scenes: Sequence[SceneInputs]) -> list[AssignResult]:
        """TR3D (Sec. 3) scene by scene; predictions are not used.

        Each box gets ``min(top_k, #locations on its level)`` candidates; a candidate shared by
        several boxes goes to the one with the nearest centre, so a box may end with fewer (even
        0) positives. ``K = 0``, ``L = 0`` or a level without locations give background.
        """
        return [self._assign_one(s) for s in scenes]

    def _assign_one(self, scene: SceneInputs) -> AssignResult:
        locations, levels, gt_boxes = scene.locations, scene.levels, scene.gt_boxes
        n, k = locations.shape[0], gt_boxes.shape[0]
        device = locations.device
        background = torch.full((n,), -1, dtype=torch.long, device=device)
        if n == 0 or k == 0:
            cost = locations.new_full((n, k), float("inf")) if self.keep_cost else None
            return AssignResult(background, k, cost)

        table = torch.as_tensor(self.label2level, dtype=torch.long, device=device)
        gt_levels = table[scene.gt_labels]
        cand, d2 = level_candidates(locations, levels, gt_boxes[:, :3], gt_levels, self.top_k)
        gt_index = topk_then_resolve(d2, self.top_k, largest=False, columns=cand, num_columns=n)
        cost = None
        if self.keep_cost:
            cost = squared_center_distance(gt_boxes[:, :3], locations)  # (K, L)
            cost.masked_fill_(gt_levels[:, None] != levels[None, :], float("inf"))
            cost = cost.T
        return AssignResult(gt_index, k, cost)
