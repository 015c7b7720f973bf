"""The dataset commands of ``sr3d-bag``: ``extract`` and ``pseudo-label`` (see
:mod:`sr3d_ros.ros.bag.extract` and :mod:`sr3d_ros.ros.bag.pseudo_label`)::

    sr3d-bag extract BAG --out DIR (--points-topic T | --image-topic T --camera-info-topic T)
        [--gt-topic T] [--target-frame F | --gravity-matrix V*16 | --gravity-rpy R P Y
        --gravity-translation X Y Z] [--every N] [--sync-tolerance S] [--tf-tolerance S]
        [--class-names C ...] [--resume] [-q]
    sr3d-bag pseudo-label BAG|DIR --out DIR [--checkpoint teacher.pt] [--score 0.5]
        [--classes C ...] [--device auto] [the extract source options for a bag] [-q]
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_dataset_commands"]


def _gravity(a: argparse.Namespace) -> tuple[float, ...] | None:
    """The --gravity-* options as 16 row-major values (None when none is given)."""
    if a.gravity_matrix is None and a.gravity_rpy is None and a.gravity_translation is None:
        return None
    from sr3d_ros.frames import transform_from_params

    T = transform_from_params(a.gravity_matrix, a.gravity_rpy, a.gravity_translation)
    return tuple(float(v) for v in T.reshape(16))


def _options(a: argparse.Namespace) -> Any:
    """ExtractOptions from the parsed source options (None without a topic)."""
    from sr3d_ros.ros.bag import ExtractOptions

    if a.points_topic is None and a.image_topic is None:
        return None
    return ExtractOptions(
        points_topic=a.points_topic,
        image_topic=a.image_topic,
        camera_info_topic=a.camera_info_topic,
        gt_topic=getattr(a, "gt_topic", None),
        target_frame=a.target_frame,
        gravity_transform=_gravity(a),
        every=a.every,
        sync_tolerance_s=a.sync_tolerance,
        tf_tolerance_s=a.tf_tolerance,
    )


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _cmd_extract(a: argparse.Namespace) -> int:
    from sr3d_ros.ros.bag import extract_bag

    opts = _options(a)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops like Ctrl-C: resumable
    try:
        names = a.class_names or ()
        s = extract_bag(a.bag, a.out, opts, a.resume, progress=not a.quiet, class_names=names)
    except KeyboardInterrupt:
        print(
            f"sr3d-bag extract: interrupted; the samples written so far are in "
            f"{a.out}.partial (rerun with --resume to continue)",
            file=sys.stderr,
        )
        return 1
    print(
        f"wrote {s.out}: {s.samples} samples ({s.written} now, {s.samples - s.written} resumed), "
        f"{s.labelled} with labels, frame {s.frame_id!r}, {s.messages} messages read at "
        f"{s.messages_per_s:.1f} msg/s"
    )
    return 0


def _cmd_pseudo_label(a: argparse.Namespace) -> int:
    from sr3d_ros.ros.bag.pseudo_label import pseudo_label

    s = pseudo_label(
        a.source,
        a.checkpoint,
        a.out,
        score=a.score,
        classes=a.classes,
        device=a.device,
        extract_options=_options(a),
        progress=not a.quiet,
    )
    print(f"wrote {s.out}: {s.samples} samples, {s.boxes} labels at score >= {a.score}")
    print(f"{'class':<16} {'boxes':>6} {'samples':>8} {'mean score':>11}")
    for name, st in s.per_class.items():
        print(f"{name:<16} {st['boxes']:>6} {st['samples']:>8} {st['mean_score']:>11.3f}")
    print(f"review bag: {s.review_bag} (/pseudo_labels with the data; sr3d-bag play it)")
    return 0


def _add_source_options(p: argparse.ArgumentParser, required: bool) -> None:
    """Topic, frame and subsampling options of a bag source."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--points-topic", help="PointCloud2 topic (point-cloud samples)")
    src.add_argument("--image-topic", help="Image topic (monocular samples; --camera-info-topic)")
    p.add_argument("--camera-info-topic", help="CameraInfo topic of --image-topic")
    p.add_argument(
        "--target-frame",
        help="move clouds and labels into this gravity-aligned (z up) frame through /tf_static "
        "and /tf at each stamp",
    )
    p.add_argument(
        "--gravity-matrix",
        type=float,
        nargs=16,
        metavar="V",
        help="without --target-frame: the node's gravity_transform.matrix (16 values, row-major, "
        "input frame -> gravity-aligned)",
    )
    p.add_argument("--gravity-rpy", type=float, nargs=3, metavar=("R", "P", "Y"))
    p.add_argument("--gravity-translation", type=float, nargs=3, metavar=("X", "Y", "Z"))
    p.add_argument("--every", type=int, default=1, help="keep every N-th message (default 1)")
    p.add_argument(
        "--sync-tolerance",
        type=float,
        default=0.05,
        metavar="S",
        help="max stamp difference (s) of the labels / camera info to a sample (default 0.05)",
    )
    p.add_argument(
        "--tf-tolerance",
        type=float,
        default=0.0,
        metavar="S",
        help="how far (s) outside the recorded /tf a lookup may fall (default 0, as tf2)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_dataset_commands(sub: Any) -> None:
    """Add ``extract`` and ``pseudo-label`` to ``sr3d-bag``'s subparsers."""
    e = sub.add_parser(
        "extract",
        help="a training dataset from a bag (sr3d_training.datasets.bag format; atomic, resumable)",
    )
    e.add_argument("bag", type=Path, help="bag folder or .mcap / .db3 file")
    e.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    _add_source_options(e, required=True)
    e.add_argument("--gt-topic", help="Detection3DArray topic with ground truth (optional)")
    e.add_argument("--class-names", nargs="+", help="label order (default: from the bag)")
    e.add_argument("--resume", action="store_true", help="continue an interrupted extract")
    e.set_defaults(func=_cmd_extract)

    p = sub.add_parser(
        "pseudo-label",
        help="label a bag or an extracted dataset with a teacher model: dataset + review bag + "
        "per-class summary",
    )
    p.add_argument("source", type=Path, help="bag (give its topic) or extracted dataset folder")
    p.add_argument("--out", type=Path, required=True, help="output folder to create")
    p.add_argument(
        "--checkpoint", default=None, help="teacher checkpoint, any kind (default: embedded model)"
    )
    p.add_argument("--score", type=float, default=0.5, help="keep labels scoring >= this")
    p.add_argument("--classes", nargs="+", help="keep only these classes (default: all)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    _add_source_options(p, required=False)
    p.set_defaults(func=_cmd_pseudo_label)
