"""The 3D view of :func:`sr3d_ros.io.render.render_detections`: open3d's headless renderer.

open3d's ``OffscreenRenderer`` (Filament; on Debian it needs ``mesa-vulkan-drivers`` or an EGL
driver) draws the coloured cloud with box wireframes, seen from a corner of the scene. It runs in
a short-lived child process (:func:`render_offscreen`): Filament aborts the whole process on some
errors (e.g. a second renderer in one process), and a detector node must survive that.

Frames and units: points and box corners in one gravity-aligned frame (z up), metres; colours
RGB floats 0..1; pixel coordinates ``(u, v)`` from the image's top-left corner.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np

from ..palette import BACKGROUND

__all__ = [
    "SceneArrays",
    "camera_pose",
    "dashed_edges",
    "project",
    "render_offscreen",
    "solid_edges",
]

# Box edges in sr3d_ros.geometry.box_corners order: bottom ring, top ring, verticals.
_EDGES = np.array(
    [(i, (i + 1) % 4) for i in range(4)]
    + [(i + 4, (i + 1) % 4 + 4) for i in range(4)]
    + [(i, i + 4) for i in range(4)]
)


class SceneArrays(TypedDict):
    """What the renderer process draws (saved as one ``.npz``).

    ``xyz`` float32 (N, 3) metres and ``rgb`` float32 (N, 3) 0..1: the cloud; ``image_size``
    int (2,) = (width, height) pixels; ``camera``: JSON of :func:`camera_pose`; ``point_size``
    and ``line_width`` in pixels; ``{gt,det}_points`` float32 (P, 3), ``{gt,det}_lines`` int32
    (L, 2) index pairs into them, ``{gt,det}_colors`` float32 (L, 3) RGB 0..1 per line.
    """

    xyz: np.ndarray
    rgb: np.ndarray
    image_size: np.ndarray
    camera: np.ndarray
    point_size: np.ndarray
    line_width: np.ndarray
    gt_points: np.ndarray
    gt_lines: np.ndarray
    gt_colors: np.ndarray
    det_points: np.ndarray
    det_lines: np.ndarray
    det_colors: np.ndarray


def dashed_edges(corners: np.ndarray, dashes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Line segments drawing every edge of ``(M, 8, 3)`` box corners as ``dashes`` dashes.

    Returns:
        ``(points float32 (M * 12 * dashes * 2, 3), index pairs int32 (M * 12 * dashes, 2))``.
    """
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


def solid_edges(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 12 edges of ``(M, 8, 3)`` box corners: ``(points float32 (M * 8, 3), index pairs
    int32 (M * 12, 2))``, box ``m``'s edges at rows ``12 m .. 12 m + 11``."""
    if corners.shape[0] == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 2), np.int32)
    pts = corners.reshape(-1, 3).astype(np.float32)
    idx = (np.arange(corners.shape[0])[:, None, None] * 8 + _EDGES[None]).reshape(-1, 2)
    return pts, idx.astype(np.int32)


def camera_pose(
    xyz: np.ndarray,
    image_size: tuple[int, int],
    fov_deg: float,
    elevation_deg: float,
    azimuth_deg: float,
    extra: np.ndarray | None = None,
    frame: tuple[float, float, float, float] = (-0.95, 0.95, -0.95, 0.78),
) -> dict[str, list[float] | float]:
    """A pinhole camera looking at the scene from ``(azimuth, elevation)`` (degrees).

    The scene's 1..99 percentile bounding box of ``xyz`` (N, 3) (grown to include the ``extra``
    (K, 3) points, e.g. box corners) is fitted into the NDC rectangle ``frame`` = (x0, x1, y0,
    y1) (the top band is left for the legend); vertical field of view ``fov_deg``.

    Returns:
        ``{"center", "eye", "up", "fov"}``: look-at point, camera position and up vector
        (metres, the points' frame) and the field of view (degrees), as open3d's
        ``setup_camera`` takes them.
    """
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
    norm = float(np.linalg.norm(right))
    right = right / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
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


def project(
    points: np.ndarray, view: np.ndarray, proj: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """World points ``(K, 3)`` -> pixels ``(K, 2)`` with open3d's 4x4 view and projection
    matrices (NaN for points behind the camera); ``size`` = (width, height)."""
    hom = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    clip = hom @ (proj @ view).T
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = clip[:, :3] / clip[:, 3:4]
    w, h = size
    uv = np.stack([(ndc[:, 0] + 1) / 2 * w, (1 - ndc[:, 1]) / 2 * h], axis=1)
    uv[clip[:, 3] <= 0] = np.nan
    return uv


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
    o3d.io.write_image(Path(png), img)
    c = r.scene.camera
    view = np.asarray(c.get_view_matrix()).tolist()
    projection = np.asarray(c.get_projection_matrix()).tolist()
    Path(meta_path).write_text(json.dumps({"view": view, "projection": projection}))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip Filament's teardown, which can abort on exit


def render_offscreen(
    scene: SceneArrays, path: Path, timeout_s: float
) -> tuple[np.ndarray, np.ndarray] | str:
    """Render ``scene`` to the PNG ``path`` in a child process (see the module docstring).

    Returns:
        The camera's ``(view, projection)`` float64 4x4 matrices (for :func:`project`), or a
        one-line reason when rendering failed (no EGL / Vulkan driver, crash, timeout): failures
        are reported, never raised.
    """
    with tempfile.TemporaryDirectory(prefix="sr3d_render_") as tmp:
        src, meta = Path(tmp) / "in.npz", Path(tmp) / "camera.json"
        np.savez(src, **scene)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [
            sys.executable,
            "-c",
            f"from {__name__} import _worker_main; _worker_main()",
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
