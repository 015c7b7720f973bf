"""Fast construction of rosidl (rclpy) message objects, for the node's per-frame builders.

The generated rclpy ``__init__`` costs 1-15 us per message object (a Marker builds ~10 nested
messages), and a 100-box MarkerArray holds ~3,000 objects with the box edges.
:func:`fast_builder` returns, per message class, a small function generated once (``exec``) from
the class's ``__slots__`` that allocates the instance and fills the slots rosidl generates
(``_<field>``) directly, giving every field a fresh default exactly like the generated
constructor (checked against it in the tests). :func:`gc_paused` keeps the cyclic garbage
collector from scanning a model-sized heap while a message tree is built.

``benchmarks/bench_messages.py`` measures both against plain construction (same messages); they
are kept because they pay at the node's sizes (see its decision rule). Values are stored
unchecked: callers pass the field's Python type (float for floating-point fields, int for
integers, str for strings), as the C serialiser expects.
"""

from __future__ import annotations

import array
import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

__all__ = ["MessageBuilder", "fast_builder", "gc_paused", "point_list_builder"]

#: ``make(**fields) -> message``: builds one message class (the message is honestly ``Any``:
#: rosidl classes carry no type information).
MessageBuilder = Callable[..., Any]

_MISSING = object()


class _FastMsg:
    """Generates the builder of one rosidl message class (see :func:`fast_builder`)."""

    _cache: ClassVar[dict[type, MessageBuilder]] = {}

    def __init__(self, cls: type) -> None:
        template = cls()
        slots: Sequence[str] = vars(cls)["__slots__"]
        env: dict[str, Any] = {"_new": cls.__new__, "_cls": cls, "_M": _MISSING}
        env["_array"] = array.array
        params, body = [], ["    o = _new(_cls)"]
        for k, slot in enumerate(slots):
            if not slot.isidentifier():  # pragma: no cover - rosidl slots are identifiers
                raise TypeError(f"{cls.__name__}: unexpected slot {slot!r}")
            value = getattr(template, slot)
            name = slot[1:] if slot.startswith("_") else slot
            d = f"_d{k}"
            if hasattr(type(value), "get_fields_and_field_types"):
                env[d] = fast_builder(type(value))
                default = f"{d}()"
            elif isinstance(value, list):
                default = "[]"
            elif isinstance(value, array.array):
                env[d] = value.typecode
                default = f"_array({d})"
            elif isinstance(value, np.ndarray):
                env[d] = value.copy()
                default = f"{d}.copy()"
            else:
                env[d] = value
                default = d
            if name == "check_fields":  # internal flag, not a field: always the class default
                body.append(f"    o.{slot} = {default}")
                continue
            params.append(f"{name}=_M")
            body.append(f"    o.{slot} = {default} if {name} is _M else {name}")
        src = f"def make(*, {', '.join(params)}):\n" + "\n".join(body) + "\n    return o\n"
        exec(compile(src, f"<_FastMsg {cls.__module__}.{cls.__name__}>", "exec"), env)
        self.make: MessageBuilder = env["make"]


def fast_builder(msg_cls: type) -> MessageBuilder:
    """The (cached) builder of a rosidl message class: ``make(**fields) -> msg_cls``.

    ``fast_builder(Marker)(id=3, ns="x")`` equals ``Marker(id=3, ns="x")``: fields not given get
    a fresh default (nested messages built recursively, lists / arrays new empty ones, the
    defaults of immutable types shared). Values given are stored as they are (no type check or
    conversion). ~10x faster than the generated constructor.

    Raises:
        TypeError (from ``make``): unknown keyword names.
    """
    b = _FastMsg._cache.get(msg_cls)
    if b is None:
        b = _FastMsg._cache[msg_cls] = _FastMsg(msg_cls).make
    return b


def point_list_builder() -> Callable[[list[float], int, int], list[Any]]:
    """``make(xyz, start, count) -> list[geometry_msgs/Point]`` of ``count`` points read from
    the flat float list ``xyz`` (x0, y0, z0, x1, ...) from point ``start`` on: the hot path of
    the box edges (~0.15 us per point against ~1 us for ``Point(x=, y=, z=)``).

    Raises:
        ImportError: geometry_msgs is not installed.
    """
    from geometry_msgs.msg import Point

    new = Point.__new__
    check = Point()._check_fields

    def make(xyz: list[float], start: int, count: int) -> list[Any]:
        out: list[Any] = []
        append = out.append
        it = iter(xyz[3 * start : 3 * (start + count)])
        for x, y, z in zip(it, it, it):
            p = new(Point)
            p._check_fields = check
            p._x = x
            p._y = y
            p._z = z
            append(p)
        return out

    return make


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a message tree is built (usable as a
    decorator).

    A 100-box MarkerArray creates ~5,000 objects, which triggers several collections; in a
    process that imported torch (~170k tracked objects, as in the node) the occasional full
    collection costs tens of ms. Message trees contain no reference cycles, so nothing can
    accumulate while the collector is paused (reference counting frees them as usual).
    """
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
