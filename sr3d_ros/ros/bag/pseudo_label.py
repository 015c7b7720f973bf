"""``sr3d-bag pseudo-label``: a teacher model (any of ours: point-cloud or monocular) labels a
bag or an extracted dataset; the labels are written as a dataset (the format of
:mod:`sr3d_training.datasets.bag`, scores kept) and as a ``Detection3DArray`` topic in a review
bag beside the data, with a per-class summary (JSON and CSV).

Output folder ``OUT`` (written in ``OUT.partial``, renamed at the end; removed on an error)::

    OUT/dataset.json, manifest.jsonl, points/ | images/ + calib/, labels/   the dataset
    OUT/review/            an MCAP bag: per sample the cloud on /points (or the image on /image
                           and its /camera_info) and the labels on /pseudo_labels, with the
                           sample's original stamp and frame (play it with RViz)
    OUT/summary.json       {"teacher", "score", "classes", "samples", "per_class": {name:
                           {"boxes", "samples", "mean_score", "min_score", "max_score"}}}
    OUT/summary.csv        class,boxes,samples,mean_score,min_score,max_score

Labels keep the teacher's frame conventions: point-cloud boxes in the dataset frame; monocular
boxes in the camera body frame plus ``camera_boxes`` in the optical frame (review topic: the
optical-frame poses of :func:`~sr3d_ros.ros.bag.kitti.camera_box_poses`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PseudoLabelSummary", "is_bag", "pseudo_label"]

logger = logging.getLogger(__name__)


@dataclass
class PseudoLabelSummary:
    """What :func:`pseudo_label` wrote: the dataset folder, samples, boxes kept, per class
    statistics (``summary.json``'s ``per_class``), the review bag."""

    out: Path
    samples: int
    boxes: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    review_bag: Path | None = None


def is_bag(path: str | Path) -> bool:
    """A rosbag2 bag (folder with ``metadata.yaml`` or a ``.mcap`` / ``.db3`` file) rather than
    an extracted dataset folder."""
    p = Path(path)
    return p.suffix in (".mcap", ".db3") or (p / "metadata.yaml").is_file()


def _per_class(rows: list[tuple[str, float, str]]) -> dict[str, dict[str, float]]:
    """(class, score, sample id) per box -> per-class statistics."""
    out: dict[str, dict[str, float]] = {}
    for name in sorted({r[0] for r in rows}):
        s = np.array([r[1] for r in rows if r[0] == name])
        out[name] = {
            "boxes": int(len(s)),
            "samples": len({r[2] for r in rows if r[0] == name}),
            "mean_score": float(s.mean()),
            "min_score": float(s.min()),
            "max_score": float(s.max()),
        }
    return out


def _csv(per_class: dict[str, dict[str, float]]) -> str:
    buf = io.StringIO()
    keys = ["boxes", "samples", "mean_score", "min_score", "max_score"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", *keys])
    for name, st in per_class.items():
        w.writerow([name, *(st[k] if k in ("boxes", "samples") else f"{st[k]:.4f}" for k in keys)])
    return buf.getvalue()


class _Review:
    """The review bag's connections and per-sample writes."""

    def __init__(self, writer: Any, kind: str) -> None:
        from sr3d_ros.ros.bag.builders import CAMERA_INFO, DETECTION3DARRAY, IMAGE, POINTCLOUD2
        from sr3d_ros.ros.bag.typestore import make_typestore

        self.ts, self.w, self.kind = make_typestore(), writer, kind
        add = writer.add_connection
        if kind == "points":
            self.data = add("/points", POINTCLOUD2, typestore=self.ts)
        else:
            self.data = add("/image", IMAGE, typestore=self.ts)
            self.info = add("/camera_info", CAMERA_INFO, typestore=self.ts)
        self.labels = add("/pseudo_labels", DETECTION3DARRAY, typestore=self.ts)

    def write(self, sample: Any, stamp: int, frame: str, lab: dict[str, Any]) -> None:
        from sr3d_ros.ros.bag import builders as b
        from sr3d_ros.ros.bag.kitti import camera_box_poses

        ts = self.ts
        header = b.header_msg(ts, stamp, frame)
        if self.kind == "points":
            cloud = b.pointcloud2_msg(ts, header, sample.points)
            self.w.write(self.data, stamp, ts.serialize_cdr(cloud, b.POINTCLOUD2))
            msg = b.yaw_detection_array_msg(ts, header, lab["boxes"], lab["scores"], lab["names"])
        else:
            cam = sample.camera
            info = b.camera_info_msg(ts, header, cam.P, cam.width, cam.height)
            self.w.write(self.info, stamp, ts.serialize_cdr(info, b.CAMERA_INFO))
            img = b.image_msg(ts, header, sample.image)
            self.w.write(self.data, stamp, ts.serialize_cdr(img, b.IMAGE))
            c, q, s = camera_box_poses(np.asarray(lab["camera_boxes"]).reshape(-1, 7))
            msg = b.detection_array_msg(ts, header, c, q, s, lab["scores"], lab["names"])
        self.w.write(self.labels, stamp, ts.serialize_cdr(msg, b.DETECTION3DARRAY))


def pseudo_label(
    source: str | Path,
    checkpoint: str | Path | None,
    out: str | Path,
    score: float = 0.5,
    classes: Sequence[str] | None = None,
    device: str = "auto",
    extract_options: Any = None,
    progress: bool = False,
) -> PseudoLabelSummary:
    """Label a bag or an extracted dataset with a teacher (module docstring).

    Args:
        source: a bag (extracted first with ``extract_options``, into a temporary folder) or a
            dataset folder of :mod:`sr3d_training.datasets.bag` (its labels are ignored).
        checkpoint: the teacher (any kind; None = the embedded default point-cloud model).
        out: output folder to create. score: keep detections scoring at least this (0..1).
        classes: keep only these teacher classes (default: all).
        device: ``auto`` | ``cpu`` | ``cuda``.
        extract_options: :class:`~sr3d_ros.ros.bag.extract.ExtractOptions` for a bag source.
        progress: tqdm bars on stderr.

    Returns:
        :class:`PseudoLabelSummary`.

    Raises:
        FileNotFoundError / CheckpointError: missing source or teacher. FileExistsError: ``out``
        exists. ValueError: a score outside [0, 1], classes the teacher does not know, a
        teacher kind that does not fit the data (point-cloud teacher on images or the reverse),
        a bag without ``extract_options``; the bag errors of
        :func:`~sr3d_ros.ros.bag.extract.extract_bag`. ``out`` never appears half-written.
    """
    from sr3d_ros.inference import load_detector
    from sr3d_ros.io.atomic import atomic_write_json, atomic_write_text
    from sr3d_ros.ros.bag.builders import bag_writer
    from sr3d_ros.ros.bag.extract import extract_bag
    from sr3d_training.datasets.bag import BagDataset, BagDatasetWriter

    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must lie in [0, 1], got {score}")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: the output folder already exists")
    # the teacher's own threshold at the score: nothing above it is capped away
    det: Any = load_detector(checkpoint, device=device, score_threshold=score)
    names = tuple(det.class_names)
    unknown = sorted(set(classes or ()) - set(names))
    if unknown:
        raise ValueError(f"classes {unknown} are not the teacher's; it knows {list(names)}")
    keep = set(classes or names)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        src = Path(source)
        if is_bag(src):
            if extract_options is None:
                raise ValueError(f"{src} is a bag: say which topic to label (extract options)")
            src = extract_bag(src, Path(tmp) / "source", extract_options, progress=progress).out
        data = BagDataset(src)
        mono = det.__class__.__name__ == "MonoDetector"
        if mono != (data.kind == "images"):
            kind = "monocular" if mono else "point-cloud"
            raise ValueError(f"a {kind} teacher cannot label {data.kind} samples ({src})")
        source_info = {
            "source": str(Path(source).resolve()),
            "teacher": str(checkpoint or "default"),
            "score": score,
            "classes": sorted(keep),
        }
        writer = BagDatasetWriter(out, source_info, data.kind)
        rows: list[tuple[str, float, str]] = []
        try:
            with bag_writer(writer.tmp / "review") as bw, bw:
                review = _Review(bw, data.kind)
                it: Any = range(len(data))
                if progress:
                    from tqdm import tqdm

                    it = tqdm(it, unit="sample", desc="pseudo-label", dynamic_ncols=True)
                for i in it:
                    sample, entry = data[i], data.entries[i]
                    d = det(sample.image, sample.camera) if mono else det(sample.points)
                    sel = (d.scores >= score).cpu().numpy()
                    sel &= np.isin(np.asarray(d.names), sorted(keep))
                    lab: dict[str, Any] = {
                        "boxes": d.boxes.cpu().numpy()[sel],
                        "names": [n for n, k in zip(d.names, sel) if k],
                        "scores": d.scores.cpu().numpy()[sel],
                    }
                    if mono and d.camera_boxes is not None:
                        lab["camera_boxes"] = d.camera_boxes.cpu().numpy()[sel]
                    base = {k: entry[k] for k in ("id", "bag", "topic", "stamp_ns", "frame_id")}
                    base["index"] = entry.get("index", i)
                    if mono:
                        calib = json.loads((data.root / entry["calib"]).read_text())
                        writer.add(base, image=sample.image, calib=calib, labels=lab)
                    else:
                        writer.add(base, points=sample.points, labels=lab)
                    stamp = int(entry.get("stamp_ns", i))
                    review.write(sample, stamp, str(data.meta["frame_id"]), lab)
                    sid = str(entry["id"])
                    rows += [(n, float(v), sid) for n, v in zip(lab["names"], lab["scores"])]
            per_class = _per_class(rows)
            summary = {**source_info, "samples": len(data), "boxes": len(rows)}
            summary["per_class"] = per_class
            atomic_write_json(writer.tmp / "summary.json", summary)
            atomic_write_text(writer.tmp / "summary.csv", _csv(per_class))
            writer.finish(list(names), str(data.meta["frame_id"]))
        except BaseException:
            writer.discard()
            raise
    logger.info("pseudo-labelled %d samples: %d boxes", len(data), len(rows))
    return PseudoLabelSummary(out, len(data), len(rows), per_class, out / "review")
