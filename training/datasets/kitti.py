"""KITTI 3D object detection: the official object layout, read into :class:`Sample` objects.

Layout (``root/training`` or ``root/testing``): ``image_2/ID.png``, ``label_2/ID.txt``,
``calib/ID.txt``, optional ``velodyne/ID.bin``; optional split files ``root/ImageSets/NAME.txt``.

Label lines (KITTI devkit ``readme.txt``)::

    type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry [score]

``(x1, y1, x2, y2)`` the 2D box in pixels; ``(x, y, z)`` the BOTTOM-FACE centre in the rectified
camera (optical) frame (x right, y down, z forward, metres); ``(h, w, l)`` metres; ``ry`` the yaw
about the camera y axis; ``alpha = ry - atan2(x, z)`` (the real labels satisfy it to their 2
decimals, see ``test/training/test_kitti_dataset.py``). ``DontCare`` lines mark unlabelled
regions (3D fields -1 / -1000 / -10).

Converted boxes (our convention, :mod:`sr3d_ros.geometry.boxes`) come in two frames:

* the camera **body frame** (x forward, y left, z up at the rectified camera;
  :func:`sr3d_ros.geometry.camera.camera_boxes_to_boxes`): :attr:`Sample.gt_boxes`;
* the **LiDAR frame** (velodyne: x forward, y left, z up): :func:`kitti_boxes_in_lidar`, through
  ``inverse(R0_rect @ Tr_velo_to_cam)``.

Classes: Car, Pedestrian, Cyclist are detected; Van, Truck, Person_sitting, Tram and Misc are
kept as labels (the evaluation treats Van / Person_sitting as neighbours of Car / Pedestrian);
DontCare regions stay in ``sample.meta["kitti"]`` (the raw :class:`KittiObjects`) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sr3d_ros.geometry.camera import (
    OPTICAL_TO_BODY,
    PinholeCamera,
    camera_boxes_to_boxes,
    transform_boxes,
)
from sr3d_ros.io.calibration import KittiCalib, read_kitti_calib
from sr3d_ros.io.images import read_image as load_kitti_image

from .sample import PathLike, Sample, load_points_bin
from .scannet import read_split_file

__all__ = [
    "DONT_CARE",
    "KITTI_CLASSES",
    "KITTI_DETECTED_CLASSES",
    "KittiCalib",
    "KittiDataset",
    "KittiObjects",
    "kitti_boxes_in_lidar",
    "kitti_sample",
    "load_kitti_image",
    "read_kitti_calib",
    "read_kitti_label",
]

#: Labelled KITTI classes (label order of :attr:`Sample.gt_labels`); the first three are detected.
KITTI_CLASSES: tuple[str, ...] = (
    "Car",
    "Pedestrian",
    "Cyclist",
    "Van",
    "Truck",
    "Person_sitting",
    "Tram",
    "Misc",
)
KITTI_DETECTED_CLASSES: tuple[str, ...] = KITTI_CLASSES[:3]
DONT_CARE = "DontCare"


@dataclass
class KittiObjects:
    """The objects of one frame as KITTI stores them (labels or detections), float64.

    Attributes:
        names: ``(K,)`` str class names (any KITTI type, incl. ``DontCare``).
        truncated: ``(K,)`` 0..1 (detections: 0). occluded: ``(K,)`` int 0..3 (detections: 0).
        alpha: ``(K,)`` observation angle, radians (-10 = unknown).
        bbox: ``(K, 4)`` 2D box ``x1, y1, x2, y2``, pixels.
        dimensions: ``(K, 3)`` ``h, w, l``, metres.
        location: ``(K, 3)`` bottom-face centre, optical frame, metres.
        rotation_y: ``(K,)`` yaw about the optical +y axis, radians.
        score: ``(K,)`` detection score (labels: 1).
        weight: ``(K,)`` training weight (1; MixUp sets the blend factor).

    Raises:
        ValueError: arrays of inconsistent length or shape.
    """

    names: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        self.names = np.asarray(self.names, dtype=str).reshape(-1)
        k = len(self.names)
        for f in fields(self)[1:]:
            cols = {"bbox": 4, "dimensions": 3, "location": 3}.get(f.name)
            dtype = np.int64 if f.name == "occluded" else np.float64
            arr = np.asarray(getattr(self, f.name), dtype=dtype)
            shape = (k, cols) if cols else (k,)
            if arr.size == 0 and k == 0:
                arr = arr.reshape(shape)
            if arr.shape != shape:
                raise ValueError(f"KittiObjects.{f.name} must be {shape}, got {arr.shape}")
            setattr(self, f.name, arr)

    @classmethod
    def empty(cls) -> KittiObjects:
        """No objects."""
        z = np.zeros(0)
        return cls(np.zeros(0, str), z, z, z, z, z, z, z, z, z)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: np.ndarray | slice) -> KittiObjects:
        """Objects selected by a boolean mask or index array."""
        return KittiObjects(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: Sequence[KittiObjects]) -> KittiObjects:
        """Objects of several lists, in order."""
        if not parts:
            return KittiObjects.empty()
        return KittiObjects(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(parts[0])
            }
        )

    def replace(self, **changes: Any) -> KittiObjects:
        """A copy with the given fields replaced."""
        return replace(self, **changes)

    @property
    def cared(self) -> np.ndarray:
        """``(K,)`` bool: not ``DontCare``."""
        return np.asarray(self.names != DONT_CARE)

    def camera_boxes(self) -> np.ndarray:
        """``(K, 7)`` float64 camera boxes ``(x, y, z, l, h, w, ry)`` (bottom centre, optical)."""
        h, w, l = self.dimensions.T
        return np.stack([*self.location.T, l, h, w, self.rotation_y], axis=1).reshape(-1, 7)

    def boxes(self) -> np.ndarray:
        """``(K, 7)`` float64 boxes in our convention, camera body frame (module docstring)."""
        return camera_boxes_to_boxes(torch.from_numpy(self.camera_boxes())).numpy()


def read_kitti_label(path: PathLike) -> KittiObjects:
    """Read a KITTI label or result file (15 columns, or 16 with a score).

    Args:
        path: the ``.txt`` file (may be empty: no objects).

    Returns:
        :class:`KittiObjects`; score 1 when the file has 15 columns; weight 1.

    Raises:
        FileNotFoundError: missing file. ValueError: a line with a wrong number of columns or a
        non-numeric value (names the file and line).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"KITTI label file not found: {p}")
    names: list[str] = []
    rows: list[list[float]] = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise ValueError(f"{p}:{n}: expected 15 or 16 columns, got {len(parts)}")
        try:
            vals = [float(v) for v in parts[1:]]
        except ValueError as exc:
            raise ValueError(f"{p}:{n}: {exc}") from exc
        names.append(parts[0])
        rows.append(vals + [1.0] * (16 - len(parts)))
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 15)
    return KittiObjects(
        names=np.asarray(names, dtype=str),
        truncated=a[:, 0],
        occluded=a[:, 1].astype(np.int64),
        alpha=a[:, 2],
        bbox=a[:, 3:7],
        dimensions=a[:, 7:10],
        location=a[:, 10:13],
        rotation_y=a[:, 13],
        score=a[:, 14],
        weight=np.ones(len(a)),
    )


