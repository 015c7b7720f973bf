"""The models shipped inside the package (``sr3d_ros/models/weights/<name>.pt``, each with a
model card) and the rule that turns a ``checkpoint`` setting into a file: a path, or a shipped
model's name.

    >>> resolve_checkpoint("sr3d_scannet_default")      # a shipped model, by name
    >>> resolve_checkpoint("runs/scannet/final.pt")     # any checkpoint, by path
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["WEIGHTS_DIR", "resolve_checkpoint", "shipped_models"]

#: where the shipped models live (installed with the package)
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "models" / "weights"


def shipped_models() -> dict[str, Path]:
    """The shipped models installed here: ``{name: path}``, name = file stem, sorted by name
    (empty when the weights folder is absent, e.g. a source tree without the ``.pt`` files)."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.pt"))}


def resolve_checkpoint(value: str | Path) -> Path:
    """The checkpoint file a ``checkpoint`` parameter / ``--checkpoint`` option names.

    An existing file wins; otherwise a bare name (no folder, no ``.pt`` suffix) is a shipped
    model's name (:func:`shipped_models`, e.g. ``"sr3d_scannet_default"``); anything else is a
    path, returned with ``~`` expanded (its loader reports a missing file).

    Raises:
        FileNotFoundError: a bare name that is neither a file nor a shipped model (the message
            lists the shipped names).
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    text = str(value)
    if "/" in text or "\\" in text or path.suffix:
        return path
    models = shipped_models()
    if text in models:
        return models[text]
    names = ", ".join(models) or "none installed"
    raise FileNotFoundError(
        f"{text!r} is neither a file nor a shipped model (shipped: {names}); "
        "give a checkpoint path or one of those names"
    )
