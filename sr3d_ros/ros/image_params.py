"""Parameters of the ``image_detector`` node: one table, strict validation, no ROS.

:data:`IMAGE_PARAMS` is the common detector-node table (:func:`sr3d_ros.ros.params.common_params`)
plus the image-specific parameters; the node declares exactly these, ``config/image_detector.yaml``
documents exactly these (a test checks both), and :func:`validate_image_params` builds a typed
:class:`ImageNodeParams` or raises :class:`~sr3d_ros.ros.params.ParamError` naming every bad
value at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sr3d_ros.ros.image_msgs import DEFAULT_MAX_PIXELS
from sr3d_ros.ros.params import CommonParams, ParamSpec, common_params, convert_params, raise_errors

__all__ = [
    "DEFAULT_MONO_MODEL",
    "IMAGE_PARAMS",
    "ImageNodeParams",
    "validate_image_params",
]

#: The embedded default monocular model, relative to the package's parent folder (named in the
#: documentation; the node loads :func:`sr3d_ros.mono_inference.default_mono_checkpoint_path`).
DEFAULT_MONO_MODEL = "sr3d_ros/models/weights/lead_m3d_kitti_n.pt"


IMAGE_PARAMS: tuple[ParamSpec, ...] = (
    *common_params(DEFAULT_MONO_MODEL + ", KITTI Car / Pedestrian / Cyclist", "~/input/image"),
    ParamSpec(
        "image_transport",
        "str",
        "raw",
        "'raw': subscribe ~/input/image (sensor_msgs/Image); 'compressed': subscribe "
        "~/input/image/compressed (sensor_msgs/CompressedImage, JPEG or PNG) instead.",
        False,
        "image_transport",
    ),
    ParamSpec(
        "camera_info_tolerance",
        "float",
        0.0,
        "Seconds. 0 = pair each image with the latest CameraInfo of the same frame_id; > 0 = "
        "with the CameraInfo of that frame_id whose stamp is closest to the image's, if within "
        "this many seconds. The node waits up to 1 s for a CameraInfo racing its image; an image "
        "still without one is dropped with a warning.",
        False,
        "camera_info_tolerance",
    ),
    ParamSpec(
        "intrinsics",
        "str",
        "auto",
        "Which CameraInfo matrix describes the image: 'auto' (P for an undistorted, i.e. "
        "rectified, image when P is set, else K), 'P' (the image is rectified) or 'K' (raw).",
        False,
        "intrinsics",
    ),
    ParamSpec(
        "undistort",
        "bool",
        True,
        "Remap images with plumb_bob / rational_polynomial distortion (non-zero D) into the "
        "rectified image of P before detection. false = detect on the raw image and ignore "
        "the distortion (a warning says so; boxes near the border are then off).",
        False,
        "undistort",
    ),
    ParamSpec(
        "max_image_pixels",
        "int",
        DEFAULT_MAX_PIXELS,
        "Images with more pixels (width * height) are refused as bad input (an empty "
        "Detection3DArray is published); 0 = no limit.",
        True,
        "max_image_pixels",
    ),
    ParamSpec(
        "publish_overlay",
        "bool",
        False,
        "Publish ~/output/image_overlay: the input image (rgb8, same header) with the "
        "detected boxes projected and drawn, for setups without RViz.",
        True,
        "publish_overlay",
    ),
)


@dataclass(frozen=True)
class ImageNodeParams(CommonParams):
    """Validated ``image_detector`` parameters (see :data:`IMAGE_PARAMS` for each)."""

    image_transport: str = "raw"
    camera_info_tolerance: float = 0.0
    intrinsics: str = "auto"
    undistort: bool = True
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    publish_overlay: bool = False


def validate_image_params(
    values: Mapping[str, Any], class_names: Sequence[str] | None = None
) -> ImageNodeParams:
    """Check raw ``image_detector`` parameter values and build :class:`ImageNodeParams`.

    Args:
        values: ``{ros parameter name: value}``; missing names or ``None`` take the default.
        class_names: the detector's classes (``classes_to_keep`` must name only these).

    Raises:
        ParamError: unknown names or invalid values, all listed (one per line).
    """
    out, errors, check = convert_params(values, IMAGE_PARAMS, class_names)
    check(
        out["image_transport"] in ("raw", "compressed"),
        "image_transport",
        "must be 'raw' or 'compressed'",
    )
    check(out["camera_info_tolerance"] >= 0.0, "camera_info_tolerance", "must be >= 0 seconds")
    check(out["intrinsics"] in ("auto", "P", "K"), "intrinsics", "must be 'auto', 'P' or 'K'")
    check(out["max_image_pixels"] >= 0, "max_image_pixels", "must be >= 0 (0 = no limit)")
    raise_errors(errors)
    return ImageNodeParams(**out)
