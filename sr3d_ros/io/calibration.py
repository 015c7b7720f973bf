"""Camera calibration files -> :class:`~sr3d_ros.geometry.camera.PinholeCamera`.

* **KITTI** object ``calib/ID.txt``: lines ``KEY: v1 v2 ...`` with ``P0..P3`` (3x4 row-major;
  ``P2`` = the left colour camera of ``image_2``, ``P = K [I | t]`` projecting points of the
  rectified reference camera), ``R0_rect`` (3x3) and ``Tr_velo_to_cam`` (3x4).
  :func:`read_kitti_calib` reads all of them (the dataset needs them); :func:`kitti_camera`
  needs only the camera's own ``P`` (what a detector needs).
* **ROS camera_info YAML**, either the ``camera_calibration_parsers`` file (``image_width``,
  ``image_height``, ``camera_matrix``, ``distortion_coefficients``, ``rectification_matrix``,
  ``projection_matrix``, each ``{rows, cols, data}``) or a ``sensor_msgs/CameraInfo`` dumped as
  YAML (``ros2 topic echo --once``: ``width``, ``height``, ``d``, ``k``, ``r``, ``p``).
  :func:`read_camera_info_yaml` returns a :class:`CameraInfoData` with the message's field names
  (``roi`` and ``binning_x`` / ``binning_y`` too, when the dump has them), and
  :func:`camera_info_camera` applies the very rules the image node applies to a live CameraInfo
  (:func:`sr3d_ros.geometry.camera_info.camera_setup`: ``P`` or ``K``, undistortion of
  ``plumb_bob`` / ``rational_polynomial`` images, roi, binning, scaling), so a file and the
  message it was dumped from give the same camera.

Pixel convention: the centre of pixel ``(col, row)`` is at ``(col, row)`` (camera.py). An image of
another size than the calibration is refused unless it is a uniform resize of it (aspect ratios
within 1 %), which scales the camera.

Errors: ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file and the problem
(missing key such as ``P2``, wrong number of values, non-finite values, zero focal length,
unreadable YAML); for camera_info files a :class:`~sr3d_ros.geometry.camera_info.CameraInfoError`
(a ``ValueError``) naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..geometry.camera import PinholeCamera
from ..geometry.camera_info import CameraInfoError, CameraSetup, camera_setup

__all__ = [
    "CameraInfoData",
    "KittiCalib",
    "RegionOfInterest",
    "camera_info_camera",
    "kitti_camera",
    "read_camera_file",
    "read_camera_info_yaml",
    "read_kitti_calib",
    "read_kitti_calib_values",
]

PathLike = str | Path

_KITTI_KEYS = {"P0": 12, "P1": 12, "P2": 12, "P3": 12, "R0_rect": 9, "Tr_velo_to_cam": 12}


@dataclass(frozen=True)
class KittiCalib:
    """KITTI object calibration.

    Attributes:
        P: ``float64 (4, 3, 4)`` projection matrices P0..P3 (rectified camera frame -> pixels of
            cameras 0..3; P2 = left colour camera, whose images are ``image_2``).
        R0_rect: ``float64 (3, 3)`` rectifying rotation of camera 0.
        Tr_velo_to_cam: ``float64 (3, 4)`` LiDAR -> (unrectified) camera 0.
    """

    P: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray

    def camera(self, width: int, height: int, index: int = 2) -> PinholeCamera:
        """The :class:`PinholeCamera` of camera ``index`` (default 2) for an image size."""
        return PinholeCamera(self.P[index], width, height)

    @property
    def velo_to_rect(self) -> np.ndarray:
        """``(4, 4)`` LiDAR -> rectified camera: ``R0_rect @ Tr_velo_to_cam``."""
        R = np.eye(4)
        R[:3, :3] = self.R0_rect
        T = np.eye(4)
        T[:3] = self.Tr_velo_to_cam
        return R @ T

    @property
    def rect_to_velo(self) -> np.ndarray:
        """``(4, 4)`` rectified camera -> LiDAR (inverse of :attr:`velo_to_rect`)."""
        return np.asarray(np.linalg.inv(self.velo_to_rect))


def read_kitti_calib_values(path: PathLike, keys: dict[str, int]) -> dict[str, np.ndarray]:
    """The ``keys`` (name -> number of values) of a KITTI calibration file.

    Returns:
        name -> ``float64`` flat array of that many finite values.

    Raises:
        FileNotFoundError: missing file. ValueError: a missing key, a wrong number of values, a
        non-numeric or non-finite value (names the file and the key).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"KITTI calibration file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read calibration file ({exc})") from None
    vals: dict[str, np.ndarray] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, rest = line.split(":", 1)
        try:
            vals[key.strip()] = np.array([float(v) for v in rest.split()])
        except ValueError as exc:
            raise ValueError(f"{p}: key {key.strip()!r}: {exc}") from None
    for key, n in keys.items():
        if key not in vals:
            raise ValueError(f"{p}: {key} needs {n} values, got missing (no {key} in the file)")
        if vals[key].size != n:
            raise ValueError(f"{p}: {key} needs {n} values, got {vals[key].size}")
        if not np.isfinite(vals[key]).all():
            raise ValueError(f"{p}: {key} holds non-finite values")
    return {key: vals[key] for key in keys}


