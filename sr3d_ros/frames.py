"""Rigid frames for the ROS node, in plain numpy (no ROS, no torch).

(Above 400 lines on purpose: one job, the input <-> gravity frame mapping of points and boxes,
whose conventions must stay together; about half of the file is docstrings.)

The detector wants a *gravity-aligned* cloud (z up, metres). A sensor usually delivers its cloud
in its own frame (a tilted RGB-D camera, a LiDAR mounted at an angle). The node therefore takes a
static rigid transform ``T`` from the **input frame** (the ``frame_id`` of the incoming
PointCloud2) to a **gravity-aligned frame**::

    p_gravity = R @ p_input + t          T = [[R, t], [0, 0, 0, 1]]   (4 x 4, row-major)

It applies ``T`` to the points, runs the detector, and maps the boxes back with ``T^-1`` so that
detections are published in the input cloud's frame:

* box centre: ``c_input = R^T (c_gravity - t)``;
* box orientation: the box frame in the gravity frame is ``Rz(yaw)``; in the input frame it is
  ``R^T Rz(yaw)``. When ``R`` is a rotation about z only (``R = Rz(a)``), that is ``Rz(yaw - a)``:
  the box stays upright and its yaw is simply ``yaw - a``. For any other ``R`` (a tilted camera)
  the box is NOT upright in the input frame; its orientation is then the quaternion of the full
  rotation ``R^T Rz(yaw)`` and a single yaw angle cannot describe it.

Conventions: quaternions are ``(x, y, z, w)`` (the geometry_msgs/Quaternion field order), unit
norm, ``w >= 0``; roll/pitch/yaw are the ROS (REP 103) fixed-axis angles,
``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``; angles in radians, lengths in metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BOX_EDGES",
    "BoxPoses",
    "box_corners",
    "boxes_from_gravity",
    "is_z_rotation",
    "make_transform",
    "matrix_from_quaternion",
    "quaternion_from_matrix",
    "quaternion_from_yaw",
    "random_subsample",
    "rotation_from_rpy",
    "rotation_z",
    "transform_from_params",
    "transform_points",
    "validate_transform",
    "yaw_from_matrix",
    "yaw_from_quaternion",
]

#: The 12 edges of a box as index pairs into the 8 corners of :func:`box_corners` (corner ``k``
#: has local signs ``(sx, sy, sz) = (+-1, +-1, +-1)`` from the bits of ``k``: bit 0 -> x,
#: bit 1 -> y, bit 2 -> z, 0 = minus); an edge joins two corners differing in one bit.
BOX_EDGES: tuple[tuple[int, int], ...] = tuple(
    (a, a | (1 << axis)) for axis in range(3) for a in range(8) if not a & (1 << axis)
)
_CORNER_SIGNS = np.array(
    [[(1 if k & 1 else -1), (1 if k & 2 else -1), (1 if k & 4 else -1)] for k in range(8)],
    dtype=np.float64,
)


def rotation_z(angle: float | np.ndarray) -> np.ndarray:
    """Rotation matrices about +z.

    Args:
        angle: scalar or ``(M,)`` radians (counter-clockwise seen from +z).

    Returns:
        ``float64 (3, 3)`` for a scalar, ``(M, 3, 3)`` for an array.
    """
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    out[..., 0, 0] = c
    out[..., 0, 1] = -s
    out[..., 1, 0] = s
    out[..., 1, 1] = c
    out[..., 2, 2] = 1.0
    return out


def rotation_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """``float64 (3, 3)`` rotation ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (ROS fixed-axis RPY,
    radians)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]], dtype=np.float64)
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]], dtype=np.float64)
    return rotation_z(yaw) @ ry @ rx


