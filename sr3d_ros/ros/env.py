"""Process environment for rclpy: keep DDS on this machine and ROS logs in a temporary folder.

Must run before ``rclpy.init`` (the RMW and the ROS logger read these variables then).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping

__all__ = ["ensure_safe_ros_env"]


def ensure_safe_ros_env(
    force: bool = False,
    environ: MutableMapping[str, str] | None = None,
    fresh_log_dir: bool = False,
) -> dict[str, str]:
    """Set ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a temporary ``ROS_LOG_DIR``.

    Args:
        force: overwrite ``ROS_AUTOMATIC_DISCOVERY_RANGE`` even when it is set (tests, demo).
            Without it an explicit user choice (e.g. ``SUBNET`` on a robot whose sensors run on
            another computer) is kept; unset means LOCALHOST, so nothing leaves the machine unless
            someone asked for it.
        environ: the mapping to change (default ``os.environ``).
        fresh_log_dir: always point ``ROS_LOG_DIR`` at a new temporary folder (the demo: its
            processes never write into a folder shared with other runs). Without it an existing
            ``ROS_LOG_DIR`` is kept and a temporary one is made only when it is unset or empty.

    Returns:
        The values now in effect, ``{"ROS_AUTOMATIC_DISCOVERY_RANGE": ..., "ROS_LOG_DIR": ...}``.
    """
    env = os.environ if environ is None else environ
    if force or not env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if fresh_log_dir or not env.get("ROS_LOG_DIR"):
        env["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="sr3d_ros_log_")
    return {k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR")}
