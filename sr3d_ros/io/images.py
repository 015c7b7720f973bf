"""Image files -> ``uint8 (H, W, 3)`` RGB arrays (Pillow; imported when a function runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "read_image"]

#: Suffixes ``sr3d-detect`` treats as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``uint8 (H, W, 3)`` RGB (grey / palette / alpha images converted).

    Raises:
        FileNotFoundError: missing file. ValueError: not a readable image (names the file).
    """
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{p}: cannot read image ({exc})") from None
