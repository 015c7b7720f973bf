"""``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` <-> numpy RGB images.

The image node's decoder: any supported message -> ``uint8 (H, W, 3)`` RGB, row-major, the
top-left pixel first (what :class:`~sr3d_ros.models.mono` detectors take), and back
(:func:`rgb_to_image` for the node's overlay output). Messages are duck-typed: rclpy messages
(``data`` an ``array.array`` / ``bytes``) and ``rosbags``-deserialised ones (``data`` a numpy
array) both work; importing this module needs no ROS.

Raw encodings (``Image.encoding``):

* ``rgb8``, ``bgr8``: 3 channels, reordered to RGB.
* ``rgba8``, ``bgra8``: 4 channels, the alpha channel is dropped (not blended).
* ``mono8``: 1 channel, copied into R, G and B.
* ``rgb16``, ``bgr16``, ``rgba16``, ``bgra16``, ``mono16``: the same with 16-bit channels, byte
  order from ``is_bigendian``, scaled to 8 bit by ``round(v * 255 / 65535)``. (8-bit channels
  have no byte order, so ``is_bigendian`` does not matter for them.)

Rows may be padded: row ``r`` starts at byte ``r * step`` and ``step >= width * bytes per
pixel``; the padding is skipped. ``data`` longer than ``step * height`` is accepted (the rest is
ignored).

Compressed images (``CompressedImage``): JPEG and PNG, decoded with Pillow whatever the
``format`` string says about them (image_transport writes e.g. ``"bgr8; jpeg compressed
bgr8"``; the encoded file holds its colours in the standard order either way). Grey images are
copied into R, G and B, alpha is dropped, 16-bit PNGs are scaled to 8 bit as above. Depth
streams (``compressedDepth``) and other file types are refused.

Every problem is one :class:`ImageError` (a ``ValueError``) naming it: unknown encoding, empty
image, ``step`` too small, ``data`` shorter than ``step * height``, more than ``max_pixels``
pixels, undecodable compressed bytes. The node turns it into a warning and an empty result.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ENCODINGS",
    "ImageError",
    "compressed_to_rgb",
    "image_to_rgb",
    "rgb_to_image",
]

#: Largest image decoded by default (pixels): 8192 x 4096; bigger ones are refused.
DEFAULT_MAX_PIXELS = 8192 * 4096


class ImageError(ValueError):
    """An image message that cannot be decoded (the message says why)."""


@dataclass(frozen=True)
class _Encoding:
    channels: int
    bytes_per_channel: int
    rgb_order: tuple[int, int, int]  # channel index of R, G, B


#: The supported raw encodings.
ENCODINGS: dict[str, _Encoding] = {
    "rgb8": _Encoding(3, 1, (0, 1, 2)),
    "bgr8": _Encoding(3, 1, (2, 1, 0)),
    "rgba8": _Encoding(4, 1, (0, 1, 2)),
    "bgra8": _Encoding(4, 1, (2, 1, 0)),
    "mono8": _Encoding(1, 1, (0, 0, 0)),
    "rgb16": _Encoding(3, 2, (0, 1, 2)),
    "bgr16": _Encoding(3, 2, (2, 1, 0)),
    "rgba16": _Encoding(4, 2, (0, 1, 2)),
    "bgra16": _Encoding(4, 2, (2, 1, 0)),
    "mono16": _Encoding(1, 2, (0, 0, 0)),
}


def _bytes_of(data: Any) -> NDArray[np.uint8]:
    """``uint8 (n,)`` view of a message's ``data`` (bytes, array.array, list or numpy array)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).astype(np.uint8, copy=False)
    try:
        return np.frombuffer(memoryview(data).cast("B"), np.uint8)
    except TypeError:  # a plain list of ints
        return np.asarray(data, dtype=np.uint8)


