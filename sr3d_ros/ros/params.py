"""Parameters of the ``pointcloud_detector`` node: one table, strict validation, no ROS.

(~430 lines: mostly the parameter table, whose descriptions are the user documentation.)

:data:`PARAMS` lists every parameter (name, default, type, description, whether it may change at
run time); the node declares exactly these, ``config/pointcloud_detector.yaml`` documents exactly
these (a test checks both), and :func:`validate_params` turns raw values (as ROS hands them over:
``None`` for a parameter left unset, ints where floats are expected, lists) into a typed,
checked :class:`NodeParams`, or raises :class:`ParamError` naming every bad value at once.

What every detector node has (model, device, threads, score threshold, detection cap, class
filter, input QoS, markers) is written once: :func:`common_params` (the specs),
:class:`CommonParams` (the fields) and :func:`convert_params` (conversion + the shared checks);
the image node's table (:mod:`sr3d_ros.ros.image_params`) builds on them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sr3d_ros.frames import transform_from_params

__all__ = [
    "PARAMS",
    "CommonParams",
    "NodeParams",
    "ParamError",
    "ParamSpec",
    "common_params",
    "convert_params",
    "defaults",
    "raise_errors",
    "validate_params",
]


class ParamError(ValueError):
    """One or more parameter values are invalid (the message lists each, one per line)."""


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter.

    Attributes:
        name: ROS parameter name (dots = YAML nesting).
        kind: ``"str"``, ``"bool"``, ``"float"``, ``"int"``, ``"str_list"`` or ``"float_list"``.
        default: value when unset.
        description: what it does (shown by ``ros2 param describe``).
        dynamic: may be changed at run time with ``ros2 param set`` (else read-only).
        field: the :class:`NodeParams` attribute it fills.
    """

    name: str
    kind: str
    default: Any
    description: str
    dynamic: bool
    field: str


def common_params(default_model: str, input_name: str) -> tuple[ParamSpec, ...]:
    """The parameters every detector node has.

    Args:
        default_model: the embedded default model file, named in ``checkpoint``'s description.
        input_name: the input topic, named in ``qos_reliability``'s description.
    """
    return (
        ParamSpec(
            "checkpoint",
            "str",
            "",
            "Path of an sr3d_ros checkpoint (.pt) or the name of a shipped model (a file stem in "
            f"sr3d_ros/models/weights); '' = the embedded default model ({default_model}).",
            False,
            "checkpoint",
        ),
        ParamSpec(
            "device",
            "str",
            "auto",
            "Inference device: 'auto' (cuda if available, else cpu), 'cpu', 'cuda' or 'cuda:N'.",
            False,
            "device",
        ),
        ParamSpec(
            "num_threads",
            "int",
            0,
            "CPU threads for inference (torch.set_num_threads, process-wide); 0 = torch's "
            "default (one per core). Use 1 when the CPU is shared with other busy processes: "
            "oversubscribed OpenMP threads can make CPU inference many times slower.",
            False,
            "num_threads",
        ),
        ParamSpec(
            "score_threshold",
            "float",
            0.3,
            "Publish detections with score >= this, in [0, 1]. 0.01 reproduces the mAP "
            "evaluation protocol (many low-score boxes).",
            True,
            "score_threshold",
        ),
        ParamSpec(
            "max_detections",
            "int",
            0,
            "Keep at most this many detections per frame, best first; 0 = the checkpoint's "
            "setting (no cap by default).",
            True,
            "max_detections",
        ),
        ParamSpec(
            "classes_to_keep",
            "str_list",
            (),
            "Class names to publish (e.g. ['chair', 'table']); empty = all classes. Unknown "
            "names are an error.",
            True,
            "classes_to_keep",
        ),
        ParamSpec(
            "qos_reliability",
            "str",
            "reliable",
            f"Reliability of the {input_name} subscription (keep last 1, volatile): 'reliable' "
            "(the default: large messages arrive whole; matches only reliable publishers, which "
            "most drivers are) or 'best_effort' (matches every publisher; with Fast DDS's default "
            "transports best-effort messages larger than ~0.5 MB from another process are mostly "
            "lost).",
            False,
            "qos_reliability",
        ),
        ParamSpec(
            "publish_markers",
            "bool",
            True,
            "Publish ~/output/markers (box edges + labels for RViz).",
            True,
            "publish_markers",
        ),
        ParamSpec(
            "marker_lifetime",
            "float",
            0.0,
            "Seconds a marker stays visible without an update; 0 = until the next frame "
            "replaces it.",
            True,
            "marker_lifetime",
        ),
    )