def make_transform(rotation: np.ndarray, translation: Sequence[float] | np.ndarray) -> np.ndarray:
    """``float64 (4, 4)`` homogeneous transform from a ``(3, 3)`` rotation and a ``(3,)``
    translation (metres)."""
    t = np.eye(4)
    t[:3, :3] = np.asarray(rotation, dtype=np.float64)
    t[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return t


def validate_transform(matrix: np.ndarray | Sequence[float], tol: float = 1e-4) -> np.ndarray:
    """Check that ``matrix`` is a rigid transform; return it as ``float64 (4, 4)``.

    Args:
        matrix: ``(4, 4)`` or 16 values in row-major order.
        tol: tolerance on ``R^T R = I``, ``det R = 1`` and the last row ``(0, 0, 0, 1)``.

    Raises:
        ValueError: wrong size, non-finite values, a non-orthonormal / reflecting rotation, or a
            last row that is not ``(0, 0, 0, 1)`` (the message says which).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.size != 16:
        raise ValueError(f"a transform needs 16 values (4x4 row-major), got {m.size}")
    m = m.reshape(4, 4)
    if not np.isfinite(m).all():
        raise ValueError("transform has non-finite values")
    if not np.allclose(m[3], (0.0, 0.0, 0.0, 1.0), atol=tol):
        raise ValueError(f"transform's last row must be (0, 0, 0, 1), got {m[3].tolist()}")
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=tol):
        raise ValueError("transform's 3x3 block is not orthonormal (not a rotation)")
    if abs(np.linalg.det(r) - 1.0) > tol:
        raise ValueError("transform's 3x3 block has determinant -1 (a reflection, not a rotation)")
    return m


def transform_from_params(
    matrix: Sequence[float] | np.ndarray | None = None,
    rpy: Sequence[float] | None = None,
    translation: Sequence[float] | None = None,
) -> np.ndarray:
    """The input -> gravity transform from node parameters.

    Args:
        matrix: 16 values, row-major 4x4; when given (non-empty) it wins over ``rpy`` /
            ``translation``.
        rpy: ``(roll, pitch, yaw)`` radians (default zeros).
        translation: ``(x, y, z)`` metres (default zeros).

    Returns:
        ``float64 (4, 4)`` rigid transform (identity when nothing is given).

    Raises:
        ValueError: wrong lengths, non-finite values or a non-rigid matrix.
    """
    if matrix is not None and len(matrix) > 0:
        return validate_transform(matrix)
    rpy_v = np.zeros(3) if rpy is None or len(rpy) == 0 else np.asarray(rpy, dtype=np.float64)
    tr_v = (
        np.zeros(3)
        if translation is None or len(translation) == 0
        else np.asarray(translation, dtype=np.float64)
    )
    if rpy_v.shape != (3,):
        raise ValueError(f"rpy needs 3 values (roll, pitch, yaw), got {rpy_v.size}")
    if tr_v.shape != (3,):
        raise ValueError(f"translation needs 3 values (x, y, z), got {tr_v.size}")
    if not (np.isfinite(rpy_v).all() and np.isfinite(tr_v).all()):
        raise ValueError("rpy / translation have non-finite values")
    return make_transform(rotation_from_rpy(*rpy_v), tr_v)


def is_z_rotation(rotation: np.ndarray, tol: float = 1e-6) -> bool:
    """True when a ``(3, 3)`` rotation is a rotation about +z only (``R[2] == (0, 0, 1)``)."""
    r = np.asarray(rotation, dtype=np.float64)
    return bool(
        np.allclose(r[2], (0.0, 0.0, 1.0), atol=tol) and np.allclose(r[:2, 2], 0.0, atol=tol)
    )


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply a rigid transform to the xyz columns of a cloud.

    Args:
        points: ``(N, C >= 3)`` float array; columns 3.. (colours) are passed through.
        transform: ``(4, 4)`` rigid transform (``p' = R p + t``).

    Returns:
        ``float32 (N, C)`` new array (the input is not modified). The product is computed in
        float32 (float32 coordinates carry ~1e-7 relative error anyway).

    Raises:
        ValueError: ``points`` is not ``(N, >= 3)``.
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"points must be (N, >=3), got {pts.shape}")
    t = np.asarray(transform, dtype=np.float32)
    out = np.array(pts, dtype=np.float32, copy=True)
    out[:, :3] = pts[:, :3].astype(np.float32, copy=False) @ t[:3, :3].T
    out[:, :3] += t[:3, 3]
    return out


def quaternion_from_yaw(yaw: np.ndarray | float) -> np.ndarray:
    """Quaternions ``(x, y, z, w)`` of rotations by ``yaw`` about +z:
    ``(0, 0, sin(yaw/2), cos(yaw/2))``.

    Args:
        yaw: scalar or ``(M,)`` radians.

    Returns:
        ``float64 (..., 4)`` unit quaternions with ``w >= 0``.
    """
    h = 0.5 * np.asarray(yaw, dtype=np.float64)
    q = np.zeros(h.shape + (4,))
    q[..., 2] = np.sin(h)
    q[..., 3] = np.cos(h)
    neg = q[..., 3] < 0
    q[neg] *= -1.0
    return q


def quaternion_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """Quaternions ``(x, y, z, w)`` of rotation matrices (Shepperd's method, branch per matrix).

    Args:
        rotation: ``(..., 3, 3)`` proper rotations.

    Returns:
        ``float64 (..., 4)`` unit quaternions with ``w >= 0``.
    """
    r = np.asarray(rotation, dtype=np.float64)
    shape = r.shape[:-2]
    r = r.reshape(-1, 3, 3)
    q = np.empty((len(r), 4))
    tr = r[:, 0, 0] + r[:, 1, 1] + r[:, 2, 2]
    diag = np.stack([r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]], axis=1)
    # 0: w largest, 1..3: x, y, z largest
    case = np.where(tr > diag.max(axis=1), 0, 1 + diag.argmax(axis=1))
    for c in range(4):
        m = case == c
        if not m.any():
            continue
        rr = r[m]
        if c == 0:
            s = 2.0 * np.sqrt(1.0 + tr[m])
            q[m] = np.stack(
                [
                    (rr[:, 2, 1] - rr[:, 1, 2]) / s,
                    (rr[:, 0, 2] - rr[:, 2, 0]) / s,
                    (rr[:, 1, 0] - rr[:, 0, 1]) / s,
                    0.25 * s,
                ],
                axis=1,
            )
        else:
            i = c - 1
            j, k = (i + 1) % 3, (i + 2) % 3
            s = 2.0 * np.sqrt(np.maximum(1.0 + rr[:, i, i] - rr[:, j, j] - rr[:, k, k], 1e-300))
            v = np.empty((len(rr), 4))
            v[:, i] = 0.25 * s
            v[:, j] = (rr[:, j, i] + rr[:, i, j]) / s
            v[:, k] = (rr[:, k, i] + rr[:, i, k]) / s
            v[:, 3] = (rr[:, k, j] - rr[:, j, k]) / s
            q[m] = v
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 3] < 0] *= -1.0
    return q.reshape(shape + (4,))


def matrix_from_quaternion(quaternion: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` = ``(x, y, z, w)``.

    The quaternions are normalised first; a zero quaternion gives the identity (a
    geometry_msgs/Quaternion left at its defaults in some tools is all zeros).
    """
    q = np.asarray(quaternion, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    ident = np.zeros_like(q)
    ident[..., 3] = 1.0
    q = np.where(n > 1e-12, q / np.where(n > 1e-12, n, 1.0), ident)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(q.shape[:-1] + (3, 3))
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - z * w)
    out[..., 0, 2] = 2 * (x * z + y * w)
    out[..., 1, 0] = 2 * (x * y + z * w)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - x * w)
    out[..., 2, 0] = 2 * (x * z - y * w)
    out[..., 2, 1] = 2 * (y * z + x * w)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def yaw_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """Heading of the rotated x axis in the xy plane: ``atan2(R[1, 0], R[0, 0])``, ``(...,)``
    radians.

    Exact for rotations about z; for tilted boxes it is the yaw of the box x axis projected onto
    the xy plane (the best a ``(x, y, z, dx, dy, dz, yaw)`` box can say).
    """
    r = np.asarray(rotation, dtype=np.float64)
    return np.arctan2(r[..., 1, 0], r[..., 0, 0])


def yaw_from_quaternion(quaternion: np.ndarray) -> np.ndarray:
    """:func:`yaw_from_matrix` of ``(..., 4)`` ``(x, y, z, w)`` quaternions; ``(...,)`` radians."""
    return yaw_from_matrix(matrix_from_quaternion(quaternion))


@dataclass
class BoxPoses:
    """Oriented boxes in the frame they are published in.

    Attributes:
        centers: ``float64 (M, 3)`` geometric centres, metres.
        sizes: ``float64 (M, 3)`` full extents ``(dx, dy, dz)`` along the box axes, metres.
        rotations: ``float64 (M, 3, 3)`` box axes as columns (box frame -> this frame).
        quaternions: ``float64 (M, 4)`` the same rotations as ``(x, y, z, w)``, ``w >= 0``.
        upright: True when every rotation is about z only (then ``yaw`` is exact).
    """

    centers: np.ndarray
    sizes: np.ndarray
    rotations: np.ndarray
    quaternions: np.ndarray
    upright: bool = True

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    @property
    def yaw(self) -> np.ndarray:
        """``float64 (M,)`` heading of each box's x axis (exact when :attr:`upright`)."""
        return yaw_from_matrix(self.rotations)

    def as_boxes(self) -> np.ndarray:
        """``float32 (M, 7)`` ``(x, y, z, dx, dy, dz, yaw)`` (loses tilt when not upright)."""
        out = np.zeros((len(self), 7), np.float32)
        out[:, :3] = self.centers
        out[:, 3:6] = self.sizes
        out[:, 6] = self.yaw
        return out

    @staticmethod
    def from_boxes(boxes: np.ndarray) -> BoxPoses:
        """Upright poses of ``(M, 7)`` boxes ``(x, y, z, dx, dy, dz, yaw)`` (float, any dtype).

        Raises:
            ValueError: ``boxes`` is not ``(M, 7)``.
        """
        b = np.asarray(boxes, dtype=np.float64)
        if b.size == 0:
            b = b.reshape(0, 7)
        if b.ndim != 2 or b.shape[1] != 7:
            raise ValueError(f"boxes must be (M, 7), got {b.shape}")
        return BoxPoses(
            b[:, :3].copy(),
            b[:, 3:6].copy(),
            rotation_z(b[:, 6]).reshape(-1, 3, 3),
            quaternion_from_yaw(b[:, 6]).reshape(-1, 4),
            True,
        )


def boxes_from_gravity(boxes: np.ndarray, transform: np.ndarray | None) -> BoxPoses:
    """Map boxes detected in the gravity frame back into the input frame.

    Args:
        boxes: ``(M, 7)`` ``(x, y, z, dx, dy, dz, yaw)`` in the gravity-aligned frame.
        transform: the ``(4, 4)`` input -> gravity transform the points were moved with
            (``None`` or identity: boxes are returned as they are).

    Returns:
        :class:`BoxPoses` in the input frame. If the rotation is about z only, the boxes stay
        upright and only the yaw changes (``yaw - a``); otherwise each orientation is the full
        rotation ``R^T Rz(yaw)`` (``upright`` False).
    """
    poses = BoxPoses.from_boxes(boxes)
    if transform is None:
        return poses
    t = np.asarray(transform, dtype=np.float64)
    if np.allclose(t, np.eye(4), atol=0.0):
        return poses
    r, tr = t[:3, :3], t[:3, 3]
    centers = (poses.centers - tr) @ r  # row-vector form of R^T (c - t)
    if is_z_rotation(r):
        a = np.arctan2(r[1, 0], r[0, 0])
        yaw = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)[:, 6] - a
        return BoxPoses(
            centers,
            poses.sizes,
            rotation_z(yaw).reshape(-1, 3, 3),
            quaternion_from_yaw(yaw).reshape(-1, 4),
            True,
        )
    rots = np.einsum("ji,mjk->mik", r, poses.rotations)  # R^T @ Rz(yaw)
    return BoxPoses(centers, poses.sizes, rots, quaternion_from_matrix(rots).reshape(-1, 4), False)


def box_corners(poses: BoxPoses) -> np.ndarray:
    """The 8 corners of each box, ``float64 (M, 8, 3)``; corner ``k`` as documented for
    :data:`BOX_EDGES`."""
    half = 0.5 * poses.sizes[:, None, :] * _CORNER_SIGNS[None]  # (M, 8, 3) local
    rotated: np.ndarray = np.einsum("mij,mkj->mki", poses.rotations, half)
    corners: np.ndarray = rotated + poses.centers[:, None, :]
    return corners


def random_subsample(
    points: np.ndarray, max_points: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Keep at most ``max_points`` rows, chosen uniformly at random without replacement.

    Args:
        points: ``(N, C)`` array.
        max_points: the cap (``<= 0`` means no cap).
        rng: random generator (default: a fresh ``default_rng(0)``, i.e. deterministic).

    Returns:
        ``points`` itself when ``N <= max_points``, else a new ``(max_points, C)`` array whose
        rows keep their original order.
    """
    n = len(points)
    if max_points <= 0 or n <= max_points:
        return points
    rng = rng if rng is not None else np.random.default_rng(0)
    idx = np.sort(rng.choice(n, size=int(max_points), replace=False))
    return points[idx]
