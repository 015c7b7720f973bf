"""SPOTA decision rules: how a transport plan (or a cost) becomes positives (SR3D; our
formulation, see :mod:`sr3d_training.assigners.spota` for when each rule applies).

All rules work on SPOTA's compact layout: ``R`` GT rows with ``M`` entries each, ``columns``
``(R, M)`` int64 naming the compact candidate location (``[0, U)``) of each entry, and return
``(U,)`` int64 the GT row each location is assigned to (``-1`` = background). Vectorised and
deterministic (ties go to the lowest row / entry index).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._ops import best_per_group

__all__ = ["ensure_one_positive", "max_mass_decision", "top_k_decision", "top_mass_decision"]


def max_mass_decision(
    log_plan: Tensor, log_plan_bg: Tensor, valid: Tensor, columns: Tensor, num_columns: int
) -> Tensor:
    """Each location goes to the supplier sending it the most mass (GT or background).

    Ties between GTs go to the lowest row, ties between a GT and the background to the GT.

    Args:
        log_plan: ``(R, M)`` log mass of each GT entry (``-inf`` = none).
        log_plan_bg: ``(U,)`` log mass the background sends to each location.
        valid: ``(R, M)`` bool real entries.
        columns: ``(R, M)`` int64 compact location of each entry.
        num_columns: ``U``.

    Returns:
        ``(U,)`` int64 GT row per location, ``-1`` = background.
    """
    r, m = log_plan.shape
    flat = valid.reshape(-1)
    rows = torch.arange(r, device=log_plan.device)[:, None].expand(r, m).reshape(-1)[flat]
    vals = log_plan.reshape(-1)[flat]
    best = best_per_group(vals, columns.reshape(-1)[flat], num_columns, largest=True)
    gt_wins = vals[best] >= log_plan_bg  # ties -> the GT (GT rows before background)
    return torch.where(gt_wins, rows[best], torch.full_like(best, -1))


def top_k_decision(
    score: Tensor, cost: Tensor, need: Tensor, columns: Tensor, num_columns: int, largest: bool
) -> Tensor:
    """Each GT takes its ``need`` best candidates by ``score``; conflicts go to the lower cost.

    Rounds (our formulation of SR3D's "top-k anchors per ground truth"): every GT still short of
    ``need[r]`` positives proposes its best free candidates (by ``score``, as many as it lacks);
    a location proposed by several GTs goes to the one with the lowest ``cost`` (ties -> the
    lowest row). A GT that lost a location proposes its next best free one in the next round, so
    a GT ends with ``need[r]`` positives unless fewer of its candidates are left free. Each round
    assigns at least one location; one host sync per round (usually 1-3 rounds).

    Args:
        score: ``(R, M)`` ranking score of each entry (the transport plan's log mass with
            ``largest=True``, or the cost itself with ``largest=False``).
        cost: ``(R, M)`` cost ``C``; ``inf`` marks entries that do not exist (never picked).
        need: ``(R,)`` int64 positives each GT should get (e.g. ``min(k, n_g)``).
        columns: ``(R, M)`` int64 compact location of each entry; a row names a column at most
            once.
        num_columns: ``U``.
        largest: rank by the largest (``True``) or smallest (``False``) score.

    Returns:
        ``(U,)`` int64 GT row per location, ``-1`` = background.
    """
    r, m = cost.shape
    assigned = torch.full((num_columns,), -1, dtype=torch.long, device=cost.device)
    if r == 0 or m == 0:
        return assigned
    valid = torch.isfinite(cost)
    key = torch.where(valid, -score if largest else score, float("inf"))
    order = torch.sort(key, dim=1, stable=True).indices  # best first; missing entries last
    cols = torch.gather(columns, 1, order)
    ok = torch.gather(valid, 1, order)
    costs = torch.gather(cost, 1, order)
    count = torch.zeros(r, dtype=torch.long, device=cost.device)
    for _ in range(num_columns):
        free = ok & (assigned[cols] < 0)
        lacking = (need - count).clamp_min(0)
        propose = free & (torch.cumsum(free, dim=1) <= lacking[:, None])
        rows, slots = propose.nonzero(as_tuple=True)  # row-major: rows ascending
        if rows.numel() == 0:
            break
        locs = cols[rows, slots]
        win = best_per_group(costs[rows, slots], locs, num_columns, largest=False)
        win = win[win >= 0]
        assigned[locs[win]] = rows[win]
        count += torch.bincount(rows[win], minlength=r)
    return assigned


def top_mass_decision(
    log_plan: Tensor, cost: Tensor, need: Tensor, columns: Tensor, num_columns: int
) -> Tensor:
    """SPOTA's rule (SR3D: top-k anchors per ground truth): each GT keeps the ``need`` candidates
    it sends the most mass to, conflicts go to the lower cost (:func:`top_k_decision`).

    Args:
        log_plan: ``(R, M)`` log mass of each entry.
        cost, need, columns, num_columns: as :func:`top_k_decision`.

    Returns:
        ``(U,)`` int64 GT row per location, ``-1`` = background.
    """
    return top_k_decision(log_plan, cost, need, columns, num_columns, largest=True)


def ensure_one_positive(assigned: Tensor, cost: Tensor, columns: Tensor) -> Tensor:
    """Give every GT with a candidate at least one positive (our rule).

    A GT with candidates that received no location takes its lowest-cost candidate that is not
    the only positive of another GT (if every candidate is some GT's only positive, its
    lowest-cost candidate). Vectorised rounds: each GT without positives proposes its lowest-cost
    eligible candidate; per location the lowest-cost proposal wins and per previous owner at most
    one location is taken, so nobody is emptied and each round fixes >= 1 GT. GTs left without
    an eligible candidate take their lowest-cost candidate anyway, in GT order.

    Args:
        assigned: ``(U,)`` int64 GT row per compact location, -1 = background.
        cost: ``(R, M)`` cost, ``inf`` = no entry.
        columns: ``(R, M)`` int64 compact location of each entry.

    Returns:
        ``(U,)`` int64, a new tensor when anything changed (``assigned`` is not modified).
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
