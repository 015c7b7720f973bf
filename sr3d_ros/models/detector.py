"""The point-cloud detector: voxelize -> MinkResNet -> TR3D neck -> TR3D head -> NMS.

Architecture from TR3D (Rukhovich et al., 2023); SR3D changes training only, so inference is
exactly this. Input points are ``(N, 3)`` xyz or ``(N, 6)`` xyz + rgb (0..255) in metres in a
gravity-aligned frame (z up); boxes come out in the same frame.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import InferenceConfig, ModelConfig
from ..detections import Detections
from ..geometry import batched_nms_3d
from ..sparse import SparseTensor, sparse_collate, voxelize
from ..timing import StageTimer
from .backbone import MinkResNet, scaled_channels
from .head import HeadOutputs, TR3DHead, decode_boxes
from .neck import TR3DNeck

__all__ = ["TR3DDetector", "points_to_sparse"]

#: Feature given to every voxel of a cloud without colour (mid grey after /255).
_NO_COLOR_VALUE = 127.5


def points_to_sparse(
    points: list[torch.Tensor], voxel_size: float, color_mean: float = 0.0
) -> SparseTensor:
    """Voxelize a batch of clouds into one sparse tensor with rgb features.

    Args:
        points: per scene ``(N_i, 3)`` or ``(N_i, 6)`` float tensors: xyz metres + rgb 0..255.
            Clouds without colour get mid grey.
        voxel_size: metres.
        color_mean: subtracted from rgb / 255.

    Returns:
        Batched tensor, features ``(M, 3)`` = mean rgb / 255 - color_mean per voxel.

    Raises:
        ValueError: empty batch list, bad shapes, non-finite points (see
            :func:`sr3d_ros.sparse.voxelize`).
    """
    if len(points) == 0:
        raise ValueError("no point clouds given")
    coords, feats = [], []
    for p in points:
        if p.dim() != 2 or p.shape[1] not in (3, 6):
            raise ValueError(
                f"points must be (N, 3) or (N, 6) = xyz [+ rgb 0..255], got {tuple(p.shape)}"
            )
        rgb = p[:, 3:6] if p.shape[1] == 6 else p.new_full((p.shape[0], 3), _NO_COLOR_VALUE)
        v = voxelize(p[:, :3], voxel_size, features=rgb)
        coords.append(v.coordinates[:, 1:])
        feats.append(v.features / 255.0 - color_mean)
    return sparse_collate(coords, feats)


class TR3DDetector(nn.Module):
    """TR3D-architecture detector built from a :class:`~sr3d_ros.config.ModelConfig`.

    Submodules ``backbone``, ``neck``, ``head`` keep TR3D's names (checkpoint conversion).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = MinkResNet(
            config.in_channels,
            config.stem_channels,
            config.num_planes,
            config.blocks,
            config.width,
            config.max_channels,
        )
        head_channels = scaled_channels(config.neck_channels, config.width, config.max_channels)
        self.neck = TR3DNeck(self.backbone.out_channels, head_channels)
        self.head = TR3DHead(
            head_channels, config.num_classes, config.num_reg_outs, config.voxel_size
        )

    def forward(self, x: SparseTensor, timer: StageTimer | None = None) -> HeadOutputs:
        """Run the network on voxelized input.

        Args:
            x: batched sparse tensor at stride 1 (from :func:`points_to_sparse`): coordinates
                ``(N, 4)`` int = batch, x, y, z in voxels of ``config.voxel_size``; features
                ``(N, in_channels)`` float = mean rgb / 255 - ``color_mean``.
            timer: optional per-stage timer (``backbone``, ``neck``, ``head``, milliseconds).

        Returns:
            :class:`HeadOutputs` of all levels and scenes (raw logits; ``batch`` says which
            scene): decode and threshold with :meth:`postprocess`. Locations in metres in the
            input cloud's frame.

        Raises:
            ValueError (sparse engine): features with the wrong channel count.
        """
        timer = timer or StageTimer(enabled=False)
        with timer.stage("backbone"):
            feats: list[SparseTensor] = self.backbone(x)
        with timer.stage("neck"):
            levels: list[SparseTensor] = self.neck(feats)
        with timer.stage("head"):
            out: HeadOutputs = self.head(levels)
        return out

    def decode(self, outputs: HeadOutputs) -> torch.Tensor:
        """``(L, 7)`` decoded boxes of every location (see :func:`decode_boxes`)."""
        return decode_boxes(outputs.locations, outputs.bbox_pred, self.config.yaw_parametrization)

    @torch.no_grad()
    def postprocess(
        self, outputs: HeadOutputs, batch_size: int, cfg: InferenceConfig
    ) -> list[Detections]:
        """Scores, top-k, decoding and per-class NMS per scene (TR3D's test procedure).

        For each scene: sigmoid scores; keep the ``nms_pre`` locations with the highest max
        class score; every (location, class) pair above ``score_threshold`` is a candidate;
        per-class NMS at ``iou_threshold`` (rotated IoU for yaw models).

        Returns:
            One :class:`Detections` per scene, sorted by descending score.
        """
        results = []
        names = self.config.class_names
        for b in range(batch_size):
            o = outputs.select(outputs.batch == b)
            if len(o.batch) == 0:
                results.append(Detections.empty(names, outputs.cls_logits.device))
                continue
            scores = o.cls_logits.float().sigmoid()
            max_scores = scores.max(dim=1).values
            if scores.shape[0] > cfg.nms_pre:
                top = max_scores.topk(cfg.nms_pre).indices
                o = o.select(top)
                scores = scores[top]
            boxes = decode_boxes(
                o.locations.float(), o.bbox_pred.float(), self.config.yaw_parametrization
            )
            loc_idx, cls_idx = torch.nonzero(scores > cfg.score_threshold, as_tuple=True)
            cand_boxes = boxes[loc_idx]
            cand_scores = scores[loc_idx, cls_idx]
            keep = batched_nms_3d(
                cand_boxes,
                cand_scores,
                cls_idx,
                cfg.iou_threshold,
                rotated=self.config.with_yaw or None,
            )
            if cfg.max_detections > 0:
                keep = keep[: cfg.max_detections]
            results.append(Detections(cand_boxes[keep], cand_scores[keep], cls_idx[keep], names))
        return results
