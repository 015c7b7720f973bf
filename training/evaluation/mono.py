"""Evaluation of the monocular detector on KITTI frames: predictions as KITTI objects, AP|R40
with the KITTI evaluator (:mod:`.kitti`), and the depth error of matched cars.

* :func:`predict_kitti_frame` / :func:`predict_mono_dataset`: letterbox a frame to the model's
  input, run the network, take the one-to-one head's ``max_detections`` most confident locations
  (YOLOv10 Sec. 3.1: no NMS) or, for the ablation, the one-to-many head's locations above the
  score threshold followed by class-wise 2D NMS (IoU 0.7, YOLOv8 / YOLOv10's default); decode
  camera boxes with the letterboxed ``P`` (boxes in the labels' frame) and map the 2D boxes back
  to the original image.
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

from sr3d_ros.models.mono import (
    MonoDetectorModel,
    MonoInferenceConfig,
    decode_camera_boxes,
    decode_image_boxes,
)

from ..datasets.dataset import SampleDataset
from ..datasets.kitti import KittiObjects
from ..datasets.sample import Sample
from ..image_transforms import letterbox, map_image_boxes
from ..losses.iou2d import image_box_iou
from .kitti import KittiEvalResult, evaluate_kitti

__all__ = [
    "MonoEvaluation",
    "MonoFrameResult",
    "car_depth_error",
    "evaluate_mono",
    "nms_2d",
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


@torch.no_grad()
def predict_kitti_frame(
    model: MonoDetectorModel,
    sample: Sample,
    inference: MonoInferenceConfig,
    head: str = "one2one",
) -> KittiObjects:
    """Detect the objects of one KITTI frame.

    Args:
        model: the network (run as it is: put it in eval mode first).
        sample: a monocular sample (``image``, ``camera``; ``meta["kitti"]`` may be empty).
        inference: score threshold and ``max_detections``.
        head: ``"one2one"`` (top-``max_detections`` locations, no NMS) or ``"one2many"``
            (locations above the threshold, class-wise 2D NMS at :data:`NMS_IOU`).

    Returns:
        :class:`KittiObjects` (float64): class names, 2D boxes in the original image's pixels
        (clipped), dimensions ``(h, w, l)``, bottom-centre locations in the labels' optical
        frame, ``rotation_y``, ``alpha``, scores.

    Raises:
        ValueError: not a monocular sample; unknown ``head``.
    """
    if head not in ("one2one", "one2many"):
        raise ValueError(f"head must be 'one2one' or 'one2many', got {head!r}")
    if sample.image is None or sample.camera is None:
        raise ValueError(f"sample {sample.sample_id!r} has no image / camera")
    cfg = model.config
    height, width = cfg.input_size
    lb = letterbox(sample.replace(meta={"kitti": KittiObjects.empty()}), width, height)
    assert lb.image is not None and lb.camera is not None
    device = next(model.parameters()).device
    x = torch.from_numpy(lb.image).permute(2, 0, 1)[None].to(device, torch.float32) / 255
    out = model(x)
    h = out.one2one if head == "one2one" else out.one2many
    scores, labels = h.cls_logits[0].sigmoid().max(-1)
    if head == "one2one":
        index = scores.topk(min(inference.max_detections, len(scores))).indices
        index = index[scores[index] >= inference.score_threshold]
    else:
        index = torch.nonzero(scores >= inference.score_threshold)[:, 0]
        index = index[scores[index].argsort(descending=True)][:NMS_PRE_TOPK]
        boxes2d = decode_image_boxes(h, out.anchor_points)[0, index]
        index = index[nms_2d(boxes2d.cpu(), scores[index].cpu(), labels[index].cpu())]
        index = index[: inference.max_detections].to(device)
    sel = h.gather(index[None])
    p = torch.tensor(lb.camera.P, dtype=torch.float32, device=device)[None]
    means = torch.tensor(cfg.mean_sizes, dtype=torch.float32, device=device)
    cam = decode_camera_boxes(
        sel, out.anchor_points[index], out.strides[index], labels[index][None], p, means
    )[0]
    box2d = decode_image_boxes(sel, out.anchor_points[index])[0].double().cpu().numpy()
    inverse = np.linalg.inv(sample.camera.letterbox(width, height).affine())
    box2d = map_image_boxes(box2d, inverse)
    box2d[:, 0::2] = box2d[:, 0::2].clip(0, sample.camera.width - 1)
    box2d[:, 1::2] = box2d[:, 1::2].clip(0, sample.camera.height - 1)
    cam_np = cam.double().cpu().numpy()
    alpha = torch.atan2(sel.alpha_sincos[0, :, 0], sel.alpha_sincos[0, :, 1])
    n = len(index)
    return KittiObjects(
        names=np.array([cfg.class_names[int(c)] for c in labels[index]], dtype=str),
        truncated=np.zeros(n),
        occluded=np.zeros(n),
        alpha=alpha.double().cpu().numpy(),
        bbox=box2d,
        dimensions=cam_np[:, [4, 5, 3]],
        location=cam_np[:, :3],
        rotation_y=cam_np[:, 6],
        score=scores[index].double().cpu().numpy(),
        weight=np.ones(n),
    )


def predict_mono_dataset(
    model: MonoDetectorModel,
    samples: SampleDataset,
    inference: MonoInferenceConfig,
    head: str = "one2one",
    progress: bool = False,
) -> list[MonoFrameResult]:
    """:func:`predict_kitti_frame` on every sample (model in eval mode here, restored after).

    Raises:
        ValueError / FileNotFoundError: from the dataset or :func:`predict_kitti_frame`.
    """
    was_training = model.training
    model.eval()
    results = []
    try:
        for i in tqdm(range(len(samples)), desc="predict", disable=not progress, leave=False):
            s = samples[i]
            labels = s.meta.get("kitti")
            if not isinstance(labels, KittiObjects):
                raise ValueError(f"sample {s.sample_id!r} has no KITTI labels")
            det = predict_kitti_frame(model, s, inference, head)
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
