"""Helpers shared by the benchmark scripts: where the real data is, the machine's description,
and atomic JSON output. Not a benchmark itself (the leading underscore keeps ``make bench``
globs away from it)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Root of the real sample data (``scannet/``, ``sunrgbd/``, ...), first of: ``explicit``,
    ``$SR3D_DATA``, ``<repo>/.gpu_data`` (the copy that travels with the repository to a GPU
    machine) when it exists, ``../shared/data`` next to the repository."""
    if explicit:
        return Path(explicit)
    if os.environ.get("SR3D_DATA"):
        return Path(os.environ["SR3D_DATA"])
    travelling = REPO / ".gpu_data"
    if travelling.is_dir():
        return travelling
    return REPO.parent / "shared" / "data"


def device_name(device: Any) -> str:
    """The GPU's name for a CUDA device, else the CPU's (``platform.processor()``)."""
    import torch

    if torch.device(device).type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return platform.processor() or platform.machine()


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (a temporary file in the same
    folder renamed over ``path``: readers never see a partial file); creates the folder.
    Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
