"""KITTI-style objects for the image samples of extracted bag datasets: what the monocular
training pipeline and the KITTI evaluator read (``sample.meta["kitti"]``), made from 3D labels
alone (a ``Detection3DArray`` ground-truth topic or pseudo-labels carry no 2D box, truncation
or occlusion).

Approximation (our formulation; the KITTI devkit's annotators drew the 2D boxes and judged
truncation and occlusion by eye):

* **2D box**: the box enclosing the projection of the 3D box's 8 corners with the sample's
  camera ``P``, clipped to the image ``[0, W-1] x [0, H-1]``. It is never smaller than the
  visible object and larger where the object is occluded (on the real KITTI labels the
  projected box of an untruncated object overlaps the annotated one with median IoU 0.63-0.98
  per frame, see ``../shared/data/README.md``).
* **Truncation**: the fraction of the unclipped projected box's area that lies outside the
  image, ``1 - area(clipped) / area(unclipped)`` (KITTI: the fraction of the object outside).
* **Occlusion**: unknown, set to 0 (fully visible).
* **alpha**: ``ry - atan2(x, z)`` as KITTI defines it.

The KITTI difficulty levels (2D box height, occlusion, truncation) are therefore approximate on
bag data: occluded objects count as Easy when tall and untruncated enough. Objects that are not
in the image (a corner closer than ``min_depth`` to the camera plane, or no area left after
clipping) are left out: no image evidence shows them, so they are neither targets nor ground
truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sr3d_ros.geometry.camera import (
    PinholeCamera,
    camera_box_corners,
    corners_to_image_boxes,
    rotation_y_to_alpha,
)

from .kitti import KittiObjects

__all__ = ["MIN_DEPTH_M", "projected_kitti_objects"]

#: corners closer than this to the camera plane (metres) make an object "not in the image"
MIN_DEPTH_M = 0.1


def _area(b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return out


def projected_kitti_objects(
    camera_boxes: np.ndarray,
    names: Sequence[str],
    camera: PinholeCamera,
    scores: np.ndarray | None = None,
) -> tuple[KittiObjects, np.ndarray]:
    """KITTI objects of 3D labels seen by ``camera`` (module docstring: 2D box, truncation,
    occlusion 0, alpha).

    Args:
        camera_boxes: ``(M, 7)`` float KITTI camera boxes ``(x, y, z, l, h, w, ry)``: bottom-
            face centre in the camera's optical frame (metres), sizes (metres), yaw about the
            optical +y axis (radians).
        names: ``M`` class names.
        camera: the image's camera (``P`` maps optical-frame points to its pixels).
        scores: ``(M,)`` label scores (default 1: ground truth).

    Returns:
        ``(objects, visible)``: :class:`KittiObjects` (float64, weight 1) of the visible
        labels, and ``(M,)`` bool, which labels are visible (in the image).

    Raises:
        ValueError: ``camera_boxes`` not ``(M, 7)``, or ``names`` / ``scores`` of another
        length.
    """
    cam = np.asarray(camera_boxes, np.float64)
    if cam.ndim != 2 or cam.shape[1] != 7:
        raise ValueError(f"camera_boxes must be (M, 7), got {cam.shape}")
    m = len(cam)
    score = np.ones(m) if scores is None else np.asarray(scores, np.float64).reshape(-1)
    if len(names) != m or len(score) != m:
        raise ValueError(f"{m} camera boxes, {len(names)} names, {len(score)} scores")
    corners = camera_box_corners(torch.from_numpy(cam))
    full, in_front = corners_to_image_boxes(camera, corners, clip=False, min_depth=MIN_DEPTH_M)
    clipped, _ = corners_to_image_boxes(camera, corners, clip=True, min_depth=MIN_DEPTH_M)
    full_np, box = full.numpy(), clipped.numpy()
    inside = _area(box)
    visible = in_front.numpy() & (inside > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        truncated = np.where(visible, 1.0 - inside / _area(full_np), 1.0).clip(0.0, 1.0)
    t = torch.from_numpy(cam)
    alpha = rotation_y_to_alpha(t[:, 6], t[:, 0], t[:, 2]).numpy()
    objects = KittiObjects(
        names=np.asarray(list(names), dtype=str),
        truncated=truncated,
        occluded=np.zeros(m, np.int64),
        alpha=alpha,
        bbox=box,
        dimensions=cam[:, [4, 5, 3]],
        location=cam[:, :3],
        rotation_y=cam[:, 6],
        score=score,
        weight=np.ones(m),
    )
    return objects.subset(visible), visible
