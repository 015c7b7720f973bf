"""``sensor_msgs/CameraInfo`` -> the :class:`~sr3d_ros.geometry.camera.PinholeCamera` of an image.

What the image node needs from a CameraInfo, for one image size (:func:`camera_setup`):

* **Which matrix.** ROS semantics: ``K`` (3x3) and ``D`` describe the raw, possibly distorted
  image; ``P`` (3x4) is the projection of the rectified image (``image_rect``), and for the
  second camera of a stereo pair it projects points given in the FIRST camera's frame
  (``P = K' [I | t]``, e.g. KITTI ``P2``). ``intrinsics="auto"`` uses ``P`` when the image has
  no distortion (``D`` empty or all zero; the image is then taken to be rectified) and ``P`` is
  set (``P[0, 0] > 0``), else ``K``; ``"P"`` / ``"K"`` force one.
* **Distortion.** ``plumb_bob`` (k1, k2, p1, p2, k3) and ``rational_polynomial`` (k1, k2, p1,
  p2, k3, k4, k5, k6) with a non-zero ``D`` mean a raw image: with ``undistort=True`` the image
  is remapped (bilinear) into the rectified image of ``P`` (``R`` applied, as ROS image_proc /
  OpenCV ``initUndistortRectifyMap`` do) and ``P`` is its camera; with ``undistort=False``, or
  for any other model (``equidistant``, ...), the distortion is ignored and a note says so
  (boxes near the image border are then off).
* **Size.** ``roi`` (when set) and ``binning_x`` / ``binning_y`` are applied to the calibrated
  camera first. If the result still differs from the image size, the camera is scaled to the
  image when the two aspect ratios agree within ``aspect_tolerance`` (1 %) and refused
  otherwise; a CameraInfo with width or height 0 is taken to describe the image as it is.
* **Frames.** Boxes computed with ``P = K [I | t]`` are in the frame ``P`` projects from. By the
  ROS convention that is the frame the image's ``header.frame_id`` names: for the second camera
  of a stereo pair (``t != 0``, KITTI ``P2``) the first camera's rectified optical frame, and
  RViz's Camera display places its virtual camera at ``-t`` in ``frame_id`` accordingly. So the
  node publishes the boxes as they are, in ``frame_id``. A rectification rotation ``R`` other
  than identity is not undone (boxes stay in the rectified frame; a note says so).

Pixel convention: the centre of pixel ``(col, row)`` is at ``(col, row)`` (as in camera.py).
Errors: :class:`CameraInfoError` (a ``ValueError``) naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from sr3d_ros.geometry.camera import PinholeCamera

__all__ = ["CameraInfoError", "CameraSetup", "Undistorter", "camera_setup", "info_key"]

_DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8}


class CameraInfoError(ValueError):
    """A CameraInfo that cannot describe the image (the message says why)."""


class Undistorter:
    """Remaps raw (distorted) images into the rectified image of a camera (bilinear, outside
    pixels black).

    Args:
        grid: ``float32 (H, W, 2)`` source pixel ``(u, v)`` of each output pixel.
        device: where the remap runs (``torch.nn.functional.grid_sample``).
    """

    def __init__(self, grid: NDArray[np.float32], device: str | torch.device = "cpu") -> None:
        h, w = grid.shape[:2]
        g = torch.as_tensor(grid, dtype=torch.float32)
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
        self.grid = (g * scale - 1.0).unsqueeze(0).to(device)  # align_corners=True coordinates
        self.size = (w, h)

    def __call__(self, rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``uint8 (H, W, 3)`` raw image -> ``uint8 (H, W, 3)`` rectified image.

        Raises:
            ValueError: the image size is not the one the map was built for.
        """
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise ValueError(f"undistortion map is for {self.size}, image is {rgb.shape[1::-1]}")
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.grid.device)
        x = x.permute(2, 0, 1).unsqueeze(0).float()
        y = torch.nn.functional.grid_sample(
            x, self.grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        out = y[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8)
        return np.ascontiguousarray(out.cpu().numpy())


@dataclass(frozen=True)
class CameraSetup:
    """The camera of one image size, from one CameraInfo.

    Attributes:
        camera: the camera of the image the detector sees (after undistortion, if any), sized
            like the image.
        undistort: the remap to apply to each image, or None.
        notes: things to tell the user once (distortion ignored, camera scaled, ...).
    """

    camera: PinholeCamera
    undistort: Undistorter | None
    notes: tuple[str, ...]


def _matrix(values: Any, shape: tuple[int, int], name: str) -> NDArray[np.float64]:
    try:
        m = np.asarray(list(values), dtype=np.float64)
    except (TypeError, ValueError):
        raise CameraInfoError(f"{name} is not numeric") from None
    if m.size != shape[0] * shape[1] or not np.isfinite(m).all():
        raise CameraInfoError(f"{name} must hold {shape[0] * shape[1]} finite numbers")
    return m.reshape(shape)


def info_key(info: Any) -> tuple[Any, ...]:
    """Everything of a CameraInfo that :func:`camera_setup` reads (not the header): equal keys
    give equal setups, so the node builds a setup (and its undistortion map) once."""
    roi = info.roi
    return (
        int(info.width),
        int(info.height),
        str(info.distortion_model),
        tuple(float(x) for x in info.d),
        tuple(float(x) for x in info.k),
        tuple(float(x) for x in info.r),
        tuple(float(x) for x in info.p),
        int(info.binning_x),
        int(info.binning_y),
        (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)),
    )


