"""Convert published TR3D checkpoints (Rukhovich et al., 2023) into the sr3d_ros checkpoint format.

Two published naming schemes are understood (verified against the public sources):

* ``samsunglabs`` - SamsungLabs/tr3d (mmdetection3d v0.x / mmcv 1.x). Detector
  ``MinkSingleStage3DDetector`` with submodules ``backbone`` (``MinkResNet``), ``neck``
  (``TR3DNeck``) and ``head`` (``TR3DHead`` with ``bbox_conv`` and ``cls_conv``)::

      backbone.conv1.kernel, backbone.norm1.bn.{weight,bias,running_mean,running_var,num_batches_tracked}
      backbone.layer{1..4}.{j}.{conv1,conv2}.kernel, ....{norm1,norm2}.bn.*
      backbone.layer{1..4}.0.downsample.0.kernel, ....downsample.1.bn.*
      neck.up_block_{1,2}.0.kernel, neck.up_block_{1,2}.1.bn.*
      neck.lateral_block_{0,1}.0.kernel, neck.lateral_block_{0,1}.1.bn.*
      neck.out_block_{0,1}.0.kernel, neck.out_block_{0,1}.1.bn.*
      head.bbox_conv.{kernel,bias}   -> head.conv_reg.{kernel,bias}
      head.cls_conv.{kernel,bias}    -> head.conv_cls.{kernel,bias}

* ``mmdet3d`` - open-mmlab/mmdetection3d ``projects/TR3D`` (mmdetection3d v1.x / mmengine).
  Same backbone (``TR3DMinkResNet``) and neck names; the head is ``bbox_head`` with
  ``conv_reg`` / ``conv_cls``::

      bbox_head.conv_reg.{kernel,bias} -> head.conv_reg.{kernel,bias}
      bbox_head.conv_cls.{kernel,bias} -> head.conv_cls.{kernel,bias}

Our modules keep TR3D's names and MinkowskiEngine's weight layout (``kernel`` ``(V, C_in,
C_out)``, ``(C_in, C_out)`` for 1x1x1 stride-1 kernels; ``bias`` ``(1, C_out)``; BatchNorm as
``bn.*``), so apart from the head renaming every tensor is copied unchanged. Every source tensor
must land in the model and every model tensor must be provided (only a missing
``num_batches_tracked`` counter, which inference never reads, is filled with 0); anything else is
a :class:`TR3DConversionError` that lists the keys.

Loading: checkpoints are opened with ``torch.load(weights_only=True)``. Published TR3D files are
``{"state_dict": ..., "meta": ...}`` and the meta may hold pickled mmcv / mmengine / numpy
objects that ``weights_only`` refuses. Then the error names those globals and explains the two
ways out: strip the file in a trusted mmcv environment, or pass ``inert_globals=True``
(``--inert-globals``), which re-reads the file with an unpickler that resolves only torch's own
``weights_only`` allowlist and replaces every other global by an inert placeholder (no code from
the file runs; the placeholders are discarded, only tensors of the state dict are kept).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import pickle
import re
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from .checkpoints import save_checkpoint
from .config import (
    SCANNET_CLASSES,
    SCANNET_LABEL2LEVEL,
    SUNRGBD_CLASSES,
    SUNRGBD_LABEL2LEVEL,
    DetectorConfig,
    InferenceConfig,
    ModelConfig,
    to_dict,
)
from .models import TR3DDetector
from .models.backbone import scaled_channels

__all__ = [
    "SCHEMES",
    "ConversionReport",
    "TR3DConversionError",
    "convert_tr3d_checkpoint",
    "convert_tr3d_state_dict",
    "detect_scheme",
    "extract_state_dict",
    "infer_config",
    "load_tr3d_checkpoint",
    "rename_tr3d_keys",
]

#: Published naming schemes: name -> {source prefix: our prefix}. Prefixes not listed are unmapped.
SCHEMES: dict[str, dict[str, str]] = {
    "samsunglabs": {
        "backbone.": "backbone.",
        "neck.": "neck.",
        "head.bbox_conv.": "head.conv_reg.",
        "head.cls_conv.": "head.conv_cls.",
    },
    "mmdet3d": {
        "backbone.": "backbone.",
        "neck.": "neck.",
        "bbox_head.conv_reg.": "head.conv_reg.",
        "bbox_head.conv_cls.": "head.conv_cls.",
    },
}

#: Known datasets by number of classification outputs: (class names, label2level, reg outputs).
_KNOWN_DATASETS: dict[int, tuple[str, tuple[str, ...], tuple[int, ...], int]] = {
    len(SCANNET_CLASSES): ("ScanNet v2", SCANNET_CLASSES, SCANNET_LABEL2LEVEL, 6),
    len(SUNRGBD_CLASSES): ("SUN RGB-D", SUNRGBD_CLASSES, SUNRGBD_LABEL2LEVEL, 8),
}

_STRIP_HINT = (
    "To strip it, run once in a trusted environment that has mmcv/mmengine installed (this "
    "unpickles the file, so only do it for a file you trust):\n"
    "    python -c \"import torch; c = torch.load('IN.pth', map_location='cpu', weights_only=False); "
    "torch.save({'state_dict': c['state_dict']}, 'IN_weights.pth')\"\n"
    "or re-run the conversion with --inert-globals (convert_tr3d_checkpoint(..., inert_globals=True)): "
    "the file is then read with torch's weights_only allowlist plus inert placeholders for the "
    "globals above; no code from the file is executed and everything but the tensors is discarded."
)


class TR3DConversionError(ValueError):
    """A TR3D checkpoint cannot be converted (the message names the file, keys or shapes)."""


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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
class _InertGlobal(dict):
    """Placeholder for a pickled global that is not on torch's weights_only allowlist.

    Calling or instantiating it never runs anything from the file: it only records its
    arguments; it accepts items, appends and ``__setstate__`` so any container state fits.
    """

    _inert_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _InertGlobal:
        return dict.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        dict.__init__(self)
        self.__dict__["_inert_args"] = args

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_inert_state"] = state

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_inert_items", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("_inert_items", []).extend(values)

    def __repr__(self) -> str:
        return f"<inert {self._inert_name}>"


def _torch_allowed_globals() -> dict[str, Any]:
    """torch's own ``weights_only`` allowlist (full name -> object)."""
    try:
        from torch import _weights_only_unpickler as wou

        return dict(wou._get_allowed_globals())
    except Exception:
        import torch._utils as tu

        allowed: dict[str, Any] = {"collections.OrderedDict": OrderedDict, "torch.Size": torch.Size}
        for name in (
            "_rebuild_tensor",
            "_rebuild_tensor_v2",
            "_rebuild_parameter",
            "_rebuild_parameter_with_state",
        ):
            if hasattr(tu, name):
                allowed[f"torch._utils.{name}"] = getattr(tu, name)
        return allowed


