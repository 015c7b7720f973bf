"""YOLOv10 building blocks (Wang et al., "YOLOv10: Real-Time End-to-End Object Detection", 2024).

Conv-BN-SiLU (:class:`ConvBNAct`), the C2f CSP stage of YOLOv8 (:class:`C2f`), YOLOv10's
spatial-channel decoupled down-sampling (:class:`SCDown`, Sec. 3.2), compact inverted block
(:class:`CIB` / :class:`C2fCIB`, Sec. 3.2, with the large-kernel option :class:`RepDWConv`),
partial self-attention (:class:`PSA`, Sec. 3.3) and SPPF. All take and return ``float32
(B, C, H, W)`` feature maps; our implementation from the paper and its released configurations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "CIB",
    "PSA",
    "SPPF",
    "C2f",
    "C2fCIB",
    "ConvBNAct",
    "PartialAttention",
    "RepDWConv",
    "SCDown",
]


class ConvBNAct(nn.Sequential):
    """``Conv2d(k, stride, padding k // 2, groups, no bias) -> BatchNorm2d -> SiLU`` (or no
    activation). Output ``(B, c_out, ceil(H / stride), ceil(W / stride))``."""

    def __init__(
        self, c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03),
            nn.SiLU() if act else nn.Identity(),
        )


class Bottleneck(nn.Module):
    """Two 3x3 ConvBNAct with an optional residual (when ``c_in == c_out``)."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c_in, c_out, 3)
        self.cv2 = ConvBNAct(c_out, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.cv2(self.cv1(x))
        return x + y if self.add else y


class RepDWConv(nn.Module):
    """Large-kernel depth-wise conv of the CIB (YOLOv10 Sec. 3.2): ``SiLU(dw7x7(x) + dw3x3(x))``
    (both with BN; the 3x3 branch can be folded into the 7x7 one after training)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv7 = ConvBNAct(c, c, 7, groups=c, act=False)
        self.conv3 = ConvBNAct(c, c, 3, groups=c, act=False)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.act(self.conv7(x) + self.conv3(x))
        return out


class CIB(nn.Module):
    """Compact inverted block (YOLOv10 Sec. 3.2): dw3x3, pw to ``2 c_hidden``, dw3x3 (or the
    large-kernel :class:`RepDWConv`), pw to ``c_out``, dw3x3; residual when shapes agree."""

    def __init__(
        self, c_in: int, c_out: int, shortcut: bool = True, e: float = 0.5, lk: bool = False
    ) -> None:
        super().__init__()
        c = int(c_out * e)
        self.cv1 = nn.Sequential(
            ConvBNAct(c_in, c_in, 3, groups=c_in),
            ConvBNAct(c_in, 2 * c, 1),
            RepDWConv(2 * c) if lk else ConvBNAct(2 * c, 2 * c, 3, groups=2 * c),
            ConvBNAct(2 * c, c_out, 1),
            ConvBNAct(c_out, c_out, 3, groups=c_out),
        )
        self.add = shortcut and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.cv1(x)
        return x + y if self.add else y


class C2f(nn.Module):
    """YOLOv8's CSP stage with two convolutions: split a 1x1 projection in halves, run ``n``
    blocks on the second half, concatenate every intermediate output, fuse with a 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.c = int(c_out * 0.5)
        self.cv1 = ConvBNAct(c_in, 2 * self.c, 1)
        self.cv2 = ConvBNAct((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(self._block(shortcut) for _ in range(n))

    def _block(self, shortcut: bool) -> nn.Module:
        return Bottleneck(self.c, self.c, shortcut)

    def forward(self, x: Tensor) -> Tensor:
        ys = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            ys.append(m(ys[-1]))
        out: Tensor = self.cv2(torch.cat(ys, 1))
        return out


class C2fCIB(C2f):
    """C2f whose blocks are :class:`CIB` (YOLOv10 Sec. 3.2, rank-guided block design)."""

    def __init__(
        self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False, lk: bool = False
    ) -> None:
        self._lk = lk
        super().__init__(c_in, c_out, n, shortcut)

    def _block(self, shortcut: bool) -> nn.Module:
        return CIB(self.c, self.c, shortcut, e=1.0, lk=self._lk)


class SCDown(nn.Module):
    """Spatial-channel decoupled down-sampling (YOLOv10 Sec. 3.2): pw conv to ``c_out``, then a
    stride-``s`` depth-wise ``k x k`` conv (no activation)."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c_in, c_out, 1)
        self.cv2 = ConvBNAct(c_out, c_out, k, stride, groups=c_out, act=False)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.cv2(self.cv1(x))
        return out


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast (YOLOv5): three chained ``k x k`` max-pools, concatenated."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        c = c_in // 2
        self.cv1 = ConvBNAct(c_in, c, 1)
        self.cv2 = ConvBNAct(4 * c, c_out, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: Tensor) -> Tensor:
        ys = [self.cv1(x)]
        for _ in range(3):
            ys.append(self.pool(ys[-1]))
        out: Tensor = self.cv2(torch.cat(ys, 1))
        return out


class PartialAttention(nn.Module):
    """Multi-head self-attention over the ``H W`` positions of a map (YOLOv10's PSA core):
    keys / queries of half the head width, values of the full width, plus a depth-wise 3x3
    positional term on the values."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = self.head_dim // 2
        self.scale = self.key_dim**-0.5
        self.qkv = ConvBNAct(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = ConvBNAct(dim, dim, 1, act=False)
        self.pe = ConvBNAct(dim, dim, 3, groups=dim, act=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        y = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        out: Tensor = self.proj(y)
        return out


class PSA(nn.Module):
    """Partial self-attention (YOLOv10 Sec. 3.3): a 1x1 conv splits the channels in halves;
    one half goes through attention + FFN (both residual), the halves are fused by a 1x1 conv.
    Input and output ``(B, c, H, W)``; ``c / 2`` must be a multiple of 64 or less than 64."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.c = c // 2
        self.cv1 = ConvBNAct(c, 2 * self.c, 1)
        self.cv2 = ConvBNAct(2 * self.c, c, 1)
        self.attn = PartialAttention(self.c, max(1, self.c // 64))
        self.ffn = nn.Sequential(
            ConvBNAct(self.c, 2 * self.c, 1), ConvBNAct(2 * self.c, self.c, 1, act=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        b = b + self.attn(b)
        b = b + self.ffn(b)
        out: Tensor = self.cv2(torch.cat((a, b), 1))
        return out
