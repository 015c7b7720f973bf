"""Size checks of .ply / .pcd files before open3d reads them (open3d accepts truncated files and
fills the missing points with uninitialised memory).

Each check parses the header, computes the bytes (binary) or lines (ascii) the header promises
and compares them with what the file holds. Our formulation of the PLY 1.0 and PCD 0.7 rules.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TruncatedFileError", "check_pcd_size", "check_ply_size"]

_PLY_SIZES = {
    "char": 1,
    "uchar": 1,
    "int8": 1,
    "uint8": 1,
    "short": 2,
    "ushort": 2,
    "int16": 2,
    "uint16": 2,
    "int": 4,
    "uint": 4,
    "int32": 4,
    "uint32": 4,
    "float": 4,
    "float32": 4,
    "double": 8,
    "float64": 8,
}
_MAX_HEADER = 1 << 16


class TruncatedFileError(ValueError):
    """A point-cloud file holds less data than its header declares (message: file, what is
    short, expected vs found)."""


def _header(path: Path, end_prefix: bytes) -> tuple[list[str], bytes]:
    """Header lines (decoded) and the bytes after the first line starting with ``end_prefix``."""
    raw = path.read_bytes()
    lines: list[str] = []
    pos = 0
    while True:
        nl = raw.find(b"\n", pos)
        if nl < 0 or nl > _MAX_HEADER:
            raise ValueError(f"{path}: no complete header (missing {end_prefix.decode()!r} line)")
        line = raw[pos:nl].strip()
        lines.append(line.decode("ascii", errors="replace"))
        pos = nl + 1
        if line.startswith(end_prefix):
            return lines, raw[pos:]


def _data_lines(body: bytes) -> int:
    return sum(1 for line in body.split(b"\n") if line.strip())


def check_ply_size(path: str | Path) -> None:
    """Check that a .ply file holds every element its header declares.

    Binary files: the bytes of all elements without list properties must be present (elements
    with lists are checked for at least one byte per entry). ASCII files: one non-empty line per
    element entry.

    Raises:
        TruncatedFileError: fewer bytes / lines than declared (file, element, expected, found).
        ValueError: a header that cannot be parsed (no ``end_header``, bad element line).
    """
    path = Path(path)
    lines, body = _header(path, b"end_header")
    if not lines or lines[0] != "ply":
        raise ValueError(f"{path}: not a PLY file (no 'ply' magic line)")
    fmt = ""
    elements: list[tuple[str, int, int, bool]] = []  # name, count, row bytes, has lists
    for line in lines[1:]:
        words = line.split()
        if not words:
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise ValueError(f"{path}: bad PLY element line {line!r}")
            elements.append((words[1], int(words[2]), 0, False))
        elif words[0] == "property" and elements:
            name, count, row, lists = elements[-1]
            if len(words) >= 2 and words[1] == "list":
                elements[-1] = (name, count, row + 1, True)
            elif len(words) >= 3 and words[1] in _PLY_SIZES:
                elements[-1] = (name, count, row + _PLY_SIZES[words[1]], lists)
            else:
                raise ValueError(f"{path}: bad PLY property line {line!r}")
    if fmt == "ascii":
        expected = sum(count for _, count, _, _ in elements)
        found = _data_lines(body)
        if found < expected:
            raise TruncatedFileError(
                f"{path}: truncated PLY: the header declares {expected} element lines "
                f"({', '.join(f'{c} {n}' for n, c, _, _ in elements)}), the file holds {found}"
            )
        return
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise ValueError(f"{path}: unknown PLY format {fmt!r}")
    expected = sum(count * row for _, count, row, _ in elements)
    if len(body) < expected:
        short = [n for n, c, r, _ in elements if c * r > 0]
        raise TruncatedFileError(
            f"{path}: truncated PLY: the header declares {expected} bytes of "
            f"{', '.join(f'{c} {n}' for n, c, _, _ in elements)} ({'/'.join(short)} data), "
            f"the file holds {len(body)}"
        )


def check_pcd_size(path: str | Path) -> None:
    """Check that a .pcd file holds the ``POINTS`` its header declares.

    ``DATA ascii``: one non-empty line per point; ``binary``: points * sum(SIZE * COUNT) bytes;
    ``binary_compressed``: the compressed block its 8-byte size prefix announces, and an
    uncompressed size of points * sum(SIZE * COUNT).

    Raises:
        TruncatedFileError: fewer bytes / lines than declared (file, expected, found).
        ValueError: a header that cannot be parsed.
    """
    path = Path(path)
    lines, body = _header(path, b"DATA")
    fields: dict[str, list[str]] = {}
    for line in lines:
        words = line.split()
        if words and not words[0].startswith("#"):
            fields[words[0].upper()] = words[1:]
    try:
        points = int(fields["POINTS"][0])
        sizes = [int(s) for s in fields.get("SIZE", [])]
        counts = [int(c) for c in fields.get("COUNT", ["1"] * len(sizes))]
        data = fields["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{path}: bad PCD header (POINTS / SIZE / COUNT / DATA): {exc}") from None
    row = sum(s * c for s, c in zip(sizes, counts, strict=False))
    if data == "ascii":
        found = _data_lines(body)
        if found < points:
            raise TruncatedFileError(
                f"{path}: truncated PCD: the header declares {points} points, the file holds "
                f"{found} data lines"
            )
        return
    if data == "binary":
        if len(body) < points * row:
            raise TruncatedFileError(
                f"{path}: truncated PCD: the header declares {points} points of {row} bytes "
                f"= {points * row} bytes, the file holds {len(body)}"
            )
        return
    if data == "binary_compressed":
        if len(body) < 8:
            raise TruncatedFileError(f"{path}: truncated PCD: no compressed-size prefix")
        compressed = int.from_bytes(body[:4], "little")
        uncompressed = int.from_bytes(body[4:8], "little")
        if len(body) - 8 < compressed or uncompressed < points * row:
            raise TruncatedFileError(
                f"{path}: truncated PCD: {points} points need {points * row} bytes "
                f"uncompressed ({uncompressed} announced) in a {compressed}-byte block; the "
                f"file holds {len(body) - 8}"
            )
        return
    raise ValueError(f"{path}: unknown PCD DATA type {data!r}")
