r"""Pasting ``P x P`` mask probabilities into the image, inside their boxes.

FCIS assembles one small mask per ROI and class; to compare it with anything in the image it is resized to the
ROI's rounded box and written at the box's place (Li et al., CVPR 2017, Sec. 3, inference).  The resize is
bilinear, with OpenCV's ``INTER_LINEAR`` sampling grid on float images, and it is separable: a ``(h, P)`` matrix
of row weights and a ``(w, P)`` matrix of column weights give the pasted box as ``Wy @ mask @ Wx.T``.

Only the part of a box that lies in the image is ever computed (:func:`paste_mask_region`), so a box far outside
the image costs nothing and mask voting can paste many voters into a small window.  :func:`paste_masks_loop` is the
template of the GPU kernels (one image pixel at a time, with their names); the tests hold it to :func:`paste_masks`.
"""

import math

import numpy as np

from ._checks import (
    as_array,
    as_binary_threshold,
    as_boxes,
    as_image_shape,
    as_mask_probs,
    round_half_away,
)

#: Columns of a paste region (:func:`box_regions`): the rounded box ``Y1, X1, h, w``, then its half-open part inside
#: the image, rows ``[TOP, BOTTOM)`` and columns ``[LEFT, RIGHT)``.  The kernels use the same names.
REGION_Y1, REGION_X1, REGION_H, REGION_W, REGION_TOP, REGION_LEFT, REGION_BOTTOM, REGION_RIGHT = range(8)
REGION_FIELDS = 8


def paste_masks(masks, boxes, image_shape, *, threshold=None):
    r"""Resize each mask to its rounded box and write it into an image-sized canvas.

    Parameters
    ----------
    masks : (D, P, P) float32 array_like
        Mask probabilities in ``[0, 1]``.  Non-square ``(D, Ph, Pw)`` masks are accepted too: rows are resampled
        from ``Ph``, columns from ``Pw``.
    boxes : (D, 4) float32 array_like
        ``(x1, y1, x2, y2)``, half-open, image pixels; may extend beyond the image or lie wholly outside it, but
        coordinates must lie within ``[-MAX_COORDINATE, MAX_COORDINATE]`` (:math:`2^{23}`).
    image_shape : (H, W)
    threshold : float in (0, 1], optional
        When given, return ``prob >= float32(threshold)`` instead of the probabilities.  It must be positive, so
        that every pixel outside the boxes (probability 0) stays False.

    Returns
    -------
    pasted : (D, H, W) float32 ndarray, or bool ndarray when ``threshold`` is given
        Zero (False) outside each rounded box.

    Notes
    -----
    Per detection, the box is rounded half away from zero: ``X1 = round(x1)``, ``X2 = round(x2)``,
    ``w = max(X2 - X1, 1)``, likewise ``Y1``, ``h``.  Image column ``x`` in ``[X1, X1 + w)`` samples the mask at

    .. math:: u = \mathrm{clamp}\left(\frac{(x - X_1 + 0.5)\,P}{w} - 0.5,\; 0,\; P - 1\right)

    by linear interpolation between columns ``floor(u)`` and ``min(floor(u) + 1, P - 1)``; rows likewise.  This is
    OpenCV's ``resize(..., INTER_LINEAR)`` on a float image, which the official code uses to bring each ROI's
    mask to its box at inference (Li et al., CVPR 2017, Sec. 3).  See :func:`paste_mask_region` for the float32
    order of operations.

    Examples
    --------
    >>> # columns: u = (x - 1 + 0.5) * 2 / 4 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> 0, 0.25, 0.75, 1
    >>> paste_masks(np.array([[[0.0, 1.0], [0.0, 1.0]]]), [[1, 0, 5, 2]], (2, 6))
    array([[[0.  , 0.  , 0.25, 0.75, 1.  , 0.  ],
            [0.  , 0.  , 0.25, 0.75, 1.  , 0.  ]]], dtype=float32)
    >>> paste_masks(np.array([[[0.0, 1.0], [0.0, 1.0]]]), [[1, 0, 5, 2]], (2, 6), threshold=0.5)[0, 0]
    array([False, False, False,  True,  True, False])
    """
    masks, boxes, (height, width), threshold = check_paste_args(masks, boxes, image_shape, threshold)
    regions = box_regions(boxes, height, width)  # (D, REGION_FIELDS)
    pasted = np.zeros((masks.shape[0], height, width), np.float32)  # (D, H, W)
    for d in range(masks.shape[0]):
        y0, x0, values = paste_region(masks[d], regions[d])
        pasted[d, y0 : y0 + values.shape[0], x0 : x0 + values.shape[1]] = values
    if threshold is None:
        return pasted
    return pasted >= threshold


