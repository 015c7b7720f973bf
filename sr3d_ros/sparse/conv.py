"""Sparse convolution layers with MinkowskiEngine's weight layout and coordinate rules.

Weight layout (so ME state dicts load unchanged): ``kernel`` is ``(V, C_in, C_out)`` with V the
kernel volume in :func:`~sr3d_ros.sparse.coordinates.kernel_offsets` order (x fastest), or
``(C_in, C_out)`` for a 1x1x1 stride-1 kernel; ``bias`` is ``(1, C_out)``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from .functional import check_operands, no_autocast, sparse_conv
from .tensor import SparseTensor

__all__ = ["SparseConv3d", "SparseConvTranspose3d", "SparseGenerativeConvTranspose3d"]


class _SparseConvBase(nn.Module):
    """Weights, checks and settings shared by the convolution layers (defaults: SparseConv3d's)."""

    #: Transposed layers take ME's fan ``C_out x V`` for the initial uniform bound.
    transposed: ClassVar[bool] = False
    #: Generative layers support dilation 1 only.
    generative: ClassVar[bool] = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
            ("stride", stride),
            ("dilation", dilation),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.generative and dilation != 1:
            raise ValueError("generative transposed convolution supports dilation 1 only")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.volume = kernel_size**3
        # ME stores a 1x1x1 stride-1 kernel as a matrix, every other kernel as (V, C_in, C_out).
        matrix = self.volume == 1 and stride == 1
        shape = (in_channels, out_channels) if matrix else (self.volume, in_channels, out_channels)
        self.kernel = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(1, out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(n), 1/sqrt(n)), n = fan (C_in, or C_out if transposed) x V, as ME."""
        fan = (self.out_channels if self.transposed else self.in_channels) * self.volume
        bound = 1.0 / math.sqrt(fan)
        with torch.no_grad():
            self.kernel.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.zero_()

    def _weight3d(self) -> torch.Tensor:
        return self.kernel if self.kernel.dim() == 3 else self.kernel.unsqueeze(0)

    def _check(self, x: SparseTensor) -> None:
        if not isinstance(x, SparseTensor):
            raise TypeError(f"{type(self).__name__} expects a SparseTensor, got {type(x).__name__}")
        if x.features.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: input has {x.features.shape[1]} channels, "
                f"expected {self.in_channels}"
            )
        check_operands(x.features, self.kernel)

    def _finish(self, features: torch.Tensor, x: SparseTensor, set_id: int) -> SparseTensor:
        if self.bias is not None:
            features = features + self.bias
        return SparseTensor(features, manager=x.manager, set_id=set_id)

    def extra_repr(self) -> str:
        """Layer settings shown in ``repr(module)``."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, dilation={self.dilation}, bias={self.bias is not None}"
        )


class SparseConv3d(_SparseConvBase):
    """3D sparse convolution (``MinkowskiConvolution``).

    Output coordinates: stride 1 keeps the input coordinates; stride s > 1 gives the input
    coordinates quantised to ``tensor_stride * s`` (``floor(c / (ts*s)) * ts*s``, unique). The
    kernel is centred on each output coordinate: ``out[o] = sum_k in[o + offset_k * ts *
    dilation] @ kernel[k]`` (offsets: odd K symmetric, even K ``0..K-1``).

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: K (1, 2, 3, ...); stride: 1 or 2 (any positive int works); dilation.
        bias: add a learnable ``(1, C_out)`` bias.

    Shapes: ``(N, C_in)`` -> ``(N_out, C_out)``; ``tensor_stride`` multiplies by ``stride``.
    """

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Convolve ``x``.

        Args:
            x: ``(N, C_in)`` features at tensor stride ``ts``, same dtype and device as the kernel.

        Returns:
            ``(N_out, C_out)`` features at tensor stride ``ts * stride``; for stride 1 the
            coordinates are ``x``'s (same coordinate set), for stride 2 the floor-quantised set.
            N = 0 gives an empty result.

        Raises:
            TypeError: ``x`` is not a :class:`SparseTensor`, or its dtype differs from the
                kernel's.
            ValueError: channel count != ``in_channels``, or ``x`` on another device than the
                kernel.
        """
        self._check(x)
        manager = x.manager
        out_id = manager.stride(x.set_id, self.stride)
        if self.kernel.dim() == 2 and out_id == x.set_id:
            with no_autocast(x.device):  # the features' dtype, as every other path
                return self._finish(x.features.mm(self.kernel), x, out_id)
        kmap = manager.conv_kernel_map(x.set_id, out_id, self.kernel_size, self.dilation)
        return self._finish(sparse_conv(x.features, self._weight3d(), kmap), x, out_id)


class _TransposedConvBase(_SparseConvBase):
    """Transposed layers: kernel 2 and stride 2 by default, ME's transposed fan."""

    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 2,
        stride: int = 2,
        dilation: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, dilation, bias)