def _to_8bit(values: NDArray[np.uint16]) -> NDArray[np.uint8]:
    """16-bit -> 8-bit: ``round(v * 255 / 65535)`` (exact for ``v = 257 k``)."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"empty image ({width} x {height})")
    if max_pixels and width * height > max_pixels:
        raise ImageError(f"{width} x {height} image is over max_image_pixels {max_pixels}")


def image_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> NDArray[np.uint8]:
    """``sensor_msgs/Image`` -> RGB pixels.

    Args:
        msg: the message (``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``,
            ``data``).
        max_pixels: refuse images with more pixels (0 = no limit).

    Returns:
        ``uint8 (height, width, 3)`` RGB, C-contiguous, a new array (never a view of the
        message). See the module docstring for the encodings.

    Raises:
        ImageError: unsupported encoding, empty or over-sized image, ``step`` smaller than a
            row, ``data`` shorter than ``step * height``.
    """
    encoding = str(msg.encoding).strip().lower()
    enc = ENCODINGS.get(encoding)
    if enc is None:
        raise ImageError(
            f"unsupported encoding {msg.encoding!r}; supported: {', '.join(ENCODINGS)}"
        )
    try:
        width, height, step = int(msg.width), int(msg.height), int(msg.step)
    except (TypeError, ValueError):
        raise ImageError("malformed width / height / step") from None
    _check_size(width, height, max_pixels)
    pixel = enc.channels * enc.bytes_per_channel
    if step < width * pixel:
        raise ImageError(
            f"step {step} is smaller than a row ({width} pixels x {pixel} bytes = "
            f"{width * pixel} bytes, {encoding})"
        )
    data = _bytes_of(msg.data)
    if data.size < step * height:
        raise ImageError(
            f"data has {data.size} bytes, step * height = {step} x {height} = {step * height}"
        )
    rows = data[: step * height].reshape(height, step)[:, : width * pixel]
    if enc.bytes_per_channel == 1:
        px = rows.reshape(height, width, enc.channels)
    else:
        dtype = np.dtype(">u2" if int(msg.is_bigendian) else "<u2")
        px = _to_8bit(np.ascontiguousarray(rows).view(dtype).reshape(height, width, enc.channels))
    return np.ascontiguousarray(px[:, :, list(enc.rgb_order)])


def compressed_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> NDArray[np.uint8]:
    """``sensor_msgs/CompressedImage`` (JPEG or PNG) -> RGB pixels, decoded with Pillow.

    Args:
        msg: the message (``format``, ``data``).
        max_pixels: refuse images with more pixels (0 = no limit), checked from the file header
            before decoding.

    Returns:
        ``uint8 (H, W, 3)`` RGB (see the module docstring).

    Raises:
        ImageError: a depth stream (``compressedDepth``), a file that is not JPEG / PNG,
            undecodable or truncated bytes, an empty or over-sized image.
    """
    from PIL import Image, UnidentifiedImageError

    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise ImageError(f"format {fmt!r}: compressed depth images are not camera images")
    data = _bytes_of(msg.data)
    if data.size == 0:
        raise ImageError("empty compressed image data")
    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            if im.format not in ("JPEG", "PNG"):
                raise ImageError(f"format {fmt!r}: a {im.format} file; JPEG and PNG are supported")
            _check_size(im.width, im.height, max_pixels)
            im.load()
            return _pil_to_rgb(im)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"format {fmt!r}: cannot decode ({exc})") from None


def _pil_to_rgb(im: Any) -> NDArray[np.uint8]:
    """A loaded Pillow image -> ``uint8 (H, W, 3)`` RGB (alpha dropped, 16 bit scaled)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(im, dtype=np.int64).clip(0, 65535).astype(np.uint16)
        return np.ascontiguousarray(np.repeat(_to_8bit(grey)[:, :, None], 3, axis=2))
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, LA, RGBA (alpha dropped), P, CMYK, YCbCr
    return np.array(im, dtype=np.uint8)


def rgb_to_image(rgb: NDArray[np.uint8], header: Any, encoding: str = "rgb8") -> Any:
    """RGB pixels -> ``sensor_msgs/Image`` (unpadded rows; rclpy message).

    Args:
        rgb: ``uint8 (H, W, 3)`` RGB.
        header: ``std_msgs/Header`` to copy (stamp + frame_id).
        encoding: ``"rgb8"`` or ``"bgr8"``.

    Returns:
        ``Image`` with ``step = 3 W``, ``is_bigendian = 0``.

    Raises:
        ValueError: ``rgb`` is not ``uint8 (H, W, 3)``, or another encoding.
    """
    from sensor_msgs.msg import Image

    from sr3d_ros.ros.messages import copy_header

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"encoding must be 'rgb8' or 'bgr8', got {encoding!r}")
    px = rgb if encoding == "rgb8" else rgb[:, :, ::-1]
    msg = Image()
    msg.header = copy_header(header)
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, 3 * int(rgb.shape[1])
    msg.data = np.ascontiguousarray(px).tobytes()
    return msg
