"""The :class:`Sample` every dataset loader returns, plus the small I/O helpers they share.

Box convention (the same everywhere in sr3d_ros): ``(x, y, z, dx, dy, dz, yaw)`` in metres and
radians, z up, ``(x, y, z)`` the GEOMETRIC centre of the box, ``(dx, dy, dz)`` full extents along
the box's own axes, ``yaw`` a counter-clockwise rotation about +z, so the box x-axis (the axis
``dx`` is measured along) points along ``(cos yaw, sin yaw, 0)``.

The I/O helpers are deliberately strict:

* :func:`load_pickle_strict` unpickles mmdetection3d info files with an Unpickler that can build
  only ``dict``/``list``/``tuple``/scalars/strings and numpy arrays (numpy's array-reconstruction
  functions are the only globals it resolves), so a crafted ``.pkl`` cannot run code;
* every loader raises :class:`FileNotFoundError` or :class:`ValueError` whose message names the
  offending file.
"""

from __future__ import annotations

import codecs
import dataclasses
import importlib
import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sr3d_ros.geometry.camera import PinholeCamera

__all__ = [
    "ColorScale",
    "PathLike",
    "Sample",
    "load_npy",
    "load_pickle_strict",
    "load_points_bin",
]

PathLike = str | os.PathLike[str]

#: How the rgb columns of :attr:`Sample.points` are scaled: ``"rgb255"`` = raw 0..255 (what every
#: loader returns), ``"unit_centered"`` = ``rgb / 255 - 0.5`` (what
#: :func:`sr3d_training.transforms.normalize_colors` produces, the network input).
ColorScale = Literal["rgb255", "unit_centered"]


@dataclass
class Sample:
    """One scene (ScanNet) or frame (SUN RGB-D) with its ground truth, in our box convention.

    Attributes:
        points: ``float32 (N, 6)``: x, y, z in metres in a gravity-aligned frame (z up; ScanNet:
            the axis-aligned scene frame; SUN RGB-D: the upright depth frame, x right, y forward)
            followed by r, g, b (0..255 unless :attr:`color_scale` says otherwise).
        gt_boxes: ``float32 (K, 7)`` boxes ``(x, y, z, dx, dy, dz, yaw)``, geometric centre,
            metres / radians (see the module docstring). ScanNet boxes have ``yaw == 0``.
        gt_labels: ``int64 (K,)`` indices into :attr:`class_names`.
        class_names: the dataset's evaluated classes, in label order.
        sample_id: scene id (``"scene0000_00"``) or frame id (``"000001"``).
        source: short name of the dataset / file format it came from (``"scannet"``, ...).
        color_scale: how the rgb columns are scaled (:data:`ColorScale`).
        meta: free-form extras (e.g. ``axis_align_matrix``, calibration, applied augmentation).
        image: monocular frames only: ``uint8 (H, W, 3)`` RGB image (``points`` is then empty
            unless a scan is attached); ``None`` for point-cloud samples.
        camera: the image's :class:`~sr3d_ros.geometry.camera.PinholeCamera` (same size as
            ``image``); required with ``image``.

    Raises:
        ValueError: on construction, when an array has the wrong shape, or labels are out of range.
        Arrays of another dtype are converted (copied) to the documented dtype.
    """

    points: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    class_names: tuple[str, ...]
    sample_id: str
    source: str = ""
    color_scale: ColorScale = "rgb255"
    meta: dict[str, Any] = field(default_factory=dict)
    image: np.ndarray | None = None
    camera: PinholeCamera | None = None

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float32)
        self.gt_boxes = np.ascontiguousarray(self.gt_boxes, dtype=np.float32)
        if self.gt_boxes.size == 0:
            self.gt_boxes = np.zeros((0, 7), np.float32)
        self.gt_labels = np.ascontiguousarray(self.gt_labels, dtype=np.int64).reshape(-1)
        self.class_names = tuple(str(c) for c in self.class_names)
        self.sample_id = str(self.sample_id)
        where = f"Sample {self.sample_id!r}"
        if self.points.ndim != 2 or self.points.shape[1] != 6:
            raise ValueError(f"{where}: points must be (N, 6), got {self.points.shape}")
        if self.gt_boxes.ndim != 2 or self.gt_boxes.shape[1] != 7:
            raise ValueError(f"{where}: gt_boxes must be (K, 7), got {self.gt_boxes.shape}")
        if len(self.gt_labels) != len(self.gt_boxes):
            raise ValueError(
                f"{where}: {len(self.gt_boxes)} boxes but {len(self.gt_labels)} labels"
            )
        if len(self.gt_labels) and (
            self.gt_labels.min() < 0 or self.gt_labels.max() >= len(self.class_names)
        ):
            raise ValueError(
                f"{where}: labels must lie in [0, {len(self.class_names)}), "
                f"got [{self.gt_labels.min()}, {self.gt_labels.max()}]"
            )
        if self.color_scale not in ("rgb255", "unit_centered"):
            raise ValueError(f"{where}: unknown color_scale {self.color_scale!r}")
        if self.image is not None:
            img = self.image
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(
                    f"{where}: image must be uint8 (H, W, 3), got {img.dtype} {img.shape}"
                )
            cam = self.camera
            if cam is None or (cam.height, cam.width) != img.shape[:2]:
                raise ValueError(f"{where}: image {img.shape[:2]} needs a camera of the same size")

    @property
    def num_points(self) -> int:
        """Number of points ``N``."""
        return int(self.points.shape[0])

    @property
    def num_boxes(self) -> int:
        """Number of ground-truth boxes ``K``."""
        return int(self.gt_boxes.shape[0])

    @property
    def xyz(self) -> np.ndarray:
        """View of the coordinates, ``float32 (N, 3)``, metres."""
        return self.points[:, :3]

    @property
    def rgb(self) -> np.ndarray:
        """View of the colours, ``float32 (N, 3)``, scaled as :attr:`color_scale` says."""
        return self.points[:, 3:6]

    def replace(self, **changes: Any) -> Sample:
        """A new :class:`Sample` with the given fields replaced (``meta`` is shallow-copied)."""
        changes.setdefault("meta", dict(self.meta))
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------------------------------------------
# strict pickle loading