def read_kitti_calib(path: PathLike) -> KittiCalib:
    """Read a KITTI object calibration file (``P0..P3``, ``R0_rect``, ``Tr_velo_to_cam``).

    Raises:
        FileNotFoundError: missing file. ValueError: a missing key or wrong number of values
        (names the file).
    """
    vals = read_kitti_calib_values(path, _KITTI_KEYS)
    return KittiCalib(
        P=np.stack([vals[f"P{i}"].reshape(3, 4) for i in range(4)]),
        R0_rect=vals["R0_rect"].reshape(3, 3),
        Tr_velo_to_cam=vals["Tr_velo_to_cam"].reshape(3, 4),
    )


def _camera(P: np.ndarray, width: int, height: int, where: str) -> PinholeCamera:
    try:
        return PinholeCamera(P, width, height)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def kitti_camera(path: PathLike, width: int, height: int, index: int = 2) -> PinholeCamera:
    """The camera ``P{index}`` (default ``P2``, ``image_2``) of a KITTI calibration file for an
    image of ``width x height`` pixels (only that key is required).

    Raises:
        FileNotFoundError: missing file. ValueError: no / malformed ``P{index}``, zero focal
        length (names the file).
    """
    key = f"P{index}"
    P = read_kitti_calib_values(path, {key: 12})[key].reshape(3, 4)
    return _camera(P, width, height, f"{path}: {key}")


@dataclass(frozen=True)
class RegionOfInterest:
    """``sensor_msgs/RegionOfInterest`` (pixels of the calibrated image; all 0 = the full image)."""

    x_offset: int = 0
    y_offset: int = 0
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class CameraInfoData:
    """The calibration fields of a ``sensor_msgs/CameraInfo`` (same names), read from YAML.

    Attributes:
        width, height: calibrated image size, pixels (0 = unknown).
        distortion_model: e.g. ``plumb_bob``. d: distortion coefficients.
        k: ``(3, 3)`` K. r: ``(3, 3)`` rectification. p: ``(3, 4)`` P (zero when unset).
        binning_x, binning_y: binning (0 or 1 = none). roi: the region of interest.
    """

    width: int
    height: int
    distortion_model: str
    d: np.ndarray
    k: np.ndarray
    r: np.ndarray
    p: np.ndarray
    binning_x: int = 0
    binning_y: int = 0
    roi: RegionOfInterest = RegionOfInterest()


def _yaml_int(data: dict[str, Any], key: str, where: str) -> int:
    """A non-negative integer field (0 when absent)."""
    value = data.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    return value


def _yaml_roi(data: dict[str, Any], where: str) -> RegionOfInterest:
    roi = data.get("roi", {})
    if not isinstance(roi, dict):
        raise ValueError(f"{where}: roi must be a mapping (x_offset, y_offset, width, height)")
    fields = ("x_offset", "y_offset", "width", "height")
    return RegionOfInterest(*(_yaml_int(roi, f, f"{where}: roi") for f in fields))


