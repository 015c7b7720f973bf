"""Evaluation of the monocular detector on KITTI frames: predictions as KITTI objects, AP|R40
with the KITTI evaluator (:mod:`.kitti`), and the depth error of matched cars.

* :func:`predict_kitti_frame` / :func:`predict_mono_dataset`: detections of the
  :class:`~sr3d_ros.mono_inference.MonoDetector` (one-to-one head, CGI3D, no NMS: YOLOv10
  Sec. 3.1) or, for the ablation, of the one-to-many head's most confident locations above the
  score threshold followed by class-wise 2D NMS (IoU 0.7, YOLOv8 / YOLOv10's default), as KITTI
  result objects (3D boxes in the labels' frame, 2D boxes in the frame's pixels).
* :func:`car_depth_error`: mean absolute error of the centre depth ``z`` (metres) of the ground
  truth cars matched by a car detection (greedy in descending score, 2D IoU >= 0.5, each ground
  truth once; our formulation, the number A2D2's table reports).
* :func:`evaluate_mono`: both, plus the AP that perfect detections (the labels themselves)
  reach on the same frames. With fewer than 40 counted ground-truth boxes the official R40
  sampling caps AP below 100 (at ``(n - 1) / 40`` for ``n`` boxes), so small evaluations report
  the AP next to that ceiling and their ratio (``*_norm``: our normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from sr3d_ros.detections import Detections
from sr3d_ros.geometry.camera import camera_boxes_to_boxes, rotation_y_to_alpha
from sr3d_ros.models.mono import (
    MonoDetectorConfig,
    MonoDetectorModel,
    MonoInferenceConfig,
    decode_camera_boxes,
    decode_image_boxes,
)
from sr3d_ros.models.mono.gating import head_topk
from sr3d_ros.mono_inference import MonoDetector, letterbox_image

from ..datasets.dataset import SampleDataset
from ..datasets.kitti import KittiObjects
from ..datasets.sample import Sample
from ..image_transforms import map_image_boxes
from ..losses.iou2d import image_box_iou
from .kitti import KittiEvalResult, evaluate_kitti

__all__ = [
    "MonoEvaluation",
    "MonoFrameResult",
    "car_depth_error",
    "detections_to_kitti",
    "evaluate_mono",
    "nms_2d",
    "one2many_nms_detections",
    "predict_kitti_frame",
    "predict_mono_dataset",
]

#: class-wise 2D NMS IoU of the one-to-many ablation path, and its pre-NMS candidate cap
NMS_IOU = 0.7
NMS_PRE_TOPK = 300
_DIFFICULTIES = ("easy", "moderate", "hard")


@dataclass
class MonoFrameResult:
    """Detections and labels of one frame (original image pixels, labels' camera frame)."""

    sample_id: str
    detections: KittiObjects
    labels: KittiObjects


def nms_2d(boxes: Tensor, scores: Tensor, labels: Tensor, iou: float = NMS_IOU) -> Tensor:
    """Greedy class-wise NMS of image boxes.

    Args:
        boxes: ``(N, 4)`` float ``x1, y1, x2, y2`` pixels. scores: ``(N,)``. labels: ``(N,)``
            int64. iou: suppress a box overlapping a kept box of its class by more than this.

    Returns:
        ``(K,)`` int64 indices of the kept boxes, by descending score.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    keep: list[int] = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    overlaps = image_box_iou(boxes[order], boxes[order])
    same = labels[order][:, None] == labels[order][None, :]
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(int(order[i]))
        suppressed |= (overlaps[i] > iou) & same[i]
    return torch.tensor(keep, dtype=torch.int64)


def detections_to_kitti(det: Detections) -> KittiObjects:
    """Monocular :class:`~sr3d_ros.detections.Detections` as KITTI result objects.

    Args:
        det: detections with ``camera_boxes`` and ``image_boxes`` (a monocular result).

    Returns:
        :class:`KittiObjects` (float64): names, 2D boxes, dimensions ``(h, w, l)``, bottom
        centres, ``rotation_y``, ``alpha = ry - atan2(x, z)``, scores; truncation / occlusion 0.

    Raises:
        ValueError: detections without camera or image boxes.
    """
    if det.camera_boxes is None or det.image_boxes is None:
        raise ValueError("detections without camera_boxes / image_boxes are not monocular")
    cam = det.camera_boxes.detach().double().cpu()
    alpha = rotation_y_to_alpha(cam[:, 6], cam[:, 0], cam[:, 2])
    n = len(cam)
    cam_np = cam.numpy()
    return KittiObjects(
        names=np.array([det.class_names[int(c)] for c in det.labels], dtype=str),
        truncated=np.zeros(n),
        occluded=np.zeros(n),
        alpha=alpha.numpy(),
        bbox=det.image_boxes.detach().double().cpu().numpy(),
        dimensions=cam_np[:, [4, 5, 3]],
        location=cam_np[:, :3],
        rotation_y=cam_np[:, 6],
        score=det.scores.detach().double().cpu().numpy(),
        weight=np.ones(n),
    )


@torch.no_grad()
def one2many_nms_detections(detector: MonoDetector, sample: Sample) -> Detections:
    """The ablation's path: the one-to-many head's ``NMS_PRE_TOPK`` most confident locations
    above the score threshold, class-wise 2D NMS (:data:`NMS_IOU`), at most ``max_detections``;
    preprocessing and decoding as :class:`~sr3d_ros.mono_inference.MonoDetector` does.

    Raises:
        ValueError: a sample without image / camera.
    """
    if sample.image is None or sample.camera is None:
        raise ValueError(f"sample {sample.sample_id!r} has no image / camera")
    model, inf, dev = detector.model, detector.inference_config, detector.device
    in_h, in_w = detector.config.model.input_size
    box = sample.camera.letterbox(in_w, in_h)
    x = letterbox_image(torch.from_numpy(np.ascontiguousarray(sample.image)).to(dev), box)
    P = torch.tensor(sample.camera.letterboxed(box).P, dtype=torch.float32, device=dev)
    feats = model.neck(model.backbone(x))
    anchors, strides = model.anchors(feats)
    sel = head_topk(model.one2many, feats, strides, NMS_PRE_TOPK, gated=False)
    keep = (sel.scores[0] >= inf.score_threshold).nonzero().squeeze(1)
    boxes2d = decode_image_boxes(sel.head.gather(keep[None]), anchors[sel.index[0, keep]])[0]
    kept = nms_2d(boxes2d.cpu(), sel.scores[0, keep].cpu(), sel.labels[0, keep].cpu())
    keep = keep[kept.to(dev)][: inf.max_detections]
    head, idx, labels = sel.head.gather(keep[None]), sel.index[:, keep], sel.labels[:, keep]
    means = torch.tensor(detector.config.model.mean_sizes, device=dev)
    cam = decode_camera_boxes(head, anchors[idx], strides[idx], labels, P[None], means)[0]
    img = decode_image_boxes(head, anchors[idx])[0].double().cpu().numpy()
    img = map_image_boxes(img, np.linalg.inv(box.affine()))
    img[:, 0::2] = img[:, 0::2].clip(0, sample.camera.width - 1)
    img[:, 1::2] = img[:, 1::2].clip(0, sample.camera.height - 1)
    return Detections(
        camera_boxes_to_boxes(cam),
        sel.scores[0, keep],
        labels[0],
        detector.class_names,
        camera_boxes=cam,
        image_boxes=torch.from_numpy(img).float(),
    )


def predict_kitti_frame(
    detector: MonoDetector, sample: Sample, head: str = "one2one"
) -> KittiObjects:
    """Detect the objects of one KITTI frame.

    Args:
        detector: the monocular detector (its inference settings apply).
        sample: a monocular sample (``image``, ``camera``).
        head: ``"one2one"`` (the detector itself: top-``max_detections``, CGI3D, no NMS) or
            ``"one2many"`` (:func:`one2many_nms_detections`).

    Returns:
        :class:`KittiObjects`: 2D boxes in the frame's pixels, 3D boxes in the labels' frame.

    Raises:
        ValueError: not a monocular sample; unknown ``head``.
    """
    if head not in ("one2one", "one2many"):
        raise ValueError(f"head must be 'one2one' or 'one2many', got {head!r}")
    if head == "one2many":
        return detections_to_kitti(one2many_nms_detections(detector, sample))
    if sample.image is None or sample.camera is None:
        raise ValueError(f"sample {sample.sample_id!r} has no image / camera")
    return detections_to_kitti(detector(sample.image, sample.camera, timed=False))


def predict_mono_dataset(
    model: MonoDetectorModel,
    samples: SampleDataset,
    inference: MonoInferenceConfig,
    head: str = "one2one",
    progress: bool = False,
) -> list[MonoFrameResult]:
    """:func:`predict_kitti_frame` on every sample with a :class:`MonoDetector` around
    ``model`` (eval mode here, restored after).

    Raises:
        ValueError / FileNotFoundError: from the dataset or :func:`predict_kitti_frame`.
    """
    was_training = model.training
    device = next(model.parameters()).device
    detector = MonoDetector(model, MonoDetectorConfig(model.config, inference), device)
    results = []
    try:
        for i in tqdm(range(len(samples)), desc="predict", disable=not progress, leave=False):
            s = samples[i]
            labels = s.meta.get("kitti")
            if not isinstance(labels, KittiObjects):
                raise ValueError(f"sample {s.sample_id!r} has no KITTI labels")
            det = predict_kitti_frame(detector, s, head)
            results.append(MonoFrameResult(s.sample_id, det, labels))
    finally:
        model.train(was_training)
    return results


def car_depth_error(results: Sequence[MonoFrameResult], min_iou: float = 0.5) -> tuple[float, int]:
    """Mean absolute centre-depth error of matched cars (module docstring).

    Returns:
        ``(mean |z_det - z_gt| in metres (nan when nothing matched), number matched)``.
    """
    errors: list[float] = []
    for r in results:
        gt = r.labels.subset(r.labels.names == "Car")
        dt = r.detections.subset(r.detections.names == "Car")
        if not len(gt) or not len(dt):
            continue
        iou = image_box_iou(torch.from_numpy(dt.bbox), torch.from_numpy(gt.bbox)).numpy()
        free = np.ones(len(gt), dtype=bool)
        for i in np.argsort(-dt.score, kind="stable"):
            cand = np.where(free, iou[i], -1.0)
            j = int(cand.argmax())
            if cand[j] >= min_iou:
                free[j] = False
                errors.append(abs(float(dt.location[i, 2] - gt.location[j, 2])))
    return (float(np.mean(errors)) if errors else float("nan")), len(errors)


@dataclass
class MonoEvaluation:
    """KITTI AP of the detections, the ceiling perfect detections reach, and the depth error."""

    result: KittiEvalResult
    ceiling: KittiEvalResult
    depth_mae: float
    depth_matched: int

    def metrics(self) -> dict[str, float]:
        """Flat scalars: ``{class}/AP{2D,BEV,3D}_R40@{iou}/{difficulty}`` (percent), the same
        with ``_ceiling`` and ``_norm`` (AP / ceiling, 0 where the ceiling is 0) for 3D, and
        ``Car/depth_mae`` (metres), ``Car/depth_matched``."""
        out: dict[str, float] = {}
        for c, name in enumerate(self.result.classes):
            for m, label in (("bbox", "2D"), ("bev", "BEV"), ("3d", "3D")):
                for j in range(2):
                    iou = self.result.min_overlaps[c, j, ("bbox", "bev", "3d").index(m)]
                    if m == "bbox" and j == 1:
                        continue
                    for d, diff in enumerate(_DIFFICULTIES):
                        key = f"{name}/AP{label}_R40@{iou:g}/{diff}"
                        ap = float(self.result.ap40[m][c, d, j])
                        out[key] = ap
                        if m == "3d":
                            top = float(self.ceiling.ap40[m][c, d, j])
                            out[f"{key}_ceiling"] = top
                            out[f"{key}_norm"] = ap / top if top > 0 else 0.0
        out["Car/depth_mae"] = self.depth_mae
        out["Car/depth_matched"] = float(self.depth_matched)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kitti": self.result.to_dict(),
            "ceiling": self.ceiling.to_dict(),
            "depth_mae": self.depth_mae,
            "depth_matched": self.depth_matched,
        }


def evaluate_mono(results: Sequence[MonoFrameResult]) -> MonoEvaluation:
    """AP|R40 / AP|R11 (Car, Pedestrian, Cyclist), the labels-as-detections ceiling and the car
    depth error of frame results (module docstring).

    Raises:
        ValueError: from :func:`~.kitti.evaluate_kitti` (malformed boxes).
    """
    gts = [r.labels for r in results]
    perfect = [g.subset(g.cared) for g in gts]
    mae, n = car_depth_error(results)
    return MonoEvaluation(
        evaluate_kitti(gts, [r.detections for r in results]),
        evaluate_kitti(gts, perfect),
        mae,
        n,
    )
