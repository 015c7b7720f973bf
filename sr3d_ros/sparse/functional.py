"""Autograd functions of the sparse engine: gather -> matmul -> scatter convolution, max pooling.

These are the hot paths. On the CPU every op loops over kernel offsets; per offset it gathers
the input rows of that offset's pairs, multiplies by the offset's weight matrix and scatter-adds
into the output. Within one offset the output rows are unique, so ``index_add_`` never collides
and the temporary buffers hold only one offset's pairs (memory stays ~ one layer's features, as
in MinkowskiEngine). On CUDA the convolution runs all offsets at once instead
(:mod:`sr3d_ros.sparse.batched`: a handful of kernel launches instead of ~3 per offset); see
:func:`conv_strategy`. Nothing leaves the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal

import torch

from .batched import batched_conv_backward, batched_conv_forward
from .kernel_map import KernelMap

__all__ = [
    "ConvStrategy",
    "check_operands",
    "conv_strategy",
    "no_autocast",
    "sparse_conv",
    "sparse_max_pool",
]

#: How :func:`sparse_conv` runs the kernel offsets: ``"per_offset"`` (a loop with reused
#: buffers: least memory), ``"batched"`` (all offsets in one padded batch: fewest kernel
#: launches), or ``"auto"``: batched on CUDA, per offset elsewhere.
ConvStrategy = Literal["auto", "per_offset", "batched"]
_STRATEGIES = ("auto", "per_offset", "batched")
_strategy: list[ConvStrategy] = ["auto"]


@contextmanager
def conv_strategy(strategy: ConvStrategy) -> Iterator[None]:
    """Run the enclosed sparse convolutions (forward and their backward) with ``strategy``
    (see :data:`ConvStrategy`; the default is ``"auto"``). Process-wide, not thread-local.

    Raises:
        ValueError: an unknown strategy.
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"conv strategy must be one of {_STRATEGIES}, got {strategy!r}")
    previous = _strategy[0]
    _strategy[0] = strategy
    try:
        yield
    finally:
        _strategy[0] = previous


def no_autocast(device: torch.device) -> AbstractContextManager[Any]:
    """Autocast (mixed precision) switched off for ``device``'s type.

    The engine computes in its operands' dtype: the loop's matmuls write into buffers
    (``out=``, in place), which autocast leaves alone, so under ``torch.autocast`` it runs in
    float32 anyway; the batched path and the 1x1 matrix path (out of place, which autocast
    would lower to float16 / bfloat16) run under this so that every layer agrees and scatters
    into buffers of its own dtype.
    """
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()


def _batched(features: torch.Tensor) -> bool:
    strategy = _strategy[0]
    return strategy == "batched" or (strategy == "auto" and features.is_cuda)


#: Rows per partial product when reducing a weight gradient over many pairs. Summing ~10^5
#: products in one GEMM accumulates float32 rounding error linearly; chunked partial sums added
#: with torch's pairwise ``sum`` keep it near MinkowskiEngine's.
_WEIGHT_GRAD_CHUNK = 4096


