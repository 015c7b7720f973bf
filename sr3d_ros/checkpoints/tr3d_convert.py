"""Convert published TR3D checkpoints (Rukhovich et al., 2023) into the sr3d_ros checkpoint format.

The pieces: :mod:`.tr3d_loading` reads the file safely (tensors only),
:mod:`.tr3d_names` maps the two published naming schemes onto ours, :mod:`.tr3d_config` infers
the model configuration from the tensor shapes, and this module checks that every tensor lands:
every source tensor must land in the model and every model tensor must be provided (only a
missing ``num_batches_tracked`` counter, which inference never reads, is filled with 0); anything
else is a :class:`~.tr3d_names.TR3DConversionError` that lists the keys.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from pathlib import Path
from typing import Any

import torch

from ..config import DetectorConfig, to_dict
from ..models import TR3DDetector
from .format import save_checkpoint
from .tr3d_config import infer_config
from .tr3d_loading import read_tr3d_file
from .tr3d_names import TR3DConversionError, detect_scheme, rename_tr3d_keys

__all__ = ["ConversionReport", "convert_tr3d_checkpoint", "convert_tr3d_state_dict"]

#: Keys of a TR3D meta copied into the converted checkpoint's provenance.
_META_KEYS = (
    "mmdet3d_version",
    "mmcv_version",
    "mmengine_version",
    "epoch",
    "iter",
    "time",
    "CLASSES",
    "dataset_meta",
)


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did.

    Attributes:
        source: the TR3D checkpoint file (or ``"<state_dict>"``).
        scheme: ``"samsunglabs"`` or ``"mmdet3d"``.
        config: the :class:`DetectorConfig` of the converted model.
        config_inferred: True when the config was inferred from the tensor shapes.
        num_tensors: tensors copied (all of them).
        filled: model keys absent in the source that were filled (``num_batches_tracked`` only).
        notes: human-readable remarks (dataset recognised, width, loader used).
    """

    source: str
    scheme: str
    config: DetectorConfig
    config_inferred: bool
    num_tensors: int
    filled: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def convert_tr3d_state_dict(
    state_dict: dict[str, torch.Tensor],
    config: DetectorConfig | None = None,
    meta: dict[str, Any] | None = None,
    scheme: str | None = None,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Convert a TR3D state dict into ours and prove it loads strictly into :class:`TR3DDetector`.

    Args:
        state_dict: TR3D names -> tensors (either scheme of :mod:`.tr3d_names`).
        config: the target config, or None to infer it (:func:`infer_config`).
        meta: the checkpoint's plain meta (cross-checks class names when inferring).
        scheme: force a naming scheme (default: detect).

    Returns:
        ``(our_state_dict, report)``; the state dict holds float32 copies (integer buffers keep
        their dtype) that load with ``strict=True``.

    Raises:
        TR3DConversionError: unmapped source keys, missing model keys, shape mismatches, an
            InstanceNorm stem (TR3D's ``norm='instance'``; published configs use ``'batch'``), or
            an 8-output config not decoded with ``yaw_parametrization: tr3d``.
    """
    scheme = scheme or detect_scheme(state_dict)
    renamed, unmapped = rename_tr3d_keys(state_dict, scheme)
    problems: list[str] = []
    if any(
        k.startswith("backbone.norm1.") and not k.startswith("backbone.norm1.bn.") for k in renamed
    ):
        raise TR3DConversionError(
            "the backbone stem uses InstanceNorm (TR3D MinkResNet norm='instance'); sr3d_ros's "
            "MinkResNet uses BatchNorm like TR3D's published configs (norm='batch'): this "
            "checkpoint cannot be converted"
        )
    if unmapped:
        hint = ""
        if any(k.startswith(("img_backbone.", "img_neck.")) for k in unmapped):
            hint = " (TR3D+FF image-fusion checkpoints are not supported: point-cloud TR3D only)"
        problems.append(
            f"{len(unmapped)} source tensors have no destination{hint}: {unmapped[:20]}"
        )
    inferred = config is None
    notes: list[str] = [f"naming scheme: {scheme}"]
    if config is None:
        try:
            config, more = infer_config(renamed, meta)
        except TR3DConversionError as exc:
            if problems:
                raise TR3DConversionError("; ".join(problems + [str(exc)])) from exc
            raise
        notes += more
    if config.model.num_reg_outs == 8 and config.model.yaw_parametrization != "tr3d":
        raise TR3DConversionError(
            "TR3D checkpoints with 8 regression outputs must be decoded with model."
            f"yaw_parametrization: tr3d (the config says {config.model.yaw_parametrization!r})"
        )
    model = TR3DDetector(config.model)
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    filled: list[str] = []
    for key, ref in target.items():
        if key not in renamed:
            if key.endswith("num_batches_tracked"):
                out[key] = torch.zeros_like(ref)
                filled.append(key)
            continue
        value = renamed[key]
        if tuple(value.shape) != tuple(ref.shape):
            problems.append(
                f"shape mismatch for {key}: checkpoint {tuple(value.shape)}, "
                f"model {tuple(ref.shape)}"
            )
            continue
        out[key] = value.detach().to(ref.dtype).clone()
    missing = [
        k
        for k in target
        if k not in out
        and k not in filled
        and not any(p.startswith(f"shape mismatch for {k}:") for p in problems)
    ]
    if missing:
        problems.append(f"{len(missing)} model tensors are not in the checkpoint: {missing[:20]}")
    extra = sorted(set(renamed) - set(target))
    if extra:
        problems.append(
            f"{len(extra)} checkpoint tensors do not exist in the model {_describe(config)}: "
            f"{extra[:20]}"
        )
    if problems:
        raise TR3DConversionError("; ".join(problems))
    try:
        model.load_state_dict(out, strict=True)
    except RuntimeError as exc:  # pragma: no cover - guarded by the checks above
        raise TR3DConversionError(f"strict load failed: {exc}") from exc
    report = ConversionReport(
        source="<state_dict>",
        scheme=scheme,
        config=config,
        config_inferred=inferred,
        num_tensors=len(out) - len(filled),
        filled=filled,
        notes=notes,
    )
    if filled:
        report.notes.append(
            f"filled {len(filled)} missing num_batches_tracked counters with 0 "
            "(unused at inference)"
        )
    return out, report


def _describe(config: DetectorConfig) -> str:
    m = config.model
    return (
        f"(width {m.width:g}, {m.num_classes} classes, {m.num_reg_outs} reg outs, "
        f"blocks {list(m.blocks)})"
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_tr3d_checkpoint(
    src: str | Path,
    dst: str | Path,
    config: DetectorConfig | None = None,
    inert_globals: bool = False,
    scheme: str | None = None,
) -> ConversionReport:
    """Convert a TR3D ``.pth`` file into an sr3d_ros checkpoint (atomic write).

    Args:
        src: TR3D checkpoint (either naming scheme, wrapped or raw).
        dst: output ``.pt`` path (our format, loadable by
            :meth:`sr3d_ros.inference.PointCloudDetector.from_checkpoint`).
        config: target config (e.g. ``load_yaml("config/tr3d_scannet.yaml", DetectorConfig)``),
            or None to infer it.
        inert_globals: see :func:`~.tr3d_loading.read_tr3d_file`.
        scheme: force ``"samsunglabs"`` or ``"mmdet3d"``.

    Returns:
        The :class:`ConversionReport` (also stored in the checkpoint's provenance).

    Raises:
        FileNotFoundError, TR3DConversionError: see :func:`~.tr3d_loading.read_tr3d_file` and
            :func:`convert_tr3d_state_dict`. OSError: ``dst`` not writable.
    """
    src = Path(src)
    tr3d = read_tr3d_file(src, inert_globals=inert_globals)
    try:
        ours, report = convert_tr3d_state_dict(tr3d.state_dict, config, tr3d.meta, scheme)
    except TR3DConversionError as exc:
        raise TR3DConversionError(f"{src}: {exc}") from exc
    report.source = str(src)
    if tr3d.inert_globals:
        report.notes.append(f"read with inert placeholders for: {list(tr3d.inert_globals)}")
    provenance = {
        "converted_from": "TR3D (Rukhovich et al., 2023)",
        "source_file": src.name,
        "source_sha256": _sha256(src),
        "naming_scheme": report.scheme,
        "config_inferred": report.config_inferred,
        "notes": list(report.notes),
        "source_meta": {k: v for k, v in tr3d.meta.items() if k in _META_KEYS},
        "converter": __name__,
        "converted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": to_dict(report.config),
    }
    save_checkpoint(dst, ours, report.config, provenance=provenance)
    return report
