r"""Greedy non-maximum suppression.

The reference is the plain greedy loop: walk the boxes by descending score, keep a box unless an already kept box
overlaps it by **more than** the threshold.  The accelerated twin computes the same answer with a 64-bit
suppression bitmask; its keep indices must match these exactly.
"""

import numpy as np

from ._checks import as_boxes, as_labels, as_probability, as_scores
from .boxes import broadcast_iou


def nms(boxes, scores, iou_threshold):
    r"""Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : (R, 4) float32 array_like
        ``(x1, y1, x2, y2)``, half-open, image pixels.
    scores : (R,) float32 array_like
        Finite; NaN is rejected.
    iou_threshold : float in [0, 1]
        A box is suppressed when its IoU with a kept box is **strictly greater** than this.

    Returns
    -------
    keep : (K,) int64 ndarray
        Indices into ``boxes``, by descending score; equal scores keep the lower index first.

    Notes
    -----
    Sort order is ``argsort(-scores, kind="stable")``.  The IoU is :func:`.boxes.box_iou`, float32, and
    the comparison is ``iou > float32(iou_threshold)``.  A zero-area box overlaps nothing (IoU 0), so it is only
    ever suppressed by nothing and always kept.

    Examples
    --------
    >>> # IoU = 9 / 23 = 0.391 > 0.3, so the second box goes
    >>> nms(np.array([[0, 0, 4, 4], [1, 1, 5, 5]], np.float32), np.array([.9, .8], np.float32), 0.3)
    array([0])
    >>> nms(np.array([[0, 0, 4, 4], [1, 1, 5, 5]], np.float32), np.array([.9, .8], np.float32), 0.5)
    array([0, 1])
    """
    boxes = as_boxes("boxes", boxes)
    scores = as_scores("scores", scores, boxes.shape[0])
    threshold = np.float32(as_probability("iou_threshold", iou_threshold))

    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(boxes.shape[0], dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1 :]
        iou = broadcast_iou(boxes[i], boxes[rest])  # (len(rest),) overlap of box i with every lower-ranked box
        suppressed[rest[iou > threshold]] = True
    return np.array(keep, dtype=np.int64)


def batched_nms(boxes, scores, labels, iou_threshold):
    r"""Non-maximum suppression within each label, independently.

    Parameters
    ----------
    boxes : (R, 4) float32 array_like
    scores : (R,) float32 array_like
    labels : (R,) int array_like
        Boxes only suppress boxes of the same label.
    iou_threshold : float in [0, 1]

    Returns
    -------
    keep : (K,) int64 ndarray
        Indices into ``boxes``, by descending score over all labels; equal scores keep the lower index first.

    Notes
    -----
    The same as running :func:`nms` on each label's boxes and merging the results by ``(-score, index)``.  Mask
    voting uses it for its per-class NMS, with one copy of every ROI per foreground class.  The accelerated twin
    offers kernels that do all labels in one launch.

    Examples
    --------
    >>> b = np.array([[0, 0, 4, 4], [1, 1, 5, 5], [1, 1, 5, 5]], np.float32)
    >>> # boxes 0 and 1 share label 7 and overlap by 9/23 > 0.3; box 2 is alone in label 8
    >>> batched_nms(b, np.array([.9, .8, .7], np.float32), np.array([7, 7, 8]), 0.3)
    array([0, 2])
    """
    boxes = as_boxes("boxes", boxes)
    scores = as_scores("scores", scores, boxes.shape[0])
    labels = as_labels("labels", labels, boxes.shape[0])
    as_probability("iou_threshold", iou_threshold)
    keep = [np.flatnonzero(labels == c)[nms(boxes[labels == c], scores[labels == c], iou_threshold)]
            for c in np.unique(labels)]
    keep = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    order = np.lexsort((keep, -scores[keep]))  # by descending score, then index
    return keep[order].astype(np.int64)
