"""The monocular detector network: YOLOv10 backbone + PAN neck + dual (one-to-many / one-to-one)
head with LeAD-M3D's 3D branches (LeAD-M3D, Meier et al., arXiv 2512.05663, builds on YOLOv10)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .backbone import PANNeck, YOLOv10Backbone
from .config import MonoModelConfig
from .head import DetectionHead, MonoHeadOutputs

__all__ = ["MonoDetectorModel", "MonoOutputs", "anchor_grid"]


@dataclass
class MonoOutputs:
    """What :class:`MonoDetectorModel` returns for a batch.

    Attributes:
        one2many: one-to-many head (trained with top-k positives per object), ``(B, A, ...)``.
        one2one: one-to-one head (top-1 positive; inference uses it without NMS).
        anchor_points: ``(A, 2)`` float32 ``(u, v)`` network-input pixel of each location's
            centre, ``((j + 0.5) s - 0.5, (i + 0.5) s - 0.5)`` for row ``i``, column ``j`` of a
            stride-``s`` level (pixel centres at integers, :mod:`sr3d_ros.geometry.camera`).
        strides: ``(A,)`` float32 stride of each location.
        level_shapes: ``(H_l, W_l)`` of each level (locations are the levels concatenated in
            stride order, row-major within a level).
    """

    one2many: MonoHeadOutputs
    one2one: MonoHeadOutputs
    anchor_points: Tensor
    strides: Tensor
    level_shapes: list[tuple[int, int]]


def anchor_grid(
    level_shapes: list[tuple[int, int]],
    strides: tuple[int, ...],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Anchor points and strides of all locations.

    Args:
        level_shapes: ``(H_l, W_l)`` per level. strides: stride per level (pixels).

    Returns:
        ``(anchor_points (A, 2), strides (A,))``: ``(u, v)`` pixel centre of each location,
        ``((j + 0.5) s - 0.5, (i + 0.5) s - 0.5)``, levels concatenated, row-major.
    """
    points, steps = [], []
    for (h, w), s in zip(level_shapes, strides):
        v = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s - 0.5
        u = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s - 0.5
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        points.append(torch.stack([uu, vv], dim=-1).reshape(-1, 2))
        steps.append(torch.full((h * w,), float(s), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(steps)


class MonoDetectorModel(nn.Module):
    """LeAD-M3D's network for one :class:`~.config.MonoModelConfig`.

    ``forward(images)``: ``images`` ``(B, 3, H, W)`` float32 RGB in [0, 1] (letterboxed; ``H``,
    ``W`` multiples of 32) -> :class:`MonoOutputs`. During training the one-to-one head sees
    detached features when ``config.detach_one2one`` (YOLOv10's released code).

    Raises:
        ValueError: images that are not a float ``(B, 3, H, W)`` tensor with ``H``, ``W``
            positive multiples of 32.
    """

    def __init__(self, config: MonoModelConfig) -> None:
        super().__init__()
        self.config = config
        spec = config.spec
        self.backbone = YOLOv10Backbone(spec)
        self.neck = PANNeck(spec, self.backbone.channels)
        channels = self.backbone.channels
        c3d = round(max(16, channels[0] // 4, 4 * config.reg_max) * config.depth_feat_scale)
        self.one2many, self.one2one = (
            DetectionHead(
                channels,
                config.num_classes,
                config.reg_max,
                c3d,
                tuple(config.strides),
                config.input_size,
                config.depth_prior_m,
            )
            for _ in range(2)
        )
        self.depth_feat_channels = c3d

    @staticmethod
    def check_images(images: Tensor) -> None:
        """ValueError unless ``images`` is a floating ``(B, 3, H, W)`` tensor, ``H``, ``W``
        positive multiples of 32."""
        if not isinstance(images, Tensor) or not images.is_floating_point():
            raise ValueError("images must be a floating torch.Tensor (B, 3, H, W) in [0, 1]")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[2:]
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ValueError(f"image height and width must be multiples of 32, got {h} x {w}")

    def features(self, images: Tensor) -> list[Tensor]:
        """Neck outputs ``[(B, c_l, H / s_l, W / s_l)]`` for strides 8, 16, 32."""
        self.check_images(images)
        out: list[Tensor] = self.neck(self.backbone(images))
        return out

    def anchors(self, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        """``(anchor_points (A, 2), strides (A,))`` of these feature maps (:func:`anchor_grid`)."""
        shapes = [(int(f.shape[2]), int(f.shape[3])) for f in feats]
        return anchor_grid(shapes, tuple(self.config.strides), feats[0].device)

    def forward(self, images: Tensor) -> MonoOutputs:
        feats = self.features(images)
        anchor_points, strides = self.anchors(feats)
        one2many = self.one2many(feats, strides)
        o2o_feats = (
            [f.detach() for f in feats] if self.training and self.config.detach_one2one else feats
        )
        one2one = self.one2one(o2o_feats, strides)
        shapes = [(int(f.shape[2]), int(f.shape[3])) for f in feats]
        return MonoOutputs(one2many, one2one, anchor_points, strides, shapes)
