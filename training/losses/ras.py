"""RAS: Ranking-Aware adaptive Self-distillation (SR3D; our formulation).

SR3D's classification loss distils the ranking of box quality into the classifier: a positive
whose predicted box is good relative to COMPARABLE predictions gets a high soft target, and the
balance between the plain focal loss and the distillation term adapts to how well the classifier
already ranks each positive. The paper gives no exact equations; everything below is **our
formulation**.

Rank groups (``rank_group``; our formulation of "comparable predictions"): ranks are computed
among the positives of the same ground-truth box (``"gt"``, default: the ~k candidates competing
to predict one object, which NMS will choose between), of the same class in the same scene
(``"class"``, switch), or of the whole scene (``"scene"``, the earlier behaviour, kept for the
ablation). For the ``N`` positives of ONE group (``i = 1..N``), with ``g_i`` the assigned GT,
``c_i`` its class, ``x_i`` the logit of class ``c_i`` at location ``i``:

* quality ``q_i = IoU(b_i, g_i)`` of the decoded predicted box with its GT (DETACHED, given);
* soft rank (1 = best, in ``[0, 1]``)::

      rank_tau(v)_i = 1 - 1/(N-1) * sum_{j != i} sigmoid((v_j - v_i) / tau),   tau = 0.1

  defined as 1 for ``N = 1`` (a lone positive is the best of its group);
* soft target ``t_i = q_i * r_i`` with ``r = rank_tau(q)`` (detached);
* ``s_i = sigmoid(x_i)``; ranking distillation loss (the QFL form of Li et al., NeurIPS 2020,
  eq. 5, with target ``t``): ``RDL_i = |t_i - s_i|^beta * BCE(s_i, t_i)``, ``beta = 2``;
* adaptive weight ``w_i = rank_tau(s.detach())_i`` (the classifier's own soft rank of the
  positive; for ``N = 1``, ``w = 1`` by the same convention, so a lone positive is trained with
  ``RDL`` towards ``t = q``, i.e. an IoU-aware target);
* ``L_i = (1 - w_i) * Focal_i + w_i * RDL_i`` on the positive's true-class logit, ``Focal`` the
  sigmoid focal loss with target 1 (Lin et al., ICCV 2017);
* every other entry (negatives, and the non-true classes of positives) keeps the focal loss with
  target 0; with ``N = 0`` the loss is the focal loss of the negatives only.

Gradients flow through the logits only: ``q``, ``r``, ``t`` and ``w`` are detached. The loss is
summed; normalising by the number of positives (summed over the batch / GPUs) is the caller's
job, as for the focal loss.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import Reduction, onehot_targets, reduce_loss
from .focal import sigmoid_focal_loss

__all__ = [
    "RANK_GROUPS",
    "RankGroup",
    "check_assignment_inputs",
    "ras_loss",
    "ras_targets",
    "soft_rank",
]

RankGroup = Literal["gt", "class", "scene"]
#: Among which positives RAS ranks a positive (module docstring).
RANK_GROUPS: tuple[str, ...] = ("gt", "class", "scene")

# Row-chunk size of the pairwise rank matrix (bounds peak memory to ~chunk * N floats).
_RANK_CHUNK_ELEMS = 1 << 22


def soft_rank(values: Tensor, tau: float = 0.1, groups: Tensor | None = None) -> Tensor:
    """Soft rank in ``[0, 1]`` (1 = largest) of each value among the values of its group.

    ``r_i = 1 - 1/(n_i - 1) * sum_{j != i, g_j = g_i} sigmoid((v_j - v_i) / tau)``, with ``n_i``
    the size of ``i``'s group; ``r_i = 1`` when ``n_i = 1`` (our formulation, SR3D RAS).

    Args:
        values: ``(N,)`` float (e.g. IoUs or scores in ``[0, 1]``).
        tau: temperature > 0 (in the units of ``values``); 0.1.
        groups: optional ``(N,)`` int64 group id per value (e.g. the scene of each positive);
            ``None`` = one group.

    Returns:
        ``(N,)`` tensor, dtype of ``values``; differentiable (callers detach when they want a
        constant). Memory ``O(N^2)`` in row chunks.

    Raises:
        TypeError: non-tensor / non-floating ``values``.
        ValueError: ``values`` not 1-D, ``tau <= 0``, ``groups`` of another shape.
    """
    if not isinstance(values, Tensor) or not values.is_floating_point():
        raise TypeError("values must be a floating torch.Tensor")
    if values.dim() != 1:
        raise ValueError(f"values must be 1-D (N,), got {tuple(values.shape)}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    n = values.shape[0]
    if groups is not None and (not isinstance(groups, Tensor) or groups.shape != (n,)):
        raise ValueError(f"groups must be a ({n},) tensor")
    if n == 0:
        return values.clone()
    chunk = max(1, _RANK_CHUNK_ELEMS // n)
    sums, counts = [], []
    for a in range(0, n, chunk):
        vi = values[a : a + chunk]
        s = torch.sigmoid((values[None, :] - vi[:, None]) / tau)  # (chunk, N): row i, col j
        if groups is None:
            sums.append(s.sum(dim=1) - 0.5)  # the j = i term is sigmoid(0) = 0.5
        else:
            same = groups[a : a + chunk][:, None] == groups[None, :]
            sums.append((s * same).sum(dim=1) - 0.5)
            counts.append(same.sum(dim=1))
    total = torch.cat(sums)
    others = (
        (torch.cat(counts) - 1)
        if groups is not None
        else torch.full_like(total, n - 1, dtype=torch.long)
    )
    safe = others.clamp_min(1).to(values.dtype)
    return torch.where(others > 0, 1 - total / safe, torch.ones_like(total))


def ras_targets(
    ious: Tensor, scores: Tensor, tau: float = 0.1, groups: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """RAS soft targets and adaptive weights of the positives (our formulation, module docstring).

    Args:
        ious: ``(N,)`` float IoU ``q`` of each positive's predicted box with its GT, ``[0, 1]``.
        scores: ``(N,)`` float ``s = sigmoid(true-class logit)`` of each positive.
        tau: soft-rank temperature; 0.1.
        groups: optional ``(N,)`` rank group per positive (ranks are computed within a group,
            module docstring); ``None`` = one group.

    Returns:
        ``(t, w)``: soft targets ``t = q * rank(q)`` and weights ``w = rank(s)``, both ``(N,)``
        in ``[0, 1]`` and DETACHED.

    Raises:
        TypeError / ValueError: see :func:`soft_rank`; shapes differ.
    """
    if ious.shape != scores.shape:
        raise ValueError(f"ious {tuple(ious.shape)} and scores {tuple(scores.shape)} differ")
    q = ious.detach()
    t = q * soft_rank(q, tau, groups)
    w = soft_rank(scores.detach(), tau, groups)
    return t, w


def check_assignment_inputs(
    cls_logits: Tensor,
    gt_index: Tensor,
    gt_labels: Tensor,
    ious: Tensor | None,
    scene_ids: Tensor | None,
) -> None:
    """Validate the classification-loss inputs (shapes, dtypes, index / label ranges).

    Args:
        cls_logits: ``(L, C)`` float.
        gt_index: ``(L,)`` int64 in ``[-1, K)`` (-1 = background).
        gt_labels: ``(K,)`` int64 in ``[0, C)``.
        ious: ``None`` or ``(L,)`` float.
        scene_ids: ``None`` or ``(L,)`` int64.

    Raises:
        TypeError: wrong tensor types / dtypes.
        ValueError: wrong shapes, out-of-range indices or labels (one host sync).
    """
    if not isinstance(cls_logits, Tensor) or not cls_logits.is_floating_point():
        raise TypeError("cls_logits must be a floating torch.Tensor")
    if cls_logits.dim() != 2:
        raise ValueError(f"cls_logits must be (L, C), got {tuple(cls_logits.shape)}")
    n, c = cls_logits.shape
    for name, t, shape in (("gt_index", gt_index, (n,)), ("gt_labels", gt_labels, None)):
        if not isinstance(t, Tensor) or t.dtype != torch.int64:
            raise TypeError(f"{name} must be an int64 torch.Tensor")
        if shape is not None and t.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if gt_labels.dim() != 1:
        raise ValueError(f"gt_labels must be (K,), got {tuple(gt_labels.shape)}")
    k = gt_labels.shape[0]
    if ious is not None and (
        not isinstance(ious, Tensor) or not ious.is_floating_point() or ious.shape != (n,)
    ):
        raise ValueError(f"ious must be a floating ({n},) tensor")
    if scene_ids is not None and (
        not isinstance(scene_ids, Tensor)
        or scene_ids.shape != (n,)
        or scene_ids.is_floating_point()
    ):
        raise ValueError(f"scene_ids must be an integer ({n},) tensor")
    bad = torch.zeros((), dtype=torch.bool, device=gt_index.device)
    if n:
        bad = bad | ((gt_index < -1) | (gt_index >= k)).any()
    if k:
        bad = bad | ((gt_labels < 0) | (gt_labels >= c)).any().to(bad.device)
    if bool(bad):
        raise ValueError(f"gt_index must lie in [-1, {k}) and gt_labels in [0, {c})")


def ras_loss(
    cls_logits: Tensor,
    gt_index: Tensor,
    gt_labels: Tensor,
    ious: Tensor,
    tau: float = 0.1,
    beta: float = 2.0,
    focal_gamma: float = 2.0,
    focal_alpha: float = 0.25,
    scene_ids: Tensor | None = None,
    reduction: Reduction = "sum",
    rank_group: RankGroup = "gt",
) -> Tensor:
    """RAS classification loss (SR3D; our formulation, see the module docstring).

    Args:
        cls_logits: ``(L, C)`` float logits.
        gt_index: ``(L,)`` int64 assigned GT per location, ``-1`` = background (an
            :class:`~sr3d_training.assigners.AssignResult` ``gt_index``; for a batch, indices into
            the concatenated ``gt_labels``, see
            :func:`~sr3d_training.losses.collate_assignments`).
        gt_labels: ``(K,)`` int64 class of each GT, in ``[0, C)``.
        ious: ``(L,)`` float IoU of each location's predicted box with its assigned GT (values
            at negatives are ignored); always used detached.
        tau: soft-rank temperature; 0.1.
        beta: RDL modulating exponent; 2.0.
        focal_gamma, focal_alpha: focal-loss parameters; 2.0, 0.25 (Lin et al. 2017).
        scene_ids: optional ``(L,)`` int64 scene of each location (``None`` = the input is one
            scene); used by ``rank_group`` ``"class"`` and ``"scene"``.
        rank_group: among which positives a positive is ranked: ``"gt"`` (default, the
            positives of the same GT), ``"class"`` (same class and scene) or ``"scene"``
            (module docstring).
        reduction: ``"sum"`` (default; divide by the number of positives yourself), ``"mean"``
            (over all ``L * C`` entries) or ``"none"`` (``(L, C)`` per-entry losses).

    Returns:
        Scalar (or ``(L, C)``) loss, dtype of ``cls_logits``; gradients only through
        ``cls_logits``. Finite for ``N = 0`` and ``N = 1`` positives.

    Raises:
        TypeError / ValueError: invalid inputs (:func:`check_assignment_inputs`), ``tau <= 0``,
            ``beta < 0``, unknown reduction or rank group.
    """
    check_assignment_inputs(cls_logits, gt_index, gt_labels, ious, scene_ids)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if rank_group not in RANK_GROUPS:
        raise ValueError(f"rank_group must be one of {RANK_GROUPS}, got {rank_group!r}")
    onehot, pos_idx, pos_lab = onehot_targets(cls_logits, gt_index, gt_labels)
    focal = sigmoid_focal_loss(cls_logits, onehot, gamma=focal_gamma, alpha=focal_alpha)
    if pos_idx.numel():
        x = cls_logits[pos_idx, pos_lab]
        s = torch.sigmoid(x)
        q = ious.detach()[pos_idx].to(cls_logits.dtype).clamp(0.0, 1.0)
        t, w = ras_targets(
            q,
            s,
            tau,
            _rank_groups(rank_group, gt_index, pos_idx, pos_lab, scene_ids, cls_logits.shape[1]),
        )
        gap = (t - s).abs()
        if beta < 1:  # d|d|^beta/dd is infinite at 0 for beta < 1: keep the gradient finite
            gap = gap.clamp_min(1e-12)
        rdl = gap.pow(beta) * F.binary_cross_entropy_with_logits(x, t, reduction="none")
        mixed = (1 - w) * focal[pos_idx, pos_lab] + w * rdl
        focal = focal.index_put((pos_idx, pos_lab), mixed)
    return reduce_loss(focal, reduction)


def _rank_groups(
    rank_group: str,
    gt_index: Tensor,
    pos_idx: Tensor,
    pos_lab: Tensor,
    scene_ids: Tensor | None,
    num_classes: int,
) -> Tensor | None:
    """``(P,)`` rank group id of each positive (``None`` = one group: a single scene)."""
    if rank_group == "gt":
        return gt_index[pos_idx]
    scene = None if scene_ids is None else scene_ids[pos_idx].to(torch.int64)
    if rank_group == "scene":
        return scene
    return pos_lab if scene is None else scene * num_classes + pos_lab
