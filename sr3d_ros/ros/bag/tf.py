"""Transforms recorded in a bag (``/tf_static`` and ``/tf``), looked up at a stamp, in numpy.

The tf2 conventions: a ``TransformStamped`` with ``header.frame_id = parent`` and
``child_frame_id = child`` maps child coordinates to parent coordinates,
``p_parent = R p_child + t``; every frame has at most one parent. :meth:`TfBuffer.lookup`
composes the chain ``source -> ... -> common ancestor -> ... -> target``.

* **Static** transforms: the one in force at a stamp is the newest static message of that
  (parent, child) pair stamped at or before it (so a bag whose calibration changes, such as
  KITTI frames from several drives, keeps each frame's own), or the oldest one when every
  static message is newer (a ``/tf_static`` recorded just after the first data, as tf2 would
  have latched it).
* **Dynamic** transforms: interpolated between the two samples bracketing the stamp
  (translation linearly, rotation by slerp; tf2's rule); a stamp outside the recorded span
  (beyond ``tolerance_ns``) is an extrapolation error, as in tf2.

Everything is float64, metres and nanoseconds; matrices are ``(4, 4)`` rigid transforms.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sr3d_ros.frames import matrix_from_quaternion, quaternion_from_matrix

__all__ = ["TfBuffer", "TfLookupError", "tf_connectivity", "tf_from_msg"]


class TfLookupError(ValueError):
    """No transform between two frames at a stamp (unknown or unconnected frames, or an
    extrapolation outside the recorded dynamic transforms); the message says which."""


def _matrix(t: Any) -> np.ndarray:
    r, p = t.transform.rotation, t.transform.translation
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion(np.array([r.x, r.y, r.z, r.w], np.float64))
    T[:3, 3] = (p.x, p.y, p.z)
    return T


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def tf_from_msg(msg: Any) -> list[tuple[str, str, int, np.ndarray]]:
    """The transforms of a ``tf2_msgs/TFMessage``: ``(parent, child, stamp_ns, T (4, 4))``
    with ``T`` child -> parent (frame names without a leading ``/``)."""
    return [
        (
            str(t.header.frame_id).lstrip("/"),
            str(t.child_frame_id).lstrip("/"),
            _stamp_ns(t.header),
            _matrix(t),
        )
        for t in msg.transforms
    ]


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    d = float(np.dot(q0, q1))
    if d < 0.0:
        q1, d = -q1, -d
    if d > 0.9999995:
        q = q0 + a * (q1 - q0)
    else:
        th = np.arccos(d)
        q = (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)
    out: np.ndarray = q / np.linalg.norm(q)
    return out


@dataclass
class _Edge:
    """The samples of one child frame: its parent, sorted stamps and matrices."""

    parent: str
    stamps: list[int] = field(default_factory=list)
    mats: list[np.ndarray] = field(default_factory=list)

    def add(self, stamp: int, T: np.ndarray) -> None:
        i = bisect.bisect_left(self.stamps, stamp)
        if i < len(self.stamps) and self.stamps[i] == stamp:
            self.mats[i] = T  # the same stamp again: the newer message wins
            return
        self.stamps.insert(i, stamp)
        self.mats.insert(i, T)


class TfBuffer:
    """Static and dynamic transforms of a bag, for lookups at message stamps.

    Args:
        tolerance_ns: how far outside the recorded span of a dynamic transform a lookup may be
            (the nearest sample is used), nanoseconds (default 0: tf2's strict rule).
    """

    def __init__(self, tolerance_ns: int = 0) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self._static: dict[str, _Edge] = {}
        self._dynamic: dict[str, _Edge] = {}

    def add(self, msg: Any, static: bool) -> None:
        """Add the transforms of a ``tf2_msgs/TFMessage`` (from ``/tf_static`` or ``/tf``).

        Raises:
            TfLookupError: a child frame given two different parents.
        """
        for parent, child, stamp, T in tf_from_msg(msg):
            self.add_transform(parent, child, stamp, T, static)

    def add_transform(
        self, parent: str, child: str, stamp_ns: int, T: np.ndarray, static: bool
    ) -> None:
        """Add one ``child -> parent`` transform (``(4, 4)``) at ``stamp_ns``.

        Raises:
            TfLookupError: ``child`` already has another parent (tf2 forbids it).
        """
        table = self._static if static else self._dynamic
        other = self._dynamic if static else self._static
        for tab in (table, other):
            edge = tab.get(child)
            if edge is not None and edge.parent != parent:
                raise TfLookupError(
                    f"frame {child!r} has two parents: {edge.parent!r} and {parent!r}"
                )
        table.setdefault(child, _Edge(parent)).add(int(stamp_ns), np.asarray(T, np.float64))

    @property
    def edges(self) -> dict[str, list[tuple[str, str]]]:
        """``{"static": [(parent, child), ...], "dynamic": [...]}``, sorted."""
        return {
            "static": sorted((e.parent, c) for c, e in self._static.items()),
            "dynamic": sorted((e.parent, c) for c, e in self._dynamic.items()),
        }

    def frames(self) -> set[str]:
        """Every frame named by a transform."""
        out: set[str] = set()
        for tab in (self._static, self._dynamic):
            for child, e in tab.items():
                out.update((child, e.parent))
        return out

    def _parent(self, frame: str, stamp: int) -> tuple[str, np.ndarray] | None:
        e = self._static.get(frame)
        if e is not None:
            i = bisect.bisect_right(e.stamps, stamp) - 1
            return e.parent, e.mats[max(i, 0)]
        e = self._dynamic.get(frame)
        if e is None:
            return None
        i = bisect.bisect_left(e.stamps, stamp)
        if i < len(e.stamps) and e.stamps[i] == stamp:
            return e.parent, e.mats[i]
        if i == 0 or i == len(e.stamps):
            near = 0 if i == 0 else len(e.stamps) - 1
            if abs(e.stamps[near] - stamp) <= self.tolerance_ns:
                return e.parent, e.mats[near]
            raise TfLookupError(
                f"extrapolation: {e.parent!r} -> {frame!r} is recorded from "
                f"{e.stamps[0]} to {e.stamps[-1]} ns, not at {stamp} ns"
            )
        t0, t1 = e.stamps[i - 1], e.stamps[i]
        a = (stamp - t0) / (t1 - t0)
        m0, m1 = e.mats[i - 1], e.mats[i]
        T = np.eye(4)
        q = _slerp(quaternion_from_matrix(m0[:3, :3]), quaternion_from_matrix(m1[:3, :3]), a)
        T[:3, :3] = matrix_from_quaternion(q)
        T[:3, 3] = (1 - a) * m0[:3, 3] + a * m1[:3, 3]
        return e.parent, T

    def _chain(self, frame: str, stamp: int) -> list[tuple[str, np.ndarray]]:
        """``[(frame, I), (parent, T_parent<-frame), (grandparent, T_gp<-frame), ...]``."""
        out = [(frame, np.eye(4))]
        seen = {frame}
        while True:
            step = self._parent(out[-1][0], stamp)
            if step is None:
                return out
            parent, T = step
            if parent in seen:
                raise TfLookupError(f"TF loop through {parent!r}")
            seen.add(parent)
            out.append((parent, T @ out[-1][1]))

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """The ``(4, 4)`` transform mapping ``source`` coordinates to ``target`` coordinates at
        ``stamp_ns`` (``p_target = T p_source``).

        Raises:
            TfLookupError: the frames are not connected, or a dynamic transform on the way has
            no sample near ``stamp_ns`` (the message names the frames and stamps).
        """
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        up = self._chain(source, stamp_ns)
        down = dict(self._chain(target, stamp_ns))
        for frame, T_frame_src in up:
            if frame in down:
                T_frame_tgt = down[frame]
                result: np.ndarray = np.linalg.inv(T_frame_tgt) @ T_frame_src
                return result
        known = ", ".join(sorted(self.frames())) or "none"
        raise TfLookupError(
            f"no transform from {source!r} to {target!r} at {stamp_ns} ns "
            f"(frames in /tf_static and /tf: {known})"
        )

    def can_transform(self, target: str, source: str, stamp_ns: int) -> bool:
        """Whether :meth:`lookup` succeeds."""
        try:
            self.lookup(target, source, stamp_ns)
        except TfLookupError:
            return False
        return True

    @classmethod
    def from_messages(cls, msgs: Iterable[tuple[Any, bool]], tolerance_ns: int = 0) -> TfBuffer:
        """A buffer of ``(TFMessage, static)`` pairs."""
        buf = cls(tolerance_ns)
        for msg, static in msgs:
            buf.add(msg, static)
        return buf


def _groups(edges: Iterable[tuple[str, str]], frames: Iterable[str]) -> dict[str, str]:
    """Union-find over ``edges``: each frame -> a representative of its connected group."""
    rep: dict[str, str] = {f: f for f in frames}

    def find(f: str) -> str:
        rep.setdefault(f, f)
        while rep[f] != f:
            rep[f] = rep[rep[f]]
            f = rep[f]
        return f

    for a, b in edges:
        rep[find(a)] = find(b)
    return {f: find(f) for f in list(rep)}


def tf_connectivity(
    buffer: TfBuffer, frames: Sequence[str], target_frame: str | None = None
) -> dict[str, Any]:
    """Whether the bag's transforms connect the data frames (ignoring time).

    Args:
        buffer: the bag's transforms. frames: the data topics' frame ids.
        target_frame: also require a path from every data frame to this frame.

    Returns:
        ``{"static": [[parent, child]], "dynamic": [...], "frames", "target_frame",
        "static_complete", "complete", "unconnected"}``: complete = every data frame reaches
        the target frame (or the first data frame) through /tf_static alone (``static_``) or
        through /tf_static and /tf; ``unconnected``: the frames that do not (with both).
    """
    fs = [f.lstrip("/") for f in frames]
    anchor = target_frame.lstrip("/") if target_frame else (fs[0] if fs else None)
    edges = buffer.edges
    everything = [*fs, *([anchor] if anchor else [])]
    stat = _groups(edges["static"], everything)
    both = _groups([*edges["static"], *edges["dynamic"]], everything)
    return {
        "static": [list(e) for e in edges["static"]],
        "dynamic": [list(e) for e in edges["dynamic"]],
        "frames": fs,
        "target_frame": target_frame,
        "static_complete": anchor is None or all(stat[f] == stat[anchor] for f in fs),
        "complete": anchor is None or all(both[f] == both[anchor] for f in fs),
        "unconnected": [] if anchor is None else [f for f in fs if both[f] != both[anchor]],
    }
