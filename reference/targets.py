r"""Training targets: what the RPN and the FCIS head should output, computed from the ground truth.

:func:`anchor_targets` labels anchors for the RPN (Faster R-CNN's anchor target layer); :func:`proposal_targets`
labels ROIs for the head, with their box deltas and their ``P x P`` mask targets (FCIS, Sec. 3.2 and 4); and
:func:`mask_targets` crops a ground-truth mask to an ROI.  Geometry follows ``docs/conventions.md``: boxes are
half-open ``(x1, y1, x2, y2)`` in image pixels, pixel ``x`` covers ``[x, x + 1)``.
"""

from typing import NamedTuple

import numpy as np

from ._checks import as_boxes
from .boxes import HEAD_STDS, box_iou, encode_boxes
from .losses import IGNORE


class AnchorTargets(NamedTuple):
    """Result of :func:`anchor_targets`, one row per anchor (``A_total`` of them)."""

    labels: np.ndarray  #: (A_total,) int64: 1 object, 0 background, IGNORE not sampled
    deltas: np.ndarray  #: (A_total, 4) float32: the anchor onto its best ground-truth box (0 where not positive)


class ProposalTargets(NamedTuple):
    """Result of :func:`proposal_targets`, one row per ROI (the proposals, then the ground-truth boxes)."""

    rois: np.ndarray  #: (R, 4) float32
    labels: np.ndarray  #: (R,) int64: the ground-truth class for foreground ROIs, 0 for background
    gt_index: np.ndarray  #: (R,) int64: the ground-truth instance of best IoU (-1 where there is none)
    deltas: np.ndarray  #: (R, 4) float32: the ROI onto its instance's box, normalised by HEAD_STDS (0 for background)
    mask_targets: np.ndarray  #: (R, P, P) bool: the instance's mask in the ROI (all False for background)


def anchor_targets(anchors, gt_boxes, image_shape, rng, *, batch_size=256, fg_fraction=0.5, positive_iou=0.7,
                   negative_iou=0.3):
    r"""Label anchors for the RPN: positive, negative or not sampled, with the deltas of the positive ones.

    Parameters
    ----------
    anchors : (A_total, 4) float32 ndarray
        Every anchor of the image, :func:`fcis_twin.reference.anchors.shift_anchors`' order.
    gt_boxes : (G, 4) float32 ndarray
    image_shape : (H, W)
        Anchors that cross the image border are never sampled (``allowed_border = 0``).
    rng : numpy.random.Generator
        Draws the sample.
    batch_size : int
        Anchors sampled per image.
    fg_fraction : float
        At most ``fg_fraction * batch_size`` of them positive; negatives fill the rest.
    positive_iou, negative_iou : float
        Thresholds on an anchor's best IoU with a ground-truth box.

    Returns
    -------
    AnchorTargets

    Notes
    -----
    Among the anchors inside the image: an anchor is negative when its best IoU is below ``negative_iou``; positive
    when it is at least ``positive_iou``, or when it has the highest IoU of some ground-truth box (every anchor tying
    that maximum, if the maximum is above 0), so that every box gets an anchor.  Positives are then subsampled
    uniformly to ``fg_fraction * batch_size``, negatives to ``batch_size`` minus the positives kept.  Deltas encode
    the anchor onto its best box, RPN stds ``(1, 1, 1, 1)``.
    """
    anchors = as_boxes("anchors", anchors)
    gt_boxes = as_boxes("gt_boxes", gt_boxes)
    height, width = image_shape
    labels = np.full(len(anchors), IGNORE, np.int64)
    deltas = np.zeros((len(anchors), 4), np.float32)
    inside = np.flatnonzero((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] <= width)
                            & (anchors[:, 3] <= height))
    if len(gt_boxes) == 0:
        labels[inside] = 0
    else:
        iou = box_iou(anchors[inside], gt_boxes)  # (A_in, G)
        best_gt = iou.argmax(axis=1)  # (A_in,)
        best_iou = iou[np.arange(len(inside)), best_gt]
        labels[inside[best_iou < negative_iou]] = 0
        gt_max = iou.max(axis=0)  # (G,) the best anchor IoU of each box
        has_best = ((iou == gt_max[None]) & (gt_max[None] > 0)).any(axis=1)
        positive = has_best | (best_iou >= positive_iou)
        labels[inside[positive]] = 1
        rows = inside[positive]
        deltas[rows] = encode_boxes(anchors[rows], gt_boxes[best_gt[positive]])
    _subsample(labels, 1, int(fg_fraction * batch_size), rng)
    _subsample(labels, 0, batch_size - int((labels == 1).sum()), rng)
    deltas[labels != 1] = 0
    return AnchorTargets(labels, deltas)


def _subsample(labels, value, limit, rng):
    """Set all but ``limit`` (drawn uniformly) of the entries equal to ``value`` to IGNORE, in place."""
    where = np.flatnonzero(labels == value)
    if len(where) > limit:
        labels[rng.choice(where, len(where) - limit, replace=False)] = IGNORE


