"""PNG of monocular detections: 3D boxes projected on the image, a bird's-eye view beside it.

Left panel: the input image with each camera box's 12 edges projected with the image's camera
(a cross on the front face marks the heading), coloured by class (:mod:`sr3d_ros.palette`),
labelled ``class score``; boxes with a corner closer than 0.1 m in depth are not projected.
Right panel (bird's-eye view, same height): the optical frame's x (right) across and z (forward)
up, camera at the bottom centre, its horizontal field of view, a 10 m grid, and each box's
footprint with a heading tick. Ground-truth camera boxes, when given, are drawn dashed green in
both panels. Pillow is imported when a function runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..detections import Detections
from ..geometry.camera import PinholeCamera, camera_box_corners
from ..palette import BACKGROUND, GT_COLOR, class_color
from .atomic import atomic_write
from .render_pillow import draw_labels, draw_legend, load_font

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

__all__ = ["BOX_EDGES", "BevView", "render_image_detections"]

#: The 12 edges of a box in the corner order of :mod:`sr3d_ros.geometry.boxes`.
BOX_EDGES = tuple(
    e for i in range(4) for e in ((i, (i + 1) % 4), (i + 4, (i + 1) % 4 + 4), (i, i + 4))
)
#: Front face cross (corners 1, 2, 5, 6 are at +l/2 along the heading).
_FRONT_CROSS = ((1, 6), (2, 5))
_MIN_DEPTH = 0.1

Color = tuple[float, float, float]


def _rgb255(c: Sequence[float]) -> tuple[int, int, int]:
    return (int(round(c[0] * 255)), int(round(c[1] * 255)), int(round(c[2] * 255)))


def _dashed(
    draw: ImageDraw.ImageDraw, p0: np.ndarray, p1: np.ndarray, fill: tuple[int, int, int], w: int
) -> None:
    n = max(2, int(np.hypot(*(p1 - p0)) / 12))
    for t in np.arange(n) / n:
        q0, q1 = p0 + (p1 - p0) * t, p0 + (p1 - p0) * (t + 0.55 / n)
        draw.line((*q0, *q1), fill=fill, width=w)


class BevView:
    """Pixel map of the bird's-eye panel: optical ``x`` across, ``z`` up, camera at the bottom.

    Args:
        height: panel height (pixels). x_half: metres shown left / right of the camera.
        z_max: metres shown ahead.
    """

    def __init__(self, height: int, x_half: float = 20.0, z_max: float = 60.0) -> None:
        self.scale = height / z_max
        self.width = int(round(2 * x_half * self.scale))
        self.height = height
        self.x_half, self.z_max = x_half, z_max

    def to_px(self, xz: np.ndarray) -> np.ndarray:
        """``(..., 2)`` optical ``(x, z)`` metres -> ``(..., 2)`` panel pixels ``(u, v)``."""
        u = self.width / 2 + xz[..., 0] * self.scale
        v = self.height - 1 - xz[..., 1] * self.scale
        return np.stack([u, v], axis=-1)


def _draw_bev(
    camera: PinholeCamera,
    view: BevView,
    corners: np.ndarray,
    colors: list[Color],
    gt_corners: np.ndarray,
) -> Image.Image:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (view.width, view.height), _rgb255(BACKGROUND))
    draw = ImageDraw.Draw(img)
    grid = (70, 70, 78)
    for z in np.arange(10.0, view.z_max, 10.0):
        (u0, v), (u1, _) = view.to_px(np.array([[-view.x_half, z], [view.x_half, z]]))
        draw.line((u0, v, u1, v), fill=grid, width=1)
    for x in np.arange(-view.x_half + view.x_half % 10, view.x_half + 1e-6, 10.0):
        (u, v0), (_, v1) = view.to_px(np.array([[x, 0.0], [x, view.z_max]]))
        draw.line((u, v0, u, v1), fill=grid, width=1)
    origin = view.to_px(np.zeros(2))
    for edge in (-0.5, camera.width - 0.5):  # the image's left / right edges
        x_per_z = (edge - camera.cx) / camera.fx
        far = view.to_px(np.array([x_per_z * view.z_max, view.z_max]))
        draw.line((*origin, *far), fill=(140, 140, 150), width=1)
    lw = max(2, view.height // 250)
    for c in gt_corners:
        ring = view.to_px(c[:4][:, [0, 2]])
        for a in range(4):
            _dashed(draw, ring[a], ring[(a + 1) % 4], _rgb255(GT_COLOR), lw)
    for c, col in zip(corners, colors):
        ring = view.to_px(c[:4][:, [0, 2]])
        poly = [(float(u), float(v)) for u, v in ring]
        draw.line(poly + [poly[0]], fill=_rgb255(col), width=lw)
        centre, front = ring.mean(0), (ring[1] + ring[2]) / 2
        draw.line((*centre, *front), fill=_rgb255(col), width=lw)
    r = max(3, view.height // 100)
    draw.ellipse((origin[0] - r, origin[1] - r, origin[0] + r, origin[1] + r), fill=(240,) * 3)
    return img


def _project_edges(camera: PinholeCamera, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(M, 8, 2)`` of box corners and ``(M,)`` bool: all corners in front."""
    uv, depth = camera.project(torch.from_numpy(corners))
    return uv.numpy(), np.asarray((depth.numpy() >= _MIN_DEPTH).all(axis=1))