def _weight_grad(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``a.T @ g`` for ``a`` (n, C_in), ``g`` (n, C_out), reduced in chunks of rows."""
    n = a.shape[0]
    if n <= 2 * _WEIGHT_GRAD_CHUNK:
        return a.t().mm(g)
    m = n // _WEIGHT_GRAD_CHUNK * _WEIGHT_GRAD_CHUNK
    a_blocks = a[:m].reshape(-1, _WEIGHT_GRAD_CHUNK, a.shape[1]).transpose(1, 2)
    partial = torch.bmm(a_blocks, g[:m].reshape(-1, _WEIGHT_GRAD_CHUNK, g.shape[1])).sum(0)
    return partial.addmm_(a[m:].t(), g[m:])


def _max_pairs(kmap: KernelMap) -> int:
    """Largest pair count of a non-identity offset (sizes the reused per-offset buffers)."""
    return max((n for k, n in enumerate(kmap.sizes) if k != kmap.identity), default=0)


def _gather(source: torch.Tensor, index: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
    """``source.index_select(0, index)`` written into the reused ``buffer[:len(index)]``
    (a view of it)."""
    rows = buffer[: index.numel()]
    torch.index_select(source, 0, index, out=rows)
    return rows


def _conv_forward(features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    out = features.new_zeros((kmap.num_out, weight.shape[-1]))
    # One gather buffer and one product buffer for all offsets (views of their first n rows):
    # a fresh allocation per offset costs page faults that are a sizeable share of the time.
    m = _max_pairs(kmap)
    gathered = features.new_empty((0 if kmap.dense_inputs else m, features.shape[1]))
    product = features.new_empty((m, weight.shape[-1]))
    for k in range(kmap.volume):
        if k == kmap.identity:
            out.addmm_(features, weight[k])
            continue
        in_idx, out_idx = kmap.pairs(k)
        n = in_idx.numel()
        if n == 0:
            continue
        src = features if kmap.dense_inputs else _gather(features, in_idx, gathered)
        prod = torch.mm(src, weight[k], out=product[:n])
        out.index_add_(0, out_idx, prod)
    return out


class _SparseConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap
    ) -> torch.Tensor:
        """``(N_in, C_in)``, ``(V, C_in, C_out)`` -> ``(N_out, C_out)``; inputs checked by
        :func:`sparse_conv`."""
        ctx.save_for_backward(features, weight)
        ctx.kmap = kmap
        ctx.batched = _batched(features)
        if ctx.batched:
            with no_autocast(features.device):
                return batched_conv_forward(features, weight, kmap)
        return _conv_forward(features, weight, kmap)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """``(N_out, C_out)`` -> gradients of features ``(N_in, C_in)`` and weight
        ``(V, C_in, C_out)``."""
        features, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        # No .contiguous(): an expanded gradient (e.g. from .sum()) is gathered row by row
        # without materialising the full (N_out, C_out) tensor.
        need_in, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if ctx.batched:
            with no_autocast(features.device):
                g_in, g_w = batched_conv_backward(grad_out, features, weight, kmap, need_in, need_w)
            return g_in, g_w, None
        grad_in = torch.zeros_like(features) if need_in else None
        grad_w = torch.zeros_like(weight) if need_w else None
        m = _max_pairs(kmap)
        m_in = 0 if kmap.dense_inputs else m  # dense inputs: no input-side gather or scatter
        g_buf = grad_out.new_empty((m, grad_out.shape[1]))
        gathered = features.new_empty((m_in if need_w else 0, features.shape[1]))
        product = features.new_empty((m_in if need_in else 0, features.shape[1]))
        for k in range(kmap.volume):
            if k == kmap.identity:
                if grad_in is not None:
                    grad_in.addmm_(grad_out, weight[k].t())
                if grad_w is not None:
                    grad_w[k] = _weight_grad(features, grad_out)
                continue
            in_idx, out_idx = kmap.pairs(k)
            n = in_idx.numel()
            if n == 0:
                continue
            g = _gather(grad_out, out_idx, g_buf)
            if grad_in is not None:
                if kmap.dense_inputs:
                    grad_in.addmm_(g, weight[k].t())
                else:
                    grad_in.index_add_(0, in_idx, torch.mm(g, weight[k].t(), out=product[:n]))
            if grad_w is not None:
                src = features if kmap.dense_inputs else _gather(features, in_idx, gathered)
                grad_w[k] = _weight_grad(src, g)
        return grad_in, grad_w, None


# ``Function.apply`` is untyped in torch; these are its signatures for our two functions (ctx is
# ``Any`` above because autograd gives it attributes at run time).
_conv_apply: Callable[[torch.Tensor, torch.Tensor, KernelMap], torch.Tensor] = (
    _SparseConvFunction.apply
)


def check_operands(
    features: torch.Tensor, weight: torch.Tensor, index: torch.Tensor | None = None
) -> None:
    """Check that ``features`` and ``weight`` are floating tensors of one dtype on one device
    (and on the device of the kernel-map ``index`` tensor, if given).

    Raises:
        TypeError: a non-tensor, a non-floating dtype, or different dtypes.
        ValueError: different devices.
    """
    for name, t in (("features", features), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.dtype.is_floating_point:
            raise TypeError(f"{name} must be floating point, got {t.dtype}")
    if features.dtype != weight.dtype:
        raise TypeError(
            f"features dtype {features.dtype} != weight dtype {weight.dtype}; "
            "cast the input or the layer (e.g. layer.to(features.dtype))"
        )
    if features.device != weight.device:
        raise ValueError(
            f"features on {features.device} but weight on {weight.device}; "
            "move the layer or the input"
        )
    if index is not None and index.device != features.device:
        raise ValueError(f"features on {features.device} but the kernel map on {index.device}")


def sparse_conv(features: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Sparse convolution over a kernel map: ``out[o] = sum_k sum_{(i,o) in map_k} in[i] @ W[k]``.

    Args:
        features: ``(N_in, C_in)`` float tensor.
        weight: ``(V, C_in, C_out)`` same dtype/device, V = ``kmap.volume`` (ME's layout).
        kmap: the kernel map (from :class:`~sr3d_ros.sparse.manager.CoordinateManager`).

    Returns:
        ``(N_out, C_out)`` features, differentiable w.r.t. ``features`` and ``weight``.

    Raises:
        TypeError: non-floating features or weight, or different dtypes.
        ValueError: on shape mismatches, or features, weight and kernel map on different devices.
    """
    check_operands(features, weight, kmap.in_idx)
    if features.dim() != 2 or features.shape[0] != kmap.num_in:
        raise ValueError(
            f"features must be (N_in={kmap.num_in}, C_in), got {tuple(features.shape)}"
        )
    if weight.dim() != 3 or weight.shape[0] != kmap.volume or weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"weight must be (V={kmap.volume}, C_in={features.shape[1]}, C_out), "
            f"got {tuple(weight.shape)}"
        )
    return _conv_apply(features, weight, kmap)


