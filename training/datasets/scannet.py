"""ScanNet v2 loaders: per-scene export files, mmdetection3d info files and raw unaligned scans.

(~420 lines: the three layouts share the axis alignment and nyu40 label rules kept here.)

All loaders return :class:`~sr3d_training.datasets.sample.Sample` objects in the axis-aligned scene
frame (z up, metres) with boxes ``(x, y, z, dx, dy, dz, yaw=0)``, ``(x, y, z)`` the geometric
centre; ScanNet boxes are axis-aligned in that frame, so ``yaw`` is always 0.

Supported layouts
-----------------
(a) Per-scene export (VoteNet ``batch_load_scannet_data`` / mmdetection3d ``scannet_instance_data``)
    in ``data_dir``:

    * points: ``<scene>_aligned_vert.npy``, ``<scene>_vert_all.npy`` or ``<scene>_vert.npy``,
      float (N, >= 6) = x, y, z, r, g, b (0..255). They are taken as already axis-aligned,
      EXCEPT ``<scene>_vert.npy`` when a ``<scene>_axis_align_matrix.npy`` lies next to it (the
      mmdetection3d export keeps unaligned vertices there): then the matrix is applied.
    * boxes: ``<scene>_aligned_bbox.npy`` or ``<scene>_bbox.npy``, (K, 7) = cx, cy, cz, dx, dy,
      dz, nyu40 id (geometric centre, full sizes, no yaw). Only the 18 detection classes are kept
      (:data:`SCANNET_NYU40_IDS`); other nyu40 ids are dropped.
    * split files ``scannetv2_{train,val,test}.txt`` (one scene id per line) in the dataset root
      or ``<root>/meta_data``.

(b) mmdetection3d info files, v0.x (``annos.gt_boxes_upright_depth`` (K, 6) + ``annos.class``) and
    v1.x (``data_list[i].instances[*].bbox_3d`` / ``bbox_label_3d`` + ``metainfo``). For ScanNet
    both store geometric-centre, axis-aligned boxes in the aligned frame (mmdetection3d builds its
    boxes from them with ``origin=(0.5, 0.5, 0.5)``), so they are used unchanged plus ``yaw=0``.
    Point files referenced by ``pts_path`` / ``lidar_path`` are mmdetection3d ``points/*.bin``:
    float32 (N, 6) UNALIGNED vertices; the record's ``axis_align_matrix`` is applied.

(c) A raw, unaligned scan + its axis-alignment matrix: aligned ``[x y z 1] @ M.T``
    (:func:`align_points`; :func:`load_scannet_raw_scan`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sr3d_ros.classes import (
    NYU40_TO_LABEL,
    SCANNET_CLASSES,
    SCANNET_NYU40_IDS,
    nyu40_boxes_to_labels,
)

from .mmdet3d_infos import InfoRecord, parse_mmdet3d_infos
from .sample import (
    PathLike,
    Sample,
    load_npy,
    load_points_bin,
)

__all__ = [
    "NYU40_TO_LABEL",
    "SCANNET_CLASSES",
    "SCANNET_NYU40_IDS",
    "ScanNetDataset",
    "ScanNetInfoDataset",
    "align_points",
    "load_scannet_raw_scan",
    "load_scannet_scene",
    "nyu40_boxes_to_labels",
    "read_axis_alignment_txt",
    "read_split_file",
]

Transform = Callable[[Sample], Sample]


def read_split_file(path: PathLike) -> list[str]:
    """Read a split file: one id per line; blank lines and ``#`` comments ignored.

    Raises:
        FileNotFoundError: missing file. ValueError: the file lists no ids (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"split file not found: {p}")
    ids = [ln.split("#", 1)[0].strip() for ln in p.read_text().splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise ValueError(f"{p}: split file lists no ids")
    return ids


def align_points(points: np.ndarray, axis_align_matrix: np.ndarray) -> np.ndarray:
    """Apply a ScanNet axis-alignment matrix: ``aligned_xyz = ([x, y, z, 1] @ M.T)[:, :3]``.

    Args:
        points: ``(N, C >= 3)`` float; columns 3.. (colours) are passed through.
        axis_align_matrix: ``(4, 4)`` rigid transform, raw sensor-mesh frame -> aligned frame.

    Returns:
        ``float32 (N, C)`` copy with aligned coordinates (computed in float64).

    Raises:
        ValueError: wrong shapes.
    """
    m = np.asarray(axis_align_matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"axis_align_matrix must be 4x4, got {m.shape}")
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"points must be (N, >=3), got {pts.shape}")
    out = pts.astype(np.float32, copy=True)
    xyz = pts[:, :3].astype(np.float64)
    out[:, :3] = xyz @ m[:3, :3].T + m[:3, 3]
    return out