def render_image_detections(
    image: np.ndarray,
    camera: PinholeCamera,
    det: Detections,
    path: str | Path,
    min_score: float = 0.3,
    title: str = "",
    gt_camera_boxes: np.ndarray | None = None,
    bev_range: tuple[float, float] = (20.0, 60.0),
) -> dict[str, int]:
    """Write the PNG (atomically): image with projected boxes | bird's-eye view.

    Args:
        image: ``uint8 (H, W, 3)`` RGB, the image the detections came from.
        camera: its :class:`~sr3d_ros.geometry.camera.PinholeCamera` (size ``W x H``).
        det: monocular :class:`~sr3d_ros.detections.Detections` (``camera_boxes`` set; on any
            device).
        path: output ``.png``. min_score: draw detections scoring at least this.
        title: first line of the legend band.
        gt_camera_boxes: ``(K, 7)`` KITTI camera boxes (optical frame) drawn dashed green.
        bev_range: ``(x_half, z_max)`` metres shown in the bird's-eye view.

    Returns:
        ``{"num_drawn": detections drawn, "width": W + bev width, "height": H}``.

    Raises:
        ValueError: detections without camera boxes, an image that is not ``uint8 (H, W, 3)``
            or a camera of another size. OSError: unwritable output.
    """
    from PIL import Image, ImageDraw

    if det.camera_boxes is None:
        raise ValueError("rendering on the image needs monocular detections (camera_boxes)")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if (camera.width, camera.height) != (w, h):
        raise ValueError(f"camera is for {camera.width} x {camera.height}, image is {w} x {h}")
    keep = (det.scores >= min_score).cpu()
    boxes = det.camera_boxes.detach().cpu()[keep].double()
    labels = det.labels.cpu()[keep].tolist()
    scores = det.scores.cpu()[keep].tolist()
    corners = camera_box_corners(boxes).numpy().reshape(-1, 8, 3)
    colors = [class_color(lab) for lab in labels]
    gt = np.zeros((0, 7)) if gt_camera_boxes is None else np.asarray(gt_camera_boxes, np.float64)
    gt_corners = camera_box_corners(torch.from_numpy(gt.reshape(-1, 7))).numpy().reshape(-1, 8, 3)

    view = BevView(h, *bev_range)
    canvas = Image.new("RGB", (w + view.width, h), _rgb255(BACKGROUND))
    canvas.paste(Image.fromarray(image), (0, 0))
    canvas.paste(_draw_bev(camera, view, corners, colors, gt_corners), (w, 0))
    draw = ImageDraw.Draw(canvas, "RGBA")
    lw = max(2, h // 200)
    gt_uv, gt_front = _project_edges(camera, gt_corners)
    for uv, ok in zip(gt_uv, gt_front):
        if ok:
            for a, b in BOX_EDGES:
                _dashed(draw, uv[a], uv[b], _rgb255(GT_COLOR), lw)
    uv_all, front = _project_edges(camera, corners)
    anchors = []
    for uv, ok, col in zip(uv_all, front, colors):
        if not ok:
            anchors.append(np.array([math.nan, math.nan]))
            continue
        for a, b in BOX_EDGES + _FRONT_CROSS:
            draw.line((*uv[a], *uv[b]), fill=_rgb255(col), width=lw)
        anchors.append(uv[4:].mean(0))
    scale = max(w + view.width, 640) / 1280
    font = load_font(max(11, int(18 * scale)))
    texts = [f"{det.class_names[lab]} {s:.2f}" for lab, s in zip(labels, scores)]
    draw_labels(draw, np.array(anchors).reshape(-1, 2), texts, colors, (w, h), font)
    names = sorted(set(labels))
    entries = [(class_color(i), det.class_names[i], False) for i in names]
    if len(gt):
        entries.append((GT_COLOR, "ground truth", True))
    header = f"{title}  {len(labels)} detections (score >= {min_score:g})".strip()
    draw_legend(draw, header, entries, font, w, scale)
    atomic_write(path, lambda f: canvas.save(f, format="PNG"))
    return {"num_drawn": len(labels), "width": w + view.width, "height": h}
