"""One ``from_dict`` / ``to_dict`` pair for the training-side config dataclasses.

Validation is written once: :func:`sr3d_ros.config.from_dict` (strict keys, types, nested
dataclasses, ``Literal`` choices) is the one schema validator of core and training configs; the
dataclasses themselves only check value ranges in ``__post_init__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sr3d_ros.config import from_dict, to_dict

__all__ = ["MappingConfig"]

C = TypeVar("C", bound="MappingConfig")


class MappingConfig:
    """Mixin for frozen config dataclasses: strict :meth:`from_dict`, plain :meth:`to_dict`."""

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Build from a mapping (e.g. parsed YAML) with :func:`sr3d_ros.config.from_dict`.

        Raises:
            TypeError: ``data`` is not a mapping.
            sr3d_ros.config.ConfigError (a ValueError): unknown keys (listed), values of the
                wrong type, or values the dataclass rejects.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__} needs a mapping, got {type(data).__name__}")
        return from_dict(cls, dict(data))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (tuples as lists); round-trips through :meth:`from_dict`."""
        out: dict[str, Any] = to_dict(self)
        return out
