"""ROS helpers every sr3d_ros detector node shares (the point-cloud node and the image node);
the node skeleton built on them is :class:`sr3d_ros.ros.detector_node.DetectorNode`.

* Parameters: :func:`declare_parameters` declares a :class:`~sr3d_ros.ros.params.ParamSpec`
  table with typed values (an empty list is declared as a typed empty array, so ``ros2 param
  dump`` writes ``[]``, never ``null``, and the dump loads back with ``--params-file``); numbers
  and lists accept dynamic typing so that ``1`` for a double and ``[]`` in a YAML file are
  accepted the same way everywhere. :func:`unknown_overrides` lists the keys of the params file
  / ``-p`` overrides that the node does not declare (typos).
* QoS: :func:`input_qos` (keep last 1, volatile, reliable or best effort), :data:`LATCHED_QOS`.
* :class:`ReasonThrottle`: one log line per distinct reason per period.
* :func:`ros_session`: an rclpy node spun in a background thread, for command-line tools.
* :func:`run_node`: a signal-safe ``main``: SIGINT / SIGTERM stop the spin loop within
  0.1 s, later signals are ignored while shutting down, shutdown is idempotent, and the exit
  status is 0 (no traceback) after a signal; a worker thread still inside a frame after the
  deadline is abandoned.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from sr3d_ros.ros.env import ensure_safe_ros_env
from sr3d_ros.ros.params import ParamSpec

__all__ = [
    "LATCHED_QOS",
    "ReasonThrottle",
    "declare_parameters",
    "input_qos",
    "raw_parameters",
    "ros_session",
    "run_node",
    "unknown_overrides",
]

_TYPES = {
    "str": Parameter.Type.STRING,
    "bool": Parameter.Type.BOOL,
    "float": Parameter.Type.DOUBLE,
    "int": Parameter.Type.INTEGER,
    "str_list": Parameter.Type.STRING_ARRAY,
    "float_list": Parameter.Type.DOUBLE_ARRAY,
}
#: Parameters every rclpy node has (not typos when found in a params file).
_BUILTIN = {"use_sim_time", "start_type_description_service"}

#: Reliable + transient local, depth 1: late subscribers get the latest message.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def input_qos(reliability: str) -> QoSProfile:
    """Sensor input QoS: keep last 1, volatile, ``"reliable"`` or ``"best_effort"``.

    Raises:
        ValueError: another reliability name.
    """
    if reliability not in ("reliable", "best_effort"):
        raise ValueError(
            f"qos reliability must be 'reliable' or 'best_effort', got {reliability!r}"
        )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=(
            ReliabilityPolicy.RELIABLE
            if reliability == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        ),
        durability=DurabilityPolicy.VOLATILE,
    )


def declare_parameters(node: Node, specs: Iterable[ParamSpec]) -> None:
    """Declare every spec on ``node`` with a typed value (see the module docstring).

    A list parameter left ``[]`` (or set to ``[]`` by a params file, which ROS cannot type) gets
    a typed empty array of its kind.
    """
    for spec in specs:
        desc = ParameterDescriptor(
            description=spec.description, read_only=not spec.dynamic, type=_TYPES[spec.kind]
        )
        if spec.kind in ("str", "bool"):
            node.declare_parameter(spec.name, spec.default, desc)
            continue
        desc.dynamic_typing = True
        value = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        desc.read_only = False  # until a typed empty list is set (below)
        param = node.declare_parameter(spec.name, value if value != [] else None, desc)
        if spec.kind.endswith("_list") and param.type_ == Parameter.Type.NOT_SET:
            typed: Parameter[list[Any]] = Parameter(spec.name, _TYPES[spec.kind], [])
            node.set_parameters([typed])
        # rclpy has no public call to change a descriptor after declaring; its table is
        # Node._descriptors (name -> ParameterDescriptor), read by describe and set_parameters
        node._descriptors[spec.name].read_only = not spec.dynamic


def raw_parameters(
    node: Node, specs: Iterable[ParamSpec], changes: Sequence[Parameter[Any]] = ()
) -> dict[str, Any]:
    """``{name: value}`` of the declared specs (``None`` when not set), ``changes`` applied."""
    out: dict[str, Any] = {}
    for spec in specs:
        try:
            p = node.get_parameter(spec.name)
        except ParameterUninitializedException:
            out[spec.name] = None
            continue
        out[spec.name] = None if p.type_ == Parameter.Type.NOT_SET else p.value
    for p in changes:
        out[p.name] = None if p.type_ == Parameter.Type.NOT_SET else p.value
    return out


def unknown_overrides(node: Node, specs: Iterable[ParamSpec]) -> list[str]:
    """Sorted override names (params file, ``-p``) that are not declared: misspelled keys."""
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    known = {s.name for s in specs} | _BUILTIN
    return sorted(set(overrides) - known)


class ReasonThrottle:
    """Allow one message per distinct reason every ``period_s`` seconds.

    A reason is the message with its numbers replaced (``"12 points > 10"`` and
    ``"13 points > 10"`` are the same reason), so a burst of mixed bad inputs logs each kind.
    """

    def __init__(self, period_s: float = 5.0) -> None:
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, message: str) -> bool:
        """True when ``message``'s reason was not logged within the period (then it counts)."""
        key = re.sub(r"[-+]?\d[\d.eE+-]*", "#", message)
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e18) < self.period_s:
                return False
            self._last[key] = now
            return True


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def run_node(
    make_node: Callable[[], Node],
    name: str,
    args: Sequence[str] | None,
    startup_errors: tuple[type[BaseException], ...],
) -> int:
    """Run one node until SIGINT / SIGTERM / an external shutdown; signal-safe.

    Our own SIGINT / SIGTERM handlers set a stop flag; the executor spins in 0.1 s steps, so a
    signal ends the loop within 0.1 s even while a worker thread is mid-inference. From then on
    every further SIGINT / SIGTERM is ignored (Ctrl-C in a terminal signals the whole process
    group, and impatient users press it twice), the node's ``destroy_node`` runs once and
    ``rclpy`` is shut down. A worker still busy after the node's deadline is abandoned: the
    process ends with ``os._exit`` so no half-finished frame delays it.

    Args:
        make_node: builds the node (after ``rclpy.init``).
        name: logger name for start-up failures.
        args: command line (default ``sys.argv``), including ``--ros-args ...``.
        startup_errors: exceptions of ``make_node`` that mean "cannot start" (logged FATAL in
            one line, exit status 1).

    Returns:
        0 after a signal or an external shutdown, 1 when the node cannot start.
    """
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    ensure_safe_ros_env()
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        _ignore_signals()

    rclpy.init(
        args=list(sys.argv if args is None else args),
        signal_handler_options=SignalHandlerOptions.NO,
    )
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    node: Node | None = None
    rc = 0
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except startup_errors as exc:
        if not stop.is_set() and rclpy.ok():
            rclpy.logging.get_logger(name).fatal(f"cannot start: {exc}")
            rc = 1
    finally:
        _ignore_signals()
        abandoned = False
        if node is not None:
            node.destroy_node()
            abandoned = bool(getattr(node, "worker_abandoned", False))
        rclpy.try_shutdown()
    if abandoned:  # a daemon worker mid-inference: do not let interpreter exit wait on it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


@contextlib.contextmanager
def ros_session(name: str) -> Iterator[Any]:
    """An rclpy node (``Any``: rclpy is untyped) spun by a background executor, in the safe
    environment; on exit the executor stops, the node is destroyed and rclpy shut down (tools
    such as ``sr3d-bag play/record``)."""
    from rclpy.executors import SingleThreadedExecutor

    ensure_safe_ros_env()

    rclpy.init(args=[])  # our own options only; nothing on the command line is a ROS argument
    node = rclpy.create_node(name)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    try:
        yield node
    finally:
        ex.shutdown(timeout_sec=1.0)
        th.join(timeout=5.0)  # a spin thread still running at exit aborts the process
        node.destroy_node()
        rclpy.try_shutdown()
