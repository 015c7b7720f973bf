"""Helpers of the detector-node tests (test_node.py, test_image_node*.py): a client node that
publishes into a detector node's inputs and collects everything it publishes, the environment of
node processes."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray


class NodeClient:
    """Publishes into the inputs of the detector node ``<ns>/<node_name>`` and collects its
    detections, markers and detector diagnostics (each test node's /diagnostics is remapped
    into its namespace, so no traffic from other processes reaches the tests).

    Args:
        inputs: ``{name: (message class, topic relative to the node)}``; publisher ``name`` is
            ``self.pubs[name]`` (depth 1: the publisher itself holds no backlog).
        reliable: reliability of the publishers.
    """

    def __init__(
        self,
        ctx: Any,
        ex: Any,
        ns: str,
        node_name: str,
        inputs: dict[str, tuple[type, str]],
        reliable: bool = True,
    ) -> None:
        self.ex = ex
        self.node = rclpy.create_node(f"test_client_{uuid.uuid4().hex[:8]}", context=ctx)
        self.base = base = f"{ns}/{node_name}"
        self.detections: list[Any] = []
        self.markers: list[Any] = []
        self.diagnostics: list[Any] = []
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        sub = self.node.create_subscription
        sub(Detection3DArray, f"{base}/output/detections", self.detections.append, qos)
        sub(MarkerArray, f"{base}/output/markers", self.markers.append, qos)
        sub(DiagnosticArray, f"{ns}/diagnostics", self._diag, qos)
        pub_qos = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        self.pubs = {
            name: self.node.create_publisher(cls, f"{base}/{topic}", pub_qos)
            for name, (cls, topic) in inputs.items()
        }
        ex.add_node(self.node)

    def _diag(self, msg: Any) -> None:
        if msg.status and msg.status[0].name == f"{self.base.lstrip('/')}: detector":
            self.diagnostics.append(msg)

    def wait(self, pred: Any, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_matched(self, timeout: float = 20.0) -> None:
        for name, pub in self.pubs.items():
            self.wait(lambda p=pub: p.get_subscription_count() > 0, timeout, f"{name} subscription")
        self.wait(
            lambda: self.node.count_publishers(f"{self.base}/output/detections") > 0,
            timeout,
            "the node's publisher",
        )
        time.sleep(0.2)  # let the reverse (publisher -> our subscription) match settle

    def result_for(self, sec: int, nanosec: int = 0, timeout: float = 60.0) -> Any:
        def find() -> Any:
            return next(
                (
                    m
                    for m in self.detections
                    if m.header.stamp.sec == sec and m.header.stamp.nanosec == nanosec
                ),
                None,
            )

        self.wait(lambda: find() is not None, timeout, f"detections stamped {sec}.{nanosec}")
        return find()

    def close(self) -> None:
        self.ex.remove_node(self.node)
        self.node.destroy_node()


def close_all(ex: Any, *things: Any) -> None:
    """Close clients and destroy nodes (removing them from the executor first)."""
    for t in things:
        if isinstance(t, NodeClient):
            t.close()
        else:
            ex.remove_node(t)
            t.destroy_node()


def process_env() -> dict[str, str]:
    """The environment of node processes started by the tests: DDS on this machine, the
    session's ROS log folder (conftest), unbuffered output, thread dumps on SIGABRT."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOG_DIR"] = os.environ["ROS_LOG_DIR"]
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a SIGABRT on a hang dumps every thread's stack to the log
    return env


def start_node(node_cls: Any, ctx: Any, ex: Any, ns: str, values: dict[str, Any]) -> Any:
    """A detector node of ``node_cls`` in ``ns`` with the parameter ``values``, its
    /diagnostics remapped into ``ns``, added to the executor ``ex``."""
    from rclpy.parameter import Parameter

    node = node_cls(
        context=ctx,
        namespace=ns,
        parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
        cli_args=["--ros-args", "-r", f"/diagnostics:={ns}/diagnostics"],
    )
    ex.add_node(node)
    return node


def record_ros_logs(monkeypatch: Any) -> list[tuple[int, str, str]]:
    """Record ``(severity, logger name, message)`` of every rclpy log line that passes rclpy's
    filters (throttling included) from now until the test ends."""
    from rclpy.impl import rcutils_logger

    real = rcutils_logger._rclpy
    emitted: list[tuple[int, str, str]] = []

    class Recorder:  # the C logging call that rclpy makes once its filters let a message through
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def rclpy_logging_rcutils_log(
            self, severity: int, name: str, message: str, *rest: Any
        ) -> Any:
            emitted.append((severity, name, message))
            return real.rclpy_logging_rcutils_log(severity, name, message, *rest)

    monkeypatch.setattr(rcutils_logger, "_rclpy", Recorder())
    return emitted
