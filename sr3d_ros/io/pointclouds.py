"""Read point clouds from files into the detector's input layout.

Output layout (what :class:`sr3d_ros.inference.PointCloudDetector` takes): ``float32`` array
``(N, 3)`` = x, y, z in metres, or ``(N, 6)`` = x, y, z + r, g, b in 0..255, in the file's own
frame (no transformation is applied; the detector expects a gravity-aligned frame, z up).

Formats:
    * ``.ply`` / ``.pcd`` - read with open3d after checking that the file holds every point its
      header declares. Colours: open3d returns 8-bit colours as 0..1 and float colours as
      stored, so the scale is decided per cloud: all finite values <= 1.0 -> 0..1, scaled by
      255; some value > 1 -> already 0..255, kept.
    * ``.bin`` - headerless little-endian float32 records of ``bin_columns`` values each:
      6 = x, y, z, r, g, b (0..255; the default, as ScanNet / SUN RGB-D ``.bin`` exports of
      mmdetection3d), 4 = KITTI velodyne x, y, z, reflectance (reflectance dropped -> xyz only),
      3 = x, y, z.
    * ``.npy`` - a numeric ``(N, 3)`` or ``(N, 6)`` array (no pickles).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .file_checks import TruncatedFileError, check_pcd_size, check_ply_size

__all__ = ["DEFAULT_BIN_COLUMNS", "SUPPORTED_SUFFIXES", "TruncatedFileError", "read_points"]

SUPPORTED_SUFFIXES: tuple[str, ...] = (".ply", ".pcd", ".bin", ".npy")
#: Default number of float32 values per ``.bin`` record (x, y, z, r, g, b).
DEFAULT_BIN_COLUMNS = 6


def _read_open3d(path: Path) -> np.ndarray:
    try:
        import open3d as o3d
    except ImportError as exc:  # pragma: no cover - open3d is installed in the venv
        raise ImportError(f"reading {path.suffix} files needs open3d (pip install open3d)") from exc
    if path.suffix.lower() == ".ply":
        check_ply_size(path)
    else:
        check_pcd_size(path)
    cloud = o3d.io.read_point_cloud(path)
    xyz = np.asarray(cloud.points, dtype=np.float32)
    if xyz.shape[0] == 0:
        raise ValueError(
            f"{path}: no points could be read (empty or not a valid {path.suffix} point cloud)"
        )
    if cloud.has_colors():
        rgb = np.asarray(cloud.colors, dtype=np.float32)
        finite = rgb[np.isfinite(rgb)]
        if not finite.size or float(finite.max()) <= 1.0:  # 0..1 (open3d's scale for uchar)
            rgb = rgb * 255.0
        return np.ascontiguousarray(np.concatenate([xyz, rgb], axis=1), dtype=np.float32)
    return np.ascontiguousarray(xyz)


def _read_bin(path: Path, columns: int) -> np.ndarray:
    if columns not in (3, 4, 6):
        raise ValueError(
            "bin_columns must be 3 (xyz), 4 (KITTI xyz + intensity) or 6 (xyz + rgb), "
            f"got {columns}"
        )
    raw = np.fromfile(path, dtype="<f4")
    if raw.size == 0:
        raise ValueError(f"{path}: empty file")
    if raw.size % columns != 0 or path.stat().st_size % 4 != 0:
        others = [c for c in (3, 4, 6) if raw.size % c == 0]
        hint = f"; it would divide into {others} columns" if others else ""
        raise TruncatedFileError(
            f"{path}: truncated or not {columns}-column float32 records: {path.stat().st_size} "
            f"bytes = {raw.size} float32 values do not divide into records of {columns} columns "
            f"(bin_columns={columns}){hint}"
        )
    pts = raw.reshape(-1, columns)
    if columns == 4:
        pts = pts[:, :3]  # KITTI: drop reflectance
    return np.ascontiguousarray(pts, dtype=np.float32)


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except EOFError as exc:
        raise TruncatedFileError(f"{path}: truncated .npy (no complete header): {exc}") from exc
    except ValueError as exc:
        if any(w in str(exc) for w in ("EOF", "size", "reshape", "read all data", "not fully")):
            raise TruncatedFileError(
                f"{path}: truncated .npy (shorter than its header declares): {exc}"
            ) from exc
        raise ValueError(f"{path}: not a plain numeric .npy array: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] not in (3, 6):
        raise ValueError(
            f"{path}: expected an (N, 3) or (N, 6) array (xyz [+ rgb 0..255]), "
            f"got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def read_points(path: str | Path, bin_columns: int = DEFAULT_BIN_COLUMNS) -> np.ndarray:
    """Read a point cloud file into ``(N, 3)`` or ``(N, 6)`` float32.

    Args:
        path: ``.ply``, ``.pcd``, ``.bin`` or ``.npy`` file (see the module docstring).
        bin_columns: float32 values per ``.bin`` record: 6 (default: xyz + rgb 0..255),
            4 (KITTI: xyz + reflectance, returned as xyz) or 3 (xyz). Ignored for other formats.

    Returns:
        ``(N, 3)`` xyz metres or ``(N, 6)`` xyz + rgb 0..255, float32, C-contiguous, in the
        file's frame. Non-finite values are passed through (the detector drops those rows).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        TruncatedFileError (a ValueError): a .ply / .pcd / .npy holding less data than its
            header declares, or a ``.bin`` whose size is not a whole number of records (the
            message names the file, what is short, expected and found).
        ValueError: unsupported suffix, a ``.npy`` of the wrong shape, or an unreadable / empty
            cloud (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".ply", ".pcd"):
        return _read_open3d(path)
    if suffix == ".bin":
        return _read_bin(path, bin_columns)
    if suffix == ".npy":
        return _read_npy(path)
    raise ValueError(
        f"{path}: unsupported point cloud format {suffix!r}; "
        f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
    )