def paste_masks_loop(masks, boxes, image_shape, *, threshold=None):
    r"""Pasting, one image pixel at a time: the template of the paste kernels, the same result as :func:`paste_masks`.

    Parameters and Returns are those of :func:`paste_masks`.

    Notes
    -----
    The kernels' own names: region row ``regions[d]`` (:func:`box_regions`), image pixel ``(y, x)`` of its in-image
    part, mask cells ``v0, v1`` (rows) and ``u0, u1`` (columns) with the weights ``ay``, ``ax`` of the second cell
    (:func:`axis_coord`), and the two-tap sums of :func:`bilinear`.  A GPU thread computes one ``(d, y, x)``.

    Examples
    --------
    >>> paste_masks_loop(np.array([[[0.0, 1.0], [0.0, 1.0]]]), [[1, 0, 5, 2]], (2, 6))
    array([[[0.  , 0.  , 0.25, 0.75, 1.  , 0.  ],
            [0.  , 0.  , 0.25, 0.75, 1.  , 0.  ]]], dtype=float32)
    """
    masks, boxes, (height, width), threshold = check_paste_args(masks, boxes, image_shape, threshold)
    regions = box_regions(boxes, height, width)  # (D, REGION_FIELDS)
    mask_h, mask_w = masks.shape[1], masks.shape[2]
    out = np.zeros((masks.shape[0], height, width), np.float32)
    for d in range(masks.shape[0]):
        y1, x1, h, w = regions[d, REGION_Y1], regions[d, REGION_X1], regions[d, REGION_H], regions[d, REGION_W]
        for y in range(regions[d, REGION_TOP], regions[d, REGION_BOTTOM]):
            v0, v1, ay = axis_coord(y - y1, mask_h, h)
            for x in range(regions[d, REGION_LEFT], regions[d, REGION_RIGHT]):
                u0, u1, ax = axis_coord(x - x1, mask_w, w)
                out[d, y, x] = bilinear(masks[d, v0, u0], masks[d, v0, u1], masks[d, v1, u0], masks[d, v1, u1], ay, ax)
    if threshold is None:
        return out
    return out >= threshold


def check_paste_args(masks, boxes, image_shape, threshold, *, device=False):
    """Validated ``(masks, boxes, (H, W), threshold)`` of a paste; ``threshold`` becomes float32 (or stays None).

    ``device=True`` (the accelerated wrappers) checks a GPU ``masks`` where it is; ``boxes`` is a host array.
    """
    masks = as_mask_probs("masks", masks, ndim=3, device=device)
    boxes = as_boxes("boxes", boxes)
    if boxes.shape[0] != masks.shape[0]:
        raise ValueError(f"boxes must have shape ({masks.shape[0]}, 4) to match masks, got {boxes.shape}")
    image_shape = as_image_shape("image_shape", image_shape)
    if threshold is not None:
        threshold = as_binary_threshold("threshold", threshold)
    return masks, boxes, image_shape, threshold


