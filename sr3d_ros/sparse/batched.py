"""Sparse convolution with all kernel offsets at once: the few-kernel-launch path for GPUs.

The per-offset loop of :mod:`sr3d_ros.sparse.functional` issues ~3 kernels per kernel offset
(gather, matmul, scatter-add: ~81 for a 3x3x3 convolution, ~130 with its backward). On a GPU
each is a few microseconds of launch overhead for very little work, so at the voxel counts of
one scan the loop, not the arithmetic, sets the time. Here the non-identity offsets run as one
padded batch (:meth:`~sr3d_ros.sparse.kernel_map.KernelMap.padded_pairs`): one gather into
``(V', M, C_in)``, one ``bmm`` with the ``(V', C_in, C_out)`` weights, one scatter-add; the
identity offset (stride-1 centre) stays a dense ``addmm``. Same result as the loop up to the
order of float additions (scatter-adds of different offsets meet in one ``index_add_``, whose
CUDA order is not fixed). Memory: the padded batch holds ``V' x M`` rows (``M`` = the largest
pair count of one offset) instead of one offset's rows, so the CPU keeps the loop.

Our formulation (the gather-GEMM-scatter scheme of MinkowskiEngine / TorchSparse, batched).
"""

from __future__ import annotations

import torch

from .kernel_map import KernelMap

__all__ = ["batched_conv_backward", "batched_conv_forward"]


def _padded_inputs(features: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """``(V', M, C_in)`` input rows of every non-identity pair (zeros in the padding)."""
    pp = kmap.padded_pairs()
    if kmap.dense_inputs:  # every offset pairs every input row, in order
        return features.unsqueeze(0).expand(pp.in_idx.shape[0], -1, -1)
    padded = torch.cat([features, features.new_zeros((1, features.shape[1]))])
    return padded.index_select(0, pp.in_idx.reshape(-1)).view(*pp.in_idx.shape, -1)


def batched_conv_forward(
    features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap
) -> torch.Tensor:
    """``out[o] = sum_k sum_{(i, o) in map_k} features[i] @ weight[k]``, all offsets at once.

    Args:
        features: ``(N_in, C_in)`` float, on the map's device (checked by the caller).
        weight: ``(V, C_in, C_out)`` same dtype / device.
        kmap: the kernel map.

    Returns:
        ``(N_out, C_out)`` features (a view of an ``(N_out + 1, C_out)`` buffer).
    """
    pp = kmap.padded_pairs()
    out = features.new_zeros((kmap.num_out + 1, weight.shape[-1]))
    if kmap.identity is not None:
        out[:-1].addmm_(features, weight[kmap.identity])
    if pp.offsets.numel():
        w = weight.index_select(0, pp.offsets)
        if kmap.dense_inputs:
            prod = torch.matmul(features, w)  # (V', N_in, C_out) by broadcasting
        else:
            prod = torch.bmm(_padded_inputs(features, kmap), w)
        out.index_add_(0, pp.out_idx.reshape(-1), prod.reshape(-1, prod.shape[-1]))
    return out[:-1]


def batched_conv_backward(
    grad_out: torch.Tensor,
    features: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    need_input: bool,
    need_weight: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`batched_conv_forward`.

    Args:
        grad_out: ``(N_out, C_out)`` gradient of the output.
        features, weight, kmap: the forward's inputs.
        need_input, need_weight: which gradients to compute.

    Returns:
        ``(grad_features (N_in, C_in) | None, grad_weight (V, C_in, C_out) | None)``.
    """
    pp = kmap.padded_pairs()
    grad_in = grad_w = None
    g = None
    if pp.offsets.numel():
        padded = torch.cat([grad_out, grad_out.new_zeros((1, grad_out.shape[1]))])
        g = padded.index_select(0, pp.out_idx.reshape(-1)).view(*pp.out_idx.shape, -1)
    if need_input:
        grad_in = features.new_zeros((kmap.num_in + 1, features.shape[1]))
        if kmap.identity is not None:
            grad_in[:-1].addmm_(grad_out, weight[kmap.identity].t())
        if g is not None:
            w_t = weight.index_select(0, pp.offsets).transpose(1, 2)
            grad_src = torch.bmm(g, w_t)  # (V', M, C_in)
            if kmap.dense_inputs:
                grad_in[:-1] += grad_src.sum(0)
            else:
                grad_in.index_add_(
                    0, pp.in_idx.reshape(-1), grad_src.reshape(-1, grad_src.shape[-1])
                )
        grad_in = grad_in[:-1]
    if need_weight:
        grad_w = torch.zeros_like(weight)
        if kmap.identity is not None:
            grad_w[kmap.identity] = features.t().mm(grad_out)
        if g is not None:
            src = _padded_inputs(features, kmap)  # recomputed: not kept from the forward
            grad_w.index_copy_(0, pp.offsets, torch.bmm(src.transpose(1, 2), g))
    return grad_in, grad_w
