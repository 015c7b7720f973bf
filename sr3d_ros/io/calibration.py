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
  :func:`read_camera_info_yaml` returns a :class:`CameraInfoData` with the message's field names;
  :func:`camera_info_camera` picks the matrix: ``P`` (the rectified image's camera) when it is set
  and the image has no distortion, else ``K``. The image must be rectified (undistorted): a
  non-zero distortion is reported in the returned notes, not undone.

Pixel convention: the centre of pixel ``(col, row)`` is at ``(col, row)`` (camera.py). An image of
another size than the calibration is refused unless it is a uniform resize of it (aspect ratios
within 1 %), which scales the camera.

Errors: ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file and the problem
(missing key such as ``P2``, wrong number of values, non-finite values, zero focal length,
unreadable YAML).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..geometry.camera import PinholeCamera

__all__ = [
    "CameraInfoData",
    "KittiCalib",
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
class CameraInfoData:
    """The calibration fields of a ``sensor_msgs/CameraInfo`` (same names), read from YAML.

    Attributes:
        width, height: calibrated image size, pixels (0 = unknown).
        distortion_model: e.g. ``plumb_bob``. d: distortion coefficients.
        k: ``(3, 3)`` K. r: ``(3, 3)`` rectification. p: ``(3, 4)`` P (zero when unset).
    """

    width: int
    height: int
    distortion_model: str
    d: np.ndarray
    k: np.ndarray
    r: np.ndarray
    p: np.ndarray


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
    )


def camera_info_camera(
    info: CameraInfoData, width: int, height: int, where: str = "camera_info"
) -> tuple[PinholeCamera, tuple[str, ...]]:
    """The camera of a rectified ``width x height`` image described by ``info``.

    ``P`` when set (``P[0, 0] > 0``) and the distortion is zero, else ``[K | 0]``; a calibration
    of another size is scaled when the aspect ratios agree within 1 %.

    Returns:
        ``(camera, notes)``: notes say what was assumed (distortion ignored, camera scaled).

    Raises:
        ValueError: zero / negative focal length, ``P`` not ``K [I | t]``, a size that is not a
            uniform resize of the calibration (names ``where``).
    """
    notes: list[str] = []
    distorted = bool(info.d.size) and bool(np.any(info.d != 0))
    if info.p[0, 0] > 0 and not distorted:
        P = info.p
    else:
        P = np.concatenate([info.k, np.zeros((3, 1))], axis=1)
    if distorted:
        notes.append(
            f"{where}: distortion ({info.distortion_model or 'unknown model'}) ignored: the image "
            "is taken to be rectified; boxes near the border are off if it is not"
        )
    if P[0, 0] <= 0 or P[1, 1] <= 0:
        raise ValueError(f"{where}: zero focal length (uncalibrated camera): fx={P[0, 0]}")
    cw, ch = info.width or width, info.height or height
    cam = _camera(P, cw, ch, where)
    if (cw, ch) != (width, height):
        sx, sy = width / cw, height / ch
        if abs(sx / sy - 1.0) > 0.01:
            raise ValueError(
                f"{where}: calibrated for {cw} x {ch} pixels, the image is {width} x {height} "
                "(different aspect ratio)"
            )
        notes.append(f"{where}: calibration for {cw} x {ch} scaled to {width} x {height}")
        cam = cam.resized(width, height)
    return cam, tuple(notes)


def read_camera_file(path: PathLike, width: int, height: int) -> tuple[PinholeCamera, list[str]]:
    """Camera of a ``width x height`` image from a KITTI ``calib.txt`` (``P2``) or a ROS
    camera_info ``.yaml`` / ``.yml`` (decided by the suffix).

    Returns:
        ``(camera, notes)`` (see :func:`camera_info_camera`).

    Raises:
        FileNotFoundError / ValueError: see the module docstring.
    """
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        cam, notes = camera_info_camera(read_camera_info_yaml(p), width, height, str(p))
        return cam, list(notes)
    return kitti_camera(p, width, height), []
