#!/usr/bin/env python3
"""Per-scene cost of label assignment + classification loss: TR3D + focal vs SPOTA + RAS.

Scene: the real ScanNet scene0000_00 (27 GT boxes, 18 classes), its points quantised at two
head levels (``--voxel`` and twice that; default 0.08 / 0.16 m, i.e. stride-8 / stride-16
outputs of a 1 cm input voxel -> ~34k locations, the size the issue names). Head outputs are
synthetic: ``(L, 18)`` random logits (requires grad) and the boxes an untrained head decodes
(location + 1 cm noise, ~1 m sizes). Assignment cost hardly depends on how good they are; the
SPOTA positives per GT do, and are printed.

Pipelines timed (forward + backward of the loss w.r.t. the logits):

* ``baseline``: ``TR3DAssigner`` + focal loss (TR3D);
* ``sr3d``: ``SPOTAAssigner`` (default config: OT over the 64 nearest candidates per GT) + IoU
  of the positives' boxes with their GTs + RAS loss;
* component rows (assigners alone, losses alone), the ``max_mass`` SPOTA decision, and with
  ``--exact`` SPOTA scoring all candidates (no ``max_candidates`` cut; slow);
* batched rows: ``--batch`` scenes (the three real ScanNet scenes cycled, each with its own
  synthetic predictions): baseline = TR3D per scene + one focal call on the collated batch,
  sr3d = ``SPOTAAssigner.assign_batch`` (one Sinkhorn for the batch) + IoU + one RAS call;
  reported per scene.

Median over ``--repeats`` runs (>= 10) after 2 warm-ups, all rows interleaved round-robin (so
load drift hits every row alike); CUDA timings synchronise. On CPU the default is one intra-op
thread (``--threads``): on small shared VMs torch's multi-threaded small reductions are
dominated by thread wake-ups (~10 ms each) and the numbers would measure that.

Usage: ``python benchmarks/bench_assign_loss.py [--device cpu|cuda] [--repeats 15] [--batch 8]
[--exact] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SCENE_DIR = REPO.parent / "shared" / "data" / "scannet" / "scannet_instance_data"

from sr3d_ros.geometry import box_iou_3d  # noqa: E402
from sr3d_ros.io.atomic import atomic_write_json  # noqa: E402
from sr3d_training.assigners import (  # noqa: E402
    TR3D_LABEL2LEVEL_SCANNET,
    AssignerConfig,
    SPOTAAssigner,
    build_assigner,
)
from sr3d_training.datasets import load_scannet_scene  # noqa: E402
from sr3d_training.losses import ClassificationLoss, collate_assignments  # noqa: E402

SCENES = ("scene0000_00", "scene0000_01", "scene0000_02")


def make_scene(
    voxel: float, device: str, seed: int = 0, scene: str = "scene0000_00"
) -> dict[str, torch.Tensor]:
    """One real scene's locations / GT plus synthetic untrained-head outputs (see docstring)."""
    s = load_scannet_scene(SCENE_DIR, scene)
    pts = torch.from_numpy(np.ascontiguousarray(s.points[:, :3]))
    locs, levels = [], []
    for lvl, vs in enumerate((voxel, 2 * voxel)):
        c = torch.unique(torch.floor(pts / vs).long(), dim=0)
        locs.append(c.float() * vs)
        levels.append(torch.full((len(c),), lvl, dtype=torch.long))
    loc, lev = torch.cat(locs), torch.cat(levels)
    g = torch.Generator().manual_seed(seed)
    n = loc.shape[0]
    pred = torch.cat(
        [
            loc + 0.01 * torch.randn(n, 3, generator=g),
            torch.exp(0.01 * torch.randn(n, 3, generator=g)),
            torch.zeros(n, 1),
        ],
        1,
    )
    logits = torch.randn(n, 18, generator=g) - 4.0  # prior ~0.02 like a focal-loss init
    return {
        "locations": loc.to(device),
        "levels": lev.to(device),
        "pred_boxes": pred.to(device),
        "cls_logits": logits.to(device),
        "gt_boxes": torch.from_numpy(s.gt_boxes).to(device),
        "gt_labels": torch.from_numpy(s.gt_labels).to(device),
    }


