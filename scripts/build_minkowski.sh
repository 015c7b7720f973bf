#!/usr/bin/env bash
# Build MinkowskiEngine 0.5.4 CPU-only from the PyPI sdist, cache the wheel, install it.
#
# ME is only a *reference* for sr3d_ros's own sparse engine (test/sparse/test_against_minkowski.py
# and benchmarks/bench_sparse.py); nothing in the package imports it. The build takes about
# 10 minutes on 2 cores, so the wheel is cached per torch version under
# ${SR3D_CACHE:-~/.cache/sr3d_ros}/wheels/ and reused by later runs (CI included).
#
# Usage: scripts/build_minkowski.sh [python]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-.venv/bin/python}}
case "$PY" in /*) ;; */*) PY="$PWD/$PY" ;; *) PY=$(command -v "$PY") ;; esac  # absolute, venv kept

# Python 3.10 removed the ABC aliases from `collections`; ME 0.5.4 still imports Sequence from
# there (e.g. `from collections import Sequence, namedtuple`). Move ABC names to collections.abc.
fix_collections_imports() {
  "$PY" - "$1" <<'PYEOF'
import pathlib, re, sys
ABC = {"Sequence", "Iterable", "Mapping", "MutableMapping", "Callable"}
pat = re.compile(r"^(\s*)from collections(?:\.abc)? import (.+)$", re.M)
def fix(m):
    names = [n.strip() for n in m.group(2).split(",")]
    abc = [n for n in names if n in ABC]
    rest = [n for n in names if n not in ABC]
    lines = []
    if abc:
        lines.append(f"{m.group(1)}from collections.abc import {', '.join(abc)}")
    if rest:
        lines.append(f"{m.group(1)}from collections import {', '.join(rest)}")
    return "\n".join(lines)
for f in pathlib.Path(sys.argv[1]).rglob("*.py"):
    text = f.read_text()
    new = pat.sub(fix, text)
    if new != text:
        f.write_text(new)
PYEOF
}

if "$PY" -c "import MinkowskiEngine" >/dev/null 2>&1; then
  echo "[build_minkowski] MinkowskiEngine already importable"; exit 0
fi

torch_ver=$("$PY" -c "import torch; print(torch.__version__.replace('+', '_'))")
py_tag=$("$PY" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
cache="${SR3D_CACHE:-$HOME/.cache/sr3d_ros}/wheels/torch-${torch_ver}-${py_tag}"
mkdir -p "$cache"
wheel=$(ls "$cache"/[Mm]inkowski[Ee]ngine-0.5.4-*.whl 2>/dev/null | head -n 1 || true)

if [ -z "$wheel" ]; then
  # BLAS headers and library for the CPU build.
  if ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
    echo "[build_minkowski] installing libopenblas-dev"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # `pip download` would run ME's setup.py to read metadata, which probes BLAS through the
  # removed numpy.distutils; fetch the sdist from the package index directly (sha256-checked).
  "$PY" - "$work" <<'PYEOF'
import hashlib, re, sys, urllib.request
index = "https://pypi.org/simple/minkowskiengine/"
page = urllib.request.urlopen(index, timeout=120).read().decode()
m = re.search(r'href="([^"]*MinkowskiEngine-0\.5\.4\.tar\.gz)#sha256=([0-9a-f]{64})"', page)
if m is None:
    sys.exit(f"MinkowskiEngine-0.5.4.tar.gz not listed at {index}")
data = urllib.request.urlopen(m.group(1), timeout=300).read()
if hashlib.sha256(data).hexdigest() != m.group(2):
    sys.exit("sha256 mismatch for MinkowskiEngine-0.5.4.tar.gz")
open(f"{sys.argv[1]}/MinkowskiEngine-0.5.4.tar.gz", "wb").write(data)
PYEOF
  tar -xzf "$work"/MinkowskiEngine-0.5.4.tar.gz -C "$work"
  src="$work/MinkowskiEngine-0.5.4"
  fix_collections_imports "$src"
  echo "[build_minkowski] compiling MinkowskiEngine 0.5.4 (CPU only, OpenBLAS); ~10 min on 2 cores"
  (cd "$src" && MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel -v --no-deps --no-build-isolation \
     --config-settings="--global-option=--blas=openblas" \
     --config-settings="--global-option=--cpu_only" \
     -w "$cache" . > "$work/build.log" 2>&1) || { tail -n 60 "$work/build.log"; exit 1; }
  wheel=$(ls "$cache"/[Mm]inkowski[Ee]ngine-0.5.4-*.whl | head -n 1)
fi

"$PY" -m pip install -q --no-deps --force-reinstall "$wheel"
# Wheels cached by an older version of this script may hold the broken import; fix in place.
fix_collections_imports "$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/MinkowskiEngine"
"$PY" -c "import MinkowskiEngine as ME; print('[build_minkowski] MinkowskiEngine', ME.__version__)"
