# shellcheck shell=sh
# Runtime environment for sr3d_ros with the ROS 2 wheels in a venv.
#
#   . scripts/env.sh [VENV]          (default: .venv next to this script's repo)
#
# What rclpy from the PyPI wheels needs, and what this file sets:
#   * LD_LIBRARY_PATH: needed (the rcl/rmw/Fast DDS libraries live in VENV/lib and
#     site-packages/ros_*.libs, and rmw_implementation dlopen()s rmw_fastrtps_cpp by name), but
#     NOT set here: the ros-wheels-bootstrapper .pth in the venv re-execs every `VENV/bin/python`
#     once at start-up with it set (guard variable _ROS_WHEELS_BOOTSTRAP_COMPLETE). Python
#     started with -S / -I skips that and cannot import rclpy.
#   * AMENT_PREFIX_PATH=VENV: not needed for rclpy/pub/sub, needed for ament_index lookups
#     (ament_index_python.get_package_share_directory('vision_msgs'), ros2cli-style tools) and
#     for building interface packages.
#   * RMW_IMPLEMENTATION=rmw_fastrtps_cpp: the default already; pinned because Fast DDS is the
#     only RMW in the venv (a value inherited from a system ROS install would break rclpy).
#   * ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a private ROS_LOG_DIR: project rule, DDS
#     discovery stays on this machine.
# Do not source a system ROS (/opt/ros/*/setup.*) in the same shell: its PYTHONPATH and
# LD_LIBRARY_PATH would mix two ROS installs.
# POSIX sh cannot tell which file is being sourced: without bash, source it from the repo root
# or pass VENV as an absolute path.
if [ -n "${BASH_SOURCE:-}" ]; then
  _sr3d_root=$(CDPATH= cd -- "$(dirname -- "$BASH_SOURCE")/.." && pwd)
else
  _sr3d_root=$PWD
fi
_sr3d_venv=${1:-${SR3D_VENV:-$_sr3d_root/.venv}}
case "$_sr3d_venv" in /*) ;; *) _sr3d_venv=$_sr3d_root/$_sr3d_venv ;; esac
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$_sr3d_venv:"*) ;;
  *) AMENT_PREFIX_PATH=$_sr3d_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH} ;;
esac
export AMENT_PREFIX_PATH
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
if [ -z "${ROS_LOG_DIR:-}" ]; then
  ROS_LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sr3d_ros_log.XXXXXX")
  export ROS_LOG_DIR
fi
unset _sr3d_root _sr3d_venv
