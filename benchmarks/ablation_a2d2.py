#!/usr/bin/env python3
"""A2D2 ablation on the real KITTI frames: does depth-feature distillation from a clean-image
teacher help a MixUp-noised monocular student, and which of its weights matter (issue 16).

Arms (every arm: the same student size, input size, steps, batch, frames, schedule, MixUp and
photometric noise, and the same teacher; only the distillation changes):

* ``mixup_only``: the student without distillation (``kd_weight: 0``; no teacher is run);
* ``a2d2``: A2D2 as configured in ``config/mono_kitti_a2d2.yaml`` (quality q and importance w);
* ``a2d2_noq``: without the teacher-quality weight (``use_quality: false``, q = 1);
* ``a2d2_now``: without the channel importance (``use_importance: false``, w = 1 / C).

Each (arm, seed) trains on the 11 training frames of ``config/mono_kitti_a2d2.yaml`` and is
evaluated once, at the end, on the held-out frames 000007, 000036, 000217 (chosen before any
training for the default monocular model): Car AP3D|R40 at IoU 0.5, moderate (percent; with
these few cars the official R40 sampling caps it, so its ceiling-normalised value is stored
too) and the mean absolute depth error of the matched cars (metres), the steadier number.

Teacher: ``--teacher PATH`` (any monocular checkpoint of ours, e.g. the default model), or, by
default, one the script trains first with the plain monocular recipe (clean augmentation: flip +
photometric, no MixUp) at seed 100 and ``--teacher-steps`` steps, in ``OUT/teacher/``; its own
held-out metrics are in ``OUT/teacher/result.json``.

Resumable: run ``OUT/<arm>/seed<k>/result.json`` is written atomically when the run ends;
re-running skips finished runs (and resumes an interrupted one from its ``last.pt``); the table
is assembled from whatever result files exist, so a table can be finished over several days.
``--runs`` / ``--seeds`` select a subset; ``--table-only`` prints the table without training.
Result files record the budget (steps, batch, sizes, teacher, git revision); a run directory
whose budget differs from the command's is an error (use another ``--out``).

Schedule: the base config's shape (5 epochs over the repeated frames, lr x0.1 after epoch 4;
the repeat is chosen so 5 epochs hold about ``--steps`` steps) stopped at exactly ``--steps``
optimizer steps; warm-up ``min(50, steps // 6)``. The evaluation on the held-out frames runs
after training (``eval_seconds``).

Budget. Measured with ``benchmarks/bench_a2d2_step.py --input 192 640`` on one CPU thread of
the shared 2-core machine (other jobs running): a size-n step at batch 2 costs 1.25 s plain and
1.70 s with A2D2 (1.36x; the teacher's forward pass and its CM3D assignment), plus 0.06 / 0.13 s
of data per item. The defaults (``--steps 200 --batch 2 --input 192 640``, a teacher of 400
steps) add up to about 1.5 h for the 12 runs + the teacher. They are far too short to train a
useful detector on 11 frames: the depth error of matched cars is the signal to read.
``--steps 275 --batch 4 --input 384 1280`` is ``config/mono_kitti_n.yaml``'s own recipe (many
hours on a CPU). Runs resume, so a longer table can be finished over several sessions.

Usage::

    python benchmarks/ablation_a2d2.py [--out outputs/ablation_a2d2] [--steps 200] [--batch 2]
        [--input 192 640] [--size n] [--teacher PATH | --teacher-steps 400] [--seeds 0 1 2]
        [--runs a2d2 mixup_only ...] [--table-only] [--quiet]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402
from _ablation_common import (  # noqa: E402
    compute_footer,
    pending_run_dir,
    run_table,
    seeds_cell,
    train_seconds_cell,
    train_timed,
)

from sr3d_ros.io.atomic import atomic_write_json  # noqa: E402
from sr3d_ros.models.mono import MonoDetectorModel  # noqa: E402
from sr3d_training.config import MonoTrainConfig, OptimConfig, load_train_config  # noqa: E402
from sr3d_training.datasets import KittiDataset  # noqa: E402
from sr3d_training.datasets.kitti import KittiObjects  # noqa: E402
from sr3d_training.distill import DistillConfig  # noqa: E402
from sr3d_training.evaluation.mono import evaluate_mono, predict_mono_dataset  # noqa: E402
from sr3d_training.image_transforms import letterbox  # noqa: E402
from sr3d_training.runtime import git_revision  # noqa: E402

logger = logging.getLogger("ablation_a2d2")

BASE_CONFIG = REPO / "config" / "mono_kitti_a2d2.yaml"
#: held-out frames (those of the default monocular model, chosen before any training)
HELD_OUT = ("000007", "000036", "000217")
AP_KEY = "Car/AP3D_R40@0.5/moderate"
DEPTH_KEY = "Car/depth_mae"
LOCATED_KEY = "Car/located_depth_mae"
#: arm -> distill.options overrides (over the base config's options)
ARMS: dict[str, dict[str, Any]] = {
    "mixup_only": {"kd_weight": 0.0},
    "a2d2": {},
    "a2d2_noq": {"use_quality": False},
    "a2d2_now": {"use_importance": False},
}
TEACHER_SEED = 100
EPOCHS, MILESTONES = 5, (4,)


def base_config() -> MonoTrainConfig:
    """``config/mono_kitti_a2d2.yaml``.

    Raises:
        ValueError: it is not a monocular training config.
    """
    cfg = load_train_config(BASE_CONFIG)
    if not isinstance(cfg, MonoTrainConfig):
        raise ValueError(f"{BASE_CONFIG} is not a monocular training config")
    return cfg


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """What every run of one table shares (recorded in each result file)."""
    teacher = str(Path(args.teacher).resolve()) if args.teacher else "trained"
    return {
        "steps": args.steps,
        "batch": args.batch,
        "size": args.size,
        "input_size": list(args.input),
        "teacher": teacher,
        "teacher_steps": 0 if args.teacher else args.teacher_steps,
        "base": BASE_CONFIG.name,
    }


def run_config(
    seed: int, b: dict[str, Any], run_dir: Path, distill: DistillConfig, steps: int
) -> MonoTrainConfig:
    """The config of one run: the base config with the shared budget, ``steps`` and
    ``distill``; no validation during training."""
    base = base_config()
    frames = len(base.data.train_ids)
    repeat = max(1, math.ceil(steps * b["batch"] / (EPOCHS * frames)))
    o = base.optim
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, size=b["size"], input_size=tuple(b["input_size"])),
        data=dataclasses.replace(base.data, repeat=repeat, val_ids=()),
        optim=OptimConfig(
            lr=o.lr,
            weight_decay=o.weight_decay,
            warmup_steps=min(50, steps // 6),
            warmup_start_lr=o.warmup_start_lr,
            milestones=MILESTONES,
            gamma=o.gamma,
            epochs=EPOCHS,
            grad_clip=o.grad_clip,
            max_steps=steps,
        ),
        batch_size=b["batch"],
        seed=seed,
        output_dir=str(run_dir / "train"),
        eval_every=0,
        distill=distill,
    )


@torch.no_grad()
def located_depth_error(model: MonoDetectorModel, frames: KittiDataset) -> tuple[float, int]:
    """Mean ``|z - z_gt|`` (metres) over every labelled car of ``frames`` at the location the
    detector would use for it: among the one-to-one head's locations whose anchor point lies
    inside the car's 2D label box (letterboxed), the one with the highest Car score, ``z =
    exp(log_depth)`` there (the geometric centre's depth; ``z_gt`` the label's). Unlike the
    matched-car error it does not need a detection above the score threshold at 2D IoU 0.5,
    so it exists for weak models too (our formulation, for few-frame tables).

    Returns:
        ``(mean error in metres, or nan without cars; number of cars)``.
    """
    was_training = model.training
    model.eval()
    h, w = model.config.input_size
    car = model.config.class_names.index("Car")
    device = next(model.parameters()).device
    errors: list[float] = []
    try:
        for i in range(len(frames)):
            sample = letterbox(frames[i], w, h)
            objs = sample.meta["kitti"]
            assert isinstance(objs, KittiObjects) and sample.image is not None
            cars = objs.subset(objs.names == "Car")
            if not len(cars):
                continue
            x = torch.from_numpy(sample.image).permute(2, 0, 1)[None].to(device, torch.float32)
            out = model(x / 255)
            score = out.one2one.cls_logits[0, :, car]
            depth = out.one2one.log_depth[0].exp()
            u, v = out.anchor_points.unbind(-1)
            for (x1, y1, x2, y2), z in zip(cars.bbox, cars.location[:, 2]):
                inside = (u > x1) & (u < x2) & (v > y1) & (v < y2)
                if bool(inside.any()):
                    k = torch.where(inside, score, -math.inf).argmax()
                    errors.append(abs(float(depth[k]) - float(z)))
    finally:
        model.train(was_training)
    return (statistics.mean(errors) if errors else math.nan), len(errors)


def _train_and_evaluate(
    cfg: MonoTrainConfig, run_dir: Path, device: str, quiet: bool
) -> dict[str, Any]:
    """Train (resuming from ``last.pt``), then evaluate on :data:`HELD_OUT`; the result dict."""
    run = train_timed(cfg, run_dir, device, quiet)
    t1 = time.time()
    held_out = KittiDataset(cfg.data.root, frame_ids=list(HELD_OUT))
    model = run.trainer.model
    assert isinstance(model, MonoDetectorModel)
    metrics = evaluate_mono(predict_mono_dataset(model, held_out, cfg.inference)).metrics()
    metrics[LOCATED_KEY], metrics["Car/located_count"] = located_depth_error(model, held_out)
    history = run.trainer.history[-1] if run.trainer.history else {}
    return {"metrics": metrics, "last_scalars": history, **run.record(time.time() - t1)}


def teacher_path(b: dict[str, Any], out: Path, device: str, quiet: bool) -> Path:
    """The teacher checkpoint: the given one, or trained once here (plain recipe: flip +
    photometric, no MixUp, no distillation; seed :data:`TEACHER_SEED`) into ``OUT/teacher``."""
    if b["teacher"] != "trained":
        return Path(b["teacher"])
    run_dir = out / "teacher"
    final = run_dir / "train" / "final.pt"
    result_file = run_dir / "result.json"
    if result_file.is_file() and final.is_file():
        return final
    cfg = run_config(TEACHER_SEED, b, run_dir, DistillConfig(), b["teacher_steps"])
    cfg = dataclasses.replace(
        cfg, augmentation=dataclasses.replace(cfg.augmentation, mixup_prob=0.0)
    )
    logger.info("training the teacher (%d steps) in %s", b["teacher_steps"], run_dir)
    result = _train_and_evaluate(cfg, run_dir, device, quiet)
    atomic_write_json(result_file, {"role": "teacher", "budget": b, **result})
    return final


def run_one(arm: str, seed: int, b: dict[str, Any], out: Path, device: str, quiet: bool) -> None:
    """Train and evaluate one (arm, seed) unless its result file exists; write it atomically."""
    run_dir = pending_run_dir(out, arm, seed)
    if run_dir is None:
        return
    options = {**base_config().distill.options, **ARMS[arm]}
    teacher = None
    if float(options.get("kd_weight", 1.0)) > 0:
        teacher = str(teacher_path(b, out, device, quiet))
    distill = DistillConfig(kind="a2d2", teacher=teacher, options=options)
    cfg = run_config(seed, b, run_dir, distill, b["steps"])
    result = _train_and_evaluate(cfg, run_dir, device, quiet)
    atomic_write_json(run_dir / "result.json", {"arm": arm, "seed": seed, "budget": b, **result})
    m = result["metrics"]
    logger.info(
        "%s seed %d: AP %.2f, depth MAE %.2f m (%.0f s)",
        arm,
        seed,
        m.get(AP_KEY, math.nan),
        m.get(DEPTH_KEY, math.nan),
        result["train_seconds"],
    )


def _cell(values: list[float], digits: int) -> str:
    """``mean ± sample std`` of the finite values (a run with no matched car has depth NaN)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "-"
    sd = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{statistics.mean(finite):.{digits}f} ± {sd:.{digits}f}"


