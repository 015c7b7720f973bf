#!/usr/bin/env python3
"""CPU latency of the VRDistill table's models, stage by stage, measured together.

For the teacher and every student arm of a finished (or partly finished) table of
``benchmarks/ablation_vrdistill.py``, loads the trained checkpoints the way the node does
(``PointCloudDetector.from_checkpoint``) and times them on the held-out scan scene0000_02
(86 k points): the network (voxelize + backbone + neck + head) and the post-processing (score
top-k + per-class NMS, at the node's default score threshold 0.3) separately, median over
``--repeats`` calls after one warm-up, one intra-op thread by default (the node's
``num_threads`` on a small machine). Each row is the
median over the arm's seeds; the last column is the whole call relative to the teacher's,
measured in the same run. MACs and mAP come from the table's result files.

Why the stages: on a CPU the network's time follows the kernel maps (coordinate hashing, one per
stride and kernel offset), which do not shrink with the width, and the NMS follows the number of
candidates above the score threshold, which grows when a weak model scores many locations; so a
narrower model is not necessarily a faster one here. GPU timings: ``benchmarks/gpu_check.sh``
when a GPU is lent.

Usage::

    python benchmarks/bench_students.py [--table-dir outputs/ablation_vrdistill] [--repeats 5]
        [--threads 1] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sr3d_ros.inference import PointCloudDetector  # noqa: E402

SCAN = "scannet/scannet_instance_data/scene0000_02_vert_all.npy"
NETWORK = ("voxelize", "backbone", "neck", "head")


def time_checkpoint(
    path: Path, points: torch.Tensor, repeats: int, score_threshold: float
) -> dict[str, float]:
    """Median milliseconds of the network stages, the NMS and the whole call on ``points``."""
    det = PointCloudDetector.from_checkpoint(path, device="cpu", score_threshold=score_threshold)
    det(points)  # warm-up
    rows = [det(points).timings_ms for _ in range(repeats)]
    network = [sum(r.get(k, 0.0) for k in NETWORK) for r in rows]
    nms = [r.get("nms", 0.0) for r in rows]
    return {
        "network_ms": statistics.median(network),
        "nms_ms": statistics.median(nms),
        "total_ms": statistics.median(n + m for n, m in zip(network, nms)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--table-dir", type=Path, default=REPO / "outputs" / "ablation_vrdistill")
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        help="the node's default; the table's mAP uses the evaluation protocol's 0.01, whose "
        "many low-score candidates make the NMS of a weak model cost more than its network",
    )
    args = p.parse_args(argv)
    scan = args.data_root / SCAN
    if not scan.is_file():
        print(f"bench_students: error: {scan} is missing (../shared/data)", file=sys.stderr)
        return 1
    if not args.table_dir.is_dir():
        print(f"bench_students: error: no table in {args.table_dir}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    points = torch.as_tensor(np.load(scan), dtype=torch.float32)
    arms = sorted(d.name for d in args.table_dir.iterdir() if d.is_dir())
    arms = ["teacher"] + [a for a in arms if a != "teacher"]
    table: dict[str, dict[str, Any]] = {}
    for arm in arms:
        runs = []
        for seed in args.seeds:
            ckpt = args.table_dir / arm / f"seed{seed}" / "train" / "final.pt"
            result = args.table_dir / arm / f"seed{seed}" / "result.json"
            if ckpt.is_file() and result.is_file():
                r = json.loads(result.read_text())
                timing = time_checkpoint(ckpt, points, args.repeats, args.score_threshold)
                runs.append({**timing, **r})
        if runs:
            table[arm] = {
                "seeds": len(runs),
                "width": runs[0]["width"],
                "macs_g": runs[0]["cost"]["macs"] / 1e9,
                "mAP@0.25": statistics.mean(r["metrics"]["mAP@0.25"] for r in runs),
                **{
                    k: statistics.median(r[k] for r in runs)
                    for k in ("network_ms", "nms_ms", "total_ms")
                },
            }
    if "teacher" not in table:
        print(f"bench_students: error: no finished teacher in {args.table_dir}", file=sys.stderr)
        return 1
    ref = table["teacher"]["total_ms"]
    print(
        f"CPU latency on scene0000_02 ({len(points)} points), {args.threads} thread(s), score "
        f">= {args.score_threshold}, median of {args.repeats} per checkpoint, median over "
        f"seeds; torch {torch.__version__}"
    )
    print(
        f"{'arm':<28} {'width':>6} {'seeds':>5} {'MACs G':>7} {'network ms':>11} "
        f"{'NMS ms':>7} {'total ms':>9} {'vs teacher':>11} {'mAP@0.25':>9}"
    )
    for arm, t in table.items():
        print(
            f"{arm:<28} {t['width']:>6g} {t['seeds']:>5} {t['macs_g']:>7.2f} "
            f"{t['network_ms']:>11.0f} {t['nms_ms']:>7.0f} {t['total_ms']:>9.0f} "
            f"{t['total_ms'] / ref:>10.2f}x {t['mAP@0.25']:>9.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
