"""mmdetection3d indoor info files (v0.x list-of-dicts and v1.x ``{"metainfo", "data_list"}``).

:func:`parse_mmdet3d_infos` reads one (with the strict unpickler
:func:`~sr3d_training.datasets.sample.load_pickle_strict`) into :class:`InfoRecord` objects whose
boxes are AS STORED; the dataset modules (:mod:`.scannet`, :mod:`.sunrgbd`) convert them to our
box convention. Errors name the file and the entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .sample import PathLike, load_pickle_strict

__all__ = ["InfoRecord", "parse_mmdet3d_infos"]


@dataclass
class InfoRecord:
    """One entry of an mmdetection3d info file, boxes AS STORED (no convention change yet).

    Attributes:
        sample_id: scene / frame id (v0.x ``point_cloud.lidar_idx``; v1.x ``sample_idx`` or the
            stem of ``lidar_points.lidar_path``).
        boxes: ``float64 (K, 6 or 7)`` as stored (v0.x ``annos.gt_boxes_upright_depth``, v1.x
            ``instances[*].bbox_3d``). Convention is format- and dataset-specific: the dataset
            modules convert (see :mod:`.scannet`, :mod:`.sunrgbd`).
        labels: ``int64 (K,)`` indices into the caller's ``class_names`` (re-mapped by name when
            the file's metainfo names its classes; boxes of unknown classes are dropped).
        points_path: relative point-file path as stored (``pts_path`` / ``lidar_path``) or None.
        axis_align_matrix: ``float64 (4, 4)`` when stored (ScanNet), else None.
        version: ``"v0"`` or ``"v1"``.
        raw: the untouched entry (plain dict).
    """

    sample_id: str
    boxes: np.ndarray
    labels: np.ndarray
    points_path: str | None
    axis_align_matrix: np.ndarray | None
    version: Literal["v0", "v1"]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def _label_map(
    file_classes: Sequence[str] | None, class_names: Sequence[str]
) -> dict[int, int] | None:
    if file_classes is None:
        return None
    ours = {c: i for i, c in enumerate(class_names)}
    return {i: ours[c] for i, c in enumerate(file_classes) if c in ours}


def _v1_file_classes(metainfo: Mapping[str, Any]) -> list[str] | None:
    cats = metainfo.get("categories")
    if isinstance(cats, Mapping) and cats:
        return [name for name, _ in sorted(cats.items(), key=lambda kv: int(kv[1]))]
    classes = metainfo.get("classes")
    if isinstance(classes, (list, tuple)) and classes:
        return [str(c) for c in classes]
    return None


def _as_matrix(value: Any, where: str) -> np.ndarray | None:
    if value is None:
        return None
    m = np.asarray(value, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"{where}: axis_align_matrix must be 4x4, got {m.shape}")
    return m


def parse_mmdet3d_infos(path: PathLike, class_names: Sequence[str]) -> list[InfoRecord]:
    """Read an mmdetection3d indoor info file (v0.x or v1.x, auto-detected) into records.

    * v0.x: a ``list`` of dicts with ``point_cloud.lidar_idx``, optional ``pts_path`` and
      ``annos`` (``gt_num``, ``gt_boxes_upright_depth`` (K, 6|7), ``class`` (K,) indices into the
      dataset's standard class order, optional ``axis_align_matrix``).
    * v1.x: a ``dict`` with ``metainfo`` (optional ``categories`` {name: index} or ``classes``) and
      ``data_list`` of dicts with ``lidar_points.lidar_path``, ``instances[*].bbox_3d`` /
      ``bbox_label_3d`` and optional ``axis_align_matrix``.

    Args:
        path: the ``.pkl`` file (loaded with :func:`load_pickle_strict`).
        class_names: our class list; labels are mapped onto it by name when the file names its
            classes, else taken as indices in the standard order. Labels outside it (or < 0,
            mmdet3d's "ignore") are dropped with their boxes.

    Returns:
        One :class:`InfoRecord` per entry, boxes as stored.

    Raises:
        FileNotFoundError: missing file. ValueError: unknown layout or malformed entries (names
        the file and entry index).
    """
    p = Path(path)
    obj = load_pickle_strict(p)
    records: list[InfoRecord] = []
    n_cls = len(class_names)
    if isinstance(obj, list):
        for i, info in enumerate(obj):
            where = f"{p} [entry {i}]"
            if not isinstance(info, dict):
                raise ValueError(f"{where}: expected a dict, got {type(info).__name__}")
            try:
                sid = str(info["point_cloud"]["lidar_idx"])
            except (KeyError, TypeError):
                raise ValueError(f"{where}: missing point_cloud.lidar_idx") from None
            annos = info.get("annos") or {}
            gt_num = int(annos.get("gt_num", 0)) if isinstance(annos, dict) else 0
            if gt_num > 0:
                try:
                    boxes = np.asarray(annos["gt_boxes_upright_depth"], dtype=np.float64)
                    labels = np.asarray(annos["class"], dtype=np.int64).reshape(-1)
                except KeyError as exc:
                    raise ValueError(f"{where}: annos lacks {exc}") from None
            else:
                boxes = np.zeros((0, 7), np.float64)
                labels = np.zeros((0,), np.int64)
            boxes = boxes.reshape(len(labels), -1) if len(labels) else boxes.reshape(0, -1)
            if boxes.shape[1] not in (6, 7) or len(boxes) != len(labels):
                raise ValueError(f"{where}: boxes {boxes.shape} / labels {labels.shape} mismatch")
            keep = (labels >= 0) & (labels < n_cls)
            records.append(
                InfoRecord(
                    sample_id=sid,
                    boxes=boxes[keep],
                    labels=labels[keep],
                    points_path=info.get("pts_path"),
                    axis_align_matrix=_as_matrix(
                        annos.get("axis_align_matrix") if isinstance(annos, dict) else None, where
                    ),
                    version="v0",
                    raw=info,
                )
            )
        return records
    if isinstance(obj, dict) and "data_list" in obj:
        metainfo = obj.get("metainfo") or {}
        mapping = _label_map(_v1_file_classes(metainfo), class_names)
        for i, info in enumerate(obj["data_list"]):
            where = f"{p} [data_list {i}]"
            if not isinstance(info, dict):
                raise ValueError(f"{where}: expected a dict, got {type(info).__name__}")
            lidar = info.get("lidar_points") or {}
            lidar_path = lidar.get("lidar_path") if isinstance(lidar, dict) else None
            sample_idx = Path(str(lidar_path)).stem if lidar_path else info.get("sample_idx")
            if sample_idx is None:
                raise ValueError(f"{where}: neither sample_idx nor lidar_points.lidar_path")
            rows, labs = [], []
            for j, inst in enumerate(info.get("instances") or []):
                try:
                    box = np.asarray(inst["bbox_3d"], dtype=np.float64).reshape(-1)
                    lab = int(inst["bbox_label_3d"])
                except (KeyError, TypeError, ValueError):
                    raise ValueError(
                        f"{where}: instance {j} lacks bbox_3d / bbox_label_3d"
                    ) from None
                if box.shape[0] not in (6, 7):
                    raise ValueError(f"{where}: instance {j} bbox_3d has {box.shape[0]} values")
                if mapping is not None:
                    lab = mapping.get(lab, -1)
                if 0 <= lab < n_cls:
                    rows.append(box)
                    labs.append(lab)
            width = max((len(r) for r in rows), default=7)
            boxes = np.zeros((len(rows), width), np.float64)
            for k, r in enumerate(rows):
                boxes[k, : len(r)] = r
            records.append(
                InfoRecord(
                    sample_id=str(sample_idx),
                    boxes=boxes,
                    labels=np.asarray(labs, np.int64),
                    points_path=str(lidar_path) if lidar_path else None,
                    axis_align_matrix=_as_matrix(info.get("axis_align_matrix"), where),
                    version="v1",
                    raw=info,
                )
            )
        return records
    raise ValueError(
        f"{p}: not an mmdetection3d info file (expected a list (v0.x) or a dict with "
        f"'data_list' (v1.x), got {type(obj).__name__})"
    )