def kitti_boxes_in_lidar(objects: KittiObjects, calib: KittiCalib) -> np.ndarray:
    """Our boxes of the (non-DontCare) objects in the LiDAR frame.

    The geometric centre is mapped exactly (camera body -> optical -> LiDAR); the yaw is the
    heading of the mapped length axis; the ~0.5 degree tilt between the frames is dropped
    (:func:`sr3d_ros.geometry.camera.transform_boxes`).

    Returns:
        ``(K', 7)`` float64, K' = number of objects that are not DontCare.
    """
    body_to_optical = np.eye(4)
    body_to_optical[:3, :3] = OPTICAL_TO_BODY.T
    T = calib.rect_to_velo @ body_to_optical
    boxes = torch.from_numpy(objects.subset(objects.cared).boxes())
    return transform_boxes(boxes, T).numpy()


def kitti_sample(
    sample_id: str,
    image: np.ndarray,
    camera: PinholeCamera,
    objects: KittiObjects,
    meta: dict[str, Any] | None = None,
) -> Sample:
    """Build a monocular :class:`Sample`: image + camera, labelled objects as boxes.

    ``gt_boxes`` / ``gt_labels`` hold the objects whose class is in :data:`KITTI_CLASSES`
    (camera body frame); ``meta["kitti"]`` keeps all objects (incl. DontCare) for evaluation and
    augmentation; objects of unknown types are dropped from both.

    Raises:
        ValueError: see :class:`Sample`.
    """
    known = np.isin(objects.names, (*KITTI_CLASSES, DONT_CARE))
    objects = objects.subset(known)
    labelled = objects.subset(objects.cared)
    labels = np.array([KITTI_CLASSES.index(n) for n in labelled.names], dtype=np.int64)
    return Sample(
        points=np.zeros((0, 6), np.float32),
        gt_boxes=labelled.boxes(),
        gt_labels=labels,
        class_names=KITTI_CLASSES,
        sample_id=sample_id,
        source="kitti",
        meta={**(meta or {}), "kitti": objects},
        image=image,
        camera=camera,
    )


