"""TR3D neck (Rukhovich et al., TR3D, 2023): top-down generative upsampling, two output levels.

It drops the first backbone stage. From the coarsest remaining stage downwards, each step
upsamples with a generative transposed convolution (kernel 3, stride 2: new voxels around every
coarse voxel), adds the lateral backbone stage (a sparse sum over the union of voxels), and
applies a lateral block; an output block then maps to the head's channels. With backbone
strides 8/16/32/64 the outputs are at tensor strides 16 and 32.
Module names (``up_block_i``, ``lateral_block_i``, ``out_block_i``) mirror TR3D's.
"""

from __future__ import annotations

from torch import nn

from ..sparse import (
    SparseBatchNorm,
    SparseConv3d,
    SparseGenerativeConvTranspose3d,
    SparseReLU,
    SparseTensor,
)

__all__ = ["TR3DNeck"]


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        SparseConv3d(in_channels, out_channels, 3), SparseBatchNorm(out_channels), SparseReLU()
    )


def _up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        SparseGenerativeConvTranspose3d(in_channels, out_channels, kernel_size=3, stride=2),
        SparseBatchNorm(out_channels),
        SparseReLU(),
    )


class TR3DNeck(nn.Module):
    """Args: in_channels: the 4 backbone stage widths; out_channels: head input width.

    Forward: the 4 backbone outputs -> 2 tensors (finer first) with ``out_channels`` each.
    """

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        used = list(in_channels[1:])
        self.num_inputs = len(used)
        for i in range(len(used)):
            if i > 0:
                setattr(self, f"up_block_{i}", _up_block(used[i], used[i - 1]))
            if i < len(used) - 1:
                setattr(self, f"lateral_block_{i}", _block(used[i], used[i]))
                setattr(self, f"out_block_{i}", _block(used[i], out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_out, ReLU) kernels, unit BatchNorm."""
        for m in self.modules():
            if isinstance(m, (SparseConv3d, SparseGenerativeConvTranspose3d)):
                nn.init.normal_(m.kernel, std=(2.0 / (m.out_channels * m.volume)) ** 0.5)
            if isinstance(m, SparseBatchNorm):
                nn.init.ones_(m.bn.weight)
                nn.init.zeros_(m.bn.bias)

    def forward(self, features: list[SparseTensor]) -> list[SparseTensor]:
        """Args: features: the 4 backbone outputs (strides 8, 16, 32, 64), features
        ``(N_i, in_channels[i])``; the first is not used.

        Returns:
            Two tensors, finer first: tensor strides 16 and 32, features ``(M_j, out_channels)``,
            same dtype/device. The generative upsampling makes voxels that the backbone did not
            have, so ``M_j`` >= the backbone stage's count.

        Raises:
            ValueError (sparse engine): channel counts that do not match ``in_channels``.
        """
        inputs = features[1:]
        x = inputs[-1]
        outs: list[SparseTensor] = []
        for i in range(len(inputs) - 2, -1, -1):
            x = getattr(self, f"up_block_{i + 1}")(x)
            x = inputs[i] + x
            x = getattr(self, f"lateral_block_{i}")(x)
            outs.append(getattr(self, f"out_block_{i}")(x))
        return outs[::-1]
