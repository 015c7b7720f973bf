"""TR3D head (Rukhovich et al., TR3D, 2023): one shared pair of 1x1 convolutions for all levels.

Per output voxel: class logits (C) and a box regression: centre offset (3, metres, from the
voxel's location), log sizes (3; exponentiated here), and for yaw datasets two angle terms.
Box decoding (:func:`decode_boxes`) turns that into boxes in our convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..sparse import SparseConv3d, SparseTensor

__all__ = ["HeadOutputs", "TR3DHead", "decode_boxes"]

#: log-size logits are clamped here before ``exp`` (e^8 ~ 3 km): no inf from a wild logit.
_MAX_LOG_SIZE = 8.0


@dataclass
class HeadOutputs:
    """Head outputs of a batch, all levels concatenated (finer level first).

    Attributes:
        cls_logits: ``(L, C)`` class logits.
        bbox_pred: ``(L, R)`` regression with sizes already exponentiated: ``dx, dy, dz`` centre
            offset (m), ``sx, sy, sz`` sizes (m), and for R = 8 two angle terms.
        locations: ``(L, 3)`` float metres: voxel coordinate x voxel size of every output voxel
            (the min corner of its cell, as TR3D), in the input cloud's gravity-aligned frame.
        levels: ``(L,)`` int64 output level (0 finer, 1 coarser).
        batch: ``(L,)`` int64 batch entry of each location.
    """

    cls_logits: torch.Tensor
    bbox_pred: torch.Tensor
    locations: torch.Tensor
    levels: torch.Tensor
    batch: torch.Tensor

    def select(self, mask: torch.Tensor) -> HeadOutputs:
        """Rows where ``mask`` ``(L,)`` bool (or an index tensor) selects."""
        return HeadOutputs(
            self.cls_logits[mask],
            self.bbox_pred[mask],
            self.locations[mask],
            self.levels[mask],
            self.batch[mask],
        )


def decode_boxes(
    locations: torch.Tensor, bbox_pred: torch.Tensor, yaw_parametrization: str = "sincos"
) -> torch.Tensor:
    """Decode head regression into boxes ``(x, y, z, dx, dy, dz, yaw)``.

    Args:
        locations: ``(L, 3)`` metres.
        bbox_pred: ``(L, 6)`` or ``(L, 8)`` from :class:`HeadOutputs` (sizes exponentiated).
        yaw_parametrization: for 8 outputs, ``"sincos"`` (ours: ``yaw = atan2(r6, r7)``, sizes
            as predicted) or ``"tr3d"`` (TR3D/FCAF3D's published decoding: ``q = exp(|(r6, r7)|)``,
            ``yaw = atan2(r6, r7) / 2``, ``dx = (sx + sy) / (1 + q)``, ``dy = q * dx``,
            ``dz = sz + sy``), kept only so converted TR3D SUN RGB-D checkpoints decode right.

    Returns:
        ``(L, 7)`` boxes, geometric centre, metres, yaw radians about +z (0 for 6 outputs).

    Raises:
        ValueError: on a wrong shape or unknown parametrization.
    """
    if (
        bbox_pred.dim() != 2
        or bbox_pred.shape[1] not in (6, 8)
        or locations.shape != (bbox_pred.shape[0], 3)
    ):
        raise ValueError(
            f"bad shapes: locations {tuple(locations.shape)}, bbox_pred {tuple(bbox_pred.shape)}"
        )
    centre = locations + bbox_pred[:, :3]
    sizes = bbox_pred[:, 3:6]
    if bbox_pred.shape[1] == 6:
        return torch.cat([centre, sizes, bbox_pred.new_zeros((bbox_pred.shape[0], 1))], dim=1)
    if yaw_parametrization == "sincos":
        yaw = torch.atan2(bbox_pred[:, 6], bbox_pred[:, 7])
        return torch.cat([centre, sizes, yaw.unsqueeze(1)], dim=1)
    if yaw_parametrization == "tr3d":
        scale = sizes[:, 0] + sizes[:, 1]
        q = torch.exp(torch.sqrt(bbox_pred[:, 6] ** 2 + bbox_pred[:, 7] ** 2))
        yaw = 0.5 * torch.atan2(bbox_pred[:, 6], bbox_pred[:, 7])
        dx = scale / (1 + q)
        return torch.stack(
            [centre[:, 0], centre[:, 1], centre[:, 2], dx, dx * q, sizes[:, 2] + sizes[:, 1], yaw],
            dim=1,
        )
    raise ValueError(f"unknown yaw parametrization {yaw_parametrization!r}")


class TR3DHead(nn.Module):
    """Shared 1x1 classification / regression convolutions (``conv_cls``, ``conv_reg``).

    Args:
        in_channels: neck output channels.
        num_classes: C.
        num_reg_outs: 6 (axis-aligned) or 8 (with yaw).
        voxel_size: metres per stride-1 voxel (turns coordinates into locations).
    """

    def __init__(
        self, in_channels: int, num_classes: int, num_reg_outs: int, voxel_size: float
    ) -> None:
        super().__init__()
        self.voxel_size = voxel_size
        self.conv_reg = SparseConv3d(in_channels, num_reg_outs, 1, bias=True)
        self.conv_cls = SparseConv3d(in_channels, num_classes, 1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.01) kernels; classification bias for a 1% prior (focal-loss init)."""
        nn.init.normal_(self.conv_reg.kernel, std=0.01)
        nn.init.normal_(self.conv_cls.kernel, std=0.01)
        assert self.conv_cls.bias is not None and self.conv_reg.bias is not None
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - 0.01) / 0.01))
        nn.init.zeros_(self.conv_reg.bias)

    def forward(self, levels: list[SparseTensor]) -> HeadOutputs:
        """Args: levels: neck outputs (finer first), features ``(M_j, in_channels)``.

        Returns:
            :class:`HeadOutputs` of all levels concatenated: ``cls_logits (L, C)`` raw logits,
            ``bbox_pred (L, num_reg_outs)`` with sizes exponentiated (metres), ``locations
            (L, 3)`` metres (coordinates x ``voxel_size``, the input cloud's frame), ``levels``
            and ``batch`` ``(L,)`` int64; float tensors in the features' dtype, on their device.

        Raises:
            ValueError (sparse engine): ``in_channels`` features expected.
        """
        cls, reg, loc, lvl, batch = [], [], [], [], []
        for i, x in enumerate(levels):
            r = self.conv_reg(x).features
            sizes = torch.exp(r[:, 3:6].clamp(max=_MAX_LOG_SIZE))
            reg.append(torch.cat([r[:, :3], sizes, r[:, 6:]], dim=1))
            cls.append(self.conv_cls(x).features)
            coords = x.coordinates
            loc.append(coords[:, 1:].to(r.dtype) * self.voxel_size)
            lvl.append(torch.full((len(x),), i, dtype=torch.int64, device=r.device))
            batch.append(coords[:, 0].to(torch.int64))
        return HeadOutputs(
            torch.cat(cls), torch.cat(reg), torch.cat(loc), torch.cat(lvl), torch.cat(batch)
        )
