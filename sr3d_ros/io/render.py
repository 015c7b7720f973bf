"""Render a point cloud with detected (and ground-truth) 3D boxes to a PNG a person can judge.

Primary backend: open3d's headless ``OffscreenRenderer`` (Filament; on Debian it needs
``mesa-vulkan-drivers`` or an EGL driver). The coloured cloud is drawn with detections as solid
box wireframes coloured per class and ground truth as dashed green wireframes, seen from a
corner of the scene at ~45 degrees elevation. Class names + scores and a legend are drawn onto
the image with Pillow afterwards (open3d's offscreen renderer cannot draw text).

The open3d renderer runs in a short-lived child process: Filament aborts the whole process on
some errors (e.g. a second renderer in one process), and a detector node must survive that. If
it fails (no EGL/Vulkan, crash, timeout), :func:`render_detections` warns and falls back to a
top-down (bird's-eye) rendering drawn with Pillow alone.

Frames and units: points and boxes in the same gravity-aligned frame (z up), metres; boxes
``(x, y, z, dx, dy, dz, yaw)`` with the geometric centre (see :mod:`sr3d_ros.geometry.boxes`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..detections import Detections
from ..geometry import box_corners, to_7dof
from ..palette import BACKGROUND, GT_COLOR, class_color

__all__ = ["BACKGROUND", "GT_COLOR", "class_color", "render_detections"]

# Box edges in sr3d_ros.geometry.box_corners order: bottom ring, top ring, verticals.
_EDGES = np.array(
    [(i, (i + 1) % 4) for i in range(4)]
    + [(i + 4, (i + 1) % 4 + 4) for i in range(4)]
    + [(i, i + 4) for i in range(4)]
)


# ---------------------------------------------------------------------------------------------
# Input preparation
# ---------------------------------------------------------------------------------------------
def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _prepare_points(points: Any, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    pts = _as_numpy(points).astype(np.float32, copy=False)
    if pts.ndim != 2 or pts.shape[1] not in (3, 6):
        raise ValueError(f"points must be (N, 3) or (N, 6) = xyz [+ rgb 0..255], got {pts.shape}")
    pts = pts[np.isfinite(pts).all(axis=1)]
    if pts.shape[0] == 0:
        raise ValueError("no finite points to render")
    if pts.shape[0] > max_points:
        idx = np.random.default_rng(0).choice(pts.shape[0], max_points, replace=False)
        pts = pts[np.sort(idx)]
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


def _dashed(corners: np.ndarray, dashes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Line segments (points, index pairs) drawing every box edge as ``dashes`` dashes."""
    if corners.shape[0] == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 2), np.int32)
    t0 = np.arange(dashes) / dashes
    t1 = t0 + 0.55 / dashes
    a, b = corners[:, _EDGES[:, 0]], corners[:, _EDGES[:, 1]]  # (M, 12, 3)
    p0 = a[:, :, None] + (b - a)[:, :, None] * t0[None, None, :, None]  # (M, 12, D, 3)
    p1 = a[:, :, None] + (b - a)[:, :, None] * t1[None, None, :, None]
    pts = np.stack([p0, p1], axis=3).reshape(-1, 3)
    idx = np.arange(pts.shape[0]).reshape(-1, 2)
    return pts.astype(np.float32), idx.astype(np.int32)


def _solid(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if corners.shape[0] == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 2), np.int32)
    pts = corners.reshape(-1, 3).astype(np.float32)
    idx = (np.arange(corners.shape[0])[:, None, None] * 8 + _EDGES[None]).reshape(-1, 2)
    return pts, idx.astype(np.int32)


