"""Decoding the monocular head into 2D boxes and KITTI camera boxes (our formulation of the
LeAD-M3D / GUPNet-style parametrisation, written once here).

A location with anchor point ``a = (u_a, v_a)`` (network-input pixels) and stride ``s`` predicts

* the 2D box ``(u_a - l, v_a - t, u_a + r, v_a + b)`` from ``box_ltrb``;
* the projected **geometric** centre of the 3D box, ``c = a + s * center_offset``, and its depth
  ``z = exp(log_depth)`` (metres, optical frame): the centre is ``X = z' K^-1 [c, 1] - t`` with
  ``P = K [I | t]`` and ``z' = z + t_z`` (:meth:`sr3d_ros.geometry.camera.PinholeCamera.unproject`);
* dimensions ``(l, h, w) = mean_size[label] * exp(log_dims)``;
* the observation angle ``alpha = atan2(sin, cos)`` of ``alpha_sincos``; the yaw follows from the
  viewing ray of the centre, ``rotation_y = alpha + atan2(x, z)``
  (:func:`sr3d_ros.geometry.camera.alpha_to_rotation_y`).

The camera box is KITTI's ``(x, y, z, l, h, w, ry)`` with ``(x, y, z)`` the **bottom-face**
centre, so ``y = y_centre + h / 2`` (y points down).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...geometry.camera import alpha_to_rotation_y
from .config import KITTI_MEAN_SIZES
from .head import MonoHeadOutputs

__all__ = ["decode_camera_boxes", "decode_image_boxes", "unproject_centers"]

#: log-depth / log-size outputs are clamped here before ``exp`` (e^8 ~ 3 km): no inf.
_MAX_LOG = 8.0


def _projection(intrinsics: Tensor) -> Tensor:
    """``(B, 3, 3)`` K or ``(B, 3, 4)`` P -> ``(B, 3, 4)`` P."""
    if intrinsics.dim() != 3 or intrinsics.shape[1] != 3 or intrinsics.shape[2] not in (3, 4):
        raise ValueError(
            f"intrinsics must be (B, 3, 3) K or (B, 3, 4) P = K [I | t], "
            f"got {tuple(intrinsics.shape)}"
        )
    if intrinsics.shape[2] == 4:
        return intrinsics
    zeros = intrinsics.new_zeros(intrinsics.shape[0], 3, 1)
    return torch.cat([intrinsics, zeros], dim=2)


def unproject_centers(uv: Tensor, depth: Tensor, intrinsics: Tensor) -> Tensor:
    """Optical-frame points at pixels ``uv`` with depth ``z``.

    Args:
        uv: ``(B, N, 2)`` pixels. depth: ``(B, N)`` metres (the points' ``z``).
        intrinsics: ``(B, 3, 3)`` K (``P = [K | 0]``) or ``(B, 3, 4)`` P = K [I | t].

    Returns:
        ``(B, N, 3)`` metres, optical frame; differentiable.

    Raises:
        ValueError: malformed intrinsics.
    """
    P = _projection(intrinsics).to(uv.dtype)
    K = P[:, :, :3]
    t = torch.linalg.solve(K, P[:, :, 3:]).squeeze(-1)  # (B, 3)
    w = depth + t[:, None, 2]
    rays = torch.cat([uv, torch.ones_like(uv[..., :1])], dim=-1) @ torch.linalg.inv(K).transpose(
        1, 2
    )
    out: Tensor = rays * w[..., None] - t[:, None, :]
    return out


def decode_image_boxes(head: MonoHeadOutputs, anchor_points: Tensor) -> Tensor:
    """2D boxes of every location.

    Args:
        head: :class:`MonoHeadOutputs` ``(B, A, ...)`` (or a gathered ``(B, K, ...)``).
        anchor_points: ``(A, 2)`` or ``(B, A, 2)`` pixels of the same locations.

    Returns:
        ``(B, A, 4)`` float ``(x1, y1, x2, y2)`` network-input pixels; differentiable.
    """
    lt, rb = head.box_ltrb[..., :2], head.box_ltrb[..., 2:]
    return torch.cat([anchor_points - lt, anchor_points + rb], dim=-1)


def decode_camera_boxes(
    head: MonoHeadOutputs,
    anchor_points: Tensor,
    strides: Tensor,
    labels: Tensor,
    intrinsics: Tensor,
    mean_sizes: Tensor | None = None,
) -> Tensor:
    """KITTI camera boxes of every location (module docstring: our formulation).

    Args:
        head: :class:`MonoHeadOutputs` ``(B, A, ...)`` (or a gathered ``(B, K, ...)``).
        anchor_points: ``(A, 2)`` or ``(B, A, 2)`` network-input pixels.
        strides: ``(A,)`` or ``(B, A)`` stride of each location, pixels.
        labels: ``(B, A)`` int64 class of each location (selects the mean size).
        intrinsics: ``(B, 3, 3)`` K or ``(B, 3, 4)`` P = K [I | t] of the network input (i.e.
            the letterboxed camera), pixels.
        mean_sizes: ``(C, 3)`` per-class mean ``(l, h, w)`` metres (default: KITTI's for Car,
            Pedestrian, Cyclist; pass ``MonoModelConfig.mean_sizes`` for other classes).

    Returns:
        ``(B, A, 7)`` float ``(x, y, z, l, h, w, ry)``: bottom-face centre in the optical frame of
        ``intrinsics`` (metres), sizes (metres), ``ry`` in ``[-pi, pi)``; differentiable.

    Raises:
        ValueError: malformed intrinsics or labels out of range.
    """
    dtype, device = head.log_depth.dtype, head.log_depth.device
    sizes = torch.as_tensor(
        KITTI_MEAN_SIZES if mean_sizes is None else mean_sizes, dtype=dtype, device=device
    )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= sizes.shape[0]):
        raise ValueError(
            f"labels must be in [0, {sizes.shape[0]}), got {labels.min()}..{labels.max()}"
        )
    uv = anchor_points + head.center_offset * strides[..., None]
    z = head.log_depth.clamp(max=_MAX_LOG).exp()
    centre = unproject_centers(uv, z, intrinsics.to(dtype))
    dims = sizes[labels] * head.log_dims.clamp(max=_MAX_LOG).exp()
    alpha = torch.atan2(head.alpha_sincos[..., 0], head.alpha_sincos[..., 1])
    x, y, z = centre.unbind(-1)
    ry = alpha_to_rotation_y(alpha, x, z)
    h = dims[..., 1]
    return torch.stack([x, y + 0.5 * h, z, dims[..., 0], h, dims[..., 2], ry], dim=-1)
