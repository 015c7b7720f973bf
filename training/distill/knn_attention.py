"""kNN-masked multi-head attention over votes (VRDistill, Sec. 3.2: each vote attends only to its
K nearest votes by coordinate, with the relative position as positional information).

The mask is exact: each query gathers its K nearest keys (:func:`knn_indices`) and attends over
those K only, which equals full attention with every other key's logit set to -inf, without the
``Q x N`` attention matrix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["KnnAttention", "knn_indices"]

#: Query rows per distance block in :func:`knn_indices` (bounds memory to CHUNK x N floats).
_CHUNK = 1024


@torch.no_grad()
def knn_indices(
    query: Tensor, keys: Tensor, k: int, query_batch: Tensor, key_batch: Tensor
) -> Tensor:
    """The ``k`` nearest keys of every query within the same scene (Euclidean, ties -> lower
    index by ``topk``'s order).

    Args:
        query: ``(Q, 3)`` float coordinates (metres). keys: ``(N, 3)`` float.
        k: neighbours per query (a query whose scene has fewer keys repeats its nearest ones).
        query_batch: ``(Q,)`` int64 scene of each query. key_batch: ``(N,)`` int64.

    Returns:
        ``(Q, k)`` int64 key indices, nearest first.

    Raises:
        ValueError: a query whose scene has no keys, or ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(query) == 0:
        return torch.zeros((0, k), dtype=torch.long, device=query.device)
    missing = ~torch.isin(query_batch, key_batch)
    if bool(missing.any()):
        raise ValueError(f"scene(s) {torch.unique(query_batch[missing]).tolist()} have no keys")
    out = []
    keys_f = keys.float()
    for start in range(0, len(query), _CHUNK):
        q = query[start : start + _CHUNK].float()
        d = (q[:, None, :] - keys_f[None, :, :]).square().sum(-1)
        d.masked_fill_(query_batch[start : start + _CHUNK, None] != key_batch[None, :], math.inf)
        kk = min(k, d.shape[1])
        idx = d.topk(kk, dim=1, largest=False).indices
        # fewer than k keys in a scene: the inf columns were picked; repeat the nearest instead
        picked_inf = torch.isinf(d.gather(1, idx))
        idx = torch.where(picked_inf, idx[:, :1].expand_as(idx), idx)
        if kk < k:
            idx = torch.cat([idx, idx[:, :1].expand(-1, k - kk)], dim=1)
        out.append(idx)
    return torch.cat(out)


class KnnAttention(nn.Module):
    """Multi-head attention of each query vote over its K nearest key votes.

    With ``r_qj = x_j - x_q`` the key's position relative to the query and
    ``p(r) = W2 relu(W1 r)`` a learnt positional encoding (our formulation of "relative position
    as positional information", as in the Point Transformer's ``delta``):
    ``k_qj = W_k f_j + p(r_qj)``, ``v_qj = W_v f_j + p(r_qj)``, ``q_q = W_q f_q``, per head h of
    ``d = C / H`` channels ``a_qj = softmax_j(q_q,h . k_qj,h / sqrt(d))`` over the K neighbours,
    output ``W_o concat_h(sum_j a_qj v_qj,h)``.

    Args:
        channels: C, the feature width of queries and keys.
        heads: H, must divide ``channels``.

    Raises:
        ValueError: ``channels % heads != 0``.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads != 0:
            raise ValueError(f"{heads} attention heads do not divide {channels} channels")
        self.heads = heads
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)
        self.pos = nn.Sequential(
            nn.Linear(3, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels)
        )

    def forward(
        self,
        query_feats: Tensor,
        query_coords: Tensor,
        key_feats: Tensor,
        key_coords: Tensor,
        neighbors: Tensor,
    ) -> Tensor:
        """Args:
            query_feats: ``(Q, C)``. query_coords: ``(Q, 3)`` metres.
            key_feats: ``(N, C)``. key_coords: ``(N, 3)`` metres.
            neighbors: ``(Q, K)`` int64 key indices each query attends to
                (:func:`knn_indices`); no other key influences the query's output.

        Returns:
            ``(Q, C)`` attended features (before the residual connection).
        """
        q_n, k_n = neighbors.shape
        c = query_feats.shape[1]
        d = c // self.heads
        rel = key_coords[neighbors] - query_coords[:, None, :]  # (Q, K, 3)
        pe = self.pos(rel)
        keys = (self.k(key_feats)[neighbors] + pe).view(q_n, k_n, self.heads, d)
        values = (self.v(key_feats)[neighbors] + pe).view(q_n, k_n, self.heads, d)
        queries = self.q(query_feats).view(q_n, self.heads, d)
        logits = torch.einsum("qhd,qkhd->qhk", queries, keys) / math.sqrt(d)
        attn = logits.softmax(dim=-1)
        out = torch.einsum("qhk,qkhd->qhd", attn, values).reshape(q_n, c)
        result: Tensor = self.out(out)
        return result
