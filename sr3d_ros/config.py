"""Typed configuration: dataclasses + strict YAML loading (unknown keys are an error).

Model-tied settings (classes, voxel size, widths) travel inside checkpoints; node settings
(thresholds, device, QoS) live in the node's parameter YAML; training settings live in the
training config (``sr3d_training.config``), which embeds a :class:`ModelConfig`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml

from .classes import SCANNET_CLASSES, SCANNET_LABEL2LEVEL, SUNRGBD_CLASSES, SUNRGBD_LABEL2LEVEL

__all__ = [
    "SCANNET_CLASSES",
    "SCANNET_LABEL2LEVEL",
    "SUNRGBD_CLASSES",
    "SUNRGBD_LABEL2LEVEL",
    "ConfigError",
    "DetectorConfig",
    "InferenceConfig",
    "ModelConfig",
    "from_dict",
    "load_yaml",
    "read_yaml_mapping",
    "to_dict",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid (the message names the key path)."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the point-cloud detector (TR3D: Rukhovich et al., 2023).

    Attributes:
        class_names: detection classes, index = label.
        label2level: output level (0 finer, 1 coarser) of each class; same length.
        voxel_size: metres per stride-1 voxel (TR3D: 0.01).
        in_channels: input features per point: 3 = rgb.
        width: width multiplier for real-time students (1, 0.5, 0.25).
        stem_channels: channels of the stem conv at width 1 (64).
        num_planes: channels of the 4 backbone stages at width 1 (TR3D: 64, 128, 128, 128);
            capped at ``max_channels``.
        blocks: BasicBlocks per stage (ResNet34: 3, 4, 6, 3).
        max_channels: cap on any stage's channels at width 1 (128).
        neck_channels: channels of the neck outputs / head input at width 1 (128).
        num_reg_outs: 6 (centre offset + log sizes; axis-aligned) or 8 (+ two yaw terms).
        yaw_parametrization: ``"sincos"`` (ours: yaw = atan2(r6, r7)) or ``"tr3d"`` (TR3D's
            published 8-output decoding, needed for converted TR3D SUN RGB-D checkpoints).
        color_mean: subtracted from rgb/255 before the network (TR3D: 0).
    """

    class_names: tuple[str, ...] = SCANNET_CLASSES
    label2level: tuple[int, ...] = SCANNET_LABEL2LEVEL
    voxel_size: float = 0.01
    in_channels: int = 3
    width: float = 1.0
    stem_channels: int = 64
    num_planes: tuple[int, ...] = (64, 128, 128, 128)
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    max_channels: int = 128
    neck_channels: int = 128
    num_reg_outs: int = 6
    yaw_parametrization: str = "sincos"
    color_mean: float = 0.0

    def __post_init__(self) -> None:
        if len(self.class_names) == 0:
            raise ConfigError("model.class_names must not be empty")
        if len(self.label2level) != len(self.class_names):
            raise ConfigError(
                f"model.label2level has {len(self.label2level)} entries for "
                f"{len(self.class_names)} classes"
            )
        if any(level not in (0, 1) for level in self.label2level):
            raise ConfigError("model.label2level entries must be 0 or 1 (two output levels)")
        if not self.voxel_size > 0:
            raise ConfigError(f"model.voxel_size must be > 0, got {self.voxel_size}")
        if self.width not in (1.0, 0.5, 0.25) and not (0 < self.width <= 1):
            raise ConfigError(f"model.width must be in (0, 1], got {self.width}")
        if len(self.num_planes) != 4 or len(self.blocks) != 4:
            raise ConfigError("model.num_planes and model.blocks need 4 stages")
        if self.num_reg_outs not in (6, 8):
            raise ConfigError(f"model.num_reg_outs must be 6 or 8, got {self.num_reg_outs}")
        if self.yaw_parametrization not in ("sincos", "tr3d"):
            raise ConfigError(
                "model.yaw_parametrization must be 'sincos' or 'tr3d', "
                f"got {self.yaw_parametrization!r}"
            )

    @property
    def num_classes(self) -> int:
        """C = ``len(class_names)``: the head's classification outputs; labels are 0..C-1."""
        return len(self.class_names)

    @property
    def with_yaw(self) -> bool:
        """True for 8 regression outputs (boxes with yaw, e.g. SUN RGB-D; post-processing then
        uses rotated IoU); False for 6 (axis-aligned, yaw always 0, e.g. ScanNet)."""
        return self.num_reg_outs == 8


@dataclasses.dataclass(frozen=True)
class InferenceConfig:
    """Post-processing (TR3D defaults).

    Attributes:
        nms_pre: keep the top-k locations by max class score before NMS (TR3D: 1000).
        score_threshold: drop detections below this score (TR3D: 0.01).
        iou_threshold: per-class NMS IoU threshold (TR3D: 0.5).
        max_detections: cap on detections per scene after NMS (0 = no cap).
    """

    nms_pre: int = 1000
    score_threshold: float = 0.01
    iou_threshold: float = 0.5
    max_detections: int = 0

    def __post_init__(self) -> None:
        if self.nms_pre < 1:
            raise ConfigError("inference.nms_pre must be >= 1")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError("inference.score_threshold must be in [0, 1]")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ConfigError("inference.iou_threshold must be in (0, 1]")
        if self.max_detections < 0:
            raise ConfigError("inference.max_detections must be >= 0")


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """A model plus its default post-processing: what a checkpoint carries."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    inference: InferenceConfig = dataclasses.field(default_factory=InferenceConfig)


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, path)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path}: {value!r} matches none of {args}: {errors}")
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping")
        kt, vt = get_args(tp)
        return {_convert(k, kt, path): _convert(v, vt, f"{path}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} not one of {get_args(tp)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{path}: unsupported config type {tp}")


def from_dict(cls: type[T], data: dict[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from a plain mapping, recursively and strictly.

    Raises:
        ConfigError: on an unknown key (the message lists the allowed ones), a value of the
            wrong type, or a value the dataclass rejects.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = path or cls.__name__
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {
        name: _convert(value, hints[name], f"{path}.{name}" if path else name)
        for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or cls.__name__}: {exc}") from exc


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict of lists/scalars (YAML/JSON/checkpoint friendly)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping (the one YAML reader of core and training).

    Args:
        path: the file.
        what: how the error messages name the file ("config file", "training config", ...).

    Returns:
        The mapping (an empty file gives ``{}``).

    Raises:
        FileNotFoundError: missing file. ConfigError: invalid YAML or a top level that is not a
            mapping (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_yaml(path: str | Path, cls: type[T]) -> T:
    """Load a YAML file into dataclass ``cls`` (unknown keys and bad values are errors).

    Raises:
        FileNotFoundError: missing file. ConfigError: bad YAML, unknown keys or bad values
            (the message names the file).
    """
    data = read_yaml_mapping(path)
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
