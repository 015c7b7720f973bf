"""The KITTI object-benchmark matching rules and precision sampling (used by :mod:`.kitti`).

The rules of the official devkit (``cpp/evaluate_object.cpp``) as its widely used Python port
applies them (second.pytorch / mmdetection3d 1.4 ``kitti_utils/eval.py``; read for the facts, our
own vectorised code). Per class ``c``, difficulty ``d`` and metric (2D / BEV / 3D):

* **Ground truth** of one frame gets a flag: 0 = counted (type ``c``, box height
  ``y2 - y1 > MIN_HEIGHT[d]``, occlusion ``<= MAX_OCCLUSION[d]``, truncation
  ``<= MAX_TRUNCATION[d]``); 1 = ignored (type ``c`` failing the difficulty filter, or the
  neighbouring class: Van for Car, Person_sitting for Pedestrian); -1 = other class.
* **Detections**: 1 = ignored when ``|y2 - y1| < MIN_HEIGHT[d]`` (any type), else 0 for type
  ``c``, else -1.
* **Matching**, greedy over the ground truth in file order: among the detections not yet
  assigned with ``IoU > min_overlap`` (strict), a counted detection of highest IoU (the first on
  ties) wins, else the first ignored one. A counted GT matched by a counted detection is a true
  positive; a match involving an ignored GT or detection only consumes the detection; a counted
  GT without a match is a false negative. Unassigned counted detections are false positives,
  except (2D metric only, as in the port) those covering a DontCare region by more than
  ``min_overlap`` of their own area.
* **Score thresholds**: a first pass (no score cut, highest-score match) collects the scores of
  the true positives; :func:`select_thresholds` keeps up to 41 of them at recall steps of 1/40.
  For each threshold the matching above runs on the detections scoring ``>= threshold``.
* **Curves**: ``precision = TP / (TP + FP)``, AOS similarity ``sum((1 + cos(da)) / 2) /
  (TP + FP)`` over the true positives (``da`` the alpha difference), each replaced by its
  maximum over the later thresholds. AP|R40 averages points 1..40, AP|R11 points 0, 4, .., 40
  (Simonelli et al., "Disentangling Monocular 3D Object Detection", ICCV 2019, for R40).

Everything is vectorised over frames (padded) and thresholds; the loop runs over the GT slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DIFFICULTIES",
    "MAX_OCCLUSION",
    "MAX_TRUNCATION",
    "MIN_HEIGHT",
    "NUM_SAMPLE_POINTS",
    "FrameFlags",
    "ap_r11",
    "ap_r40",
    "class_curves",
    "frame_flags",
    "select_thresholds",
]

DIFFICULTIES: tuple[str, ...] = ("easy", "moderate", "hard")
MIN_HEIGHT: tuple[float, ...] = (40.0, 25.0, 25.0)
MAX_OCCLUSION: tuple[int, ...] = (0, 1, 2)
MAX_TRUNCATION: tuple[float, ...] = (0.15, 0.30, 0.50)
NUM_SAMPLE_POINTS = 41
_NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}


@dataclass
class FrameFlags:
    """Flags of one frame for one class and difficulty (module docstring).

    Attributes:
        gt: ``int64 (G,)`` 0 counted / 1 ignored / -1 other. dt: ``int64 (D,)`` likewise.
        dontcare: ``float64 (C, 4)`` DontCare 2D boxes. num_valid: counted GT.
    """

    gt: np.ndarray
    dt: np.ndarray
    dontcare: np.ndarray
    num_valid: int


def frame_flags(
    gt_names: np.ndarray,
    gt_bbox: np.ndarray,
    gt_occluded: np.ndarray,
    gt_truncated: np.ndarray,
    dt_names: np.ndarray,
    dt_bbox: np.ndarray,
    cls: str,
    difficulty: int,
) -> FrameFlags:
    """GT / detection flags of one frame (module docstring); names compare case-insensitively.

    Args:
        gt_names, dt_names: ``(G,)``, ``(D,)`` str. gt_bbox, dt_bbox: ``(G, 4)``, ``(D, 4)``
        pixels. gt_occluded, gt_truncated: ``(G,)``. cls: class name. difficulty: 0, 1, 2.
    """
    c = cls.lower()
    gl = np.char.lower(gt_names.astype(str))
    height = gt_bbox[:, 3] - gt_bbox[:, 1]
    hard = (
        (gt_occluded > MAX_OCCLUSION[difficulty])
        | (gt_truncated > MAX_TRUNCATION[difficulty])
        | (height <= MIN_HEIGHT[difficulty])
    )
    same = gl == c
    neighbour = gl == _NEIGHBOUR.get(c, "\0")
    g = np.full(len(gl), -1, np.int64)
    g[neighbour | (same & hard)] = 1
    g[same & ~hard] = 0
    dheight = np.abs(dt_bbox[:, 3] - dt_bbox[:, 1])
    d = np.where(np.char.lower(dt_names.astype(str)) == c, 0, -1).astype(np.int64)
    d[dheight < MIN_HEIGHT[difficulty]] = 1
    dc = gt_bbox[gt_names == "DontCare"].reshape(-1, 4).astype(np.float64)
    return FrameFlags(g, d, dc, int((g == 0).sum()))


def select_thresholds(scores: np.ndarray, num_gt: int) -> np.ndarray:
    """Score thresholds at recall steps of 1/40 (the devkit's ``getThresholds``).

    Args:
        scores: ``(P,)`` scores of the first-pass true positives. num_gt: counted GT (> 0 when
            ``P > 0``).

    Returns:
        ``(T <= 41,)`` float64 thresholds, descending.
    """
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    out: list[float] = []
    current = 0.0
    for i, score in enumerate(s):
        left = (i + 1) / num_gt
        right = (i + 2) / num_gt if i < len(s) - 1 else left
        if right - current < current - left and i < len(s) - 1:
            continue
        out.append(float(score))
        current += 1 / (NUM_SAMPLE_POINTS - 1.0)
    return np.asarray(out, np.float64)


def _pad(arrays: Sequence[np.ndarray], fill: float, width: int) -> np.ndarray:
    out = np.full((len(arrays), width), fill, np.float64)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out


def _match(
    ov: np.ndarray,
    flag_gt: np.ndarray,
    flag_dt: np.ndarray,
    score: np.ndarray,
    active: np.ndarray,
    min_overlap: float,
    by_score: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching, all frames and thresholds at once.

    Shapes: ``ov (F, D, G)``, ``flag_gt (F, G)``, ``flag_dt / score (F, D)``, ``active (F, T, D)``.
    Returns ``assigned (F, T, D)``, ``tp (F, T, G)`` bool, the matched detection ``(F, T, G)``
    and ``fn (F, T)``.
    """
    f, t, d = active.shape
    g_count = ov.shape[2]
    assigned = np.zeros((f, t, d), bool)
    tp = np.zeros((f, t, g_count), bool)
    match = np.zeros((f, t, g_count), np.int64)
    fn = np.zeros((f, t), np.int64)
    usable = active & (flag_dt != -1)[:, None, :]
    for g in range(g_count):
        fg = flag_gt[:, g][:, None]  # (F, 1)
        over = (ov[:, :, g] > min_overlap)[:, None, :] & (flag_gt[:, g] != -1)[:, None, None]
        cand = usable & ~assigned & over
        if by_score:
            key = np.where(cand, score[:, None, :], -np.inf)
            j = key.argmax(-1)
            found = cand.any(-1)
        else:
            valid = cand & (flag_dt == 0)[:, None, :]
            ign = cand & (flag_dt == 1)[:, None, :]
            has_valid = valid.any(-1)
            j_valid = np.where(valid, ov[:, :, g][:, None, :], -np.inf).argmax(-1)
            j = np.where(has_valid, j_valid, ign.argmax(-1))
            found = has_valid | ign.any(-1)
        fn += ~found & (fg == 0)
        det_flag = np.take_along_axis(flag_dt, j.reshape(f, -1), axis=1).reshape(f, t)
        is_tp = found & (fg == 0) & (det_flag == 0)
        rows = np.nonzero(found)
        assigned[rows[0], rows[1], j[rows]] = True
        tp[:, :, g] = is_tp
        match[:, :, g] = j
    return assigned, tp, match, fn


def class_curves(
    overlaps: Sequence[np.ndarray],
    flags: Sequence[FrameFlags],
    dt_scores: Sequence[np.ndarray],
    gt_alpha: Sequence[np.ndarray],
    dt_alpha: Sequence[np.ndarray],
    dt_bbox: Sequence[np.ndarray],
    min_overlap: float,
    use_dontcare: bool,
    compute_aos: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and AOS curves of one class / difficulty / metric / IoU threshold.

    Args:
        overlaps: per frame ``(D, G)`` IoU of detections x ground truth in the metric.
        flags: per frame :class:`FrameFlags`. dt_scores, dt_alpha: per frame ``(D,)``.
        gt_alpha: per frame ``(G,)``. dt_bbox: per frame ``(D, 4)`` 2D boxes (DontCare test).
        min_overlap: IoU threshold (strict ``>``). use_dontcare: apply the DontCare rule (2D).
        compute_aos: also accumulate the orientation similarity.

    Returns:
        ``(precision, recall, aos)``, each ``(41,)`` float64, monotone envelopes, zero-padded.
    """
    n_frames = len(overlaps)
    num_valid = sum(fl.num_valid for fl in flags)
    zeros = np.zeros(NUM_SAMPLE_POINTS)
    if n_frames == 0 or num_valid == 0:
        return zeros, zeros.copy(), zeros.copy()
    d_max = max(1, max(len(s) for s in dt_scores))
    g_max = max(1, max(len(fl.gt) for fl in flags))
    ov = np.zeros((n_frames, d_max, g_max))
    for i, o in enumerate(overlaps):
        ov[i, : o.shape[0], : o.shape[1]] = o
    fgt = _pad([fl.gt for fl in flags], -1, g_max).astype(np.int64)
    fdt = _pad([fl.dt for fl in flags], -1, d_max).astype(np.int64)
    score = _pad(dt_scores, -np.inf, d_max)
    # first pass: no score cut, highest-score match; collect the true positives' scores
    all_on = np.ones((n_frames, 1, d_max), bool)
    _, tp, match, _ = _match(ov, fgt, fdt, score, all_on, min_overlap, by_score=True)
    tp_scores = np.take_along_axis(score, match[:, 0, :], axis=1)[tp[:, 0, :]]
    thr = select_thresholds(tp_scores, num_valid)
    active = score[:, None, :] >= thr[None, :, None]
    assigned, tp, match, fn = _match(ov, fgt, fdt, score, active, min_overlap, by_score=False)
    open_dt = active & ~assigned & (fdt == 0)[:, None, :]
    if use_dontcare:
        bb = _pad([b.reshape(-1) for b in dt_bbox], 0, 4 * d_max).reshape(n_frames, d_max, 4)
        hit = np.stack(
            [_covers_dontcare(bb[i], fl.dontcare, min_overlap) for i, fl in enumerate(flags)]
        )
        fp = (open_dt & ~hit[:, None, :]).sum(axis=(0, 2))
    else:
        fp = open_dt.sum(axis=(0, 2))
    n_tp = tp.sum(axis=(0, 2))
    n_fn = fn.sum(axis=0)
    precision, recall, aos = zeros.copy(), zeros.copy(), zeros.copy()
    k = len(thr)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 -> NaN, as the devkit port
        precision[:k] = n_tp / (n_tp + fp)
        recall[:k] = n_tp / (n_tp + n_fn)
        if compute_aos:
            ga = _pad(gt_alpha, 0, g_max)
            da = np.take_along_axis(_pad(dt_alpha, 0, d_max)[:, None, :], match, axis=2)
            sim = np.where(tp, (1 + np.cos(ga[:, None, :] - da)) / 2, 0).sum(axis=(0, 2))
            aos[:k] = sim / (n_tp + fp)
    env = [np.maximum.accumulate(a[::-1])[::-1] for a in (precision, recall, aos)]
    return env[0], env[1], env[2]


def _covers_dontcare(dt_bbox: np.ndarray, dontcare: np.ndarray, min_overlap: float) -> np.ndarray:
    """``(D,)`` bool: intersection with some DontCare box > ``min_overlap`` x detection area."""
    if len(dontcare) == 0:
        return np.zeros(len(dt_bbox), bool)
    iw = np.minimum(dt_bbox[:, None, 2], dontcare[None, :, 2]) - np.maximum(
        dt_bbox[:, None, 0], dontcare[None, :, 0]
    )
    ih = np.minimum(dt_bbox[:, None, 3], dontcare[None, :, 3]) - np.maximum(
        dt_bbox[:, None, 1], dontcare[None, :, 1]
    )
    area = (dt_bbox[:, 2] - dt_bbox[:, 0]) * (dt_bbox[:, 3] - dt_bbox[:, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where((iw > 0) & (ih > 0), inter / area[:, None], 0.0)
    return np.asarray((frac > min_overlap).any(axis=1))


def ap_r40(curve: np.ndarray) -> float:
    """AP|R40 in percent: mean of sample points 1..40 of a 41-point envelope x 100."""
    return float(curve[1:NUM_SAMPLE_POINTS].sum() / 40 * 100)


def ap_r11(curve: np.ndarray) -> float:
    """AP|R11 in percent: mean of sample points 0, 4, .., 40 x 100."""
    return float(curve[0:NUM_SAMPLE_POINTS:4].sum() / 11 * 100)
