"""Decoding: a hand-made head output built from real KITTI labels (through the letterboxed camera
of :mod:`sr3d_ros.geometry.camera`) decodes back to those labels' camera and 2D boxes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sr3d_ros.geometry.camera import PinholeCamera, camera_box_corners, rotation_y_to_alpha
from sr3d_ros.models.mono import (
    KITTI_MEAN_SIZES,
    MONO_CLASSES,
    MonoHeadOutputs,
    anchor_grid,
    decode_camera_boxes,
    decode_image_boxes,
)
from sr3d_training.datasets.kitti import KittiDataset

torch.set_num_threads(1)
FRAMES = ["000000", "000003", "000007", "000076", "000134", "007091"]
H, W = 384, 1280


def hand_made(
    image_size: tuple[int, int],
    camera: PinholeCamera,
    cam_boxes: torch.Tensor,
    labels: torch.Tensor,
) -> tuple[MonoHeadOutputs, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Head outputs at one stride-8 location per object (the one nearest to its projected
    geometric centre), built with camera.py; returns (head, anchors, strides, labels, image boxes)
    for those locations, batch 1."""
    shapes = [(image_size[0] // s, image_size[1] // s) for s in (8, 16, 32)]
    anchors, strides = anchor_grid(shapes, (8, 16, 32), dtype=torch.float64)
    x, y, z, l, h, w, ry = cam_boxes.unbind(-1)
    centre = torch.stack([x, y - h / 2, z], dim=-1)
    uv, depth = camera.project(centre)
    hw = shapes[0]
    col = ((uv[:, 0] + 0.5) / 8 - 0.5).round().clamp(0, hw[1] - 1).long()
    row = ((uv[:, 1] + 0.5) / 8 - 0.5).round().clamp(0, hw[0] - 1).long()
    index = row * hw[1] + col
    a = anchors[index]
    corners = camera_box_corners(cam_boxes)
    pix, _ = camera.project(corners)
    box2d = torch.cat([pix.amin(1), pix.amax(1)], dim=-1)
    ltrb = torch.cat([a - box2d[:, :2], box2d[:, 2:] - a], dim=-1)
    mean = torch.tensor(KITTI_MEAN_SIZES, dtype=torch.float64)[labels]
    alpha = rotation_y_to_alpha(ry, x, z)
    n = len(cam_boxes)
    head = MonoHeadOutputs(
        cls_logits=torch.zeros(1, n, 3, dtype=torch.float64),
        box_ltrb=ltrb[None],
        center_offset=((uv - a) / 8)[None],
        log_depth=depth.log()[None],
        log_sigma=torch.zeros(1, n, dtype=torch.float64),
        log_dims=(torch.stack([l, h, w], -1) / mean).log()[None],
        alpha_sincos=(3.0 * torch.stack([alpha.sin(), alpha.cos()], -1))[None],  # unnormalised
        depth_feat=torch.zeros(1, n, 4, dtype=torch.float64),
        box_dist=torch.zeros(1, n, 4, 16, dtype=torch.float64),
    )
    return head, a, strides[index], labels[None], box2d


@pytest.mark.parametrize("frame", FRAMES)
def test_decode_recovers_kitti_labels_on_letterboxed_frame(data_root: Path, frame: str) -> None:
    ds = KittiDataset(data_root / "kitti" / "training", frame_ids=[frame])
    sample = ds[0]
    objects = sample.meta["kitti"]
    keep = np.isin(objects.names, MONO_CLASSES)
    objects = objects.subset(keep)
    assert len(objects) > 0
    cam_boxes = torch.from_numpy(objects.camera_boxes())
    labels = torch.tensor([MONO_CLASSES.index(n) for n in objects.names])
    lb = sample.camera.letterbox(W, H)
    camera = sample.camera.letterboxed(lb)
    head, anchors, strides, lab, box2d = hand_made((H, W), camera, cam_boxes, labels)

    P = torch.tensor(camera.P)[None]
    decoded = decode_camera_boxes(head, anchors, strides, lab, P)[0]
    err = (decoded - cam_boxes).abs()
    assert float(err[:, :6].max()) < 1e-9, err
    dyaw = torch.remainder(decoded[:, 6] - cam_boxes[:, 6] + math.pi, 2 * math.pi) - math.pi
    assert float(dyaw.abs().max()) < 1e-9
    # the labels' own alpha agrees with the decoded yaw's (labels store alpha, ry, x, z to 2
    # decimals, so up to ~0.02 rad apart)
    dalpha = rotation_y_to_alpha(decoded[:, 6], decoded[:, 0], decoded[:, 2]) - torch.from_numpy(
        objects.alpha
    )
    assert float((torch.remainder(dalpha + math.pi, 2 * math.pi) - math.pi).abs().max()) < 0.02
    assert torch.allclose(decode_image_boxes(head, anchors)[0], box2d, atol=1e-9)


def test_decode_with_intrinsics_only_and_batched_anchor_layout(data_root: Path) -> None:
    """``(B, 3, 3)`` K is ``P = [K | 0]``; the KITTI P2 baseline term moves the boxes by t."""
    sample = KittiDataset(data_root / "kitti" / "training", frame_ids=["000007"])[0]
    objects = sample.meta["kitti"]
    objects = objects.subset(np.isin(objects.names, MONO_CLASSES))
    cam_boxes = torch.from_numpy(objects.camera_boxes())
    labels = torch.tensor([MONO_CLASSES.index(n) for n in objects.names])
    camera = sample.camera.letterboxed(sample.camera.letterbox(W, H))
    head, anchors, strides, lab, _ = hand_made((H, W), camera, cam_boxes, labels)
    K = torch.tensor(camera.K)[None]
    decoded = decode_camera_boxes(head, anchors[None], strides[None], lab, K)[0]
    t = torch.from_numpy(camera.baseline)
    assert float(t[0]) > 0.05  # P2 sits ~6 cm right of the reference camera
    # the same pixel and depth z with P = [K | 0]: (X + t) * z / (z + t_z), z unchanged
    centre = cam_boxes[:, :3].clone()
    centre[:, 1] -= cam_boxes[:, 4] / 2
    z = centre[:, 2:3]
    expected = (centre + t) * z / (z + t[2])
    expected[:, 2] = z[:, 0]
    expected[:, 1] += cam_boxes[:, 4] / 2
    assert torch.allclose(decoded[:, :3], expected, atol=1e-9)
    assert torch.allclose(decoded[:, 3:6], cam_boxes[:, 3:6], atol=1e-9)


def test_decode_is_differentiable_and_rejects_bad_labels() -> None:
    n = 5
    g = torch.Generator().manual_seed(0)
    fields = {
        "cls_logits": torch.randn(2, n, 3, generator=g),
        "box_ltrb": torch.rand(2, n, 4, generator=g) * 50,
        "center_offset": torch.randn(2, n, 2, generator=g),
        "log_depth": torch.randn(2, n, generator=g) + 3,
        "log_sigma": torch.zeros(2, n),
        "log_dims": torch.randn(2, n, 3, generator=g) * 0.1,
        "alpha_sincos": torch.randn(2, n, 2, generator=g),
        "depth_feat": torch.zeros(2, n, 4),
        "box_dist": torch.zeros(2, n, 4, 16),
    }
    for v in fields.values():
        v.requires_grad_(True)
    head = MonoHeadOutputs(**fields)
    anchors = torch.rand(n, 2) * 300
    strides = torch.full((n,), 8.0)
    K = torch.tensor([[[700.0, 0, 640], [0, 700.0, 190], [0, 0, 1]]]).expand(2, 3, 3)
    labels = torch.randint(0, 3, (2, n), generator=g)
    boxes = decode_camera_boxes(head, anchors, strides, labels, K)
    assert boxes.shape == (2, n, 7)
    boxes.sum().backward()
    for name in ("center_offset", "log_depth", "log_dims", "alpha_sincos"):
        grad = fields[name].grad
        assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="labels"):
        decode_camera_boxes(head, anchors, strides, labels + 3, K)
    with pytest.raises(ValueError, match="intrinsics"):
        decode_camera_boxes(head, anchors, strides, labels, K[:, :2])
