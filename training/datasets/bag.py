"""Datasets extracted from recorded bags (``sr3d-bag extract`` / ``pseudo-label``): the on-disk
format, its atomic writer and its reader (ROS-free: numpy, json, Pillow).

On-disk format (version 1), a folder ``DIR``::

    DIR/dataset.json     {"format": "sr3d-bag-dataset", "version": 1,
                          "kind": "points" | "images", "frame_id": the samples' frame,
                          "class_names": [...], "samples": N, "source": {how it was made}}
    DIR/manifest.jsonl   one JSON object per sample, in bag order:
                          {"id", "bag" (absolute path), "topic", "stamp_ns" (header stamp),
                           "frame_id" (the message's own frame), "index" (message index on the
                           topic), "points" | "image" + "calib", "labels" (or null)}
    DIR/points/ID.npy    float32 (N, 6): x, y, z metres in dataset.json's frame_id (gravity-
                         aligned, z up, when extracted with a target frame or gravity transform),
                         r, g, b 0..255 (0 when the cloud has no colour)
    DIR/images/ID.png    8-bit RGB, lossless
    DIR/calib/ID.json    {"P": 3x4 (K [I | t]), "width", "height", "frame_id"}: the camera
                         (sr3d_ros.geometry.camera.PinholeCamera), optical frame
    DIR/labels/ID.json   {"boxes": (M, 7) our boxes (x, y, z, dx, dy, dz, yaw; geometric centre,
                          full sizes, yaw about +z) in the dataset frame (points) or in the
                          camera body frame (images: x forward, y left, z up), "names": M class
                          names, "scores": M scores (1 for ground truth), and for images
                          "camera_boxes": (M, 7) KITTI camera boxes (x, y, z bottom centre,
                          l, h, w, ry) in the optical frame}

Sample ids are the zero-padded message index on the extracted topic (``000042``), so ``--every``
and ``--resume`` keep them stable. Writing is atomic: everything goes to ``DIR.partial`` (each
file itself written atomically, the manifest line appended after the sample's files exist) and
the folder is renamed to ``DIR`` at the end; an interrupted extract leaves ``DIR.partial``,
which :class:`BagDatasetWriter` with ``resume=True`` continues.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sr3d_ros.geometry.camera import PinholeCamera, boxes_to_camera_boxes
from sr3d_ros.io.atomic import atomic_write, atomic_write_json

from .bag_kitti import projected_kitti_objects
from .sample import PathLike, Sample

__all__ = [
    "FORMAT",
    "BagDataset",
    "BagDatasetWriter",
    "bag_dataset_kind",
    "bag_eval_set",
    "partial_dir",
    "read_manifest",
]

FORMAT = "sr3d-bag-dataset"
VERSION = 1


def partial_dir(out: PathLike) -> Path:
    """The folder an unfinished dataset ``out`` is written in: ``out.partial`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def read_manifest(root: PathLike) -> list[dict[str, Any]]:
    """The manifest entries of a dataset folder (finished or ``.partial``), in order; a last
    line cut short by an interruption is ignored.

    Raises:
        FileNotFoundError: no manifest. ValueError: a malformed line that is not the last one.
    """
    path = Path(root) / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{root}: no manifest.jsonl (not an extracted bag dataset)")
    lines = path.read_text().split("\n")
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n >= len(lines) - 1:  # the line being written when interrupted
                break
            raise ValueError(f"{path}:{n}: malformed manifest line ({exc})") from None
    return out


def _save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


def _save_png(path: Path, rgb: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))


class BagDatasetWriter:
    """Writes a dataset in the module's format, atomically, resumably.

    Args:
        out: the dataset folder to create (must not exist).
        source: how the samples are made (bag, topics, frames, options): stored in
            ``dataset.json``; a resumed run must pass the same.
        kind: ``"points"`` or ``"images"``.
        resume: continue ``out.partial`` if it exists (its ``source`` must equal ``source``).

    Raises:
        FileExistsError: ``out`` exists, or ``out.partial`` exists and ``resume`` is False.
        ValueError: ``resume`` with a ``.partial`` made with other options, or a bad ``kind``.
    """

    def __init__(
        self, out: PathLike, source: Mapping[str, Any], kind: str, resume: bool = False
    ) -> None:
        if kind not in ("points", "images"):
            raise ValueError(f"kind must be 'points' or 'images', got {kind!r}")
        self.out = Path(out)
        self.tmp = partial_dir(self.out)
        self.source = json.loads(json.dumps(dict(source), default=str))
        self.kind = kind
        if self.out.exists():
            raise FileExistsError(f"{self.out}: the dataset folder already exists")
        head = {"format": FORMAT, "version": VERSION, "kind": kind, "source": self.source}
        self.entries: list[dict[str, Any]] = []
        if self.tmp.exists():
            if not resume:
                raise FileExistsError(
                    f"{self.tmp}: an interrupted extract is there; continue it with --resume "
                    "or remove it"
                )
            old = json.loads((self.tmp / "partial.json").read_text())
            if old != head:
                raise ValueError(
                    f"{self.tmp}: made with other options than this run's; remove it or rerun "
                    f"with the same options (it has {old.get('source')})"
                )
            self.entries = read_manifest(self.tmp)
        else:
            self.tmp.mkdir(parents=True)
            atomic_write_json(self.tmp / "partial.json", head)
        # rewrite the manifest without a line cut short by an interruption
        text = "".join(json.dumps(e) + "\n" for e in self.entries)
        atomic_write(self.tmp / "manifest.jsonl", lambda f: f.write(text.encode()))
        self.done = {str(e["id"]) for e in self.entries}
        self._manifest = (self.tmp / "manifest.jsonl").open("a", encoding="utf-8")

    def add(
        self,
        entry: Mapping[str, Any],
        points: np.ndarray | None = None,
        image: np.ndarray | None = None,
        calib: Mapping[str, Any] | None = None,
        labels: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one sample's files, then its manifest line.

        Args:
            entry: ``id``, ``bag``, ``topic``, ``stamp_ns``, ``frame_id``, ``index``.
            points: ``(N, 6)`` float32 (kind ``points``). image: ``uint8 (H, W, 3)`` RGB and
                calib ``{"P", "width", "height", "frame_id"}`` (kind ``images``).
            labels: ``{"boxes", "names", "scores"[, "camera_boxes"]}`` or None (no labels).

        Raises:
            ValueError: the arrays the kind needs are missing or mis-shaped.
        """
        sid = str(entry["id"])
        e = dict(entry, id=sid, labels=None)
        if self.kind == "points":
            pts = np.ascontiguousarray(points, dtype=np.float32) if points is not None else None
            if pts is None or pts.ndim != 2 or pts.shape[1] != 6:
                raise ValueError(f"sample {sid}: points must be (N, 6)")
            e["points"] = f"points/{sid}.npy"
            _save_npy(self.tmp / e["points"], pts)
        else:
            if image is None or calib is None:
                raise ValueError(f"sample {sid}: an image sample needs image and calib")
            e["image"], e["calib"] = f"images/{sid}.png", f"calib/{sid}.json"
            _save_png(self.tmp / e["image"], np.asarray(image, np.uint8))
            atomic_write_json(self.tmp / e["calib"], dict(calib))
        if labels is not None:
            e["labels"] = f"labels/{sid}.json"
            atomic_write_json(self.tmp / e["labels"], _labels_json(labels))
        self._manifest.write(json.dumps(e) + "\n")
        self._manifest.flush()
        os.fsync(self._manifest.fileno())
        self.entries.append(e)
        self.done.add(sid)

    def finish(self, class_names: Sequence[str], frame_id: str) -> Path:
        """Write ``dataset.json`` and rename ``out.partial`` to ``out``; returns ``out``.

        ``class_names`` is extended by any label name it lacks (in order of appearance).
        """
        self._manifest.close()
        names = list(class_names)
        for e in self.entries:
            if e.get("labels"):
                for n in json.loads((self.tmp / e["labels"]).read_text())["names"]:
                    if n not in names:
                        names.append(n)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "frame_id": frame_id,
            "class_names": names,
            "samples": len(self.entries),
            "source": self.source,
        }
        atomic_write_json(self.tmp / "dataset.json", meta)
        (self.tmp / "partial.json").unlink()
        os.rename(self.tmp, self.out)
        return self.out

    def close(self) -> None:
        """Stop without finishing (``out.partial`` stays for ``resume``)."""
        self._manifest.close()

    def discard(self) -> None:
        """Stop and remove ``out.partial``."""
        self._manifest.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _labels_json(labels: Mapping[str, Any]) -> dict[str, Any]:
    boxes = np.asarray(labels["boxes"], np.float64).reshape(-1, 7)
    names = [str(n) for n in labels["names"]]
    scores = np.asarray(labels.get("scores", np.ones(len(names))), np.float64).reshape(-1)
    if not len(boxes) == len(names) == len(scores):
        raise ValueError(f"labels: {len(boxes)} boxes, {len(names)} names, {len(scores)} scores")
    out: dict[str, Any] = {"boxes": boxes.tolist(), "names": names, "scores": scores.tolist()}
    if "camera_boxes" in labels:
        out["camera_boxes"] = np.asarray(labels["camera_boxes"], np.float64).reshape(-1, 7).tolist()
    return out


class BagDataset:
    """Samples of an extracted bag dataset (module docstring) as :class:`Sample` objects.

    Image samples hold the labels that are in view (:mod:`.bag_kitti`): ``gt_boxes`` (camera
    body frame), ``meta["camera_boxes"]`` (KITTI camera boxes, optical frame),
    ``meta["kitti"]`` (:class:`~.kitti.KittiObjects` with projected 2D boxes, truncation from
    the clipped fraction, occlusion 0: what the monocular training and the KITTI evaluator
    read) and ``meta["scores"]``; point samples hold every kept label.

    Args:
        root: the dataset folder.
        class_names: label order of :attr:`Sample.gt_labels` (default: ``dataset.json``'s).
        class_map: ``{name in the dataset: name in class_names, or None to drop}``; names
            neither mapped nor in ``class_names`` are dropped (fine-tuning on another class
            list maps them explicitly).
        min_score: labels scoring below are dropped (pseudo-labels).
        labelled_only: only samples that have labels.

    Raises:
        FileNotFoundError: not a dataset folder (no ``dataset.json``; a ``.partial`` folder is
        named as unfinished). ValueError: another format or version, or a ``class_map`` target
        outside ``class_names``.
    """

    def __init__(
        self,
        root: PathLike,
        class_names: Sequence[str] | None = None,
        class_map: Mapping[str, str | None] | None = None,
        min_score: float = 0.0,
        labelled_only: bool = False,
    ) -> None:
        self.root = Path(root)
        meta_path = self.root / "dataset.json"
        if not meta_path.is_file():
            hint = " (unfinished: resume the extract)" if partial_dir(self.root).exists() else ""
            raise FileNotFoundError(f"{self.root}: no dataset.json, not a bag dataset{hint}")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise ValueError(
                f"{meta_path}: format {self.meta.get('format')!r} version "
                f"{self.meta.get('version')!r}, expected {FORMAT!r} {VERSION}"
            )
        self.kind = str(self.meta["kind"])
        self.class_names = tuple(class_names or self.meta["class_names"])
        self.class_map = dict(class_map or {})
        bad = {v for v in self.class_map.values() if v is not None} - set(self.class_names)
        if bad:
            raise ValueError(f"class_map targets {sorted(bad)} are not in {self.class_names}")
        self.min_score = float(min_score)
        self.entries = read_manifest(self.root)
        if labelled_only:
            self.entries = [e for e in self.entries if e.get("labels")]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def sample_ids(self) -> list[str]:
        """Sample ids in order."""
        return [str(e["id"]) for e in self.entries]

    def labels(self, index: int) -> dict[str, Any] | None:
        """The raw labels JSON of sample ``index`` (None without labels)."""
        rel = self.entries[index].get("labels")
        return None if not rel else dict(json.loads((self.root / rel).read_text()))

    def _mapped(self, lab: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keep mask, labels of kept, scores of kept) for raw labels."""
        if lab is None:
            return np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0)
        idx = {n: i for i, n in enumerate(self.class_names)}
        keep, labels = [], []
        for name, score in zip(lab["names"], lab["scores"]):
            target = self.class_map.get(name, name) if name in self.class_map else name
            ok = target is not None and target in idx and score >= self.min_score
            keep.append(ok)
            if ok:
                labels.append(idx[str(target)])
        k = np.asarray(keep, bool)
        return k, np.asarray(labels, np.int64), np.asarray(lab["scores"], np.float64)[k]

    def __getitem__(self, index: int) -> Sample:
        e = self.entries[index]
        lab = self.labels(index)
        keep, labels, scores = self._mapped(lab)
        gt = np.asarray(lab["boxes"], np.float64).reshape(-1, 7)[keep] if lab else np.zeros((0, 7))
        meta: dict[str, Any] = {
            k: e[k] for k in ("bag", "topic", "stamp_ns", "frame_id", "index") if k in e
        }
        sid = str(e["id"])
        if self.kind == "points":
            points = np.load(self.root / e["points"], allow_pickle=False)
            meta["scores"] = scores
            return Sample(points, gt, labels, self.class_names, sid, "bag", meta=meta)
        calib = json.loads((self.root / e["calib"]).read_text())
        with Image.open(self.root / e["image"]) as im:
            image = np.asarray(im.convert("RGB"), np.uint8).copy()
        P = np.asarray(calib["P"], np.float64)
        camera = PinholeCamera(P, int(calib["width"]), int(calib["height"]))
        # image labels in view: boxes, KITTI camera boxes and KITTI objects (bag_kitti)
        if lab is not None and "camera_boxes" in lab:
            cam = np.asarray(lab["camera_boxes"], np.float64).reshape(-1, 7)[keep]
        else:  # labels written without them: the same boxes from the body frame
            cam = boxes_to_camera_boxes(torch.from_numpy(gt)).numpy()
        names = [self.class_names[i] for i in labels]
        objects, seen = projected_kitti_objects(cam, names, camera, scores)
        meta |= {"kitti": objects, "camera_boxes": cam[seen], "scores": scores[seen]}
        empty = np.zeros((0, 6), np.float32)
        return Sample(
            empty, gt[seen], labels[seen], self.class_names, sid, "bag", meta=meta,
            image=image, camera=camera,
        )  # fmt: skip


def bag_eval_set(
    root: PathLike,
    class_names: Sequence[str] | None,
    ids: Sequence[str] | None = None,
    kind: str = "points",
) -> BagDataset:
    """The labelled samples of a bag dataset for evaluation (``sr3d-eval --data bag:DIR``),
    labels in ``class_names`` order (other names dropped; None: the dataset's own list, as the
    KITTI evaluator wants for images: its neighbour classes such as Van stay), optionally only
    ``ids``.

    Args:
        kind: the samples the evaluated model takes, ``"points"`` or ``"images"``.

    Raises:
        FileNotFoundError: not a dataset folder. ValueError: samples of the other kind, unknown
        ids, or no labelled samples.
    """
    ds = BagDataset(root, class_names, labelled_only=True)
    if ds.kind != kind:
        raise ValueError(f"{root}: a dataset of {ds.kind}; this model is evaluated on {kind}")
    if ids:
        missing = sorted(set(ids) - set(ds.sample_ids))
        if missing:
            raise ValueError(f"{root}: no labelled samples {missing}")
        ds.entries = [e for e in ds.entries if str(e["id"]) in set(ids)]
    if not len(ds):
        raise ValueError(f"{root}: no samples with labels to evaluate")
    return ds


def bag_dataset_kind(root: PathLike) -> str:
    """``"points"`` or ``"images"``: the kind of samples of the dataset folder ``root``.

    Raises:
        FileNotFoundError / ValueError: as :class:`BagDataset` (not a finished dataset, another
        format or version).
    """
    return BagDataset(root).kind