def _distortion_grid(
    K: NDArray[np.float64],
    D: NDArray[np.float64],
    R: NDArray[np.float64],
    P: NDArray[np.float64],
    width: int,
    height: int,
) -> NDArray[np.float32]:
    """Source pixel in the raw image of each pixel of the rectified image of ``P`` (the
    plumb_bob / rational_polynomial model; OpenCV's documented ``initUndistortRectifyMap``)."""
    k = np.zeros(8)
    k[: len(D)] = D[:8]
    k1, k2, p1, p2, k3, k4, k5, k6 = k
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    ray = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(P[:, :3] @ R).T
    x, y = ray[..., 0] / ray[..., 2], ray[..., 1] / ray[..., 2]
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    us = K[0, 0] * xd + K[0, 1] * yd + K[0, 2]
    vs = K[1, 1] * yd + K[1, 2]
    return np.stack([us, vs], -1).astype(np.float32)


def _pixel_map(sx: float, sy: float, left: float = 0.0, top: float = 0.0) -> NDArray[np.float64]:
    """Affine pixel map of a crop at ``(left, top)`` then a resize by ``(sx, sy)``."""
    return np.array(
        [[sx, 0.0, 0.5 * (sx - 1) - sx * left], [0.0, sy, 0.5 * (sy - 1) - sy * top], [0, 0, 1.0]]
    )


def _size_map(
    info: Any, width: int, height: int, aspect_tolerance: float, notes: list[str]
) -> NDArray[np.float64]:
    """The pixel map from the calibrated camera to the image (roi, binning, scaling)."""
    cw, ch = int(info.width), int(info.height)
    if cw <= 0 or ch <= 0:
        notes.append(f"CameraInfo has no size ({cw} x {ch}); taken to be the image's")
        return np.eye(3)
    A = np.eye(3)
    roi = info.roi
    if int(roi.width) > 0 and int(roi.height) > 0 and (int(roi.width), int(roi.height)) != (cw, ch):
        A = _pixel_map(1.0, 1.0, int(roi.x_offset), int(roi.y_offset))
        cw, ch = int(roi.width), int(roi.height)
    bx, by = max(1, int(info.binning_x)), max(1, int(info.binning_y))
    if bx > 1 or by > 1:
        A = _pixel_map(1.0 / bx, 1.0 / by) @ A
        cw, ch = cw // bx, ch // by
    if (cw, ch) == (width, height):
        return A
    sx, sy = width / cw, height / ch
    if abs(sx / sy - 1.0) > aspect_tolerance:
        raise CameraInfoError(
            f"CameraInfo is for {cw} x {ch} pixels but the image is {width} x {height}: the "
            f"aspect ratios differ by {100 * abs(sx / sy - 1):.1f} % (> "
            f"{100 * aspect_tolerance:g} %), so it cannot be scaled"
        )
    notes.append(f"CameraInfo for {cw} x {ch} pixels scaled to the {width} x {height} image")
    return _pixel_map(sx, sy) @ A


