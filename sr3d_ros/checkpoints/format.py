"""Our checkpoint format: weights + config + class names + provenance, loaded with weights_only.

A checkpoint is a ``torch.save``'d dict of plain types and tensors only::

    {"format": "sr3d_ros.checkpoint", "version": 1,
     "kind": "pointcloud",                      # detector kind: "pointcloud" | "mono"
     "config": {...},                           # DetectorConfig / MonoDetectorConfig as a dict
     "class_names": [...],
     "state_dict": {...},                       # model weights
     "provenance": {...},                       # who/what/when: data, command, git, metrics
     "training_state": {...} (optional)}        # optimizer/scheduler/step/RNG for --resume

Writes are atomic (temporary file in the same folder, fsync, rename), so a crash or Ctrl-C never
leaves a truncated checkpoint behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, overload

import torch

from ..config import ConfigError, DetectorConfig, from_dict, to_dict
from ..io.atomic import atomic_write
from ..models.mono.config import MonoDetectorConfig

__all__ = [
    "CHECKPOINT_FORMAT",
    "CONFIG_TYPES",
    "CheckpointError",
    "atomic_torch_save",
    "config_from_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "sr3d_ros.checkpoint"
CHECKPOINT_VERSION = 1

#: Detector kind -> the config dataclass its checkpoints store.
CONFIG_TYPES: dict[str, type[DetectorConfig] | type[MonoDetectorConfig]] = {
    "pointcloud": DetectorConfig,
    "mono": MonoDetectorConfig,
}

C = TypeVar("C", DetectorConfig, MonoDetectorConfig)


class CheckpointError(ValueError):
    """The file is not a valid sr3d_ros checkpoint (the message names the file and the problem)."""


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, fsync, then rename over ``path``
    (:func:`sr3d_ros.io.atomic.atomic_write`; the file gets the permissions of a new file).

    Raises:
        OSError: if the folder is not writable. Whatever ``torch.save`` raises (``path`` is then
            left as it was).
    """
    atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    config: DetectorConfig | MonoDetectorConfig,
    provenance: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    kind: str | None = None,
) -> None:
    """Write a checkpoint atomically.

    Args:
        path: output file (``.pt``).
        state_dict: model weights (tensors are moved to CPU).
        config: the detector configuration that builds the model (:class:`DetectorConfig` for
            ``"pointcloud"``, :class:`~sr3d_ros.models.mono.MonoDetectorConfig` for ``"mono"``).
        provenance: JSON-like facts: dataset, command, git revision, metrics, date.
        training_state: optional resume state (plain types / tensors only).
        kind: detector kind (default: the one ``config``'s type belongs to).

    Raises:
        ValueError: ``kind`` unknown or not the kind of ``config``. OSError: unwritable folder.
    """
    config_kind = "mono" if isinstance(config, MonoDetectorConfig) else "pointcloud"
    kind = config_kind if kind is None else kind
    if kind != config_kind:
        raise ValueError(
            f"kind {kind!r} does not match the config ({type(config).__name__} is {config_kind!r})"
        )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "config": to_dict(config),
        "class_names": list(config.model.class_names),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "provenance": provenance or {},
    }
    if training_state is not None:
        payload["training_state"] = training_state
    atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint with ``torch.load(weights_only=True)``.

    Returns:
        The checkpoint dict (see module docstring).

    Raises:
        FileNotFoundError: missing file.
        CheckpointError: an empty, truncated or non-torch file; not loadable with weights_only
            (e.g. pickled code objects); weights holding NaN/inf; not an sr3d_ros checkpoint
            (a raw state dict or a TR3D checkpoint: convert it first with
            ``sr3d-convert-tr3d``), or missing fields. One line naming the file, the problem
            and what to do; never a suggestion to load unsafely.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(
            f"{path}: empty file (0 bytes), not a checkpoint; re-export or re-download it"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(_load_failure(path, size, exc)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and (
            "state_dict" in ckpt
            or any(
                isinstance(k, str) and k.startswith(("backbone.", "head.", "bbox_head."))
                for k in ckpt
            )
        ):
            hint = " (it looks like a raw/TR3D state dict: convert it with sr3d-convert-tr3d)"
        raise CheckpointError(f"{path}: not an sr3d_ros checkpoint{hint}")
    for key, kind in (("config", dict), ("state_dict", dict), ("class_names", list)):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint has no {key!r}")
        if not isinstance(ckpt[key], kind):
            raise CheckpointError(
                f"{path}: checkpoint field {key!r} is a {type(ckpt[key]).__name__}, "
                f"not a {kind.__name__}"
            )
    _check_finite(path, ckpt["state_dict"])
    version = ckpt.get("version", 0)
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: checkpoint version {version!r} is not an integer")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {version} is newer than this sr3d_ros supports"
        )
    return ckpt


def _load_failure(path: Path, size: int, exc: Exception) -> str:
    """One clear sentence for a file torch cannot load with weights_only=True (never torch's own
    advice to load unsafely)."""
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        return (
            f"{path}: not a PyTorch checkpoint ({size} bytes that are not a torch.save zip "
            "archive: truncated, corrupt or another format); re-export or re-download it"
        )
    if "weights_only" in str(exc) or "Unpickler" in str(exc):
        return (
            f"{path}: holds Python objects other than tensors and plain types, so it cannot be "
            "loaded safely; only sr3d_ros checkpoints (sr3d-train, sr3d-convert-tr3d) are "
            "supported"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{path}: corrupt or truncated checkpoint ({first}); re-export or re-download it"


def _check_finite(path: Path, state_dict: dict[str, Any]) -> None:
    """CheckpointError naming the first tensors holding NaN/inf (a diverged or corrupt save)."""
    bad = [
        k
        for k, v in state_dict.items()
        if isinstance(v, torch.Tensor)
        and v.is_floating_point()
        and not bool(torch.isfinite(v).all())
    ]
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckpointError(
            f"{path}: {len(bad)} of {len(state_dict)} weight tensors hold NaN/inf ({names}): "
            "the training diverged or the file is corrupt; use an earlier checkpoint"
        )


@overload
def config_from_checkpoint(
    ckpt: dict[str, Any], path: str | Path = "<checkpoint>"
) -> DetectorConfig: ...


@overload
def config_from_checkpoint(
    ckpt: dict[str, Any], path: str | Path = "<checkpoint>", *, config_type: type[C]
) -> C: ...


def config_from_checkpoint(
    ckpt: dict[str, Any],
    path: str | Path = "<checkpoint>",
    *,
    config_type: Any = DetectorConfig,
) -> DetectorConfig | MonoDetectorConfig:
    """The config stored in a loaded checkpoint.

    Args:
        ckpt: a dict from :func:`load_checkpoint`. path: for messages.
        config_type: what the caller needs: :class:`DetectorConfig` (point-cloud, the default)
            or :class:`~sr3d_ros.models.mono.MonoDetectorConfig`.

    Raises:
        CheckpointError: the checkpoint is of another detector kind than ``config_type``
            (e.g. a ``"mono"`` checkpoint where a point-cloud one is needed), its config is
            invalid, or it disagrees with ``class_names``.
    """
    cls: type[DetectorConfig] | type[MonoDetectorConfig] = config_type
    kind = ckpt.get("kind", "pointcloud")
    wanted = next((k for k, t in CONFIG_TYPES.items() if t is cls), None)
    if wanted is None:
        raise TypeError(f"config_type must be one of {list(CONFIG_TYPES.values())}")
    if kind != wanted:
        raise CheckpointError(
            f"{path}: a {kind!r} detector checkpoint, but a {wanted!r} one is needed"
        )
    config: DetectorConfig | MonoDetectorConfig
    try:
        config = from_dict(cls, ckpt["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: invalid config in checkpoint: {exc}") from exc
    if list(config.model.class_names) != list(ckpt["class_names"]):
        raise CheckpointError(f"{path}: class_names disagree with the stored config")
    return config
