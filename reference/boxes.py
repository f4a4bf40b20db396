r"""Box arithmetic on half-open, continuous pixel coordinates.

A box is ``(x1, y1, x2, y2)``: pixel column ``j`` covers ``[j, j + 1)``, so a box's width is ``x2 - x1`` with no
``+1``.  All arithmetic is float32, in the order written here, so that a GPU kernel doing the same operations gets
bit-identical IoUs (see ``docs/conventions.md``).
"""

import math

import numpy as np

from ._checks import as_array, as_boxes, as_image_shape

#: Largest log-scale step applied by :func:`decode_boxes`: ``dw``, ``dh`` are clamped here before ``exp``.  This
#: project's own safeguard against overflow of ``exp``; the official decoder (``lib/bbox/bbox_transform.py``,
#: ``nonlinear_pred``) and ChainerCV's ``loc2bbox`` do not clamp.
BBOX_XFORM_CLIP = np.float32(math.log(1000.0 / 16.0))

#: De-normalisation of the head's box deltas ``(dx, dy, dw, dh)``; the RPN uses ``(1, 1, 1, 1)``.
HEAD_STDS = (0.2, 0.2, 0.5, 0.5)


def box_area(boxes):
    """Area of half-open boxes.

    Parameters
    ----------
    boxes : (R, 4) float32 array_like
        ``(x1, y1, x2, y2)``.

    Returns
    -------
    area : (R,) float32 ndarray
        ``(x2 - x1) * (y2 - y1)``; zero for degenerate boxes.

    Examples
    --------
    >>> box_area([[0, 0, 4, 2], [3, 3, 3, 7]])
    array([8., 0.], dtype=float32)
    """
    boxes = as_boxes("boxes", boxes)
    return _area(boxes)


def _area(boxes):
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(a, b):
    r"""Pairwise intersection over union.

    Parameters
    ----------
    a : (N, 4) float32 array_like
    b : (M, 4) float32 array_like

    Returns
    -------
    iou : (N, M) float32 ndarray
        In ``[0, 1]``; 0 whenever the union is empty (two zero-area boxes), never NaN.

    Notes
    -----
    .. math:: \mathrm{IoU}(a, b) = \frac{|a \cap b|}{|a| + |b| - |a \cap b|}

    computed in float32 in exactly this order.

    Examples
    --------
    >>> # intersection [1, 4) x [1, 4) = 9, union = 16 + 16 - 9 = 23
    >>> box_iou([[0, 0, 4, 4]], [[1, 1, 5, 5]])
    array([[0.39130434]], dtype=float32)
    """
    a = as_boxes("a", a)
    b = as_boxes("b", b)
    return broadcast_iou(a[:, None, :], b[None, :, :])


def broadcast_iou(a, b):
    """IoU of broadcastable float32 ``(..., 4)`` box arrays, without checks: the formula every kernel repeats, which
    :func:`box_iou`, NMS and mask voting share (0 where the union is empty).

    Examples
    --------
    >>> broadcast_iou(np.float32([0, 0, 2, 2]), np.float32([[1, 0, 3, 2], [4, 4, 4, 4]]))  # 2 / 6, empty union
    array([0.33333334, 0.        ], dtype=float32)
    """
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), np.float32(0))
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), np.float32(0))
    inter = iw * ih
    union = _area(a) + _area(b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, np.float32(0)).astype(np.float32)


def encode_boxes(src, dst, stds=(1.0, 1.0, 1.0, 1.0)):
    r"""Deltas that move ``src`` boxes onto ``dst`` boxes (the R-CNN parametrization).

    Parameters
    ----------
    src : (R, 4) float32 array_like
        Reference boxes (anchors or ROIs); widths and heights must be positive.
    dst : (R, 4) float32 array_like
        Target boxes; widths and heights must be positive.
    stds : 4 floats
        Each delta is divided by its std (``HEAD_STDS`` for the detection head).

    Returns
    -------
    deltas : (R, 4) float32 ndarray
        ``(dx, dy, dw, dh)``.

    Notes
    -----
    With :math:`w = x_2 - x_1`, :math:`c_x = x_1 + w/2` (same for y):
    :math:`d_x = (c_x' - c_x)/w`, :math:`d_w = \log(w'/w)`, each divided by its std.

    Examples
    --------
    >>> encode_boxes([[0, 0, 10, 10]], [[5, 0, 15, 20]])
    array([[0.5      , 0.5      , 0.       , 0.6931472]], dtype=float32)
    """
    src = as_boxes("src", src)
    dst = as_boxes("dst", dst)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same shape, got {src.shape} and {dst.shape}")
    stds = _as_stds(stds)
    for name, bx in (("src", src), ("dst", dst)):
        if ((bx[:, 2] <= bx[:, 0]) | (bx[:, 3] <= bx[:, 1])).any():
            raise ValueError(f"{name} boxes must have positive width and height to be encoded")
    sw, sh, scx, scy = _center_size(src)
    dw, dh, dcx, dcy = _center_size(dst)
    deltas = np.stack(
        [(dcx - scx) / sw, (dcy - scy) / sh, np.log(dw / sw), np.log(dh / sh)], axis=1
    )  # (R, 4) as (dx, dy, dw, dh)
    return (deltas / stds).astype(np.float32)


