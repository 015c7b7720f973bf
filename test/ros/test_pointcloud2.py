"""PointCloud2 <-> numpy conversion on a real ScanNet scan (scene0000_00, 81,369 points).

The clouds under test are encoded here with numpy structured arrays / ``struct`` - not with the
module's own encoder - so a convention bug (byte order, packed-colour layout) cannot cancel out.
"""

from __future__ import annotations

import array
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from sr3d_ros.ros import pointcloud2 as pc2
from sr3d_ros.ros.pointcloud2 import (
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    UINT8,
    UINT16,
    UINT32,
    CloudLayout,
    Field,
    cloud_to_array,
    cloud_to_structured,
    points_to_cloud,
)

SCAN = "scannet/scannet_instance_data/scene0000_00_vert_all.npy"


@pytest.fixture(scope="module")
def scan(data_root):
    pts = np.load(data_root / SCAN)
    assert pts.dtype == np.float32 and pts.shape == (81369, 6)
    # The file's colours are integral 0..255: exact round trips are possible.
    assert np.array_equal(pts[:, 3:], np.rint(pts[:, 3:])) and pts[:, 3:].max() <= 255
    return pts


# ---------------------------------------------------------------------------------------------
# independent encoder for the tests
# ---------------------------------------------------------------------------------------------

_CODES = {
    INT8: "i1",
    UINT8: "u1",
    INT16: "i2",
    UINT16: "u2",
    INT32: "i4",
    UINT32: "u4",
    FLOAT32: "f4",
    FLOAT64: "f8",
}


def encode(columns, fields, point_step, *, height=1, row_pad=0, bigendian=False):
    """Write ``columns[name]`` (length N) into a PointCloud2 buffer with the given fields.

    Returns (CloudLayout, bytes). ``row_pad`` extra bytes end every row.
    """
    n = len(next(iter(columns.values())))
    assert n % height == 0
    width = n // height
    bo = ">" if bigendian else "<"
    dtype = np.dtype(
        {
            "names": [f.name for f in fields],
            "formats": [bo + _CODES[f.datatype] for f in fields],
            "offsets": [f.offset for f in fields],
            "itemsize": point_step,
        }
    )
    rec = np.zeros(n, dtype=dtype)
    for f in fields:
        rec[f.name] = columns[f.name]
    row_step = width * point_step + row_pad
    buf = np.full((height, row_step), 0xAB, dtype=np.uint8)  # padding bytes are junk, not 0
    buf[:, : width * point_step] = rec.view(np.uint8).reshape(height, width * point_step)
    layout = CloudLayout(height, width, point_step, row_step, tuple(fields), bigendian, True)
    return layout, buf.tobytes()