class KittiDataset:
    """Frames of a KITTI object folder as monocular :class:`Sample` objects.

    Args:
        root: the dataset root (holding ``training/`` and optionally ``ImageSets/``) or the
            ``training`` / ``testing`` folder itself.
        frame_ids: frames to load (e.g. ``["000000"]``); default: the split, else every image.
        split: split name, read from ``root/ImageSets/{split}.txt``.
        subset: ``"training"`` or ``"testing"`` (testing has no labels: empty objects).
        load_velodyne: also read the scan, where the frame has one, into ``meta["velodyne"]``
            (``float32 (N, 4)``: x, y, z in the LiDAR frame, reflectance).

    Raises:
        FileNotFoundError: the folder, a split file or a frame's files are missing (named).
        ValueError: a malformed file (named).
    """

    def __init__(
        self,
        root: PathLike,
        frame_ids: Sequence[str] | None = None,
        split: str | None = None,
        subset: str = "training",
        load_velodyne: bool = False,
    ) -> None:
        root = Path(root)
        self.folder = root if (root / "image_2").is_dir() else root / subset
        if not (self.folder / "image_2").is_dir():
            raise FileNotFoundError(f"no KITTI image_2/ folder under {root} (or {root / subset})")
        if frame_ids is None and split is not None:
            frame_ids = read_split_file(self.folder.parent / "ImageSets" / f"{split}.txt")
        if frame_ids is None:
            frame_ids = sorted(p.stem for p in (self.folder / "image_2").glob("*.png"))
        self.frame_ids = [str(i) for i in frame_ids]
        self.has_labels = (self.folder / "label_2").is_dir()
        self.load_velodyne = load_velodyne
        self.class_names = KITTI_CLASSES

    def __len__(self) -> int:
        return len(self.frame_ids)

    def calib(self, frame_id: str) -> KittiCalib:
        """Calibration of a frame."""
        return read_kitti_calib(self.folder / "calib" / f"{frame_id}.txt")

    def objects(self, frame_id: str) -> KittiObjects:
        """Labels of a frame (empty without ``label_2/``)."""
        if not self.has_labels:
            return KittiObjects.empty()
        return read_kitti_label(self.folder / "label_2" / f"{frame_id}.txt")

    def __getitem__(self, index: int) -> Sample:
        fid = self.frame_ids[index]
        image = load_kitti_image(self.folder / "image_2" / f"{fid}.png")
        calib = self.calib(fid)
        camera = calib.camera(image.shape[1], image.shape[0])
        meta: dict[str, Any] = {"calib": calib}
        scan = self.folder / "velodyne" / f"{fid}.bin"
        if self.load_velodyne and scan.is_file():
            meta["velodyne"] = load_points_bin(scan, 4)
        return kitti_sample(fid, image, camera, self.objects(fid), meta)
