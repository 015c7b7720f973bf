"""Checkpoint tools: our checkpoint format and the converter for published TR3D checkpoints.

* :mod:`~sr3d_ros.checkpoints.format`: our format (weights + config + class names + provenance):
  :func:`save_checkpoint` (atomic), :func:`load_checkpoint` (``weights_only`` loading and
  validation), :func:`config_from_checkpoint`.
* TR3D (Rukhovich et al., 2023) -> our format, :func:`convert_tr3d_checkpoint`
  (``sr3d-convert-tr3d``): :mod:`.tr3d_loading` reads the file safely, :mod:`.tr3d_names` maps
  the two published naming schemes, :mod:`.tr3d_config` infers the model configuration and
  :mod:`.tr3d_convert` checks that every tensor lands.
* :mod:`.shipped`: the models shipped in ``sr3d_ros/models/weights`` and
  :func:`resolve_checkpoint` (a ``checkpoint`` setting is a path or a shipped model's name).
"""

from .format import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CONFIG_TYPES,
    CheckpointError,
    atomic_torch_save,
    config_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .shipped import WEIGHTS_DIR, resolve_checkpoint, shipped_models
from .tr3d_config import infer_config
from .tr3d_convert import ConversionReport, convert_tr3d_checkpoint, convert_tr3d_state_dict
from .tr3d_loading import TR3DFile, extract_state_dict, load_tr3d_checkpoint, read_tr3d_file
from .tr3d_names import SCHEMES, TR3DConversionError, detect_scheme, rename_tr3d_keys

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CONFIG_TYPES",
    "SCHEMES",
    "WEIGHTS_DIR",
    "CheckpointError",
    "ConversionReport",
    "TR3DConversionError",
    "TR3DFile",
    "atomic_torch_save",
    "config_from_checkpoint",
    "convert_tr3d_checkpoint",
    "convert_tr3d_state_dict",
    "detect_scheme",
    "extract_state_dict",
    "infer_config",
    "load_checkpoint",
    "load_tr3d_checkpoint",
    "read_tr3d_file",
    "rename_tr3d_keys",
    "resolve_checkpoint",
    "save_checkpoint",
    "shipped_models",
]
