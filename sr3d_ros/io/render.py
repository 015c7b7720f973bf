"""Render a point cloud with detected (and ground-truth) 3D boxes to a PNG a person can judge.

Primary backend: open3d's headless ``OffscreenRenderer`` (:mod:`.render_open3d`, in a child
process). The coloured cloud is drawn with detections as solid box wireframes coloured per class
and ground truth as dashed green wireframes, seen from a corner of the scene at ~45 degrees
elevation. Class names + scores and a legend are drawn onto the image with Pillow afterwards
(:mod:`.render_pillow`; open3d's offscreen renderer cannot draw text). If the 3D renderer fails
(no EGL/Vulkan, crash, timeout), :func:`render_detections` warns and falls back to a top-down
(bird's-eye) rendering drawn with Pillow alone. The PNG is written atomically.

Frames and units: points and boxes in the same gravity-aligned frame (z up), metres; boxes
``(x, y, z, dx, dy, dz, yaw)`` with the geometric centre (see :mod:`sr3d_ros.geometry.boxes`).
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..detections import Detections
from ..frames import random_subsample
from ..geometry import box_corners, to_7dof
from ..palette import BACKGROUND, GT_COLOR, class_color
from . import render_open3d, render_pillow
from .atomic import atomic_write

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["BACKGROUND", "GT_COLOR", "class_color", "render_detections"]


def _as_numpy(x: np.ndarray | torch.Tensor | Sequence[int]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _prepare_points(
    points: np.ndarray | torch.Tensor, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(xyz float32 (N', 3), rgb float32 (N', 3) 0..1)``: finite rows, at most ``max_points``
    (a fixed random subset); clouds without colour are shaded by height."""
    pts = _as_numpy(points).astype(np.float32, copy=False)
    if pts.ndim != 2 or pts.shape[1] not in (3, 6):
        raise ValueError(f"points must be (N, 3) or (N, 6) = xyz [+ rgb 0..255], got {pts.shape}")
    pts = random_subsample(pts[np.isfinite(pts).all(axis=1)], max_points)
    if pts.shape[0] == 0:
        raise ValueError("no finite points to render")
    xyz = pts[:, :3]
    if pts.shape[1] == 6:
        rgb = np.clip(pts[:, 3:6] / 255.0, 0.0, 1.0)
    else:  # no colour: shade by height
        z = xyz[:, 2]
        t = (z - z.min()) / max(float(np.ptp(z)), 1e-6)
        rgb = np.stack([0.45 + 0.45 * t, 0.5 + 0.3 * t, 0.75 - 0.3 * t], axis=1)
    return np.ascontiguousarray(xyz), np.ascontiguousarray(rgb.astype(np.float32))


def _corners(boxes: np.ndarray) -> np.ndarray:
    if boxes.shape[0] == 0:
        return np.zeros((0, 8, 3), dtype=np.float32)
    return box_corners(to_7dof(torch.as_tensor(boxes, dtype=torch.float32))).numpy()


