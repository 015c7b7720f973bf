"""Message types for bags: the ``rosbags`` typestore (Kilted + our ``vision_msgs``), messages
built in it with ROS defaults, and the rclpy class of a type name.

The typestore is the ROS 2 Kilted one plus our ``vision_msgs`` definitions
(``interfaces/vision_msgs/msg/*.msg``, registered with ``get_types_from_msg``), so bags carry the
same message definitions and RIHS01 type hashes as the live graph.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rosbags.interfaces.typing import FieldDesc, Typesdict
    from rosbags.typesys.store import Typestore

__all__ = ["make_typestore", "message_class", "new_msg", "vision_msgs_dir"]

_REPO = Path(__file__).resolve().parents[3]
_TYPESTORE: Typestore | None = None

# ROS base types stored as numpy arrays in rosbags messages (arrays and sequences of them)
_NUMPY_BASE: dict[str, type[np.generic]] = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def vision_msgs_dir() -> Path:
    """Folder holding our ``vision_msgs`` ``*.msg`` files.

    Looked up in the source tree (``interfaces/vision_msgs/msg``), then in the installed
    package's share folder (``<prefix>/share/vision_msgs/msg``, found through
    ``AMENT_PREFIX_PATH`` or the installed Python package).

    Raises:
        FileNotFoundError: none found (the message lists the folders tried).
    """
    cands = [_REPO / "interfaces" / "vision_msgs" / "msg"]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        cands.append(Path(prefix) / "share" / "vision_msgs" / "msg")
    cands.append(Path(sys.prefix) / "share" / "vision_msgs" / "msg")
    try:
        import vision_msgs

        cands.append(
            Path(vision_msgs.__file__).resolve().parents[4] / "share" / "vision_msgs" / "msg"
        )
    except ImportError:
        pass
    for c in cands:
        if c.is_dir() and any(c.glob("*.msg")):
            return c
    raise FileNotFoundError("vision_msgs .msg files not found; tried " + ", ".join(map(str, cands)))


def make_typestore() -> Typestore:
    """The ``rosbags`` typestore for ROS 2 Kilted plus our ``vision_msgs`` (built once, cached).

    Raises:
        FileNotFoundError: the vision_msgs definitions are missing.
    """
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        ts = get_typestore(Stores.ROS2_KILTED)
        types: Typesdict = {}
        for f in sorted(vision_msgs_dir().glob("*.msg")):
            types.update(get_types_from_msg(f.read_text(), f"vision_msgs/msg/{f.stem}"))
        ts.register(types)
        _TYPESTORE = ts
    return _TYPESTORE


def _default(ts: Typestore, desc: FieldDesc) -> Any:
    """The ROS default value of a field described by ``desc`` (rosbags' field description)."""
    from rosbags.interfaces import Nodetype

    match desc:
        case (Nodetype.BASE, (typ, _)):
            if typ in ("string", "wstring"):
                return ""
            if typ == "bool":
                return False
            return 0.0 if typ.startswith("float") else 0
        case (Nodetype.NAME, str(name)):
            return new_msg(ts, name)
        case (nodetype, (sub, length)):
            base = sub[1][0] if sub[0] == Nodetype.BASE else ""
            if nodetype == Nodetype.ARRAY:
                if base in _NUMPY_BASE:
                    return np.zeros(length, dtype=_NUMPY_BASE[base])
                return [_default(ts, sub) for _ in range(length)]
            return np.zeros(0, dtype=_NUMPY_BASE[base]) if base in _NUMPY_BASE else []
    raise TypeError(f"unexpected rosbags field description {desc!r}")


def new_msg(ts: Typestore, typename: str, **fields: Any) -> Any:
    """A ``rosbags`` message of ``typename`` with the given fields, every other field at its ROS
    default (0, '', False, empty sequences, zero arrays, nested defaults).

    Args:
        ts: the typestore (:func:`make_typestore`).
        typename: ``"pkg/msg/Name"``.
        **fields: field values, stored as given.

    Returns:
        The message (a ``rosbags`` dataclass instance; honestly ``Any``: its class is generated).

    Raises:
        KeyError: unknown type. TypeError: unknown field name.
    """
    _, fdefs = ts.fielddefs[typename]
    names = {n for n, _ in fdefs}
    unknown = set(fields) - names
    if unknown:
        raise TypeError(f"{typename} has no field(s) {sorted(unknown)}")
    kwargs = {n: fields[n] if n in fields else _default(ts, desc) for n, desc in fdefs}
    return ts.types[typename](**kwargs)


def message_class(msgtype: str) -> Any:
    """The rclpy message class of ``"pkg/msg/Name"`` (a rosidl-generated class).

    Raises:
        ValueError: not of the form ``pkg/msg/Name``. ImportError / AttributeError: the
        package's Python messages are not installed.
    """
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise ValueError(f"message type must be 'pkg/msg/Name', got {msgtype!r}")
    pkg, kind, name = parts
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
