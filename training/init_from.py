"""Fine-tuning: start a training run from another checkpoint's weights (``sr3d-train
--init-from CKPT [--class-map NEW=OLD ...]``), keeping its class list or mapping it explicitly.

Rule (our formulation): every weight whose shape is the same in the checkpoint and the model is
copied. A weight whose shape differs only along one axis whose length is the number of classes
(checkpoint: ``C_old``, model: ``C_new``; e.g. the classification layer's output channels and
bias) is a per-class weight: row ``i`` of the model takes the checkpoint's row of the class
mapped to class ``i``; model classes mapped to nothing keep their fresh initialisation. Any
other difference is an error (another architecture). Without a class map the class lists must
be equal; a map between two lists of the same length other than the identity is refused (the
per-class weights cannot be told by their shape then).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sr3d_ros.checkpoints import load_checkpoint

__all__ = ["init_from_checkpoint", "parse_class_map"]

logger = logging.getLogger(__name__)
_CLASS_FIELDS = {"class_names", "label2level", "mean_sizes"}


def parse_class_map(specs: Sequence[str]) -> dict[str, str]:
    """``["NEW=OLD", ...]`` (the ``--class-map`` option) -> ``{new: old}``.

    Raises:
        ValueError: an item without ``=`` or with an empty side, or a class mapped twice.
    """
    out: dict[str, str] = {}
    for spec in specs:
        new, sep, old = spec.partition("=")
        if not sep or not new or not old:
            raise ValueError(f"--class-map wants NEW=OLD, got {spec!r}")
        if new in out:
            raise ValueError(f"--class-map maps {new!r} twice")
        out[new] = old
    return out


def _class_axis(old: torch.Size, new: torch.Size, c_old: int, c_new: int) -> int | None:
    """The one axis along which ``old`` and ``new`` differ as ``c_old`` vs ``c_new``."""
    if len(old) != len(new):
        return None
    diff = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    if len(diff) == 1 and old[diff[0]] == c_old and new[diff[0]] == c_new:
        return diff[0]
    return None


def init_from_checkpoint(
    model: nn.Module,
    path: str | Path,
    class_names: Sequence[str],
    class_map: Mapping[str, str] | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model`` for fine-tuning (module docstring).

    Args:
        model: the freshly built model of the run (its classes are ``class_names``).
        path: our checkpoint (loaded with ``weights_only=True``).
        class_names: the run's classes, in label order.
        class_map: ``{run class: checkpoint class}``; classes of the same name map to each other
            unless mapped otherwise. None: the class lists must be equal.
        kind: the run's detector kind; the checkpoint must be of it.

    Returns:
        ``{"copied": n weights, "per_class": n weights remapped, "mapping": {run class:
        checkpoint class or None}}``.

    Raises:
        FileNotFoundError / CheckpointError: missing or invalid checkpoint. ValueError: another
        kind, different class lists without a map, a map naming unknown classes, or a weight
        of another shape (the message names it).
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    ck_kind = ckpt.get("kind", "pointcloud")
    if kind is not None and ck_kind != kind:
        raise ValueError(f"{path}: a {ck_kind!r} checkpoint; this run trains a {kind!r} detector")
    old = [str(c) for c in ckpt["class_names"]]
    new = [str(c) for c in class_names]
    if class_map is None:
        if old != new:
            raise ValueError(
                f"{path}: its classes {old} differ from the run's {new}; map them with "
                "--class-map NEW=OLD (classes of the same name map by default)"
            )
        mapping: dict[str, str | None] = {c: c for c in new}
    else:
        bad_new = sorted(set(class_map) - set(new))
        bad_old = sorted(set(class_map.values()) - set(old))
        if bad_new or bad_old:
            raise ValueError(
                f"--class-map: {bad_new} not among the run's classes {new}, or {bad_old} not "
                f"among the checkpoint's {old}"
            )
        mapping = {c: class_map.get(c, c if c in old else None) for c in new}
    cfg = ckpt.get("config", {}).get("model", {})
    own = getattr(model, "config", None)
    if own is not None and isinstance(cfg, dict):
        from sr3d_ros.config import to_dict

        mine = to_dict(own)
        changed = sorted(k for k in cfg if k not in _CLASS_FIELDS and cfg.get(k) != mine.get(k))
        if changed:
            logger.warning("%s: model settings differ from the run's: %s", path, changed)
    identity = [mapping[c] for c in new] == new and old == new
    if not identity and len(old) == len(new):
        raise ValueError(
            f"--class-map between class lists of the same length ({len(new)}) cannot tell the "
            "per-class weights by their shape; add or drop a class, or reorder the run's classes"
        )
    src = ckpt["state_dict"]
    dst = model.state_dict()
    index = torch.tensor([old.index(m) if m is not None else -1 for m in mapping.values()])
    copied = remapped = 0
    with torch.no_grad():
        for key, target in dst.items():
            if key not in src:
                raise ValueError(f"{path}: no weight {key!r} (another architecture?)")
            value = src[key].to(target.dtype)
            if value.shape == target.shape:
                target.copy_(value)
                copied += 1
                continue
            axis = _class_axis(value.shape, target.shape, len(old), len(new))
            if axis is None:
                raise ValueError(
                    f"{path}: weight {key!r} is {tuple(value.shape)}, the run's is "
                    f"{tuple(target.shape)} (another architecture?)"
                )
            have = index >= 0
            rows = value.index_select(axis, index[have].clamp(min=0))
            target.index_copy_(axis, torch.nonzero(have).reshape(-1), rows.to(target.device))
            remapped += 1
    unused = sorted(set(src) - set(dst))
    if unused:
        raise ValueError(f"{path}: weights {unused[:5]} are not in the run's model")
    logger.info(
        "initialised from %s: %d weights copied, %d per-class remapped", path, copied, remapped
    )
    return {"copied": copied, "per_class": remapped, "mapping": mapping}