class _InertUnpickler(pickle.Unpickler):
    """Unpickler resolving only torch's weights_only allowlist; every other global is inert."""

    _allowed: dict[str, Any] | None = None
    replaced: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        if _InertUnpickler._allowed is None:
            _InertUnpickler._allowed = _torch_allowed_globals()
        full = f"{module}.{name}"
        obj = _InertUnpickler._allowed.get(full)
        if obj is not None:
            return obj
        _InertUnpickler.replaced.add(full)
        return type(
            name,
            (_InertGlobal,),
            {"_inert_name": full, "__module__": "sr3d_ros.tr3d_convert.inert"},
        )


def _inert_pickle_module() -> types.ModuleType:
    mod = types.ModuleType("sr3d_ros_inert_pickle")
    mod.Unpickler = _InertUnpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: _InertUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    mod.__name__ = "sr3d_ros_inert_pickle"
    return mod


def load_tr3d_checkpoint(
    path: str | Path, inert_globals: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a TR3D checkpoint file safely and return ``(state_dict, meta)``.

    Args:
        path: ``.pth`` file: a raw state dict, or a dict with ``state_dict`` (mmcv / mmengine)
            or ``model`` plus optional ``meta``.
        inert_globals: when ``weights_only=True`` refuses the file (pickled mmcv / numpy
            objects in ``meta``), re-read it with inert placeholders for those globals (see the
            module docstring). No code from the file is executed either way.

    Returns:
        ``state_dict``: name -> CPU tensor, TR3D names as stored; ``meta``: the file's meta as
        plain JSON-like data (placeholders and non-plain values dropped; ``{}`` if absent).

    Raises:
        FileNotFoundError: missing file.
        TR3DConversionError: refused by ``weights_only`` (the message lists the offending
            globals and how to strip them), or no state dict of tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TR3D checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:
            unsafe = []
        listed = ", ".join(unsafe) if unsafe else str(exc).splitlines()[0]
        if not inert_globals:
            raise TR3DConversionError(
                f"{path}: torch.load(weights_only=True) refused the file because it pickles "
                f"non-tensor objects ({listed}), typically mmcv/mmengine/numpy objects in 'meta'. "
                f"sr3d_ros never unpickles arbitrary code.\n{_STRIP_HINT}"
            ) from exc
        _InertUnpickler.replaced = set()
        try:
            obj = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=_inert_pickle_module()
            )
        except Exception as exc2:
            raise TR3DConversionError(
                f"{path}: cannot be read even with inert placeholders for ({listed}): {exc2}\n{_STRIP_HINT}"
            ) from exc2
    except Exception as exc:
        raise TR3DConversionError(f"{path}: not a readable torch checkpoint: {exc}") from exc
    try:
        return extract_state_dict(obj)
    except TR3DConversionError as exc:
        raise TR3DConversionError(f"{path}: {exc}") from exc


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON-like copy of ``value`` (placeholders, tensors and other objects become ``None``)."""
    if depth > 6 or isinstance(value, _InertGlobal):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items() if isinstance(k, str)}
    return None


def extract_state_dict(obj: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Unwrap a loaded checkpoint object into ``(state_dict, meta)``.

    Accepts a raw ``{name: tensor}`` dict or a wrapper with ``state_dict`` (or ``model``) and
    optional ``meta``; a ``module.`` prefix on every key (DataParallel) is removed.

    Raises:
        TR3DConversionError: no tensors, or non-tensor values inside the state dict.
    """
    if not isinstance(obj, dict):
        raise TR3DConversionError(f"expected a dict checkpoint, got {type(obj).__name__}")
    meta: dict[str, Any] = {}
    if "state_dict" in obj or "model" in obj:
        sd = obj.get("state_dict", obj.get("model"))
        meta_raw = obj.get("meta")
        meta = _plain(meta_raw) if isinstance(meta_raw, dict) else {}
    else:
        sd = obj
    if not isinstance(sd, dict) or not sd:
        raise TR3DConversionError(
            "no state dict found (expected keys 'state_dict' or 'model', or a raw state dict)"
        )
    bad = sorted(str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise TR3DConversionError(
            f"state dict has non-tensor entries: {bad[:10]}{' ...' if len(bad) > 10 else ''}"
        )
    sd = {str(k): v for k, v in sd.items()}
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd, meta or {}


# --------------------------------------------------------------------------------------------
# Renaming and config inference
# --------------------------------------------------------------------------------------------
def detect_scheme(state_dict: dict[str, torch.Tensor]) -> str:
    """``"mmdet3d"`` if keys start with ``bbox_head.``, ``"samsunglabs"`` if with ``head.``.

    Raises:
        TR3DConversionError: neither or both head prefixes present.
    """
    has_mm = any(k.startswith("bbox_head.") for k in state_dict)
    has_sl = any(k.startswith("head.") for k in state_dict)
    if has_mm == has_sl:
        what = (
            "both 'head.' and 'bbox_head.'"
            if has_mm
            else "neither 'head.' (SamsungLabs/tr3d) nor 'bbox_head.' (mmdetection3d projects/TR3D)"
        )
        raise TR3DConversionError(
            f"cannot tell the TR3D naming scheme: the state dict has {what} keys"
        )
    return "mmdet3d" if has_mm else "samsunglabs"


def rename_tr3d_keys(
    state_dict: dict[str, torch.Tensor], scheme: str | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map TR3D key names to ours.

    Args:
        state_dict: TR3D names -> tensors.
        scheme: ``"samsunglabs"`` / ``"mmdet3d"`` or None to detect (:func:`detect_scheme`).

    Returns:
        ``(renamed, unmapped)``: our names -> the same tensor objects, and the source keys no
        rule of the scheme covers (e.g. TR3D+FF's ``img_backbone.*``).
    """
    scheme = scheme or detect_scheme(state_dict)
    if scheme not in SCHEMES:
        raise TR3DConversionError(f"unknown scheme {scheme!r}; known: {sorted(SCHEMES)}")
    rules = SCHEMES[scheme]
    renamed: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state_dict.items():
        for src, dst in rules.items():
            if key.startswith(src):
                renamed[dst + key[len(src) :]] = value
                break
        else:
            unmapped.append(key)
    return renamed, unmapped


def _shape(sd: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise TR3DConversionError(f"cannot infer the model: tensor {key!r} is missing")
    return tuple(sd[key].shape)


def _meta_classes(meta: dict[str, Any]) -> list[str] | None:
    for getter in (
        lambda m: m.get("CLASSES"),
        lambda m: (m.get("dataset_meta") or {}).get("classes"),
    ):
        try:
            names = getter(meta)
        except AttributeError:
            names = None
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
            f"the head predicts {num_classes} classes; only {sorted(_KNOWN_DATASETS)} (ScanNet / SUN RGB-D) "
            "can be inferred: pass a config (--config config/....yaml) with class_names and label2level"
        )
    dataset, names, l2l, expected_reg = _KNOWN_DATASETS[num_classes]
    meta_names = _meta_classes(meta or {})
    if meta_names is not None and list(meta_names) != list(names):
        raise TR3DConversionError(
            f"the checkpoint's meta lists classes {meta_names}, which differ from the {dataset} table "
            f"{list(names)}: pass a config (--config) that names them"
        )
    notes.append(
        f"{num_classes} classes -> {dataset}"
        + (" (matches the checkpoint's meta)" if meta_names else "")
    )
    if num_reg != expected_reg:
        notes.append(
            f"note: {dataset} models usually have {expected_reg} regression outputs, this one has {num_reg}"
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
            f"non-standard widths: stem {stem}, stages {planes}, neck {neck} (stored explicitly, width 1)"
        )
    return DetectorConfig(model=model, inference=InferenceConfig()), notes


def convert_tr3d_state_dict(
    state_dict: dict[str, torch.Tensor],
    config: DetectorConfig | None = None,
    meta: dict[str, Any] | None = None,
    scheme: str | None = None,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Convert a TR3D state dict into ours and prove it loads strictly into :class:`TR3DDetector`.

    Args:
        state_dict: TR3D names -> tensors (see the module docstring for both schemes).
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
            "the backbone stem uses InstanceNorm (TR3D MinkResNet norm='instance'); sr3d_ros's MinkResNet "
            "uses BatchNorm like TR3D's published configs (norm='batch'): this checkpoint cannot be converted"
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
            "TR3D checkpoints with 8 regression outputs must be decoded with model.yaw_parametrization: tr3d "
            f"(the config says {config.model.yaw_parametrization!r})"
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
                f"shape mismatch for {key}: checkpoint {tuple(value.shape)}, model {tuple(ref.shape)}"
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
            f"{len(extra)} checkpoint tensors do not exist in the model {_describe(config)}: {extra[:20]}"
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
            f"filled {len(filled)} missing num_batches_tracked counters with 0 (unused at inference)"
        )
    return out, report


def _describe(config: DetectorConfig) -> str:
    m = config.model
    return f"(width {m.width:g}, {m.num_classes} classes, {m.num_reg_outs} reg outs, blocks {list(m.blocks)})"


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
        inert_globals: see :func:`load_tr3d_checkpoint`.
        scheme: force ``"samsunglabs"`` or ``"mmdet3d"``.

    Returns:
        The :class:`ConversionReport` (also stored in the checkpoint's provenance).

    Raises:
        FileNotFoundError, TR3DConversionError: see :func:`load_tr3d_checkpoint` and
            :func:`convert_tr3d_state_dict`. OSError: ``dst`` not writable.
    """
    src = Path(src)
    state_dict, meta = load_tr3d_checkpoint(src, inert_globals=inert_globals)
    try:
        ours, report = convert_tr3d_state_dict(state_dict, config, meta, scheme)
    except TR3DConversionError as exc:
        raise TR3DConversionError(f"{src}: {exc}") from exc
    report.source = str(src)
    if inert_globals and _InertUnpickler.replaced:
        report.notes.append(f"read with inert placeholders for: {sorted(_InertUnpickler.replaced)}")
    provenance = {
        "converted_from": "TR3D (Rukhovich et al., 2023)",
        "source_file": src.name,
        "source_sha256": _sha256(src),
        "naming_scheme": report.scheme,
        "config_inferred": report.config_inferred,
        "notes": list(report.notes),
        "source_meta": {
            k: v
            for k, v in meta.items()
            if k
            in (
                "mmdet3d_version",
                "mmcv_version",
                "mmengine_version",
                "epoch",
                "iter",
                "time",
                "CLASSES",
                "dataset_meta",
            )
        },
        "converter": "sr3d_ros.tr3d_convert",
        "converted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": to_dict(report.config),
    }
    save_checkpoint(dst, ours, report.config, provenance=provenance)
    return report
