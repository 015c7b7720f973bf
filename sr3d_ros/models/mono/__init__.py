"""The monocular detector (LeAD-M3D, Meier et al., arXiv 2512.05663) on a YOLOv10-style network.

* :mod:`.config`: :class:`MonoModelConfig` (size n/s/m/b/x, classes, input size, mean sizes),
  :class:`MonoInferenceConfig`, :class:`MonoDetectorConfig` (what a ``kind="mono"`` checkpoint
  stores).
* :mod:`.blocks`, :mod:`.backbone`: YOLOv10 blocks, backbone and PAN neck.
* :mod:`.head`: dual (one-to-many / one-to-one) decoupled head with the 3D branches,
  :class:`MonoHeadOutputs`.
* :mod:`.model`: :class:`MonoDetectorModel` -> :class:`MonoOutputs`.
* :mod:`.decode`: head outputs -> 2D boxes and KITTI camera boxes.
* :mod:`.gating`: CGI3D, the 3D branches on 3x3 patches of the top-K confident locations.
"""

from .config import (
    KITTI_MEAN_SIZES,
    MONO_CLASSES,
    MONO_SIZES,
    MonoDetectorConfig,
    MonoInferenceConfig,
    MonoModelConfig,
)
from .decode import decode_camera_boxes, decode_image_boxes, unproject_centers
from .gating import GatedOutputs, gated_3d, head_topk, select_topk
from .head import MonoHeadOutputs
from .model import MonoDetectorModel, MonoOutputs, anchor_grid

__all__ = [
    "KITTI_MEAN_SIZES",
    "MONO_CLASSES",
    "MONO_SIZES",
    "GatedOutputs",
    "MonoDetectorConfig",
    "MonoDetectorModel",
    "MonoHeadOutputs",
    "MonoInferenceConfig",
    "MonoModelConfig",
    "MonoOutputs",
    "anchor_grid",
    "decode_camera_boxes",
    "decode_image_boxes",
    "gated_3d",
    "head_topk",
    "select_topk",
    "unproject_centers",
]