PARAMS: tuple[ParamSpec, ...] = (
    *common_params("sr3d_ros/models/weights/sr3d_scannet_default.pt", "~/input/points"),
    ParamSpec(
        "nms_iou_threshold",
        "float",
        0.5,
        "Per-class NMS IoU threshold, in (0, 1].",
        True,
        "nms_iou_threshold",
    ),
    ParamSpec(
        "max_points",
        "int",
        200000,
        "Clouds with more valid points are randomly subsampled to this many before "
        "detection (a throttled warning is logged); 0 = never subsample.",
        True,
        "max_points",
    ),
    ParamSpec(
        "max_input_points",
        "int",
        4000000,
        "Clouds with more points (height * width) are rejected as bad input without "
        "decoding: an empty Detection3DArray is published; 0 = no limit.",
        True,
        "max_input_points",
    ),
    ParamSpec(
        "max_range",
        "float",
        20.0,
        "Points farther than this from the origin of the (gravity-aligned) detection frame are "
        "dropped before voxelisation, metres; 0 = no limit. 20 m suits the indoor models; "
        "far outliers would otherwise blow up the work and memory.",
        True,
        "max_range",
    ),
    ParamSpec(
        "crop_box",
        "float_list",
        (),
        "[x_min, y_min, z_min, x_max, y_max, z_max] metres in the gravity-aligned frame: "
        "points outside are dropped before voxelisation; [] = no box.",
        True,
        "crop_box",
    ),
    ParamSpec(
        "max_voxels",
        "int",
        400000,
        "Clouds occupying more voxels than this (after cropping and subsampling), or whose "
        "points are so spread out that the network would need more than ~1M voxels, are "
        "refused as bad input (empty Detection3DArray): bounds memory and time.",
        True,
        "max_voxels",
    ),
    ParamSpec(
        "gravity_transform.matrix",
        "float_list",
        (),
        "Static 4x4 rigid transform (16 values, row-major) from the input cloud's frame to "
        "a gravity-aligned frame (z up): p_g = R p + t. Empty = use rpy + translation. "
        "Detections are published back in the input frame.",
        False,
        "gravity_matrix",
    ),
    ParamSpec(
        "gravity_transform.rpy",
        "float_list",
        (0.0, 0.0, 0.0),
        "Roll, pitch, yaw (radians, R = Rz(yaw) Ry(pitch) Rx(roll)) of the input -> "
        "gravity-aligned rotation; used when gravity_transform.matrix is empty.",
        False,
        "gravity_rpy",
    ),
    ParamSpec(
        "gravity_transform.translation",
        "float_list",
        (0.0, 0.0, 0.0),
        "x, y, z (metres) of the input -> gravity-aligned translation; used when "
        "gravity_transform.matrix is empty.",
        False,
        "gravity_translation",
    ),
)

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class CommonParams:
    """Validated parameters every detector node has (see :func:`common_params`)."""

    checkpoint: str = ""
    device: str = "auto"
    num_threads: int = 0
    score_threshold: float = 0.3
    max_detections: int = 0
    classes_to_keep: tuple[str, ...] = ()
    qos_reliability: str = "reliable"
    publish_markers: bool = True
    marker_lifetime: float = 0.0


@dataclass(frozen=True)
class NodeParams(CommonParams):
    """Validated ``pointcloud_detector`` parameters (see :data:`PARAMS` for each)."""

    nms_iou_threshold: float = 0.5
    max_points: int = 200000
    max_input_points: int = 4000000
    max_range: float = 20.0
    crop_box: tuple[float, ...] = ()
    max_voxels: int = 400000
    gravity_matrix: tuple[float, ...] = ()
    gravity_rpy: tuple[float, ...] = (0.0, 0.0, 0.0)
    gravity_translation: tuple[float, ...] = (0.0, 0.0, 0.0)

    @property
    def gravity_transform(self) -> np.ndarray | None:
        """``float64 (4, 4)`` input -> gravity-aligned transform, or ``None`` for the identity."""
        t = transform_from_params(self.gravity_matrix, self.gravity_rpy, self.gravity_translation)
        return None if np.array_equal(t, np.eye(4)) else t


def defaults() -> dict[str, Any]:
    """``{ros parameter name: default value}`` of every parameter."""
    return {p.name: p.default for p in PARAMS}


def _number(v: Any, integer: bool) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"expected {'an integer' if integer else 'a number'}, got {v!r}")
    if integer:
        if isinstance(v, (float, np.floating)) and not float(v).is_integer():
            raise ValueError(f"expected an integer, got {v!r}")
        return int(v)
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"expected a finite number, got {v!r}")
    return f


def _convert(spec: ParamSpec, v: Any) -> Any:
    if v is None:  # unset (e.g. `[]` in a YAML file, which ROS cannot type)
        return spec.default
    if spec.kind == "str":
        if not isinstance(v, str):
            raise ValueError(f"expected a string, got {v!r}")
        return v
    if spec.kind == "bool":
        if not isinstance(v, bool):
            raise ValueError(f"expected true/false, got {v!r}")
        return v
    if spec.kind in ("float", "int"):
        return _number(v, spec.kind == "int")
    if isinstance(v, (str, bytes)) or not isinstance(v, (Sequence, np.ndarray)):
        if hasattr(v, "tolist"):  # array.array from rclpy
            v = v.tolist()
        else:
            raise ValueError(f"expected a list, got {v!r}")
    if spec.kind == "str_list":
        if not all(isinstance(x, str) for x in v):
            raise ValueError(f"expected a list of strings, got {list(v)!r}")
        return tuple(v)
    return tuple(float(_number(x, False)) for x in v)