def render_detections(
    points: np.ndarray | torch.Tensor,
    detections: Detections | None,
    path: str | Path,
    gt_boxes: np.ndarray | torch.Tensor | None = None,
    gt_labels: np.ndarray | torch.Tensor | Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    image_size: tuple[int, int] = (1280, 960),
    *,
    min_score: float = 0.3,
    max_boxes: int = 100,
    title: str | None = None,
    backend: str = "auto",
    elevation_deg: float = 45.0,
    azimuth_deg: float = 225.0,
    max_points: int = 600_000,
    timeout_s: float = 120.0,
    info: dict[str, str | int] | None = None,
) -> Path:
    """Render the cloud with detections (solid, per-class colour) and ground truth (dashed green).

    Args:
        points: ``(N, 3)`` or ``(N, 6)`` xyz metres [+ rgb 0..255], gravity-aligned frame (z up);
            numpy or torch. Non-finite rows are skipped; more than ``max_points`` are subsampled.
        detections: :class:`~sr3d_ros.detections.Detections` in the same frame, or None.
        path: output PNG file (parent folders are created).
        gt_boxes: optional ``(K, 6)`` or ``(K, 7)`` ground-truth boxes (geometric centre, full
            sizes, yaw), same frame.
        gt_labels: optional ``(K,)`` class indices of ``gt_boxes``; the legend then shows
            detected / ground-truth counts per class (``chair x3 (gt 4)``).
        class_names: names for labels (default: ``detections.class_names``).
        image_size: ``(width, height)`` pixels.
        min_score: detections below this score are not drawn (default 0.3; the JSON output keeps
            all of them).
        max_boxes: draw at most this many detections, highest scores first.
        title: first legend line (e.g. the input file name).
        backend: ``"auto"`` (open3d offscreen, falling back to top-down with a warning),
            ``"open3d"`` (no fallback: raise on failure) or ``"bev"`` (top-down with Pillow).
        elevation_deg, azimuth_deg: camera direction from the scene centre (45 deg up, from the
            -x/-y corner by default).
        max_points: subsample larger clouds for rendering.
        timeout_s: limit for the open3d child process.
        info: optional dict filled in place with what was done: ``backend`` (``"open3d"`` or
            ``"bev"``, the renderer actually used), ``fallback_reason`` (why ``"auto"`` fell back,
            else absent), ``num_drawn`` (detections drawn) and ``num_gt`` (ground-truth boxes).

    Returns:
        ``path``.

    Raises:
        ValueError: bad shapes, unknown backend, or no finite point.
        RuntimeError: ``backend="open3d"`` failed, or neither renderer is usable (no Pillow for
            the fallback).
    """
    if backend not in ("auto", "open3d", "bev"):
        raise ValueError(f"backend must be 'auto', 'open3d' or 'bev', got {backend!r}")
    path = Path(path)
    size = (int(image_size[0]), int(image_size[1]))
    xyz, rgb = _prepare_points(points, max_points)
    names = list(class_names if class_names is not None else getattr(detections, "class_names", []))
    det_boxes, det_labels, det_scores, n_total = _detections_to_draw(
        detections, min_score, max_boxes
    )
    gt, gt_lab = _ground_truth(gt_boxes, gt_labels)
    det_c, gt_c = _corners(det_boxes), _corners(gt)
    det_colors = [class_color(int(l)) for l in det_labels]
    has_pillow = importlib.util.find_spec("PIL") is not None
    used = backend
    img: Image.Image | None = None
    anchors = np.zeros((0, 2))
    if backend in ("auto", "open3d"):
        with tempfile.TemporaryDirectory(prefix="sr3d_render_") as tmp:
            raw = Path(tmp) / "open3d.png"
            camera = render_open3d.camera_pose(
                xyz,
                size,
                50.0,
                elevation_deg,
                azimuth_deg,
                extra=np.concatenate([det_c.reshape(-1, 3), gt_c.reshape(-1, 3)]),
            )
            scene = _scene(xyz, rgb, size, camera, det_c, det_colors, gt_c)
            result = render_open3d.render_offscreen(scene, raw, timeout_s)
            if isinstance(result, str):
                if backend == "open3d":
                    raise RuntimeError(result)
                warnings.warn(
                    f"{result}; falling back to a top-down rendering with Pillow",
                    RuntimeWarning,
                    stacklevel=2,
                )
                used = "bev"
                if info is not None:
                    info["fallback_reason"] = result
            elif not has_pillow:
                warnings.warn(
                    "Pillow is not installed: the rendering has no labels or legend "
                    "(pip install pillow)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                atomic_write(path, lambda f: f.write(raw.read_bytes()))
                if info is not None:
                    info.update(backend="open3d", num_drawn=len(det_boxes), num_gt=len(gt))
                return path
            else:
                from PIL import Image

                used = "open3d"
                img = Image.open(raw).convert("RGB")
                view, proj = result
                top_centres = det_boxes[:, :3].astype(np.float64)
                top_centres[:, 2] += det_boxes[:, 5] / 2  # label above each box
                anchors = render_open3d.project(top_centres, view, proj, size)
    if img is None:  # the top-down view
        if not has_pillow:
            raise RuntimeError(
                "the top-down renderer needs Pillow (pip install pillow)"
                + (" and open3d offscreen rendering failed" if backend == "auto" else "")
            )
        img, to_px = render_pillow.render_bev(xyz, rgb, det_c, det_colors, gt_c, size)
        if len(det_boxes):
            anchors = to_px(det_boxes[:, :2])

    def name_of(label: int) -> str:
        return names[label] if 0 <= label < len(names) else f"class {label}"

    from PIL import ImageDraw

    draw = ImageDraw.Draw(img, "RGBA")
    scale = size[0] / 1280
    texts = [f"{name_of(int(l))} {s:.2f}" for l, s in zip(det_labels, det_scores)]
    font = render_pillow.load_font(max(10, int(16 * scale)))
    render_pillow.draw_labels(draw, anchors, texts, det_colors, size, font)
    view_name = {"open3d": "3D view from a corner, 45 deg", "bev": "top-down view"}[used]
    if used == "bev" and backend == "auto":
        view_name += " (3D renderer unavailable)"
    header = f"{len(det_boxes)} of {n_total} detections drawn (score >= {min_score:g}); {view_name}"
    if title:
        header = f"{title}  |  {header}"
    entries: list[tuple[tuple[float, float, float], str, bool]] = []
    gt_counted = gt_lab is not None and len(gt_lab) == len(gt)
    gt_classes = set(gt_lab.tolist()) if gt_lab is not None and gt_counted else set()
    for label in sorted(set(det_labels.tolist()) | gt_classes):
        text = f"{name_of(label)} x{int((det_labels == label).sum())}"
        if gt_lab is not None and gt_counted:
            text += f" (gt {int((gt_lab == label).sum())})"
        entries.append((class_color(label), text, False))
    if len(gt):
        entries.append((GT_COLOR, f"ground truth x{len(gt)} (dashed)", True))
    font = render_pillow.load_font(max(10, int(15 * scale)))
    render_pillow.draw_legend(draw, header, entries, font, size[0], scale)
    final = img
    atomic_write(path, lambda f: final.save(f, format="PNG"))
    if info is not None:
        info.update(backend=used, num_drawn=len(det_boxes), num_gt=len(gt))
    return path


def _detections_to_draw(
    detections: Detections | None, min_score: float, max_boxes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(boxes float32 (M, 7), labels int64 (M,), scores float64 (M,), total)``: the at most
    ``max_boxes`` best detections scoring ``>= min_score``, best first, and how many there are
    in all."""
    if detections is None or len(detections) == 0:
        return np.zeros((0, 7), np.float32), np.zeros((0,), np.int64), np.zeros((0,)), 0
    scores = _as_numpy(detections.scores).astype(np.float64)
    keep = np.nonzero(scores >= min_score)[0]
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_boxes]
    boxes = _as_numpy(detections.boxes)[keep].astype(np.float32)
    labels = _as_numpy(detections.labels)[keep].astype(np.int64)
    return boxes, labels, scores[keep], len(detections)


def _ground_truth(
    gt_boxes: np.ndarray | torch.Tensor | None,
    gt_labels: np.ndarray | torch.Tensor | Sequence[int] | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(boxes float32 (K, 6|7), labels int64 (K',) or None)``; raises ValueError on a bad
    box shape."""
    if gt_boxes is None:
        gt = np.zeros((0, 7), np.float32)
    else:
        gt = _as_numpy(gt_boxes).astype(np.float32)
        if gt.ndim != 2 or gt.shape[1] not in (6, 7):
            raise ValueError(f"gt_boxes must be (K, 6) or (K, 7), got {gt.shape}")
    labels = None if gt_labels is None else _as_numpy(gt_labels).astype(np.int64).reshape(-1)
    return gt, labels


def _scene(
    xyz: np.ndarray,
    rgb: np.ndarray,
    size: tuple[int, int],
    camera: dict[str, list[float] | float],
    det_corners: np.ndarray,
    det_colors: list[tuple[float, float, float]],
    gt_corners: np.ndarray,
) -> render_open3d.SceneArrays:
    """The arrays the open3d renderer process draws (ground truth dashed, detections solid)."""
    w = size[0]
    gt_points, gt_lines = render_open3d.dashed_edges(gt_corners)
    det_points, det_lines = render_open3d.solid_edges(det_corners)
    return {
        "xyz": xyz,
        "rgb": rgb,
        "image_size": np.array(size),
        "camera": np.array(json.dumps(camera)),
        "point_size": np.array(max(1.0, round(3.0 * w / 1280, 1))),
        "line_width": np.array(max(2.0, 3.0 * w / 1280)),
        "gt_points": gt_points,
        "gt_lines": gt_lines,
        "gt_colors": np.tile(np.array(GT_COLOR, np.float32), (len(gt_lines), 1)),
        "det_points": det_points,
        "det_lines": det_lines,
        "det_colors": np.repeat(np.array(det_colors, np.float32).reshape(-1, 3), 12, axis=0),
    }