def packed(rgb, alpha=0):
    c = rgb.astype(np.uint32)
    return (np.uint32(alpha) << 24) | (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def xyz_cols(pts, dtype=np.float32):
    return {
        "x": pts[:, 0].astype(dtype),
        "y": pts[:, 1].astype(dtype),
        "z": pts[:, 2].astype(dtype),
    }


def assert_exact(out, pts, with_color=True):
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert out.shape == (len(pts), 6 if with_color else 3)
    np.testing.assert_array_equal(out[:, :3], pts[:, :3])
    if with_color:
        np.testing.assert_array_equal(out[:, 3:], pts[:, 3:])


# ---------------------------------------------------------------------------------------------
# round trips, one per layout
# ---------------------------------------------------------------------------------------------

XYZ_F32 = (Field("x", 0, FLOAT32), Field("y", 4, FLOAT32), Field("z", 8, FLOAT32))


def test_own_encoder_round_trip(scan):
    layout, data = points_to_cloud(scan)
    assert [(f.name, f.offset, f.datatype) for f in layout.fields] == [
        ("x", 0, FLOAT32),
        ("y", 4, FLOAT32),
        ("z", 8, FLOAT32),
        ("rgb", 12, FLOAT32),
    ]
    assert layout.point_step == 16 and layout.row_step == 16 * len(scan) and layout.is_dense
    out, info = cloud_to_array(data, layout)
    assert_exact(out, scan)
    assert info.has_color and info.color_source == "rgb" and info.n_valid == len(scan)
    assert info.valid_mask is None and info.n_dropped == 0
    xyz, _info3 = cloud_to_array(data, layout, with_color=False)
    assert_exact(xyz, scan, with_color=False)
    # Packed as PCL does: float32 whose bits are 0x00RRGGBB.
    words = np.frombuffer(data, "<u4").reshape(-1, 4)[:, 3]
    np.testing.assert_array_equal(words, packed(scan[:, 3:]))


def _layout_cases(pts):
    rgb = pts[:, 3:]
    cols = xyz_cols(pts)
    rgb_f = packed(rgb).view(np.float32)
    return {
        # PCL PointXYZRGB: x y z _pad rgb _pad[3] -> point_step 32.
        "pcl_xyzrgb_padded": (
            dict(cols, rgb=rgb_f),
            XYZ_F32 + (Field("rgb", 16, FLOAT32),),
            32,
            {},
        ),
        "rgb_uint32": (dict(cols, rgb=packed(rgb)), XYZ_F32 + (Field("rgb", 12, UINT32),), 16, {}),
        "rgb_int32": (
            dict(cols, rgb=packed(rgb).view(np.int32)),
            XYZ_F32 + (Field("rgb", 12, INT32),),
            16,
            {},
        ),
        "rgba_uint32": (
            dict(cols, rgba=packed(rgb, alpha=200)),
            XYZ_F32 + (Field("rgba", 12, UINT32),),
            16,
            {},
        ),
        "rgba_float32": (
            dict(cols, rgba=packed(rgb, alpha=255).view(np.float32)),
            XYZ_F32 + (Field("rgba", 16, FLOAT32),),
            20,
            {},
        ),
        "split_rgb_uint8": (
            dict(
                cols,
                r=rgb[:, 0].astype(np.uint8),
                g=rgb[:, 1].astype(np.uint8),
                b=rgb[:, 2].astype(np.uint8),
                intensity=pts[:, 2] * 2,
            ),
            XYZ_F32
            + (
                Field("intensity", 12, FLOAT32),
                Field("r", 16, UINT8),
                Field("g", 17, UINT8),
                Field("b", 18, UINT8),
            ),
            20,
            {},
        ),
        "float64_xyz": (
            dict(xyz_cols(pts, np.float64), rgb=rgb_f),
            (
                Field("x", 0, FLOAT64),
                Field("y", 8, FLOAT64),
                Field("z", 16, FLOAT64),
                Field("rgb", 24, FLOAT32),
            ),
            32,
            {},
        ),
        "big_endian": (
            dict(cols, rgb=rgb_f),
            XYZ_F32 + (Field("rgb", 12, FLOAT32),),
            16,
            {"bigendian": True},
        ),
        "big_endian_float64_split_rgb": (
            dict(
                xyz_cols(pts, np.float64),
                r=rgb[:, 0].astype(np.uint8),
                g=rgb[:, 1].astype(np.uint8),
                b=rgb[:, 2].astype(np.uint8),
            ),
            (
                Field("x", 0, FLOAT64),
                Field("y", 8, FLOAT64),
                Field("z", 16, FLOAT64),
                Field("b", 24, UINT8),
                Field("g", 25, UINT8),
                Field("r", 26, UINT8),
            ),
            28,
            {"bigendian": True},
        ),
        "big_endian_rgba_uint32": (
            dict(cols, rgba=packed(rgb, alpha=7)),
            XYZ_F32 + (Field("rgba", 12, UINT32),),
            16,
            {"bigendian": True},
        ),
        # Fields out of order and not adjacent (no fast path), colour first.
        "reordered": (
            dict(cols, rgb=rgb_f),
            (
                Field("rgb", 0, FLOAT32),
                Field("z", 4, FLOAT32),
                Field("x", 12, FLOAT32),
                Field("y", 8, FLOAT32),
            ),
            16,
            {},
        ),
        # Odd point_step and unaligned offsets.
        "unaligned": (
            dict(cols, rgb=rgb_f),
            (
                Field("x", 1, FLOAT32),
                Field("y", 5, FLOAT32),
                Field("z", 9, FLOAT32),
                Field("rgb", 13, FLOAT32),
            ),
            19,
            {},
        ),
        "row_padding": (
            dict(cols, rgb=rgb_f),
            XYZ_F32 + (Field("rgb", 12, FLOAT32),),
            16,
            {"height": 3, "row_pad": 12},
        ),
        # Extra channels of every other datatype around the used ones.
        "extra_fields": (
            dict(
                cols,
                rgb=rgb_f,
                ring=np.arange(len(pts)) % 64,
                t=np.arange(len(pts)) % 100,
                flag=np.ones(len(pts)),
                label=np.arange(len(pts)) % 30000,
                idx=np.arange(len(pts)),
                time=np.linspace(0, 0.1, len(pts)),
            ),
            (
                Field("flag", 0, INT8),
                Field("ring", 1, UINT16),
                Field("label", 3, INT16),
                Field("x", 5, FLOAT32),
                Field("y", 9, FLOAT32),
                Field("z", 13, FLOAT32),
                Field("t", 17, UINT8),
                Field("rgb", 18, FLOAT32),
                Field("idx", 22, INT32),
                Field("time", 26, FLOAT64),
            ),
            40,
            {},
        ),
    }


CASES = [
    "pcl_xyzrgb_padded",
    "rgb_uint32",
    "rgb_int32",
    "rgba_uint32",
    "rgba_float32",
    "split_rgb_uint8",
    "float64_xyz",
    "big_endian",
    "big_endian_float64_split_rgb",
    "big_endian_rgba_uint32",
    "reordered",
    "unaligned",
    "row_padding",
    "extra_fields",
]


@pytest.mark.parametrize("case", CASES)
def test_layout_round_trip(scan, case):
    pts = scan[: 81369 // 3 * 3]  # divisible by 3 for the organised case
    columns, fields, step, kw = _layout_cases(pts)[case]
    layout, data = encode(columns, list(fields), step, **kw)
    out, info = cloud_to_array(data, layout)
    assert_exact(out, pts)
    assert info.has_color and info.n_valid == len(pts) and info.n_dropped == 0
    assert info.is_bigendian == kw.get("bigendian", False)
    expected_source = "r,g,b" if "r" in columns else ("rgba" if "rgba" in columns else "rgb")
    assert info.color_source == expected_source
    xyz, _ = cloud_to_array(data, layout, with_color=False)
    assert_exact(xyz, pts, with_color=False)


def test_split_float_rgb_is_scaled_from_unit_range(scan):
    cols = xyz_cols(scan)
    for i, c in enumerate("rgb"):
        cols[c] = scan[:, 3 + i] / np.float32(255.0)
    fields = XYZ_F32 + (Field("r", 12, FLOAT32), Field("g", 16, FLOAT32), Field("b", 20, FLOAT32))
    layout, data = encode(cols, list(fields), 24)
    out, info = cloud_to_array(data, layout)
    np.testing.assert_array_equal(out[:, :3], scan[:, :3])
    np.testing.assert_allclose(out[:, 3:], scan[:, 3:], atol=1e-3)
    np.testing.assert_array_equal(np.rint(out[:, 3:]), scan[:, 3:])
    assert info.color_source == "r,g,b"


def test_split_float_rgb_in_0_255_is_kept(scan):
    """Float r, g, b holding 0..255 (issue 13 #4): detected per cloud and copied, not x255."""
    cols = xyz_cols(scan)
    for i, c in enumerate("rgb"):
        cols[c] = scan[:, 3 + i].astype(np.float32)
    fields = XYZ_F32 + (Field("r", 12, FLOAT32), Field("g", 16, FLOAT32), Field("b", 20, FLOAT32))
    layout, data = encode(cols, list(fields), 24)
    out, _ = cloud_to_array(data, layout)
    np.testing.assert_array_equal(out, scan)


def test_missing_colour_gives_zeros_and_flag(scan):
    layout, data = encode(xyz_cols(scan), list(XYZ_F32), 12)
    out, info = cloud_to_array(data, layout)
    assert out.shape == (len(scan), 6)
    np.testing.assert_array_equal(out[:, :3], scan[:, :3])
    assert not out[:, 3:].any()
    assert not info.has_color and info.color_source is None
    xyz, info3 = cloud_to_array(data, layout, with_color=False)
    assert_exact(xyz, scan, with_color=False)
    assert not info3.has_color


def test_packed_rgb_byte_convention_by_hand():
    """PCL/RViz: the rgb float's bits are 0x00RRGGBB; byte order follows is_bigendian."""
    pts = [(1.5, -2.25, 3.0, 255, 128, 1), (0.0, 1e-3, -7.0, 0, 10, 200)]
    for bo, big in (("<", False), (">", True)):
        data = b"".join(
            struct.pack(bo + "fffI", x, y, z, (r << 16) | (g << 8) | b) for x, y, z, r, g, b in pts
        )
        layout = CloudLayout(1, 2, 16, 32, XYZ_F32 + (Field("rgb", 12, FLOAT32),), big, True)
        out, _ = cloud_to_array(data, layout)
        np.testing.assert_array_equal(out, np.array(pts, dtype=np.float32))


def _naive(data, layout):
    """Per-point struct reference decoder (float32 xyz + packed rgb only)."""
    bo = ">" if layout.is_bigendian else "<"
    f = {fl.name: fl for fl in layout.fields}
    res = []
    for i in range(layout.height):
        for j in range(layout.width):
            base = i * layout.row_step + j * layout.point_step
            (x,) = struct.unpack_from(bo + "f", data, base + f["x"].offset)
            (y,) = struct.unpack_from(bo + "f", data, base + f["y"].offset)
            (z,) = struct.unpack_from(bo + "f", data, base + f["z"].offset)
            (v,) = struct.unpack_from(bo + "I", data, base + f["rgb"].offset)
            res.append((x, y, z, (v >> 16) & 255, (v >> 8) & 255, v & 255))
    return np.array(res, dtype=np.float32)


@pytest.mark.parametrize("case", ["pcl_xyzrgb_padded", "big_endian", "unaligned", "row_padding"])
def test_matches_naive_struct_decoder(scan, case):
    pts = scan[:3000]
    columns, fields, step, kw = _layout_cases(pts)[case]
    layout, data = encode(columns, list(fields), step, **kw)
    out, _ = cloud_to_array(data, layout)
    np.testing.assert_array_equal(out, _naive(data, layout))


# ---------------------------------------------------------------------------------------------
# organised clouds, NaN / inf
# ---------------------------------------------------------------------------------------------


def _with_holes(scan, seed=0):
    rng = np.random.default_rng(seed)
    pts = scan.copy()
    bad = rng.random(len(pts)) < 0.07
    kind = rng.integers(0, 4, len(pts))
    pts[bad & (kind == 0), 0] = np.nan
    pts[bad & (kind == 1), 1] = np.inf
    pts[bad & (kind == 2), 2] = -np.inf
    pts[bad & (kind == 3), :3] = np.nan  # a depth-camera hole: all three NaN
    return pts, ~bad


def test_organized_cloud_with_nans(scan):
    pts, good = _with_holes(scan)
    h, w = 9, 9041  # 81,369 = 9 x 9,041
    assert h * w == len(pts)
    cols = dict(xyz_cols(pts), rgb=packed(pts[:, 3:]).view(np.float32))
    layout, data = encode(
        cols, list(XYZ_F32 + (Field("rgb", 16, FLOAT32),)), 32, height=h, row_pad=24
    )
    layout = CloudLayout(
        layout.height,
        layout.width,
        layout.point_step,
        layout.row_step,
        layout.fields,
        False,
        is_dense=False,
    )
    out, info = cloud_to_array(data, layout)
    assert info.organized and (info.height, info.width) == (h, w)
    assert info.n_points == h * w and info.n_valid == good.sum() and info.n_dropped == (~good).sum()
    np.testing.assert_array_equal(info.valid_mask, good)
    assert_exact(out, pts[good])
    assert np.isfinite(out).all()
    # Keep everything on request: row-major, NaNs where they were.
    full, info_all = cloud_to_array(data, layout, drop_invalid=False)
    assert full.shape == (h * w, 6) and info_all.valid_mask is None and info_all.n_dropped == 0
    np.testing.assert_array_equal(full, pts)  # assert_array_equal treats NaN == NaN


def test_is_dense_true_is_trusted_unless_forced(scan):
    pts, good = _with_holes(scan[:5000], seed=1)
    layout, data = encode(
        dict(xyz_cols(pts), rgb=packed(pts[:, 3:]).view(np.float32)),
        list(XYZ_F32 + (Field("rgb", 12, FLOAT32),)),
        16,
    )
    assert layout.is_dense  # (a lying producer)
    out, info = cloud_to_array(data, layout)
    assert len(out) == len(pts) and info.valid_mask is None
    out, info = cloud_to_array(data, layout, drop_invalid=True)
    assert_exact(out, pts[good])
    assert info.n_dropped == (~good).sum()


def test_empty_cloud():
    layout, data = points_to_cloud(np.zeros((0, 6), np.float32))
    out, info = cloud_to_array(data, layout)
    assert out.shape == (0, 6) and out.dtype == np.float32 and info.n_points == 0
    layout = CloudLayout(0, 0, 16, 0, XYZ_F32 + (Field("rgb", 12, FLOAT32),), False, False)
    out, info = cloud_to_array(b"", layout, with_color=False)
    assert out.shape == (0, 3) and info.n_valid == 0


def test_structured_view_is_zero_copy(scan):
    pts = scan[:20000]
    columns, fields, step, kw = _layout_cases(pts)["extra_fields"]
    layout, data = encode(columns, list(fields), step, **kw)
    buf = np.frombuffer(data, np.uint8)
    view = cloud_to_structured(buf, layout)
    assert view.shape == (1, len(pts)) and np.shares_memory(view, buf)
    np.testing.assert_array_equal(view["x"][0], pts[:, 0])
    np.testing.assert_array_equal(view["ring"][0], np.arange(len(pts)) % 64)
    np.testing.assert_array_equal(view["time"][0], columns["time"])


def test_accepts_all_buffer_kinds(scan):
    layout, data = points_to_cloud(scan[:1000])
    for d in (
        data,
        bytearray(data),
        memoryview(data),
        array.array("B", data),
        np.frombuffer(data, np.uint8),
        list(data),
    ):
        out, _ = cloud_to_array(d, layout)
        assert_exact(out, scan[:1000])


# ---------------------------------------------------------------------------------------------
# malformed input -> ValueError
# ---------------------------------------------------------------------------------------------


def _good(n=10):
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(size=(n, 3)), rng.integers(0, 256, (n, 3))], 1)
    return points_to_cloud(pts.astype(np.float32))