def box_regions(boxes, height, width):
    """``(R, REGION_FIELDS)`` int64 paste regions of checked ``(R, 4)`` boxes in an ``H x W`` image.

    Row ``d`` holds the rounded box, ``REGION_Y1, REGION_X1`` (``round_half_away``) and ``REGION_H, REGION_W`` (at
    least 1), then its half-open intersection with the image, ``REGION_TOP, REGION_LEFT, REGION_BOTTOM,
    REGION_RIGHT``: :func:`paste_mask_region`'s ``y0, x0`` and extents.  An empty intersection has ``BOTTOM == TOP``
    or ``RIGHT == LEFT``.

    Examples
    --------
    >>> box_regions(np.float32([[-2.5, 1.4, 3.0, 9.0]]), 5, 6)  # Y1, X1, h, w, top, left, bottom, right
    array([[ 1, -3,  8,  6,  1,  0,  5,  3]])
    """
    x1, y1, x2, y2 = round_half_away(np.reshape(boxes, (-1, 4))).astype(np.int64).T  # (4, R) X1, Y1, X2, Y2
    h, w = np.maximum(y2 - y1, 1), np.maximum(x2 - x1, 1)
    top, left = np.clip(y1, 0, height), np.clip(x1, 0, width)
    bottom, right = np.maximum(np.minimum(y1 + h, height), top), np.maximum(np.minimum(x1 + w, width), left)
    return np.stack([y1, x1, h, w, top, left, bottom, right], axis=1)  # in REGION_* order


def axis_coord(offset, p, size):
    """Sample position of pixel ``offset`` of a ``size``-pixel box side on a ``p``-cell mask axis.

    Returns ``(i0, i1, a)``: the two cells and the float32 weight of ``i1``, with
    ``u = (float32(offset) + 0.5) * p / size - 0.5``, left to right in float32, clamped to ``[0, p - 1]``.
    """
    u = (np.float32(offset) + np.float32(0.5)) * np.float32(p) / np.float32(size) - np.float32(0.5)
    u = min(max(u, np.float32(0)), np.float32(p - 1))
    i0 = int(math.floor(u))
    return i0, min(i0 + 1, p - 1), np.float32(u - np.float32(i0))


def lerp(v0, v1, a):
    """``fl(fl((1 - a) * v0) + fl(a * v1))`` in float32: the two-tap sum of one axis (no fused multiply-add)."""
    return np.float32((np.float32(1) - a) * np.float32(v0)) + np.float32(a * np.float32(v1))


def bilinear(m00, m01, m10, m11, ay, ax):
    """Bilinear sample of the cells ``m[v0, u0], m[v0, u1], m[v1, u0], m[v1, u1]``: rows first, then columns."""
    return lerp(lerp(m00, m10, ay), lerp(m01, m11, ay), ax)


def paste_mask_region(mask, box, image_shape):
    r"""The in-image part of one mask pasted into its rounded box.

    Parameters
    ----------
    mask : (P, P) float32 array_like
        Mask probabilities in ``[0, 1]`` (``(Ph, Pw)`` is accepted too).
    box : (4,) float32 array_like
        ``(x1, y1, x2, y2)``, half-open, image pixels, within ``[-MAX_COORDINATE, MAX_COORDINATE]``.
    image_shape : (H, W)

    Returns
    -------
    y0, x0 : int
        Image row and column of ``values[0, 0]``: ``max(Y1, 0)`` and ``max(X1, 0)``, clipped to ``[0, H]`` and
        ``[0, W]``.
    values : (h', w') float32 ndarray
        The pasted probabilities on rows ``[y0, y0 + h')`` and columns ``[x0, x0 + w')``; ``(0, 0)`` when the
        rounded box does not meet the image (both extents are 0 then, never just one).

    Notes
    -----
    In float32, for each image column ``x`` of the box that lies in the image:
    ``u = (float32(x - X1) + 0.5) * P / w - 0.5`` (left to right), clamped to ``[0, P - 1]``;
    ``u0 = floor(u)``, ``u1 = min(u0 + 1, P - 1)``, ``a = u - u0``; the column-weight row holds ``1 - a`` at
    ``u0`` and ``a`` at ``u1`` (they add up when ``u0 = u1``).  Rows likewise.  The pasted values are
    ``(Wy @ mask) @ Wx.T``: rows first, then columns, each a product of float32 weights and values rounded on
    its own and then summed (no BLAS, no fused multiply-add), so that every value is
    ``fl(fl(wx0 * r0) + fl(wx1 * r1))`` with ``r = fl(fl(wy0 * m[v0]) + fl(wy1 * m[v1]))``, bit for bit on any
    machine and whatever part of the box lies in the image.  ``float32(x - X1) + 0.5`` is exact for boxes
    narrower than :math:`2^{23}` pixels; the coordinate limit ``MAX_COORDINATE`` keeps every intermediate finite.

    Examples
    --------
    >>> # box columns [-2, 2): only image columns 0, 1 remain, sampling u = 0.75, 1.25 -> 0.75, 1 (clamped)
    >>> paste_mask_region(np.array([[0.0, 1.0]]), [-2, 0, 2, 1], (3, 3))
    (0, 0, array([[0.75, 1.  ]], dtype=float32))
    >>> paste_mask_region(np.array([[0.0, 1.0]]), [5, 0, 9, 1], (3, 3))
    (0, 3, array([], shape=(0, 0), dtype=float32))
    """
    mask = as_mask_probs("mask", mask, ndim=2)
    box = as_array("box", box, ndim=1)
    if box.shape != (4,):
        raise ValueError(f"box must have shape (4,), got {box.shape}")
    as_boxes("box", box[None, :])  # x1 <= x2, y1 <= y2, coordinates in range
    height, width = as_image_shape("image_shape", image_shape)
    return paste_region(mask, box_regions(box, height, width)[0])