def proposal_targets(proposals, gt_boxes, gt_labels, gt_masks, *, output_size, fg_iou=0.5, binary_threshold=0.4):
    r"""Label every ROI for the head: class, box deltas and mask target (no sampling: OHEM chooses later).

    Parameters
    ----------
    proposals : (K, 4) float32 ndarray
    gt_boxes : (G, 4) float32 ndarray
    gt_labels : (G,) int ndarray, >= 1
    gt_masks : (G, H, W) bool ndarray
    output_size : int
        ``P``.
    fg_iou : float
        An ROI is foreground when its best IoU with a ground-truth box is at least this, background otherwise.
    binary_threshold : float
        A mask-target cell is inside when at least this fraction of it is covered by the instance's mask.

    Returns
    -------
    ProposalTargets
        The ROIs are the proposals followed by the ground-truth boxes (so that every instance has a perfect ROI);
        deltas normalised by :data:`fcis_twin.reference.boxes.HEAD_STDS`.
    """
    proposals = as_boxes("proposals", proposals)
    gt_boxes = as_boxes("gt_boxes", gt_boxes)
    rois = np.concatenate([proposals, gt_boxes])  # (R, 4)
    num_rois = len(rois)
    labels = np.zeros(num_rois, np.int64)
    gt_index = np.full(num_rois, -1, np.int64)
    deltas = np.zeros((num_rois, 4), np.float32)
    masks = np.zeros((num_rois, output_size, output_size), bool)
    if len(gt_boxes):
        iou = box_iou(rois, gt_boxes)  # (R, G)
        best = iou.argmax(axis=1)
        gt_index[:] = best
        fg = np.flatnonzero(iou[np.arange(num_rois), best] >= fg_iou)
        labels[fg] = np.asarray(gt_labels)[best[fg]]
        usable = fg[(rois[fg, 2] > rois[fg, 0]) & (rois[fg, 3] > rois[fg, 1])]  # an empty box has no deltas
        deltas[usable] = encode_boxes(rois[usable], gt_boxes[best[usable]], HEAD_STDS)
        for r in fg:
            masks[r] = mask_targets(gt_masks[best[r]], rois[r], output_size) >= binary_threshold
    return ProposalTargets(rois, labels, gt_index, deltas, masks)


def mask_targets(mask, box, output_size):
    r"""The fraction of each of the ``P x P`` cells of a box that a mask covers.

    Parameters
    ----------
    mask : (H, W) bool ndarray
    box : (4,) float
        ``(x1, y1, x2, y2)``, may reach outside the image (outside counts as not covered).
    output_size : int
        ``P``.

    Returns
    -------
    coverage : (P, P) float64 ndarray in [0, 1]
        Cell ``(i, j)`` is ``[x1 + j w / P, x1 + (j + 1) w / P) x [y1 + i h / P, ...)``; its exact covered area over
        its area (0 for a box of zero area).

    Notes
    -----
    The integral of a pixel-wise constant image over ``[0, x) x [0, y)`` is bilinear in ``(x, y)`` inside every
    pixel, so bilinear interpolation of the summed-area table at the cells' fractional corners gives each cell's
    covered area exactly.

    Examples
    --------
    >>> m = np.zeros((4, 4), bool); m[:, :2] = True  # the left half
    >>> mask_targets(m, (1, 0, 4, 4), 2)  # cells [1, 2.5) and [2.5, 4): 1 of 1.5 columns covered, then none
    array([[0.66666667, 0.        ],
           [0.66666667, 0.        ]])
    """
    height, width = mask.shape
    table = np.zeros((height + 1, width + 1))  # table[y, x]: covered pixels in [0, x) x [0, y)
    table[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0), axis=1)
    x1, y1, x2, y2 = (float(v) for v in box)
    xs = np.clip(np.linspace(x1, x2, output_size + 1), 0, width)  # (P + 1,) cell edges, clipped to the image
    ys = np.clip(np.linspace(y1, y2, output_size + 1), 0, height)
    corners = _bilinear(table, ys[:, None], xs[None, :])  # (P + 1, P + 1)
    area = corners[1:, 1:] - corners[:-1, 1:] - corners[1:, :-1] + corners[:-1, :-1]  # (P, P) covered area
    cell = (x2 - x1) * (y2 - y1) / output_size**2
    return np.clip(area / cell, 0, 1) if cell > 0 else np.zeros((output_size, output_size))


def _bilinear(table, y, x):
    """Bilinear interpolation of a 2-D array at fractional ``(y, x)`` inside its extent."""
    y0 = np.minimum(np.floor(y).astype(np.int64), table.shape[0] - 2)
    x0 = np.minimum(np.floor(x).astype(np.int64), table.shape[1] - 2)
    fy, fx = y - y0, x - x0
    return ((1 - fy) * (1 - fx) * table[y0, x0] + (1 - fy) * fx * table[y0, x0 + 1]
            + fy * (1 - fx) * table[y0 + 1, x0] + fy * fx * table[y0 + 1, x0 + 1])
