"""Small vectorised building blocks shared by the assigners (deterministic, device-agnostic)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "best_per_group",
    "level_candidates",
    "level_spacing",
    "pad_groups",
    "squared_center_distance",
    "topk_then_resolve",
]


def squared_center_distance(centers: Tensor, locations: Tensor) -> Tensor:
    """Squared distance of every box centre to every location, ``(K, 3), (L, 3) -> (K, L)``.

    Layout ``(K, L)`` (boxes major) so per-box ``topk`` runs along contiguous memory. Computed from
    explicit per-axis differences (``cdist``'s matmul shortcut loses precision far from the
    origin). Units: square metres; dtype: the promoted dtype of the inputs.
    """
    dtype = torch.promote_types(centers.dtype, locations.dtype)
    c = centers.to(dtype)
    lt = locations.to(dtype).T  # (3, L)
    d = (c[:, 0:1] - lt[0][None, :]).square_()
    d.add_((c[:, 1:2] - lt[1][None, :]).square_())
    d.add_((c[:, 2:3] - lt[2][None, :]).square_())
    return d


def best_per_group(values: Tensor, groups: Tensor, num_groups: int, largest: bool) -> Tensor:
    """Index of the best entry of each group (ties -> the lowest entry index), deterministic.

    Args:
        values: ``(P,)`` float scores of ``P`` entries.
        groups: ``(P,)`` int64 group of each entry, in ``[0, num_groups)``.
        num_groups: number of groups ``G``.
        largest: best = largest (``True``) or smallest (``False``) value.

    Returns:
        ``(G,)`` int64 entry index per group, ``-1`` for groups without entries.
    """
    out = torch.full((num_groups,), -1, dtype=torch.long, device=values.device)
    p = values.numel()
    if p == 0 or num_groups == 0:
        return out
    order = torch.sort(values, descending=largest, stable=True).indices  # rank r -> entry
    rank = torch.empty_like(order)
    rank[order] = torch.arange(p, device=values.device)
    best = torch.full((num_groups,), p, dtype=torch.long, device=values.device)
    best.scatter_reduce_(0, groups, rank, reduce="amin")
    hit = best < p
    out[hit] = order[best[hit]]
    return out


def topk_then_resolve(
    score: Tensor,
    k: int,
    largest: bool,
    columns: Tensor | None = None,
    num_columns: int | None = None,
) -> Tensor:
    """Each row (a GT) picks its ``k`` best entries; a column (a location) picked by several rows
    goes to the row with the best score there (ties -> the lowest row index). Deterministic.

    Args:
        score: ``(K, M)`` float; non-finite entries (``inf`` when ``largest=False``, ``-inf``
            when ``largest=True``) are never picked.
        k: picks per row (clamped to ``M``).
        largest: pick the largest (``True``) or the smallest (``False``) scores.
        columns: optional ``(K, M)`` int64 column id of each entry (compact layouts); default
            ``columns[r, m] = m``.
        num_columns: number of columns ``U`` (default ``M``).

    Returns:
        ``(U,)`` int64 row index per column, ``-1`` for columns nobody picked.
    """
    n_rows, m = score.shape
    u = m if num_columns is None else num_columns
    out = torch.full((u,), -1, dtype=torch.long, device=score.device)
    kk = min(k, m)
    if n_rows == 0 or kk == 0:
        return out
    val, pick = torch.topk(score, kk, dim=1, largest=largest)  # (K, kk)
    col = pick if columns is None else torch.gather(columns, 1, pick)
    row = torch.arange(n_rows, device=score.device)[:, None].expand(n_rows, kk)
    ok = torch.isfinite(val)
    val, col, row = val[ok], col[ok], row[ok]  # row-major: rows ascending
    best = best_per_group(val, col, u, largest)
    hit = best >= 0
    out[hit] = row[best[hit]]
    return out


def level_candidates(
    locations: Tensor, levels: Tensor, centers: Tensor, gt_levels: Tensor, m: int
) -> tuple[Tensor, Tensor]:
    """The ``m`` locations nearest to each box centre among the locations on the box's level.

    Distances are only computed between boxes and locations of the same level (one block per
    level present in ``gt_levels``), so the cost is ``sum_l K_l * L_l`` instead of ``K * L``.

    Args:
        locations: ``(L, 3)`` float, metres.
        levels: ``(L,)`` int64 level per location.
        centers: ``(K, 3)`` float box centres, metres.
        gt_levels: ``(K,)`` int64 level of each box.
        m: candidates per box (>= 1).

    Returns:
        ``(idx (K, m) int64, d2 (K, m) float)``: location indices sorted by squared distance
        (square metres); slots beyond the number of locations on a level have ``d2 = inf``
        (and index 0). One host sync per call (the set of levels).
    """
    k = centers.shape[0]
    dtype = torch.promote_types(centers.dtype, locations.dtype)
    idx = torch.zeros((k, m), dtype=torch.long, device=centers.device)
    d2 = torch.full((k, m), float("inf"), dtype=dtype, device=centers.device)
    if k == 0 or locations.shape[0] == 0:
        return idx, d2
    for lvl in torch.unique(gt_levels).tolist():
        rows = (gt_levels == lvl).nonzero().flatten()
        loc_ids = (levels == lvl).nonzero().flatten()
        if loc_ids.numel() == 0:
            continue
        mm = min(m, loc_ids.numel())
        dist = squared_center_distance(centers[rows], locations[loc_ids])  # (k_l, L_l)
        val, pick = torch.topk(dist, mm, dim=1, largest=False)
        d2[rows, :mm] = val
        idx[rows, :mm] = loc_ids[pick]
    return idx, d2


def pad_groups(group: Tensor, num_groups: int, pad_value: int) -> Tensor:
    """Members of each group as a padded index matrix (deterministic; one host sync).

    Args:
        group: ``(P,)`` int64 group of each item, in ``[0, num_groups)``.
        num_groups: ``G``.
        pad_value: index written in unused slots (e.g. ``P``, pointing at a neutral element
            appended by the caller).

    Returns:
        ``(G, D)`` int64, ``D = max group size`` (>= 1): row ``g`` lists the items of group ``g``
        in increasing order, then ``pad_value``.
    """
    p = group.numel()
    counts = torch.bincount(group, minlength=num_groups)
    d = max(int(counts.max()) if p else 0, 1)
    out = torch.full((num_groups, d), pad_value, dtype=torch.long, device=group.device)
    if p == 0:
        return out
    order = torch.sort(group, stable=True).indices
    sorted_group = group[order]
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(p, device=group.device) - starts[sorted_group]
    out[sorted_group, pos] = order
    return out


def level_spacing(locations: Tensor, levels: Tensor, num_levels: int) -> Tensor:
    """Spacing of the location lattice of each output level, read off the locations (metres).

    Head locations are voxel coordinates x voxel size on a lattice of the level's tensor stride,
    so the smallest positive difference between two locations' coordinates (any axis) of one
    level is that level's stride in metres (our use: SPOTA's centre prior, our formulation).

    Args:
        locations: ``(L, 3)`` float, metres.
        levels: ``(L,)`` int64 level per location.
        num_levels: number of levels ``V`` to report (levels ``>= V`` are ignored).

    Returns:
        ``(V,)`` float (dtype of ``locations``): the spacing per level; ``1.0`` (no scaling)
        for a level with fewer than two distinct coordinates on every axis. One host sync per
        level.
    """
    out = torch.ones(num_levels, dtype=locations.dtype, device=locations.device)
    for lvl in range(num_levels):
        pts = locations[levels == lvl]
        gaps = [torch.diff(torch.unique(pts[:, a])) for a in range(3)] if len(pts) > 1 else []
        gaps = [g[g > 0] for g in gaps]
        if any(g.numel() for g in gaps):
            out[lvl] = torch.cat(gaps).min()
    return out
