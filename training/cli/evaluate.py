"""``sr3d-eval --checkpoint model.pt --data ROOT|bag:DIR --ids scene... [--oracle-scores iou]``.

Runs the standard indoor protocol (per-class AP at IoU 0.25 and 0.5, mAP over classes with
ground truth), prints a per-class table and writes JSON. ``--oracle-scores iou`` also scores the
same boxes with each score replaced by the box's IoU with its best-matching ground truth, and
prints both mAPs side by side (the ranking gap SR3D targets).

``--dataset kitti`` scores KITTI result files (``--predictions DIR``) or runs a monocular
checkpoint on the frames (``--checkpoint mono.pt``): AP|R40 table, the Car 3D AP next to the
ceiling the labels reach, and the depth error of matched cars.

``--data bag:DIR`` evaluates the labelled samples of an extracted bag dataset: clouds with the
indoor protocol, images (``--checkpoint mono.pt``) with the KITTI one, where the 2D boxes are
the projected 3D boxes and truncation / occlusion are approximated
(:mod:`sr3d_training.datasets.bag_kitti`), so the difficulty levels are approximate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sr3d_ros.checkpoints import CheckpointError
from sr3d_ros.inference import PointCloudDetector
from sr3d_ros.io.atomic import atomic_write_json

from ..datasets import SampleDataset, ScanNetDataset, SunRGBDDataset
from ..datasets.bag import bag_dataset_kind, bag_eval_set
from ..evaluate import evaluate_predictions, predict_dataset
from ..evaluation.kitti import run_kitti_cli
from ..evaluation.mono_cli import run_mono_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sr3d-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--checkpoint", default=None, help="our checkpoint (default: the embedded default model)"
    )
    p.add_argument(
        "--data",
        required=True,
        help="dataset root (ScanNet export, SUN RGB-D trainval or KITTI), or bag:DIR (an "
        "extracted bag dataset: its samples with labels, all of them unless --ids; image "
        "samples are scored as KITTI with a mono --checkpoint)",
    )
    p.add_argument("--dataset", choices=("scannet", "sunrgbd", "kitti"), default="scannet")
    p.add_argument(
        "--predictions",
        help="kitti: folder of KITTI result files (ID.txt); without it, --checkpoint MONO.pt "
        "runs a monocular checkpoint on the frames",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ids", nargs="+", help="scene ids / frame ids to evaluate")
    g.add_argument("--split", help="split name (uses the split file)")
    p.add_argument("--device", default="auto")
    p.add_argument("--score-threshold", type=float, default=None)
    p.add_argument(
        "--oracle-scores", choices=("iou",), default=None, help="also report the IoU-oracle mAP"
    )
    p.add_argument("--out", type=Path, default=Path("eval.json"), help="JSON results file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bag = args.data.startswith("bag:")
    if bag and args.split:
        print("sr3d-eval: error: a bag dataset takes --ids, not --split", file=sys.stderr)
        return 2
    if bag:  # image samples go to the monocular evaluation
        try:
            images = bag_dataset_kind(args.data[4:]) == "images"
        except (FileNotFoundError, ValueError) as exc:
            print(f"sr3d-eval: error: {exc}", file=sys.stderr)
            return 1
        if images:
            return run_mono_cli(
                args.checkpoint, args.data, args.ids, None, args.out, args.device,
                args.score_threshold, args.quiet,
            )  # fmt: skip
    if args.dataset == "kitti" and args.checkpoint and not args.predictions:  # mono model
        return run_mono_cli(
            args.checkpoint, args.data, args.ids, args.split, args.out, args.device,
            args.score_threshold, args.quiet,
        )  # fmt: skip
    if args.dataset == "kitti":  # result files vs labels: AP|R40 table + JSON
        return run_kitti_cli(args.data, args.predictions, args.ids, args.split, args.out)
    overrides = {} if args.score_threshold is None else {"score_threshold": args.score_threshold}
    if not bag and not args.ids and not args.split:
        print("sr3d-eval: error: give --ids or --split", file=sys.stderr)
        return 2
    try:
        det = PointCloudDetector.from_checkpoint(args.checkpoint, device=args.device, **overrides)
        kw = {"scene_ids": args.ids} if args.ids else {"split": args.split}
        data: SampleDataset
        if bag:  # frames of recorded bags that have ground truth
            data = bag_eval_set(args.data[4:], det.class_names, args.ids)
        elif args.dataset == "scannet":
            data = ScanNetDataset(args.data, **kw)
        else:
            kw = {"frame_ids": args.ids} if args.ids else {"split": args.split}
            data = SunRGBDDataset(args.data, **kw, class_names=det.class_names)
        results = predict_dataset(
            det.model, data, det.config.inference, det.device, progress=not args.quiet
        )
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        print(f"sr3d-eval: error: {exc}", file=sys.stderr)
        return 1
    ev = evaluate_predictions(results, det.class_names)
    print(ev.format_table())
    out = {
        "checkpoint": str(args.checkpoint or "default"),
        "samples": [r.sample_id for r in results],
        "result": ev.to_dict(),
    }
    if args.oracle_scores == "iou":
        oracle = evaluate_predictions(results, det.class_names, oracle=True)
        print("\nIoU-oracle scores (each score replaced by its IoU with the best-matching GT):")
        print(f"{'threshold':>10} {'mAP':>8} {'oracle mAP':>11}")
        for t in ev.mAP:
            print(f"{t:>10.2f} {ev.mAP[t]:>8.4f} {oracle.mAP[t]:>11.4f}")
        out["oracle"] = oracle.to_dict()
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