def _replace(layout, **kw):
    d = {
        "height": layout.height,
        "width": layout.width,
        "point_step": layout.point_step,
        "row_step": layout.row_step,
        "fields": layout.fields,
        "is_bigendian": layout.is_bigendian,
        "is_dense": layout.is_dense,
    }
    d.update(kw)
    return CloudLayout(**d)


@pytest.mark.parametrize(
    "change, data_delta, match",
    [
        ({"fields": XYZ_F32[:2] + (Field("rgb", 12, FLOAT32),)}, 0, "lacks field"),
        ({"fields": (Field("a", 0, FLOAT32),)}, 0, "lacks field"),
        ({"fields": ()}, 0, "lacks field"),
        ({"fields": (Field("x", 0, INT32),) + XYZ_F32[1:]}, 0, "must be FLOAT32 or FLOAT64"),
        ({"fields": (Field("x", 0, UINT8),) + XYZ_F32[1:]}, 0, "must be FLOAT32 or FLOAT64"),
        ({"fields": (Field("x", 0, 0),) + XYZ_F32[1:]}, 0, "unknown datatype"),
        ({"fields": (Field("x", 0, 9),) + XYZ_F32[1:]}, 0, "unknown datatype"),
        ({"fields": XYZ_F32 + (Field("rgb", 12, UINT8),)}, 0, "packed colour field"),
        ({"fields": XYZ_F32 + (Field("rgb", 12, FLOAT64),)}, 0, "does not fit"),
        ({"fields": XYZ_F32 + (Field("rgb", 12, FLOAT32, 2),)}, 0, "does not fit"),
        (
            {
                "fields": XYZ_F32
                + (Field("r", 12, INT16), Field("g", 14, INT8), Field("b", 15, INT8))
            },
            0,
            "colour field 'r'",
        ),
        (
            {"fields": XYZ_F32 + (Field("rgb", 12, FLOAT32), Field("rgb", 12, FLOAT32))},
            0,
            "two fields",
        ),
        ({"fields": XYZ_F32 + (Field("rgb", 12, FLOAT32, 0),)}, 0, "count"),
        ({"fields": (Field("x", 1000, FLOAT32),) + XYZ_F32[1:]}, 0, "does not fit"),
        ({"fields": (Field("x", -4, FLOAT32),) + XYZ_F32[1:]}, 0, "does not fit"),
        ({"point_step": 12}, 0, "does not fit"),  # rgb at 12..16 > point_step
        ({"point_step": 0}, 0, "does not fit"),
        ({"row_step": 16 * 10 - 1}, -1, "row_step"),
        ({}, -1, "data has 159 bytes"),
        ({}, +1, "data has 161 bytes"),
        ({"height": 2}, 0, "expected row_step 160 \\* height 2"),
        ({"width": 11}, 0, "row_step 160 < width 11"),
        ({"height": -1}, 0, "height must be >= 0"),
    ],
)
def test_malformed_raises(change, data_delta, match):
    layout, data = _good()
    layout = _replace(layout, **change)
    data = data[: len(data) + data_delta] if data_delta < 0 else data + b"\0" * data_delta
    with pytest.raises(ValueError, match=match):
        cloud_to_array(data, layout)


