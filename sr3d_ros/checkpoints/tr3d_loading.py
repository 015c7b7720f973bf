"""Read published TR3D checkpoint files safely: tensors only, no code from the file runs.

Files are opened with ``torch.load(weights_only=True)``. Published TR3D files are
``{"state_dict": ..., "meta": ...}`` and the meta may hold pickled mmcv / mmengine / numpy
objects that ``weights_only`` refuses. Then the error names those globals and explains the
way out: pass ``inert_globals=True``
(``--inert-globals``), which re-reads the file with an unpickler that resolves only torch's own
``weights_only`` allowlist and replaces every other global by an inert placeholder (no code from
the file runs; the placeholders are discarded, only tensors of the state dict are kept).
"""

from __future__ import annotations

import functools
import pickle
import types
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from .tr3d_names import TR3DConversionError

__all__ = ["TR3DFile", "extract_state_dict", "load_tr3d_checkpoint", "read_tr3d_file"]

_STRIP_HINT = (
    "Re-run the conversion with --inert-globals (convert_tr3d_checkpoint(..., "
    "inert_globals=True)): the file is then read with torch's weights_only allowlist plus inert "
    "placeholders for the globals above; no code from the file is executed and everything but "
    "the tensors is discarded."
)


@dataclass(frozen=True)
class TR3DFile:
    """What :func:`read_tr3d_file` found in a TR3D checkpoint file.

    Attributes:
        state_dict: name -> CPU tensor, TR3D names as stored (a DataParallel ``module.`` prefix
            removed).
        meta: the file's meta as plain JSON-like data (``{}`` if absent).
        inert_globals: full names of the pickled globals replaced by inert placeholders
            (empty unless the file was read with ``inert_globals=True`` and needed it).
    """

    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    inert_globals: tuple[str, ...] = ()


class _InertGlobal(dict[object, object]):
    """Placeholder for a pickled global that is not on torch's weights_only allowlist.

    Calling or instantiating it never runs anything from the file: it only records its
    arguments; it accepts items, appends and ``__setstate__`` so any container state fits.
    """

    _inert_name = "?"

    def __new__(cls, *args: object, **kwargs: object) -> _InertGlobal:
        return dict.__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        dict.__init__(self)
        self.__dict__["_inert_args"] = args

    def __setstate__(self, state: object) -> None:
        self.__dict__["_inert_state"] = state

    def append(self, value: object) -> None:
        self.__dict__.setdefault("_inert_items", []).append(value)

    def extend(self, values: list[object]) -> None:
        self.__dict__.setdefault("_inert_items", []).extend(values)

    def __repr__(self) -> str:
        return f"<inert {self._inert_name}>"


@functools.cache
def _torch_allowed_globals() -> dict[str, object]:
    """torch's own ``weights_only`` allowlist (full name -> object)."""
    try:
        from torch import _weights_only_unpickler as wou

        return dict(wou._get_allowed_globals())
    except Exception:  # a torch without the private helper: the tensor-rebuild essentials
        import torch._utils as tu

        allowed: dict[str, object] = {
            "collections.OrderedDict": OrderedDict,
            "torch.Size": torch.Size,
        }
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
    """Unpickler resolving only torch's weights_only allowlist; every other global is inert.

    The full names of the replaced globals are added to ``replaced``.
    """

    def __init__(self, file: IO[bytes], replaced: set[str], **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.replaced = replaced

    def find_class(self, module: str, name: str) -> Any:  # pickle's API: a class or callable
        full = f"{module}.{name}"
        obj = _torch_allowed_globals().get(full)
        if obj is not None:
            return obj
        self.replaced.add(full)
        return type(
            name,
            (_InertGlobal,),
            {"_inert_name": full, "__module__": f"{__name__}.inert"},
        )


def _inert_pickle_module(replaced: set[str]) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` whose unpickler is :class:`_InertUnpickler`."""

    class Unpickler(_InertUnpickler):
        def __init__(self, file: IO[bytes], **kwargs: Any) -> None:
            super().__init__(file, replaced, **kwargs)

    mod = types.ModuleType("sr3d_ros_inert_pickle")
    setattr(mod, "Unpickler", Unpickler)  # noqa: B010 - a module built at run time
    setattr(mod, "load", lambda f, **kw: Unpickler(f, **kw).load())  # noqa: B010
    return mod


def read_tr3d_file(path: str | Path, inert_globals: bool = False) -> TR3DFile:
    """Read a TR3D checkpoint file safely (see the module docstring).

    Args:
        path: ``.pth`` file: a raw state dict, or a dict with ``state_dict`` (mmcv / mmengine)
            or ``model`` plus optional ``meta``.
        inert_globals: when ``weights_only=True`` refuses the file (pickled mmcv / numpy
            objects in ``meta``), re-read it with inert placeholders for those globals. No code
            from the file is executed either way.

    Returns:
        :class:`TR3DFile`.

    Raises:
        FileNotFoundError: missing file.
        TR3DConversionError: refused by ``weights_only`` (the message lists the offending
            globals and how to strip them), or no state dict of tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TR3D checkpoint not found: {path}")
    replaced: set[str] = set()
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
        try:
            obj = torch.load(
                path,
                map_location="cpu",
                weights_only=False,
                pickle_module=_inert_pickle_module(replaced),
            )
        except Exception as exc2:
            raise TR3DConversionError(
                f"{path}: cannot be read even with inert placeholders for ({listed}): {exc2}\n"
                f"{_STRIP_HINT}"
            ) from exc2
    except Exception as exc:
        raise TR3DConversionError(f"{path}: not a readable torch checkpoint: {exc}") from exc
    try:
        state_dict, meta = extract_state_dict(obj)
    except TR3DConversionError as exc:
        raise TR3DConversionError(f"{path}: {exc}") from exc
    return TR3DFile(state_dict, meta, tuple(sorted(replaced)))


def load_tr3d_checkpoint(
    path: str | Path, inert_globals: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a TR3D checkpoint file (:func:`read_tr3d_file`).

    Args / Raises: as :func:`read_tr3d_file`.
    """
    f = read_tr3d_file(path, inert_globals)
    return f.state_dict, f.meta


def _plain(value: object, depth: int = 0) -> object:
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


def extract_state_dict(obj: object) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Unwrap a loaded checkpoint object into ``(state_dict, meta)``.

    Accepts a raw ``{name: tensor}`` dict or a wrapper with ``state_dict`` (or ``model``) and
    optional ``meta``; a ``module.`` prefix on every key (DataParallel) is removed.

    Returns:
        ``state_dict``: name -> tensor; ``meta``: the wrapper's meta as plain JSON-like data
        (placeholders and non-plain values dropped; ``{}`` if absent).

    Raises:
        TR3DConversionError: no tensors, or non-tensor values inside the state dict.
    """
    if not isinstance(obj, dict):
        raise TR3DConversionError(f"expected a dict checkpoint, got {type(obj).__name__}")
    meta: dict[str, Any] = {}
    if "state_dict" in obj or "model" in obj:
        sd = obj.get("state_dict", obj.get("model"))
        meta_raw = obj.get("meta")
        plain = _plain(meta_raw) if isinstance(meta_raw, dict) else None
        meta = plain if isinstance(plain, dict) else {}
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
    tensors = {str(k): v for k, v in sd.items()}
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors, meta
