#!/usr/bin/env bash
# Build one of our ROS 2 interface packages (interfaces/NAME: vision_msgs, tf2_msgs) into a venv.
#
#   bash scripts/build_interface.sh VENV NAME     (setup_env.sh calls it for each package)
#
# The ROS 2 Kilted PyPI wheels carry neither vision_msgs nor tf2_msgs; interfaces/NAME is a plain
# ament_cmake interface package built here with rosidl + cmake, installed with the venv as prefix
# (Python messages in VENV's site-packages, C type supports in VENV/lib, share/NAME).
#
# Needs in VENV: the ROS runtime and build wheels (setup_env.sh's ROS_RUNTIME and ROS_BUILD), a
# C/C++ compiler and the Python headers. Only adds (or replaces) NAME's own files:
#   * VENV/share/NAME/sr3d_build_key: sha256 of interfaces/NAME's files and of the installed ros_*
#     wheels; when it matches and every message's Python class is installed, a re-run is a no-op;
#     SR3D_SETUP_FORCE=1 rebuilds anyway;
#   * VENV/share/NAME/sr3d_install_manifest.txt: the installed files, removed before a rebuild
#     (messages may have been removed);
#   * VENV/.sr3d_NAME_build.log: the build's output; on failure its tail is printed and the script
#     exits 1 with the log and build folder named.
# It also rewrites the /opt/python/... include dirs that the wheels' CMake exports hard-code (the
# machine that built them) to this Python's and numpy's, once (a no-op when none are left).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 VENV NAME" >&2; exit 2; }
VENV=$1
NAME=$2
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PY="$VENV/bin/python"
SRC="interfaces/$NAME"

t0=$SECONDS
log() { printf '[setup] %4ds  %s\n' "$((SECONDS - t0))" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
[ -f "$SRC/CMakeLists.txt" ] || die "no interface package $SRC (expected $SRC/CMakeLists.txt)"
[ -x "$PY" ] || die "no Python in $VENV (run scripts/setup_env.sh first)"
[ -d "$VENV/share/rosidl_default_generators" ] && [ -x "$VENV/bin/cmake" ] \
  || die "$VENV lacks the ROS build wheels (rosidl_default_generators, cmake): run scripts/setup_env.sh"

hash_files() {  # sha256 over names + contents of the given files (sorted)
  local f
  for f in $(printf '%s\n' "$@" | LC_ALL=C sort); do printf '== %s\n' "$f"; cat "$f"; done \
    | sha256sum | cut -c1-16
}

SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mapfile -t MSGS < <(find "$SRC/msg" -name '*.msg' -printf '%f\n' | sed 's/\.msg$//' | LC_ALL=C sort)
[ ${#MSGS[@]} -gt 0 ] || die "$SRC/msg holds no .msg files"
installed() {  # every message's class is exported by NAME.msg's generated __init__.py
  local m init="$SITE/$NAME/msg/__init__.py"
  [ -f "$init" ] || return 1
  for m in "${MSGS[@]}"; do grep -qE " import $m( |$)" "$init" || return 1; done
}

KEY_FILE="$VENV/share/$NAME/sr3d_build_key"
MANIFEST="$VENV/share/$NAME/sr3d_install_manifest.txt"
# shellcheck disable=SC2046
KEY="$(hash_files $(find "$SRC" -type f ! -name '*.pyc' | LC_ALL=C sort))-$(
  { ls "$SITE" | grep -E '^ros_.*\.dist-info$' || true; } | sha256sum | cut -c1-16)"
if [ -z "${SR3D_SETUP_FORCE:-}" ] && [ -f "$KEY_FILE" ] && [ "$(cat "$KEY_FILE")" = "$KEY" ] \
    && installed; then
  log "$NAME up to date"
  exit 0
fi

# The wheels' CMake exports name the Python/numpy include dirs of the machine that built them.
PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NPINC=$("$PY" -c 'import numpy; print(numpy.get_include())' 2>/dev/null) \
  || die "numpy is not installed in $VENV (run scripts/setup_env.sh first)"
mapfile -t bad_cmake < <(grep -rl --include='*.cmake' '/opt/python/cp3' "$VENV/share" 2>/dev/null || true)
if [ ${#bad_cmake[@]} -gt 0 ]; then
  log "rewriting /opt/python include dirs in ${#bad_cmake[@]} CMake export files"
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/(_core|core)/include#${NPINC}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${PYINC}#g" \
    "${bad_cmake[@]}"
fi

log "building $NAME (rosidl + cmake: ${MSGS[*]})"
BUILD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sr3d_$NAME.XXXXXX")
BUILD_LOG="$VENV/.sr3d_${NAME}_build.log"
if [ -f "$MANIFEST" ]; then  # remove a previous install (messages may have been removed)
  while IFS= read -r f; do rm -f -- "$f"; done <"$MANIFEST"
fi
if ! (
  unset CMAKE_PREFIX_PATH COLCON_PREFIX_PATH PYTHONPATH
  export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  set -x  # errexit is off inside `if !`: the steps are chained, the first failure ends it
  cmake -S "$SRC" -B "$BUILD_DIR" \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DPython3_FIND_VIRTUALENV=ONLY \
    -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
    && cmake --build "$BUILD_DIR" -j "$(nproc 2>/dev/null || echo 2)" \
    && cmake --install "$BUILD_DIR"
) >"$BUILD_LOG" 2>&1; then
  tail -n 40 "$BUILD_LOG" >&2
  die "$NAME build failed (full log: $BUILD_LOG, build dir: $BUILD_DIR)"
fi
installed || die "$NAME built, but $SITE/$NAME/msg does not export ${MSGS[*]} (log: $BUILD_LOG)"
cp "$BUILD_DIR/install_manifest.txt" "$MANIFEST"
printf '%s\n' "$KEY" >"$KEY_FILE"
rm -rf "$BUILD_DIR"
log "$NAME installed into $VENV"
