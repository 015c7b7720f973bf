"""Pillow drawing for :func:`sr3d_ros.io.render.render_detections`: box labels, the legend band and
the top-down (bird's-eye) fallback view, which needs nothing but Pillow.

Colours are RGB floats 0..1 (:mod:`sr3d_ros.palette`); pixel coordinates ``(u, v)`` from the
image's top-left corner; points and box corners in metres in a gravity-aligned frame (z up).
Pillow is imported when a function runs (it is optional for the rest of the package).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from ..palette import BACKGROUND, GT_COLOR

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

    Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont

__all__ = ["draw_labels", "draw_legend", "load_font", "render_bev"]

Color = tuple[float, float, float]


def load_font(size: int) -> Font:
    """DejaVu Sans at ``size`` pixels when installed, else Pillow's default font."""
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def _rgb255(c: Sequence[float]) -> tuple[int, int, int]:
    return (int(round(c[0] * 255)), int(round(c[1] * 255)), int(round(c[2] * 255)))


def _text_fill(c: Sequence[float]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on background colour ``c``."""
    return (0, 0, 0) if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 0.55 else (255, 255, 255)


def draw_labels(
    draw: ImageDraw.ImageDraw,
    anchors: np.ndarray,
    texts: list[str],
    colors: list[Color],
    size: tuple[int, int],
    font: Font,
) -> None:
    """Label boxes at pixel ``anchors`` (K, 2), best first, on an image of ``size`` = (width,
    height); a label that would overlap one already placed moves, or is skipped."""
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


def draw_legend(
    draw: ImageDraw.ImageDraw,
    header: str,
    entries: list[tuple[Color, str, bool]],
    font: Font,
    width: int,
    scale: float,
) -> None:
    """Translucent top band: a ``header`` line, then ``(colour, text, dashed)`` swatch + text
    entries flowing left to right over ``width`` pixels; ``scale`` = width / 1280."""
    pad, sw, gap = int(10 * scale), int(24 * scale), int(22 * scale)
    _l, t, _r, b = draw.textbbox((0, 0), "Ag" + header, font=font)
    lh = (b - t) + int(8 * scale)
    rows: list[list[tuple[Color, str, bool, int]]] = [[]]
    x = pad
    for color, text, dashed in entries:
        tl, _, tr, _ = draw.textbbox((0, 0), text, font=font)
        ew = sw + int(6 * scale) + int(tr - tl)
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


def render_bev(
    xyz: np.ndarray,
    rgb: np.ndarray,
    det_corners: np.ndarray,
    det_colors: list[Color],
    gt_corners: np.ndarray,
    size: tuple[int, int],
) -> tuple[Image.Image, Callable[[np.ndarray], np.ndarray]]:
    """Top-down view: points ``xyz`` (N, 3) with colours ``rgb`` (N, 3) 0..1 as 2x2-pixel dots
    (higher points on top), detection footprints solid in ``det_colors``, ground truth dashed
    green; boxes as ``(M, 8, 3)`` corners. The top 10% of the image is left for the legend.

    Returns:
        ``(image, to_px)``: the RGB image of ``size`` = (width, height), and the map from
        ``(..., >= 2)`` metres (x, y used) to ``(..., 2)`` pixels.
    """
    from PIL import Image, ImageDraw

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
    draw = ImageDraw.Draw(img, "RGBA")
    lw = max(2, w // 500)
    for c in gt_corners:
        ring = to_px(c[:4, :2])
        for a in range(4):
            p0, p1 = ring[a], ring[(a + 1) % 4]
            for t in np.arange(0, 1, 1 / 8):
                q0, q1 = p0 + (p1 - p0) * t, p0 + (p1 - p0) * (t + 0.55 / 8)
                draw.line((*q0, *q1), fill=_rgb255(GT_COLOR), width=lw)
    for c, col in zip(det_corners, det_colors):
        poly = [(float(u), float(v)) for u, v in to_px(c[:4, :2])]
        draw.line(poly + [poly[0]], fill=_rgb255(col), width=lw)
    return img, to_px
