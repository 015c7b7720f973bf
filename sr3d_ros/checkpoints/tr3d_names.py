"""TR3D's published key names (Rukhovich et al., 2023) and how they map onto ours.

Two naming schemes exist (verified against the public sources):

* ``samsunglabs`` - SamsungLabs/tr3d (mmdetection3d v0.x / mmcv 1.x). Detector
  ``MinkSingleStage3DDetector`` with submodules ``backbone`` (``MinkResNet``), ``neck``
  (``TR3DNeck``) and ``head`` (``TR3DHead`` with ``bbox_conv`` and ``cls_conv``)::

      backbone.conv1.kernel, backbone.norm1.bn.{weight,bias,running_mean,running_var,...}
      backbone.layer{1..4}.{j}.{conv1,conv2}.kernel, ....{norm1,norm2}.bn.*
      backbone.layer{1..4}.0.downsample.0.kernel, ....downsample.1.bn.*
      neck.up_block_{1,2}.0.kernel, neck.up_block_{1,2}.1.bn.*
      neck.lateral_block_{0,1}.0.kernel, neck.lateral_block_{0,1}.1.bn.*
      neck.out_block_{0,1}.0.kernel, neck.out_block_{0,1}.1.bn.*
      head.bbox_conv.{kernel,bias}   -> head.conv_reg.{kernel,bias}
      head.cls_conv.{kernel,bias}    -> head.conv_cls.{kernel,bias}

* ``mmdet3d`` - open-mmlab/mmdetection3d ``projects/TR3D`` (mmdetection3d v1.x / mmengine).
  Same backbone (``TR3DMinkResNet``) and neck names; the head is ``bbox_head`` with
  ``conv_reg`` / ``conv_cls``::

      bbox_head.conv_reg.{kernel,bias} -> head.conv_reg.{kernel,bias}
      bbox_head.conv_cls.{kernel,bias} -> head.conv_cls.{kernel,bias}

Our modules keep TR3D's names and MinkowskiEngine's weight layout (``kernel`` ``(V, C_in,
C_out)``, ``(C_in, C_out)`` for 1x1x1 stride-1 kernels; ``bias`` ``(1, C_out)``; BatchNorm as
``bn.*``), so apart from the head renaming every tensor is copied unchanged.
"""

from __future__ import annotations

import torch

__all__ = ["SCHEMES", "TR3DConversionError", "detect_scheme", "rename_tr3d_keys"]

#: Published naming schemes: name -> {source prefix: our prefix}. Prefixes not listed are unmapped.
SCHEMES: dict[str, dict[str, str]] = {
    "samsunglabs": {
        "backbone.": "backbone.",
        "neck.": "neck.",
        "head.bbox_conv.": "head.conv_reg.",
        "head.cls_conv.": "head.conv_cls.",
    },
    "mmdet3d": {
        "backbone.": "backbone.",
        "neck.": "neck.",
        "bbox_head.conv_reg.": "head.conv_reg.",
        "bbox_head.conv_cls.": "head.conv_cls.",
    },
}


class TR3DConversionError(ValueError):
    """A TR3D checkpoint cannot be converted (the message names the file, keys or shapes)."""


def detect_scheme(state_dict: dict[str, torch.Tensor]) -> str:
    """``"mmdet3d"`` if keys start with ``bbox_head.``, ``"samsunglabs"`` if with ``head.``.

    Args:
        state_dict: TR3D key names -> tensors (only the names are read).

    Raises:
        TR3DConversionError: neither or both head prefixes present.
    """
    has_mm = any(k.startswith("bbox_head.") for k in state_dict)
    has_sl = any(k.startswith("head.") for k in state_dict)
    if has_mm == has_sl:
        what = (
            "both 'head.' and 'bbox_head.'"
            if has_mm
            else "neither 'head.' (SamsungLabs/tr3d) nor 'bbox_head.' (mmdetection3d projects/TR3D)"
        )
        raise TR3DConversionError(
            f"cannot tell the TR3D naming scheme: the state dict has {what} keys"
        )
    return "mmdet3d" if has_mm else "samsunglabs"


def rename_tr3d_keys(
    state_dict: dict[str, torch.Tensor], scheme: str | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map TR3D key names to ours.

    Args:
        state_dict: TR3D names -> tensors.
        scheme: ``"samsunglabs"`` / ``"mmdet3d"`` or None to detect (:func:`detect_scheme`).

    Returns:
        ``(renamed, unmapped)``: our names -> the same tensor objects, and the source keys no
        rule of the scheme covers (e.g. TR3D+FF's ``img_backbone.*``).

    Raises:
        TR3DConversionError: an unknown ``scheme``, or none given and none detected.
    """
    scheme = scheme or detect_scheme(state_dict)
    if scheme not in SCHEMES:
        raise TR3DConversionError(f"unknown scheme {scheme!r}; known: {sorted(SCHEMES)}")
    rules = SCHEMES[scheme]
    renamed: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state_dict.items():
        for src, dst in rules.items():
            if key.startswith(src):
                renamed[dst + key[len(src) :]] = value
                break
        else:
            unmapped.append(key)
    return renamed, unmapped
