"""Chunk CRCs of MCAP bags: write them after ``rosbags`` (which stores 0, "not computed") and
verify them before a bag is played or described.

MCAP (https://mcap.dev/spec) is the magic ``\\x89MCAP0\\r\\n`` followed by records ``opcode
(uint8), length (uint64 LE), body``. A Chunk record (opcode 0x06) body is ``message_start_time
(u64), message_end_time (u64), uncompressed_size (u64), uncompressed_crc (u32), compression
(u32 length + string), records_length (u64), records``; ``uncompressed_crc`` is the CRC-32
(zlib / ``binascii.crc32``) of the uncompressed records, 0 meaning not computed. Readers that
honour it (rosbags, the mcap library, ros2 bag) then refuse a damaged chunk instead of playing
garbage. Our formulation of the spec's rules; only uncompressed chunks are written with CRCs
(``sr3d-bag`` writes uncompressed bags).
"""

from __future__ import annotations

import struct
from binascii import crc32
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BagIntegrityError",
    "ChunkReport",
    "add_chunk_crcs",
    "check_bag",
    "mcap_files",
    "require_intact",
]

_MAGIC = b"\x89MCAP0\r\n"
_CHUNK, _FOOTER, _DATA_END = 0x06, 0x02, 0x0F


class BagIntegrityError(ValueError):
    """A bag file is damaged (the message names the file, the chunk and its byte offset)."""


@dataclass
class ChunkReport:
    """What :func:`check_bag` found in one MCAP file: chunk counts and one line per problem."""

    path: Path
    chunks: int = 0
    with_crc: int = 0
    problems: list[str] = field(default_factory=list)


def mcap_files(path: str | Path) -> list[Path]:
    """The ``.mcap`` files of a bag folder (sorted), or ``[path]`` for an ``.mcap`` file.

    Raises:
        FileNotFoundError: no such file or folder.
    """
    p = Path(path)
    if p.is_file():
        return [p] if p.suffix == ".mcap" else []
    if not p.is_dir():
        raise FileNotFoundError(f"bag not found: {p}")
    return sorted(p.glob("*.mcap"))


def _chunks(data: bytes | bytearray, path: Path) -> list[tuple[int, int, int, int, bool, str]]:
    """Per chunk: (record offset, crc field offset, records offset, records length, fits,
    compression). Raises BagIntegrityError on a broken record structure."""
    if not data.startswith(_MAGIC):
        raise BagIntegrityError(f"{path}: not an MCAP file (bad magic)")
    out = []
    pos = len(_MAGIC)
    while pos < len(data):
        if pos + 9 > len(data):
            raise BagIntegrityError(f"{path}: truncated record header at byte {pos}")
        op = data[pos]
        (length,) = struct.unpack_from("<Q", data, pos + 1)
        body = pos + 9
        if body + length > len(data):
            raise BagIntegrityError(
                f"{path}: record at byte {pos} (opcode {op:#04x}) declares {length} bytes, only "
                f"{len(data) - body} left: the file is truncated"
            )
        if op == _CHUNK:
            (clen,) = struct.unpack_from("<I", data, body + 28)
            compression = bytes(data[body + 32 : body + 32 + clen]).decode("utf-8", "replace")
            (rlen,) = struct.unpack_from("<Q", data, body + 32 + clen)
            rec = body + 40 + clen
            out.append((pos, body + 24, rec, rlen, rec + rlen <= body + length, compression))
        if op == _FOOTER:
            break
        pos = body + length
    return out


def add_chunk_crcs(path: str | Path) -> int:
    """Fill in the CRC of every uncompressed chunk of the bag's MCAP files whose CRC is 0.

    Args:
        path: bag folder or ``.mcap`` file (just written, closed).

    Returns:
        Number of chunks given a CRC.

    Raises:
        BagIntegrityError: a broken record structure. OSError: unreadable / unwritable file.
    """
    n = 0
    for f in mcap_files(path):
        data = bytearray(f.read_bytes())
        for _, crc_at, rec, rlen, fits, compression in _chunks(data, f):
            (crc,) = struct.unpack_from("<I", data, crc_at)
            if crc == 0 and fits and not compression:
                struct.pack_into("<I", data, crc_at, crc32(data[rec : rec + rlen]))
                n += 1
        with f.open("r+b") as out:  # same size: patch in place
            out.write(data)
    return n


def check_bag(path: str | Path) -> list[ChunkReport]:
    """Verify the structure and chunk CRCs of every MCAP file of a bag.

    Returns:
        One :class:`ChunkReport` per file; ``problems`` lists damaged chunks (index, byte
        offset, expected vs found CRC) or a broken record structure. Chunks with CRC 0 (not
        computed) or compressed chunks are counted but cannot be verified.

    Raises:
        FileNotFoundError: no such bag.
    """
    reports = []
    for f in mcap_files(path):
        rep = ChunkReport(f)
        data = f.read_bytes()
        try:
            chunks = _chunks(data, f)
        except BagIntegrityError as exc:
            rep.problems.append(str(exc))
            reports.append(rep)
            continue
        rep.chunks = len(chunks)
        for i, (pos, crc_at, rec, rlen, fits, compression) in enumerate(chunks):
            (crc,) = struct.unpack_from("<I", data, crc_at)
            if not fits:
                rep.problems.append(f"{f}: chunk {i} at byte {pos}: records overrun the chunk")
                continue
            if crc == 0 or compression:
                continue
            rep.with_crc += 1
            found = crc32(data[rec : rec + rlen])
            if found != crc:
                rep.problems.append(
                    f"{f}: chunk {i} at byte {pos} is corrupt (CRC {found:#010x}, stored "
                    f"{crc:#010x})"
                )
        reports.append(rep)
    return reports


def require_intact(path: str | Path) -> None:
    """Raise :class:`BagIntegrityError` listing every damaged chunk of the bag, if any.

    Raises:
        BagIntegrityError: damaged chunks or record structure. FileNotFoundError: no bag.
    """
    problems = [p for r in check_bag(path) for p in r.problems]
    if problems:
        raise BagIntegrityError(
            f"{path}: {len(problems)} damaged part(s); not playing it:\n  " + "\n  ".join(problems)
        )
