"""sr3d_ros.io.atomic: a failed write leaves the old file and no temporary file behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sr3d_ros.io.atomic import atomic_write, atomic_write_json, atomic_write_text


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    atomic_write_json(path, {"a": 1})
    before = path.read_bytes()

    def half_then_fail(f) -> None:
        f.write(b'{"a": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, lambda f: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_writes_json_text_and_creates_folders(tmp_path: Path) -> None:
    payload = {"path": tmp_path, "values": [1.5, None]}
    out = atomic_write_json(tmp_path / "a" / "b" / "r.json", payload)
    assert out == tmp_path / "a" / "b" / "r.json"
    assert json.loads(out.read_text()) == {"path": str(tmp_path), "values": [1.5, None]}
    assert out.read_text().endswith("}\n")
    card = atomic_write_text(tmp_path / "card.md", "# title\nµ m\n")
    assert card.read_text(encoding="utf-8") == "# title\nµ m\n"


def test_new_files_get_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