def test_unknown_type_on_unused_field_is_tolerated(scan):
    layout, data = points_to_cloud(scan[:100])
    layout = _replace(layout, fields=layout.fields + (Field("future", 0, 42),))
    out, _ = cloud_to_array(data, layout)
    assert_exact(out, scan[:100])


def test_message_like_objects(scan):
    layout, data = points_to_cloud(scan[:500])
    msg = SimpleNamespace(
        height=layout.height,
        width=layout.width,
        point_step=layout.point_step,
        row_step=layout.row_step,
        is_bigendian=False,
        is_dense=True,
        data=np.frombuffer(data, np.uint8),
        fields=[
            SimpleNamespace(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
            for f in layout.fields
        ],
    )
    out, _ = pc2.pointcloud2_to_array(msg)
    assert_exact(out, scan[:500])
    with pytest.raises(ValueError, match="not a PointCloud2"):
        pc2.pointcloud2_to_array(SimpleNamespace(data=b"", height=1))
    msg.width = "many"
    with pytest.raises(ValueError, match="malformed"):
        pc2.pointcloud2_to_array(msg)


def test_points_to_cloud_rejects_bad_shapes():
    with pytest.raises(ValueError):
        points_to_cloud(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError):
        points_to_cloud(np.zeros((5, 3), np.float32), height=2)


# ---------------------------------------------------------------------------------------------
# real sensor_msgs/PointCloud2 messages (rclpy wheels)
# ---------------------------------------------------------------------------------------------


@pytest.mark.ros
def test_array_to_pointcloud2_message_round_trip(scan):
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import PointCloud2, PointField

    msg = pc2.array_to_pointcloud2(scan, frame_id="camera", stamp=12.25)
    assert isinstance(msg, PointCloud2)
    assert msg.header.frame_id == "camera"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 250_000_000)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1),
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (
        1,
        len(scan),
        16,
        16 * len(scan),
    )
    assert msg.is_dense and not msg.is_bigendian and len(msg.data) == 16 * len(scan)

    out, _info = pc2.pointcloud2_to_array(msg)
    assert_exact(out, scan)
    # Through the wire format (CDR) and back, as a subscriber would get it.
    msg2 = deserialize_message(serialize_message(msg), PointCloud2)
    out2, _ = pc2.pointcloud2_to_array(msg2)
    assert_exact(out2, scan)

    # Organised, no colour, NaN holes -> is_dense False, dropped on read.
    pts, good = _with_holes(scan)
    msg3 = pc2.array_to_pointcloud2(pts[:, :3], frame_id="cam", height=9)
    assert (msg3.height, msg3.width) == (9, 9041) and not msg3.is_dense
    out3, info3 = pc2.pointcloud2_to_array(msg3)
    np.testing.assert_array_equal(out3[:, :3], pts[good, :3])
    assert not info3.has_color and info3.n_dropped == (~good).sum()