def _camera(
    xyz: np.ndarray,
    image_size: tuple[int, int],
    fov_deg: float,
    elevation_deg: float,
    azimuth_deg: float,
    extra: np.ndarray | None = None,
    frame: tuple[float, float, float, float] = (-0.95, 0.95, -0.95, 0.78),
) -> dict[str, Any]:
    """Camera looking at the scene from ``(azimuth, elevation)``, fitted so the scene's
    1..99 percentile bounding box (grown to include the ``extra`` points, e.g. box corners) fills
    the NDC rectangle ``frame`` = (x0, x1, y0, y1) (the top band is left for the legend).
    Pinhole model with vertical field of view ``fov_deg``."""
    lo, hi = np.percentile(xyz, 1, axis=0), np.percentile(xyz, 99, axis=0)
    if extra is not None and len(extra):
        lo, hi = np.minimum(lo, extra.min(axis=0)), np.maximum(hi, extra.max(axis=0))
    hi = np.maximum(hi, lo + 1e-3)
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    w, h = image_size
    tv = math.tan(math.radians(fov_deg) / 2)
    th = tv * w / h
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    fwd = -direction
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right = (
        right / max(np.linalg.norm(right), 1e-9)
        if np.linalg.norm(right) > 1e-6
        else np.array([1.0, 0.0, 0.0])
    )
    up = np.cross(right, fwd)
    x0, x1, y0, y1 = frame
    target = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2

    def ndc(dist: float, tgt: np.ndarray) -> np.ndarray:
        v = corners - (tgt + dist * direction)
        z = np.maximum(v @ fwd, 1e-6)
        return np.stack([(v @ right) / (z * th), (v @ up) / (z * tv)], axis=1)

    dist = 3 * radius / tv
    for _ in range(8):
        p = ndc(dist, target)
        # Centre the projected box in the frame (shift in the image plane at the target's depth).
        dx = (p[:, 0].min() + p[:, 0].max()) / 2 - (x0 + x1) / 2
        dy = (p[:, 1].min() + p[:, 1].max()) / 2 - (y0 + y1) / 2
        target = target + right * dx * dist * th + up * dy * dist * tv
        # Scale: the largest relative extent must fit (perspective: iterate).
        p = ndc(dist, target)
        ratio = max(
            (p[:, 0].max() - p[:, 0].min()) / (x1 - x0), (p[:, 1].max() - p[:, 1].min()) / (y1 - y0)
        )
        dist = max(dist * ratio, radius * 0.5)
    return {
        "center": target.tolist(),
        "eye": (target + dist * direction).tolist(),
        "up": [0.0, 0.0, 1.0],
        "fov": fov_deg,
    }


