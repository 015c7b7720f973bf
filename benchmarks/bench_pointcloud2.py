#!/usr/bin/env python3
"""Benchmark: sensor_msgs/PointCloud2 <-> (N, 6) float32 xyz+rgb for 100k real ScanNet points.

Decoding: ours (:func:`sr3d_ros.ros.pointcloud2.pointcloud2_to_array`) against a naive per-point
decoder (a Python loop of ``struct.unpack_from``), both timed in this run on the same messages;
the median of ``--repeats`` runs (>= 20) is reported. Target: ours <= 2 ms and >= 20x naive.

Upstream: ours against a reference of ROS 2's ``sensor_msgs_py.point_cloud2`` (no wheel exists
here, so :func:`upstream_create_cloud` / :func:`upstream_read_points_numpy` re-implement what its
documentation and source do: a structured dtype from the fields, ``unstructured_to_structured``
and one ``array.array.frombytes`` copy; a structured view + NaN mask +
``structured_to_unstructured``), each with the (N, 6) <-> packed-rgb conversion a user of
upstream has to write. Encode and decode ratios are printed side by side; target: encode at
least as fast as upstream (ratio >= 1).

    python benchmarks/bench_pointcloud2.py [--json out.json] [--repeats 30] [--check]
"""

from __future__ import annotations

import argparse
import array
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# Any rclpy/DDS use stays on this machine (project rule); importing the messages starts no DDS.
# (bench_node.py and bench_messages.py import this module first, for this and for sys.path.)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="sr3d_ros_log_")  # always our own

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sr3d_ros.io.atomic import atomic_write_json  # noqa: E402
from sr3d_ros.ros import pointcloud2 as pc2  # noqa: E402

TARGET_MS = 2.0
TARGET_SPEEDUP = 20.0
SCENES = ("scene0000_00", "scene0000_01", "scene0000_02")


def platform_info() -> dict[str, Any]:
    """numpy and Python versions, machine and CPU count, for the JSON results."""
    return {
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def data_root() -> Path:
    """The shared data root: ``$SR3D_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SR3D_DATA", REPO.parent / "shared" / "data"))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON atomically (:mod:`sr3d_ros.io.atomic`)."""
    atomic_write_json(path, payload)


def load_points(n: int) -> np.ndarray:
    """The first ``n`` real ScanNet points (scene0000_00..02), float32 (n, 6) xyz + rgb 0..255."""
    d = data_root() / "scannet" / "scannet_instance_data"
    parts = [np.load(d / f"{s}_vert_all.npy") for s in SCENES]
    pts = np.concatenate(parts)[:n]
    if len(pts) < n:
        raise SystemExit(f"only {len(pts)} real points available under {d}")
    return np.ascontiguousarray(pts, dtype=np.float32)


def make_msg(layout: pc2.CloudLayout, data: bytes) -> tuple[Any, str]:
    """A real sensor_msgs/PointCloud2 when the ROS wheels are installed, else a stand-in."""
    try:
        import sensor_msgs.msg  # noqa: F401  (the ROS wheels)
    except ImportError:
        kw = asdict(layout)  # the PointCloud2 attributes but header and data
        kw["fields"] = [SimpleNamespace(**f) for f in kw["fields"]]
        msg = SimpleNamespace(data=array.array("B", data), **kw)
        return msg, "SimpleNamespace (no ROS wheels)"
    msg = pc2.cloud_to_pointcloud2(layout, data)
    return msg, "sensor_msgs/msg/PointCloud2"


def pcl_padded(points: np.ndarray) -> tuple[pc2.CloudLayout, bytes]:
    """PCL PointXYZRGB layout: x y z _ rgb _ _ _ (point_step 32), packed float rgb."""
    n = len(points)
    rec = np.zeros((n, 8), dtype="<f4")
    rec[:, :3] = points[:, :3]
    c = points[:, 3:6].astype(np.uint32)
    rec.view("<u4")[:, 4] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    fields = (
        pc2.Field("x", 0, pc2.FLOAT32),
        pc2.Field("y", 4, pc2.FLOAT32),
        pc2.Field("z", 8, pc2.FLOAT32),
        pc2.Field("rgb", 16, pc2.FLOAT32),
    )
    return pc2.CloudLayout(1, n, 32, 32 * n, fields, False, True), rec.tobytes()


def organized_with_holes(
    points: np.ndarray, height: int = 100
) -> tuple[pc2.CloudLayout, bytes, np.ndarray]:
    """Organised (height rows) compact cloud with 5% NaN points and is_dense = False."""
    pts = points.copy()
    rng = np.random.default_rng(0)
    pts[rng.random(len(pts)) < 0.05, :3] = np.nan
    layout, data = pc2.points_to_cloud(pts, height=height)
    assert not layout.is_dense
    return layout, data, pts[np.isfinite(pts[:, :3]).all(1)]


def naive_decode(msg: Any) -> np.ndarray:
    """Per-point reference: struct.unpack_from for x, y, z and the packed rgb of every point."""
    f = {fl.name: fl for fl in msg.fields}
    bo = ">" if msg.is_bigendian else "<"
    fx, fy, fz, frgb = (bo + "f"), (bo + "f"), (bo + "f"), (bo + "I")
    ox, oy, oz, oc = f["x"].offset, f["y"].offset, f["z"].offset, f["rgb"].offset
    data = msg.data
    out = []
    append = out.append
    unpack = struct.unpack_from
    for i in range(msg.height):
        row = i * msg.row_step
        for j in range(msg.width):
            base = row + j * msg.point_step
            (x,) = unpack(fx, data, base + ox)
            (y,) = unpack(fy, data, base + oy)
            (z,) = unpack(fz, data, base + oz)
            if not msg.is_dense and not (x == x and y == y and z == z):  # NaN check
                continue
            (v,) = unpack(frgb, data, base + oc)
            append((x, y, z, (v >> 16) & 255, (v >> 8) & 255, v & 255))
    return np.array(out, dtype=np.float32)


def _dtype_from_fields(fields: Sequence[Any], point_step: int) -> np.dtype:
    """The structured dtype upstream builds from PointFields (FLOAT32 fields only here)."""
    return np.dtype(
        {
            "names": [f.name for f in fields],
            "formats": ["<f4"] * len(fields),
            "offsets": [f.offset for f in fields],
            "itemsize": point_step,
        }
    )


def upstream_create_cloud(points: np.ndarray, frame_id: str = "map") -> Any:
    """Reference of ``sensor_msgs_py.point_cloud2.create_cloud`` for (N, 6) xyz + rgb 0..255,
    including the user's packing of r, g, b into the FLOAT32 ``rgb`` field."""
    from numpy.lib.recfunctions import unstructured_to_structured
    from sensor_msgs.msg import PointCloud2, PointField
    from std_msgs.msg import Header

    c = points[:, 3:6].astype(np.uint32)  # the user's part: pack rgb (PCL convention)
    packed = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)
    xyzrgb = np.column_stack([points[:, :3], packed])
    fields = [
        PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, n in enumerate(("x", "y", "z", "rgb"))
    ]
    dtype = _dtype_from_fields(fields, 16)
    structured = unstructured_to_structured(xyzrgb, dtype=dtype)
    cloud = PointCloud2(
        header=Header(frame_id=frame_id),
        height=1,
        width=len(structured),
        is_dense=False,
        is_bigendian=sys.byteorder != "little",
        fields=fields,
        point_step=dtype.itemsize,
        row_step=dtype.itemsize * len(structured),
    )
    buf = array.array("B")
    buf.frombytes(structured.view(np.uint8).data)
    cloud.data = buf
    return cloud


