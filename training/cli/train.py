"""``sr3d-train --config config/<name>.yaml [--resume] [--data bag:DIR[@W] ...]
[--init-from CKPT [--class-map NEW=OLD ...]]``: train a detector (DDP via torchrun)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import Any

from sr3d_ros.checkpoints import CheckpointError
from sr3d_ros.config import ConfigError, read_yaml_mapping, to_dict

from ..config import load_train_config
from ..datasets.mixing import parse_data_spec
from ..init_from import init_from_checkpoint, parse_class_map
from ..trainer import NonFiniteLossError, Trainer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sr3d-train",
        description="Train a detector: the point-cloud one (TR3D architecture; TR3D baseline or "
        "SR3D: SPOTA + RAS) or, with 'kind: mono' in the config, the monocular one (LeAD-M3D). "
        "Multi-GPU / multi-node: torchrun --nproc_per_node N $(which sr3d-train) --config ...",
    )
    p.add_argument("--config", required=True, help="training YAML (see config/train_*.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last.pt")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--output-dir", default=None, help="override output_dir")
    p.add_argument("--max-steps", type=int, default=None, help="override optim.max_steps")
    p.add_argument("--seed", type=int, default=None, help="override seed")
    p.add_argument(
        "--data",
        action="append",
        metavar="bag:DIR[@W]",
        help="also train on an extracted bag dataset (sr3d-bag extract / pseudo-label: clouds "
        "for the point-cloud detector, images for the mono one), with weight W (share of each "
        "epoch relative to the config's data, default 1; repeatable)",
    )
    p.add_argument(
        "--init-from", metavar="CKPT", help="fine-tune: start from this checkpoint's weights"
    )
    p.add_argument(
        "--class-map",
        nargs="+",
        metavar="NEW=OLD",
        help="with --init-from: initialise run class NEW from checkpoint class OLD (classes of "
        "the same name map by default; unmapped ones start fresh)",
    )
    p.add_argument(
        "--teacher", default=None, help="distillation teacher checkpoint (sets distill.teacher)"
    )
    p.add_argument("--width", type=float, default=None, help="override model.width (students)")
    p.add_argument(
        "-q",
        "--quiet",
        "--no-progress",
        dest="quiet",
        action="store_true",
        help="no progress bar and no per-step log lines (warnings and the summary still print)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    overrides: dict[str, Any] = {}
    if args.output_dir is not None:
        overrides["output_dir"] = args.output_dir
    if args.max_steps is not None:
        overrides["optim"] = {"max_steps": args.max_steps}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.teacher is not None:
        overrides["distill"] = {"teacher": args.teacher}
    if args.width is not None:
        overrides["model"] = {"width": args.width}
    try:
        if args.data:  # appended to the config's own data.sources
            raw = (read_yaml_mapping(args.config, "training config").get("data") or {}).get(
                "sources"
            ) or []
            new = [to_dict(parse_data_spec(spec)) for spec in args.data]
            overrides["data"] = {"sources": [*raw, *new]}
        cfg = load_train_config(args.config, overrides)
        trainer = Trainer(
            cfg,
            device=args.device,
            resume=args.resume,
            progress=not args.quiet,
            extra_provenance={"argv": sys.argv, "config_file": args.config},
        )
        if args.init_from and not args.resume:  # a resumed run keeps its own weights
            cmap = parse_class_map(args.class_map) if args.class_map else None
            names = trainer.task.detector_config.model.class_names
            init_from_checkpoint(trainer.model, args.init_from, names, cmap, trainer.task.kind)
    except (FileNotFoundError, ConfigError, CheckpointError, ValueError) as exc:
        print(f"sr3d-train: error: {exc}", file=sys.stderr)
        return 1
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:
        path = trainer.checkpoint_path()
        print(
            f"sr3d-train: interrupted; state saved to {path} (resume with --resume)",
            file=sys.stderr,
        )
        return 1
    except NonFiniteLossError as exc:
        print(f"sr3d-train: error: {exc}", file=sys.stderr)
        return 1
    if trainer.dist.is_main:
        print(json.dumps(_strict(summary), indent=2, default=str, allow_nan=False))
    return 0


def _strict(value: Any) -> Any:
    """``value`` with NaN / inf floats replaced by ``None`` (strict JSON: e.g. a depth error
    with no matched car is ``null``, not ``NaN``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
