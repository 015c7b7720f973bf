"""The monocular detector (LeAD-M3D) behind the :class:`~sr3d_ros.inference.Detector` protocol.

    >>> det = Detector.from_checkpoint("lead_m3d_kitti_n.pt")   # kind "mono" -> MonoDetector
    >>> result = det(image, camera)    # uint8 (H, W, 3) RGB + PinholeCamera (or K / P)
    >>> result.camera_boxes            # (M, 7) KITTI camera boxes, optical frame
    >>> result.boxes, result.scores, result.names, result.timings_ms

Per image: letterbox to the model's ``input_size`` (aspect kept, bilinear, antialiased when
shrinking, grey 114 padding, centred: what training does), scale to [0, 1], backbone + neck, the
one-to-one head with CGI3D (:mod:`sr3d_ros.models.mono.gating`; no NMS: YOLOv10 Sec. 3.1), score
threshold, at most ``max_detections``, decoding with the letterboxed camera (so the 3D boxes are
in the frame the given camera's ``P`` projects from, and the 2D boxes are mapped back to the
input image's pixels).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoints import config_from_checkpoint, load_checkpoint
from .detections import Detections
from .geometry.camera import Letterbox, PinholeCamera, camera_boxes_to_boxes
from .inference import load_model_weights, resolve_device, with_inference_overrides
from .models.mono import (
    MonoDetectorConfig,
    MonoDetectorModel,
    MonoInferenceConfig,
    decode_camera_boxes,
    decode_image_boxes,
)
from .models.mono.gating import head_topk
from .timing import StageTimer

__all__ = ["LETTERBOX_PAD", "MonoDetector", "default_mono_checkpoint_path", "letterbox_image"]

#: Grey level of the letterbox padding (YOLO's, and training/image_transforms.py's).
LETTERBOX_PAD = 114


def default_mono_checkpoint_path() -> Path:
    """The default monocular model shipped with the package (size n, KITTI; see its card)."""
    return Path(__file__).resolve().parent / "models" / "weights" / "lead_m3d_kitti_n.pt"


def letterbox_image(image: torch.Tensor, box: Letterbox) -> torch.Tensor:
    """Letterbox one image as training does (``training/image_transforms.letterbox``).

    Args:
        image: ``uint8 (H, W, 3)`` RGB on any device. box: from :meth:`PinholeCamera.letterbox`.

    Returns:
        ``float32 (1, 3, box.height, box.width)`` in [0, 1] on the image's device: resized
        (bilinear, ``align_corners=False``, antialiased when shrinking), rounded to 8 bits,
        padded with :data:`LETTERBOX_PAD`.
    """
    x = image.permute(2, 0, 1)[None].float()
    x = F.interpolate(
        x,
        size=(box.new_height, box.new_width),
        mode="bilinear",
        align_corners=False,
        antialias=box.scale_x < 1 or box.scale_y < 1,
    )
    canvas = torch.full((1, 3, box.height, box.width), float(LETTERBOX_PAD), device=image.device)
    top, left = box.pad_top, box.pad_left
    canvas[:, :, top : top + box.new_height, left : left + box.new_width] = x.round().clamp(0, 255)
    return canvas / 255.0


def _check_image(image: object) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"image must be a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"image must have dtype uint8 (8-bit RGB), got {image.dtype}")
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
    if image.shape[2] != 3:
        raise ValueError(f"image must have 3 channels (RGB), got {image.shape[2]}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty ({image.shape[1]} x {image.shape[0]} pixels)")
    return image


def _check_camera(camera: object, width: int, height: int) -> PinholeCamera:
    """A :class:`PinholeCamera` for an image of this size from a camera, a K or a P."""
    if isinstance(camera, PinholeCamera):
        if (camera.width, camera.height) != (width, height):
            raise ValueError(
                f"camera is for {camera.width} x {camera.height} pixels, the image is "
                f"{width} x {height}"
            )
        return camera
    if camera is None:
        raise ValueError("a camera is needed: det(image, camera) with a PinholeCamera, K or P")
    if not isinstance(camera, (np.ndarray, torch.Tensor, list, tuple)):
        raise TypeError(f"camera must be a PinholeCamera, K (3, 3) or P (3, 4), got {type(camera)}")
    m = np.asarray(camera.cpu() if isinstance(camera, torch.Tensor) else camera, dtype=np.float64)
    if m.shape not in ((3, 3), (3, 4)):
        raise ValueError(f"camera matrix must be K (3, 3) or P (3, 4), got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"camera matrix has non-finite entries: {m.tolist()}")
    if m[0, 0] <= 0 or m[1, 1] <= 0:
        raise ValueError(
            f"camera matrix has a zero / negative focal length: fx={m[0, 0]}, fy={m[1, 1]}"
        )
    if m.shape == (3, 3):
        m = np.concatenate([m, np.zeros((3, 1))], axis=1)
    try:
        return PinholeCamera(m, width, height)
    except ValueError as exc:
        raise ValueError(f"camera matrix: {exc}") from None


class MonoDetector:
    """Monocular 3D detector (LeAD-M3D) implementing :class:`~sr3d_ros.inference.Detector`.

    Args:
        model: a built :class:`~sr3d_ros.models.mono.MonoDetectorModel` (weights loaded).
        config: its :class:`~sr3d_ros.models.mono.MonoDetectorConfig`.
        device: where to run.
    """

    def __init__(
        self, model: MonoDetectorModel, config: MonoDetectorConfig, device: torch.device
    ) -> None:
        self.model = model.to(device).eval()
        self.config = config
        self.device = device
        self.class_names = tuple(config.model.class_names)
        self.provenance: dict[str, Any] = {}

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "auto",
        **inference_overrides: float,
    ) -> MonoDetector:
        """Build from a ``kind="mono"`` checkpoint (``None``: the shipped default model).

        Args:
            path: checkpoint file.
            device: ``"auto"``, ``"cpu"``, ``"cuda[:i]"``.
            inference_overrides: fields of :class:`~sr3d_ros.models.mono.MonoInferenceConfig`
                (``score_threshold``, ``max_detections``, ``gate_topk``, ``gated``).

        Raises:
            FileNotFoundError: missing file (also when the default model is not installed).
            CheckpointError: invalid checkpoint, one of another detector kind, weights that do
                not fit the stored config. ValueError: bad device or override.
        """
        if path is None:
            path = default_mono_checkpoint_path()
            if not path.is_file():
                raise FileNotFoundError(
                    f"the default monocular model is not installed ({path} is missing); "
                    "pass a mono checkpoint (sr3d-train with a config/mono_kitti_*.yaml)"
                )
        path = Path(path)
        dev = resolve_device(device)
        return cls._from_loaded(
            load_checkpoint(path, map_location="cpu"), path, dev, inference_overrides
        )

    @classmethod
    def _from_loaded(
        cls,
        ckpt: dict[str, Any],
        path: Path,
        dev: torch.device,
        inference_overrides: Mapping[str, float],
    ) -> MonoDetector:
        stored = config_from_checkpoint(ckpt, path, config_type=MonoDetectorConfig)
        config = with_inference_overrides(stored, inference_overrides)
        model = MonoDetectorModel(config.model)
        load_model_weights(model, ckpt, path)
        det = cls(model, config, dev)
        det.provenance = dict(ckpt.get("provenance", {}))
        return det

    @property
    def inference_config(self) -> MonoInferenceConfig:
        """The post-processing in use (read-only; build a new detector to change it)."""
        return self.config.inference

    @torch.no_grad()
    def __call__(
        self,
        image: np.ndarray | torch.Tensor,
        camera: PinholeCamera | np.ndarray | None = None,
        /,
        timed: bool = True,
    ) -> Detections:
        """Detect objects in one image.

        Args:
            image: ``uint8 (H, W, 3)`` RGB (numpy, or a CPU / GPU tensor).
            camera: the image's :class:`~sr3d_ros.geometry.camera.PinholeCamera` (its size must
                be the image's), or its ``K`` ``(3, 3)`` / ``P`` ``(3, 4)``; the image must be
                rectified (no lens distortion).
            timed: record per-stage times (``preprocess``, ``backbone``, ``neck``, ``head_2d``,
                ``head_3d``, ``decode``) in ``Detections.timings_ms``.

        Returns:
            :class:`~sr3d_ros.detections.Detections` on ``self.device``, descending scores:
            ``camera_boxes`` ``(M, 7)`` KITTI camera boxes in the optical frame ``P`` projects
            from (bottom-face centre, metres, ``ry`` about +y), ``boxes`` the same in the body
            frame (x forward, y left, z up), ``image_boxes`` ``(M, 4)`` 2D boxes in the input
            image's pixels (clipped to the image), scores, labels, class names, timings.

        Raises:
            TypeError: not an array / tensor, or a camera of another type.
            ValueError: dtype other than uint8, not 3 channels, an empty image, a camera of
                another size, a camera matrix with a zero focal length or non-finite entries.
        """
        img = _check_image(image)
        h, w = img.shape[:2]
        cam = _check_camera(camera, w, h)
        timer = StageTimer(self.device, enabled=timed)
        in_h, in_w = self.config.model.input_size
        with timer.stage("preprocess"):
            box = cam.letterbox(in_w, in_h)
            x = letterbox_image(torch.from_numpy(np.ascontiguousarray(img)).to(self.device), box)
            P = torch.tensor(cam.letterboxed(box).P, dtype=torch.float32, device=self.device)
        with timer.stage("backbone"):
            feats = self.model.backbone(x)
        with timer.stage("neck"):
            feats = self.model.neck(feats)
        anchors, strides = self.model.anchors(feats)
        inf = self.config.inference
        sel = head_topk(self.model.one2one, feats, strides, inf.gate_topk, inf.gated, timer)
        with timer.stage("decode"):
            keep = (sel.scores[0] >= inf.score_threshold).nonzero().squeeze(1)
            keep = keep[: inf.max_detections]
            head = sel.head.gather(keep[None])
            idx = sel.index[:, keep]
            labels = sel.labels[:, keep]
            cam_boxes = decode_camera_boxes(
                head,
                anchors[idx],
                strides[idx],
                labels,
                P[None],
                torch.tensor(self.config.model.mean_sizes, device=self.device),
            )[0]
            img_boxes = decode_image_boxes(head, anchors[idx])[0]
            A_inv = torch.tensor(
                np.linalg.inv(box.affine()), dtype=torch.float32, device=self.device
            )
            img_boxes = img_boxes.view(-1, 2, 2) * A_inv.diagonal()[:2] + A_inv[:2, 2]
            img_boxes = torch.minimum(img_boxes.clamp(min=0), img_boxes.new_tensor([w - 1, h - 1]))
            det = Detections(
                camera_boxes_to_boxes(cam_boxes),
                sel.scores[0, keep],
                labels[0],
                self.class_names,
                camera_boxes=cam_boxes,
                image_boxes=img_boxes.view(-1, 4),
            )
        det.timings_ms = dict(timer.ms)
        return det
