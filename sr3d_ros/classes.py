"""Class tables of the indoor benchmarks ScanNet v2 and SUN RGB-D (one copy: core and training).

Label ``i`` of a detector trained on a benchmark is ``*_CLASSES[i]``; ``*_LABEL2LEVEL[i]`` is the
TR3D output level of that class (0 = finer, 1 = coarser), from the published TR3D configurations
(Rukhovich et al., 2023). ScanNet exports label their boxes with nyu40 ids
(:data:`SCANNET_NYU40_IDS`, :func:`nyu40_boxes_to_labels`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NYU40_TO_LABEL",
    "SCANNET_CLASSES",
    "SCANNET_LABEL2LEVEL",
    "SCANNET_NYU40_IDS",
    "SUNRGBD_CLASSES",
    "SUNRGBD_LABEL2LEVEL",
    "nyu40_boxes_to_labels",
]

#: The 18 ScanNet v2 detection classes in the standard (VoteNet / mmdetection3d) label order.
SCANNET_CLASSES: tuple[str, ...] = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "showercurtrain", "toilet", "sink", "bathtub",
    "garbagebin",
)  # fmt: skip
#: nyu40 id of each class of :data:`SCANNET_CLASSES` (same order; ScanNet v2 benchmark).
SCANNET_NYU40_IDS: tuple[int, ...] = (
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39
)  # fmt: skip
#: nyu40 id -> label index into :data:`SCANNET_CLASSES`.
NYU40_TO_LABEL: dict[int, int] = {nyu: i for i, nyu in enumerate(SCANNET_NYU40_IDS)}
#: TR3D's class-to-level table for ScanNet (published TR3D ScanNet configuration).
SCANNET_LABEL2LEVEL: tuple[int, ...] = (0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0)

#: The 10 evaluated SUN RGB-D classes, standard (VoteNet / mmdetection3d) label order.
SUNRGBD_CLASSES: tuple[str, ...] = (
    "bed", "table", "sofa", "chair", "toilet", "desk", "dresser", "night_stand", "bookshelf",
    "bathtub",
)  # fmt: skip
#: TR3D's class-to-level table for SUN RGB-D.
SUNRGBD_LABEL2LEVEL: tuple[int, ...] = (1, 1, 1, 0, 0, 1, 0, 0, 1, 0)


def nyu40_boxes_to_labels(bbox: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert ScanNet export boxes ``(K, 7) = cx, cy, cz, dx, dy, dz, nyu40 id`` to ours.

    Args:
        bbox: ``(K, 7)`` float (geometric centre and full sizes in metres, axis-aligned scene
            frame; nyu40 id in the last column, rounded to the nearest integer).

    Returns:
        ``(boxes float32 (K', 7) with yaw = 0, labels int64 (K',))`` keeping only the 18
        detection classes (:data:`NYU40_TO_LABEL`), in input order.

    Raises:
        ValueError: ``bbox`` is not ``(K, 7)``.
    """
    b = np.asarray(bbox, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 7), np.float32), np.zeros((0,), np.int64)
    if b.ndim != 2 or b.shape[1] != 7:
        raise ValueError(f"export boxes must be (K, 7), got {b.shape}")
    ids = np.rint(b[:, 6]).astype(np.int64)
    labels = np.array([NYU40_TO_LABEL.get(int(i), -1) for i in ids], np.int64)
    keep = labels >= 0
    boxes = np.zeros((int(keep.sum()), 7), np.float32)
    boxes[:, :6] = b[keep, :6]
    return boxes, labels[keep]
