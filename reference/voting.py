r"""Mask voting: the last FCIS inference step, from per-ROI class masks to image-sized instance masks.

Li et al., CVPR 2017, Sec. 3 (inference), following MNC's "mask voting": after per-class NMS, each surviving ROI
collects every ROI whose box overlaps it (IoU at least 0.5), averages their foreground masks of the detection's
class pixel by pixel, weighted by their classification probabilities, and binarizes the average.

Two departures of the official MXNet code are **not** followed here (see ``docs/conventions.md``): it binarizes each
pasted voter mask before averaging, and each voter gives the mask of its own argmax class.  This reference follows
the paper: voters give mask *probabilities* of the *detection's* class.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._checks import (
    as_binary_threshold,
    as_boxes,
    as_image_shape,
    as_int,
    as_mask_probs,
    as_probabilities,
    as_probability,
)
from .boxes import broadcast_iou, tight_boxes
from .nms import nms
from .paste import (
    REGION_BOTTOM,
    REGION_H,
    REGION_LEFT,
    REGION_RIGHT,
    REGION_TOP,
    REGION_W,
    REGION_X1,
    REGION_Y1,
    axis_coord,
    bilinear,
    box_regions,
    paste_region,
)

#: Columns of a detection's voting window (:func:`mask_voting_loop`, step 3): the union of its voters' in-image
#: regions, rows ``[TOP, BOTTOM)`` and columns ``[LEFT, RIGHT)``; all 0 when nothing is to be voted.
WINDOW_TOP, WINDOW_LEFT, WINDOW_BOTTOM, WINDOW_RIGHT = range(4)
WINDOW_FIELDS = 4
#: Columns of a voted mask's extent (step 4): its least and greatest pixel column and row, inclusive; an empty mask
#: keeps the start values ``(W, H, -1, -1)``.
EXTENT_X_MIN, EXTENT_Y_MIN, EXTENT_X_MAX, EXTENT_Y_MAX = range(4)
EXTENT_FIELDS = 4


@dataclass(frozen=True)
class Detections:
    """Final detections of one image, ordered by descending score.

    Attributes
    ----------
    boxes : (D, 4) float32 ndarray
        Tight half-open box of each mask, ``(x1, y1, x2, y2)``.
    scores : (D,) float32 ndarray
        Class probability of the detecting ROI.
    labels : (D,) int64 ndarray
        Class in ``1 .. C-1`` (never background).
    masks : (D, H, W) bool ndarray
        Voted, binarized instance masks; never empty.
    rois : (D,) int64 ndarray
        Index of the detecting ROI in the ``boxes`` given to :func:`mask_voting` (its score is
        ``cls_probs[rois, labels]``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    rois: np.ndarray

    def __len__(self):
        return self.boxes.shape[0]


def mask_voting(
    boxes,
    cls_masks,
    cls_probs,
    image_shape,
    *,
    nms_threshold=0.3,
    vote_threshold=0.5,
    binary_threshold=0.4,
    max_detections=100,
    score_threshold=1e-3,
):
    r"""Per-class NMS, then one voted, binarized mask per surviving (ROI, class).

    Parameters
    ----------
    boxes : (R, 4) float32 array_like
        ``(x1, y1, x2, y2)``, half-open, image pixels: the boxes the masks were assembled in.
    cls_masks : (R, C, P, P) float32 array_like
        Foreground mask probabilities per ROI and class (class 0, background, is never used).
    cls_probs : (R, C) float32 array_like
        Class probabilities in ``[0, 1]``.
    image_shape : (H, W)
    nms_threshold : float in [0, 1]
        Per-class NMS suppresses IoU **greater** than this (:func:`fcis_twin.reference.nms.nms`).
    vote_threshold : float in [0, 1]
        ROI ``j`` votes for detection ``r`` when ``IoU(boxes[j], boxes[r]) >= vote_threshold``.
    binary_threshold : float in (0, 1]
        A voted pixel is in the mask when its weighted average is ``>=`` this.
    max_detections : int >= 1
        Kept per class after NMS, and over all classes: a hard bound on the number of detections.
    score_threshold : float in [0, 1]
        Candidates with a lower probability are dropped.

    Returns
    -------
    Detections
        Ordered by descending score; ties by class, then ROI index.

    Notes
    -----
    Mask voting as in Li et al., CVPR 2017, Sec. 3 (inference), after MNC: masks of the ROIs overlapping a
    detection are averaged per pixel, weighted by their classification probabilities, then binarized.  The official
    MXNet code binarizes each pasted voter mask before averaging and lets each voter give the mask of its own argmax
    class; we follow the paper and average probabilities of the detection's class.  Step by step:

    1. For each foreground class ``c = 1 .. C-1``: ``nms(boxes, cls_probs[:, c], nms_threshold)`` over the ROIs
       with ``cls_probs[r, c] >= score_threshold``, first ``max_detections`` kept (NMS order: descending score,
       lower ROI index first among ties).  The kept candidates ``(r, c)`` of all classes are sorted by descending
       score, then class, then ROI index, and the first ``max_detections`` go on: never more, however many tie
       at the last place.  (The official code keeps every candidate tied with the ``max_detections``-th score,
       which for the equal probabilities of an untrained network can be thousands of full-image masks; see
       ``docs/conventions.md``.)  Leaving the ROIs below ``score_threshold`` out before NMS gives the same result
       as after it, since they can only suppress boxes that score no higher.
    2. Voters of ``(r, c)``: every ROI ``j`` (any class) with ``IoU(boxes[j], boxes[r]) >= vote_threshold``, and
       ``r`` itself even when its box has zero area.  In float32, over voters by ascending ``j``,

       .. math:: M = \frac{\sum_j p_{j,c}\, \mathrm{paste}(m_{j,c}, b_j)}{\sum_j p_{j,c}}

       (numerator and denominator each summed in that order, then one division), and the mask is
       ``M >= float32(binary_threshold)``, a threshold in ``(0, 1]``, so a pixel no voter covers is False.  A
       zero denominator or an empty mask drops the detection.
    3. The output box is the mask's tight half-open box; the score is ``cls_probs[r, c]``, the label ``c``, the
       ROI index ``r``.

    The pastes are accumulated in a window, the union of the voters' in-image regions, and each ``(j, c)`` paste
    is computed once and shared by every detection it votes for.  Pixels outside every voter average to 0.

    Examples
    --------
    >>> # one ROI, constant mask 0.5 of class 1 in box [1, 1, 3, 2): 0.5 >= 0.4 everywhere in the box
    >>> det = mask_voting([[1, 1, 3, 2]], np.full((1, 2, 2, 2), 0.5), [[0.2, 0.8]], (3, 4))
    >>> len(det), det.rois, det.labels, det.scores, det.boxes
    (1, array([0]), array([1]), array([0.8], dtype=float32), array([[1., 1., 3., 2.]], dtype=float32))
    >>> det.masks[0].astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    a = check_voting_args(boxes, cls_masks, cls_probs, image_shape, nms_threshold=nms_threshold,
                          vote_threshold=vote_threshold, binary_threshold=binary_threshold,
                          max_detections=max_detections, score_threshold=score_threshold)
    boxes, cls_masks, cls_probs, (height, width) = a.boxes, a.cls_masks, a.cls_probs, a.image_shape
    binary_threshold = a.binary_threshold

    rois, labels = detection_candidates(boxes, cls_probs, a.nms_threshold, a.max_detections, a.score_threshold)
    regions = box_regions(boxes, height, width)  # (R, REGION_FIELDS)
    pastes = {}  # (j, c) -> (y0, x0, values): each voter pasted once
    out_masks, kept = [], []
    for i, (r, c) in enumerate(zip(rois, labels, strict=True)):
        voters = voters_of(boxes, r, a.vote_threshold)
        for j in voters:
            if (j, c) not in pastes:
                pastes[j, c] = paste_region(cls_masks[j, c], regions[j])
        mask = _vote(voters, [pastes[j, c] for j in voters], cls_probs[:, c], binary_threshold, height, width)
        if mask is None:
            continue
        out_masks.append(mask)
        kept.append(i)

    kept = np.array(kept, np.int64)
    masks = np.array(out_masks, bool).reshape(-1, height, width)
    return Detections(
        boxes=tight_boxes(masks),
        scores=cls_probs[rois[kept], labels[kept]].astype(np.float32),
        labels=labels[kept],
        masks=masks,
        rois=rois[kept],
    )


class VotingArgs(NamedTuple):
    """The checked arguments of a mask voting (:func:`check_voting_args`); thresholds are float32 but for NMS's."""

    boxes: np.ndarray
    cls_masks: np.ndarray
    cls_probs: np.ndarray
    image_shape: tuple
    nms_threshold: float
    vote_threshold: np.float32
    binary_threshold: np.float32
    max_detections: int
    score_threshold: np.float32


def check_voting_args(boxes, cls_masks, cls_probs, image_shape, *, nms_threshold, vote_threshold, binary_threshold,
                      max_detections, score_threshold, device=False):
    """Validated arguments of :func:`mask_voting`, as :class:`VotingArgs`.

    ``device=True`` (the accelerated wrappers) checks a GPU ``cls_masks`` where it is; ``boxes`` and ``cls_probs``
    are host arrays.
    """
    boxes = as_boxes("boxes", boxes)
    num_rois = boxes.shape[0]
    cls_masks = as_mask_probs("cls_masks", cls_masks, ndim=4, device=device)
    if cls_masks.shape[0] != num_rois or cls_masks.shape[1] < 1:
        expected = f"({num_rois}, C >= 1, P, P)"
        raise ValueError(f"cls_masks must have shape {expected} to match boxes, got {tuple(cls_masks.shape)}")
    num_classes = cls_masks.shape[1]
    cls_probs = as_probabilities("cls_probs", cls_probs, ndim=2)
    if cls_probs.shape != (num_rois, num_classes):
        expected = f"({num_rois}, {num_classes})"
        raise ValueError(f"cls_probs must have shape {expected} to match cls_masks, got {cls_probs.shape}")
    return VotingArgs(
        boxes=boxes,
        cls_masks=cls_masks,
        cls_probs=cls_probs,
        image_shape=as_image_shape("image_shape", image_shape),
        nms_threshold=as_probability("nms_threshold", nms_threshold),
        vote_threshold=np.float32(as_probability("vote_threshold", vote_threshold)),
        binary_threshold=as_binary_threshold("binary_threshold", binary_threshold),
        max_detections=as_int("max_detections", max_detections, low=1),
        score_threshold=np.float32(as_probability("score_threshold", score_threshold)),
    )


def mask_voting_loop(boxes, cls_masks, cls_probs, image_shape, *, nms_threshold=0.3, vote_threshold=0.5,
                     binary_threshold=0.4, max_detections=100, score_threshold=1e-3):
    r"""Mask voting one element at a time: the template of the voting kernels, the same result as :func:`mask_voting`.

    Parameters and Returns are those of :func:`mask_voting`.

    Notes
    -----
    The candidates ``(rois[i], labels[i])`` are :func:`mask_voting`'s.  Then four steps, each a loop over what one
    GPU thread computes, with the kernels' names:

    1. **Voter flags**, per (detection ``i``, ROI ``j``): ``j`` votes when ``IoU >= vote_threshold`` or ``j == r``.
    2. **Voter lists**: the flags compacted row by row into ``voters[voter_offsets[i]:voter_offsets[i + 1]]``
       (:func:`voter_lists`).
    3. **Windows**, per detection: the weight sum ``totals[i]`` (float32, ascending ``j``) and the window, the union
       of the voters' in-image regions (``WINDOW_*`` columns); the extent starts empty (``EXTENT_*`` columns).
    4. **Vote**, per (detection, window pixel): ``acc = sum_j p_j * paste(m_j)(y, x)`` over the voters whose region
       holds the pixel, ascending ``j``, in float32, then ``acc / totals[i] >= binary_threshold``; the extent grows.

    Examples
    --------
    >>> det = mask_voting_loop([[1, 1, 3, 2]], np.full((1, 2, 2, 2), 0.5), [[0.2, 0.8]], (3, 4))
    >>> det.rois, det.labels, det.boxes
    (array([0]), array([1]), array([[1., 1., 3., 2.]], dtype=float32))
    """
    a = check_voting_args(boxes, cls_masks, cls_probs, image_shape, nms_threshold=nms_threshold,
                          vote_threshold=vote_threshold, binary_threshold=binary_threshold,
                          max_detections=max_detections, score_threshold=score_threshold)
    boxes, cls_masks, cls_probs, (height, width) = a.boxes, a.cls_masks, a.cls_probs, a.image_shape
    rois, labels = detection_candidates(boxes, cls_probs, a.nms_threshold, a.max_detections, a.score_threshold)
    regions = box_regions(boxes, height, width)  # (R, REGION_FIELDS)
    num, num_rois = rois.shape[0], boxes.shape[0]
    mask_h, mask_w = cls_masks.shape[2], cls_masks.shape[3]

    # 1. voter flags, one per (detection i, ROI j)
    flags = np.zeros((num, num_rois), bool)
    for i in range(num):
        r = rois[i]
        for j in range(num_rois):
            flags[i, j] = j == r or broadcast_iou(boxes[r], boxes[j]) >= a.vote_threshold

    # 2. voter lists
    voter_offsets, voters = voter_lists(flags)

    # 3. weight sums and windows, one per detection
    windows = np.zeros((num, WINDOW_FIELDS), np.int64)
    totals = np.zeros(num, np.float32)
    extents = np.zeros((num, EXTENT_FIELDS), np.int64)
    for i in range(num):
        total = np.float32(0)
        top, left, bottom, right = height, width, 0, 0
        for v in range(voter_offsets[i], voter_offsets[i + 1]):
            j = voters[v]
            total = total + cls_probs[j, labels[i]]  # float32, ascending j
            if regions[j, REGION_BOTTOM] > regions[j, REGION_TOP] and (
                    regions[j, REGION_RIGHT] > regions[j, REGION_LEFT]):  # a non-empty region
                top, left = min(top, regions[j, REGION_TOP]), min(left, regions[j, REGION_LEFT])
                bottom, right = max(bottom, regions[j, REGION_BOTTOM]), max(right, regions[j, REGION_RIGHT])
        totals[i] = total
        if total > 0 and bottom > top:  # a zero weight sum drops the detection: no pixels to vote
            windows[i, WINDOW_TOP], windows[i, WINDOW_LEFT] = top, left
            windows[i, WINDOW_BOTTOM], windows[i, WINDOW_RIGHT] = bottom, right
        extents[i, EXTENT_X_MIN], extents[i, EXTENT_Y_MIN] = width, height
        extents[i, EXTENT_X_MAX], extents[i, EXTENT_Y_MAX] = -1, -1

    # 4. the vote, one per (detection i, window pixel (y, x)); outside every voter the average is 0
    masks = np.zeros((num, height, width), bool)
    for i in range(num):
        c = labels[i]
        for y in range(windows[i, WINDOW_TOP], windows[i, WINDOW_BOTTOM]):
            for x in range(windows[i, WINDOW_LEFT], windows[i, WINDOW_RIGHT]):
                acc = np.float32(0)
                for v in range(voter_offsets[i], voter_offsets[i + 1]):
                    j = voters[v]
                    if (regions[j, REGION_TOP] <= y < regions[j, REGION_BOTTOM]
                            and regions[j, REGION_LEFT] <= x < regions[j, REGION_RIGHT]):
                        v0, v1, ay = axis_coord(y - regions[j, REGION_Y1], mask_h, regions[j, REGION_H])
                        u0, u1, ax = axis_coord(x - regions[j, REGION_X1], mask_w, regions[j, REGION_W])
                        value = bilinear(cls_masks[j, c, v0, u0], cls_masks[j, c, v0, u1], cls_masks[j, c, v1, u0],
                                         cls_masks[j, c, v1, u1], ay, ax)
                        acc = acc + np.float32(cls_probs[j, c] * value)  # the product rounded, then the sum
                inside = acc / totals[i] >= a.binary_threshold
                masks[i, y, x] = inside
                if inside:
                    extents[i, EXTENT_X_MIN], extents[i, EXTENT_Y_MIN] = min(extents[i, EXTENT_X_MIN], x), min(
                        extents[i, EXTENT_Y_MIN], y)
                    extents[i, EXTENT_X_MAX], extents[i, EXTENT_Y_MAX] = max(extents[i, EXTENT_X_MAX], x), max(
                        extents[i, EXTENT_Y_MAX], y)

    keep, tight = voted_boxes(totals, extents)
    return Detections(boxes=tight, scores=cls_probs[rois[keep], labels[keep]].astype(np.float32),
                      labels=labels[keep], masks=masks[keep], rois=rois[keep])


def voter_lists(flags):
    """CSR voter lists of a ``(K, R)`` bool flag matrix: ``(voter_offsets (K + 1,), voters)`` int64, ascending in
    each row, so that detection ``i``'s voters are ``voters[voter_offsets[i]:voter_offsets[i + 1]]``.

    Written with NumPy functions only, so that a CuPy ``flags`` stays on its device (NumPy dispatches to CuPy).

    Examples
    --------
    >>> voter_lists(np.array([[True, False, True], [False, True, False]]))
    (array([0, 2, 3]), array([0, 2, 1]))
    """
    counts = flags.sum(axis=1).astype(np.int64)  # (K,)
    voter_offsets = np.concatenate([np.zeros_like(counts, shape=(1,)), np.cumsum(counts)])  # (K + 1,)
    return voter_offsets, np.nonzero(flags)[1].astype(np.int64)  # row-major: ROIs ascend within each detection


def voted_boxes(totals, extents):
    """Which voted masks survive, and their tight boxes: ``(keep (K,) bool, boxes (K', 4) float32)``.

    A detection survives when its weight sum ``totals`` is positive and its mask is not empty (``extents``, as step
    4 of :func:`mask_voting_loop` leaves them).
    """
    extents = np.asarray(extents).reshape(-1, EXTENT_FIELDS)
    keep = (np.asarray(totals) > 0) & (extents[:, EXTENT_X_MAX] >= 0)  # (K,)
    first = extents[keep][:, [EXTENT_X_MIN, EXTENT_Y_MIN]]
    last = extents[keep][:, [EXTENT_X_MAX, EXTENT_Y_MAX]] + 1  # the tight box is half-open
    return keep, np.concatenate([first, last], axis=1).astype(np.float32).reshape(-1, 4)


def detection_candidates(boxes, cls_probs, nms_threshold, max_detections, score_threshold):
    """``(rois, labels)`` int64 of the kept candidates, by descending score, then class, then ROI index."""
    rois, labels = [], []
    for c in range(1, cls_probs.shape[1]):
        live = np.flatnonzero(cls_probs[:, c] >= score_threshold)  # ascending, so NMS ties break the same way
        keep = live[nms(boxes[live], cls_probs[live, c], nms_threshold)][:max_detections]
        rois.append(keep)
        labels.append(np.full(keep.shape[0], c, np.int64))
    rois = np.concatenate(rois, dtype=np.int64) if rois else np.zeros(0, np.int64)
    labels = np.concatenate(labels, dtype=np.int64) if labels else np.zeros(0, np.int64)
    return sort_and_cut(rois, labels, cls_probs[rois, labels], max_detections)


def sort_and_cut(rois, labels, scores, max_detections):
    """The first ``max_detections`` candidates by descending score, then class, then ROI: a hard bound, ties at the
    last place cut in that order.  Shared with the accelerated voting.
    """
    order = np.lexsort((rois, labels, -scores))[:max_detections]  # last key first: score, then class, then ROI
    return rois[order].astype(np.int64), labels[order].astype(np.int64)


def voters_of(boxes, r, vote_threshold):
    """The ROIs that vote for ROI ``r``, ascending: ``IoU(boxes[j], boxes[r]) >= vote_threshold``, and ``r`` itself
    (a zero-area box has IoU 0 with itself, yet always votes for itself)."""
    voters = np.flatnonzero(broadcast_iou(boxes[r], boxes) >= vote_threshold)  # ascending j
    return voters if r in voters else np.union1d(voters, [r])


def voted_average(voters, regions, probs):
    """The weighted average of the voters' pasted regions in their union window: ``(top, left, average)`` with the
    float32 ``average`` of image rows ``[top, top + h)`` and columns ``[left, left + w)``, or None when the weights
    sum to 0.  Pixels outside the window average to 0.

    ``regions`` holds ``(y0, x0, values)`` per voter (:func:`fcis_twin.reference.paste.paste_region`); ``probs`` is
    ``cls_probs[:, c]``.  Numerator and denominator are each summed in float32 over ascending voters, then divided
    once: the values :func:`mask_voting` binarizes.
    """
    total = np.float32(0)
    for j in voters:
        total = total + probs[j]  # float32, ascending j
    if not total > 0:
        return None
    nonempty = [(y0, x0, v) for y0, x0, v in regions if v.size]
    if not nonempty:
        return 0, 0, np.zeros((0, 0), np.float32)
    top = min(y0 for y0, _, _ in nonempty)
    left = min(x0 for _, x0, _ in nonempty)
    bottom = max(y0 + v.shape[0] for y0, _, v in nonempty)
    right = max(x0 + v.shape[1] for _, x0, v in nonempty)
    acc = np.zeros((bottom - top, right - left), np.float32)  # the window: rows [top, bottom), columns [left, right)
    for j, (y0, x0, v) in zip(voters, regions, strict=True):
        if v.size:
            acc[y0 - top : y0 - top + v.shape[0], x0 - left : x0 - left + v.shape[1]] += probs[j] * v
    return top, left, acc / total


def _vote(voters, regions, probs, binary_threshold, height, width):
    """The :func:`voted_average` binarized into an (H, W) mask; None when the weights sum to 0 or it is empty."""
    average = voted_average(voters, regions, probs)
    if average is None:
        return None
    top, left, values = average
    mask = np.zeros((height, width), bool)  # where no voter reaches, the average is 0: False
    mask[top : top + values.shape[0], left : left + values.shape[1]] = values >= binary_threshold
    return mask if mask.any() else None

