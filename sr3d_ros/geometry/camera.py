"""Pinhole camera geometry for the monocular path (ROS-free, torch + numpy).

(~430 lines: the camera and the camera-box conventions it defines are one job, kept together.)

Frames and conventions (written once here; KITTI and the monocular detector use them)
--------------------------------------------------------------------------------------
* **Optical frame** (KITTI "rectified camera", ROS ``*_optical_frame``): x right, y down,
  z forward, metres. A camera is a 3x4 projection matrix ``P = K [I | t]`` (KITTI ``P2``; ``t``
  is the offset of this camera from the reference one, the *baseline term*), ``K`` upper
  triangular with last row ``(0, 0, 1)``. A point ``X`` projects to
  ``(u, v) = (P[0] X~ / w, P[1] X~ / w)`` with ``w = z + t_z``.
* **Pixels**: ``(u, v)`` in pixels, the centre of pixel ``(col, row)`` at ``(col, row)``
  (OpenCV / KITTI). Hence a horizontal flip of a ``W`` wide image maps ``u -> W - 1 - u`` and a
  resize by ``s`` maps ``u -> s (u + 0.5) - 0.5`` (what ``torch.nn.functional.interpolate`` with
  ``align_corners=False`` does).
* **Body frame** (ROS REP 103 ``camera_link``): the optical frame's axes turned to x forward,
  y left, z up, same origin: ``p_body = OPTICAL_TO_BODY @ p_optical``. Our box convention
  (:mod:`sr3d_ros.geometry.boxes`: geometric centre, full sizes, yaw about +z) holds here.
* **Camera boxes** (KITTI / mmdetection3d camera boxes): ``(..., 7) = (x, y, z, l, h, w, ry)``,
  ``(x, y, z)`` the **bottom-face centre** in the optical frame, ``(h, w, l)`` height / width /
  length in metres, ``ry`` the rotation about the optical **+y** axis; the object's length axis
  points along ``(cos ry, 0, -sin ry)``. Observation angle ``alpha = ry - atan2(x, z)``
  (checked on the real KITTI labels), wrapped to ``[-pi, pi)``.
  In the body frame the same box is ``(z, -x, -y + h/2, l, w, h, -ry - pi/2)``.

Errors: ``TypeError`` for non-tensor / non-floating inputs, ``ValueError`` for wrong shapes or
a projection matrix that is not ``K [I | t]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .boxes import box_corners, limit_yaw

__all__ = [
    "OPTICAL_TO_BODY",
    "Letterbox",
    "PinholeCamera",
    "alpha_to_rotation_y",
    "boxes_to_camera_boxes",
    "camera_box_corners",
    "camera_boxes_to_boxes",
    "corners_to_image_boxes",
    "depth_from_height",
    "rotation_y_to_alpha",
    "transform_boxes",
]

#: ``p_body = OPTICAL_TO_BODY @ p_optical`` (x forward = z_opt, y left = -x_opt, z up = -y_opt).
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _check_last(x: Tensor, n: int, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if x.dim() < 1 or x.shape[-1] != n:
        raise ValueError(f"{name} must have shape (..., {n}), got {tuple(x.shape)}")


@dataclass(frozen=True)
class Letterbox:
    """How :meth:`PinholeCamera.letterboxed` maps the input image into the output canvas.

    Attributes:
        scale_x, scale_y: resize factors (``new_width / width``, ``new_height / height``).
        new_width, new_height: size of the resized image, pixels.
        pad_left, pad_top: offset of the resized image inside the canvas, pixels.
        width, height: canvas size, pixels.
    """

    scale_x: float
    scale_y: float
    new_width: int
    new_height: int
    pad_left: int
    pad_top: int
    width: int
    height: int

    def affine(self) -> np.ndarray:
        """``(3, 3)`` float64 pixel map ``[u', v', 1] = A [u, v, 1]`` (pixel-centre convention)."""
        sx, sy = self.scale_x, self.scale_y
        return np.array(
            [
                [sx, 0.0, 0.5 * (sx - 1) + self.pad_left],
                [0.0, sy, 0.5 * (sy - 1) + self.pad_top],
                [0.0, 0.0, 1.0],
            ]
        )


@dataclass(frozen=True)
class PinholeCamera:
    """A rectified pinhole camera: projection matrix ``P = K [I | t]`` and image size.

    Attributes:
        P: ``float64 (3, 4)`` projection matrix from the optical frame (metres) to pixels.
        width, height: image size in pixels.

    Raises:
        ValueError: ``P`` is not ``(3, 4)``, not finite, its left block is not upper triangular
            with last row ``(0, 0, 1)``, ``fx`` / ``fy`` are not positive, or the size is not
            positive.
    """

    P: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        P = np.array(self.P, dtype=np.float64, copy=True)
        if P.shape != (3, 4) or not np.isfinite(P).all():
            raise ValueError(f"P must be a finite (3, 4) matrix, got shape {P.shape}")
        if abs(P[1, 0]) > 1e-9 or np.abs(P[2, :3] - (0.0, 0.0, 1.0)).max() > 1e-9:
            raise ValueError(
                f"P must be K [I | t] with K upper triangular, last row (0, 0, 1): {P}"
            )
        if P[0, 0] <= 0 or P[1, 1] <= 0:
            raise ValueError(f"P must have positive focal lengths, got fx={P[0, 0]}, fy={P[1, 1]}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"image size must be positive, got {self.width} x {self.height}")
        P.setflags(write=False)
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_intrinsics(cls, K: np.ndarray, width: int, height: int) -> PinholeCamera:
        """Camera with ``P = [K | 0]`` (e.g. from a ROS ``CameraInfo.k``); ``K`` is ``(3, 3)``."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K must be (3, 3), got {K.shape}")
        return cls(np.concatenate([K, np.zeros((3, 1))], axis=1), width, height)

    # -- intrinsics ------------------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """``float64 (3, 3)`` intrinsic matrix (the left block of ``P``)."""
        return self.P[:, :3].copy()

    @property
    def fx(self) -> float:
        return float(self.P[0, 0])

    @property
    def fy(self) -> float:
        return float(self.P[1, 1])

    @property
    def cx(self) -> float:
        return float(self.P[0, 2])

    @property
    def cy(self) -> float:
        return float(self.P[1, 2])

    @property
    def baseline(self) -> np.ndarray:
        """``t = K^-1 P[:, 3]`` (metres, optical frame): ``P = K [I | t]``; ``-t`` is the centre."""
        return np.asarray(np.linalg.solve(self.K, self.P[:, 3]))

    def _p(self, like: Tensor) -> Tensor:
        return torch.tensor(self.P, dtype=like.dtype, device=like.device)

    # -- projection ------------------------------------------------------------------------------
    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Project optical-frame points to pixels.

        Args:
            points: ``(..., 3)`` floating tensor, metres, optical frame.

        Returns:
            ``(uv, depth)``: ``(..., 2)`` pixels and ``(...)`` depth = the points' ``z``
            (metres). Points with ``w = z + t_z <= 0`` (behind the camera) give non-finite or
            mirrored pixels; check ``depth`` before use. Differentiable.

        Raises:
            TypeError / ValueError: see the module docstring.
        """
        _check_last(points, 3, "points")
        P = self._p(points)
        h = points @ P[:, :3].T + P[:, 3]
        return h[..., :2] / h[..., 2:3], points[..., 2]

    def unproject(self, uv: Tensor, depth: Tensor) -> Tensor:
        """Inverse of :meth:`project`: the optical-frame point at pixel ``uv`` with ``z = depth``.

        Args:
            uv: ``(..., 2)`` pixels. depth: ``(...)`` metres (broadcastable).

        Returns:
            ``(..., 3)`` points, metres, optical frame; differentiable.

        Raises:
            TypeError / ValueError: see the module docstring.
        """
        _check_last(uv, 2, "uv")
        P = self._p(uv)
        w = depth + P[2, 3]
        rhs = torch.stack([uv[..., 0] * w, uv[..., 1] * w, w], dim=-1) - P[:, 3]
        y = (rhs[..., 1] - P[1, 2] * depth) / P[1, 1]
        x = (rhs[..., 0] - P[0, 1] * y - P[0, 2] * depth) / P[0, 0]
        return torch.stack([x, y, depth.expand_as(x)], dim=-1)

    def rays(self, uv: Tensor) -> tuple[Tensor, Tensor]:
        """Viewing rays through pixels.

        Args:
            uv: ``(..., 2)`` pixels.

        Returns:
            ``(origin, direction)``: ``(3,)`` camera centre ``-t`` (metres, optical frame) and
            ``(..., 3)`` unit directions with positive ``z``; the point at depth ``z`` is
            ``origin + direction * (z - origin_z) / direction_z``.

        Raises:
            TypeError / ValueError: see the module docstring.
        """
        _check_last(uv, 2, "uv")
        origin = -torch.as_tensor(self.baseline, dtype=uv.dtype, device=uv.device)
        d = self.unproject(uv, torch.ones_like(uv[..., 0]) + origin[2]) - origin
        return origin, d / torch.linalg.vector_norm(d, dim=-1, keepdim=True)

    # -- image transforms ------------------------------------------------------------------------
    def transformed(self, affine: np.ndarray, width: int, height: int) -> PinholeCamera:
        """Camera of the image warped by the pixel map ``[u', v', 1] = affine [u, v, 1]``.

        Args:
            affine: ``(3, 3)`` pixel map with zero shear / rotation terms and positive scales.
            width, height: size of the output image in pixels.

        Raises:
            ValueError: a malformed map (shear, rotation, non-positive scale).
        """
        A = np.asarray(affine, dtype=np.float64)
        if A.shape != (3, 3) or A[0, 1] or A[1, 0] or np.any(A[2] != (0, 0, 1)):
            raise ValueError(f"affine must be a (3, 3) scale + translation map, got {A}")
        if A[0, 0] <= 0 or A[1, 1] <= 0:
            raise ValueError("affine scales must be positive (use flipped() for mirroring)")
        return PinholeCamera(A @ self.P, width, height)

    def resized(self, width: int, height: int) -> PinholeCamera:
        """Camera of the image resized to ``width x height`` (pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        A = np.array([[sx, 0, 0.5 * (sx - 1)], [0, sy, 0.5 * (sy - 1)], [0, 0, 1.0]])
        return self.transformed(A, width, height)

    def cropped(self, left: int, top: int, width: int, height: int) -> PinholeCamera:
        """Camera of the crop whose top-left pixel is ``(left, top)`` (negative = padding)."""
        A = np.array([[1.0, 0, -left], [0, 1.0, -top], [0, 0, 1.0]])
        return self.transformed(A, width, height)

    def letterbox(self, width: int = 1280, height: int = 384, center: bool = True) -> Letterbox:
        """Resize keeping the aspect ratio to fit ``width x height``, pad the rest.

        Args:
            width, height: canvas size in pixels (default 1280 x 384, the LeAD-M3D input).
            center: centre the image in the canvas (else top-left).

        Returns:
            The :class:`Letterbox` parameters (the resized size is rounded to whole pixels; its
            exact per-axis factors are used).

        Raises:
            ValueError: non-positive canvas size.
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"letterbox size must be positive, got {width} x {height}")
        s = min(width / self.width, height / self.height)
        nw = min(width, max(1, round(self.width * s)))
        nh = min(height, max(1, round(self.height * s)))
        left, top = ((width - nw) // 2, (height - nh) // 2) if center else (0, 0)
        return Letterbox(nw / self.width, nh / self.height, nw, nh, left, top, width, height)

    def letterboxed(self, box: Letterbox) -> PinholeCamera:
        """Camera of the letterboxed image (see :meth:`letterbox`)."""
        return self.transformed(box.affine(), box.width, box.height)

    def flipped(self) -> PinholeCamera:
        """Camera of the horizontally flipped image, for the mirrored world ``x -> -x``.

        ``P' = F P D`` with ``F: u -> W - 1 - u`` and ``D = diag(-1, 1, 1, 1)``: the point
        ``(-x, y, z)`` projects with ``P'`` to ``W - 1 - u`` where ``(x, y, z)`` projects to
        ``u`` with ``P``. Objects flip with ``x -> -x``, ``ry -> pi - ry``, ``alpha -> pi - alpha``.
        """
        F = np.array([[-1.0, 0, self.width - 1], [0, 1.0, 0], [0, 0, 1.0]])
        return PinholeCamera(F @ self.P @ np.diag([-1.0, 1, 1, 1]), self.width, self.height)


def depth_from_height(height_m: Tensor, height_px: Tensor, fy: float) -> Tensor:
    """Depth of an upright object of known height from its image height: ``z = fy * H / h``.

    Pinhole geometry for an object facing the camera (our formulation; exact for a vertical
    segment centred on the optical axis row, an approximation elsewhere).

    Args:
        height_m: ``(...)`` object height, metres. height_px: ``(...)`` image height, pixels.
        fy: vertical focal length, pixels.

    Returns:
        ``(...)`` depth in metres (inf where ``height_px == 0``).
    """
    return fy * height_m / height_px


def rotation_y_to_alpha(rotation_y: Tensor, x: Tensor, z: Tensor) -> Tensor:
    """Observation angle ``alpha = ry - atan2(x, z)`` wrapped to ``[-pi, pi)`` (KITTI devkit).

    Args:
        rotation_y, x, z: ``(...)`` yaw about optical +y (rad) and object centre x, z (metres).
    """
    return limit_yaw(rotation_y - torch.atan2(x, z))


def alpha_to_rotation_y(alpha: Tensor, x: Tensor, z: Tensor) -> Tensor:
    """Inverse of :func:`rotation_y_to_alpha`: ``ry = alpha + atan2(x, z)`` in ``[-pi, pi)``."""
    return limit_yaw(alpha + torch.atan2(x, z))


def camera_boxes_to_boxes(cam_boxes: Tensor) -> Tensor:
    """KITTI camera boxes (optical frame) to our boxes in the body frame.

    Args:
        cam_boxes: ``(..., 7) = (x, y, z, l, h, w, ry)``, bottom-face centre in the optical
            frame, metres / radians (module docstring).

    Returns:
        ``(..., 7) = (x, y, z, dx, dy, dz, yaw)`` in the body frame (x forward, y left, z up),
        geometric centre, ``dx = l, dy = w, dz = h``, ``yaw = -ry - pi/2`` wrapped to
        ``[-pi, pi)``; differentiable.

    Raises:
        TypeError / ValueError: see the module docstring.
    """
    _check_last(cam_boxes, 7, "cam_boxes")
    x, y, z, l, h, w, ry = cam_boxes.unbind(-1)
    yaw = limit_yaw(-ry - 0.5 * math.pi)
    return torch.stack([z, -x, -y + 0.5 * h, l, w, h, yaw], dim=-1)


def boxes_to_camera_boxes(boxes: Tensor) -> Tensor:
    """Inverse of :func:`camera_boxes_to_boxes`: body-frame boxes to KITTI camera boxes.

    Args:
        boxes: ``(..., 7)`` our boxes in the body frame.

    Returns:
        ``(..., 7) = (x, y, z, l, h, w, ry)`` (bottom centre, optical frame), ``ry`` in
        ``[-pi, pi)``; differentiable.
    """
    _check_last(boxes, 7, "boxes")
    bx, by, bz, dx, dy, dz, yaw = boxes.unbind(-1)
    ry = limit_yaw(-yaw - 0.5 * math.pi)
    return torch.stack([-by, -bz + 0.5 * dz, bx, dx, dz, dy, ry], dim=-1)


def camera_box_corners(cam_boxes: Tensor) -> Tensor:
    """Corners of KITTI camera boxes in the optical frame.

    Args:
        cam_boxes: ``(..., 7)`` camera boxes (module docstring).

    Returns:
        ``(..., 8, 3)`` metres, optical frame, in the corner order of
        :mod:`sr3d_ros.geometry.boxes` (bottom face 0-3, top face 4-7); differentiable.
    """
    body = box_corners(camera_boxes_to_boxes(cam_boxes))
    R = torch.as_tensor(OPTICAL_TO_BODY, dtype=body.dtype, device=body.device)
    return body @ R  # p_opt = R^T p_body, row vectors: p_body @ R


def corners_to_image_boxes(
    camera: PinholeCamera, corners: Tensor, clip: bool = True, min_depth: float = 0.1
) -> tuple[Tensor, Tensor]:
    """2D boxes enclosing projected 3D corners (e.g. :func:`camera_box_corners`).

    Args:
        camera: the camera. corners: ``(..., C, 3)`` optical-frame points, metres.
        clip: clip the boxes to the image (``[0, W-1] x [0, H-1]``).
        min_depth: corners with ``z < min_depth`` (metres) make the box invalid.

    Returns:
        ``(boxes, valid)``: ``(..., 4) = (x1, y1, x2, y2)`` pixels and ``(...)`` bool, False
        where a corner lies behind ``min_depth`` (its box is then meaningless).
    """
    uv, depth = camera.project(corners)
    lo, hi = uv.amin(dim=-2), uv.amax(dim=-2)
    out = torch.cat([lo, hi], dim=-1)
    if clip:
        size = torch.tensor(
            [camera.width - 1, camera.height - 1] * 2, dtype=out.dtype, device=out.device
        )
        out = torch.minimum(out.clamp(min=0), size)
    return out, (depth >= min_depth).all(dim=-1)


def transform_boxes(boxes: Tensor, transform: np.ndarray) -> Tensor:
    """Move our boxes by a rigid transform that keeps +z (nearly) vertical.

    The centre is transformed exactly; the yaw becomes the heading of the transformed box
    x-axis projected on the new x-y plane; sizes are kept. Tilts of the vertical (e.g. KITTI's
    ~0.5 degree camera-LiDAR tilt) are dropped: boxes stay gravity-aligned (our formulation).

    Args:
        boxes: ``(..., 7)`` our boxes. transform: ``(4, 4)`` or ``(3, 4)`` rigid transform
            ``p_new = R p + t`` (metres).

    Returns:
        ``(..., 7)`` boxes in the new frame, yaw in ``[-pi, pi)``; differentiable.

    Raises:
        TypeError / ValueError: bad boxes or a transform that is not ``(3|4, 4)``.
    """
    _check_last(boxes, 7, "boxes")
    T = np.asarray(transform, dtype=np.float64)
    if T.shape not in ((3, 4), (4, 4)):
        raise ValueError(f"transform must be (4, 4) or (3, 4), got {T.shape}")
    Tt = torch.as_tensor(T[:3], dtype=boxes.dtype, device=boxes.device)
    centre = boxes[..., :3] @ Tt[:, :3].T + Tt[:, 3]
    yaw = boxes[..., 6]
    axis = torch.stack([torch.cos(yaw), torch.sin(yaw), torch.zeros_like(yaw)], dim=-1)
    axis = axis @ Tt[:, :3].T
    new_yaw = limit_yaw(torch.atan2(axis[..., 1], axis[..., 0]))
    return torch.cat([centre, boxes[..., 3:6], new_yaw[..., None]], dim=-1)
