#!/usr/bin/env python3
"""Benchmark: peak RSS of one detection for hostile inputs of up to 5M points (issue 13 #1).

Each case runs the embedded default model (``PointCloudDetector`` with its default
``InputLimits``: max_range 20 m, max_voxels 400k, neck budget 1M) in a fresh child process and
reads the child's peak RSS (``ru_maxrss``). The reference is the same input with the limits
switched off (``--with-unbounded``: only the cases that are safe to run unbounded on this
machine). The table prints input, what happened (detections / refused / cropped), seconds and
peak RSS against the 4 GB limit.

    python benchmarks/bench_node_memory.py [--json out.json] [--with-unbounded]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LIMIT_GB = 4.0

#: name -> (points, description); built in the child from the real ScanNet scans / a seed.
CASES = {
    "real scan (81k)": "the real ScanNet scene0000_00",
    "outliers (81k + 10 at 1e30/1e6)": "the real scan with 10 far outliers",
    "wide 100k over +-10 km": "uniform in a 20 km cube",
    "cube 100k over +-15 m": "uniform in a 30 m cube (isolated points)",
    "dense 1M (real x12, jittered)": "the real scan repeated with 1 cm jitter",
    "dense 5M (real x61, jittered)": "the real scan repeated with 1 cm jitter",
    "wide 5M over +-100 m": "uniform in a 200 m cube",
}

_CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[3])
from sr3d_ros.inference import PointCloudDetector
from sr3d_ros.input_limits import InputBudgetError, InputLimits
case, unbounded = sys.argv[1], sys.argv[2] == "1"
rng = np.random.default_rng(0)
scan = np.load(sys.argv[4])
def jittered(k):
    pts = np.tile(scan, (k, 1))
    pts[:, :3] += rng.normal(0, 0.01, (len(pts), 3)).astype(np.float32)
    return pts
def uniform(n, r):
    xyz = rng.uniform(-r, r, (n, 3)).astype(np.float32)
    return np.concatenate([xyz, rng.uniform(0, 255, (n, 3)).astype(np.float32)], 1)
if case.startswith("real"):
    pts = scan
elif case.startswith("outliers"):
    out = np.zeros((10, 6), np.float32); out[:5, :3] = 1e30; out[5:, :3] = -1e6
    pts = np.concatenate([scan, out])
elif case.startswith("wide 100k"):
    pts = uniform(100_000, 1e4)
elif case.startswith("cube"):
    pts = uniform(100_000, 15.0)
elif case.startswith("dense 1M"):
    pts = jittered(12)
elif case.startswith("dense 5M"):
    pts = jittered(61)
else:
    pts = uniform(5_000_000, 100.0)
det = PointCloudDetector.from_checkpoint(device="cpu")
if unbounded:
    det.limits = InputLimits(max_range=0.0, max_voxels=10**9, max_neck_voxels=10**12)
t0 = time.perf_counter()
try:
    d = det(pts)
    outcome = f"{len(d)} detections"
    if det.last_crop.out_of_range:
        outcome += f", {det.last_crop.out_of_range} cropped"
except InputBudgetError as exc:
    outcome = "refused: " + str(exc).split(":")[0]
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
print(json.dumps({"n": len(pts), "outcome": outcome, "seconds": round(dt, 2),
                  "peak_rss_gb": round(rss, 3)}))
"""


def run_case(case: str, unbounded: bool, timeout: float) -> dict[str, Any]:
    """One detection in a child process; its JSON line, or the failure."""
    scan = REPO.parent / "shared" / "data" / "scannet" / "scannet_instance_data"
    scan_file = Path(os.environ.get("SR3D_DATA", scan.parents[1])) / "scannet"
    scan_file = scan_file / "scannet_instance_data" / "scene0000_00_vert_all.npy"
    cmd = [sys.executable, "-c", _CHILD, case, "1" if unbounded else "0", str(REPO), str(scan_file)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"outcome": f"timeout > {timeout:.0f} s", "peak_rss_gb": float("nan")}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"outcome": f"failed (rc {proc.returncode}): {last}", "peak_rss_gb": float("nan")}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    ap.add_argument("--with-unbounded", action="store_true", help="also run without limits")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    args = ap.parse_args(argv)
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="sr3d_ros_log_"))
    rows = []
    for case in CASES:
        r = run_case(case, False, args.timeout)
        row = {"case": case, "bounded": r}
        if args.with_unbounded and ("5M" not in case and "km" not in case):
            row["unbounded"] = run_case(case, True, args.timeout)
        rows.append(row)
        print(f"  {case}: {r}", file=sys.stderr)
    ok = all(r["bounded"]["peak_rss_gb"] < LIMIT_GB for r in rows)
    print(f"peak RSS of one detection (default model, CPU, 1 thread), limit {LIMIT_GB} GB")
    print()
    print("| input | points | outcome | s | peak RSS GB | unbounded RSS GB | < 4 GB |")
    print("|---|---:|---|---:|---:|---:|:-:|")
    for row in rows:
        b = row["bounded"]
        u = row.get("unbounded", {}).get("peak_rss_gb", float("nan"))
        hit = "ok" if b["peak_rss_gb"] < LIMIT_GB else "MISS"
        print(
            f"| {row['case']} | {b.get('n', '?')} | {b['outcome']} | {b.get('seconds', '?')} "
            f"| {b['peak_rss_gb']:.2f} | {u:.2f} | {hit} |"
        )
    print()
    print(f"all under {LIMIT_GB} GB: {'yes' if ok else 'NO'}")
    if args.json:
        from sr3d_ros.io.atomic import atomic_write_json

        atomic_write_json(args.json, {"limit_gb": LIMIT_GB, "rows": rows, "all_under": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
