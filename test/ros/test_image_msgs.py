"""sr3d_ros.ros.image_msgs: Image / CompressedImage -> RGB on a real KITTI image (000007).

Every raw encoding is built by hand from the real pixels (channel order, alpha, grey, 16 bit in
both byte orders, padded rows) and must decode back to them exactly; compressed JPEG / PNG are
compared with Pillow's own decoding of the same bytes. Corrupt messages raise ImageError.
"""

from __future__ import annotations

import array
import io
import types

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from PIL import Image as PILImage  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from sr3d_ros.ros.image_msgs import (  # noqa: E402
    ENCODINGS,
    ImageError,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_image,
)


@pytest.fixture(scope="module")
def rgb(data_root):
    with PILImage.open(data_root / "kitti/training/image_2/000007.png") as im:
        out = np.asarray(im.convert("RGB"))
    assert out.shape == (375, 1242, 3)
    return out


def grey(rgb):
    return np.asarray(PILImage.fromarray(rgb).convert("L"))


def raw_message(pixels, encoding, pad=0, bigendian=False, cls=Image):
    """An Image whose rows are ``pixels`` (H, W, C) uint8 / uint16 plus ``pad`` junk bytes."""
    h, w = pixels.shape[:2]
    if pixels.dtype == np.uint16:
        pixels = pixels.astype(">u2" if bigendian else "<u2")
    row = pixels.reshape(h, -1).view(np.uint8)
    junk = np.random.default_rng(1).integers(0, 256, (h, pad), dtype=np.uint8)
    data = np.concatenate([row, junk], axis=1)
    m = cls()
    m.header = Header(frame_id="cam")
    m.height, m.width, m.encoding = h, w, encoding
    m.is_bigendian, m.step = int(bigendian), data.shape[1]
    m.data = array.array("B", data.tobytes()) if cls is Image else data.reshape(-1)
    return m


def as_16bit(pixels):
    """uint8 pixels scaled to 16 bit (v * 257) plus noise below half a step: rounds back."""
    noise = np.random.default_rng(2).integers(0, 128, pixels.shape)
    return np.minimum(pixels.astype(np.int64) * 257 + noise, 65535).astype(np.uint16)


def encoded(rgb, encoding):
    """(pixels in the encoding's channel layout, expected RGB)."""
    alpha = np.random.default_rng(3).integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)
    base = encoding.rstrip("0123456789")
    if base == "mono":
        g = grey(rgb)
        px, expected = g[:, :, None], np.repeat(g[:, :, None], 3, 2)
    else:
        px = rgb[:, :, ::-1] if base.startswith("bgr") else rgb
        if base.endswith("a"):
            px = np.concatenate([px, alpha], 2)
        expected = rgb
    if encoding.endswith("16"):
        px = as_16bit(px)
    return np.ascontiguousarray(px), expected


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 13])
def test_every_encoding_with_and_without_padding(rgb, encoding, pad):
    px, expected = encoded(rgb, encoding)
    out = image_to_rgb(raw_message(px, encoding, pad=pad))
    assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("encoding", ["rgb16", "mono16", "bgra16"])
def test_is_bigendian_is_honoured(rgb, encoding):
    px, expected = encoded(rgb, encoding)
    for big in (False, True):
        np.testing.assert_array_equal(
            image_to_rgb(raw_message(px, encoding, pad=2, bigendian=big)), expected
        )
    # the flag matters: the same bytes read in the other byte order are a different image
    m = raw_message(px, encoding, bigendian=True)
    m.is_bigendian = 0
    assert not np.array_equal(image_to_rgb(m), expected)


def test_rosbags_style_message_with_numpy_data(rgb):
    """rosbags deserialises ``data`` as a numpy array: the same decoding."""
    px, expected = encoded(rgb, "bgr8")
    plain = raw_message(px, "bgr8", pad=5)
    m = types.SimpleNamespace(**{k: getattr(plain, k) for k in ("height", "width", "step")})
    m.encoding, m.is_bigendian = "bgr8", 0
    m.data = np.frombuffer(bytes(plain.data), np.uint8)
    np.testing.assert_array_equal(image_to_rgb(m), expected)