def _value(v: float) -> str:
    return f"{v:.2f}" if math.isfinite(v) else "-"


def table(
    by_arm: dict[str, list[dict[str, Any]]], b: dict[str, Any], out: Path, command: str
) -> str:
    """Markdown table: mean ± sample std over seeds per arm, then the teacher's own numbers."""
    h, w = b["input_size"]
    teacher = "trained here" if b["teacher"] == "trained" else b["teacher"]
    lines = [
        f"A2D2 ablation on the held-out KITTI frames {', '.join(HELD_OUT)} (trained on the 11 "
        f"others): student size {b['size']}, {w}x{h}, {b['steps']} steps, batch {b['batch']}, "
        f"teacher {teacher}; mean ± std over seeds. AP: Car AP3D|R40 @0.5 moderate (percent; "
        "norm = AP / the ceiling perfect detections reach on these frames); depth: mean "
        "|z - z_gt| of the matched cars (metres; runs without a matched car left out); depth "
        "at GT: the same error for every labelled car at its highest-scoring location inside "
        "its 2D box (no detection needed; our formulation).",
        f"Command: `{command}`; git {git_revision()}.",
        "",
        "| arm | seeds | Car AP3D R40 mod | AP norm | depth MAE m | cars matched "
        "| depth at GT m | train s/run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, runs in by_arm.items():
        m = [r["metrics"] for r in runs]
        cols = [
            _cell([x.get(AP_KEY, math.nan) for x in m], 2),
            _cell([x.get(f"{AP_KEY}_norm", math.nan) for x in m], 3),
            _cell([x.get(DEPTH_KEY, math.nan) for x in m], 2),
            _cell([x.get("Car/depth_matched", math.nan) for x in m], 1),
            _cell([x.get(LOCATED_KEY, math.nan) for x in m], 2),
        ]
        lines.append(
            f"| {arm} | {seeds_cell(runs)} | "
            + " | ".join(cols)
            + f" | {train_seconds_cell(runs)} |"
        )
    footer = compute_footer(by_arm)
    teacher_file = out / "teacher" / "result.json"
    if teacher_file.is_file():
        t = json.loads(teacher_file.read_text())
        tm = t["metrics"]
        lines += [
            "",
            f"Teacher (trained here, {t['steps_trained']} steps, clean inputs, seed "
            f"{TEACHER_SEED}): AP {_value(tm.get(AP_KEY, math.nan))}, depth MAE "
            f"{_value(tm.get(DEPTH_KEY, math.nan))} m over "
            f"{tm.get('Car/depth_matched', 0):.0f} matched cars, depth at GT "
            f"{_value(tm.get(LOCATED_KEY, math.nan))} m "
            f"({(t['train_seconds'] + t['eval_seconds']) / 3600:.2f} h).",
        ]
    return "\n".join(lines + footer)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=REPO / "outputs" / "ablation_a2d2")
    p.add_argument("--runs", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=200, help="optimizer steps per run")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", default="n", help="student (and trained teacher) size")
    p.add_argument("--input", nargs=2, type=int, default=[192, 640], metavar=("H", "W"))
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: train one)")
    p.add_argument("--teacher-steps", type=int, default=400)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (0 = torch's default)")
    p.add_argument("--table-only", action="store_true", help="assemble the table, train nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars / log lines")
    args = p.parse_args(argv)
    if args.steps < 1 or args.teacher_steps < 1 or args.batch < 1:
        p.error("--steps, --teacher-steps and --batch must be >= 1")
    b = budget(args)
    command = " ".join(["python", "benchmarks/ablation_a2d2.py", *(argv or sys.argv[1:])])

    def train() -> None:
        for seed in args.seeds:  # seed-major: a partial table has whole seeds
            for arm in args.runs:
                run_one(arm, seed, b, args.out, args.device, args.quiet)

    return run_table(
        "ablation_a2d2",
        args,
        b,
        ARMS,
        train,
        lambda by_arm: table(by_arm, b, args.out, command),
    )


if __name__ == "__main__":
    raise SystemExit(main())
