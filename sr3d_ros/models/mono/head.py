"""The monocular head: YOLOv10's decoupled head per level plus LeAD-M3D's 3D branches.

Per level (stride ``s``) and location:

* class branch (YOLOv10 Sec. 3.3, lightweight classification head: two depth-wise separable
  convs), ``C`` logits;
* 2D box branch (YOLOv8 / YOLOv10: two 3x3 convs, DFL over ``reg_max`` bins), distances from the
  anchor point to the box's left / top / right / bottom edges;
* 3D branches (LeAD-M3D builds them on YOLOv10; the layout is our formulation): one shared
  3x3 ConvBNAct (the only spatial op, so a 3x3 feature patch around a location determines its
  3D outputs exactly, which CGI3D uses: :mod:`.gating`), then per quantity a 1x1 ConvBNAct and
  a 1x1 output conv: projected-centre offset (2), depth (log depth, log Laplacian scale), size
  (3 log ratios to the class mean), orientation (sin, cos of alpha). ``depth_feat`` is the depth
  branch's 1x1 ConvBNAct output.

:class:`DualHead` holds two such heads of the same structure, one-to-many and one-to-one
(YOLOv10 Sec. 3.1, NMS-free training with dual label assignments).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ConvBNAct

__all__ = [
    "THREE_D_FIELDS",
    "DetectionHead",
    "Head3D",
    "MonoHeadOutputs",
    "assemble_outputs",
    "dfl_expectation",
    "flatten_levels",
]

#: Fields of :class:`MonoHeadOutputs` the 3D branches produce (what CGI3D computes sparsely).
THREE_D_FIELDS = (
    "center_offset",
    "log_depth",
    "log_sigma",
    "log_dims",
    "alpha_sincos",
    "depth_feat",
)


@dataclass
class MonoHeadOutputs:
    """One head's outputs for a batch, float32, locations of all levels concatenated.

    Shapes ``(B, A, ...)`` (or ``(B, K, ...)`` for a gathered subset of locations).

    Attributes:
        cls_logits: ``(B, A, C)`` class logits.
        box_ltrb: ``(B, A, 4)`` non-negative distances from the anchor point to the 2D box's left,
            top, right and bottom edges, network-input pixels.
        center_offset: ``(B, A, 2)`` projected 3D box centre (geometric centre) minus the anchor
            point, in units of the level's stride.
        log_depth: ``(B, A)`` log of the geometric centre's depth ``z`` (metres, optical frame).
        log_sigma: ``(B, A)`` log of the Laplacian scale of that depth (aleatoric uncertainty,
            metres of depth in ``z``: the loss is ``|z - z*| / sigma + log sigma`` in whatever
            space the trainer chooses).
        log_dims: ``(B, A, 3)`` ``log(dims / mean_size[class])``, dims ordered ``(l, h, w)``.
        alpha_sincos: ``(B, A, 2)`` unnormalised ``(sin alpha, cos alpha)``.
        depth_feat: ``(B, A, Cd)`` the depth branch's features right before its output layer.
        box_dist: ``(B, A, 4, R)`` logits of the distance distribution of each box edge over
            ``R = reg_max`` bins (integer strides; for a DFL loss); ``box_ltrb`` is its
            expectation times the stride.
    """

    cls_logits: Tensor
    box_ltrb: Tensor
    center_offset: Tensor
    log_depth: Tensor
    log_sigma: Tensor
    log_dims: Tensor
    alpha_sincos: Tensor
    depth_feat: Tensor
    box_dist: Tensor

    def gather(self, index: Tensor) -> MonoHeadOutputs:
        """The outputs at ``index`` ``(B, K)`` int64 locations of each batch entry -> ``(B, K,
        ...)``."""
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            idx = index.view(*index.shape, *([1] * (t.dim() - 2))).expand(
                *index.shape, *t.shape[2:]
            )
            out[f.name] = torch.gather(t, 1, idx)
        return MonoHeadOutputs(**out)


def dfl_expectation(logits: Tensor) -> Tensor:
    """Expected bin of a ``(..., R)`` distance distribution: ``sum softmax(logits) * [0..R-1]``
    (YOLOv8 / YOLOv10 DFL decoding), ``(...)`` in strides."""
    bins = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return (logits.softmax(-1) * bins).sum(-1)


def flatten_levels(maps: list[Tensor]) -> Tensor:
    """Per-level maps ``(B, ch, H_l, W_l)`` -> ``(B, A, ch)``, levels concatenated in order,
    row-major within a level (the location order of :class:`MonoHeadOutputs`)."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


def assemble_outputs(
    cls_logits: Tensor, box_dist: Tensor, out3d: dict[str, Tensor], strides: Tensor
) -> MonoHeadOutputs:
    """:class:`MonoHeadOutputs` from flattened branch outputs.

    Args:
        cls_logits: ``(B, N, C)``. box_dist: ``(B, N, 4 R)``. out3d: ``center`` ``(B, N, 2)``,
            ``depth`` ``(B, N, 2)``, ``dims`` ``(B, N, 3)``, ``orient`` ``(B, N, 2)``,
            ``depth_feat`` ``(B, N, Cd)``. strides: ``(N,)`` or ``(B, N)`` float stride of each
            location (``N`` = all ``A`` locations or a gathered subset).
    """
    b, n, _ = box_dist.shape
    dist = box_dist.view(b, n, 4, -1)
    return MonoHeadOutputs(
        cls_logits=cls_logits,
        box_ltrb=dfl_expectation(dist) * strides[..., None],
        center_offset=out3d["center"],
        log_depth=out3d["depth"][..., 0],
        log_sigma=out3d["depth"][..., 1],
        log_dims=out3d["dims"],
        alpha_sincos=out3d["orient"],
        depth_feat=out3d["depth_feat"],
        box_dist=dist,
    )


