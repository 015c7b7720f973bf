"""MinkResNet backbone (Choy et al., 4D Spatio-Temporal ConvNets, CVPR 2019; TR3D variant).

Stem: 3x3x3 conv stride 2 + BatchNorm + ReLU + 2x2x2 max pool stride 2 (tensor stride 4), then
four stages of BasicBlocks, each starting with stride 2, so the stage outputs sit at tensor
strides 8, 16, 32 and 64 (x voxel size: 8, 16, 32, 64 cm at 1 cm voxels). Module names mirror
TR3D's published backbone so converted checkpoints map one-to-one.
"""

from __future__ import annotations

from torch import nn

from ..sparse import SparseBatchNorm, SparseConv3d, SparseMaxPool3d, SparseReLU, SparseTensor

__all__ = ["BasicBlock", "MinkResNet", "scaled_channels"]


def scaled_channels(channels: int, width: float, cap: int | None = None) -> int:
    """``min(channels, cap) * width`` rounded, at least 8 (width multiplier for students)."""
    c = min(channels, cap) if cap is not None else channels
    return max(8, int(round(c * width)))


class BasicBlock(nn.Module):
    """ResNet basic block on sparse tensors: conv3-BN-ReLU-conv3-BN + shortcut, ReLU.

    Shapes: ``(N, C_in)`` at tensor stride s -> ``(N', planes)`` at ``s * stride``.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = SparseConv3d(inplanes, planes, 3, stride)
        self.norm1 = SparseBatchNorm(planes)
        self.conv2 = SparseConv3d(planes, planes, 3, 1)
        self.norm2 = SparseBatchNorm(planes)
        self.relu = SparseReLU()
        self.downsample: nn.Sequential | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                SparseConv3d(inplanes, planes, 1, stride), SparseBatchNorm(planes)
            )

    def forward(self, x: SparseTensor) -> SparseTensor:
        """Args: x: features ``(N, inplanes)`` float at tensor stride s.

        Returns:
            ``(N', planes)`` at stride ``s * stride`` (``N' = N``, same coordinates, for
            stride 1), same dtype/device. Raises ValueError (sparse engine) on a channel mismatch.
        """
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        residual: SparseTensor = self.downsample(x) if self.downsample is not None else x
        result: SparseTensor = self.relu(out + residual)  # Module.__call__ is typed Any
        return result


class MinkResNet(nn.Module):
    """Sparse ResNet (ResNet34 layout by default) returning the four stage outputs.

    Args:
        in_channels: input feature channels (3 = rgb).
        stem_channels: stem width (64 at width 1).
        num_planes: per-stage channels (TR3D: 64, 128, 128, 128).
        blocks: BasicBlocks per stage (ResNet34: 3, 4, 6, 3).
        width: multiplier applied to every channel count.
        max_channels: cap on channels before the multiplier.

    Forward: ``SparseTensor`` at stride 1 -> list of 4 tensors at strides 8, 16, 32, 64.
    """

    def __init__(
        self,
        in_channels: int = 3,
        stem_channels: int = 64,
        num_planes: tuple[int, ...] = (64, 128, 128, 128),
        blocks: tuple[int, ...] = (3, 4, 6, 3),
        width: float = 1.0,
        max_channels: int = 128,
    ) -> None:
        super().__init__()
        stem = scaled_channels(stem_channels, width)
        self.conv1 = SparseConv3d(in_channels, stem, 3, 2)
        self.norm1 = SparseBatchNorm(stem)
        self.relu = SparseReLU()
        self.maxpool = SparseMaxPool3d(2, 2)
        self.out_channels: list[int] = []
        inplanes = stem
        for i, (planes, n) in enumerate(zip(num_planes, blocks)):
            planes = scaled_channels(planes, width, max_channels)
            layers = [BasicBlock(inplanes, planes, stride=2)]
            layers += [BasicBlock(planes, planes, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            self.out_channels.append(planes)
            inplanes = planes
        self.num_stages = len(blocks)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_out, ReLU) kernels, unit BatchNorm (TR3D's initialisation)."""
        for m in self.modules():
            if isinstance(m, SparseConv3d):
                fan_out = m.out_channels * m.volume
                nn.init.normal_(m.kernel, std=(2.0 / fan_out) ** 0.5)
            if isinstance(m, SparseBatchNorm):
                nn.init.ones_(m.bn.weight)
                nn.init.zeros_(m.bn.bias)

    def forward(self, x: SparseTensor) -> list[SparseTensor]:
        """Args: x: batched input at tensor stride 1, features ``(N, in_channels)`` float
        (rgb / 255 - colour mean), integer voxel coordinates ``(N, 4)`` = batch, x, y, z.

        Returns:
            The 4 stage outputs, features ``(N_i, out_channels[i])``, at tensor strides 8, 16,
            32 and 64 (x voxel size in metres), same dtype/device as the input.

        Raises:
            ValueError (sparse engine): ``in_channels`` features expected.
        """
        x = self.maxpool(self.relu(self.norm1(self.conv1(x))))
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return outs
