"""sensor_msgs/PointCloud2 <-> numpy, vectorised and zero-copy where possible.

(Over ~400 lines on purpose: one job, the PointCloud2 codec, whose layout checks, strided views,
decoder and encoder share private helpers; a tenth of it is this documentation.)

A PointCloud2 holds ``height`` rows of ``width`` points. Point ``j`` of row ``i`` starts at byte
``i * row_step + j * point_step`` of ``data``; every ``PointField`` gives the ``offset`` of one
value inside a point, its ``datatype`` (INT8 .. FLOAT64) and a ``count``. ``is_bigendian`` gives
the byte order of all values, ``is_dense`` says whether every point is valid (no NaN/inf).

This module reads such a buffer through strided numpy views (``np.ndarray(buffer=..., strides=
(row_step, point_step, ...))``): no per-point Python, no copy of the message data. The only copy
is the output array itself, which has a different (compact, float32) layout.

Output convention (what the detector consumes):

* ``points``: ``float32`` array ``(N, 6)`` = ``x, y, z, r, g, b`` with colour in **0..255**
  (the convention of the ScanNet / SUN RGB-D point files the models are trained on), or
  ``(N, 3)`` when ``with_color=False``. Organised clouds (``height > 1``) are flattened in
  row-major order. When the cloud carries no colour and ``with_color=True`` the colour columns
  are **zero** and ``info.has_color`` is ``False`` (the shape never depends on the message).
* Colour sources, in order of preference: a packed ``rgb`` field, a packed ``rgba`` field (both
  ``0xAARRGGBB`` in a FLOAT32 [PCL/RViz convention], UINT32 or INT32 field; alpha is ignored),
  or three separate ``r``, ``g``, ``b`` fields. UINT8 channels are 0..255. FLOAT32/FLOAT64
  channels come in both scales in the wild, so the scale is decided per cloud: when every finite
  r, g, b value is <= 1.0 they are taken as 0..1 and multiplied by 255, otherwise (some value
  > 1) as 0..255 and copied as they are. (A 0..255 cloud whose colours are all 0 or 1 is the one
  ambiguous case; it is read as 0..1.)
* ``x``, ``y``, ``z`` must be FLOAT32 or FLOAT64 (FLOAT64 is rounded to float32).
* Points whose x, y or z is NaN/inf are dropped when the message says ``is_dense = False``
  (``drop_invalid=None``, the default); ``drop_invalid=True/False`` forces the check on/off.
  ``info.valid_mask`` (``(height * width,)`` bool, row-major) tells which points were kept;
  it is ``None`` when no check ran.

Malformed messages raise :class:`ValueError` with a message naming the problem.

The pure-numpy core (:func:`cloud_to_array`, :func:`points_to_cloud`, :class:`CloudLayout`,
:class:`Field`) needs neither rclpy nor message classes; the message-level functions
(:func:`pointcloud2_to_array`, :func:`array_to_pointcloud2`) are thin wrappers. Reading works on
any object with PointCloud2's attributes (rclpy messages, ``rosbags`` messages, ...).
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DATATYPE_NAMES",
    "FLOAT32",
    "FLOAT64",
    "INT8",
    "INT16",
    "INT32",
    "UINT8",
    "UINT16",
    "UINT32",
    "CloudInfo",
    "CloudLayout",
    "Field",
    "array_to_pointcloud2",
    "cloud_to_array",
    "cloud_to_pointcloud2",
    "cloud_to_structured",
    "layout_from_msg",
    "pointcloud2_to_array",
    "pointcloud2_to_structured",
    "pointfield_dtype",
    "points_to_cloud",
]

# sensor_msgs/msg/PointField datatype codes.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = 1, 2, 3, 4, 5, 6, 7, 8

_TYPE_CHARS = {
    INT8: "i1",
    UINT8: "u1",
    INT16: "i2",
    UINT16: "u2",
    INT32: "i4",
    UINT32: "u4",
    FLOAT32: "f4",
    FLOAT64: "f8",
}
DATATYPE_NAMES = {
    INT8: "INT8",
    UINT8: "UINT8",
    INT16: "INT16",
    UINT16: "UINT16",
    INT32: "INT32",
    UINT32: "UINT32",
    FLOAT32: "FLOAT32",
    FLOAT64: "FLOAT64",
}
_XYZ = ("x", "y", "z")
_PACKED_COLOR_TYPES = (FLOAT32, UINT32, INT32)
_SPLIT_COLOR_TYPES = (UINT8, FLOAT32, FLOAT64)
# Byte index of R, G, B inside a packed 0xAARRGGBB word, by byte order of the message.
_PACKED_RGB_BYTES = {False: (2, 1, 0), True: (1, 2, 3)}


def _type_name(datatype: int) -> str:
    return DATATYPE_NAMES.get(datatype, f"unknown({datatype})")


def pointfield_dtype(datatype: int, bigendian: bool = False) -> np.dtype:
    """numpy dtype of a PointField datatype code, in the given byte order.

    Raises:
        ValueError: unknown datatype code (valid: 1..8, INT8..FLOAT64).
    """
    try:
        char = _TYPE_CHARS[int(datatype)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"unknown PointField datatype {datatype!r} (expected 1..8, INT8..FLOAT64)"
        ) from None
    return np.dtype((">" if bigendian else "<") + char)


@dataclass(frozen=True)
class Field:
    """One PointField: ``count`` values of ``datatype`` at byte ``offset`` inside a point."""

    name: str
    offset: int
    datatype: int
    count: int = 1

    @property
    def nbytes(self) -> int:
        """Bytes the field takes inside a point (ValueError for an unknown datatype)."""
        return pointfield_dtype(self.datatype).itemsize * self.count


@dataclass(frozen=True)
class CloudLayout:
    """Everything of a PointCloud2 except the header and the data bytes."""

    height: int
    width: int
    point_step: int
    row_step: int
    fields: tuple[Field, ...]
    is_bigendian: bool = False
    is_dense: bool = True

    @property
    def n_points(self) -> int:
        """Points in the cloud, ``height * width``."""
        return self.height * self.width

    def field(self, name: str) -> Field | None:
        """The field called ``name``, or None."""
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True)
class CloudInfo:
    """What :func:`cloud_to_array` found and did."""

    height: int
    width: int
    n_points: int  # height * width, points in the message
    n_valid: int  # rows of the returned array
    n_dropped: int  # points dropped for a non-finite x, y or z
    valid_mask: np.ndarray | None  # (height*width,) bool, row-major; None when not checked
    has_color: bool
    color_source: str | None  # "rgb", "rgba", "r,g,b" or None
    field_names: tuple[str, ...]
    is_bigendian: bool
    is_dense: bool  # as declared by the message

    @property
    def organized(self) -> bool:
        """True for an organised (image-like, ``height > 1``) cloud."""
        return self.height > 1


# --------------------------------------------------------------------------------------------
# pure-numpy core
# --------------------------------------------------------------------------------------------


def _as_u8(data: Any) -> np.ndarray:
    """A 1-D uint8 view of a bytes-like / array.array / numpy buffer (no copy if possible)."""
    if isinstance(data, np.ndarray):
        arr: np.ndarray = data
        if arr.dtype != np.uint8 or arr.ndim != 1 or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        return arr
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a list of ints, say
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _check_int(name: str, value: Any) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"PointCloud2.{name} must be an integer, got {value!r}") from None
    if v < 0:
        raise ValueError(f"PointCloud2.{name} must be >= 0, got {v}")
    return v


def _validate(layout: CloudLayout, nbytes: int) -> dict[str, Field]:
    """Check a layout against a data length; return the usable fields by name."""
    height = _check_int("height", layout.height)
    width = _check_int("width", layout.width)
    point_step = _check_int("point_step", layout.point_step)
    row_step = _check_int("row_step", layout.row_step)

    by_name: dict[str, Field] = {}
    for f in layout.fields:
        if f.name in by_name:
            raise ValueError(f"PointCloud2 has two fields named {f.name!r}")
        if int(f.datatype) not in _TYPE_CHARS:
            # A field we cannot size. Tolerated (forward compatibility) unless we need it.
            if f.name in _XYZ + ("rgb", "rgba", "r", "g", "b"):
                raise ValueError(
                    f"field {f.name!r} has unknown datatype {f.datatype!r} (expected 1..8)"
                )
            continue
        if int(f.count) < 1:
            raise ValueError(f"field {f.name!r} has count {f.count} (must be >= 1)")
        end = int(f.offset) + f.nbytes
        if int(f.offset) < 0 or end > point_step:
            raise ValueError(
                f"field {f.name!r} (offset {f.offset}, {_type_name(f.datatype)} x{f.count}) "
                f"does not fit in point_step {point_step}: offset out of range or point_step "
                "too small"
            )
        by_name[f.name] = f

    missing = [n for n in _XYZ if n not in by_name]
    if missing:
        raise ValueError(
            f"PointCloud2 lacks field(s) {missing}; fields are {[f.name for f in layout.fields]}"
        )
    for n in _XYZ:
        if by_name[n].datatype not in (FLOAT32, FLOAT64):
            raise ValueError(
                f"field {n!r} is {_type_name(by_name[n].datatype)}; x, y, z must be FLOAT32 or "
                "FLOAT64"
            )

    if height > 0 and width > 0 and row_step < width * point_step:
        raise ValueError(f"row_step {row_step} < width {width} * point_step {point_step}")
    if nbytes != row_step * height:
        raise ValueError(
            f"data has {nbytes} bytes, expected row_step {row_step} * height {height} = "
            f"{row_step * height}"
        )
    return by_name


def _view(
    buf: np.ndarray, layout: CloudLayout, offset: int, dtype: np.dtype, *inner: tuple[int, int]
) -> np.ndarray:
    """Strided (height, width, *inner) view of ``dtype`` values at byte ``offset`` of each point.

    ``inner`` is a sequence of (length, stride) pairs for extra axes inside a point.
    """
    shape = (layout.height, layout.width) + tuple(n for n, _ in inner)
    strides = (layout.row_step, layout.point_step) + tuple(s for _, s in inner)
    return np.ndarray(shape=shape, dtype=dtype, buffer=buf, offset=offset, strides=strides)


def _fill_xyz(
    out: np.ndarray, buf: np.ndarray, layout: CloudLayout, fields: dict[str, Field]
) -> None:
    # One strided 1-D copy (with byte swap / float64 -> float32 cast as needed) per coordinate:
    # measured faster than a single (H, W, 3) copy, whose inner loop would be only 3 long.
    big = bool(layout.is_bigendian)
    for i, name in enumerate(_XYZ):
        f = fields[name]
        out[..., i] = _view(buf, layout, f.offset, pointfield_dtype(f.datatype, big))


def _color_plan(fields: dict[str, Field]) -> tuple[str | None, tuple[Field, ...]]:
    """Which colour fields to read (validated): ("rgb"|"rgba", (f,)), ("r,g,b", (r, g, b)), or
    (None, ())."""
    for name in ("rgb", "rgba"):
        f = fields.get(name)
        if f is None:
            continue
        if f.datatype not in _PACKED_COLOR_TYPES or f.count != 1:
            raise ValueError(
                f"packed colour field {name!r} is {_type_name(f.datatype)} x{f.count}; expected "
                "one FLOAT32, UINT32 or INT32 holding 0xAARRGGBB"
            )
        return name, (f,)
    if all(n in fields for n in ("r", "g", "b")):
        for n in ("r", "g", "b"):
            if fields[n].datatype not in _SPLIT_COLOR_TYPES:
                raise ValueError(
                    f"colour field {n!r} is {_type_name(fields[n].datatype)}; expected UINT8 "
                    "(0..255) or FLOAT32/FLOAT64 (0..1 or 0..255, decided per cloud)"
                )
        return "r,g,b", (fields["r"], fields["g"], fields["b"])
    return None, ()


def _fill_color(
    out: np.ndarray, buf: np.ndarray, layout: CloudLayout, source: str, cfields: tuple[Field, ...]
) -> None:
    """Write r, g, b (0..255) into out[..., 3:6] from the fields chosen by _color_plan."""
    big = bool(layout.is_bigendian)
    if source != "r,g,b":
        # Read the 4 bytes of the packed word directly: no shifts, byte order by index.
        u8 = _view(buf, layout, cfields[0].offset, np.dtype(np.uint8), (4, 1))
        for ch, byte in enumerate(_PACKED_RGB_BYTES[big]):
            out[..., 3 + ch] = u8[..., byte]
        return
    floats = False
    for ch, f in enumerate(cfields):
        out[..., 3 + ch] = _view(buf, layout, f.offset, pointfield_dtype(f.datatype, big))
        floats |= f.datatype != UINT8
    if floats:
        # Float channels: 0..1 or 0..255, decided per cloud (see the module docstring).
        rgb = out[..., 3:6]
        finite = rgb[np.isfinite(rgb)]
        if finite.size and float(finite.max()) <= 1.0:
            rgb *= 255.0


def cloud_to_array(
    data: Any,
    layout: CloudLayout,
    with_color: bool = True,
    drop_invalid: bool | None = None,
) -> tuple[np.ndarray, CloudInfo]:
    """Decode PointCloud2 bytes described by ``layout`` into ``float32`` (N, 6|3) points.

    ``data`` may be ``bytes``, ``bytearray``, ``memoryview``, ``array.array('B')`` (rclpy) or a
    uint8 numpy array (rosbags). See the module docstring for the output convention.

    Raises:
        ValueError: sizes, fields or datatypes that do not describe ``data`` (the message says
        which).
    """
    buf = _as_u8(data)
    fields = _validate(layout, buf.nbytes)
    h, w = int(layout.height), int(layout.width)
    layout = CloudLayout(
        h,
        w,
        int(layout.point_step),
        int(layout.row_step),
        tuple(layout.fields),
        bool(layout.is_bigendian),
        bool(layout.is_dense),
    )
    n = h * w
    ncol = 6 if with_color else 3
    out = np.zeros((h, w, ncol), dtype=np.float32) if n == 0 else np.empty((h, w, ncol), np.float32)

    color_source, cfields = _color_plan(fields) if with_color else (None, ())
    if n > 0:
        _fill_xyz(out, buf, layout, fields)
        if color_source is not None:
            _fill_color(out, buf, layout, color_source, cfields)
        elif with_color:
            out[..., 3:6] = 0.0
    points = out.reshape(n, ncol)

    check = (not layout.is_dense) if drop_invalid is None else bool(drop_invalid)
    mask = None
    n_valid = n
    if check:
        # Per-column isfinite and a compaction of whole rows as opaque (ncol*4)-byte items: both
        # several times faster than isfinite(points[:, :3]).all(1) and points[mask].
        mask = np.isfinite(points[:, 0])
        mask &= np.isfinite(points[:, 1])
        mask &= np.isfinite(points[:, 2])
        n_valid = int(np.count_nonzero(mask))
        if n_valid != n:
            rows = points.view(np.dtype((np.void, 4 * ncol))).reshape(n)
            points = rows[mask].view(np.float32).reshape(n_valid, ncol)
    info = CloudInfo(
        height=h,
        width=w,
        n_points=n,
        n_valid=n_valid,
        n_dropped=n - n_valid,
        valid_mask=mask,
        has_color=color_source is not None,
        color_source=color_source,
        field_names=tuple(f.name for f in layout.fields),
        is_bigendian=layout.is_bigendian,
        is_dense=layout.is_dense,
    )
    return points, info


def cloud_to_structured(data: Any, layout: CloudLayout) -> np.ndarray:
    """Zero-copy structured (height, width) view of every known-type field of the cloud.

    Fields with ``count > 1`` become sub-arrays. Useful for extra channels (intensity, ring,
    time, ...). The view is read-only when the underlying buffer is.

    Raises:
        ValueError: sizes or fields that do not describe ``data``.
    """
    buf = _as_u8(data)
    fields = _validate(layout, buf.nbytes)
    big = bool(layout.is_bigendian)
    names, formats, offsets = [], [], []
    for f in fields.values():
        dt = pointfield_dtype(f.datatype, big)
        names.append(f.name)
        formats.append(dt if f.count == 1 else (dt, (int(f.count),)))
        offsets.append(int(f.offset))
    dtype = np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": int(layout.point_step)}
    )
    h, w = int(layout.height), int(layout.width)
    if h * w == 0:
        return np.zeros((h, w), dtype=dtype)
    return np.ndarray(
        shape=(h, w),
        dtype=dtype,
        buffer=buf,
        offset=0,
        strides=(int(layout.row_step), int(layout.point_step)),
    )


_RGB_WEIGHTS = np.array([65536.0, 256.0, 1.0], dtype=np.float32)


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) colour in 0..255 -> uint32 0x00RRGGBB (rounded, clipped, NaN -> 0)."""
    c = np.clip(np.rint(np.nan_to_num(rgb, nan=0.0, posinf=255.0, neginf=0.0)), 0, 255)
    c = c.astype(np.uint32)
    packed: np.ndarray = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    return packed


