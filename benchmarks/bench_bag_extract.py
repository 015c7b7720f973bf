#!/usr/bin/env python3
"""Benchmark: ``sr3d-bag extract`` streams, its memory stays flat in the number of messages
(issue 19).

A synthetic long bag repeats a real frame (the raw ScanNet scan scene0000_00, 81k points,
1.3 MB per PointCloud2, with its ground truth on a Detection3DArray topic) N and 10 N times, in
MCAP and SQLite 3. Each extraction (:func:`sr3d_ros.ros.bag.extract_bag`, with its tqdm bar:
messages per second) runs in a fresh child process that reports its peak RSS (``ru_maxrss``).
The reference is the same work done naively in the same run: every message read into a list
first (``list(read_bag(...))``), then converted. Target: ours at 10 N within 1.2x of ours at N.

    python benchmarks/bench_bag_extract.py [--frames 20 200] [--storage mcap sqlite3]
                                           [--json out.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
TARGET = 1.2

_BUILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from sr3d_ros.ros.bag import build_bag
from sr3d_training.datasets import load_scannet_raw_scan
raw = Path(sys.argv[2]) / "scannet" / "raw"
scan = load_scannet_raw_scan(
    raw / "scene0000_00_unaligned.bin", raw / "scene0000_00_infos_with_axis_align.pkl"
)
build_bag(sys.argv[3], [scan] * int(sys.argv[4]), rate_hz=10.0, storage=sys.argv[5],
          start_ns=10**18)
"""

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
mode, bag, out = sys.argv[2], sys.argv[3], sys.argv[4]
t0 = time.monotonic()
if mode == "ours":
    from sr3d_ros.ros.bag import ExtractOptions, extract_bag
    opts = ExtractOptions(points_topic="/points", gt_topic="/ground_truth")
    s = extract_bag(bag, out, opts, progress=True)
    n, rate = s.samples, s.messages_per_s
else:  # naive reference: the whole topic in memory first, then the same conversion
    import numpy as np
    from sr3d_ros.ros.bag import read_bag
    from sr3d_ros.ros.pointcloud2 import pointcloud2_to_array
    msgs = list(read_bag(bag, topics=["/points", "/ground_truth"]))
    clouds = [pointcloud2_to_array(m.msg)[0] for m in msgs if m.topic == "/points"]
    n = len(clouds)
    rate = len(msgs) / 2 / (time.monotonic() - t0)
# VmHWM: this process image's own peak (ru_maxrss would keep the parent's across exec)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
rss_mb = (int(hwm[0].split()[1]) if hwm else
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
print(json.dumps({"samples": n, "rss_mb": rss_mb, "msg_per_s": rate,
                  "seconds": time.monotonic() - t0}))
"""


def _build(path: Path, frames: int, storage: str, data: Path) -> float:
    """A bag of the raw scan repeated ``frames`` times (built in a child process: this one
    stays small); returns its size in MB."""
    args = [str(REPO), str(data), str(path), str(frames), storage]
    subprocess.run([sys.executable, "-c", _BUILD, *args], check=True)
    return sum(f.stat().st_size for f in path.iterdir()) / 2**20


def _run(mode: str, bag: Path, out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(REPO), mode, str(bag), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": "1", **os.environ},
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    from _bench_common import data_root, write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, nargs=2, default=[20, 200], metavar=("N", "10N"))
    p.add_argument("--storage", nargs="+", default=["mcap", "sqlite3"])
    p.add_argument("--data-root", default=None)
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    p.add_argument("--keep", default=None, help="work folder to keep (default: a temp folder)")
    a = p.parse_args(argv)
    data = data_root(a.data_root)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench_bag_extract_"))
    rows = []
    try:
        for storage in a.storage:
            for frames in a.frames:
                bag = work / f"{storage}_{frames}"
                shutil.rmtree(bag, ignore_errors=True)
                size = _build(bag, frames, storage, data)
                row: dict[str, Any] = {"storage": storage, "messages": frames, "bag_mb": size}
                for mode in ("ours", "naive"):
                    out = work / f"out_{storage}_{frames}_{mode}"
                    shutil.rmtree(out, ignore_errors=True)
                    row[mode] = _run(mode, bag, out)
                    shutil.rmtree(out, ignore_errors=True)
                rows.append(row)
                shutil.rmtree(bag, ignore_errors=True)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{'storage':<8} {'msgs':>5} {'bag MB':>7} | {'ours RSS MB':>11} {'msg/s':>6} | "
        f"{'naive RSS MB':>12} {'msg/s':>6} | {'naive/ours':>10}"
    )
    for r in rows:
        o, n = r["ours"], r["naive"]
        print(
            f"{r['storage']:<8} {r['messages']:>5} {r['bag_mb']:>7.0f} | {o['rss_mb']:>11.0f} "
            f"{o['msg_per_s']:>6.1f} | {n['rss_mb']:>12.0f} {n['msg_per_s']:>6.1f} | "
            f"{n['rss_mb'] / o['rss_mb']:>10.2f}"
        )
    ok = True
    for storage in a.storage:
        small, big = (r for r in rows if r["storage"] == storage)
        ratio = big["ours"]["rss_mb"] / small["ours"]["rss_mb"]
        naive = big["naive"]["rss_mb"] / small["naive"]["rss_mb"]
        good = ratio <= TARGET
        ok &= good
        print(
            f"{storage}: peak RSS at {big['messages']} vs {small['messages']} messages: ours "
            f"x{ratio:.2f} (target <= {TARGET}: {'ok' if good else 'FAIL'}), naive x{naive:.2f}"
        )
    if a.json:
        write_json(a.json, {"rows": rows, "target": TARGET})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
