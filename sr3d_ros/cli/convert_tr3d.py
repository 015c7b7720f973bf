"""``sr3d-convert-tr3d``: convert a published TR3D checkpoint into an sr3d_ros checkpoint.

    sr3d-convert-tr3d tr3d_scannet.pth model.pt                  # infer the config
    sr3d-convert-tr3d tr3d_sunrgbd.pth model.pt --config config/tr3d_sunrgbd.yaml
    sr3d-convert-tr3d tr3d.pth model.pt --inert-globals          # meta holds mmcv objects

Both naming schemes (SamsungLabs/tr3d and mmdetection3d projects/TR3D) are recognised; see
:mod:`sr3d_ros.checkpoints`. Exit status: 0 converted, 1 error (unreadable file or config,
conversion failed), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys

from ..checkpoints import SCHEMES, TR3DConversionError, convert_tr3d_checkpoint
from ..config import ConfigError, DetectorConfig, load_yaml

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = argparse.ArgumentParser(
        prog="sr3d-convert-tr3d",
        description="Convert a TR3D checkpoint (SamsungLabs/tr3d or mmdetection3d projects/TR3D) "
        "into the sr3d_ros checkpoint format. Every tensor must land; unmapped keys are an error.",
    )
    p.add_argument("src", help="TR3D .pth checkpoint")
    p.add_argument("dst", help="output sr3d_ros checkpoint (.pt)")
    p.add_argument(
        "--config", default=None, help="DetectorConfig YAML (default: infer from the tensor shapes)"
    )
    p.add_argument(
        "--scheme",
        choices=sorted(SCHEMES),
        default=None,
        help="force the naming scheme (default: detect)",
    )
    p.add_argument(
        "--inert-globals",
        action="store_true",
        help="if weights_only loading refuses the file (mmcv/numpy objects in meta), read it with "
        "inert placeholders for those objects; no code from the file runs, only tensors are kept",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the converter; prints a short report. Returns the exit status."""
    args = build_parser().parse_args(argv)
    config = None
    if args.config is not None:
        try:
            config = load_yaml(args.config, DetectorConfig)
        except (FileNotFoundError, ConfigError) as exc:
            print(f"sr3d-convert-tr3d: error: {exc}", file=sys.stderr)
            return 1
    try:
        report = convert_tr3d_checkpoint(
            args.src, args.dst, config=config, inert_globals=args.inert_globals, scheme=args.scheme
        )
    except (FileNotFoundError, TR3DConversionError) as exc:
        print(f"sr3d-convert-tr3d: error: {exc}", file=sys.stderr)
        return 1
    m = report.config.model
    print(f"converted {report.source} -> {args.dst}")
    how = "inferred" if report.config_inferred else "given"
    print(
        f"  scheme {report.scheme}; {report.num_tensors} tensors; config {how}: "
        f"{m.num_classes} classes, {m.num_reg_outs} reg outs ({m.yaw_parametrization}), "
        f"width {m.width:g}"
    )
    for note in report.notes:
        print(f"  - {note}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
