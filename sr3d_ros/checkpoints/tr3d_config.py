"""Infer the :class:`~sr3d_ros.config.DetectorConfig` of a TR3D checkpoint from its tensor shapes.

Rules (our formulation, from TR3D's published configurations, Rukhovich et al., 2023): classes
from the head's classification outputs (18 -> ScanNet v2, 10 -> SUN RGB-D, with their
label2level tables); regression outputs from the head (8 -> yaw, decoded as TR3D does); blocks
per stage from the layer indices; width from the stem channels.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..classes import SCANNET_CLASSES, SCANNET_LABEL2LEVEL, SUNRGBD_CLASSES, SUNRGBD_LABEL2LEVEL
from ..config import DetectorConfig, InferenceConfig, ModelConfig
from ..models.backbone import scaled_channels
from .tr3d_names import TR3DConversionError

__all__ = ["infer_config"]

#: Known datasets by number of classification outputs: (name, class names, label2level,
#: regression outputs of the published models).
_KNOWN_DATASETS: dict[int, tuple[str, tuple[str, ...], tuple[int, ...], int]] = {
    len(SCANNET_CLASSES): ("ScanNet v2", SCANNET_CLASSES, SCANNET_LABEL2LEVEL, 6),
    len(SUNRGBD_CLASSES): ("SUN RGB-D", SUNRGBD_CLASSES, SUNRGBD_LABEL2LEVEL, 8),
}


def _shape(sd: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise TR3DConversionError(f"cannot infer the model: tensor {key!r} is missing")
    return tuple(sd[key].shape)


def _meta_classes(meta: dict[str, Any]) -> list[str] | None:
    """Class names recorded in a TR3D meta (mmcv 1.x ``CLASSES`` or mmengine
    ``dataset_meta.classes``), or None."""
    dataset_meta = meta.get("dataset_meta")
    for names in (
        meta.get("CLASSES"),
        dataset_meta.get("classes") if isinstance(dataset_meta, dict) else None,
    ):
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return names
    return None


def infer_config(
    state_dict: dict[str, torch.Tensor], meta: dict[str, Any] | None = None
) -> tuple[DetectorConfig, list[str]]:
    """Infer the :class:`DetectorConfig` from a state dict in *our* names (after renaming).

    Rules: classes from ``head.conv_cls`` output channels (18 -> ScanNet, 10 -> SUN RGB-D, with
    their label2level tables); ``num_reg_outs`` from ``head.conv_reg`` (8 -> yaw, decoded with
    ``yaw_parametrization: tr3d`` as TR3D does); blocks per stage from the layer indices; width
    from the stem channels (``stem / 64``) when every channel count matches that width, else
    width 1 with the explicit channel counts. Voxel size 0.01 m, TR3D's post-processing.

    Returns:
        ``(config, notes)``.

    Raises:
        TR3DConversionError: unknown class count, or class names in ``meta`` that differ from
            the table for that count (pass an explicit config then).
    """
    notes: list[str] = []
    stem_k = _shape(state_dict, "backbone.conv1.kernel")
    in_channels, stem = stem_k[-2], stem_k[-1]
    blocks, planes = [], []
    for i in range(1, 5):
        js = {
            int(m.group(1))
            for k in state_dict
            if (m := re.match(rf"backbone\.layer{i}\.(\d+)\.conv1\.kernel$", k))
        }
        if not js:
            raise TR3DConversionError(f"cannot infer the model: no backbone.layer{i}.* tensors")
        blocks.append(max(js) + 1)
        planes.append(_shape(state_dict, f"backbone.layer{i}.0.conv1.kernel")[-1])
    neck = _shape(state_dict, "neck.out_block_0.0.kernel")[-1]
    num_classes = _shape(state_dict, "head.conv_cls.kernel")[-1]
    num_reg = _shape(state_dict, "head.conv_reg.kernel")[-1]
    if num_classes not in _KNOWN_DATASETS:
        raise TR3DConversionError(
            f"the head predicts {num_classes} classes; only {sorted(_KNOWN_DATASETS)} "
            "(ScanNet / SUN RGB-D) can be inferred: pass a config (--config config/....yaml) "
            "with class_names and label2level"
        )
    dataset, names, l2l, expected_reg = _KNOWN_DATASETS[num_classes]
    meta_names = _meta_classes(meta or {})
    if meta_names is not None and list(meta_names) != list(names):
        raise TR3DConversionError(
            f"the checkpoint's meta lists classes {meta_names}, which differ from the {dataset} "
            f"table {list(names)}: pass a config (--config) that names them"
        )
    notes.append(
        f"{num_classes} classes -> {dataset}"
        + (" (matches the checkpoint's meta)" if meta_names else "")
    )
    if num_reg != expected_reg:
        notes.append(
            f"note: {dataset} models usually have {expected_reg} regression outputs, "
            f"this one has {num_reg}"
        )
    width = stem / 64
    fits = (
        width in (1.0, 0.5, 0.25)
        and scaled_channels(64, width) == stem
        and all(scaled_channels(p, width, 128) == c for p, c in zip((64, 128, 128, 128), planes))
        and scaled_channels(128, width, 128) == neck
    )
    if fits:
        model = ModelConfig(
            class_names=names,
            label2level=l2l,
            in_channels=in_channels,
            width=width,
            blocks=tuple(blocks),
            num_reg_outs=num_reg,
            yaw_parametrization="tr3d" if num_reg == 8 else "sincos",
        )
        notes.append(f"width {width:g} (stem {stem}, stages {planes}, neck {neck})")
    else:
        model = ModelConfig(
            class_names=names,
            label2level=l2l,
            in_channels=in_channels,
            width=1.0,
            stem_channels=stem,
            num_planes=tuple(planes),
            blocks=tuple(blocks),
            max_channels=max(planes + [neck, stem]),
            neck_channels=neck,
            num_reg_outs=num_reg,
            yaw_parametrization="tr3d" if num_reg == 8 else "sincos",
        )
        notes.append(
            f"non-standard widths: stem {stem}, stages {planes}, neck {neck} "
            "(stored explicitly, width 1)"
        )
    return DetectorConfig(model=model, inference=InferenceConfig()), notes
