"""sr3d_ros.ros.env and the test session's own ROS environment (no rclpy needed)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sr3d_ros.ros.env import ensure_safe_ros_env


def test_session_uses_its_own_temporary_log_dir(request):
    """test/conftest.py always makes its own ROS_LOG_DIR, whatever the caller exported."""
    root_conftest = Path(__file__).resolve().parents[1] / "conftest.py"
    (conftest,) = (  # the registered module (``import conftest`` may find test/ros/conftest.py)
        m
        for m in request.config.pluginmanager.get_plugins()
        if Path(getattr(m, "__file__", None) or "/").resolve() == root_conftest
    )
    assert os.environ["ROS_LOG_DIR"] == conftest.ROS_LOG_DIR
    d = Path(conftest.ROS_LOG_DIR)
    assert d.is_dir() and d.name.startswith("sr3d_ros_log_")
    assert d.parent == Path(tempfile.gettempdir())
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


def test_ensure_safe_ros_env():
    env = {}
    got = ensure_safe_ros_env(environ=env)
    assert got == env and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert Path(env["ROS_LOG_DIR"]).is_dir()

    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_LOG_DIR": "/somewhere/shared"}
    assert ensure_safe_ros_env(environ=env) == env  # explicit choices kept
    assert env == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_LOG_DIR": "/somewhere/shared"}
    ensure_safe_ros_env(force=True, environ=env)
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["ROS_LOG_DIR"] == "/somewhere/shared"

    ensure_safe_ros_env(force=True, environ=env, fresh_log_dir=True)  # the demo
    first = env["ROS_LOG_DIR"]
    assert first != "/somewhere/shared" and Path(first).is_dir()
    ensure_safe_ros_env(force=True, environ=env, fresh_log_dir=True)
    assert env["ROS_LOG_DIR"] != first and Path(env["ROS_LOG_DIR"]).is_dir()
