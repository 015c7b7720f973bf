"""SUN RGB-D loaders: the standard VoteNet/mmdetection3d export and mmdetection3d info files.

(~420 lines: the export's label parsing, calibration and both info-file datasets share one
box-convention conversion that is easiest to check in one place.)

Frame: the UPRIGHT DEPTH frame of each image (x right, y forward, z up against gravity, metres,
origin at the camera). Points are ``(N, 6)`` float32 x, y, z, r, g, b with rgb in 0..255 (the
export stores 0..1; the loaders multiply by 255).

Box convention (ours, see :mod:`.sample`): ``(x, y, z, dx, dy, dz, yaw)``, geometric centre,
``yaw`` counter-clockwise about +z, ``dx`` measured along the box x-axis ``(cos yaw, sin yaw)``.

How each source maps to it (verified on the real frames by ``test/training/test_datasets.py``):

* export label ``.txt`` lines ``class xmin ymin w h cx cy cz a b c ox oy`` (the README calls the
  three half sizes ``half_w half_l half_h``; as numbers: ``a`` = column 9, ``b`` = column 10,
  ``c`` = column 11, 1-based incl. the class name)::

      yaw = atan2(oy, ox)          # the heading vector IS the box x-axis
      dx  = 2 * b                  # "half_l": the half size ALONG the heading
      dy  = 2 * a                  # "half_w": the half size across it
      dz  = 2 * c

  i.e. "Size = 2 * (half_l, half_w, half_h)" = (dx, dy, dz). Evidence on the 4 trainval frames
  (17 labelled objects, all classes): 482,838 points fall inside the boxes in this convention vs
  430,523 with the yaw negated and 259,687 with dx/dy swapped (the trainval headings are all near
  0 or -90 degrees, where negating the yaw only turns a box by ~0.2 rad, hence the small margin);
  on the demo frame 000017 (v1.x info, heading -63 degrees) the bed holds 18,117 points vs 9,106
  with the yaw negated and 3,913 with the sizes swapped. Beds come out with dx > dy and night
  stands with dx < dy in both sources (the heading is the object's front direction).
* mmdetection3d v1.x infos (``bbox_3d`` = x, y, z, dx, dy, dz, yaw): yaw and sizes unchanged
  (v1.x stores ``+atan2`` and ``(2 b, 2 a, 2 c)``). The stored z: mmdetection3d's SUN RGB-D
  dataset class wraps ``bbox_3d`` with ``origin=(0.5, 0.5, 0.5)``, i.e. z is the GEOMETRIC centre,
  and the demo frame agrees (as centres the bed spans z -1.20..0.08 with the floor at -1.22; read
  as bottom centres it would float 0.66 m above the floor). Default ``bbox_z_origin="center"``;
  pass ``"bottom"`` for files known to store the bottom-face centre (``z += dz / 2``).
* mmdetection3d v0.x infos (``annos.gt_boxes_upright_depth``): v0.x stored the NEGATED heading
  (``-atan2``, used with a clockwise rotation), sizes ``(2 b, 2 a, 2 c)``, geometric centre;
  converted with ``yaw = -stored``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sr3d_ros.classes import SUNRGBD_CLASSES

from .mmdet3d_infos import InfoRecord, parse_mmdet3d_infos
from .sample import (
    PathLike,
    Sample,
    load_points_bin,
)

__all__ = [
    "SUNRGBD_CLASSES",
    "SunRGBDDataset",
    "SunRGBDInfoDataset",
    "SunRGBDObject",
    "label_to_box",
    "load_sunrgbd_depth",
    "load_sunrgbd_frame",
    "read_sunrgbd_calib",
    "read_sunrgbd_label",
    "sunrgbd_info_boxes_to_ours",
]

Transform = Callable[[Sample], Sample]


def label_to_box(
    cx: float,
    cy: float,
    cz: float,
    half_w: float,
    half_l: float,
    half_h: float,
    ox: float,
    oy: float,
) -> np.ndarray:
    """Convert the 3D part of an export label line to our box (see the module docstring).

    Args:
        cx, cy, cz: box centre (upright depth frame, metres; geometric centre).
        half_w, half_l, half_h: the three half sizes in file order (columns 9, 10, 11).
        ox, oy: heading vector (need not be unit length; must not be zero).

    Returns:
        ``float64 (7,)`` = ``(cx, cy, cz, 2 half_l, 2 half_w, 2 half_h, atan2(oy, ox))``.

    Raises:
        ValueError: zero heading vector or negative sizes.
    """
    if ox == 0.0 and oy == 0.0:
        raise ValueError("heading vector (ox, oy) is zero")
    if min(half_w, half_l, half_h) < 0:
        raise ValueError(f"negative half size ({half_w}, {half_l}, {half_h})")
    return np.array(
        [cx, cy, cz, 2 * half_l, 2 * half_w, 2 * half_h, math.atan2(oy, ox)], np.float64
    )


@dataclass(frozen=True)
class SunRGBDObject:
    """One line of a SUN RGB-D export label file.

    Attributes:
        classname: raw class name (any of the ~800 SUN RGB-D names, e.g. ``"lamp"``).
        box2d: ``float64 (4,)`` = xmin, ymin, xmax, ymax in image pixels.
        box3d: ``float64 (7,)`` our box in the upright depth frame (:func:`label_to_box`).
    """

    classname: str
    box2d: np.ndarray
    box3d: np.ndarray


def read_sunrgbd_label(path: PathLike) -> list[SunRGBDObject]:
    """Parse an export label file (one object per line, 13 fields; see module docstring).

    Raises:
        FileNotFoundError: missing file. ValueError: a line without 13 fields / numbers, or a zero
        heading (message names file and line number).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SUN RGB-D label file not found: {p}")
    objs: list[SunRGBDObject] = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        t = line.split()
        if len(t) != 13:
            raise ValueError(f"{p}:{n}: expected 13 fields, got {len(t)}")
        try:
            v = [float(x) for x in t[1:]]
            box3d = label_to_box(*v[4:12])
        except ValueError as exc:
            raise ValueError(f"{p}:{n}: {exc}") from None
        objs.append(SunRGBDObject(t[0], np.array([v[0], v[1], v[0] + v[2], v[1] + v[3]]), box3d))
    return objs


