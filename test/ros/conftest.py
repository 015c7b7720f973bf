"""Fixtures of the ROS tests: a private rclpy context spun by a background executor."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
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


@pytest.fixture
def ns() -> str:
    """A fresh namespace for one test's nodes and topics (no cross-talk between tests)."""
    return f"/sr3d_test_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module's in-process nodes: on a shared 2-core machine, two
    spinning OpenMP threads per process make CPU inference 3-40x slower. Restored after the
    module. Use with ``pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
