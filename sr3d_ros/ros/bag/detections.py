"""``vision_msgs/Detection3DArray`` read as full box poses (centre, orientation, size), not
only as upright yaw boxes, so that boxes published in any frame (a camera optical frame, a
tilted sensor) can be moved between frames exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sr3d_ros.frames import matrix_from_quaternion, quaternion_from_matrix

__all__ = ["DetectionPoses", "detection_poses", "upright_boxes"]


@dataclass
class DetectionPoses:
    """The boxes of a Detection3DArray, float64, in the message's frame.

    Attributes:
        centers: ``(M, 3)`` bbox centres, metres. quaternions: ``(M, 4)`` ``(x, y, z, w)`` box
            orientations (box frame -> message frame). sizes: ``(M, 3)`` extents along the box's
            local x, y, z, metres. scores: ``(M,)`` score of the best hypothesis (0 without one).
        names: M ``class_id`` of the best hypothesis (``""`` without one).
        frame_id / stamp_ns: the array's header.
    """

    centers: np.ndarray
    quaternions: np.ndarray
    sizes: np.ndarray
    scores: np.ndarray
    names: list[str] = field(default_factory=list)
    frame_id: str = ""
    stamp_ns: int = 0

    def __len__(self) -> int:
        return len(self.names)

    @property
    def rotations(self) -> np.ndarray:
        """``(M, 3, 3)`` box axes as columns (:func:`sr3d_ros.frames.matrix_from_quaternion`)."""
        return matrix_from_quaternion(self.quaternions).reshape(-1, 3, 3)

    def transformed(self, T: np.ndarray, frame_id: str) -> DetectionPoses:
        """The same boxes in another frame: ``T`` ``(4, 4)`` maps this frame to ``frame_id``
        (centres ``R c + t``, orientations ``R R_box``); sizes, scores, names kept."""
        T = np.asarray(T, np.float64)
        rots = np.einsum("ij,mjk->mik", T[:3, :3], self.rotations)
        return DetectionPoses(
            self.centers @ T[:3, :3].T + T[:3, 3],
            quaternion_from_matrix(rots).reshape(-1, 4),
            self.sizes.copy(),
            self.scores.copy(),
            list(self.names),
            frame_id,
            self.stamp_ns,
        )

    def upright(self) -> tuple[np.ndarray, float]:
        """:func:`upright_boxes` of these poses."""
        return upright_boxes(self.centers, self.rotations, self.sizes)


def detection_poses(msg: Any) -> DetectionPoses:
    """Box poses of a ``vision_msgs/Detection3DArray`` (rclpy, rosbags or duck-typed).

    Raises:
        ValueError: not a Detection3DArray (missing attributes).
    """
    try:
        dets = list(msg.detections)
        n = len(dets)
        c, q, s = np.zeros((n, 3)), np.zeros((n, 4)), np.zeros((n, 3))
        scores = np.zeros(n)
        names: list[str] = []
        for i, d in enumerate(dets):
            p, o, z = d.bbox.center.position, d.bbox.center.orientation, d.bbox.size
            c[i], q[i], s[i] = (p.x, p.y, p.z), (o.x, o.y, o.z, o.w), (z.x, z.y, z.z)
            if len(d.results):
                best = max(d.results, key=lambda r: r.hypothesis.score)
                scores[i] = best.hypothesis.score
                names.append(str(best.hypothesis.class_id))
            else:
                names.append("")
        header = getattr(msg, "header", None)  # duck-typed arrays may come without one
        if header is None:
            return DetectionPoses(c, q, s, scores, names)
        stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        return DetectionPoses(c, q, s, scores, names, str(header.frame_id), stamp)
    except AttributeError as exc:
        raise ValueError(f"not a Detection3DArray message: {exc}") from None


def upright_boxes(
    centers: np.ndarray, rotations: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, float]:
    """Box poses in a gravity-aligned frame (z up) as our boxes ``(x, y, z, dx, dy, dz, yaw)``.

    For each box, the local axis closest to the frame's z axis is the vertical one (its size
    becomes ``dz``); of the two others, the first in local order becomes the box x axis (``dx``,
    ``yaw`` = its heading in the xy plane) and the second ``dy``. Upright boxes map exactly
    (e.g. KITTI camera-frame boxes, whose height is the local y axis, give ``dx = l``,
    ``dy = w``, ``dz = h``); a tilted box keeps its centre and sizes and loses its tilt (our
    formulation).

    Args:
        centers: ``(M, 3)``. rotations: ``(M, 3, 3)`` box axes as columns. sizes: ``(M, 3)``
            along the local axes. Metres, in the gravity-aligned frame.

    Returns:
        ``(boxes float64 (M, 7), max_tilt)``: ``max_tilt`` the largest angle (radians) between a
        box's vertical axis and +z (0 for none).
    """
    c = np.asarray(centers, np.float64).reshape(-1, 3)
    R = np.asarray(rotations, np.float64).reshape(-1, 3, 3)
    s = np.asarray(sizes, np.float64).reshape(-1, 3)
    m = len(c)
    if m == 0:
        return np.zeros((0, 7)), 0.0
    vert = np.abs(R[:, 2, :]).argmax(axis=1)  # (M,) local axis most aligned with z
    others = np.array([[1, 2], [0, 2], [0, 1]])[vert]  # (M, 2) remaining local axes, in order
    rows = np.arange(m)
    ax = R[rows, :, others[:, 0]]  # (M, 3) the box x axis
    out = np.empty((m, 7))
    out[:, :3] = c
    out[:, 3] = s[rows, others[:, 0]]
    out[:, 4] = s[rows, others[:, 1]]
    out[:, 5] = s[rows, vert]
    out[:, 6] = np.arctan2(ax[:, 1], ax[:, 0])
    tilt = float(np.arccos(np.clip(np.abs(R[rows, 2, vert]), 0.0, 1.0)).max())
    return out, tilt
