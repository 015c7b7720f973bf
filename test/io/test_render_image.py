"""PNG of monocular detections on a real KITTI frame: projected box edges and bird's-eye
footprints land where camera.py projects them, in the class colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sr3d_ros.detections import Detections
from sr3d_ros.geometry.camera import camera_box_corners, camera_boxes_to_boxes
from sr3d_ros.io.render_image import BevView, render_image_detections
from sr3d_ros.palette import GT_COLOR, class_color_255
from sr3d_training.datasets.kitti import KittiDataset

pytest.importorskip("PIL")
from PIL import Image

NAMES = ("Car", "Pedestrian", "Cyclist")


@pytest.fixture(scope="module")
def frame(data_root: Path) -> tuple[np.ndarray, object, torch.Tensor, torch.Tensor]:
    s = KittiDataset(data_root / "kitti" / "training", frame_ids=["000007"])[0]
    o = s.meta["kitti"]
    o = o.subset(np.isin(o.names, NAMES))
    boxes = torch.tensor(o.camera_boxes(), dtype=torch.float32)
    labels = torch.tensor([NAMES.index(n) for n in o.names])
    return s.image, s.camera, boxes, labels


def _detections(boxes: torch.Tensor, labels: torch.Tensor) -> Detections:
    scores = torch.full((len(boxes),), 0.9)
    return Detections(camera_boxes_to_boxes(boxes), scores, labels, NAMES, camera_boxes=boxes)


def _has_colour(img: np.ndarray, uv: np.ndarray, colour: tuple[int, int, int]) -> bool:
    u, v = int(round(uv[0])), int(round(uv[1]))
    patch = img[max(v - 1, 0) : v + 2, max(u - 1, 0) : u + 2].reshape(-1, 3)
    return bool((patch == colour).all(axis=1).any())


def test_edges_and_footprints_are_drawn_where_projected(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image, camera, boxes, labels = frame
    h, w = image.shape[:2]
    view = BevView(h)
    for i in range(len(boxes)):
        path = tmp_path / f"box{i}.png"
        info = render_image_detections(
            image, camera, _detections(boxes[i : i + 1], labels[i : i + 1]), path
        )
        png = np.asarray(Image.open(path).convert("RGB"))
        assert png.shape == (h, w + view.width, 3) and info["width"] == w + view.width
        assert info["num_drawn"] == 1
        colour = class_color_255(int(labels[i]))
        corners = camera_box_corners(boxes[i : i + 1].double())[0]
        uv, _ = camera.project(corners)
        uv = uv.numpy()
        for a, b in ((0, 1), (1, 2), (2, 3), (3, 0)):  # bottom face: below any label
            assert _has_colour(png, (uv[a] + uv[b]) / 2, colour), (i, a, b)
        ring = view.to_px(corners[:4, [0, 2]].numpy())
        for a in range(4):
            mid = (ring[a] + ring[(a + 1) % 4]) / 2 + np.array([w, 0.0])
            assert _has_colour(png, mid, colour), (i, a)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"box{i}.png" for i in range(len(boxes))]


def test_ground_truth_boxes_behind_camera_and_errors(frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image, camera, boxes, labels = frame
    behind = boxes.clone()
    behind[:, 2] = -5.0  # not projected, no error
    gt_colour = tuple(int(round(c * 255)) for c in GT_COLOR)
    counts = []
    for gt in (None, boxes.numpy()):
        path = tmp_path / "x.png"
        info = render_image_detections(
            image, camera, _detections(behind, labels), path, gt_camera_boxes=gt
        )
        assert info["num_drawn"] == len(boxes)
        png = np.asarray(Image.open(path).convert("RGB"))
        counts.append(int((png == gt_colour).all(axis=2).sum()))
    assert counts[0] == 0 and counts[1] > 100
    low = render_image_detections(
        image, camera, _detections(boxes, labels), tmp_path / "y.png", min_score=0.95
    )
    assert low["num_drawn"] == 0
    point = Detections(boxes, torch.ones(len(boxes)), labels, NAMES)
    with pytest.raises(ValueError, match="camera_boxes"):
        render_image_detections(image, camera, point, tmp_path / "z.png")
    with pytest.raises(ValueError, match="camera is for"):
        render_image_detections(image[:100], camera, _detections(boxes, labels), tmp_path / "z.png")
