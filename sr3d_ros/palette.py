"""The one class palette: RViz markers, PNG renders and image overlays use the same colours.

Colours are RGB tuples of floats in 0..1. Class ``label`` (the detector's class index) gets
``CLASS_COLORS[label % len(CLASS_COLORS)]``; green is kept for ground truth (:data:`GT_COLOR`),
so no class colour is green.
"""

from __future__ import annotations

__all__ = ["BACKGROUND", "CLASS_COLORS", "GT_COLOR", "class_color", "class_color_255"]

#: Ground-truth boxes (dashed wireframes in renders), RGB 0..1.
GT_COLOR: tuple[float, float, float] = (0.15, 1.0, 0.25)
#: Render background, RGB 0..1 (dark, so wireframes and real colours both read well).
BACKGROUND: tuple[float, float, float] = (0.09, 0.09, 0.11)

_PALETTE_255: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (255, 225, 25),
    (240, 50, 230), (70, 240, 240), (170, 110, 40), (250, 190, 212), (0, 0, 255),
    (255, 105, 80), (220, 190, 255), (128, 0, 0), (255, 215, 180), (0, 128, 128),
    (128, 128, 255), (200, 120, 0), (255, 0, 128),
)  # fmt: skip

#: 18 distinct, saturated colours without greens (green is ground truth), RGB 0..1.
CLASS_COLORS: tuple[tuple[float, float, float], ...] = tuple(
    (r / 255.0, g / 255.0, b / 255.0) for r, g, b in _PALETTE_255
)


def class_color(label: int) -> tuple[float, float, float]:
    """Colour of class index ``label``, RGB floats in 0..1 (cycles after 18 classes).

    Raises:
        TypeError: ``label`` is not convertible to ``int``.
    """
    return CLASS_COLORS[int(label) % len(CLASS_COLORS)]


def class_color_255(label: int) -> tuple[int, int, int]:
    """Colour of class index ``label``, RGB ints in 0..255 (for PIL drawing on images)."""
    return _PALETTE_255[int(label) % len(_PALETTE_255)]
