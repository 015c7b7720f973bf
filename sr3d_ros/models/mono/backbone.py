"""YOLOv10 backbone and PAN neck (Wang et al., "YOLOv10", 2024; layout of its released configs).

Backbone: stem convs to stride 4, then stages to strides 8 / 16 / 32 (C2f or C2fCIB, SCDown for
the two last down-samplings), SPPF and PSA on the stride-32 map. Neck: the YOLOv8 PAN (top-down
upsample + concat + C2f, bottom-up strided conv / SCDown + concat + C2f / C2fCIB). Channel and
depth scaling: YOLOv10's compound scaling, ``channels = ceil(min(c, max_channels) * width / 8) * 8``
and ``blocks = max(round(n * depth), 1)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .blocks import PSA, SPPF, C2f, C2fCIB, ConvBNAct, SCDown
from .config import SizeSpec

__all__ = ["PANNeck", "YOLOv10Backbone", "scaled_channels", "scaled_depth"]


def scaled_channels(c: int, spec: SizeSpec) -> int:
    """YOLOv10 channel scaling: ``ceil(min(c, max_channels) * width / 8) * 8``."""
    return int(math.ceil(min(c, spec.max_channels) * spec.width / 8) * 8)


def scaled_depth(n: int, spec: SizeSpec) -> int:
    """YOLOv10 depth scaling: ``max(round(n * depth), 1)`` blocks."""
    return max(round(n * spec.depth), 1)


def _stage(kind: str, c_in: int, c_out: int, n: int, c2f_shortcut: bool) -> nn.Module:
    """A C2f stage or, where the size says so, a C2fCIB stage (always with shortcuts)."""
    if kind == "c2f":
        return C2f(c_in, c_out, n, c2f_shortcut)
    return C2fCIB(c_in, c_out, n, shortcut=True, lk=kind == "cib_lk")


class YOLOv10Backbone(nn.Module):
    """Backbone: ``(B, 3, H, W)`` float32 -> ``[P3, P4, P5]`` at strides 8, 16, 32 with
    ``channels`` = scaled (256, 512, 1024). ``H`` and ``W`` must be multiples of 32."""

    def __init__(self, spec: SizeSpec) -> None:
        super().__init__()
        c64, c128, c256, c512, c1024 = (scaled_channels(c, spec) for c in (64, 128, 256, 512, 1024))
        self.stem = nn.Sequential(
            ConvBNAct(3, c64, 3, 2),
            ConvBNAct(c64, c128, 3, 2),
            C2f(c128, c128, scaled_depth(3, spec), shortcut=True),
        )
        self.p3 = nn.Sequential(
            ConvBNAct(c128, c256, 3, 2), C2f(c256, c256, scaled_depth(6, spec), shortcut=True)
        )
        self.p4 = nn.Sequential(
            SCDown(c256, c512, 3, 2), _stage(spec.cib[0], c512, c512, scaled_depth(6, spec), True)
        )
        self.p5 = nn.Sequential(
            SCDown(c512, c1024, 3, 2),
            _stage(spec.cib[1], c1024, c1024, scaled_depth(3, spec), True),
            SPPF(c1024, c1024, 5),
            PSA(c1024),
        )
        self.channels = (c256, c512, c1024)

    def forward(self, x: Tensor) -> list[Tensor]:
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        return [p3, p4, self.p5(p4)]


class PANNeck(nn.Module):
    """PAN neck: ``[P3, P4, P5]`` -> ``[N3, N4, N5]`` (same strides), channels scaled
    (256, 512, 1024)."""

    def __init__(self, spec: SizeSpec, channels: tuple[int, int, int]) -> None:
        super().__init__()
        c3, c4, c5 = channels
        n = scaled_depth(3, spec)
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.top_down4 = _stage(spec.cib[2], c5 + c4, c4, n, False)
        self.top_down3 = _stage(spec.cib[3], c4 + c3, c3, n, False)
        self.down3 = ConvBNAct(c3, c3, 3, 2)
        self.bottom_up4 = _stage(spec.cib[4], c3 + c4, c4, n, False)
        self.down4 = SCDown(c4, c4, 3, 2)
        self.bottom_up5 = _stage(spec.cib[5], c4 + c5, c5, n, False)
        self.channels = channels

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        p3, p4, p5 = feats
        t4 = self.top_down4(torch.cat([self.up(p5), p4], 1))
        n3 = self.top_down3(torch.cat([self.up(t4), p3], 1))
        n4 = self.bottom_up4(torch.cat([self.down3(n3), t4], 1))
        n5 = self.bottom_up5(torch.cat([self.down4(n4), p5], 1))
        return [n3, n4, n5]
