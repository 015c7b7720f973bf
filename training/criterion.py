"""Detection loss of one batch: label assignment + classification loss + DIoU box loss.

Decode the head's boxes, assign every scene's locations to its ground-truth boxes (TR3D or SPOTA,
from the config; one batched call), then

* classification: the configured loss (focal baseline, or RAS / QFL / VFL) summed over all
  locations of all scenes and divided by the total number of positives (TR3D's normalisation;
  under DDP the positive count is averaged over the ranks first);
* box: DIoU loss (Zheng et al., AAAI 2020; 3D centre term, rotated IoU for yaw models) averaged
  over all positives of the batch.

The IoU each positive's predicted box has with its assigned box (detached) is what RAS/QFL/VFL
use as quality target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from sr3d_ros.geometry import aligned_box_iou_3d, diou_loss
from sr3d_ros.models import HeadOutputs, decode_boxes

from .assigners import Assigner
from .losses import ClassificationLoss, collate_assignments

__all__ = ["DetectionLoss", "LossOutput"]


@dataclass
class LossOutput:
    """Total loss and its parts (scalars) plus bookkeeping."""

    total: torch.Tensor
    cls: torch.Tensor
    bbox: torch.Tensor
    num_pos: int
    mean_pos_iou: float


def _mean_over_ranks(count: int, device: torch.device) -> float:
    """``count`` averaged over the DDP ranks (the count itself outside torch.distributed).

    The classification loss is normalised by the number of positives; under DDP each rank's
    gradients are averaged, so dividing every rank's sum by the ranks' MEAN positive count makes
    the step equal to the global sum over the global count (as TR3D/FCAF3D's ``reduce_mean``).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return float(count)
    t = torch.tensor(float(count), device=device)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


class DetectionLoss:
    """Callable computing :class:`LossOutput` from head outputs and ground truth.

    Args:
        assigner: label assigner (``assign(locations, levels, gt_boxes, gt_labels, pred_boxes,
            cls_logits)``).
        cls_loss: classification loss (``(cls_logits, gt_index, gt_labels, ious) -> sum``).
        yaw_parametrization: how the head's boxes decode (model config).
        with_yaw: rotated IoU for the box loss (yaw datasets) instead of axis-aligned.
        bbox_loss_weight: weight of the box loss.
    """

    def __init__(
        self,
        assigner: Assigner,
        cls_loss: ClassificationLoss,
        yaw_parametrization: str = "sincos",
        with_yaw: bool = False,
        bbox_loss_weight: float = 1.0,
    ) -> None:
        self.assigner = assigner
        self.cls_loss = cls_loss
        self.yaw_parametrization = yaw_parametrization
        self.with_yaw = with_yaw
        self.bbox_loss_weight = bbox_loss_weight

    def __call__(
        self, outputs: HeadOutputs, gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor]
    ) -> LossOutput:
        """Assign every scene of the batch (one :meth:`Assigner.assign_batch` call: SPOTA solves
        the batch in one transport problem), then the classification and box losses.

        Args:
            outputs: head outputs of the batch (``outputs.batch`` indexes ``gt_*``).
            gt_boxes: per scene ``(K_i, 7)`` float boxes (our convention, metres / radians) on
                the model's device.
            gt_labels: per scene ``(K_i,)`` int64 class indices.

        Returns:
            :class:`LossOutput`: ``cls`` = summed classification loss / number of positives
            (mean over DDP ranks, at least 1), ``bbox`` = mean DIoU loss of the positives (0
            without positives), ``total = cls + bbox_loss_weight * bbox``.

        Raises:
            ValueError / TypeError: from the assigner or the losses (bad shapes, labels).
        """
        device = outputs.cls_logits.device
        scenes = [outputs.select(outputs.batch == b) for b in range(len(gt_boxes))]
        preds = [decode_boxes(o.locations, o.bbox_pred, self.yaw_parametrization) for o in scenes]
        results = self.assigner.assign_batch(
            [o.locations for o in scenes],
            [o.levels for o in scenes],
            gt_boxes,
            gt_labels,
            [p.detach() for p in preds],
            [o.cls_logits.detach() for o in scenes],
        )
        gt_index, labels, scene_ids = collate_assignments([r.gt_index for r in results], gt_labels)
        cls_logits = torch.cat([o.cls_logits for o in scenes])
        pred = torch.cat(preds)
        pos = gt_index >= 0
        num_pos = int(pos.sum())
        ious = pred.new_zeros(pred.shape[0])
        rotated = bool(self.with_yaw)
        if num_pos:
            target = torch.cat(gt_boxes)[gt_index[pos]]
            with torch.no_grad():
                ious[pos] = aligned_box_iou_3d(pred[pos].detach(), target, rotated=rotated).clamp(
                    0, 1
                )
            bbox = diou_loss(pred[pos], target, rotated=rotated, reduction="mean")
        else:
            bbox = outputs.bbox_pred.sum() * 0.0
        cls_sum = self.cls_loss(cls_logits, gt_index, labels, ious, scene_ids)
        cls = cls_sum / max(_mean_over_ranks(num_pos, device), 1.0)
        total = cls + self.bbox_loss_weight * bbox
        mean_iou = float(ious[pos].mean()) if num_pos else 0.0
        return LossOutput(total, cls.detach(), bbox.detach(), num_pos, mean_iou)
