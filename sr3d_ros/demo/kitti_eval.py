"""Demo, KITTI part, stage 4: the image node's recorded detections -> KITTI objects -> AP|R40.

The node publishes each image's detections in the image's optical frame (x right, y down,
z forward; the frame KITTI's ``P2`` projects from, i.e. the rectified camera-0 frame of the
labels): geometric centre, sizes (length, width, height) along the box axes, the box z axis up
(-y). :func:`detections_to_kitti` turns one recorded Detection3DArray back into KITTI objects
(bottom-centre location, ``(h, w, l)``, ``rotation_y``, ``alpha = ry - atan2(x, z)``, the 2D box
of the projected corners clipped to the image, score); :func:`evaluate_frames` scores them with
the KITTI evaluator (:func:`sr3d_training.evaluation.evaluate_kitti`, AP|R40 in percent)
against the frames' labels read from the data folder (they carry truncation, occlusion and
DontCare regions, which the Detection3DArray ground truth in the bag does not).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["KittiEvaluation", "KittiResult", "detections_to_kitti", "evaluate_frames"]

logger = logging.getLogger(__name__)


class KittiResult(Protocol):
    """What the demo uses of :class:`sr3d_training.evaluation.KittiEvalResult`."""

    @property
    def ap40(self) -> dict[str, np.ndarray]: ...
    def format_table(self, recall_points: int = 40) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


def detections_to_kitti(msg: Any, P: np.ndarray, width: int, height: int) -> Any:
    """One image's Detection3DArray (optical frame) -> ``KittiObjects`` (detections).

    Args:
        msg: ``vision_msgs/Detection3DArray`` (rclpy or rosbags message) from the image node.
        P: ``(3, 4)`` projection of the frame the boxes are in (KITTI ``P2``).
        width, height: image size in pixels (2D boxes are clipped to it).

    Returns:
        :class:`sr3d_training.datasets.kitti.KittiObjects`: type = the best hypothesis's
        ``class_id``, truncated / occluded 0, alpha, 2D box (x1, y1, x2, y2) pixels, dimensions
        (h, w, l) metres, location = bottom-face centre (optical frame, metres), rotation_y
        (radians, about +y; from the box length axis), score.
    """
    import torch

    from sr3d_ros.frames import matrix_from_quaternion
    from sr3d_ros.geometry.camera import (
        PinholeCamera,
        camera_box_corners,
        corners_to_image_boxes,
        rotation_y_to_alpha,
    )
    from sr3d_training.datasets.kitti import KittiObjects

    n = len(msg.detections)
    centre, size, quat = np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 4))
    names, scores = [], np.zeros(n)
    for i, d in enumerate(msg.detections):
        c, s, q = d.bbox.center.position, d.bbox.size, d.bbox.center.orientation
        centre[i], size[i], quat[i] = (c.x, c.y, c.z), (s.x, s.y, s.z), (q.x, q.y, q.z, q.w)
        best = max(d.results, key=lambda r: r.hypothesis.score) if len(d.results) else None
        names.append(str(best.hypothesis.class_id) if best is not None else "")
        scores[i] = best.hypothesis.score if best is not None else 0.0
    if n == 0:
        return KittiObjects.empty()
    rot = matrix_from_quaternion(quat)  # (n, 3, 3), box axes as columns
    length_axis, up_axis = rot[:, :, 0], rot[:, :, 2]
    l, w, h = size.T
    bottom = centre - 0.5 * h[:, None] * up_axis
    ry = np.arctan2(-length_axis[:, 2], length_axis[:, 0])
    cam_boxes = np.concatenate([bottom, np.stack([l, h, w, ry], 1)], 1)
    t = torch.from_numpy(cam_boxes)
    camera = PinholeCamera(P, width, height)
    bbox, _ = corners_to_image_boxes(camera, camera_box_corners(t))
    alpha = rotation_y_to_alpha(t[:, 6], t[:, 0], t[:, 2]).numpy()
    zeros = np.zeros(n)
    return KittiObjects(
        names=np.asarray(names, dtype=str),
        truncated=zeros,
        occluded=zeros.astype(np.int64),
        alpha=alpha,
        bbox=bbox.numpy(),
        dimensions=np.stack([h, w, l], 1),
        location=bottom,
        rotation_y=ry,
        score=scores,
        weight=np.ones(n),
    )


@dataclass
class KittiEvaluation:
    """AP|R40 over the held-out frames (None when none of them was evaluated) and over all
    evaluated frames; ``seen`` names evaluated frames the model was trained on."""

    held_out: KittiResult | None
    all_frames: KittiResult
    held_out_frames: list[str]
    seen: list[str]


def evaluate_frames(
    root: Path,
    detections: Mapping[str, Any],
    held_out: Sequence[str],
    trained_on: set[str],
) -> KittiEvaluation:
    """KITTI AP|R40 of the recorded detections.

    Args:
        root: the KITTI object folder (``training/`` with ``label_2``, ``calib``, ``image_2``).
        detections: ``{frame id: KittiObjects}`` of the frames to evaluate (from
            :func:`detections_to_kitti`).
        held_out: frame ids reported on their own (not used for training).
        trained_on: frame ids the model was trained on (reported as ``seen``).

    Raises:
        FileNotFoundError / ValueError: a missing or malformed label file.
    """
    from sr3d_training.datasets.kitti import read_kitti_label
    from sr3d_training.evaluation.kitti import evaluate_kitti

    ids = list(detections)
    gts = {i: read_kitti_label(root / "label_2" / f"{i}.txt") for i in ids}
    everything: KittiResult = evaluate_kitti([gts[i] for i in ids], [detections[i] for i in ids])
    ho = [i for i in ids if i in set(held_out)]
    held: KittiResult | None = (
        evaluate_kitti([gts[i] for i in ho], [detections[i] for i in ho]) if ho else None
    )
    return KittiEvaluation(held, everything, ho, sorted(set(ids) & trained_on))