def _yaml_matrix(data: dict[str, Any], keys: tuple[str, ...], n: int, where: str) -> np.ndarray:
    """The first of ``keys`` present: a flat list, or ``{rows, cols, data}``."""
    for key in keys:
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, dict):
            value = value.get("data")
        try:
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key} is not a list of numbers") from None
        if n and arr.size != n:
            raise ValueError(f"{where}: {key} needs {n} values, got {arr.size}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{where}: {key} holds non-finite values")
        return arr
    if n == 0:
        return np.zeros(0)
    raise ValueError(f"{where}: no {' / '.join(keys)}")


def read_camera_info_yaml(path: PathLike) -> CameraInfoData:
    """Read a ROS camera_info YAML (calibration-parsers file or a dumped CameraInfo).

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable YAML, a missing ``K``, a matrix
        of the wrong size or with non-finite values (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"camera_info file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not a readable YAML file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: top level must be a mapping of camera_info fields")
    w = data.get("image_width", data.get("width", 0))
    h = data.get("image_height", data.get("height", 0))
    if not isinstance(w, int) or not isinstance(h, int) or w < 0 or h < 0:
        raise ValueError(f"{p}: image width / height must be non-negative integers")
    p_mat = data.get("projection_matrix", data.get("p"))
    return CameraInfoData(
        width=w,
        height=h,
        distortion_model=str(data.get("distortion_model", "")),
        d=_yaml_matrix(data, ("distortion_coefficients", "d", "D"), 0, str(p)),
        k=_yaml_matrix(data, ("camera_matrix", "k", "K"), 9, str(p)).reshape(3, 3),
        r=(
            _yaml_matrix(data, ("rectification_matrix", "r", "R"), 9, str(p)).reshape(3, 3)
            if any(k in data for k in ("rectification_matrix", "r", "R"))
            else np.eye(3)
        ),
        p=(
            _yaml_matrix(data, ("projection_matrix", "p", "P"), 12, str(p)).reshape(3, 4)
            if p_mat is not None
            else np.zeros((3, 4))
        ),
        binning_x=_yaml_int(data, "binning_x", str(p)),
        binning_y=_yaml_int(data, "binning_y", str(p)),
        roi=_yaml_roi(data, str(p)),
    )


def camera_info_camera(
    info: CameraInfoData,
    width: int,
    height: int,
    where: str = "camera_info",
    undistort: bool = True,
) -> CameraSetup:
    """The camera of a ``width x height`` image described by ``info``, by the image node's rules
    (:func:`~sr3d_ros.geometry.camera_info.camera_setup` with ``intrinsics="auto"``).

    Args:
        info: the calibration. width, height: the image's size, pixels. where: names the source
            in notes and errors. undistort: build the remap for a distorted image (else the
            distortion is ignored and a note says so).

    Returns:
        :class:`~sr3d_ros.geometry.camera_info.CameraSetup`: the camera, the undistortion remap
        to apply to the image (or ``None``) and notes prefixed with ``where``.

    Raises:
        CameraInfoError: uncalibrated (zero focal length), ``P`` not ``K [I | t]``, or a size
            that is not a uniform resize of the calibration (message starts with ``where``).
    """
    try:
        setup = camera_setup(info, width, height, undistort=undistort)
    except CameraInfoError as exc:
        raise CameraInfoError(f"{where}: {exc}") from None
    return CameraSetup(setup.camera, setup.undistort, tuple(f"{where}: {n}" for n in setup.notes))


def read_camera_file(
    path: PathLike, width: int, height: int, undistort: bool = True
) -> CameraSetup:
    """Camera of a ``width x height`` image from a KITTI ``calib.txt`` (``P2``; no distortion) or a
    ROS camera_info ``.yaml`` / ``.yml`` (decided by the suffix; see :func:`camera_info_camera`).

    Returns:
        :class:`~sr3d_ros.geometry.camera_info.CameraSetup` (apply ``undistort`` to the image
        when it is not ``None``).

    Raises:
        FileNotFoundError / ValueError: see the module docstring.
    """
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        return camera_info_camera(read_camera_info_yaml(p), width, height, str(p), undistort)
    return CameraSetup(kitti_camera(p, width, height), None, ())