def points_to_cloud(points: np.ndarray, height: int = 1) -> tuple[CloudLayout, bytes]:
    """Encode (N, 3|6) points as PointCloud2 layout + ``bytes`` (see :func:`_encode`).

    Raises:
        ValueError: ``points`` is not (N, 3) / (N, 6), or N is not a multiple of ``height``.
    """
    layout, rec = _encode(points, height)
    return layout, rec.tobytes()


def _encode(points: np.ndarray, height: int = 1) -> tuple[CloudLayout, np.ndarray]:
    """Encode (N, 3|6) points (xyz [+ rgb 0..255]) as PointCloud2 layout + bytes.

    Layout: little-endian FLOAT32 ``x, y, z`` at offsets 0, 4, 8 and, for 6 columns, a FLOAT32
    ``rgb`` at 12 holding the packed 0x00RRGGBB bits (PCL/RViz convention); point_step 12 or 16,
    no padding. ``height > 1`` makes an organised cloud of ``N / height`` columns.
    ``is_dense`` is True iff every x, y, z is finite.

    Raises:
        ValueError: ``points`` is not (N, 3) / (N, 6), or N is not a multiple of ``height``.
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] not in (3, 6):
        raise ValueError(f"points must be (N, 3) or (N, 6), got shape {pts.shape}")
    n = pts.shape[0]
    height = int(height)
    if height < 1 or (n % height) != 0:
        raise ValueError(f"cannot arrange {n} points into {height} rows")
    has_rgb = pts.shape[1] == 6
    fields = [Field("x", 0, FLOAT32), Field("y", 4, FLOAT32), Field("z", 8, FLOAT32)]
    if has_rgb:
        fields.append(Field("rgb", 12, FLOAT32))
    step = 4 * len(fields)
    if n == 0:
        return CloudLayout(1, 0, step, 0, tuple(fields), False, True), np.empty((0, 3), "<f4")
    width = n // height
    ncol = step // 4
    rec = np.empty((n, ncol), dtype="<f4")
    src = np.ascontiguousarray(pts, dtype="<f4")
    # Whole 12-byte x, y, z (and r, g, b) groups are copied as opaque items: several times
    # faster than numpy's per-value strided copies.
    rows = src.view(np.dtype([("xyz", "V12"), ("rgb", "V12")] if has_rgb else [("xyz", "V12")]))
    rows = rows.reshape(n)
    out = rec.view(np.dtype([("xyz", "V12"), ("c", "V4")] if has_rgb else [("xyz", "V12")]))
    out.reshape(n)["xyz"] = rows["xyz"]
    if has_rgb:
        c = np.empty((n, 3), dtype=np.float32)
        c.view(np.dtype("V12")).reshape(n)[:] = rows["rgb"]
        np.clip(c, 0.0, 255.0, out=c)
        np.rint(c, out=c)
        if not np.isfinite(c).all():  # a NaN channel -> 0 (clip already bounded inf)
            np.nan_to_num(c, copy=False, nan=0.0)
        # 0x00RRGGBB = 65536 r + 256 g + b, exact in float32 (< 2**24) for integers 0..255
        rec.view("<u4")[:, 3] = c @ _RGB_WEIGHTS
    layout = CloudLayout(
        height=height,
        width=width,
        point_step=step,
        row_step=step * width,
        fields=tuple(fields),
        is_bigendian=False,
        # contiguous check of the whole record: the packed colour word is always a finite
        # float32 (its top byte is 0, so its exponent is 0 or 1)
        is_dense=bool(np.isfinite(rec).all()),
    )
    return layout, rec


# --------------------------------------------------------------------------------------------
# message access (duck-typed: rclpy messages, rosbags messages, SimpleNamespace, ...)
# --------------------------------------------------------------------------------------------


def layout_from_msg(msg: Any) -> CloudLayout:
    """The :class:`CloudLayout` of a PointCloud2-like message object (rclpy, rosbags, ...).

    Raises:
        ValueError: not a PointCloud2 (missing attributes) or malformed header fields.
    """
    try:
        fields = tuple(
            Field(str(f.name), int(f.offset), int(f.datatype), int(f.count)) for f in msg.fields
        )
        return CloudLayout(
            height=int(msg.height),
            width=int(msg.width),
            point_step=int(msg.point_step),
            row_step=int(msg.row_step),
            fields=fields,
            is_bigendian=bool(msg.is_bigendian),
            is_dense=bool(msg.is_dense),
        )
    except AttributeError as e:
        raise ValueError(f"not a PointCloud2 message: {e}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"malformed PointCloud2 header fields: {e}") from None


def pointcloud2_to_array(
    msg: Any, with_color: bool = True, drop_invalid: bool | None = None
) -> tuple[np.ndarray, CloudInfo]:
    """sensor_msgs/PointCloud2 -> (``float32`` (N, 6) xyz + rgb 0..255 [or (N, 3)], info).

    See the module docstring for colour, NaN and error handling.

    Raises:
        ValueError: malformed or unsupported cloud (the message says why).
    """
    return cloud_to_array(msg.data, layout_from_msg(msg), with_color, drop_invalid)


def pointcloud2_to_structured(msg: Any) -> np.ndarray:
    """Zero-copy structured (height, width) view of all fields of a PointCloud2.

    Raises:
        ValueError: malformed cloud (the message says why).
    """
    return cloud_to_structured(msg.data, layout_from_msg(msg))


def _make_stamp(stamp: Any) -> Any:
    from builtin_interfaces.msg import Time

    if stamp is None:
        return Time()
    if isinstance(stamp, Time):
        return stamp
    if hasattr(stamp, "to_msg"):  # rclpy.time.Time
        return stamp.to_msg()
    sec = float(stamp)
    whole = int(np.floor(sec))
    return Time(sec=whole, nanosec=min(int(round((sec - whole) * 1e9)), 999_999_999))


def cloud_to_pointcloud2(layout: CloudLayout, data: Any, header: Any = None) -> Any:
    """A ``sensor_msgs/PointCloud2`` holding ``data`` laid out as ``layout`` (any layout, e.g.
    one a driver produced; :func:`points_to_cloud` makes ours).

    ``header`` (a ``std_msgs/Header``) is referenced as it is; default: an empty one.

    Raises:
        ImportError: the ROS message packages are not installed.
    """
    from sensor_msgs.msg import PointCloud2, PointField
    from std_msgs.msg import Header

    msg = PointCloud2()
    msg.header = header if header is not None else Header()
    msg.height = layout.height
    msg.width = layout.width
    msg.fields = [
        PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
        for f in layout.fields
    ]
    msg.is_bigendian = layout.is_bigendian
    msg.point_step = layout.point_step
    msg.row_step = layout.row_step
    buf = array.array("B")  # array.array skips rclpy's per-element check
    buf.frombytes(data)  # one memcpy from any buffer (bytes, memoryview, numpy)
    msg.data = buf
    msg.is_dense = layout.is_dense
    return msg


def array_to_pointcloud2(
    points: np.ndarray,
    header: Any = None,
    *,
    frame_id: str = "",
    stamp: Any = None,
    height: int = 1,
) -> Any:
    """(N, 3|6) float points (xyz [+ rgb 0..255]) -> sensor_msgs/PointCloud2.

    ``header`` (a std_msgs/Header) wins over ``frame_id`` / ``stamp``; ``stamp`` may be a
    builtin_interfaces/Time, an rclpy Time or seconds as a float. The layout is the one of
    :func:`points_to_cloud` (packed FLOAT32 ``rgb``, the PCL/RViz convention).

    Raises:
        ValueError: bad ``points`` shape or ``height`` (see :func:`points_to_cloud`).
    """
    from std_msgs.msg import Header

    layout, rec = _encode(points, height=height)
    if header is None:
        header = Header(frame_id=frame_id, stamp=_make_stamp(stamp))
    return cloud_to_pointcloud2(layout, rec.data.cast("B") if rec.size else b"", header)
