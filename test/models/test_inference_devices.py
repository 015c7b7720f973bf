"""The inference API end to end on every available device (``device`` fixture, conftest.py):
``Detector.from_checkpoint(device=...)`` with the embedded default model on the real ScanNet
scan it was trained on, checked against that scan's ground-truth boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sr3d_ros.config import SCANNET_CLASSES
from sr3d_ros.detections import Detections
from sr3d_ros.geometry import box_iou_3d
from sr3d_ros.inference import Detector, PointCloudDetector

# nyu40 ids of the 18 ScanNet detection classes, in SCANNET_CLASSES order (data README)
NYU40_IDS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
STAGES = {"voxelize", "backbone", "neck", "head", "nms"}


@pytest.fixture(scope="module")
def scan(data_root: Path) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """scene0000_00: points (N, 6) float32, ground-truth boxes (K, 7) and labels (K,)."""
    root = data_root / "scannet" / "scannet_instance_data"
    points = np.load(root / "scene0000_00_vert_all.npy")
    bbox = np.load(root / "scene0000_00_bbox.npy").astype(np.float32)
    label = np.array([NYU40_IDS.index(int(i)) if int(i) in NYU40_IDS else -1 for i in bbox[:, 6]])
    keep = label >= 0
    boxes = torch.from_numpy(bbox[keep, :6])
    boxes = torch.cat([boxes, torch.zeros(len(boxes), 1)], dim=1)
    return points, boxes, torch.from_numpy(label[keep])


def _true_positive_matrix(det: Detections, boxes: torch.Tensor, labels: torch.Tensor):
    """(M, K) bool: detection m overlaps ground truth k with 3D IoU >= 0.25 and the same class."""
    iou = box_iou_3d(det.boxes.cpu(), boxes)
    return (iou >= 0.25) & (det.labels.cpu()[:, None] == labels[None, :])


def assert_same_confident_detections(a: Detections, b: Detections, what: str) -> None:
    """The detections of ``a`` scoring above 0.3 are those of ``b`` (same class, box and score
    to 1e-3; on CUDA the voxel means and summation orders differ at float32 rounding level, so
    near-equal scores may swap places and one detection more or less may pass the cut)."""
    a, b = a.to("cpu"), b.to("cpu")
    a, b = a.filter(a.scores > 0.3), b.filter(b.scores > 0.3)
    assert len(a) >= 20 and abs(len(a) - len(b)) <= 2, (len(a), len(b))
    for i in range(20):
        same = (b.labels == a.labels[i]) & ((b.boxes - a.boxes[i]).abs().amax(dim=1) < 1e-3)
        assert bool(same.any()), f"{what}: detection {i} has no counterpart"
        gap = float((b.scores[same] - a.scores[i]).abs().min())
        assert gap < 1e-3, f"{what}: detection {i}: score differs by {gap}"


def test_default_model_end_to_end_on_device(scan, device: torch.device) -> None:
    points, gt_boxes, gt_labels = scan
    det = Detector.from_checkpoint(device=device)
    assert isinstance(det, PointCloudDetector) and det.device == device
    assert all(p.device == device for p in det.model.parameters())
    assert det.class_names == SCANNET_CLASSES
    result = det(points)
    assert result.boxes.device == device and result.scores.device == device
    assert result.labels.device == device
    assert set(result.timings_ms) == STAGES and all(v > 0 for v in result.timings_ms.values())
    # The model was trained on this scan: every ground-truth box of it is found (measured on the
    # CPU: 27 / 27 at IoU 0.25), and the confident detections are right (39 / 39 above 0.5).
    tp = _true_positive_matrix(result, gt_boxes, gt_labels)
    assert int(tp.any(dim=0).sum()) >= len(gt_boxes) - 2
    confident = (result.scores > 0.5).cpu()
    assert int(confident.sum()) >= 20
    assert float(tp[confident].any(dim=1).float().mean()) >= 0.9
    # a torch tensor already on the device and a numpy array give the same detections
    again = det(torch.from_numpy(points).to(device))
    assert_same_confident_detections(result, again, "numpy vs tensor input")


def test_device_detections_match_cpu(scan, device: torch.device) -> None:
    """The confident detections on ``device`` are the CPU's (same boxes and scores up to
    float32 rounding in a different order of summation)."""
    if device.type == "cpu":
        pytest.skip("the CPU is the reference here")
    points = scan[0]
    cpu = Detector.from_checkpoint(device="cpu")(points)
    dev = Detector.from_checkpoint(device=device)(points)
    assert_same_confident_detections(cpu, dev, f"CPU vs {device}")