def upstream_read_points_numpy(msg: Any) -> np.ndarray:
    """Reference of ``sensor_msgs_py.point_cloud2.read_points_numpy(skip_nans=True)`` for a
    compact x, y, z, rgb cloud, plus the user's unpacking of rgb -> (N, 6) float32."""
    from numpy.lib.recfunctions import structured_to_unstructured

    dtype = _dtype_from_fields(msg.fields, msg.point_step)
    points = np.ndarray(shape=(msg.width * msg.height,), dtype=dtype, buffer=msg.data)
    if not msg.is_dense:
        mask = np.ones(len(points), dtype=bool)
        for name in ("x", "y", "z", "rgb"):
            mask &= ~np.isnan(points[name])
        points = points[mask]
    flat = structured_to_unstructured(points)
    c = flat[:, 3].copy().view(np.uint32)  # the user's part: unpack rgb
    rgb = np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], axis=1).astype(np.float32)
    out: np.ndarray = np.concatenate([flat[:, :3], rgb], axis=1)
    return out


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 2) -> tuple[float, float]:
    """(median, min) wall time of ``fn`` in ms over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts), min(ts)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="points per cloud (default 100000)")
    ap.add_argument("--repeats", type=int, default=30, help="timed runs per method (>= 20)")
    ap.add_argument("--naive-repeats", type=int, default=20, help="timed runs of the naive one")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)
    if args.repeats < 20 or args.naive_repeats < 20:
        ap.error("use >= 20 repeats")

    points = load_points(args.n)
    cases = []
    layout, data = pc2.points_to_cloud(points)
    cases.append(("compact xyz+rgb (point_step 16)", layout, data, points))
    layout, data = pcl_padded(points)
    cases.append(("PCL PointXYZRGB (point_step 32)", layout, data, points))
    layout, data, valid = organized_with_holes(points)
    cases.append(("organised 100 rows, 5% NaN, is_dense=0", layout, data, valid))

    results = []
    msg_kind = None
    for name, layout, data, expected in cases:
        msg, msg_kind = make_msg(layout, data)
        ours_out, _ = pc2.pointcloud2_to_array(msg)
        naive_out = naive_decode(msg)
        # Both must be exact before their times mean anything.
        assert np.array_equal(ours_out, expected), name
        assert np.array_equal(naive_out, expected), name
        ours_med, ours_min = timeit(partial(pc2.pointcloud2_to_array, msg), args.repeats)
        naive_med, naive_min = timeit(partial(naive_decode, msg), args.naive_repeats, warmup=1)
        results.append(
            {
                "layout": name,
                "n_points": int(layout.n_points),
                "n_out": len(expected),
                "point_step": int(layout.point_step),
                "ours_median_ms": round(ours_med, 4),
                "ours_min_ms": round(ours_min, 4),
                "naive_median_ms": round(naive_med, 2),
                "naive_min_ms": round(naive_min, 2),
                "speedup": round(naive_med / ours_med, 1),
            }
        )
    enc_med, _enc_min = timeit(
        lambda: (
            pc2.array_to_pointcloud2(points, frame_id="map")
            if msg_kind.startswith("sensor_msgs")
            else pc2.points_to_cloud(points)
        ),
        args.repeats,
    )
    upstream: dict[str, float] = {}
    if msg_kind.startswith("sensor_msgs"):
        ours_msg = pc2.array_to_pointcloud2(points, frame_id="map")
        ref_msg = upstream_create_cloud(points)
        assert bytes(ours_msg.data) == bytes(ref_msg.data), "encoders disagree"
        assert np.array_equal(upstream_read_points_numpy(ref_msg), points)
        up_enc, _ = timeit(partial(upstream_create_cloud, points), args.repeats)
        up_dec, _ = timeit(partial(upstream_read_points_numpy, ours_msg), args.repeats)
        our_dec, _ = timeit(partial(pc2.pointcloud2_to_array, ours_msg), args.repeats)
        upstream = {
            "encode_ours_ms": round(enc_med, 4),
            "encode_upstream_ms": round(up_enc, 4),
            "encode_ratio": round(up_enc / enc_med, 2),
            "decode_ours_ms": round(our_dec, 4),
            "decode_upstream_ms": round(up_dec, 4),
            "decode_ratio": round(up_dec / our_dec, 2),
        }

    ok = all(r["ours_median_ms"] <= TARGET_MS and r["speedup"] >= TARGET_SPEEDUP for r in results)
    w = max(len(r["layout"]) for r in results)
    print(f"PointCloud2 -> (N, 6) float32, {args.n} real ScanNet points, message: {msg_kind}")
    print(
        f"median of {args.repeats} runs (ours) / {args.naive_repeats} runs (naive struct loop); "
        f"numpy {np.__version__}, Python {platform.python_version()}, {platform.machine()}"
    )
    print()
    print(f"| {'layout':<{w}} | ours ms (min) | naive ms | speed-up | target |")
    print(f"|{'-' * (w + 2)}|--------------:|---------:|---------:|:------:|")
    for r in results:
        hit = r["ours_median_ms"] <= TARGET_MS and r["speedup"] >= TARGET_SPEEDUP
        print(
            f"| {r['layout']:<{w}} | {r['ours_median_ms']:6.3f} ({r['ours_min_ms']:.3f}) "
            f"| {r['naive_median_ms']:8.1f} | {r['speedup']:7.0f}x | {'ok' if hit else 'MISS':^6} |"
        )
    print()
    print(f"array_to_pointcloud2 (encode, (N, 6) -> message): median {enc_med:.3f} ms")
    if upstream:
        u = upstream
        print()
        print("vs sensor_msgs_py.point_cloud2 (reference, incl. the user's rgb (un)packing):")
        print("| direction | ours ms | upstream ms | upstream / ours | target |")
        print("|-----------|--------:|------------:|----------------:|:------:|")
        for d in ("encode", "decode"):
            hit = u[f"{d}_ratio"] >= 1.0
            print(
                f"| {d:<9} | {u[f'{d}_ours_ms']:7.3f} | {u[f'{d}_upstream_ms']:11.3f} "
                f"| {u[f'{d}_ratio']:14.2f}x | {'ok' if hit else 'MISS':^6} |"
            )
        ok = ok and upstream["encode_ratio"] >= 1.0
    print(
        f"targets: ours <= {TARGET_MS} ms and >= {TARGET_SPEEDUP:.0f}x naive: "
        f"{'met' if ok else 'MISSED'}"
    )

    if args.json:
        write_json(
            args.json,
            {
                "benchmark": "pointcloud2_to_array",
                "data": "ScanNet scene0000_00..02 vert_all (real points)",
                "n_points": args.n,
                "repeats": args.repeats,
                "naive_repeats": args.naive_repeats,
                "message_class": msg_kind,
                **platform_info(),
                "results": results,
                "encode_median_ms": round(enc_med, 4),
                "upstream": upstream,
                "targets": {"ours_max_ms": TARGET_MS, "min_speedup": TARGET_SPEEDUP, "met": ok},
            },
        )
        print(f"wrote {args.json}")
    return 0 if (ok or not args.check) else 1


if __name__ == "__main__":
    sys.exit(main())
