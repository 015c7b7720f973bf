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

import io
import struct
from binascii import crc32
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

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


_Chunk = tuple[int, int, int, int, bool, str]
_BLOCK = 1 << 20  # CRCs are computed over the records in blocks of this many bytes


def _scan(f: BinaryIO, size: int, path: Path) -> Iterator[_Chunk]:
    """Per chunk of an open MCAP file of ``size`` bytes, read record header by record header
    (memory does not grow with the file): (record offset, crc field offset, records offset,
    records length, fits, compression). Raises BagIntegrityError on a broken record structure."""
    f.seek(0)
    if f.read(len(_MAGIC)) != _MAGIC:
        raise BagIntegrityError(f"{path}: not an MCAP file (bad magic)")
    pos = len(_MAGIC)
    while pos < size:
        if pos + 9 > size:
            raise BagIntegrityError(f"{path}: truncated record header at byte {pos}")
        f.seek(pos)
        head = f.read(9)
        op = head[0]
        (length,) = struct.unpack_from("<Q", head, 1)
        body = pos + 9
        if body + length > size:
            raise BagIntegrityError(
                f"{path}: record at byte {pos} (opcode {op:#04x}) declares {length} bytes, only "
                f"{size - body} left: the file is truncated"
            )
        if op == _CHUNK:
            fixed = f.read(32)
            (clen,) = struct.unpack_from("<I", fixed, 28)
            compression = f.read(clen).decode("utf-8", "replace")
            (rlen,) = struct.unpack("<Q", f.read(8))
            rec = body + 40 + clen
            yield (pos, body + 24, rec, rlen, rec + rlen <= body + length, compression)
        if op == _FOOTER:
            return
        pos = body + length


def _chunks(data: bytes | bytearray, path: Path) -> list[_Chunk]:
    """:func:`_scan` of an MCAP file's bytes held in memory."""
    return list(_scan(io.BytesIO(data), len(data), path))


def _crc(f: BinaryIO, offset: int, length: int) -> int:
    """CRC-32 of ``length`` bytes at ``offset``, read in blocks."""
    f.seek(offset)
    crc = 0
    while length > 0:
        block = f.read(min(length, _BLOCK))
        if not block:
            break
        crc = crc32(block, crc)
        length -= len(block)
    return crc


def add_chunk_crcs(path: str | Path) -> int:
    """Fill in the CRC of every uncompressed chunk of the bag's MCAP files whose CRC is 0
    (in place, streaming: memory does not grow with the file).

    Args:
        path: bag folder or ``.mcap`` file (just written, closed).

    Returns:
        Number of chunks given a CRC.

    Raises:
        BagIntegrityError: a broken record structure. OSError: unreadable / unwritable file.
    """
    n = 0
    for fp in mcap_files(path):
        size = fp.stat().st_size
        with fp.open("r+b") as f:
            for _, crc_at, rec, rlen, fits, compression in list(_scan(f, size, fp)):
                f.seek(crc_at)
                (crc,) = struct.unpack("<I", f.read(4))
                if crc == 0 and fits and not compression:
                    value = _crc(f, rec, rlen)
                    f.seek(crc_at)
                    f.write(struct.pack("<I", value))
                    n += 1
    return n


def check_bag(path: str | Path) -> list[ChunkReport]:
    """Verify the structure and chunk CRCs of every MCAP file of a bag (streaming: memory does
    not grow with the file).

    Returns:
        One :class:`ChunkReport` per file; ``problems`` lists damaged chunks (index, byte
        offset, expected vs found CRC) or a broken record structure. Chunks with CRC 0 (not
        computed) or compressed chunks are counted but cannot be verified.

    Raises:
        FileNotFoundError: no such bag.
    """
    reports = []
    for fp in mcap_files(path):
        rep = ChunkReport(fp)
        size = fp.stat().st_size
        with fp.open("rb") as f:
            try:
                for i, (pos, crc_at, rec, rlen, fits, compression) in enumerate(_scan(f, size, fp)):
                    rep.chunks += 1
                    if not fits:
                        rep.problems.append(
                            f"{fp}: chunk {i} at byte {pos}: records overrun the chunk"
                        )
                        continue
                    f.seek(crc_at)
                    (crc,) = struct.unpack("<I", f.read(4))
                    if crc == 0 or compression:
                        continue
                    rep.with_crc += 1
                    found = _crc(f, rec, rlen)
                    if found != crc:
                        rep.problems.append(
                            f"{fp}: chunk {i} at byte {pos} is corrupt (CRC {found:#010x}, "
                            f"stored {crc:#010x})"
                        )
            except BagIntegrityError as exc:
                rep.problems.append(str(exc))
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
