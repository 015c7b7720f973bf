"""The monocular detector's training loss: CM3D assignment of both heads + 2D and 3D losses.

For each head (one-to-many with ``k = 10``, one-to-one with ``k = 1``; YOLOv10's dual
assignment, both ranked by the same CM3D metric on their own predictions,
:mod:`sr3d_training.assigners.cm3d`) and its positives ``P``:

* classification: BCE of all locations and classes against the soft targets (the normalised
  matching metric at the assigned class, times the object's MixUp weight; 0 elsewhere), summed
  and divided by the sum of the soft targets ``T`` (at least 1), as YOLOv8 / YOLOv10;
* 2D box: ``(1 - GIoU)`` of the decoded 2D box and DFL of its edges, weighted by the soft
  target and divided by ``T`` (YOLOv8 / YOLOv10);
* 3D (:mod:`sr3d_training.losses.mono`): projected-centre offset L1, Laplacian depth NLL,
  dimension L1, orientation ``1 - cos``, and the MGIoU loss ``(1 - MGIoU) / 2`` of the decoded
  camera box (:func:`~sr3d_ros.models.mono.decode_camera_boxes` with the letterboxed ``P``)
  against the label, both in the body frame (:func:`~sr3d_ros.geometry.camera_boxes_to_boxes`);
  each averaged over the positives weighted by their MixUp weight.

``total = sum over heads of sum_i weight_i * loss_i`` (weights: :class:`MonoLossConfig`). Targets
of an object: its 2D label box, the projection of its 3D box's geometric centre with the
network input's ``P`` (the baseline term included) and that centre's depth ``z``,
``(l, h, w)``, and ``alpha = ry - atan2(x, z)`` of the centre (what the decoding inverts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sr3d_ros.geometry.camera import camera_boxes_to_boxes, rotation_y_to_alpha
from sr3d_ros.geometry.mgiou import mgiou_loss
from sr3d_ros.models.mono import (
    MonoHeadOutputs,
    MonoModelConfig,
    MonoOutputs,
    decode_camera_boxes,
    decode_image_boxes,
)

from ..assigners.cm3d import CM3DAssigner, CM3DConfig, CM3DResult
from ..batching import MonoTargets
from ..losses.iou2d import image_box_giou, image_box_iou
from ..losses.mono import (
    LOSS_TERMS,
    MonoLossConfig,
    center_offset_l1,
    dimension_l1,
    distribution_focal_loss,
    laplacian_depth_nll,
    orientation_loss,
)
from .base import TaskLoss

__all__ = ["MonoCriterion", "MonoTargets"]


@dataclass
class _Derived:
    """Per-object regression targets derived from :class:`MonoTargets`."""

    body: Tensor  # (B, G, 7) our boxes, body frame
    uv: Tensor  # (B, G, 2) projected geometric centre, input pixels
    depth: Tensor  # (B, G) z of the geometric centre, metres
    dims: Tensor  # (B, G, 3) l, h, w
    alpha: Tensor  # (B, G) observation angle of the centre


def _derive(t: MonoTargets) -> _Derived:
    cam = t.cam_boxes
    x, y, z, l, h, w, ry = cam.unbind(-1)
    centre = torch.stack([x, y - 0.5 * h, z, torch.ones_like(x)], dim=-1)  # geometric centre
    proj = centre @ t.projections.transpose(1, 2)  # (B, G, 3)
    denom = proj[..., 2:].clamp(min=1e-6)
    return _Derived(
        body=camera_boxes_to_boxes(cam),
        uv=proj[..., :2] / denom,
        depth=z,
        dims=torch.stack([l, h, w], dim=-1),
        alpha=rotation_y_to_alpha(ry, x, z),
    )


class MonoCriterion:
    """Callable: ``(outputs, targets) -> TaskLoss`` (module docstring).

    Args:
        model_cfg: the model's configuration (classes, mean sizes).
        assigner: CM3D parameters (``gamma = 0``: TAL).
        weights: loss weights.
    """

    def __init__(
        self,
        model_cfg: MonoModelConfig,
        assigner: CM3DConfig | None = None,
        weights: MonoLossConfig | None = None,
    ) -> None:
        self.model_cfg = model_cfg
        self.assigner = CM3DAssigner(assigner)
        self.weights = weights or MonoLossConfig()

    def _pred_boxes3d(self, head: MonoHeadOutputs, out: MonoOutputs, t: MonoTargets) -> Tensor:
        """``(B, A, C, 7)`` body-frame boxes of every location decoded with each class."""
        b, a, c = head.cls_logits.shape
        means = torch.as_tensor(self.model_cfg.mean_sizes, device=t.projections.device)
        boxes = []
        for k in range(c):
            labels = torch.full((b, a), k, dtype=torch.int64, device=head.cls_logits.device)
            cam = decode_camera_boxes(
                head, out.anchor_points, out.strides, labels, t.projections, mean_sizes=means
            )
            boxes.append(camera_boxes_to_boxes(cam))
        return torch.stack(boxes, dim=2)

    def assign(
        self, head: MonoHeadOutputs, out: MonoOutputs, t: MonoTargets, topk: int
    ) -> CM3DResult:
        """CM3D assignment of one head's locations (detached predictions)."""
        with torch.no_grad():
            pred3d = self._pred_boxes3d(head, out, t) if self.assigner.needs_3d else None
            return self.assigner.assign(
                head.cls_logits.detach().sigmoid(),
                decode_image_boxes(head, out.anchor_points).detach(),
                pred3d,
                out.anchor_points,
                t.labels,
                t.boxes2d,
                _derive(t).body if self.assigner.needs_3d else None,
                t.mask,
                topk,
            )

    def head_loss(
        self, head: MonoHeadOutputs, out: MonoOutputs, t: MonoTargets, res: CM3DResult
    ) -> tuple[dict[str, Tensor], dict[str, float]]:
        """Unweighted loss terms (:data:`LOSS_TERMS`) of one head, plus bookkeeping."""
        d = _derive(t)
        pos = res.gt_index >= 0
        bi, ai = pos.nonzero(as_tuple=True)
        gi = res.gt_index[bi, ai]
        labels, wts = t.labels[bi, gi], t.weights[bi, gi]
        logits = head.cls_logits
        soft = torch.zeros_like(logits)
        soft[bi, ai, labels] = (res.target_score[bi, ai] * wts).to(logits.dtype)
        tsum = soft.sum().clamp(min=1.0)
        terms: dict[str, Tensor] = {
            "cls": F.binary_cross_entropy_with_logits(logits, soft, reduction="sum") / tsum
        }
        tw = soft[bi, ai, labels]
        anchors, strides = out.anchor_points[ai], out.strides[ai]
        pred2d = decode_image_boxes(head, out.anchor_points)[bi, ai]
        gt2d = t.boxes2d[bi, gi]
        terms["box"] = ((1 - image_box_giou(pred2d, gt2d)) * tw).sum() / tsum
        ltrb = torch.cat([anchors - gt2d[:, :2], gt2d[:, 2:] - anchors], -1) / strides[:, None]
        terms["dfl"] = (distribution_focal_loss(head.box_dist[bi, ai], ltrb) * tw).sum() / tsum
        means = torch.as_tensor(self.model_cfg.mean_sizes, dtype=logits.dtype, device=logits.device)
        full_labels = torch.zeros_like(res.gt_index)
        full_labels[bi, ai] = labels
        cam = decode_camera_boxes(
            head, out.anchor_points, out.strides, full_labels, t.projections, mean_sizes=means
        )[bi, ai]
        per_pos = {
            "center": center_offset_l1(
                head.center_offset[bi, ai], (d.uv[bi, gi] - anchors) / strides[:, None]
            ),
            "depth": laplacian_depth_nll(
                head.log_depth[bi, ai], head.log_sigma[bi, ai], d.depth[bi, gi]
            ),
            "dims": dimension_l1(head.log_dims[bi, ai], means[labels], d.dims[bi, gi]),
            "orient": orientation_loss(head.alpha_sincos[bi, ai], d.alpha[bi, gi]),
            "mgiou": mgiou_loss(camera_boxes_to_boxes(cam), d.body[bi, gi]),
        }
        wsum = wts.sum().clamp(min=1e-6)
        for name, value in per_pos.items():
            terms[name] = (value * wts).sum() / wsum if len(wts) else logits.sum() * 0.0
        with torch.no_grad():
            info = {
                "num_pos": float(len(ai)),
                "pos_iou": float(image_box_iou(pred2d, gt2d, aligned=True).mean())
                if len(ai)
                else 0.0,
                "depth_err": float((cam[:, 2] - t.cam_boxes[bi, gi][:, 2]).abs().mean())
                if len(ai)
                else 0.0,
            }
        return terms, info

    def __call__(self, out: MonoOutputs, targets: MonoTargets) -> TaskLoss:
        """The total loss of a batch and its logged parts.

        Args:
            out: the model's outputs for the batch (``(B, A, ...)``).
            targets: the batch's ground truth on the model's device.

        Returns:
            :class:`TaskLoss`: ``total`` (both heads, weighted), scalars: each term summed over
            the heads (unweighted), ``num_pos`` / ``pos_iou`` / ``depth_err`` (metres) of the
            one-to-many head and ``num_pos_o2o`` / ``pos_iou_o2o`` / ``depth_err_o2o``.

        Raises:
            ValueError: inconsistent shapes (from the assigner).
        """
        cfg = self.assigner.cfg
        total = out.one2many.cls_logits.new_zeros(())
        sums = dict.fromkeys(LOSS_TERMS, 0.0)
        scalars: dict[str, float] = {}
        for suffix, head, k in (
            ("", out.one2many, cfg.topk_one2many),
            ("_o2o", out.one2one, cfg.topk_one2one),
        ):
            res = self.assign(head, out, targets, k)
            terms, info = self.head_loss(head, out, targets, res)
            for name in LOSS_TERMS:
                total = total + getattr(self.weights, name) * terms[name]
                sums[name] += float(terms[name].detach())
            scalars.update({f"{k}{suffix}": v for k, v in info.items()})
        return TaskLoss(total, {**{f"{k}_loss": v for k, v in sums.items()}, **scalars})