class SparseGenerativeConvTranspose3d(_TransposedConvBase):
    """Generative transposed convolution (``MinkowskiGenerativeConvolutionTranspose``).

    Every input voxel ``c`` at tensor stride ``ts`` writes ``in[c] @ kernel[k]`` to the new
    voxel ``c + offset_k * ts / stride`` for every kernel offset k; the output coordinates are
    all such voxels (for kernel 2, stride 2: the 8 children of every input voxel), at tensor
    stride ``ts / stride``.

    Raises: ValueError for a dilation other than 1; (forward) if ``ts`` is not divisible by
    ``stride``.
    """

    generative = True

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Upsample ``x``.

        Args:
            x: ``(N, C_in)`` features at tensor stride ``ts`` (divisible by ``stride``), same
                dtype and device as the kernel.

        Returns:
            ``(N_out, C_out)`` features at tensor stride ``ts / stride`` on the generated
            coordinates (``N_out <= N * K**3``). N = 0 gives an empty result.

        Raises:
            TypeError: ``x`` is not a :class:`SparseTensor`, or its dtype differs from the
                kernel's.
            ValueError: channel count != ``in_channels``, ``ts`` not divisible by ``stride``,
                or ``x`` on another device than the kernel.
        """
        self._check(x)
        out_id, kmap = x.manager.generative_transposed(x.set_id, self.kernel_size, self.stride)
        return self._finish(sparse_conv(x.features, self._weight3d(), kmap), x, out_id)


class SparseConvTranspose3d(_TransposedConvBase):
    """Transposed convolution onto existing finer coordinates (``MinkowskiConvolutionTranspose``).

    The output coordinates are those of ``target`` (a tensor at stride ``ts / stride`` from the
    same manager, e.g. the skip connection); ``out[o] += in[i] @ kernel[k]`` whenever
    ``coord_out[o] = coord_in[i] + offset_k * ts_out * dilation``.

    Raises (forward): ValueError if ``target`` is from another manager or at the wrong stride.
    """

    def forward(self, x: SparseTensor, target: SparseTensor) -> SparseTensor:
        """Transposed convolution of ``x`` onto ``target``'s coordinates.

        Args:
            x: ``(N, C_in)`` features at tensor stride ``ts``, same dtype and device as the kernel.
            target: a tensor of the same manager at tensor stride ``ts / stride``; only its
                coordinates are used.

        Returns:
            ``(len(target), C_out)`` features on ``target``'s coordinates (rows without a
            contributing input are 0, or the bias). Empty inputs/targets give empty/zero results.

        Raises:
            TypeError: ``x`` or ``target`` is not a :class:`SparseTensor`, or a dtype mismatch.
            ValueError: channel count, manager or tensor-stride mismatch, or a device mismatch.
        """
        self._check(x)
        if not isinstance(target, SparseTensor):
            raise TypeError(f"target must be a SparseTensor, got {type(target).__name__}")
        if target.manager is not x.manager:
            raise ValueError("target must share the input's coordinate manager")
        if target.tensor_stride * self.stride != x.tensor_stride:
            raise ValueError(
                f"target tensor stride {target.tensor_stride} x {self.stride} != input stride "
                f"{x.tensor_stride}"
            )
        kmap = x.manager.transposed_kernel_map(
            x.set_id, target.set_id, self.kernel_size, self.dilation
        )
        return self._finish(sparse_conv(x.features, self._weight3d(), kmap), x, target.set_id)
