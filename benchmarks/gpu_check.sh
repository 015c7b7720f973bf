#!/usr/bin/env bash
# GPU check (issue 11): on a machine with a CUDA GPU and a CUDA build of torch, from a plain
# copy of this repository, with no network and no ROS:
#   1. sets up what is missing and quick to set up: PYTHONPATH (repository root + an
#      `sr3d_training` link to training/), the data root, and, when SR3D_WHEELS names a folder
#      of wheels, offline installs of missing Python dependencies into a temporary folder
#      (never MinkowskiEngine: the ME comparisons are CPU-only tests and are not part of this);
#   2. lists which of our Python dependencies are importable;
#   3. runs the CUDA cases of the device-parametrised tests (`pytest -m cuda`, through
#      benchmarks/gpu_check_tests.py): test files needing a module missing here are listed as
#      not run, with the module;
#   4. prints the detector latency table (benchmarks/bench_latency.py: TR3D full width at 1 cm
#      on ScanNet scene0000_00, voxelise / backbone / neck / head / post-processing / end to
#      end; the default model);
#   5. prints the monocular table (benchmarks/bench_mono.py: LeAD-M3D sizes n..x on KITTI
#      000007 at 1280 x 384, end to end with and without CGI3D; size n only with --device cpu;
#      skipped when the KITTI sample is not in the data root).
# Everything is bounded by timeouts so that the whole check stays under 8 minutes.
#
# Usage: bash benchmarks/gpu_check.sh [--device cuda|cpu] [--runs N] [--warmup N]
#                                     [--skip-tests] [--skip-bench]
#   --device cpu runs the same steps with the CPU cases (to check this script without a GPU).
# Environment:
#   PYTHON       interpreter (default: .venv/bin/python if present, else python3)
#   SR3D_DATA    data root (default: .gpu_data/ in the repository if present, else
#                ../shared/data). Needed: scannet/scannet_instance_data/scene0000_00_vert_all.npy
#                and scene0000_00_bbox.npy.
#   SR3D_WHEELS  optional folder of wheels for missing dependencies (pip --no-index; default
#                .gpu_data/wheels/ if present)
#   OUT          results folder (default: outputs/gpu_check/): gpu_check.log, tests.json,
#                latency.json, bench_mono.json
# Exit status: 0 when every step that ran passed; 1 when tests failed or the benchmark failed;
# 2 when the machine cannot run the check (no CUDA, no torch, no data).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
DEVICE=cuda
RUNS=20
WARMUP=5
RUN_TESTS=1
RUN_BENCH=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --skip-tests) RUN_TESTS=0; shift ;;
        --skip-bench) RUN_BENCH=0; shift ;;
        -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ "$DEVICE" != cuda && "$DEVICE" != cpu ]]; then
    echo "gpu_check: --device must be cuda or cpu" >&2
    exit 2
fi

OUT="${OUT:-$REPO/outputs/gpu_check}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
log() { echo "$@" | tee -a "$LOG"; }
START=$SECONDS

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

# ---- 1. setup ------------------------------------------------------------------------------
SHIM="$(mktemp -d "${TMPDIR:-/tmp}/sr3d_gpu_check.XXXXXX")"
trap 'rm -rf "$SHIM"' EXIT
ln -s "$REPO/training" "$SHIM/sr3d_training"
export PYTHONPATH="$REPO:$SHIM${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# No ROS here, but keep any ROS process the tests might start on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST MASTER_ADDR=127.0.0.1 GLOO_SOCKET_IFNAME=lo
if [[ -z "${SR3D_DATA:-}" ]]; then
    if [[ -d "$REPO/.gpu_data" ]]; then SR3D_DATA="$REPO/.gpu_data"; else SR3D_DATA="$REPO/../shared/data"; fi
fi
export SR3D_DATA
if [[ -z "${SR3D_WHEELS:-}" && -d "$REPO/.gpu_data/wheels" ]]; then SR3D_WHEELS="$REPO/.gpu_data/wheels"; fi

log "== sr3d_ros GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ), device $DEVICE) =="
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    log "gpu_check: $PYTHON cannot import torch; set PYTHON to an interpreter with torch"
    exit 2
fi
"$PYTHON" - "$DEVICE" <<'EOF' 2>&1 | tee -a "$LOG"
import platform, sys, torch
dev = sys.argv[1]
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA build "
      f"{torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
if dev == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_check: no usable CUDA device (use --device cpu to check the script itself)")
EOF
[[ ${PIPESTATUS[0]} -eq 0 ]] || exit 2

missing_data=()
for f in scannet/scannet_instance_data/scene0000_00_vert_all.npy \
         scannet/scannet_instance_data/scene0000_00_bbox.npy; do
    [[ -f "$SR3D_DATA/$f" ]] || missing_data+=("$SR3D_DATA/$f")