def time_round_robin(
    fns: dict[str, Callable[[], object]], repeats: int, device: str
) -> dict[str, float]:
    """Median wall time (ms) of each function over ``repeats`` rounds after 2 warm-up rounds.

    The functions run interleaved (one call each per round), so a change of machine load
    during the run affects every row alike.
    """
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for rnd in range(repeats + 2):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if rnd >= 2:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--voxel", type=float, default=0.08, help="finest head level voxel, m")
    ap.add_argument(
        "--threads", type=int, default=1, help="CPU intra-op threads (0 = torch default)"
    )
    ap.add_argument("--batch", type=int, default=8, help="scenes in the batched rows")
    ap.add_argument("--exact", action="store_true", help="also time SPOTA without the M cut")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.repeats < 10:
        ap.error("--repeats must be >= 10")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    sc = make_scene(args.voxel, args.device)
    loc, lev, pred = sc["locations"], sc["levels"], sc["pred_boxes"]
    gtb, gtl, logits0 = sc["gt_boxes"], sc["gt_labels"], sc["cls_logits"]
    n, k, c = loc.shape[0], gtb.shape[0], logits0.shape[1]

    tr3d = build_assigner(AssignerConfig(kind="tr3d", label2level=TR3D_LABEL2LEVEL_SCANNET))
    spota = build_assigner(AssignerConfig(kind="spota", label2level=TR3D_LABEL2LEVEL_SCANNET))
    assert isinstance(spota, SPOTAAssigner)
    spota_max = build_assigner(AssignerConfig(kind="spota", ot_decision="max_mass"))
    spota_exact = build_assigner(AssignerConfig(kind="spota", max_candidates=None))
    focal, ras = ClassificationLoss("focal"), ClassificationLoss("ras")

    def ious_of(gt_index: torch.Tensor) -> torch.Tensor:
        ious = torch.zeros(n, device=loc.device)
        pos = gt_index >= 0
        ious[pos] = box_iou_3d(pred[pos], gtb[gt_index[pos]], aligned=True)
        return ious

    fixed_tr3d = tr3d.assign(loc, lev, gtb, gtl)
    fixed_spota = spota.assign(loc, lev, gtb, gtl, pred)
    fixed_ious = ious_of(fixed_spota.gt_index)

    def loss_step(
        fn: ClassificationLoss, gt_index: torch.Tensor, ious: torch.Tensor | None
    ) -> None:
        logits = logits0.detach().requires_grad_(True)
        fn(logits, gt_index, gtl, ious).backward()

    def baseline() -> None:
        r = tr3d.assign(loc, lev, gtb, gtl)
        loss_step(focal, r.gt_index, None)

    def sr3d() -> None:
        r = spota.assign(loc, lev, gtb, gtl, pred)
        loss_step(ras, r.gt_index, ious_of(r.gt_index))

    batch = [
        make_scene(args.voxel, args.device, seed=i + 1, scene=SCENES[i % len(SCENES)])
        for i in range(args.batch)
    ]
    bcat = {key: [sc_[key] for sc_ in batch] for key in batch[0]}
    b_logits0 = torch.cat(bcat["cls_logits"])
    b_pred = torch.cat(bcat["pred_boxes"])

    def baseline_batch() -> None:
        res = [
            tr3d.assign(x["locations"], x["levels"], x["gt_boxes"], x["gt_labels"]) for x in batch
        ]
        gi, gl, _ = collate_assignments([r.gt_index for r in res], bcat["gt_labels"])
        logits = b_logits0.detach().requires_grad_(True)
        focal(logits, gi, gl).backward()

    def sr3d_batch() -> None:
        res = spota.assign_batch(
            bcat["locations"],
            bcat["levels"],
            bcat["gt_boxes"],
            bcat["gt_labels"],
            bcat["pred_boxes"],
        )
        gi, gl, sid = collate_assignments([r.gt_index for r in res], bcat["gt_labels"])
        gtb_all = torch.cat(bcat["gt_boxes"])
        ious = torch.zeros(gi.shape[0], device=gi.device)
        pos = gi >= 0
        ious[pos] = box_iou_3d(b_pred[pos], gtb_all[gi[pos]], aligned=True)
        logits = b_logits0.detach().requires_grad_(True)
        ras(logits, gi, gl, ious, scene_ids=sid).backward()

    rows = [
        ("TR3D assigner", lambda: tr3d.assign(loc, lev, gtb, gtl)),
        ("SPOTA assigner (top_mass, M=64)", lambda: spota.assign(loc, lev, gtb, gtl, pred)),
        ("SPOTA assigner (max_mass, M=64)", lambda: spota_max.assign(loc, lev, gtb, gtl, pred)),
        ("focal loss fwd+bwd", lambda: loss_step(focal, fixed_tr3d.gt_index, None)),
        (
            "IoU of positives + RAS fwd+bwd",
            lambda: loss_step(ras, fixed_spota.gt_index, ious_of(fixed_spota.gt_index)),
        ),
        ("RAS fwd+bwd", lambda: loss_step(ras, fixed_spota.gt_index, fixed_ious)),
        ("baseline: TR3D + focal", baseline),
        ("sr3d: SPOTA + RAS", sr3d),
    ]
    if args.exact:
        rows.insert(
            3,
            (
                "SPOTA assigner (exact, all cand.)",
                lambda: spota_exact.assign(loc, lev, gtb, gtl, pred),
            ),
        )
    bkey = f"baseline batched (B={args.batch}) / scene"
    skey = f"sr3d batched (B={args.batch}) / scene"
    rows += [(bkey, baseline_batch), (skey, sr3d_batch)]
    results = time_round_robin(dict(rows), args.repeats, args.device)
    results[bkey] /= args.batch
    results[skey] /= args.batch
    base = results["baseline: TR3D + focal"]

    pos_info = {}
    for name, a in (("tr3d", tr3d), ("spota top_mass", spota), ("spota max_mass", spota_max)):
        r = a.assign(loc, lev, gtb, gtl, pred)
        cnt = r.counts().float()
        pos_info[name] = {
            "positives": int(cnt.sum()),
            "per_gt_mean": round(float(cnt.mean()), 2),
            "per_gt_min": int(cnt.min()),
        }

    dev = args.device
    if dev.startswith("cuda"):
        dev += f" ({torch.cuda.get_device_name()})"
    print(
        f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"L = {n} locations ({int((lev == 0).sum())} + {int((lev == 1).sum())}), K = {k} GT, "
        f"C = {c}, median of {args.repeats} runs"
    )
    print(f"{'per scene':<38} {'ms':>9} {'x baseline':>11}")
    for name, ms in results.items():
        print(f"{name:<38} {ms:9.2f} {ms / base:11.2f}")
    print(
        f"sr3d / baseline = {results['sr3d: SPOTA + RAS'] / base:.2f} "
        f"(+{results['sr3d: SPOTA + RAS'] - base:.2f} ms per scene)"
    )
    bb, sb = results[bkey], results[skey]
    print(f"batched: sr3d / baseline = {sb / bb:.2f} (+{sb - bb:.2f} ms per scene)")
    for name, info in pos_info.items():
        print(f"positives {name:<16} {info}")
    if args.json:
        atomic_write_json(
            args.json,
            {
                "device": dev,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "L": n,
                "K": k,
                "C": c,
                "repeats": args.repeats,
                "ms": results,
                "ratio_sr3d_over_baseline": results["sr3d: SPOTA + RAS"] / base,
                "ratio_batched": sb / bb,
                "positives": pos_info,
            },
        )


if __name__ == "__main__":
    main()