def read_axis_alignment_txt(path: PathLike) -> np.ndarray:
    """Read ``axisAlignment = m00 m01 ... m33`` (row-major) from a raw ScanNet ``<scene>.txt``.

    Returns:
        ``float64 (4, 4)``; the identity when the file has no ``axisAlignment`` line (some test
        scenes).

    Raises:
        FileNotFoundError: missing file. ValueError: the line does not hold 16 numbers.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"scene meta file not found: {p}")
    for line in p.read_text().splitlines():
        if line.strip().startswith("axisAlignment"):
            vals = re.split(r"\s+", line.split("=", 1)[1].strip())
            try:
                nums = [float(v) for v in vals if v]
            except ValueError:
                raise ValueError(f"{p}: malformed axisAlignment line") from None
            if len(nums) != 16:
                raise ValueError(f"{p}: axisAlignment has {len(nums)} values, expected 16")
            return np.asarray(nums, np.float64).reshape(4, 4)
    return np.eye(4)


_POINT_SUFFIXES = ("_aligned_vert.npy", "_vert_all.npy", "_vert.npy")
_BOX_SUFFIXES = ("_aligned_bbox.npy", "_bbox.npy")


def _find(data_dir: Path, scene_id: str, suffixes: Sequence[str], what: str) -> Path:
    for s in suffixes:
        f = data_dir / f"{scene_id}{s}"
        if f.is_file():
            return f
    tried = ", ".join(str(data_dir / f"{scene_id}{s}") for s in suffixes)
    raise FileNotFoundError(f"ScanNet {what} for {scene_id} not found; tried {tried}")


def _load_export_points(data_dir: Path, scene_id: str) -> tuple[np.ndarray, dict[str, Any]]:
    f = _find(data_dir, scene_id, _POINT_SUFFIXES, "points")
    arr = load_npy(f, ndim=2, min_columns=6)
    pts = arr[:, :6].astype(np.float32)
    if not np.isfinite(pts).all():
        raise ValueError(f"{f}: non-finite values")
    meta: dict[str, Any] = {"points_file": str(f)}
    mfile = data_dir / f"{scene_id}_axis_align_matrix.npy"
    unaligned_export = f.name == f"{scene_id}_vert.npy"
    if unaligned_export and mfile.is_file():
        m = load_npy(mfile)
        if m.size != 16:
            raise ValueError(f"{mfile}: expected a 4x4 matrix, got shape {m.shape}")
        m = m.reshape(4, 4).astype(np.float64)
        pts = align_points(pts, m)
        meta["axis_align_matrix"] = m
    return pts, meta


def load_scannet_scene(
    data_dir: PathLike, scene_id: str, class_names: Sequence[str] = SCANNET_CLASSES
) -> Sample:
    """Load one scene of the per-scene export (layout (a) of the module docstring).

    Args:
        data_dir: folder holding ``<scene>_*vert*.npy`` and ``<scene>_*bbox.npy``.
        scene_id: e.g. ``"scene0000_00"``.
        class_names: must be :data:`SCANNET_CLASSES` (labels come from the nyu40 mapping); kept
            as a parameter so callers can pass it through.

    Returns:
        :class:`Sample`: points float32 (N, 6) aligned frame, rgb 0..255; gt_boxes float32
        (K, 7) yaw 0; gt_labels int64 (K,).

    Raises:
        FileNotFoundError: points or boxes file missing (lists the paths tried).
        ValueError: unreadable / mis-shaped file (names it), or non-standard ``class_names``.
    """
    if tuple(class_names) != SCANNET_CLASSES:
        raise ValueError(
            "ScanNet export labels come from nyu40 ids; class_names must be SCANNET_CLASSES"
        )
    d = Path(data_dir)
    pts, meta = _load_export_points(d, scene_id)
    bfile = _find(d, scene_id, _BOX_SUFFIXES, "boxes")
    bbox = load_npy(bfile)
    if bbox.size and (bbox.ndim != 2 or bbox.shape[1] != 7):
        raise ValueError(f"{bfile}: expected (K, 7) boxes, got {bbox.shape}")
    boxes, labels = nyu40_boxes_to_labels(bbox)
    meta["boxes_file"] = str(bfile)
    return Sample(
        points=pts,
        gt_boxes=boxes,
        gt_labels=labels,
        class_names=SCANNET_CLASSES,
        sample_id=scene_id,
        source="scannet",
        meta=meta,
    )


def _split_file(root: Path, split: str) -> Path:
    for cand in (root / f"scannetv2_{split}.txt", root / "meta_data" / f"scannetv2_{split}.txt"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        f"ScanNet split file scannetv2_{split}.txt not found in {root} or {root / 'meta_data'}"
    )


class ScanNetDataset:
    """ScanNet v2 from the per-scene export; ``torch.utils.data.Dataset``-compatible.

    Args:
        root: dataset root. Scene files are read from ``data_dir`` if given, else from
            ``root/scannet_instance_data`` when that folder exists, else from ``root``.
        split: ``"train"``, ``"val"`` or ``"test"``: scene ids from ``scannetv2_<split>.txt``
            (in ``root`` or ``root/meta_data``). Exclusive with ``scene_ids``.
        scene_ids: explicit list of scene ids.
        data_dir: folder with the export files (overrides the default above).
        transform: optional callable applied to each :class:`Sample` (e.g. an augmentation).

    ``dataset[i]`` returns a :class:`Sample` (see :func:`load_scannet_scene`); files are read on
    access (nothing is cached).

    Raises:
        ValueError: neither or both of ``split`` / ``scene_ids``.
        FileNotFoundError: missing split file at construction, missing scene files on access.
    """

    class_names: tuple[str, ...] = SCANNET_CLASSES

    def __init__(
        self,
        root: PathLike,
        split: str | None = None,
        scene_ids: Sequence[str] | None = None,
        *,
        data_dir: PathLike | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        if (split is None) == (scene_ids is None):
            raise ValueError("give exactly one of split or scene_ids")
        if data_dir is not None:
            self.data_dir = Path(data_dir)
        elif (self.root / "scannet_instance_data").is_dir():
            self.data_dir = self.root / "scannet_instance_data"
        else:
            self.data_dir = self.root
        self.split = split
        self.scene_ids: list[str] = (
            read_split_file(_split_file(self.root, split))
            if split is not None
            else [str(s) for s in scene_ids]  # type: ignore[union-attr]
        )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> Sample:
        sample = load_scannet_scene(self.data_dir, self.scene_ids[index])
        return self.transform(sample) if self.transform is not None else sample


def _record_boxes(rec: InfoRecord) -> np.ndarray:
    """ScanNet info boxes (geometric centre, axis-aligned) -> ours (yaw 0)."""
    boxes = np.zeros((len(rec.boxes), 7), np.float32)
    boxes[:, :6] = rec.boxes[:, :6]
    return boxes


class ScanNetInfoDataset:
    """ScanNet v2 from an mmdetection3d info file (v0.x or v1.x, auto-detected).

    Points for each record are found, in order:

    1. ``point_files[sample_id]`` if given -- treated as an mmdetection3d ``points/*.bin``
       (unaligned; the record's ``axis_align_matrix`` is applied when present);
    2. ``data_root / <pts_path or lidar_path>`` (also ``data_root/points/<name>`` for v1.x) --
       same treatment;
    3. the per-scene export files in ``export_dir`` (already aligned; no matrix applied).

    Args:
        info_path: the ``.pkl`` info file.
        data_root: folder the stored relative point paths are relative to (optional).
        export_dir: folder with ``<scene>_vert*.npy`` export files (optional fallback).
        point_files: explicit ``{sample_id: path}`` of ``.bin`` point files (optional).
        transform: optional callable applied to each :class:`Sample`.

    ``dataset[i]`` returns a :class:`Sample` with boxes from the info file (ours, yaw 0), labels
    mapped onto :data:`SCANNET_CLASSES`, and ``meta['axis_align_matrix']`` when stored.

    Raises:
        FileNotFoundError / ValueError: missing or malformed info file (construction), or no
        point file found / unreadable (access); messages name the paths.
    """

    class_names: tuple[str, ...] = SCANNET_CLASSES

    def __init__(
        self,
        info_path: PathLike,
        data_root: PathLike | None = None,
        *,
        export_dir: PathLike | None = None,
        point_files: Mapping[str, PathLike] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.info_path = Path(info_path)
        self.records = parse_mmdet3d_infos(self.info_path, SCANNET_CLASSES)
        self.data_root = Path(data_root) if data_root is not None else None
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.point_files = {k: Path(v) for k, v in (point_files or {}).items()}
        self.transform = transform

    @property
    def scene_ids(self) -> list[str]:
        """Scene ids in file order."""
        return [r.sample_id for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def _points(self, rec: InfoRecord) -> tuple[np.ndarray, dict[str, Any]]:
        tried: list[str] = []
        candidates: list[Path] = []
        if rec.sample_id in self.point_files:
            candidates.append(self.point_files[rec.sample_id])
        if self.data_root is not None and rec.points_path:
            candidates.append(self.data_root / rec.points_path)
            candidates.append(self.data_root / "points" / Path(rec.points_path).name)
        for c in candidates:
            tried.append(str(c))
            if c.is_file():
                pts = load_points_bin(c, 6)
                meta: dict[str, Any] = {"points_file": str(c)}
                if rec.axis_align_matrix is not None:
                    pts = align_points(pts, rec.axis_align_matrix)
                    meta["axis_align_matrix"] = rec.axis_align_matrix
                return pts, meta
        if self.export_dir is not None:
            try:
                return _load_export_points(self.export_dir, rec.sample_id)
            except FileNotFoundError as exc:
                tried.append(str(exc))
        what = "; ".join(tried) or "nothing (give data_root, export_dir or point_files)"
        raise FileNotFoundError(
            f"{self.info_path}: no point file for {rec.sample_id}; tried: {what}"
        )

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        pts, meta = self._points(rec)
        meta["info_version"] = rec.version
        sample = Sample(
            points=pts,
            gt_boxes=_record_boxes(rec),
            gt_labels=rec.labels,
            class_names=SCANNET_CLASSES,
            sample_id=rec.sample_id,
            source=f"scannet-info-{rec.version}",
            meta=meta,
        )
        return self.transform(sample) if self.transform is not None else sample


def load_scannet_raw_scan(
    bin_path: PathLike, info_path: PathLike, scene_id: str | None = None
) -> Sample:
    """Load a raw, UNALIGNED ScanNet scan and align it with the matrix from its info file.

    This is the live-sensor situation: the scan is not axis-aligned; ``axis_align_matrix`` (4x4,
    from the info's ``annos`` (v0.x) or entry (v1.x)) maps it to the aligned frame the boxes are
    labelled in: ``aligned = [x, y, z, 1] @ M.T``.

    Args:
        bin_path: float32 ``(N, 6)`` point file (x, y, z, r, g, b 0..255), unaligned.
        info_path: mmdetection3d info file holding the scene's record.
        scene_id: which record; default: the only record (error if several).

    Returns:
        :class:`Sample` in the aligned frame; ``meta['axis_align_matrix']`` holds M.

    Raises:
        FileNotFoundError: a file is missing. ValueError: malformed files, no/ambiguous record,
        or the record has no ``axis_align_matrix`` (names the info file).
    """
    ds = ScanNetInfoDataset(info_path)
    recs = ds.records
    if scene_id is not None:
        recs = [r for r in recs if r.sample_id == scene_id]
    if len(recs) != 1:
        raise ValueError(
            f"{info_path}: expected one record for scene {scene_id!r}, found {len(recs)}"
        )
    rec = recs[0]
    if rec.axis_align_matrix is None:
        raise ValueError(f"{info_path}: record {rec.sample_id} has no axis_align_matrix")
    ds.point_files = {rec.sample_id: Path(bin_path)}
    return ds[ds.records.index(rec)]