done
if [[ ${#missing_data[@]} -gt 0 ]]; then
    log "gpu_check: data missing: ${missing_data[*]} (copy them into .gpu_data/ or set SR3D_DATA)"
    exit 2
fi
log "data root: $SR3D_DATA"

# ---- 2. dependencies -----------------------------------------------------------------------
# module:pip-name; the first four are needed by the core, the rest by some tests / tools.
DEPS=(numpy:numpy yaml:pyyaml pytest:pytest shapely:shapely scipy:scipy tqdm:tqdm
      rich:rich PIL:pillow open3d:open3d rosbags:rosbags rclpy:rclpy)
missing=()
status=""
for dep in "${DEPS[@]}"; do
    mod="${dep%%:*}"
    if "$PYTHON" -c "import $mod" >/dev/null 2>&1; then status+=" $mod:ok"; else missing+=("$dep"); status+=" $mod:MISSING"; fi
done
if [[ ${#missing[@]} -gt 0 && -n "${SR3D_WHEELS:-}" && -d "${SR3D_WHEELS:-}" ]]; then
    pkgs=()
    for dep in "${missing[@]}"; do [[ "${dep%%:*}" == rclpy ]] || pkgs+=("${dep##*:}"); done
    if [[ ${#pkgs[@]} -gt 0 ]]; then
        log "installing offline from $SR3D_WHEELS: ${pkgs[*]}"
        timeout 45 "$PYTHON" -m pip install -q --no-index --find-links "$SR3D_WHEELS" \
            --target "$SHIM/site" "${pkgs[@]}" >>"$LOG" 2>&1 || log "  (some could not be installed)"
        export PYTHONPATH="$SHIM/site:$PYTHONPATH"
        status=""
        for dep in "${DEPS[@]}"; do
            mod="${dep%%:*}"
            if "$PYTHON" -c "import $mod" >/dev/null 2>&1; then status+=" $mod:ok"; else status+=" $mod:MISSING"; fi
        done
    fi
fi
log "python modules:$status"
if ! "$PYTHON" -c "import numpy, yaml, sr3d_ros.models, sr3d_training" >>"$LOG" 2>&1; then
    log "gpu_check: the core does not import (numpy and pyyaml are required; see $LOG);"
    log "           put their wheels in a folder and set SR3D_WHEELS to it"
    exit 2
fi

rc=0
# ---- 3. tests ------------------------------------------------------------------------------
if [[ $RUN_TESTS -eq 1 ]]; then
    if "$PYTHON" -c "import pytest" >/dev/null 2>&1; then
        log ""
        log "== $DEVICE cases of the device-parametrised tests (pytest -m $DEVICE) =="
        timeout 240 "$PYTHON" benchmarks/gpu_check_tests.py --mark "$DEVICE" \
            --json "$OUT/tests.json" -- --tb=short 2>&1 | tee -a "$LOG" | grep -vE "^(\.|s|F|E)+ *(\[ *[0-9]+%\])?$"
        trc=${PIPESTATUS[0]}
        if [[ $trc -eq 124 ]]; then log "tests: TIMED OUT after 240 s"; rc=1
        elif [[ $trc -ne 0 ]]; then log "tests: FAILED (see $LOG)"; rc=1
        else log "tests: passed"; fi
    else
        log "tests: not run (pytest is not installed here)"
    fi
fi

# ---- 4. latency ----------------------------------------------------------------------------
if [[ $RUN_BENCH -eq 1 ]]; then
    log ""
    timeout 180 "$PYTHON" benchmarks/bench_latency.py --device "$DEVICE" --runs "$RUNS" \
        --warmup "$WARMUP" --json "$OUT/latency.json" 2>&1 | tee -a "$LOG"
    brc=${PIPESTATUS[0]}
    if [[ $brc -eq 124 ]]; then log "latency benchmark: TIMED OUT after 180 s"; rc=1
    elif [[ $brc -ne 0 ]]; then log "latency benchmark: FAILED"; rc=1; fi
fi

# ---- 5. monocular detector ------------------------------------------------------------------
if [[ $RUN_BENCH -eq 1 ]]; then
    log ""
    if [[ -f "$SR3D_DATA/kitti/training/image_2/000007.png" && -f "$SR3D_DATA/kitti/training/calib/000007.txt" ]]; then
        if [[ "$DEVICE" == cuda ]]; then MONO_SIZES=(n s m b x); else MONO_SIZES=(n); fi
        timeout 90 "$PYTHON" benchmarks/bench_mono.py --device "$DEVICE" --sizes "${MONO_SIZES[@]}" \
            --repeats 5 --warmup 2 --json "$OUT/bench_mono.json" 2>&1 | tee -a "$LOG"
        mrc=${PIPESTATUS[0]}
        if [[ $mrc -eq 124 ]]; then log "monocular benchmark: TIMED OUT after 90 s"; rc=1
        elif [[ $mrc -ne 0 ]]; then log "monocular benchmark: FAILED"; rc=1; fi
    else
        log "monocular benchmark: skipped (kitti/training/{image_2,calib}/000007 not in $SR3D_DATA)"
    fi
fi

log ""
log "gpu_check: done in $((SECONDS - START)) s, exit status $rc; log and JSON in $OUT"
exit $rc