def _numpy_module(*candidates: str) -> Any:
    for name in candidates:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"none of {candidates} importable")  # pragma: no cover


def _latin1_encode(obj: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: latin-1 only."""
    if encoding.replace("-", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} not allowed")
    return codecs.encode(obj, "latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    multiarray = _numpy_module("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = _numpy_module("numpy._core.numeric", "numpy.core.numeric")
    table: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = multiarray._reconstruct
        table[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        if hasattr(numeric, "_frombuffer"):
            table[(mod, "_frombuffer")] = numeric._frombuffer
    # numpy >= 1.25 pickles dtypes of arrays as e.g. numpy.dtypes.Float64DType
    dtypes = _numpy_module("numpy.dtypes") if hasattr(np, "dtypes") else None
    if dtypes is not None:
        for name in dir(dtypes):
            if name.endswith("DType"):
                table[("numpy.dtypes", name)] = getattr(dtypes, name)
    return table


class _StrictUnpickler(pickle.Unpickler):
    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed (only dict/list/numpy data)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


_PLAIN = (
    dict,
    list,
    tuple,
    str,
    bytes,
    int,
    float,
    bool,
    complex,
    type(None),
    np.ndarray,
    np.generic,
    np.dtype,
)


def _check_plain(obj: Any, where: str, depth: int = 0) -> None:
    if depth > 64:
        raise ValueError(f"{where}: nesting deeper than 64 levels")
    if not isinstance(obj, _PLAIN):
        raise ValueError(f"{where}: unexpected object of type {type(obj).__name__}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, where, depth + 1)
            _check_plain(v, where, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_plain(v, where, depth + 1)
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        for v in obj.ravel():
            _check_plain(v, where, depth + 1)


def load_pickle_strict(path: PathLike) -> Any:
    """Unpickle a file that may hold only plain data: dicts, lists, tuples, scalars, strings, bytes
    and numpy arrays / scalars / dtypes (the format of mmdetection3d info files).

    The unpickler resolves no globals except numpy's array/scalar reconstruction functions (and
    ``_codecs.encode`` restricted to latin-1, which protocol-2 pickles use for raw bytes), so
    loading an untrusted file cannot execute code.

    Args:
        path: the ``.pkl`` file.

    Returns:
        The unpickled object.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a pickle, is truncated, or references any other global
            (the message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"pickle file not found: {p}")
    data = p.read_bytes()
    try:
        obj = _StrictUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        ImportError,
        IndexError,
        TypeError,
        ValueError,
        KeyError,
    ) as exc:
        raise ValueError(f"{p}: not a plain-data pickle ({type(exc).__name__}: {exc})") from exc
    _check_plain(obj, str(p))
    return obj


# ------------------------------------------------------------------------------------------------
# arrays


def load_npy(
    path: PathLike,
    *,
    ndim: int | None = None,
    columns: int | None = None,
    min_columns: int | None = None,
) -> np.ndarray:
    """Load a ``.npy`` array (``allow_pickle=False``) and check its shape.

    Args:
        path: the ``.npy`` file.
        ndim: required number of dimensions (``None`` = any).
        columns: required size of the last dimension (``None`` = any).
        min_columns: required minimum size of the last dimension.

    Returns:
        The array, dtype as stored.

    Raises:
        FileNotFoundError: missing file. ValueError: unreadable file or wrong shape (names the
        file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"array file not found: {p}")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{p}: cannot read .npy ({exc})") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{p}: expected a {ndim}-D array, got shape {arr.shape}")
    if columns is not None and (arr.ndim == 0 or arr.shape[-1] != columns):
        raise ValueError(f"{p}: expected {columns} columns, got shape {arr.shape}")
    if min_columns is not None and (arr.ndim == 0 or arr.shape[-1] < min_columns):
        raise ValueError(f"{p}: expected at least {min_columns} columns, got shape {arr.shape}")
    out: np.ndarray = arr  # np.load is typed Any (it may return archives; .npy is an array)
    return out


def load_points_bin(path: PathLike, num_features: int = 6) -> np.ndarray:
    """Load a raw ``float32`` point file (mmdetection3d ``points/*.bin``) as ``(N, num_features)``.

    Args:
        path: the ``.bin`` file (little-endian float32, row-major).
        num_features: values per point (6 = x, y, z, r, g, b).

    Returns:
        ``float32 (N, num_features)``, values as stored (colour scale depends on the dataset).

    Raises:
        FileNotFoundError: missing file. ValueError: size not a multiple of
        ``4 * num_features`` bytes or non-finite coordinates (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"point file not found: {p}")
    raw = np.fromfile(p, dtype="<f4")
    if raw.size % num_features:
        raise ValueError(
            f"{p}: {raw.size} float32 values is not a multiple of {num_features} features"
        )
    pts = raw.reshape(-1, num_features).astype(np.float32, copy=False)
    if not np.isfinite(pts[:, :3]).all():
        raise ValueError(f"{p}: non-finite point coordinates")
    return pts