class Head3D(nn.Module):
    """The 3D branches of one level: shared 3x3 ConvBNAct stem, per-quantity 1x1 branches.

    Args:
        c_in: channels of the level's neck output. c_mid: channels of the branches (``Cd``).
        depth_prior_m: initial depth of the log-depth output's bias (metres).
    """

    OUT: ClassVar[dict[str, int]] = {"center": 2, "depth": 2, "dims": 3, "orient": 2}

    def __init__(self, c_in: int, c_mid: int, depth_prior_m: float = 20.0) -> None:
        super().__init__()
        self.stem = ConvBNAct(c_in, c_mid, 3)
        self.hidden = nn.ModuleDict({k: ConvBNAct(c_mid, c_mid, 1) for k in self.OUT})
        self.out = nn.ModuleDict({k: nn.Conv2d(c_mid, n, 1) for k, n in self.OUT.items()})
        with torch.no_grad():
            for conv in self.out.values():
                assert isinstance(conv.bias, Tensor)
                conv.bias.zero_()
            depth_bias = self.out["depth"].bias
            assert isinstance(depth_bias, Tensor)
            depth_bias[0] = math.log(depth_prior_m)

    def stem_patches(self, patches: Tensor) -> Tensor:
        """The stem on ``(K, c_in, 3, 3)`` patches (zero outside the map) -> ``(K, c_mid, 1, 1)``:
        the stem's output at each patch centre."""
        conv, bn, act = self.stem
        assert isinstance(conv, nn.Conv2d)
        y = F.conv2d(patches, conv.weight, None, 1, 0)
        out: Tensor = act(bn(y))
        return out

    def branches(self, stem: Tensor) -> dict[str, Tensor]:
        """Per-quantity outputs from the stem's features ``(N, c_mid, h, w)``: ``center`` (2),
        ``depth`` (2: log depth, log sigma), ``dims`` (3), ``orient`` (2), and ``depth_feat``
        (c_mid), each ``(N, ch, h, w)``."""
        out = {}
        for k, hidden in self.hidden.items():
            h = hidden(stem)
            if k == "depth":
                out["depth_feat"] = h
            out[k] = self.out[k](h)
        return out

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Full-map outputs for ``(B, c_in, H, W)`` features (see :meth:`branches`)."""
        return self.branches(self.stem(x))


def _last_conv(branch: nn.Module) -> nn.Conv2d:
    conv = list(branch.children())[-1]
    assert isinstance(conv, nn.Conv2d)
    return conv


class DetectionHead(nn.Module):
    """One head (one-to-many or one-to-one) over all levels: class, 2D box and 3D branches.

    Args:
        channels: neck output channels per level. num_classes: C. reg_max: DFL bins.
        c3d: channels of the 3D branches. strides: per level. input_hw: nominal input size
            (for the class bias prior). depth_prior_m: see :class:`Head3D`.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        num_classes: int,
        reg_max: int,
        c3d: int,
        strides: tuple[int, ...],
        input_hw: tuple[int, int],
        depth_prior_m: float,
    ) -> None:
        super().__init__()
        c_box = max(16, channels[0] // 4, 4 * reg_max)
        c_cls = max(channels[0], min(num_classes, 100))
        self.reg_max = reg_max
        self.box = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c, c_box, 3), ConvBNAct(c_box, c_box, 3), nn.Conv2d(c_box, 4 * reg_max, 1)
            )
            for c in channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c, c, 3, groups=c),
                ConvBNAct(c, c_cls, 1),
                ConvBNAct(c_cls, c_cls, 3, groups=c_cls),
                ConvBNAct(c_cls, c_cls, 1),
                nn.Conv2d(c_cls, num_classes, 1),
            )
            for c in channels
        )
        self.head3d = nn.ModuleList(Head3D(c, c3d, depth_prior_m) for c in channels)
        with torch.no_grad():  # YOLOv8's bias priors: ~5 objects per image, edges ~1 stride away
            h, w = input_hw
            for box, cls, s in zip(self.box, self.cls, strides):
                _last_conv(box).bias.fill_(1.0)  # type: ignore[union-attr]
                prior = math.log(5 / num_classes / ((h / s) * (w / s)))
                _last_conv(cls).bias.fill_(prior)  # type: ignore[union-attr]

    def forward_2d(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Class logits ``(B, C, H_l, W_l)`` and box distribution logits ``(B, 4 R, H_l, W_l)``
        per level."""
        return [m(f) for m, f in zip(self.cls, feats)], [m(f) for m, f in zip(self.box, feats)]

    def forward_3d(self, feats: list[Tensor]) -> list[dict[str, Tensor]]:
        """Full-map 3D outputs per level (see :meth:`Head3D.branches`)."""
        return [m(f) for m, f in zip(self.head3d, feats)]

    def forward(self, feats: list[Tensor], strides: Tensor) -> MonoHeadOutputs:
        """All branches on the full maps.

        Args:
            feats: neck outputs ``(B, c_l, H_l, W_l)`` per level. strides: ``(A,)`` float stride
                of each location.

        Returns:
            :class:`MonoHeadOutputs` ``(B, A, ...)``.
        """
        cls_maps, box_maps = self.forward_2d(feats)
        maps3d = self.forward_3d(feats)
        out3d = {k: flatten_levels([m[k] for m in maps3d]) for k in maps3d[0]}
        return assemble_outputs(flatten_levels(cls_maps), flatten_levels(box_maps), out3d, strides)