def paste_region(mask, region):
    """Unchecked core of every paste: ``(y0, x0, values)`` of :func:`paste_mask_region` for a checked ``(Ph, Pw)``
    mask and its row of :func:`box_regions`, computed as ``(Wy @ mask) @ Wx.T`` on the in-image part of the box."""
    y0, y1, h, stop_y = region[REGION_TOP], region[REGION_Y1], region[REGION_H], region[REGION_BOTTOM]
    x0, x1, w, stop_x = region[REGION_LEFT], region[REGION_X1], region[REGION_W], region[REGION_RIGHT]
    wy = _axis_weights(np.arange(y0, stop_y) - y1, h, mask.shape[0])  # (h', Ph) row weights
    wx = _axis_weights(np.arange(x0, stop_x) - x1, w, mask.shape[1])  # (w', Pw) column weights
    if wy.shape[0] == 0 or wx.shape[0] == 0:
        return int(y0), int(x0), np.zeros((0, 0), np.float32)
    # (Wy @ mask) @ Wx.T as separate products and sums, never BLAS: every row of Wy and Wx has at most two
    # non-zero weights and every other product is an exact 0, so each sum is fl(fl(w0 * m0) + fl(w1 * m1))
    # whatever the summation order, with no fused multiply-add
    rows = (wy[:, :, None] * mask[None, :, :]).sum(axis=1)  # (h', Ph, 1) * (1, Ph, Pw) summed -> (h', Pw)
    values = (rows[:, None, :] * wx[None, :, :]).sum(axis=2)  # (h', 1, Pw) * (1, w', Pw) summed -> (h', w')
    return int(y0), int(x0), values


def _axis_weights(offset, size, p):
    """``(n, p)`` float32 linear-interpolation weights: row ``i`` samples the ``p`` mask cells for box pixel
    ``offset[i]`` of a ``size``-pixel box side (:func:`axis_coord` for all of them at once)."""
    u = (offset.astype(np.float32) + np.float32(0.5)) * np.float32(p) / np.float32(size) - np.float32(0.5)
    u = np.clip(u, np.float32(0), np.float32(p - 1))
    u0 = np.floor(u).astype(np.int64)
    u1 = np.minimum(u0 + 1, p - 1)
    a = u - u0.astype(np.float32)  # (n,) weight of the upper neighbour
    weights = np.zeros((offset.shape[0], p), np.float32)  # (n, p)
    rows = np.arange(offset.shape[0])
    weights[rows, u0] += np.float32(1) - a
    weights[rows, u1] += a
    return weights