def read_sunrgbd_calib(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a calib file: line 1 ``Rtilt`` (9 numbers), line 2 ``K`` (9 numbers), column-major.

    Returns:
        ``(Rtilt float64 (3, 3), K float64 (3, 3))``. ``Rtilt`` rotates the (tilted) depth frame
        into the upright depth frame; ``K`` is the colour-camera intrinsic matrix (pixels).

    Raises:
        FileNotFoundError: missing file. ValueError: fewer than 2 lines of 9 numbers.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SUN RGB-D calib file not found: {p}")
    lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
    try:
        mats = [np.array([float(x) for x in ln.split()], np.float64) for ln in lines[:2]]
    except ValueError:
        raise ValueError(f"{p}: non-numeric calibration") from None
    if len(mats) != 2 or any(m.size != 9 for m in mats):
        raise ValueError(f"{p}: expected two lines of 9 numbers (Rtilt, K)")
    return mats[0].reshape(3, 3, order="F"), mats[1].reshape(3, 3, order="F")


def load_sunrgbd_depth(path: PathLike) -> np.ndarray:
    """Load an export depth ``.mat`` (MATLAB v5, key ``instance``: (N, 6) xyz + rgb 0..1).

    Returns:
        ``float32 (N, 6)``: x, y, z (upright depth frame, metres), r, g, b scaled to 0..255.

    Raises:
        FileNotFoundError: missing file. ValueError: not a readable v5 ``.mat``, no ``instance``
        key, wrong shape or non-finite values (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SUN RGB-D depth file not found: {p}")
    import scipy.io  # lazy: only the SUN RGB-D export needs scipy

    try:
        mat = scipy.io.loadmat(str(p), variable_names=["instance"])
    except Exception as exc:  # scipy raises MatReadError, ValueError, NotImplementedError (v7.3)...
        raise ValueError(f"{p}: cannot read MATLAB v5 file ({type(exc).__name__}: {exc})") from exc
    if "instance" not in mat:
        raise ValueError(f"{p}: no 'instance' array")
    pts = np.asarray(mat["instance"])
    if pts.ndim != 2 or pts.shape[1] < 6:
        raise ValueError(f"{p}: 'instance' must be (N, 6), got {pts.shape}")
    out = pts[:, :6].astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{p}: non-finite values in 'instance'")
    out[:, 3:6] *= 255.0
    return out


def _frame_name(frame_id: int | str) -> str:
    s = str(frame_id).strip()
    return f"{int(s):06d}" if s.isdigit() else s


def load_sunrgbd_frame(
    root: PathLike,
    frame_id: int | str,
    *,
    class_names: Sequence[str] = SUNRGBD_CLASSES,
    with_calib: bool = False,
) -> Sample:
    """Load one export frame: ``root/depth/<id>.mat`` + ``root/label/<id>.txt``.

    Args:
        root: export folder (``sunrgbd_trainval``) with ``depth/``, ``label/`` (and ``calib/``).
        frame_id: ``1`` or ``"000001"``.
        class_names: evaluated classes; objects of other classes (lamp, ottoman, ...) are
            dropped.
        with_calib: also read ``calib/<id>.txt`` into ``meta['Rtilt']`` / ``meta['K']``.

    Returns:
        :class:`Sample` (upright depth frame, rgb 0..255, our boxes with yaw).

    Raises:
        FileNotFoundError / ValueError: missing or malformed file (names it).
    """
    r = Path(root)
    name = _frame_name(frame_id)
    pts = load_sunrgbd_depth(r / "depth" / f"{name}.mat")
    objs = read_sunrgbd_label(r / "label" / f"{name}.txt")
    index = {c: i for i, c in enumerate(class_names)}
    kept = [o for o in objs if o.classname in index]
    boxes = np.array([o.box3d for o in kept], np.float32).reshape(-1, 7)
    labels = np.array([index[o.classname] for o in kept], np.int64)
    boxes_2d = np.array([o.box2d for o in kept], np.float32).reshape(-1, 4)
    meta: dict[str, Any] = {"boxes_2d": boxes_2d}
    if with_calib:
        meta["Rtilt"], meta["K"] = read_sunrgbd_calib(r / "calib" / f"{name}.txt")
    return Sample(
        points=pts,
        gt_boxes=boxes,
        gt_labels=labels,
        class_names=tuple(class_names),
        sample_id=name,
        source="sunrgbd",
        meta=meta,
    )


class SunRGBDDataset:
    """SUN RGB-D from the standard export; ``torch.utils.data.Dataset``-compatible.

    Args:
        root: export folder with ``depth/``, ``label/``, ``calib/`` and the split files
            ``train_data_idx.txt`` / ``val_data_idx.txt`` (one integer frame id per line).
        split: ``"train"`` or ``"val"``; exclusive with ``frame_ids``.
        frame_ids: explicit frame ids (ints or zero-padded strings).
        class_names: evaluated classes (default the standard 10).
        with_calib: attach ``Rtilt`` / ``K`` to ``meta``.
        transform: optional callable applied to each :class:`Sample`.

    Raises:
        ValueError: neither or both of ``split`` / ``frame_ids``.
        FileNotFoundError: missing split file (construction) or frame files (access).
    """

    def __init__(
        self,
        root: PathLike,
        split: str | None = None,
        frame_ids: Sequence[int | str] | None = None,
        *,
        class_names: Sequence[str] = SUNRGBD_CLASSES,
        with_calib: bool = False,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        if (split is None) == (frame_ids is None):
            raise ValueError("give exactly one of split or frame_ids")
        if split is not None:
            from .scannet import read_split_file

            ids: Sequence[int | str] = read_split_file(self.root / f"{split}_data_idx.txt")
        else:
            ids = frame_ids  # type: ignore[assignment]
        self.split = split
        self.frame_ids: list[str] = [_frame_name(i) for i in ids]
        self.class_names = tuple(class_names)
        self.with_calib = with_calib
        self.transform = transform

    def __len__(self) -> int:
        return len(self.frame_ids)

    def __getitem__(self, index: int) -> Sample:
        s = load_sunrgbd_frame(
            self.root,
            self.frame_ids[index],
            class_names=self.class_names,
            with_calib=self.with_calib,
        )
        return self.transform(s) if self.transform is not None else s


def sunrgbd_info_boxes_to_ours(
    boxes: np.ndarray,
    version: Literal["v0", "v1"],
    bbox_z_origin: Literal["center", "bottom"] = "center",
) -> np.ndarray:
    """Convert SUN RGB-D mmdetection3d info boxes to ours (see the module docstring).

    Args:
        boxes: ``(K, 7)`` as stored: x, y, z, dx, dy, dz, yaw.
        version: ``"v0"`` (stored yaw = -atan2 -> negated) or ``"v1"`` (stored yaw = +atan2).
        bbox_z_origin: whether the stored z is the geometric ``"center"`` (mmdetection3d's
            SUN RGB-D files; default) or the ``"bottom"`` face centre (then ``z += dz / 2``).

    Returns:
        ``float32 (K, 7)`` our boxes, yaw wrapped to ``[-pi, pi)``.

    Raises:
        ValueError: not ``(K, 7)``, or unknown ``version`` / ``bbox_z_origin``.
    """
    b = np.asarray(boxes, np.float64).copy()
    if b.size == 0:
        return np.zeros((0, 7), np.float32)
    if b.ndim != 2 or b.shape[1] != 7:
        raise ValueError(f"SUN RGB-D info boxes must be (K, 7), got {b.shape}")
    if version == "v0":
        b[:, 6] = -b[:, 6]
    elif version != "v1":
        raise ValueError(f"unknown info version {version!r}")
    if bbox_z_origin == "bottom":
        b[:, 2] += b[:, 5] / 2
    elif bbox_z_origin != "center":
        raise ValueError(f"unknown bbox_z_origin {bbox_z_origin!r}")
    b[:, 6] = (b[:, 6] + math.pi) % (2 * math.pi) - math.pi
    return b.astype(np.float32)


class SunRGBDInfoDataset:
    """SUN RGB-D from an mmdetection3d info file (v0.x or v1.x, auto-detected).

    Points: ``.bin`` float32 (N, 6) with rgb 0..1 (scaled to 0..255), found at
    ``point_files[sample_id]``, ``data_root/<pts_path|lidar_path>`` or
    ``data_root/points/<file name>``.

    Args:
        info_path: the ``.pkl`` file.
        data_root: folder the stored point paths are relative to.
        point_files: explicit ``{sample_id: path}`` overrides.
        bbox_z_origin: see :func:`sunrgbd_info_boxes_to_ours` (default ``"center"``).
        transform: optional callable applied to each :class:`Sample`.

    Raises:
        FileNotFoundError / ValueError: missing or malformed info (construction) or point file
        (access); messages name the paths.
    """

    class_names: tuple[str, ...] = SUNRGBD_CLASSES

    def __init__(
        self,
        info_path: PathLike,
        data_root: PathLike | None = None,
        *,
        point_files: Mapping[str, PathLike] | None = None,
        bbox_z_origin: Literal["center", "bottom"] = "center",
        transform: Transform | None = None,
    ) -> None:
        self.info_path = Path(info_path)
        self.records: list[InfoRecord] = parse_mmdet3d_infos(self.info_path, SUNRGBD_CLASSES)
        for rec in self.records:
            if len(rec.boxes) and rec.boxes.shape[1] != 7:
                raise ValueError(f"{self.info_path}: {rec.sample_id} boxes have no yaw column")
        self.data_root = Path(data_root) if data_root is not None else self.info_path.parent
        self.point_files = {k: Path(v) for k, v in (point_files or {}).items()}
        self.bbox_z_origin = bbox_z_origin
        self.transform = transform

    @property
    def frame_ids(self) -> list[str]:
        """Frame ids in file order (numeric ids zero-padded to 6 digits)."""
        return [_frame_name(r.sample_id) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        frame = _frame_name(rec.sample_id)
        cands = []
        for key in (rec.sample_id, frame):
            if key in self.point_files:
                cands.append(self.point_files[key])
        if rec.points_path:
            cands += [
                self.data_root / rec.points_path,
                self.data_root / "points" / Path(rec.points_path).name,
            ]
        path = next((c for c in cands if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"{self.info_path}: no point file for {rec.sample_id}; tried "
                f"{', '.join(map(str, cands)) or 'nothing (no stored path)'}"
            )
        pts = load_points_bin(path, 6)
        pts[:, 3:6] *= 255.0
        boxes = sunrgbd_info_boxes_to_ours(rec.boxes, rec.version, self.bbox_z_origin)
        s = Sample(
            points=pts,
            gt_boxes=boxes,
            gt_labels=rec.labels,
            class_names=SUNRGBD_CLASSES,
            sample_id=frame,
            source=f"sunrgbd-info-{rec.version}",
            meta={"points_file": str(path), "info_version": rec.version},
        )
        return self.transform(s) if self.transform is not None else s