def test_output_is_a_copy(rgb):
    m = raw_message(rgb, "rgb8")
    out = image_to_rgb(m)
    out[:] = 0
    np.testing.assert_array_equal(image_to_rgb(m), rgb)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"step": 3 * 1242 - 1}, "step 3725 is smaller than a row"),
        ({"height": 376}, "data has .* bytes, step \\* height"),
        ({"encoding": "yuv422"}, "unsupported encoding 'yuv422'"),
        ({"encoding": "32FC1"}, "unsupported encoding"),
        ({"width": 0}, "empty image"),
        ({"height": 0}, "empty image"),
    ],
)
def test_corrupt_messages_raise_one_clear_error(rgb, change, match):
    m = raw_message(rgb, "rgb8")
    for k, v in change.items():
        setattr(m, k, v)
    with pytest.raises(ImageError, match=match):
        image_to_rgb(m)


def test_data_short(rgb):
    m = raw_message(rgb, "rgb8")
    m.data = m.data[:-1]
    with pytest.raises(ImageError, match="data has 1397249 bytes"):
        image_to_rgb(m)


def test_max_pixels(rgb):
    m = raw_message(rgb, "rgb8")
    with pytest.raises(ImageError, match="over max_image_pixels 465749"):
        image_to_rgb(m, max_pixels=1242 * 375 - 1)
    assert image_to_rgb(m, max_pixels=1242 * 375).shape == rgb.shape
    assert image_to_rgb(m, max_pixels=0).shape == rgb.shape  # 0 = no limit


# ---------------------------------------------------------------------------------------------
# compressed


def compressed(data, fmt):
    m = CompressedImage()
    m.header = Header(frame_id="cam")
    m.format = fmt
    m.data = array.array("B", data)
    return m


def encode(pixels, fmt, **kw):
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8"])
def test_jpeg_equals_pillow_decoding(rgb, fmt):
    data = encode(rgb, "JPEG", quality=90)
    ref = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
    out = compressed_to_rgb(compressed(data, fmt))
    np.testing.assert_array_equal(out, ref)
    assert np.abs(out.astype(int) - rgb).mean() < 5  # and it is the image (lossy)


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8"])
def test_png_is_lossless(rgb, fmt):
    np.testing.assert_array_equal(compressed_to_rgb(compressed(encode(rgb, "PNG"), fmt)), rgb)


def test_png_grey_alpha_and_16_bit(rgb):
    g = grey(rgb)
    out = compressed_to_rgb(compressed(encode(g, "PNG"), "mono8; png compressed mono8"))
    np.testing.assert_array_equal(out, np.repeat(g[:, :, None], 3, 2))
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], 2)
    np.testing.assert_array_equal(compressed_to_rgb(compressed(encode(rgba, "PNG"), "png")), rgb)
    g16 = as_16bit(g[:, :, None])[:, :, 0]
    buf = io.BytesIO()
    PILImage.fromarray(g16).save(buf, "PNG")
    assert PILImage.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    out = compressed_to_rgb(compressed(buf.getvalue(), "mono16; png compressed mono16"))
    np.testing.assert_array_equal(out, np.repeat(g[:, :, None], 3, 2))


def test_corrupt_compressed_images(rgb):
    jpeg = encode(rgb, "JPEG", quality=90)
    with pytest.raises(ImageError, match="cannot decode"):
        compressed_to_rgb(compressed(jpeg[: len(jpeg) // 2], "jpeg"))
    with pytest.raises(ImageError, match="cannot decode"):
        compressed_to_rgb(compressed(bytes(range(256)) * 10, "jpeg"))
    with pytest.raises(ImageError, match="empty compressed image"):
        compressed_to_rgb(compressed(b"", "jpeg"))
    with pytest.raises(ImageError, match="a BMP file"):
        compressed_to_rgb(compressed(encode(rgb, "BMP"), "bmp"))
    png = encode(rgb[:50, :60], "PNG")
    with pytest.raises(ImageError, match="compressed depth"):
        compressed_to_rgb(compressed(png, "16UC1; compressedDepth png"))
    with pytest.raises(ImageError, match="over max_image_pixels"):
        compressed_to_rgb(compressed(png, "png"), max_pixels=50 * 60 - 1)


def test_rgb_to_image_round_trip(rgb):
    h = Header(frame_id="cam_optical")
    h.stamp.sec, h.stamp.nanosec = 12, 34
    for enc in ("rgb8", "bgr8"):
        m = rgb_to_image(rgb, h, enc)
        assert m.header == h and m.header is not h and m.encoding == enc
        assert (m.height, m.width, m.step) == (375, 1242, 3 * 1242)
        np.testing.assert_array_equal(image_to_rgb(m), rgb)
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_image(rgb.astype(np.float32), h)
    with pytest.raises(ValueError, match="encoding"):
        rgb_to_image(rgb, h, "mono8")
