r"""Region proposals: RPN outputs and anchors in, scored boxes out.

:func:`rpn_outputs_to_anchor_order` flattens the official RPN output maps into the ``(y, x, anchor)`` order of
:func:`fcis_twin.reference.anchors.shift_anchors`; :func:`propose` decodes, clips, filters, ranks and suppresses, as the
official ``proposal`` operator of FCIS does at test time, except that it never pads the result with random repeats
(``docs/conventions.md``).
"""

from typing import NamedTuple

import numpy as np

from ._checks import as_array, as_boxes, as_float, as_image_shape, as_int, as_probabilities, as_probability
from .boxes import clip_boxes, decode_boxes
from .nms import nms

#: The RPN's deltas are not normalised: de-normalisation stds ``(1, 1, 1, 1)``.
RPN_STDS = (1.0, 1.0, 1.0, 1.0)


class Proposals(NamedTuple):
    """Proposals by descending score; unpacks as ``boxes, scores = propose(...)``.

    Attributes
    ----------
    boxes : (K, 4) float32 ndarray
        ``(x1, y1, x2, y2)``, half-open, clipped to the image.
    scores : (K,) float32 ndarray
        The foreground probability of the anchor each box was decoded from, non-increasing.
    """

    boxes: np.ndarray
    scores: np.ndarray


def rpn_outputs_to_anchor_order(rpn_prob, rpn_deltas):
    r"""Flatten the official RPN output maps into the ``(y, x, anchor)`` order of the anchors.

    Parameters
    ----------
    rpn_prob : (1, 2*A, H, W) float32 array_like
        Softmax probabilities in ``[0, 1]``; channels ``[0, A)`` background, ``[A, 2A)`` foreground.
    rpn_deltas : (1, 4*A, H, W) float32 array_like
        Box deltas; channel ``a*4 + coord`` with ``coord`` in ``(dx, dy, dw, dh)``.

    Returns
    -------
    fg_prob : (H*W*A,) float32 ndarray
        Row ``(y * W + x) * A + a`` is ``rpn_prob[0, A + a, y, x]``.
    deltas : (H*W*A, 4) float32 ndarray
        Row ``(y * W + x) * A + a`` is ``rpn_deltas[0, a*4 : a*4 + 4, y, x]``.

    Both are CuPy arrays, never copied to the host, when the inputs are (``docs/conventions.md``, "The whole graph").

    Raises
    ------
    ValueError
        If the batch size ``N`` is not 1 (only single-image inference is supported), the channel counts are not
        ``2*A`` and ``4*A`` for the same ``A``, the spatial sizes differ, or ``rpn_prob`` is not a probability.

    Notes
    -----
    The layout is the official MXNet code's (FCIS, Li et al. 2017; RPN of Ren et al. 2015, Sec. 3.1): its
    ``proposal`` operator takes ``prob[:, A:]`` and transposes both maps to ``(N, H, W, channels)`` before
    flattening, which is what this function does for ``N = 1``.  The official operator also crops maps that are
    larger than the image's feature grid; here the maps must already match the anchors.

    Examples
    --------
    >>> # A = 1, H = 1, W = 2: background channel 0, foreground channel 1
    >>> prob = np.float32([[[[0.9, 0.2]], [[0.1, 0.8]]]])  # (1, 2, 1, 2)
    >>> deltas = np.arange(8, dtype=np.float32).reshape(1, 4, 1, 2)  # channel coord, column x
    >>> fg, d = rpn_outputs_to_anchor_order(prob, deltas)
    >>> fg
    array([0.1, 0.8], dtype=float32)
    >>> d
    array([[0., 2., 4., 6.],
           [1., 3., 5., 7.]], dtype=float32)
    """
    prob = as_probabilities("rpn_prob", rpn_prob, ndim=4, device=True)
    deltas = as_array("rpn_deltas", rpn_deltas, ndim=4, device=True)
    for name, arr in (("rpn_prob", prob), ("rpn_deltas", deltas)):
        if arr.shape[0] != 1:
            raise ValueError(f"{name} must have batch size N = 1 (single-image inference), got shape {arr.shape}")
    if prob.shape[1] % 2:
        raise ValueError(f"rpn_prob must have 2*A channels (background, foreground), got shape {prob.shape}")
    _, two_a, h, w = prob.shape
    a = two_a // 2
    if deltas.shape != (1, 4 * a, h, w):
        raise ValueError(f"rpn_deltas must have shape {(1, 4 * a, h, w)} to match rpn_prob, got {deltas.shape}")

    fg_prob = scores_in_anchor_order(prob)[:, 1]  # (H*W*A,) foreground
    d = deltas_in_anchor_order(deltas)  # (H*W*A, 4)
    # like=: NumPy's dispatch keeps a CuPy array on the GPU (ascontiguousarray converts to NumPy without it)
    return np.ascontiguousarray(fg_prob, like=fg_prob), np.ascontiguousarray(d, like=d)


