"""Atomic file writes: every output file of sr3d_ros appears complete or not at all.

The content goes to a temporary file in the destination folder, is flushed and fsynced, and is
then renamed over the destination (``os.replace``, atomic on POSIX and Windows within one file
system). A crash or Ctrl-C in between leaves the old file (or none) and no partial one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text"]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, then rename it to ``path``.

    The file gets the usual permissions of a new file (0666 minus the umask), not mkstemp's 0600.
    Parent folders are created.

    Args:
        path: the destination file.
        write: writes the whole content to the open binary file it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the folder is not writable; whatever ``write`` raises (the temporary file is
            removed and ``path`` is left as it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`). Raises OSError."""
    data = text.encode(encoding)
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | Path, payload: object, indent: int = 2) -> Path:
    """Write ``payload`` as JSON (plus a final newline) to ``path`` atomically.

    Values JSON cannot encode are written as their ``str()``.

    Raises:
        OSError: the folder is not writable. ValueError: circular references in ``payload``.
    """
    return atomic_write_text(path, json.dumps(payload, indent=indent, default=str) + "\n")