@pytest.mark.ros
@pytest.mark.parametrize(
    "case", ["pcl_xyzrgb_padded", "big_endian_float64_split_rgb", "row_padding"]
)
def test_foreign_layout_in_real_message(scan, case):
    """A message whose layout came from elsewhere (a driver), carried by the real msg class."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import PointCloud2

    pts = scan[: 81369 // 3 * 3]
    columns, fields, step, kw = _layout_cases(pts)[case]
    layout, data = encode(columns, list(fields), step, **kw)
    assert layout.is_dense
    msg = pc2.cloud_to_pointcloud2(layout, data)
    msg = deserialize_message(serialize_message(msg), PointCloud2)
    out, _ = pc2.pointcloud2_to_array(msg)
    assert_exact(out, pts)


@pytest.mark.ros
def test_header_argument_wins():
    from std_msgs.msg import Header

    h = Header(frame_id="base_link")
    h.stamp.sec, h.stamp.nanosec = 5, 7
    msg = pc2.array_to_pointcloud2(np.zeros((4, 3), np.float32), h, frame_id="ignored")
    assert msg.header.frame_id == "base_link" and msg.header.stamp.nanosec == 7
    out, info = pc2.pointcloud2_to_array(msg)
    assert out.shape == (4, 6) and not info.has_color


def test_encoder_matches_the_packing_rule_on_hostile_colours(scan):
    """Issue 13 #14: the fast encoder keeps the exact rule (round, clip to 0..255, NaN -> 0) and
    is_dense, on a real scan with NaN / inf / out-of-range values planted."""
    pts = scan.copy()
    pts[0, 3:6] = [np.nan, 300.0, -5.0]
    pts[1, 3:6] = [np.inf, -np.inf, 127.5]
    layout, data = points_to_cloud(pts)
    words = np.frombuffer(data, "<u4").reshape(-1, 4)[:, 3]
    np.testing.assert_array_equal(words, pc2._pack_rgb(pts[:, 3:6]))
    assert layout.is_dense
    pts[2, 1] = np.nan
    assert not points_to_cloud(pts)[0].is_dense
    for cols in (3, 6):  # empty clouds encode to an empty message
        empty = pc2.array_to_pointcloud2(np.zeros((0, cols), np.float32))
        assert empty.width == 0 and len(empty.data) == 0
    xyz_layout, xyz_data = points_to_cloud(pts[:, :3].astype(np.float64))
    assert xyz_layout.point_step == 12 and not xyz_layout.is_dense
    np.testing.assert_array_equal(
        np.frombuffer(xyz_data, "<f4").reshape(-1, 3), pts[:, :3].astype(np.float32)
    )
