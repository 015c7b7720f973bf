"""SPOTA: Spatial-Priority Optimal Transport Assignment (SR3D; our formulation).

SR3D trains the TR3D architecture with SPOTA, a prediction-aware assignment solved as optimal
transport with a spatial (centre) prior. The paper gives no exact equations; everything below is
**our formulation**, with the optimal-transport view of assignment taken from OTA (Ge et al.,
"OTA: Optimal Transport Assignment for Object Detection", CVPR 2021, Sec. 3) and the entropic
solver from Cuturi ("Sinkhorn Distances", NeurIPS 2013), run in the log domain.

Modules: the cost in :mod:`~sr3d_training.assigners.spota_cost`, the transport in
:mod:`~sr3d_training.assigners.transport`, the decision rules in
:mod:`~sr3d_training.assigners.spota_decision`; this module gathers candidates, batches scenes
and applies them.

Cost (our formulation). For a ground-truth box ``g`` (centre ``c_g``, metres) and a candidate
location ``a`` (position ``p_a``, decoded predicted box ``b_a``, DETACHED)::

    C(a, g) = (1 - IoU(b_a, g)) + beta * R_VD(b_a, g) + gamma_c(a, g) [+ w_cls * C_cls(a, g)]
    gamma_c(a, g) = 1 - exp(-mu * (|p_a - c_g| / s_l)^2)       (mu dimensionless)

``s_l`` is the spacing of the location lattice of ``g``'s output level ``l`` in metres (voxel
size x the level's tensor stride; read off the locations, :func:`~sr3d_training.assigners._ops.
level_spacing`). Normalising the distance by the stride (our formulation; SR3D names a centre
prior without its form) makes the prior separate the candidates INSIDE one object: the first
shell of locations around the centre (``d ~ s_l``) costs ``1 - e^-mu`` = 0.63 at ``mu = 1``,
the nearest one (``d ~ s_l / 2``) 0.22, whatever the voxel size; the earlier un-normalised
``1 - exp(-d^2 / 1 m^2)`` stayed below 0.1 within 0.3 m and hardly told them apart.

``IoU`` is :func:`sr3d_ros.geometry.box_iou_3d` (exact rotated IoU when any yaw != 0),
``R_VD`` :func:`sr3d_ros.geometry.normalized_vertex_distance` (in ``[0, 1]``). The optional
classification term (ablation ``use_cls_cost``; SR3D reports that it hurts) is the focal matching
cost of Deformable DETR (Zhu et al., ICLR 2021): ``alpha (1-p)^gamma (-log p) -
(1-alpha) p^gamma (-log(1-p))`` with ``p = sigmoid(logit of g's class at a)``.

Candidates. Only locations on ``g``'s output level (``label2level``, as in TR3D) are candidates.
Documented speed measure: of those, only the ``max_candidates`` (default 64) nearest to ``c_g``
(i.e. the lowest centre-prior cost ``gamma_c``) are scored and enter the transport problem;
``max_candidates=None`` scores all of them (exact). The 64 nearest reach ``d ~ 2.5 s_l``, where
``gamma_c > 0.99`` at ``mu = 1``: a location farther out could only win if its prediction beat
theirs by the whole prior gap; with ``M = 64 >> k = 6`` this is an approximation we accept.

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

* ``"top_mass"`` (default; SR3D: "for each ground truth, the top-k anchors with the lowest cost
  are selected as positives (k = 6)"): each GT keeps the ``min(k, n_g)`` candidates it sends
  the most mass to (the plan's ordering: cost corrected by the column competition); a location
  claimed by several GTs goes to the one with the lower cost ``C``, and a GT that lost one takes
  its next best free candidate (:func:`~sr3d_training.assigners.spota_decision.top_k_decision`),
  so a GT with ``>= k`` candidates gets exactly ``k`` positives unless its candidates are taken.
* ``"max_mass"`` (ablation; the rule an earlier specification asked for): each location goes to
  the supplier that sends it the most mass (ties -> the lowest GT index, GT before background).
  With ``k`` units per GT and a large background supply a GT's mass is spread thinly (< 0.5 per
  location) whenever many candidates cost about the same (dense locations, untrained
  predictions): the background wins them and the GT keeps fewer than ``k``. Measured with a
  random-weight model on scene0000_00 (4 cm voxels): 1-2 positives per GT with a flat prior
  (``mu = 0``), 4-5 with the stride-normalised prior at ``mu = 1``
  (``benchmarks/bench_assign_loss.py`` prints the counts of its synthetic scene).

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
GT (the same :func:`~sr3d_training.assigners.spota_decision.top_k_decision` ranked by ``C``
instead of the plan); ``ot_decision="max_mass"`` (above);
``use_vertex_distance=False`` drops ``R_VD``; ``use_cls_cost=True`` adds the classification term
(needs ``cls_logits``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ._ops import level_candidates, level_spacing
from .base import Assigner, AssignResult, SceneInputs
from .spota_cost import spota_pair_cost
from .spota_decision import (
    ensure_one_positive,
    max_mass_decision,
    top_k_decision,
    top_mass_decision,
)
from .tr3d import check_label2level
from .transport import sinkhorn_log_sparse, spota_supplies

__all__ = ["OT_DECISIONS", "SPOTAAssigner"]

#: How the transport plan becomes an assignment (see the module docstring).
OT_DECISIONS: tuple[str, ...] = ("top_mass", "max_mass")

_NEG_INF = float("-inf")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class SPOTAAssigner(Assigner):
    """SPOTA assigner (SR3D; our formulation, see the module docstring).

    Args:
        label2level: output level of each class (e.g.
            :data:`sr3d_training.assigners.TR3D_LABEL2LEVEL_SCANNET`).
        top_k: units ``k`` supplied by each GT and positives per GT (SR3D: 6).
        mu: centre-prior sharpness (dimensionless: distances in units of the level's stride);
            1.0.
        beta: weight of the normalized vertex distance; 1.0.
        sinkhorn_eps: entropic temperature in cost units; 0.1.
        sinkhorn_iters: Sinkhorn iterations; 50.
        bg_cost: background cost constant; ``None`` -> ``2 + beta`` (does not change the plan).
        max_candidates: nearest candidates per GT that are scored (speed measure); 64;
            ``None`` = all candidates on the GT's level (memory ``O(K * L_level)`` pairs).
        use_ot: ``False`` -> plain top-k lowest cost per GT (ablation).
        ot_decision: ``"top_mass"`` (default: each GT keeps the ``top_k`` locations it sends
            the most mass to; conflicts -> the lower cost) or ``"max_mass"`` (ablation: each
            location to the supplier sending it the most mass). See the module docstring.
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
        ot_decision: str = "top_mass",
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

    def _check_scene(self, scene: SceneInputs) -> None:
        if scene.pred_boxes is None:
            raise ValueError("SPOTA needs pred_boxes (L, 7): the decoded predicted boxes")
        if self.use_cls_cost:
            lg = scene.cls_logits
            shape = (scene.locations.shape[0], len(self.label2level))
            if not isinstance(lg, Tensor) or lg.shape != shape:
                got = None if not isinstance(lg, Tensor) else tuple(lg.shape)
                raise ValueError(f"use_cls_cost needs cls_logits of shape {shape}, got {got}")

    @torch.no_grad()
    def _assign_scenes(self, scenes: Sequence[SceneInputs]) -> list[AssignResult]:
        """All scenes in one cost evaluation and ONE Sinkhorn (module docstring).

        The result equals assigning each scene alone (the transport problems of different
        scenes do not interact; up to float rounding of the reductions). Computation in float32
        (float64 inputs stay float64); results on the inputs' device.
        """
        nb = len(scenes)
        device = scenes[0].locations.device
        floats = [
            t for s in scenes for t in (s.locations, s.gt_boxes, s.pred_boxes) if t is not None
        ]
        dtype = torch.float64 if any(t.dtype == torch.float64 for t in floats) else torch.float32
        n_s = [int(s.locations.shape[0]) for s in scenes]
        k_s = [int(s.gt_boxes.shape[0]) for s in scenes]
        m = max(n_s) if self.max_candidates is None else self.max_candidates
        m = max(1, min(m, max(n_s)))
        table = torch.as_tensor(self.label2level, dtype=torch.long, device=device)

        # candidates per scene (level blocks), in global location ids
        cands, d2s, loc_off = [], [], 0
        for s, n in zip(scenes, n_s):
            cand, d2 = level_candidates(
                s.locations.detach().to(dtype),
                s.levels,
                s.gt_boxes[:, :3].detach().to(dtype),
                table[s.gt_labels],
                m,
            )
            cands.append(cand + loc_off)
            d2s.append(d2)
            loc_off += n
        d2 = torch.cat(d2s)
        valid = torch.isfinite(d2)
        # centre distances in units of the level's stride (module docstring)
        levels_all = torch.cat([s.levels for s in scenes])
        spacing = level_spacing(
            torch.cat([s.locations.detach().to(dtype) for s in scenes]),
            levels_all,
            max(self.label2level) + 1,
        )
        gt_level = table[torch.cat([s.gt_labels for s in scenes])]
        d2 = d2 / spacing[gt_level].square()[:, None]
        cand = torch.where(valid, torch.cat(cands), 0)  # (R, M), R = sum K; 0 = placeholder
        cost = self._cost(scenes, cand, torch.where(valid, d2, 0.0), dtype)
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
                assigned, log_plan = self._transport(cost, valid, columns, uniq, n_s, k_s)
            else:
                need = valid.sum(dim=1).clamp(max=self.top_k)
                assigned = top_k_decision(cost, cost, need, columns, u, largest=False)
            assigned = ensure_one_positive(assigned, cost, columns)

        # back to per-scene results (GT rows -> local GT indices)
        gt_all = torch.full((loc_off,), -1, dtype=torch.long, device=device)
        gt_all[uniq] = assigned
        out, lo, go = [], 0, 0
        for i in range(nb):
            gi = gt_all[lo : lo + n_s[i]]
            rows = slice(go, go + k_s[i])
            out.append(
                self._result(
                    torch.where(gi >= 0, gi - go, gi),
                    (k_s[i], n_s[i], lo),
                    cand[rows],
                    valid[rows],
                    cost[rows],
                    None if log_plan is None else log_plan[rows],
                )
            )
            lo += n_s[i]
            go += k_s[i]
        return out

    def _cost(
        self, scenes: Sequence[SceneInputs], cand: Tensor, d2: Tensor, dtype: torch.dtype
    ) -> Tensor:
        """Cost ``(R, M)`` of each GT row with its candidates (finite everywhere)."""
        if cand.numel() == 0 or not any(s.locations.shape[0] for s in scenes):
            return d2
        gts = torch.cat([s.gt_boxes.detach().to(dtype) for s in scenes])
        preds = torch.cat(
            [s.pred_boxes.detach().to(dtype) for s in scenes if s.pred_boxes is not None]
        )
        cls_logit = None
        if self.use_cls_cost:
            logits = torch.cat([s.cls_logits.detach() for s in scenes if s.cls_logits is not None])
            labels = torch.cat([s.gt_labels for s in scenes])
            cls_logit = logits[cand, labels[:, None].expand_as(cand)]
        return spota_pair_cost(
            preds[cand],
            gts,
            d2,
            self.mu,
            self.beta if self.use_vertex_distance else 0.0,
            self.rotated,
            cls_logit,
            self.cls_cost_weight,
            self.focal_alpha,
            self.focal_gamma,
        )

    def _transport(
        self,
        cost: Tensor,
        valid: Tensor,
        columns: Tensor,
        uniq: Tensor,
        n_s: list[int],
        k_s: list[int],
    ) -> tuple[Tensor, Tensor]:
        """Supplies, one batched Sinkhorn, and the decision; returns (assigned (U,), log_plan)."""
        device, u, nb = cost.device, uniq.shape[0], len(n_s)
        scenes = torch.arange(nb, device=device)
        col_scene = torch.repeat_interleave(scenes, torch.as_tensor(n_s, device=device))[uniq]
        row_scene = torch.repeat_interleave(scenes, torch.as_tensor(k_s, device=device))
        supply, bg = spota_supplies(
            valid.sum(dim=1).to(cost.dtype), self.top_k, row_scene, col_scene, nb
        )
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
            need = valid.sum(dim=1).clamp(max=self.top_k)
            return top_mass_decision(log_plan, cost, need, columns, u), log_plan
        return max_mass_decision(log_plan, log_plan_bg, valid, columns, u), log_plan

    def _result(
        self,
        gt_index: Tensor,
        sizes: tuple[int, int, int],
        cand: Tensor,
        valid: Tensor,
        cost: Tensor,
        log_plan: Tensor | None,
    ) -> AssignResult:
        """Wrap ``gt_index``; with ``keep_cost`` scatter the compact cost / plan to ``(L, K)``.

        ``sizes`` = ``(K, L, offset of the scene's first location in the batch)``.
        """
        k, n, loc_offset = sizes
        if not self.keep_cost:
            return AssignResult(gt_index, k)
        dense = cost.new_full((n, k), float("inf"))
        rows = torch.arange(k, device=cost.device)[:, None].expand_as(cand)
        locs = cand[valid] - loc_offset
        dense[locs, rows[valid]] = cost[valid]
        plan = None
        if self.use_ot:
            plan = cost.new_zeros((n, k))
            if log_plan is not None:
                plan[locs, rows[valid]] = log_plan[valid].exp()
        return AssignResult(gt_index, k, dense, plan)