def scores_in_anchor_order(maps):
    """The RPN's background and foreground maps, one row per anchor.

    ``maps`` is ``(1, 2*A, H, W)``, scores or probabilities; the result is an ``(H*W*A, 2)`` view, row
    ``(y * W + x) * A + a`` holding channels ``a`` and ``A + a`` at ``(y, x)``, unchecked.  Inference reads
    probabilities through it, training the scores its loss is taken on.
    """
    _, two_a, h, w = maps.shape
    return maps[0].reshape(2, two_a // 2, h, w).transpose(2, 3, 1, 0).reshape(-1, 2)  # (H, W, A, bg/fg)


def deltas_in_anchor_order(maps):
    """The RPN's delta maps, one row per anchor.

    ``maps`` is ``(1, 4*A, H, W)``; the result is ``(H*W*A, 4)``, row ``(y * W + x) * A + a`` holding channels
    ``a*4 .. a*4 + 3`` at ``(y, x)``, unchecked.
    """
    _, four_a, h, w = maps.shape
    return maps[0].reshape(four_a // 4, 4, h, w).transpose(2, 3, 0, 1).reshape(-1, 4)  # (H, W, A, coord)


def scores_to_rpn_layout(per_anchor, feature_shape):
    """The inverse of :func:`scores_in_anchor_order`.

    ``(H*W*A, 2)`` values (the gradient of a loss, say) back into the ``(1, 2*A, H, W)`` layout of the RPN's maps.
    """
    h, w = feature_shape
    a = per_anchor.shape[0] // (h * w)
    return per_anchor.reshape(h, w, a, 2).transpose(3, 2, 0, 1).reshape(1, 2 * a, h, w)


def deltas_to_rpn_layout(per_anchor, feature_shape):
    """The inverse of :func:`deltas_in_anchor_order`.

    ``(H*W*A, 4)`` values back into the ``(1, 4*A, H, W)`` layout of the RPN's maps.
    """
    h, w = feature_shape
    a = per_anchor.shape[0] // (h * w)
    return per_anchor.reshape(h, w, a, 4).transpose(2, 3, 0, 1).reshape(1, 4 * a, h, w)


def propose(
    fg_prob, deltas, anchors, image_shape, *, pre_nms_top_n=6000, post_nms_top_n=300, nms_threshold=0.7, min_size=2,
    nms_kernel=nms,
):
    r"""Turn anchors, their foreground probabilities and deltas into at most ``post_nms_top_n`` proposals.

    Parameters
    ----------
    fg_prob : (R,) float32 array_like
        Foreground probability of each anchor, finite, in ``[0, 1]``.
    deltas : (R, 4) float32 array_like
        RPN deltas ``(dx, dy, dw, dh)`` of each anchor (stds ``(1, 1, 1, 1)``).
    anchors : (R, 4) float32 array_like
        Half-open anchors in image pixels, e.g. :func:`fcis_twin.reference.anchors.shift_anchors`; this sets ``R``.
    image_shape : (H, W)
        Image height and width in pixels; boxes are clipped to ``[0, W] x [0, H]``.
    pre_nms_top_n : int >= 1
        How many of the best-scored surviving boxes enter NMS.
    post_nms_top_n : int >= 1
        How many NMS survivors are returned at most.
    nms_threshold : float in [0, 1]
        A box is suppressed when its IoU with a better kept box is strictly greater than this.
    min_size : finite real >= 0
        Boxes narrower or lower than this, after clipping, are dropped (kept: ``w >= min_size`` and
        ``h >= min_size``, compared in float32).
    nms_kernel : callable
        The NMS of step 5, with the signature of :func:`fcis_twin.reference.nms.nms` (the default); a backend's
        NMS (``fcis_twin.accelerated.nms.nms`` with its ``backend``) gives the same result.

    Returns
    -------
    Proposals
        ``(boxes, scores)``: ``(K, 4)`` and ``(K,)`` float32, ``K <= post_nms_top_n``, by descending score.
        ``K`` is smaller when fewer boxes survive; nothing is padded.  With CuPy ``fg_prob``, ``deltas`` and
        ``anchors`` and a ``nms_kernel`` that takes CuPy arrays (a GPU backend's), every step runs on the GPU and
        the proposals are CuPy arrays.

    Notes
    -----
    FCIS (Li et al. 2017) feeds the 300 best-scored RPN proposals of an image to its head at inference; the
    defaults are the official test values (``TEST.RPN_PRE_NMS_TOP_N`` 6000, ``RPN_POST_NMS_TOP_N`` 300,
    ``RPN_NMS_THRESH`` 0.7) with the COCO configuration's ``RPN_MIN_SIZE`` 2 (the official default,
    ``fcis/config/config.py``, is the feature stride, 16).  The steps, in this order:

    1. decode: :func:`fcis_twin.reference.boxes.decode_boxes` of ``anchors`` with ``deltas`` and stds ``(1, 1, 1, 1)``;
    2. clip: :func:`fcis_twin.reference.boxes.clip_boxes` to ``image_shape``;
    3. filter: keep ``x2 - x1 >= min_size`` and ``y2 - y1 >= min_size``;
    4. rank: ``np.argsort(-fg_prob, kind="stable")`` of the survivors, first ``pre_nms_top_n`` (ties: lower
       anchor index first);
    5. suppress: :func:`fcis_twin.reference.nms.nms` at ``nms_threshold``, first ``post_nms_top_n``.

    The official code measures ``min_size`` on inclusive boxes (``x2 - x1 + 1``), which is our half-open width,
    and sorts with an unstable ``argsort()[::-1]``; here ties go to the lower anchor index, and a short result is
    returned as it is instead of being padded with random repeats.

    Examples
    --------
    >>> # box 1 overlaps box 0 with IoU 90 / 110 = 0.82 > 0.7 and goes; box 2 is clipped to [25, 30)
    >>> anchors = np.float32([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]])
    >>> deltas = np.float32([[0, 0, 0, 0], [0, 0, 0, 0], [0.5, 0, 0, 0]])  # dx = 0.5 moves box 2 by 5
    >>> boxes, scores = propose(np.float32([0.9, 0.8, 0.7]), deltas, anchors, (10, 30))
    >>> boxes
    array([[ 0.,  0., 10., 10.],
           [25.,  0., 30., 10.]], dtype=float32)
    >>> scores
    array([0.9, 0.7], dtype=float32)
    """
    anchors = as_boxes("anchors", anchors, device=True)
    r = anchors.shape[0]
    fg_prob = as_probabilities("fg_prob", fg_prob, ndim=1, device=True)
    if fg_prob.shape[0] != r:
        raise ValueError(f"fg_prob must have shape ({r},) to match anchors, got {fg_prob.shape}")
    deltas = as_array("deltas", deltas, ndim=2, last=4, device=True)
    if deltas.shape[0] != r:
        raise ValueError(f"deltas must have shape ({r}, 4) to match anchors, got {deltas.shape}")
    image_shape = as_image_shape("image_shape", image_shape)
    pre_nms_top_n = as_int("pre_nms_top_n", pre_nms_top_n, low=1)
    post_nms_top_n = as_int("post_nms_top_n", post_nms_top_n, low=1)
    nms_threshold = as_probability("nms_threshold", nms_threshold)
    min_size = np.float32(as_float("min_size", min_size, low=0.0))

    # 1-2. decode on the anchors and clip to the image
    boxes = clip_boxes(decode_boxes(anchors, deltas, RPN_STDS), image_shape)  # (R, 4)

    # 3. drop boxes smaller than min_size on either side
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    big = np.flatnonzero((w >= min_size) & (h >= min_size))  # anchor indices, ascending
    boxes, scores = boxes[big], fg_prob[big]

    # 4. best pre_nms_top_n by score, ties by anchor index
    order = np.argsort(-scores, kind="stable")[:pre_nms_top_n]
    boxes, scores = boxes[order], scores[order]

    # 5. NMS; its keep indices are already by descending score
    keep = nms_kernel(boxes, scores, nms_threshold)[:post_nms_top_n]
    return Proposals(boxes[keep].reshape(-1, 4), scores[keep])

