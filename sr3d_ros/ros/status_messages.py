"""Status messages of the detector node: ``vision_msgs/LabelInfo`` (class id -> name and the
score threshold) and one frame's health as ``diagnostic_msgs/DiagnosticArray``.

Built once per frame at most (plainly, with the rosidl constructors); the message classes are
imported inside the functions, so importing this module needs no ROS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sr3d_ros.ros.messages import copy_header

__all__ = ["DiagnosticLevel", "diagnostics_msg", "label_info_msg"]


class DiagnosticLevel:
    """diagnostic_msgs/DiagnosticStatus levels (a byte on the wire)."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3
    NAMES: ClassVar[Mapping[str, int]] = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}


def label_info_msg(class_names: Sequence[str], header: Any, threshold: float = 0.0) -> Any:
    """``vision_msgs/LabelInfo`` mapping class index -> class name.

    Args:
        class_names: the detector's classes in label order (index ``i`` -> ``class_id = i``).
        header: ``std_msgs/Header`` (copied).
        threshold: the score threshold detections are published above (``LabelInfo.threshold``).

    Returns:
        ``LabelInfo`` with one ``VisionClass(class_id=i, class_name=name)`` per class.

    Raises:
        ValueError: more than 65536 classes (``class_id`` is uint16).
    """
    from vision_msgs.msg import LabelInfo, VisionClass

    if len(class_names) > 65536:
        raise ValueError("LabelInfo.class_id is uint16: at most 65536 classes")
    msg = LabelInfo()
    msg.header = copy_header(header)
    msg.class_map = [VisionClass(class_id=i, class_name=str(n)) for i, n in enumerate(class_names)]
    msg.threshold = float(threshold)
    return msg


def _kv_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def diagnostics_msg(
    stamp: Any,
    name: str,
    hardware_id: str,
    level: int | str,
    message: str,
    timings_ms: Mapping[str, float] | None = None,
    points_in: int | None = 0,
    detections_out: int = 0,
    frames_dropped: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """One frame's health as ``diagnostic_msgs/DiagnosticArray`` (one DiagnosticStatus).

    Args:
        stamp: ``builtin_interfaces/Time`` of the report (usually the node's clock now).
        name: status name, by convention ``"<node name>: <component>"``.
        hardware_id: e.g. the compute device (``"cpu"``, ``"cuda:0"``).
        level: ``0..3`` or ``"OK"`` / ``"WARN"`` / ``"ERROR"`` / ``"STALE"``.
        message: one-line summary.
        timings_ms: per-stage wall times in milliseconds; each becomes a key ``"<stage>_ms"``.
        points_in: points in the input cloud; None leaves the key out (image input).
        detections_out: detections published for the frame.
        frames_dropped: frames replaced before they were processed, since start.
        extra: more key-values (values formatted with ``str``; floats with 3 decimals, bools as
            ``true`` / ``false``).

    Returns:
        ``DiagnosticArray`` with ``header.stamp = stamp`` and ``status[0]`` holding the level,
        message and key-values ``points_in`` (unless None), ``detections_out``,
        ``frames_dropped``, the timings and ``extra``, in that order.

    Raises:
        ValueError: unknown level.
    """
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    lvl = DiagnosticLevel.NAMES.get(level.upper()) if isinstance(level, str) else int(level)
    if lvl not in (0, 1, 2, 3):
        raise ValueError(f"unknown diagnostic level {level!r}")
    st = DiagnosticStatus()
    st.level = bytes([lvl])
    st.name = str(name)
    st.hardware_id = str(hardware_id)
    st.message = str(message)
    values = [] if points_in is None else [KeyValue(key="points_in", value=str(int(points_in)))]
    values += [
        KeyValue(key="detections_out", value=str(int(detections_out))),
        KeyValue(key="frames_dropped", value=str(int(frames_dropped))),
    ]
    for k, v in (timings_ms or {}).items():
        values.append(KeyValue(key=f"{k}_ms", value=f"{float(v):.3f}"))
    for k, v in (extra or {}).items():
        values.append(KeyValue(key=str(k), value=_kv_value(v)))
    st.values = values
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = [st]
    return arr
