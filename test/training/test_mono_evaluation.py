"""Mono evaluation helpers (sr3d_training.evaluation.mono): depth error of matched cars, 2D NMS,
detections as KITTI objects, and the labels-as-detections ceiling on real frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sr3d_ros.detections import Detections
from sr3d_ros.geometry.camera import camera_boxes_to_boxes
from sr3d_training.datasets import KittiDataset
from sr3d_training.datasets.kitti import KittiObjects
from sr3d_training.evaluation.mono import (
    MonoFrameResult,
    car_depth_error,
    detections_to_kitti,
    evaluate_mono,
    nms_2d,
)


def _objects(
    names: list[str], bbox: list[list[float]], z: list[float], score: list[float]
) -> KittiObjects:
    n = len(names)
    loc = np.zeros((n, 3))
    loc[:, 2] = z
    return KittiObjects(
        names=np.array(names),
        truncated=np.zeros(n),
        occluded=np.zeros(n),
        alpha=np.zeros(n),
        bbox=np.array(bbox, dtype=np.float64).reshape(-1, 4),
        dimensions=np.tile([1.5, 1.6, 3.9], (n, 1)),
        location=loc,
        rotation_y=np.zeros(n),
        score=np.array(score, dtype=np.float64),
        weight=np.ones(n),
    )


def test_car_depth_error_by_hand() -> None:
    gt = _objects(
        ["Car", "Car", "Pedestrian"],
        [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]],
        [10, 20, 5],
        [1, 1, 1],
    )
    dt = _objects(
        ["Car", "Car", "Car", "Pedestrian"],
        # the best-scoring car overlaps GT 0 (IoU 0.82); the second also overlaps GT 0 but it is
        # taken; the third overlaps GT 1 by 0.25 only; the pedestrian is not a car
        [[0, 0, 10, 9], [1, 0, 10, 10], [20, 0, 24, 10], [40, 0, 50, 10]],
        [11.5, 30.0, 20.0, 5.0],
        [0.9, 0.8, 0.7, 0.95],
    )
    mae, n = car_depth_error([MonoFrameResult("f", dt, gt)])
    assert (mae, n) == (pytest.approx(1.5), 1)
    empty = car_depth_error([MonoFrameResult("f", dt.subset(np.zeros(4, bool)), gt)])
    assert math.isnan(empty[0]) and empty[1] == 0


def test_nms_2d_is_class_wise_and_greedy() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [30, 30, 40, 40.0]])
    scores = torch.tensor([0.5, 0.9, 0.8, 0.1])
    labels = torch.tensor([0, 0, 1, 0])
    # box 1 (0.9) suppresses box 0 (IoU 9/11 > 0.7, same class); box 2 is another class
    assert nms_2d(boxes, scores, labels).tolist() == [1, 2, 3]
    assert nms_2d(boxes, scores, labels, iou=0.95).tolist() == [1, 2, 0, 3]


def test_detections_to_kitti_and_the_ceiling_on_real_frames(data_root: Path) -> None:
    frames = KittiDataset(data_root / "kitti", ["000007", "000036", "000217"])
    results = []
    for s in frames:
        labels = s.meta["kitti"]
        cared = labels.subset(labels.cared & (labels.names != "Van"))
        cam = torch.from_numpy(cared.camera_boxes()).float()
        det = Detections(
            camera_boxes_to_boxes(cam),
            torch.linspace(0.9, 0.5, len(cam)),
            torch.tensor([("Car", "Pedestrian", "Cyclist").index(n) for n in cared.names]),
            ("Car", "Pedestrian", "Cyclist"),
            camera_boxes=cam,
            image_boxes=torch.from_numpy(cared.bbox).float(),
        )
        objs = detections_to_kitti(det)
        np.testing.assert_allclose(objs.location, cared.location, atol=1e-5)
        np.testing.assert_allclose(objs.dimensions, cared.dimensions, atol=1e-5)
        # labels: 2 decimals, and up to 0.04 off for near truncated cars (000036: 4 m)
        np.testing.assert_allclose(objs.alpha, cared.alpha, atol=0.04)
        results.append(MonoFrameResult(s.sample_id, objs, labels))
    ev = evaluate_mono(results)
    m = ev.metrics()
    # the labels as detections reach the ceiling: 6 moderate cars -> (6 - 1) / 40
    assert m["Car/AP3D_R40@0.5/moderate"] == pytest.approx(12.5)
    assert m["Car/AP3D_R40@0.5/moderate_norm"] == pytest.approx(1.0)
    assert ev.depth_mae == pytest.approx(0.0, abs=1e-5) and ev.depth_matched == 15
