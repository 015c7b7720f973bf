#!/usr/bin/env python3
"""Sparse engine benchmark: our ops vs MinkowskiEngine 0.5.4 on a real ScanNet scene.

For each voxel size (1 cm, 2 cm) and op (3x3x3 conv stride 1, 3x3x3 conv stride 2, generative
transposed conv kernel 2 stride 2), 64 -> 64 channels, float32, it measures in the same run:

* forward and forward+backward time: median of ``--repeats`` runs after one warm-up; every run
  builds its kernel map afresh (a new input tensor, as for each new scene), input creation is
  not timed; both libraries run in ONE process, alternating run by run, so load changes on a
  shared machine hit both alike (the ratio is what the targets are about);
* peak memory of one forward+backward: peak resident set size above the level just before the
  op (Linux VmHWM, reset through /proc/self/clear_refs), measured in a fresh subprocess per
  (library, op, scene) so neither library sees the other's allocator caches, with glibc's
  mmap threshold pinned so freed buffers leave the resident set at once; on CUDA,
  ``torch.cuda.max_memory_allocated`` (our ops only, as ME is CPU-only here).
  Times come from another fresh subprocess (both libraries) with the allocator as the caller's
  environment has it: the pinned threshold sends every buffer over 128 KiB through mmap/munmap
  (fresh, page-faulting pages each time), a measuring device for resident memory that no user
  runs with, and it penalises the library that allocates more temporaries.

It prints a table with the ratio ours / ME, whether each row meets the issue's targets
(forward+backward time <= 0.6x ME's, peak memory <= 1.2x ME's) and an overall verdict, and
always writes JSON (default ``outputs/bench_sparse.json`` in the repository, ``--json`` to
override). The data root is ``$SR3D_DATA``, else ``.gpu_data`` in the repository if it exists,
else ``../shared/data``.
Usage: ``python benchmarks/bench_sparse.py [--device cpu|cuda] [--repeats 5] [--json out.json]
[--voxel-sizes 0.02] [--ops conv3_s2]`` (the last two select a subset, e.g. for a quick check).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from _bench_common import REPO, data_root, write_json

sys.path.insert(0, str(REPO))
OPS = ("conv3_s1", "conv3_s2", "genconvT2_s2")
VOXEL_SIZES = (0.01, 0.02)
CHANNELS = 64
DEFAULT_JSON = REPO / "outputs" / "bench_sparse.json"
#: The issue's targets on the 2-core CPU: ours / ME.
TARGET_FORWARD_BACKWARD = 0.6
TARGET_PEAK_MEMORY = 1.2


SCENE = data_root() / "scannet" / "scannet_instance_data" / "scene0000_00_vert_all.npy"


def targets_met(row: dict) -> dict:
    """Whether a result row meets the targets: ``{"forward_backward": bool | None,
    "peak_memory": bool | None, "all": bool | None}`` (None: no ME result to compare with, or
    ME's peak memory was not measurable)."""
    if row.get("me") is None:
        return {"forward_backward": None, "peak_memory": None, "all": None}
    fb = bool(row["ratio_forward_backward"] <= TARGET_FORWARD_BACKWARD)
    mem_ratio = row["ratio_peak_memory"]
    mem = None if mem_ratio != mem_ratio else bool(mem_ratio <= TARGET_PEAK_MEMORY)  # NaN -> None
    return {
        "forward_backward": fb,
        "peak_memory": mem,
        "all": None if mem is None else (fb and mem),
    }


def _verdict(flag: bool | None) -> str:
    return "n/a" if flag is None else ("yes" if flag else "NO")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _inputs(voxel_size: float, op: str, device: str):  # type: ignore[no-untyped-def]
    import numpy as np
    import torch

    from sr3d_ros.sparse import voxelize

    pts = torch.from_numpy(np.load(SCENE))
    coords = voxelize(pts, voxel_size).coordinates
    stride = 1
    if op == "genconvT2_s2":  # the transposed conv upsamples a stride-2 tensor
        stride = 2
        coords = coords.clone()
        coords[:, 1:] = torch.div(coords[:, 1:], 2, rounding_mode="floor") * 2
        coords = torch.unique(coords, dim=0)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(coords.shape[0], CHANNELS, generator=g)
    return coords.to(device), feats.to(device), stride


def _layers(op: str, lib: str):  # type: ignore[no-untyped-def]
    from sr3d_ros import sparse as sp

    if lib == "me":
        import MinkowskiEngine as ME

        if op == "conv3_s1":
            return ME.MinkowskiConvolution(CHANNELS, CHANNELS, kernel_size=3, stride=1, dimension=3)
        if op == "conv3_s2":
            return ME.MinkowskiConvolution(CHANNELS, CHANNELS, kernel_size=3, stride=2, dimension=3)
        return ME.MinkowskiGenerativeConvolutionTranspose(
            CHANNELS, CHANNELS, kernel_size=2, stride=2, dimension=3
        )
    if op == "conv3_s1":
        return sp.SparseConv3d(CHANNELS, CHANNELS, 3, 1)
    if op == "conv3_s2":
        return sp.SparseConv3d(CHANNELS, CHANNELS, 3, 2)
    return sp.SparseGenerativeConvTranspose3d(CHANNELS, CHANNELS, 2, 2)


def _setup(lib: str, op: str, voxel_size: float, device: str):  # type: ignore[no-untyped-def]
    """``(make, layer, out_feats, sync, voxels_in)`` for one library: ``make(requires_grad)``
    builds a fresh input tensor (so every call builds its kernel map afresh)."""
    import torch

    from sr3d_ros import sparse as sp

    coords, feats, stride = _inputs(voxel_size, op, device)
    layer = _layers(op, lib).to(device)
    if lib == "me":
        import MinkowskiEngine as ME

        def make(requires_grad: bool):  # type: ignore[no-untyped-def]
            return ME.SparseTensor(
                feats.clone().requires_grad_(requires_grad),
                coordinates=coords,
                tensor_stride=stride,
            )

        def out_feats(y):  # type: ignore[no-untyped-def]
            return y.F
    else:

        def make(requires_grad: bool):  # type: ignore[no-untyped-def]
            return sp.SparseTensor(
                feats.clone().requires_grad_(requires_grad), coords, tensor_stride=stride
            )

        def out_feats(y):  # type: ignore[no-untyped-def]
            return y.features

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    return make, layer, out_feats, sync, int(coords.shape[0])


def _memory_worker(lib: str, op: str, voxel_size: float, device: str) -> dict:
    """Run in a fresh subprocess: peak memory (MiB) of one forward+backward of one library."""
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(int(os.environ.get("SR3D_BENCH_THREADS", torch.get_num_threads())))
    make, layer, out_feats, sync, _n_in = _setup(lib, op, voxel_size, device)
    x = make(True)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out_feats(layer(x)).sum().backward()
        sync()
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss_kib("VmRSS")
        out_feats(layer(x)).sum().backward()
        peak_mib = (_rss_kib("VmHWM") - base) / 1024
    return {"lib": lib, "op": op, "voxel_size": voxel_size, "peak_mib": peak_mib}


def _time_worker(
    libs: list[str], op: str, voxel_size: float, repeats: int, device: str
) -> list[dict]:
    """Run in a fresh subprocess: forward and forward+backward times of every library, the
    libraries alternating run by run (their order swapped every round), so a change of machine
    load during the measurement hits all of them alike."""
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(int(os.environ.get("SR3D_BENCH_THREADS", torch.get_num_threads())))
    setups = {lib: _setup(lib, op, voxel_size, device) for lib in libs}

    def run(lib: str, backward: bool) -> float:
        make, layer, out_feats, sync, _ = setups[lib]
        x = make(backward)
        sync()
        t0 = time.perf_counter()
        if backward:
            out_feats(layer(x)).sum().backward()
        else:
            with torch.no_grad():
                out_feats(layer(x))
        sync()
        return time.perf_counter() - t0

    times: dict[str, dict[str, list[float]]] = {lib: {"fwd": [], "fb": []} for lib in libs}
    for lib in libs:  # warm-up
        run(lib, False)
        run(lib, True)
    for r in range(repeats):
        for lib in libs if r % 2 == 0 else list(reversed(libs)):
            times[lib]["fwd"].append(run(lib, False))
            times[lib]["fb"].append(run(lib, True))
    out = []
    for lib in libs:
        make, layer, out_feats, _, n_in = setups[lib]
        with torch.no_grad():
            n_out = int(out_feats(layer(make(False))).shape[0])
        out.append(
            {
                "lib": lib,
                "op": op,
                "voxel_size": voxel_size,
                "device": device,
                "voxels_in": n_in,
                "voxels_out": n_out,
                "forward_ms": statistics.median(times[lib]["fwd"]) * 1e3,
                "forward_backward_ms": statistics.median(times[lib]["fb"]) * 1e3,
                "threads": torch.get_num_threads(),
            }
        )
    return out


def _run_worker(
    lib_arg: str, op: str, voxel_size: float, part: str, env: dict, args: argparse.Namespace
) -> Any:
    """Run this script as a ``--worker`` subprocess; its last stdout line, parsed as JSON.

    Raises:
        RuntimeError: the worker failed (its stderr as the message).
    """
    cmd = [sys.executable, __file__, "--worker", lib_arg, op, str(voxel_size)]
    cmd += ["--repeats", str(args.repeats), "--device", args.device, "--part", part]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pair(ours: dict, me: dict | None, key: str, width: int) -> str:
    """``"ours / ME"`` cell of one measurement (``n/a`` without an ME result)."""
    theirs = f"{me[key]:>{width}.1f}" if me is not None else f"{'n/a':>{width}}"
    return f"{ours[key]:>{width}.1f} /{theirs}"


def _ratio(row: dict, key: str) -> str:
    return f"{row[key]:>5.2f}" if key in row else f"{'':>5}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"write results here (default: {DEFAULT_JSON.relative_to(REPO)} in the repository)",
    )
    parser.add_argument(
        "--voxel-sizes",
        type=float,
        nargs="+",
        default=list(VOXEL_SIZES),
        help="voxel sizes in metres (default: 0.01 0.02)",
    )
    parser.add_argument(
        "--ops", nargs="+", default=list(OPS), choices=OPS, help="ops to run (default: all)"
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("LIBS", "OP", "VOXEL"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--part", default="time", choices=("time", "memory"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        lib, op, vs = args.worker
        if args.part == "memory":
            print(json.dumps(_memory_worker(lib, op, float(vs), args.device)))
        else:
            print(
                json.dumps(_time_worker(lib.split(","), op, float(vs), args.repeats, args.device))
            )
        return 0
    if args.repeats < 5:
        parser.error("--repeats must be >= 5")
    if not SCENE.is_file():
        print(
            f"error: real ScanNet scene not found at {SCENE} (set SR3D_DATA to the data root)",
            file=sys.stderr,
        )
        return 2
    libs = ["ours"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import MinkowskiEngine  # noqa: F401
        if args.device == "cpu":
            libs.append("me")
    except ImportError:
        print(
            "MinkowskiEngine not installed (scripts/build_minkowski.sh): reporting ours only",
            file=sys.stderr,
        )
    # glibc otherwise raises its mmap threshold after the first large free and keeps later
    # buffers on the heap, so resident memory would not follow the live allocations.
    mem_env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    voxel_sizes, ops = tuple(args.voxel_sizes), tuple(o for o in OPS if o in args.ops)
    results = []
    for vs in voxel_sizes:
        for op in ops:
            try:
                peaks = {
                    lib: _run_worker(lib, op, vs, "memory", mem_env, args)["peak_mib"]
                    for lib in libs
                }
                timed = _run_worker(",".join(libs), op, vs, "time", dict(os.environ), args)
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                return 1
            results.extend({**t, "peak_mib": peaks[t["lib"]]} for t in timed)
    header = (
        f"{'scene':>6} {'op':>13} {'voxels':>7} | {'fwd ms':>16} {'ratio':>5} | "
        f"{'fwd+bwd ms':>16} {'ratio':>5} | {'peak MiB':>14} {'ratio':>5} | "
        f"{'time ok':>7} {'mem ok':>6}"
    )
    print(
        "sparse engine vs MinkowskiEngine 0.5.4: ScanNet scene0000_00, "
        f"{CHANNELS}->{CHANNELS} ch, float32, {args.device}, {results[0]['threads']} threads, "
        f"median of {args.repeats}"
    )
    print(
        f"(each cell: ours / ME; targets: fwd+bwd <= {TARGET_FORWARD_BACKWARD}x ME, "
        f"peak memory <= {TARGET_PEAK_MEMORY}x ME)"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for vs in voxel_sizes:
        for op in ops:
            ours = next(
                r for r in results if r["lib"] == "ours" and r["op"] == op and r["voxel_size"] == vs
            )
            me = next(
                (
                    r
                    for r in results
                    if r["lib"] == "me" and r["op"] == op and r["voxel_size"] == vs
                ),
                None,
            )
            row = {"voxel_size": vs, "op": op, "ours": ours, "me": me}
            if me is not None:
                row["ratio_forward"] = ours["forward_ms"] / me["forward_ms"]
                row["ratio_forward_backward"] = (
                    ours["forward_backward_ms"] / me["forward_backward_ms"]
                )
                row["ratio_peak_memory"] = (
                    ours["peak_mib"] / me["peak_mib"] if me["peak_mib"] > 0 else float("nan")
                )
            row["targets_met"] = met = targets_met(row)
            flags = f" | {_verdict(met['forward_backward']):>7} {_verdict(met['peak_memory']):>6}"
            print(
                f"{vs * 100:>4.0f}cm {op:>13} {ours['voxels_in']:>7} | "
                f"{_pair(ours, me, 'forward_ms', 7)} {_ratio(row, 'ratio_forward')} | "
                f"{_pair(ours, me, 'forward_backward_ms', 7)} "
                f"{_ratio(row, 'ratio_forward_backward')} | "
                f"{_pair(ours, me, 'peak_mib', 6)} {_ratio(row, 'ratio_peak_memory')}" + flags
            )
            rows.append(row)
    verdicts = [r["targets_met"]["all"] for r in rows]
    if any(v is False for v in verdicts):
        failed = [
            f"{r['voxel_size'] * 100:.0f}cm {r['op']}"
            for r in rows
            if r["targets_met"]["all"] is False
        ]
        overall, line = (
            False,
            f"targets NOT met in {len(failed)}/{len(rows)} rows: {', '.join(failed)}",
        )
    elif verdicts and all(v is True for v in verdicts):
        overall, line = True, f"targets met in all {len(rows)} rows"
    else:
        overall, line = (
            None,
            "targets not checked for every row "
            "(no MinkowskiEngine result or unmeasurable ME memory)",
        )
    print(f"overall: {line}")
    payload = {
        "device": args.device,
        "repeats": args.repeats,
        "data_root": str(data_root()),
        "targets": {
            "forward_backward_ratio_max": TARGET_FORWARD_BACKWARD,
            "peak_memory_ratio_max": TARGET_PEAK_MEMORY,
        },
        "targets_met": overall,
        "rows": rows,
    }
    print(f"wrote {write_json(args.json, payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
