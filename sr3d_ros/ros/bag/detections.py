"""``vision_msgs/Detection3DArray`` read as full box poses (centre, orientation, size), not
only as upright yaw boxes, so that boxes published in any frame (a camera optical frame, a
tilted sensor) can be moved between frames exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sr3d_ros.frames import matrix_from_quaternion

__all__ = ["DetectionPoses", "detection_poses"]


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
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        return DetectionPoses(c, q, s, scores, names, str(msg.header.frame_id), stamp)
    except AttributeError as exc:
        raise ValueError(f"not a Detection3DArray message: {exc}") from None
