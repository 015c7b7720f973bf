"""File input/output: point clouds from files (:func:`read_points`) and PNG renderings of
detections (:func:`render_detections`). open3d is needed for .ply/.pcd and 3D rendering, Pillow
for labels and the top-down fallback; both are imported lazily."""

from .pointclouds import DEFAULT_BIN_COLUMNS, SUPPORTED_SUFFIXES, read_points
from .render import render_detections

__all__ = ["DEFAULT_BIN_COLUMNS", "SUPPORTED_SUFFIXES", "read_points", "render_detections"]