# ---------------------------------------------------------------------------------------------
# open3d offscreen worker (runs in a child process)
# ---------------------------------------------------------------------------------------------
def _worker_main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - runs in a child
    """Child-process entry: ``<in.npz> <out.png> <out.json>``; renders and exits hard."""
    args = list(sys.argv[1:] if argv is None else argv)
    src, png, meta_path = args
    import open3d as o3d
    from open3d.visualization import rendering

    d = np.load(src)
    w, h = (int(v) for v in d["image_size"])
    cam = json.loads(str(d["camera"]))
    r = rendering.OffscreenRenderer(w, h)
    r.scene.set_background([*BACKGROUND, 1.0])
    r.scene.view.set_post_processing(False)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(d["xyz"].astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(d["rgb"].astype(np.float64))
    mat = rendering.MaterialRecord()
    mat.shader = "defaultUnlit"
    mat.point_size = float(d["point_size"])
    r.scene.add_geometry("cloud", cloud, mat)
    for name, width in (("gt", float(d["line_width"]) * 0.8), ("det", float(d["line_width"]))):
        pts, idx, col = d[f"{name}_points"], d[f"{name}_lines"], d[f"{name}_colors"]
        if len(idx) == 0:
            continue
        ls = o3d.geometry.LineSet(
            o3d.utility.Vector3dVector(pts.astype(np.float64)),
            o3d.utility.Vector2iVector(idx.astype(np.int32)),
        )
        ls.colors = o3d.utility.Vector3dVector(col.astype(np.float64))
        lmat = rendering.MaterialRecord()
        lmat.shader = "unlitLine"
        lmat.line_width = width
        r.scene.add_geometry(name, ls, lmat)
    r.setup_camera(cam["fov"], cam["center"], cam["eye"], cam["up"])
    img = r.render_to_image()
    o3d.io.write_image(png, img)
    c = r.scene.camera
    Path(meta_path).write_text(
        json.dumps(
            {
                "view": np.asarray(c.get_view_matrix()).tolist(),
                "projection": np.asarray(c.get_projection_matrix()).tolist(),
            }
        )
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip Filament's teardown, which can abort on exit


def _render_open3d(
    payload: dict[str, np.ndarray], path: Path, timeout_s: float
) -> tuple[np.ndarray, np.ndarray] | str:
    """Run the worker; returns ``(view, projection)`` 4x4 matrices or an error string."""
    with tempfile.TemporaryDirectory(prefix="sr3d_render_") as tmp:
        src, meta = Path(tmp) / "in.npz", Path(tmp) / "camera.json"
        np.savez(src, **payload)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [
            sys.executable,
            "-c",
            "from sr3d_ros.io.render import _worker_main; _worker_main()",
            str(src),
            str(path),
            str(meta),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return f"open3d renderer timed out after {timeout_s:.0f} s"
        except OSError as exc:
            return f"cannot start the renderer process: {exc}"
        if proc.returncode != 0 or not path.is_file() or not meta.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            return f"open3d offscreen rendering failed (exit {proc.returncode}): {' | '.join(tail)}"
        cam = json.loads(meta.read_text())
        return np.asarray(cam["view"]), np.asarray(cam["projection"])


# ---------------------------------------------------------------------------------------------
# Annotation with Pillow
# ---------------------------------------------------------------------------------------------
def _font(size: int) -> Any:
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _rgb255(c: Sequence[float]) -> tuple[int, int, int]:
    return (int(round(c[0] * 255)), int(round(c[1] * 255)), int(round(c[2] * 255)))


def _text_fill(c: Sequence[float]) -> tuple[int, int, int]:
    return (0, 0, 0) if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 0.55 else (255, 255, 255)


def _draw_labels(
    draw: Any,
    anchors: np.ndarray,
    texts: list[str],
    colors: list[tuple[float, float, float]],
    size: tuple[int, int],
    font: Any,
) -> None:
    """Label boxes at pixel anchors, best first; labels that would overlap a placed one are skipped."""
    placed: list[tuple[float, float, float, float]] = []
    w, h = size
    for (u, v), text, col in zip(anchors, texts, colors):
        if not (np.isfinite(u) and np.isfinite(v)) or not (0 <= u < w and 0 <= v < h):
            continue
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        tw, th = r - l + 8, b - t + 6
        # Above the anchor, else a few positions below / beside it; skip if all collide.
        for dx, dy in (
            (0, -th - 4),
            (0, 4),
            (0, -2 * th - 6),
            (0, th + 6),
            (-tw / 2 - 4, -th / 2),
            (tw / 2 + 4, -th / 2),
        ):
            x0 = min(max(u - tw / 2 + dx, 0), w - tw)
            y0 = min(max(v + dy, 0), h - th)
            rect = (x0, y0, x0 + tw, y0 + th)
            if not any(
                not (rect[2] <= p[0] or rect[0] >= p[2] or rect[3] <= p[1] or rect[1] >= p[3])
                for p in placed
            ):
                break
        else:
            continue
        placed.append(rect)
        draw.rectangle(rect, fill=_rgb255(col))
        draw.text((x0 + 4 - l, y0 + 3 - t), text, font=font, fill=_text_fill(col))


def _draw_legend(
    draw: Any,
    header: str,
    entries: list[tuple[tuple[float, float, float], str, bool]],
    font: Any,
    width: int,
    scale: float,
) -> None:
    """Translucent top band: a header line, then swatch + text entries flowing left to right."""
    pad, sw, gap = int(10 * scale), int(24 * scale), int(22 * scale)
    _l, t, _r, b = draw.textbbox((0, 0), "Ag" + header, font=font)
    lh = (b - t) + int(8 * scale)
    rows: list[list[tuple[tuple[float, float, float], str, bool, int]]] = [[]]
    x = pad
    for color, text, dashed in entries:
        tl, _, tr, _ = draw.textbbox((0, 0), text, font=font)
        ew = sw + int(6 * scale) + (tr - tl)
        if rows[-1] and x + ew > width - pad:
            rows.append([])
            x = pad
        rows[-1].append((color, text, dashed, x))
        x += ew + gap
    n_rows = 1 + (len(rows) if entries else 0)
    draw.rectangle((0, 0, width, n_rows * lh + pad), fill=(0, 0, 0, 160))
    draw.text((pad, pad // 2 + 2), header, font=font, fill=(240, 240, 240))
    for i, row in enumerate(rows if entries else []):
        y = pad // 2 + 2 + (i + 1) * lh
        for color, text, dashed, x in row:
            c = _rgb255(color)
            cy = y + lh / 2 - int(4 * scale)
            lw = max(2, int(3 * scale))
            if dashed:
                for k in range(3):
                    draw.line((x + k * sw / 3, cy, x + k * sw / 3 + sw / 5, cy), fill=c, width=lw)
            else:
                draw.line((x, cy, x + sw, cy), fill=c, width=lw)
            draw.text((x + sw + int(6 * scale), y), text, font=font, fill=(235, 235, 235))


def _project(
    points: np.ndarray, view: np.ndarray, proj: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """World points ``(K, 3)`` -> pixel ``(K, 2)`` (NaN behind the camera)."""
    hom = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    clip = hom @ (proj @ view).T
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = clip[:, :3] / clip[:, 3:4]
    w, h = size
    uv = np.stack([(ndc[:, 0] + 1) / 2 * w, (1 - ndc[:, 1]) / 2 * h], axis=1)
    uv[clip[:, 3] <= 0] = np.nan
    return uv


# ---------------------------------------------------------------------------------------------
# BEV fallback (Pillow only)
# ---------------------------------------------------------------------------------------------
def _render_bev(
    xyz: np.ndarray,
    rgb: np.ndarray,
    det_corners: np.ndarray,
    det_colors: list,
    gt_corners: np.ndarray,
    size: tuple[int, int],
) -> tuple[Any, Any]:
    from PIL import Image

    w, h = size
    lo = np.percentile(xyz[:, :2], 0.5, axis=0)
    hi = np.percentile(xyz[:, :2], 99.5, axis=0)
    margin, top = 0.04 * min(w, h), 0.1 * h  # the top band holds the legend
    scale = min(
        (w - 2 * margin) / max(hi[0] - lo[0], 1e-3), (h - top - margin) / max(hi[1] - lo[1], 1e-3)
    )
    cx, cy = (lo + hi) / 2
    mid_v = top + (h - top - margin) / 2

    def to_px(p: np.ndarray) -> np.ndarray:
        return np.stack(
            [w / 2 + (p[..., 0] - cx) * scale, mid_v - (p[..., 1] - cy) * scale], axis=-1
        )

    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = _rgb255(BACKGROUND)
    order = np.argsort(xyz[:, 2])  # higher points drawn last (on top)
    px = np.round(to_px(xyz[order])).astype(np.int64)
    colors = (rgb[order] * 255).astype(np.uint8)
    for ox, oy in ((0, 0), (1, 0), (0, 1), (1, 1)):  # 2x2 pixel dots
        qx, qy = px[:, 0] + ox, px[:, 1] + oy
        ok = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
        canvas[qy[ok], qx[ok]] = colors[ok]
    img = Image.fromarray(canvas)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img, "RGBA")
    lw = max(2, w // 500)
    for c in gt_corners:
        poly = to_px(c[:4, :2])
        for a in range(4):
            p0, p1 = poly[a], poly[(a + 1) % 4]
            for t in np.arange(0, 1, 1 / 8):
                q0, q1 = p0 + (p1 - p0) * t, p0 + (p1 - p0) * (t + 0.55 / 8)
                draw.line((*q0, *q1), fill=_rgb255(GT_COLOR), width=lw)
    for c, col in zip(det_corners, det_colors):
        poly = [tuple(p) for p in to_px(c[:4, :2])]
        draw.line(poly + [poly[0]], fill=_rgb255(col), width=lw)
    return img, to_px


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
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
    info: dict[str, Any] | None = None,
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
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = int(image_size[0]), int(image_size[1])
    xyz, rgb = _prepare_points(points, max_points)
    names = (
        list(class_names)
        if class_names is not None
        else (list(detections.class_names) if detections is not None else [])
    )

    # Detections to draw: score >= min_score, best max_boxes.
    if detections is not None and len(detections) > 0:
        scores = _as_numpy(detections.scores).astype(np.float64)
        keep = np.nonzero(scores >= min_score)[0]
        keep = keep[np.argsort(-scores[keep], kind="stable")][:max_boxes]
        det_boxes = _as_numpy(detections.boxes)[keep].astype(np.float32)
        det_labels = _as_numpy(detections.labels)[keep].astype(np.int64)
        det_scores = scores[keep]
        n_total = len(detections)
    else:
        det_boxes, det_labels, det_scores, n_total = (
            np.zeros((0, 7), np.float32),
            np.zeros((0,), np.int64),
            np.zeros((0,)),
            0,
        )
    if gt_boxes is not None:
        gt = _as_numpy(gt_boxes).astype(np.float32)
        if gt.ndim != 2 or gt.shape[1] not in (6, 7):
            raise ValueError(f"gt_boxes must be (K, 6) or (K, 7), got {gt.shape}")
    else:
        gt = np.zeros((0, 7), np.float32)
    gt_lab = None if gt_labels is None else _as_numpy(gt_labels).astype(np.int64).reshape(-1)
    det_c, gt_c = _corners(det_boxes), _corners(gt)
    det_colors = [class_color(int(l)) for l in det_labels]

    def name_of(label: int) -> str:
        return names[label] if 0 <= label < len(names) else f"class {label}"

    texts = [f"{name_of(int(l))} {s:.2f}" for l, s in zip(det_labels, det_scores)]

    try:
        from PIL import Image, ImageDraw
    except ImportError:
        Image = ImageDraw = None  # type: ignore[assignment]

    img = None
    used = backend
    if backend in ("auto", "open3d"):
        gpts, gidx = _dashed(gt_c)
        dpts, didx = _solid(det_c)
        point_size = max(1.0, round(3.0 * w / 1280, 1))
        payload = {
            "xyz": xyz,
            "rgb": rgb,
            "image_size": np.array([w, h]),
            "camera": np.array(
                json.dumps(
                    _camera(
                        xyz,
                        (w, h),
                        50.0,
                        elevation_deg,
                        azimuth_deg,
                        extra=np.concatenate([det_c.reshape(-1, 3), gt_c.reshape(-1, 3)]),
                    )
                )
            ),
            "point_size": np.array(point_size),
            "line_width": np.array(max(2.0, 3.0 * w / 1280)),
            "gt_points": gpts,
            "gt_lines": gidx,
            "gt_colors": np.tile(np.array(GT_COLOR, np.float32), (len(gidx), 1)),
            "det_points": dpts,
            "det_lines": didx,
            "det_colors": np.repeat(np.array(det_colors, np.float32).reshape(-1, 3), 12, axis=0),
        }
        result = _render_open3d(payload, path, timeout_s)
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
        else:
            used = "open3d"
            if info is not None:
                info.update(backend="open3d", num_drawn=len(det_boxes), num_gt=len(gt))
            if Image is None:
                warnings.warn(
                    "Pillow is not installed: the rendering has no labels or legend (pip install pillow)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return path
            view, proj = result
            img = Image.open(path).convert("RGB")
            top_centres = det_boxes[:, :3].astype(np.float64)
            top_centres[:, 2] += det_boxes[:, 5] / 2  # label above each box
            anchors = _project(top_centres, view, proj, (w, h))
    if used == "bev":
        if Image is None:
            raise RuntimeError(
                "the top-down renderer needs Pillow (pip install pillow)"
                + (" and open3d offscreen rendering failed" if backend == "auto" else "")
            )
        img, to_px = _render_bev(xyz, rgb, det_c, det_colors, gt_c, (w, h))
        anchors = to_px(det_boxes[:, :2]) if len(det_boxes) else np.zeros((0, 2))

    assert img is not None
    if info is not None:
        info.update(backend=used, num_drawn=len(det_boxes), num_gt=len(gt))
    scale = w / 1280
    draw = ImageDraw.Draw(img, "RGBA")
    _draw_labels(draw, anchors, texts, det_colors, (w, h), _font(max(10, int(16 * scale))))
    view_name = {"open3d": "3D view from a corner, 45 deg", "bev": "top-down view"}[used]
    if used == "bev" and backend == "auto":
        view_name += " (3D renderer unavailable)"
    header = f"{len(det_boxes)} of {n_total} detections drawn (score >= {min_score:g}); {view_name}"
    if title:
        header = f"{title}  |  {header}"
    entries: list[tuple[tuple[float, float, float], str, bool]] = []
    gt_counted = gt_lab is not None and len(gt_lab) == len(gt)
    for label in sorted(set(det_labels.tolist()) | (set(gt_lab.tolist()) if gt_counted else set())):
        text = f"{name_of(label)} x{int((det_labels == label).sum())}"
        if gt_counted:
            text += f" (gt {int((gt_lab == label).sum())})"
        entries.append((class_color(label), text, False))
    if len(gt):
        entries.append((GT_COLOR, f"ground truth x{len(gt)} (dashed)", True))
    _draw_legend(draw, header, entries, _font(max(10, int(15 * scale))), w, scale)
    img.save(path, format="PNG")
    return path