def camera_setup(
    info: Any,
    width: int,
    height: int,
    intrinsics: str = "auto",
    undistort: bool = True,
    aspect_tolerance: float = 0.01,
    device: str | torch.device = "cpu",
) -> CameraSetup:
    """The camera of a ``width x height`` image described by ``info`` (see the module
    docstring for the rules).

    Args:
        info: ``sensor_msgs/CameraInfo`` (rclpy or rosbags message).
        width, height: the image's size in pixels.
        intrinsics: ``"auto"``, ``"P"`` or ``"K"``.
        undistort: remap distorted (plumb_bob / rational_polynomial) images.
        aspect_tolerance: largest relative aspect-ratio difference that is scaled.
        device: where the undistortion runs.

    Returns:
        :class:`CameraSetup`.

    Raises:
        CameraInfoError: uncalibrated (``K`` or the chosen matrix zero), non-finite or malformed
            matrices, ``P`` not of the form ``K [I | t]``, or a size that cannot be scaled.
        ValueError: an unknown ``intrinsics`` value.
    """
    if intrinsics not in ("auto", "P", "K"):
        raise ValueError(f"intrinsics must be 'auto', 'P' or 'K', got {intrinsics!r}")
    K = _matrix(info.k, (3, 3), "K")
    P = _matrix(info.p, (3, 4), "P")
    R = _matrix(info.r, (3, 3), "R")
    D = np.asarray([float(x) for x in info.d], np.float64)
    if not np.isfinite(D).all():
        raise CameraInfoError("D must be finite")
    model = str(info.distortion_model).strip()
    distorted = bool(D.size) and bool(np.any(D != 0))
    has_p = P[0, 0] > 0
    if intrinsics == "auto":
        intrinsics = "P" if has_p and not distorted else "K"
    notes: list[str] = []
    if K[0, 0] <= 0 and (intrinsics == "K" or distorted):
        raise CameraInfoError("uncalibrated camera: K is zero (fx = 0)")
    if intrinsics == "P" and not has_p:
        raise CameraInfoError("P is zero (fx = 0) but intrinsics 'P' was asked for")
    if not (R == 0).all() and not np.allclose(R, np.eye(3), atol=1e-9) and (distorted or has_p):
        notes.append("rectification R is not identity: boxes are in the rectified frame")
    A = _size_map(info, width, height, aspect_tolerance, notes)
    remap: Undistorter | None = None
    if distorted and model in _DISTORTION_MODELS and undistort:
        target = P if has_p else np.concatenate([K, np.zeros((3, 1))], 1)
        Ri = R if not (R == 0).all() else np.eye(3)
        grid = _distortion_grid(A @ K, D, Ri, A @ target, width, height)
        remap, chosen = Undistorter(grid, device), target
    else:
        if distorted:
            why = "undistort is off" if model in _DISTORTION_MODELS else f"model {model!r}"
            notes.append(f"distortion ignored ({why}): boxes near the image border are off")
        chosen = P if intrinsics == "P" else np.concatenate([K, np.zeros((3, 1))], 1)
    try:
        cam = PinholeCamera(A @ chosen, width, height)
    except ValueError as exc:
        raise CameraInfoError(str(exc)) from None
    return CameraSetup(cam, remap, tuple(notes))