class _SparseMaxPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """``(N_in, C)`` -> ``(N_out, C)`` per-channel max; saves the arg-max rows."""
        channels = features.shape[1]
        out = features.new_full((kmap.num_out, channels), float("-inf"))
        arg = torch.full((kmap.num_out, channels), -1, dtype=torch.int64, device=features.device)
        for k in range(kmap.volume):
            in_idx, out_idx = kmap.pairs(k)
            if in_idx.numel() == 0:
                continue
            cand = features.index_select(0, in_idx)
            cur = out.index_select(0, out_idx)
            better = cand > cur  # strict: the first offset wins ties
            out.index_copy_(0, out_idx, torch.where(better, cand, cur))
            cur_arg = arg.index_select(0, out_idx)
            arg.index_copy_(
                0, out_idx, torch.where(better, in_idx.unsqueeze(1).expand_as(cur_arg), cur_arg)
            )
        empty = arg < 0  # output rows without any input (cannot happen for ME's maps)
        if bool(empty.any()):
            out = out.masked_fill(empty, 0.0)
        ctx.save_for_backward(arg)
        ctx.num_in = features.shape[0]
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """``(N_out, C)`` -> ``(N_in, C)``: each output's gradient goes to its arg-max row."""
        (arg,) = ctx.saved_tensors
        grad_in = grad_out.new_zeros((ctx.num_in, grad_out.shape[1]))
        valid = arg >= 0
        grad_in.view(-1).index_add_(
            0,
            (arg * grad_out.shape[1] + torch.arange(grad_out.shape[1], device=arg.device))[valid],
            grad_out[valid],
        )
        return grad_in, None


_max_pool_apply: Callable[[torch.Tensor, KernelMap], torch.Tensor] = _SparseMaxPoolFunction.apply


def sparse_max_pool(features: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """Per-channel max over each output's kernel neighbourhood.

    Args:
        features: ``(N_in, C)`` float.
        kmap: kernel map of the pooling window.

    Returns:
        ``(N_out, C)``; the gradient flows to the arg-max input row (ties: the lowest kernel
        offset index wins).

    Raises:
        TypeError: non-floating features. ValueError: wrong shape, or features on another
            device than the kernel map.
    """
    if not isinstance(features, torch.Tensor) or not features.dtype.is_floating_point:
        got = getattr(features, "dtype", type(features).__name__)
        raise TypeError(f"features must be a floating-point torch.Tensor, got {got}")
    if features.device != kmap.in_idx.device:
        raise ValueError(
            f"features on {features.device} but the kernel map on {kmap.in_idx.device}"
        )
    if features.dim() != 2 or features.shape[0] != kmap.num_in:
        raise ValueError(f"features must be (N_in={kmap.num_in}, C), got {tuple(features.shape)}")
    return _max_pool_apply(features, kmap)
