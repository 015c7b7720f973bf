"""Feature-wise layers on sparse tensors: batch normalisation and activations."""

from __future__ import annotations

from torch import nn

from .tensor import SparseTensor, _require_sparse

__all__ = ["SparseBatchNorm", "SparseReLU"]


class SparseBatchNorm(nn.Module):
    """``MinkowskiBatchNorm``: BatchNorm1d over the ``(N, C)`` feature rows.

    The wrapped module is stored as ``self.bn`` so ME state-dict keys (``bn.weight``,
    ``bn.bias``, ``bn.running_mean``, ``bn.running_var``, ``bn.num_batches_tracked``) load
    unchanged. An empty tensor (N = 0) passes through unchanged.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Normalise ``x``'s ``(N, C)`` features per channel (batch statistics in training,
        running statistics in eval); same coordinates. N = 0 returns ``x`` unchanged.

        Raises:
            TypeError: ``x`` is not a :class:`SparseTensor`.
            ValueError: C != ``num_features`` (from BatchNorm1d).
        """
        _require_sparse(x, type(self).__name__)
        if len(x) == 0:
            return x
        return x.replace_features(self.bn(x.features))


class SparseReLU(nn.Module):
    """ReLU on the features (``MinkowskiReLU``)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: SparseTensor) -> SparseTensor:
        """``max(features, 0)`` on ``(N, C)``; same coordinates, shape and dtype.

        Raises:
            TypeError: ``x`` is not a :class:`SparseTensor`.
        """
        _require_sparse(x, type(self).__name__)
        return x.replace_features(nn.functional.relu(x.features, inplace=self.inplace))
