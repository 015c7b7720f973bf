"""Fixtures of the ROS tests: a private rclpy context spun by a background executor."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def _spinning_context() -> Iterator[tuple[Any, Any]]:
    """(rclpy Context, SingleThreadedExecutor spinning in a daemon thread); shut down on exit."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    try:
        yield ctx, ex
    finally:
        ex.shutdown(timeout_sec=2.0)
        th.join(timeout=5.0)  # a spin thread left running aborts the interpreter at exit
        ctx.try_shutdown()


@pytest.fixture
def ros() -> Iterator[tuple[Any, Any]]:
    """A private rclpy context + spinning executor for one test (a module may override it)."""
    with _spinning_context() as ctx_ex:
        yield ctx_ex


@pytest.fixture(scope="module")
def ros_module() -> Iterator[tuple[Any, Any]]:
    """The same, shared by the tests of a module (for modules whose nodes are slow to start)."""
    with _spinning_context() as ctx_ex:
        yield ctx_ex
