r"""Pasting ``P x P`` mask probabilities into the image, inside their boxes.

FCIS assembles one small mask per ROI and class; to compare it with anything in the image it is resized to the
ROI's rounded box and written at the box's place (Li et al., CVPR 2017, Sec. 3, inference).  The resize is
bilinear, with OpenCV's ``INTER_LINEAR`` sampling grid on float images, and it is separable: a ``(h, P)`` matrix
of row weights and a ``(w, P)`` matrix of column weights give the pasted box as ``Wy @ mask @ Wx.T``.

Only the part of a box that lies in the image is ever computed (:func:`paste_mask_region`), so a box far outside
the image costs nothing and mask voting can paste many voters into a small window.
"""

import numpy as np

from ._checks import as_array, as_boxes, as_image_shape, as_probabilities, as_probability, round_half_away

#: Largest box coordinate magnitude a paste accepts: keeps every float32 intermediate of the sampling finite.
MAX_COORDINATE = 2.0**23


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
    threshold : float in [0, 1], optional
        When given, return ``prob >= float32(threshold)`` instead of the probabilities.

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
    masks = _as_mask_probs("masks", masks, ndim=3)
    boxes = _as_paste_boxes("boxes", boxes)
    if boxes.shape[0] != masks.shape[0]:
        raise ValueError(f"boxes must have shape ({masks.shape[0]}, 4) to match masks, got {boxes.shape}")
    height, width = as_image_shape("image_shape", image_shape)
    if threshold is not None:
        threshold = np.float32(as_probability("threshold", threshold))

    pasted = np.zeros((masks.shape[0], height, width), np.float32)  # (D, H, W)
    for d in range(masks.shape[0]):
        y0, x0, values = _paste_region(masks[d], boxes[d], height, width)
        pasted[d, y0 : y0 + values.shape[0], x0 : x0 + values.shape[1]] = values
    if threshold is None:
        return pasted
    return pasted >= threshold


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
    mask = _as_mask_probs("mask", mask, ndim=2)
    box = as_array("box", box, ndim=1)
    if box.shape != (4,):
        raise ValueError(f"box must have shape (4,), got {box.shape}")
    _as_paste_boxes("box", box[None, :])  # x1 <= x2, y1 <= y2, coordinates in range
    height, width = as_image_shape("image_shape", image_shape)
    return _paste_region(mask, box, height, width)


def _paste_region(mask, box, height, width):
    """Unchecked core of every paste: ``(y0, x0, (Wy @ mask) @ Wx.T)`` for the in-image part of the box."""
    x1, y1, x2, y2 = (int(v) for v in round_half_away(box))  # X1, Y1, X2, Y2
    y0, wy = _axis_weights(y1, max(y2 - y1, 1), mask.shape[0], height)  # (h', Ph) row weights
    x0, wx = _axis_weights(x1, max(x2 - x1, 1), mask.shape[1], width)  # (w', Pw) column weights
    if wy.shape[0] == 0 or wx.shape[0] == 0:
        return y0, x0, np.zeros((0, 0), np.float32)
    # (Wy @ mask) @ Wx.T as separate products and sums, never BLAS: every row of Wy and Wx has at most two
    # non-zero weights and every other product is an exact 0, so each sum is fl(fl(w0 * m0) + fl(w1 * m1))
    # whatever the summation order, with no fused multiply-add
    rows = (wy[:, :, None] * mask[None, :, :]).sum(axis=1)  # (h', Ph, 1) * (1, Ph, Pw) summed -> (h', Pw)
    values = (rows[:, None, :] * wx[None, :, :]).sum(axis=2)  # (h', 1, Pw) * (1, w', Pw) summed -> (h', w')
    return y0, x0, values


def _axis_weights(start, size, p, limit):
    """Linear-interpolation weights for the pixels ``[start, start + size)`` that lie in ``[0, limit)``.

    Returns the first in-image pixel (``start`` clipped to ``[0, limit]``) and a ``(n, p)`` float32 matrix whose
    row ``i`` samples the ``p`` mask cells for image pixel ``first + i``.
    """
    first = min(max(start, 0), limit)
    stop = max(min(start + size, limit), first)
    offset = np.arange(first - start, stop - start, dtype=np.int64)  # (n,) pixel index inside the box
    u = (offset.astype(np.float32) + np.float32(0.5)) * np.float32(p) / np.float32(size) - np.float32(0.5)
    u = np.clip(u, np.float32(0), np.float32(p - 1))
    u0 = np.floor(u).astype(np.int64)
    u1 = np.minimum(u0 + 1, p - 1)
    a = u - u0.astype(np.float32)  # (n,) weight of the upper neighbour
    weights = np.zeros((offset.shape[0], p), np.float32)  # (n, p)
    rows = np.arange(offset.shape[0])
    weights[rows, u0] += np.float32(1) - a
    weights[rows, u1] += a
    return first, weights


def _as_mask_probs(name, masks, *, ndim):
    """Float32 mask probabilities of rank ``ndim``: finite, in ``[0, 1]``, with a non-empty ``Ph x Pw`` grid."""
    masks = as_probabilities(name, masks, ndim=ndim)
    if masks.shape[-1] == 0 or masks.shape[-2] == 0:
        raise ValueError(f"{name} must have a non-empty mask grid (P >= 1), got shape {masks.shape}")
    return masks


def _as_paste_boxes(name, boxes):
    """``(R, 4)`` float32 boxes as :func:`fcis_twin.reference._checks.as_boxes`, coordinates within ``MAX_COORDINATE``."""
    boxes = as_boxes(name, boxes)
    if boxes.size and (np.abs(boxes) > MAX_COORDINATE).any():
        limit = f"{MAX_COORDINATE:.0f}"
        raise ValueError(f"{name} coordinates must lie in [-{limit}, {limit}] to be pasted")
    return boxes