#: ``check(ok, name, what)``: record ``"name: what, got value"`` unless ``ok``.
Check = Callable[[bool, str, str], None]


def convert_params(
    values: Mapping[str, Any],
    specs: Sequence[ParamSpec],
    class_names: Sequence[str] | None = None,
) -> tuple[dict[str, Any], list[str], Check]:
    """Convert raw values by ``specs`` and run the checks of the common parameters.

    Args:
        values: ``{ros parameter name: value}``; missing names or ``None`` take the default.
            Numbers may be int or float; lists may be lists, tuples or arrays.
        specs: the node's parameter table (the common parameters included).
        class_names: the detector's classes; when given, ``classes_to_keep`` must name only
            these.

    Returns:
        ``(fields, errors, check)``: ``{field: converted value}`` (the default where a value is
        invalid), the problems found so far (one line each), and a ``check`` function that adds
        a node-specific problem to ``errors``.
    """
    errors: list[str] = []
    unknown = sorted(set(values) - {s.name for s in specs})
    if unknown:
        errors.append(f"unknown parameter(s) {unknown}")
    out: dict[str, Any] = {}
    for spec in specs:
        try:
            out[spec.field] = _convert(spec, values.get(spec.name))
        except ValueError as exc:
            errors.append(f"{spec.name}: {exc}")
            out[spec.field] = spec.default

    def check(ok: bool, name: str, what: str) -> None:
        if not ok:
            errors.append(f"{name}: {what}, got {values.get(name)!r}")

    check(
        bool(_DEVICE_RE.match(out["device"])), "device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"
    )
    check(out["num_threads"] >= 0, "num_threads", "must be >= 0 (0 = torch's default)")
    check(0.0 <= out["score_threshold"] <= 1.0, "score_threshold", "must be in [0, 1]")
    check(out["max_detections"] >= 0, "max_detections", "must be >= 0 (0 = no cap)")
    check(
        out["qos_reliability"] in ("best_effort", "reliable"),
        "qos_reliability",
        "must be 'best_effort' or 'reliable'",
    )
    check(out["marker_lifetime"] >= 0.0, "marker_lifetime", "must be >= 0 seconds")
    if class_names is not None:
        bad = [c for c in out["classes_to_keep"] if c not in class_names]
        if bad:
            errors.append(
                f"classes_to_keep: unknown class(es) {bad}; the model knows {list(class_names)}"
            )
    return out, errors, check


def raise_errors(errors: Sequence[str]) -> None:
    """Raise :class:`ParamError` listing ``errors`` (one per line), if there are any."""
    if errors:
        raise ParamError("invalid parameters:\n  " + "\n  ".join(errors))


def validate_params(
    values: Mapping[str, Any], class_names: Sequence[str] | None = None
) -> NodeParams:
    """Check raw ``pointcloud_detector`` parameter values and build :class:`NodeParams`.

    Args:
        values: ``{ros parameter name: value}``; missing names or ``None`` take the default.
            Numbers may be int or float; lists may be lists, tuples or arrays.
        class_names: the detector's classes; when given, ``classes_to_keep`` must name only
            these.

    Returns:
        :class:`NodeParams`.

    Raises:
        ParamError: unknown parameter names or invalid values; the message lists every problem
            (one per line) with the parameter name and the accepted values.
    """
    out, errors, check = convert_params(values, PARAMS, class_names)
    check(0.0 < out["nms_iou_threshold"] <= 1.0, "nms_iou_threshold", "must be in (0, 1]")
    check(out["max_points"] >= 0, "max_points", "must be >= 0 (0 = no limit)")
    check(out["max_input_points"] >= 0, "max_input_points", "must be >= 0 (0 = no limit)")
    check(out["max_range"] >= 0.0, "max_range", "must be >= 0 metres (0 = no limit)")
    box = out["crop_box"]
    check(
        not box or (len(box) == 6 and all(a < b for a, b in zip(box[:3], box[3:], strict=True))),
        "crop_box",
        "must be [] or [x_min, y_min, z_min, x_max, y_max, z_max] with min < max",
    )
    check(out["max_voxels"] >= 1, "max_voxels", "must be >= 1")
    try:
        transform_from_params(out["gravity_matrix"], out["gravity_rpy"], out["gravity_translation"])
    except ValueError as exc:
        errors.append(f"gravity_transform: {exc}")
    raise_errors(errors)
    return NodeParams(**out)