def decode_boxes(boxes, deltas, stds=(1.0, 1.0, 1.0, 1.0)):
    r"""Apply deltas to boxes (inverse of :func:`encode_boxes`).

    Parameters
    ----------
    boxes : (R, 4) float32 array_like
        Reference boxes (anchors or ROIs).
    deltas : (R, 4) float32 array_like
        ``(dx, dy, dw, dh)`` as produced by a network, normalised by ``stds``.
    stds : 4 floats
        Multiplied back onto the deltas before they are applied.

    Returns
    -------
    decoded : (R, 4) float32 ndarray
        Not clipped to the image (see :func:`clip_boxes`).  A CuPy array when ``boxes`` and ``deltas`` are: the
        arithmetic then runs on the GPU (``docs/conventions.md``, "The whole graph").

    Notes
    -----
    ``dw`` and ``dh`` (after de-normalisation) are clamped at :math:`\log(1000/16)` before ``exp``, so that a wild
    delta cannot overflow.  The clamp is this project's own safeguard: the official decoder
    (``lib/bbox/bbox_transform.py``, ``nonlinear_pred``, aliased ``bbox_pred``) applies ``np.exp`` to ``dw``, ``dh``
    unclamped, and so does ChainerCV's ``loc2bbox``.

    Examples
    --------
    >>> decode_boxes([[0, 0, 10, 10]], [[0.5, 0.5, 0.0, 0.6931472]])
    array([[ 5.,  0., 15., 20.]], dtype=float32)
    """
    boxes = as_boxes("boxes", boxes, device=True)
    deltas = as_array("deltas", deltas, ndim=2, last=4, device=True)
    if deltas.shape[0] != boxes.shape[0]:
        raise ValueError(f"deltas must have shape ({boxes.shape[0]}, 4) to match boxes, got {deltas.shape}")
    deltas = deltas * np.asarray(_as_stds(stds), like=deltas)  # like=: where deltas are (the GPU for CuPy's)
    w, h, cx, cy = _center_size(boxes)
    with np.errstate(over="ignore"):  # a wild but finite dx may overflow to +-inf; clip_boxes takes it
        pcx = deltas[:, 0] * w + cx
        pcy = deltas[:, 1] * h + cy
        pw = np.exp(np.minimum(deltas[:, 2], BBOX_XFORM_CLIP)) * w
        ph = np.exp(np.minimum(deltas[:, 3], BBOX_XFORM_CLIP)) * h
        half = np.float32(0.5)
        out = np.stack([pcx - half * pw, pcy - half * ph, pcx + half * pw, pcy + half * ph], axis=1)
    return out.astype(np.float32)


def clip_boxes(boxes, image_shape):
    """Clip boxes to the image ``[0, W] x [0, H]`` (half-open: the right edge is ``W``, not ``W - 1``).

    Parameters
    ----------
    boxes : (R, 4) float32 array_like
        May extend outside the image, even to infinity (a decoded wild delta); NaN is rejected.  ``x2 < x1`` is
        allowed here: clipping must not fail on what a decoder produced.
    image_shape : (H, W)

    Returns
    -------
    clipped : (R, 4) float32 ndarray
        A CuPy array, computed on the GPU, when ``boxes`` is one.

    Examples
    --------
    >>> clip_boxes([[-3, 2, 12, 40]], (20, 10))
    array([[ 0.,  2., 10., 20.]], dtype=float32)
    """
    boxes = as_array("boxes", boxes, ndim=2, last=4, finite=False, device=True)
    if np.isnan(boxes).any():
        raise ValueError("boxes must not contain NaN")
    h, w = as_image_shape("image_shape", image_shape)
    limits = np.array([w, h, w, h], np.float32, like=boxes)
    return np.clip(boxes, np.float32(0), limits).astype(np.float32)


def _center_size(boxes):
    """Width, height and centre of (R, 4) boxes, float32."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    half = np.float32(0.5)
    return w, h, boxes[:, 0] + half * w, boxes[:, 1] + half * h


def _as_stds(stds):
    arr = as_array("stds", stds, ndim=1)
    if arr.shape != (4,) or (arr <= 0).any():
        raise ValueError(f"stds must be 4 positive numbers, got {stds!r}")
    return arr


def tight_boxes(masks):
    """Tight half-open boxes of binary masks.

    Parameters
    ----------
    masks : (n, H, W) bool array_like

    Returns
    -------
    boxes : (n, 4) float32 ndarray
        ``(min column, min row, max column + 1, max row + 1)``; ``(0, 0, 0, 0)`` for an empty mask.

    Examples
    --------
    >>> m = np.zeros((1, 4, 5), bool)
    >>> m[0, 1:3, 2] = True  # rows 1, 2 of column 2
    >>> tight_boxes(m)
    array([[2., 1., 3., 3.]], dtype=float32)
    """
    masks = as_array("masks", masks, ndim=3, dtype=bool)
    boxes = np.zeros((masks.shape[0], 4), np.float32)
    for i, m in enumerate(masks):
        cols = np.flatnonzero(m.any(axis=0))
        rows = np.flatnonzero(m.any(axis=1))
        if cols.size:
            boxes[i] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return boxes
