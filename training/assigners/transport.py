"""Entropic optimal transport for SPOTA: log-domain Sinkhorn (dense reference and sparse batch).

Source: the optimal-transport view of label assignment is OTA (Ge et al., "OTA: Optimal Transport
Assignment for Object Detection", CVPR 2021, Sec. 3); the entropic solver is Sinkhorn's
algorithm (Cuturi, "Sinkhorn Distances", NeurIPS 2013), here in the log domain (dual potentials,
``logsumexp`` updates) so small temperatures do not underflow. :func:`spota_supplies` is SPOTA's
supply rule (SR3D; our formulation, see :mod:`sr3d_training.assigners.spota`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._ops import pad_groups

__all__ = ["sinkhorn_log", "sinkhorn_log_sparse", "spota_supplies"]

_NEG_INF = float("-inf")


def _check_sinkhorn(eps: float, iters: int) -> None:
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")


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


def spota_supplies(
    num_candidates: Tensor, top_k: int, row_scene: Tensor, col_scene: Tensor, num_scenes: int
) -> tuple[Tensor, Tensor]:
    """SPOTA's supplies (SR3D; our formulation): ``min(k, n_g)`` units per GT, the rest of each
    scene's candidate locations to its background row.

    If a scene's GT supplies exceed its ``U_s`` candidate locations they are scaled down to sum
    to ``U_s`` (every location demands exactly one unit).

    Args:
        num_candidates: ``(R,)`` float number of candidates ``n_g`` of each GT row.
        top_k: units ``k`` per GT.
        row_scene: ``(R,)`` int64 scene of each GT row, in ``[0, num_scenes)``.
        col_scene: ``(U,)`` int64 scene of each candidate location.
        num_scenes: ``B``.

    Returns:
        ``(supply (R,), bg_supply (B,))`` float, dtype of ``num_candidates``.
    """
    dtype = num_candidates.dtype
    u_s = torch.bincount(col_scene, minlength=num_scenes).to(dtype)  # candidate locations
    supply = num_candidates.clamp(max=float(top_k))
    s_s = supply.new_zeros(num_scenes).index_add_(0, row_scene, supply)
    scale = (u_s / s_s.clamp_min(1.0)).clamp(max=1.0)
    return supply * scale[row_scene], (u_s - s_s * scale).clamp_min(0.0)
