"""SPOTA: Spatial-Priority Optimal Transport Assignment (SR3D; our formulation).

SR3D trains the TR3D architecture with SPOTA, a prediction-aware assignment solved as optimal
transport with a spatial (centre) prior. The paper gives no exact equations; everything below is
**our formulation**, with the optimal-transport view of assignment taken from OTA (Ge et al.,
"OTA: Optimal Transport Assignment for Object Detection", CVPR 2021, Sec. 3) and the entropic
solver from Cuturi ("Sinkhorn Distances", NeurIPS 2013), run in the log domain.

Cost (our formulation). For a ground-truth box ``g`` (centre ``c_g``, metres) and a candidate
location ``a`` (position ``p_a``, decoded predicted box ``b_a``, DETACHED)::

    C(a, g) = (1 - IoU(b_a, g)) + beta * R_VD(b_a, g) + gamma_c(a, g) [+ w_cls * C_cls(a, g)]
    gamma_c(a, g) = 1 - exp(-mu * |p_a - c_g|^2)            (mu in 1 / m^2)

``IoU`` is :func:`sr3d_ros.geometry.box_iou_3d` (exact rotated IoU when any yaw != 0),
``R_VD`` :func:`sr3d_ros.geometry.normalized_vertex_distance` (in ``[0, 1]``). The optional
classification term (ablation ``use_cls_cost``; SR3D reports that it hurts) is the focal matching
cost of Deformable DETR (Zhu et al., ICLR 2021): ``alpha (1-p)^gamma (-log p) -
(1-alpha) p^gamma (-log(1-p))`` with ``p = sigmoid(logit of g's class at a)``.

Candidates. Only locations on ``g``'s output level (``label2level``, as in TR3D) are candidates.
Documented speed measure: of those, only the ``max_candidates`` (default 64) nearest to ``c_g``
(i.e. the lowest centre-prior cost ``gamma_c``) are scored and enter the transport problem;
``max_candidates=None`` scores all of them (exact). Since the other terms lie in
``[0, 1 + beta]``, a location outside the ``M`` nearest could only win if its prediction beats
theirs by more than the prior gap; with ``M = 64 >> k = 6`` this is an approximation we accept.

Optimal transport. Suppliers: each GT ``g`` with ``n_g`` candidates supplies
``s_g = min(k, n_g)`` units (``k = top_k = 6``); the background supplies
``max(U - sum_g s_g, 0)`` units, where ``U`` is the number of distinct candidate locations (every
other location can only be background, so restricting the problem to the ``U`` candidates is the
same problem as the full ``L``-location one). If ``sum_g s_g > U`` the GT supplies are scaled down
to sum to ``U``. Every location demands 1 unit. Non-candidate pairs have infinite cost (zero
transport). The background cost is a constant ``bg_cost`` for every location; default
``2 + beta`` (the supremum of the geometric foreground cost). NOTE: a constant row of the cost
matrix shifts the objective by ``bg_cost * supply`` only and is absorbed by the row dual
potential, so the transport plan (exact or entropic) does not depend on ``bg_cost`` at all; it
is configurable for readability / numerical range only (a test checks the invariance). The
entropic problem is solved by ``sinkhorn_iters`` (50) log-domain Sinkhorn iterations at
temperature ``sinkhorn_eps`` (0.1, in cost units).

Decision (``ot_decision``):

* ``"max_mass"`` (default, the rule of our SPOTA specification): each location goes to the
  supplier that sends it the most mass (ties -> the lowest GT index, GT before background).
  Caveat, measured on real ScanNet scenes (``benchmarks/bench_assign_loss.py`` prints it): a
  location goes to GT ``g`` iff its cost is below a per-GT threshold set by the
  supply, smoothed over ``eps``; when many candidates have costs within ``eps`` of each other
  (dense locations, untrained predictions) the GT's mass is spread thinly (< 0.5 per location),
  the background wins them all and the GT keeps only the one positive of the rule below.
* ``"top_mass"``: each GT keeps the ``top_k`` candidates it sends the most mass to (the plan's
  ordering: cost corrected by the column competition), a location picked by several GTs goes to
  the one sending it the most mass. This rounds the plan to ``~k`` positives per GT at any
  ``eps`` and coincides with the exact-OT assignment when ``eps -> 0``.

At least one positive per GT (our rule): a GT with candidates that received no location takes
its lowest-cost candidate that is not the only positive of another GT (if every candidate is
some GT's only positive, its lowest-cost candidate). GTs whose level has no locations get none.

Batching and implementation (ours). :meth:`SPOTAAssigner.assign_batch` solves all scenes of a
batch in ONE sparse Sinkhorn (GT rows only reach their own scene's candidates, one background
row per scene), which is the same problem as the per-scene ones, so ``assign`` is simply a batch
of one; use ``assign_batch`` in training (the iterations are the kernel-launch-bound part on
GPU). The transport works on the compact ``(sum K, M)`` entry layout with padded gathers and
dense ``logsumexp`` reductions only: deterministic on every device. Candidate distances are
computed per level block (:func:`~sr3d_training.assigners._ops.level_candidates`).

Ablations (config flags): ``use_ot=False`` replaces the transport by plain top-k lowest cost per
GT, each location going to its lowest-cost GT (TR3D's rule with SPOTA's cost);
``use_vertex_distance=False`` drops ``R_VD``; ``use_cls_cost=True`` adds the classification term
(needs ``cls_logits``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from sr3d_ros.geometry import box_iou_3d, normalized_vertex_distance

from ._ops import best_per_group, level_candidates, pad_groups, topk_then_resolve
from .base import Assigner, AssignResult, check_assign_inputs
from .tr3d import check_label2level

__all__ = [
    "OT_DECISIONS",
    "SPOTAAssigner",
    "focal_matching_cost",
    "sinkhorn_log",
    "sinkhorn_log_sparse",
]

#: How the transport plan becomes an assignment (see the module docstring).
OT_DECISIONS: tuple[str, ...] = ("max_mass", "top_mass")

_NEG_INF = float("-inf")


def sinkhorn_log(cost: Tensor, supply: Tensor, demand: Tensor, eps: float, iters: int) -> Tensor:
    """Entropic optimal transport in the log domain (Cuturi, NeurIPS 2013; log-domain updates).

    Dense reference solver. Solves ``min_P <P, C> - eps * H(P)`` s.t. ``P 1 = supply``,
    ``P^T 1 = demand`` by alternating dual updates ``f = log a - LSE_j(-C/eps + g)``,
    ``g = log b - LSE_i(-C/eps + f)``.

    Args:
        cost: ``(S, D)`` float cost; ``+inf`` marks forbidden pairs (zero mass). Every row with a
            positive supply and every column needs a finite entry.
        supply: ``(S,)`` float >= 0 (rows with 0 get no mass).
        demand: ``(D,)`` float > 0; ``supply.sum()`` should equal ``demand.sum()``.
        eps: entropic temperature > 0, in cost units.
        iters: number of (row, column) update pairs, >= 1.

    Returns:
        ``(S, D)`` log of the transport plan (``-inf`` for zero mass); the plan's column sums
        equal ``demand`` exactly (the last update is a column update).

    Raises:
        ValueError: ``eps <= 0`` or ``iters < 1``.
    """
    _check_sinkhorn(eps, iters)
    log_k = -cost / eps
    active = supply > 0
    log_a = torch.log(supply.clamp_min(torch.finfo(cost.dtype).tiny))
    log_b = torch.log(demand)
    neg_inf = torch.full_like(log_a, _NEG_INF)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(iters):
        f = torch.where(active, log_a - torch.logsumexp(log_k + g[None, :], dim=1), neg_inf)
        g = log_b - torch.logsumexp(log_k + f[:, None], dim=0)
    return log_k + f[:, None] + g[None, :]


def _check_sinkhorn(eps: float, iters: int) -> None:
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")


def sinkhorn_log_sparse(
    cost: Tensor,
    columns: Tensor,
    num_columns: int,
    supply: Tensor,
    column_group: Tensor,
    bg_supply: Tensor,
    bg_cost: float,
    eps: float,
    iters: int,
) -> tuple[Tensor, Tensor]:
    """Log-domain Sinkhorn for SPOTA's sparse problem (our implementation of
    :func:`sinkhorn_log` on a sparse layout; same fixed point).

    Rows: ``R`` GT suppliers with ``M`` entries each (``cost`` / ``columns``), plus ``B``
    background suppliers; background ``b`` reaches every column of group ``b`` (its scene) at
    the constant cost ``bg_cost``. Every column demands 1. Each iteration does gathers and dense
    ``logsumexp`` over ``(R, M)``, ``(U, D + 1)`` (``D`` = most entries of a column) and
    ``(B, U_max)`` padded matrices: ~``R * M + U * D`` exponentials instead of ``(R + B) * U``,
    and no atomics (deterministic on GPU).

    Args:
        cost: ``(R, M)`` float; ``inf`` = no entry.
        columns: ``(R, M)`` int64 column in ``[0, U)`` of each entry (any valid id where
            ``cost`` is ``inf``); a row uses a column at most once, and only columns of its group.
        num_columns: ``U``; every column needs a finite entry in a row with positive supply.
        supply: ``(R,)`` float >= 0 units of each GT (rows with 0 send nothing).
        column_group: ``(U,)`` int64 background group (scene) of each column, in ``[0, B)``.
        bg_supply: ``(B,)`` float >= 0 units of each background row.
        bg_cost: the constant background cost.
        eps, iters: as :func:`sinkhorn_log`.

    Returns:
        ``(log_plan (R, M), log_plan_bg (U,))``: log mass each entry / each column's background
        carries (``-inf`` for none); column sums are exactly 1 (last update = columns).

    Raises:
        ValueError: ``eps <= 0`` or ``iters < 1``.
    """
    _check_sinkhorn(eps, iters)
    r, m = cost.shape
    u, b = num_columns, bg_supply.shape[0]
    log_k = -cost / eps  # (R, M), -inf = no entry
    log_k_bg = -bg_cost / eps
    tiny = torch.finfo(cost.dtype).tiny
    neg1 = cost.new_full((1,), _NEG_INF)
    active = supply > 0
    log_a = torch.log(supply.clamp_min(tiny))
    bg_on = bg_supply > 0
    log_bg = torch.log(bg_supply.clamp_min(tiny)) - log_k_bg
    with torch.no_grad():
        entry_ok = torch.isfinite(cost).reshape(-1)
        entries = entry_ok.nonzero().flatten()  # flat ids of the real entries
        col_slots = pad_groups(columns.reshape(-1)[entries], u, entries.numel())
        col_entries = torch.cat([entries, entries.new_full((1,), r * m)])[col_slots]  # (U, D)
        members = pad_groups(column_group, b, u)  # (B, U_max), pad -> index u
    g = cost.new_zeros(u)
    f = cost.new_zeros(r)
    f_bg = cost.new_zeros(b)
    for _ in range(iters):
        f = torch.where(active, log_a - torch.logsumexp(log_k + g[columns], dim=1), _NEG_INF)
        f_bg = torch.where(
            bg_on, log_bg - torch.logsumexp(torch.cat([g, neg1])[members], dim=1), _NEG_INF
        )
        v = torch.cat([(log_k + f[:, None]).reshape(-1), neg1])[col_entries]  # (U, D)
        v_bg = (log_k_bg + f_bg)[column_group]  # (U,)
        g = -torch.logsumexp(torch.cat([v, v_bg[:, None]], dim=1), dim=1)
    return log_k + f[:, None] + g[columns], log_k_bg + f_bg[column_group] + g


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


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class SPOTAAssigner(Assigner):
    """SPOTA assigner (SR3D; our formulation, see the module docstring).

    Args:
        label2level: output level of each class (e.g.
            :data:`sr3d_training.assigners.TR3D_LABEL2LEVEL_SCANNET`).
        top_k: units ``k`` supplied by each GT (OT) or positives per GT (``use_ot=False``); 6.
        mu: centre-prior sharpness, 1 / m^2; 1.0.
        beta: weight of the normalized vertex distance; 1.0.
        sinkhorn_eps: entropic temperature in cost units; 0.1.
        sinkhorn_iters: Sinkhorn iterations; 50.
        bg_cost: background cost constant; ``None`` -> ``2 + beta`` (does not change the plan).
        max_candidates: nearest candidates per GT that are scored (speed measure); 64;
            ``None`` = all candidates on the GT's level (memory ``O(K * L_level)`` pairs).
        use_ot: ``False`` -> plain top-k lowest cost per GT (ablation).
        ot_decision: ``"max_mass"`` (default: each location to the supplier sending it the most
            mass) or ``"top_mass"`` (each GT keeps the ``top_k`` locations it sends the most
            mass to; conflicts -> the larger mass). See the module docstring.
        use_vertex_distance: ``False`` -> drop the ``R_VD`` term (ablation).
        use_cls_cost: ``True`` -> add ``cls_cost_weight`` x focal matching cost (ablation; needs
            ``cls_logits``).
        cls_cost_weight: weight of the classification cost; 1.0.
        focal_alpha, focal_gamma: parameters of the classification cost; 0.25, 2.0.
        rotated: IoU mode (see :func:`sr3d_ros.geometry.box_iou_3d`); ``None`` = automatic.
        keep_cost: store the dense ``(L, K)`` cost (``inf`` for non-scored pairs) and, with OT,
            the ``(L, K)`` plan in the result (debugging).

    Raises:
        TypeError / ValueError: invalid parameters.
    """

    def __init__(
        self,
        label2level: Sequence[int],
        top_k: int = 6,
        mu: float = 1.0,
        beta: float = 1.0,
        sinkhorn_eps: float = 0.1,
        sinkhorn_iters: int = 50,
        bg_cost: float | None = None,
        max_candidates: int | None = 64,
        use_ot: bool = True,
        ot_decision: str = "max_mass",
        use_vertex_distance: bool = True,
        use_cls_cost: bool = False,
        cls_cost_weight: float = 1.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        rotated: bool | None = None,
        keep_cost: bool = False,
    ) -> None:
        self.label2level = check_label2level(label2level)
        if not _is_int(top_k) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
        if max_candidates is not None and (not _is_int(max_candidates) or max_candidates < top_k):
            raise ValueError(
                f"max_candidates must be None or an int >= top_k, got {max_candidates!r}"
            )
        for name, v in (
            ("mu", mu),
            ("beta", beta),
            ("cls_cost_weight", cls_cost_weight),
            ("focal_gamma", focal_gamma),
        ):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        if not (math.isfinite(sinkhorn_eps) and sinkhorn_eps > 0):
            raise ValueError(f"sinkhorn_eps must be finite and > 0, got {sinkhorn_eps}")
        if not _is_int(sinkhorn_iters) or sinkhorn_iters < 1:
            raise ValueError(f"sinkhorn_iters must be an int >= 1, got {sinkhorn_iters!r}")
        if not 0 <= focal_alpha <= 1:
            raise ValueError(f"focal_alpha must be in [0, 1], got {focal_alpha}")
        if ot_decision not in OT_DECISIONS:
            raise ValueError(f"ot_decision must be one of {OT_DECISIONS}, got {ot_decision!r}")
        if bg_cost is not None and not math.isfinite(bg_cost):
            raise ValueError(f"bg_cost must be finite, got {bg_cost}")
        self.top_k = top_k
        self.mu = float(mu)
        self.beta = float(beta)
        self.sinkhorn_eps = float(sinkhorn_eps)
        self.sinkhorn_iters = sinkhorn_iters
        self.bg_cost = float(2.0 + self.beta) if bg_cost is None else float(bg_cost)
        self.max_candidates = max_candidates
        self.use_ot = bool(use_ot)
        self.ot_decision = ot_decision
        self.use_vertex_distance = bool(use_vertex_distance)
        self.use_cls_cost = bool(use_cls_cost)
        self.cls_cost_weight = float(cls_cost_weight)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        self.rotated = rotated
        self.keep_cost = bool(keep_cost)

    def __repr__(self) -> str:
        return (
            f"SPOTAAssigner(top_k={self.top_k}, mu={self.mu}, beta={self.beta}, "
            f"eps={self.sinkhorn_eps}, iters={self.sinkhorn_iters}, "
            f"max_candidates={self.max_candidates}, use_ot={self.use_ot}, "
            f"ot_decision={self.ot_decision!r}, "
            f"use_vertex_distance={self.use_vertex_distance}, use_cls_cost={self.use_cls_cost})"
        )

    # ------------------------------------------------------------------------------------------
    def _pair_cost(
        self,
        cand: Tensor,
        d2: Tensor,
        preds: Tensor,
        gts: Tensor,
        labels: Tensor,
        logits: Tensor | None,
    ) -> Tensor:
        """Cost ``(R, M)`` of each GT row with its ``M`` candidates (finite everywhere)."""
        r, m = cand.shape
        pb = preds[cand]  # (R, M, 7)
        gb = gts[:, None, :].expand(r, m, 7)
        cost = 1.0 - box_iou_3d(pb, gb, aligned=True, rotated=self.rotated)
        if self.use_vertex_distance and self.beta > 0:
            cost = cost + self.beta * normalized_vertex_distance(pb, gb)
        cost = cost + (1.0 - torch.exp(-self.mu * d2))
        if logits is not None:
            logit = logits[cand, labels[:, None].expand(r, m)].to(cost.dtype)
            cost = cost + self.cls_cost_weight * focal_matching_cost(
                logit, self.focal_alpha, self.focal_gamma
            )
        return cost

    @staticmethod
    def _ensure_one(assigned: Tensor, cost: Tensor, columns: Tensor) -> Tensor:
        """Give every GT with a candidate at least one positive (our rule, module docstring).

        Vectorised rounds: each GT without positives proposes its lowest-cost candidate that is
        background or not the only positive of its GT; per location the lowest-cost proposal
        wins and per previous owner at most one location is taken, so nobody is emptied and each
        round fixes >= 1 GT. GTs left without an eligible candidate (all their candidates are
        other GTs' only positives) take their lowest-cost candidate anyway, in GT order.

        Args:
            assigned: ``(U,)`` int64 GT row per compact location, -1 = background.
            cost: ``(R, M)`` cost, ``inf`` = no entry.
            columns: ``(R, M)`` int64 compact location of each entry.
        """
        k, u = cost.shape[0], assigned.shape[0]
        finite = torch.isfinite(cost)
        has_cand = finite.any(dim=1)
        counts = torch.bincount(assigned[assigned >= 0], minlength=k)
        empty = (counts == 0) & has_cand
        if not bool(empty.any()):
            return assigned
        assigned = assigned.clone()
        for _ in range(k):
            owner = assigned[columns]  # (R, M)
            owner_cnt = torch.where(owner >= 0, counts[owner.clamp_min(0)], 0)
            eligible = finite & ((owner < 0) | (owner_cnt > 1)) & empty[:, None]
            best_c, best_m = torch.where(eligible, cost, float("inf")).min(dim=1)
            rows = torch.isfinite(best_c).nonzero().flatten()
            if rows.numel() == 0:
                break
            locs, vals = columns[rows, best_m[rows]], best_c[rows]
            win = best_per_group(vals, locs, u, largest=False)  # one proposal per location
            keep = torch.zeros_like(rows, dtype=torch.bool)
            keep[win[win >= 0]] = True
            prev = assigned[locs]
            steal = keep & (prev >= 0)
            per_owner = best_per_group(
                torch.where(steal, vals, float("inf")), prev.clamp_min(0), k, largest=False
            )
            one_per_owner = torch.zeros_like(keep)
            one_per_owner[per_owner[per_owner >= 0]] = True
            keep &= (prev < 0) | (steal & one_per_owner)
            rows, locs, prev = rows[keep], locs[keep], prev[keep]
            assigned[locs] = rows
            counts.index_add_(0, rows, torch.ones_like(rows))
            stolen = prev[prev >= 0]
            counts.index_add_(0, stolen, -torch.ones_like(stolen))
            empty = (counts == 0) & has_cand
            if not bool(empty.any()):
                return assigned
        for g in empty.nonzero().flatten().tolist():  # no eligible candidate left: rare
            j = columns[g, int(cost[g].argmin())]
            prev_owner = int(assigned[j])
            if prev_owner >= 0:
                counts[prev_owner] -= 1
            assigned[j] = g
            counts[g] += 1
        return assigned

    # ------------------------------------------------------------------------------------------
    def assign(
        self,
        locations: Tensor,
        levels: Tensor,
        gt_boxes: Tensor,
        gt_labels: Tensor,
        pred_boxes: Tensor | None = None,
        cls_logits: Tensor | None = None,
    ) -> AssignResult:
        """Assign one scene with SPOTA (our formulation, module docstring).

        Args:
            locations: ``(L, 3)`` float, metres.
            levels: ``(L,)`` int64 output level per location.
            gt_boxes: ``(K, 7)`` float boxes (project convention).
            gt_labels: ``(K,)`` int64 in ``[0, len(label2level))``.
            pred_boxes: ``(L, 7)`` float decoded predicted boxes (required; used detached).
            cls_logits: ``(L, C)`` float logits, ``C == len(label2level)``; required only with
                ``use_cls_cost`` (used detached), otherwise ignored.

        Returns:
            :class:`AssignResult` (``gt_index (L,)`` int64, ``-1`` = background; ``cost`` /
            ``plan`` ``(L, K)`` when ``keep_cost``). Computation in float32 (float64 inputs
            stay float64); the result lives on the inputs' device.

        Raises:
            TypeError / ValueError: invalid inputs (:func:`check_assign_inputs`), missing
                ``pred_boxes``, missing / mis-shaped ``cls_logits`` with ``use_cls_cost``,
                negative / NaN predicted sizes (from the geometry module).
        """
        return self.assign_batch(
            [locations],
            [levels],
            [gt_boxes],
            [gt_labels],
            [pred_boxes],  # type: ignore[list-item]
            None if cls_logits is None else [cls_logits],
        )[0]

    @torch.no_grad()
    def assign_batch(
        self,
        locations: Sequence[Tensor],
        levels: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        pred_boxes: Sequence[Tensor] | None = None,
        cls_logits: Sequence[Tensor] | None = None,
    ) -> list[AssignResult]:
        """Assign ``B`` scenes jointly: one cost evaluation and ONE Sinkhorn for the batch.

        The result equals ``[assign(scene) for scene in batch]`` (the transport problems of
        different scenes do not interact; up to float rounding of the reductions).

        Args:
            locations, levels, gt_boxes, gt_labels: sequences of ``B`` per-scene tensors
                (shapes as in :meth:`assign`).
            pred_boxes: sequence of ``B`` ``(L_b, 7)`` tensors (required).
            cls_logits: sequence of ``B`` ``(L_b, C)`` tensors (only with ``use_cls_cost``).

        Returns:
            ``B`` :class:`AssignResult` objects, in order.

        Raises:
            ValueError / TypeError: as :meth:`assign`; sequences of different lengths.
        """
        nb = len(locations)
        if pred_boxes is None:
            raise ValueError("SPOTA needs pred_boxes (L, 7): the decoded predicted boxes")
        seqs = [levels, gt_boxes, gt_labels, pred_boxes]
        if cls_logits is not None:
            seqs.append(cls_logits)
        if any(len(x) != nb for x in seqs):
            raise ValueError("all per-scene sequences must have the same length")
        c = len(self.label2level)
        for i in range(nb):
            if pred_boxes[i] is None:
                raise ValueError("SPOTA needs pred_boxes (L, 7): the decoded predicted boxes")
            check_assign_inputs(
                locations[i], levels[i], gt_boxes[i], gt_labels[i], pred_boxes[i], c
            )
            if self.use_cls_cost:
                lg = None if cls_logits is None else cls_logits[i]
                n_i = locations[i].shape[0]
                if not isinstance(lg, Tensor) or lg.shape != (n_i, c):
                    got = None if not isinstance(lg, Tensor) else tuple(lg.shape)
                    raise ValueError(
                        f"use_cls_cost needs cls_logits of shape ({n_i}, {c}), got {got}"
                    )
        if nb == 0:
            return []
        device = locations[0].device
        dtype = torch.float32
        for t in (*locations, *gt_boxes, *pred_boxes):
            if t.dtype == torch.float64:
                dtype = torch.float64
        n_s = [int(x.shape[0]) for x in locations]
        k_s = [int(x.shape[0]) for x in gt_boxes]
        m = max(n_s) if self.max_candidates is None else self.max_candidates
        m = max(1, min(m, max(n_s)))
        table = torch.as_tensor(self.label2level, dtype=torch.long, device=device)

        # candidates per scene (level blocks), in global location ids
        cands, d2s, loc_off = [], [], 0
        for i in range(nb):
            cand, d2 = level_candidates(
                locations[i].detach().to(dtype),
                levels[i],
                gt_boxes[i][:, :3].detach().to(dtype),
                table[gt_labels[i]],
                m,
            )
            cands.append(cand + loc_off)
            d2s.append(d2)
            loc_off += n_s[i]
        d2 = torch.cat(d2s)
        valid = torch.isfinite(d2)
        cand = torch.where(valid, torch.cat(cands), 0)  # (R, M), R = sum K; 0 = placeholder
        r = cand.shape[0]
        gts = torch.cat([x.detach().to(dtype) for x in gt_boxes])
        labels = torch.cat(list(gt_labels))
        preds = torch.cat([x.detach().to(dtype) for x in pred_boxes])
        logits = None
        if self.use_cls_cost and cls_logits is not None:
            logits = torch.cat([x.detach() for x in cls_logits])
        if r and loc_off:
            cost = self._pair_cost(cand, torch.where(valid, d2, 0.0), preds, gts, labels, logits)
        else:
            cost = d2
        cost = torch.where(valid, cost, torch.full_like(cost, float("inf")))

        # compact ids of the U distinct candidate locations (sorted, so scenes are contiguous)
        uniq, inv = torch.unique(cand[valid], return_inverse=True)
        u = uniq.shape[0]
        columns = torch.zeros_like(cand)
        columns[valid] = inv
        log_plan = None
        assigned = torch.full((u,), -1, dtype=torch.long, device=device)
        if u > 0:
            if self.use_ot:
                assigned, log_plan = self._transport(cost, valid, columns, u, uniq, n_s, k_s)
            else:
                assigned = topk_then_resolve(
                    cost, self.top_k, largest=False, columns=columns, num_columns=u
                )
            assigned = self._ensure_one(assigned, cost, columns)

        # back to per-scene results (GT rows -> local GT indices)
        gt_all = torch.full((loc_off,), -1, dtype=torch.long, device=device)
        gt_all[uniq] = assigned
        out, lo, go = [], 0, 0
        for i in range(nb):
            gi = gt_all[lo : lo + n_s[i]]
            gi = torch.where(gi >= 0, gi - go, gi)
            out.append(
                self._result(
                    gi,
                    k_s[i],
                    n_s[i],
                    lo,
                    dtype,
                    device,
                    cand[go : go + k_s[i]],
                    valid[go : go + k_s[i]],
                    cost[go : go + k_s[i]],
                    None if log_plan is None else log_plan[go : go + k_s[i]],
                )
            )
            lo += n_s[i]
            go += k_s[i]
        return out

    def _transport(
        self,
        cost: Tensor,
        valid: Tensor,
        columns: Tensor,
        u: int,
        uniq: Tensor,
        n_s: list[int],
        k_s: list[int],
    ) -> tuple[Tensor, Tensor]:
        """Supplies, one batched Sinkhorn, and the decision; returns (assigned (U,), log_plan)."""
        device, dtype = cost.device, cost.dtype
        r, m = cost.shape
        nb = len(n_s)
        scene_of_loc = torch.repeat_interleave(
            torch.arange(nb, device=device), torch.as_tensor(n_s, device=device)
        )
        col_scene = scene_of_loc[uniq]  # (U,)
        row_scene = torch.repeat_interleave(
            torch.arange(nb, device=device), torch.as_tensor(k_s, device=device)
        )
        u_s = torch.bincount(col_scene, minlength=nb).to(dtype)  # candidate locations / scene
        supply = valid.sum(dim=1).to(dtype).clamp(max=float(self.top_k))
        s_s = torch.zeros(nb, dtype=dtype, device=device).index_add_(0, row_scene, supply)
        scale = (u_s / s_s.clamp_min(1.0)).clamp(max=1.0)
        supply = supply * scale[row_scene]
        bg = (u_s - s_s * scale).clamp_min(0.0)
        log_plan, log_plan_bg = sinkhorn_log_sparse(
            cost,
            columns,
            u,
            supply,
            col_scene,
            bg,
            self.bg_cost,
            self.sinkhorn_eps,
            self.sinkhorn_iters,
        )
        log_plan = torch.where(valid, log_plan, _NEG_INF)
        if self.ot_decision == "top_mass":
            return topk_then_resolve(
                log_plan, self.top_k, largest=True, columns=columns, num_columns=u
            ), log_plan
        flat = valid.reshape(-1)
        rows = torch.arange(r, device=device)[:, None].expand(r, m).reshape(-1)[flat]
        vals = log_plan.reshape(-1)[flat]
        best = best_per_group(vals, columns.reshape(-1)[flat], u, largest=True)  # ties: low row
        gt_wins = vals[best] >= log_plan_bg  # ties -> the GT (GT rows before background)
        return torch.where(gt_wins, rows[best], torch.full_like(best, -1)), log_plan

    def _result(
        self,
        gt_index: Tensor,
        k: int,
        n: int,
        loc_offset: int,
        dtype: torch.dtype,
        device: torch.device,
        cand: Tensor,
        valid: Tensor,
        cost: Tensor,
        log_plan: Tensor | None,
    ) -> AssignResult:
        """Wrap ``gt_index``; with ``keep_cost`` scatter the compact cost / plan to ``(L, K)``."""
        if not self.keep_cost:
            return AssignResult(gt_index, k)
        dense = torch.full((n, k), float("inf"), dtype=dtype, device=device)
        rows = torch.arange(k, device=device)[:, None].expand_as(cand)
        locs = cand[valid] - loc_offset
        dense[locs, rows[valid]] = cost[valid]
        plan = None
        if self.use_ot:
            plan = torch.zeros((n, k), dtype=dtype, device=device)
            if log_plan is not None:
                plan[locs, rows[valid]] = log_plan[valid].exp()
        return AssignResult(gt_index, k, dense, plan)
