r"""Anchor boxes of the region proposal network.

The base anchors are the classic Faster R-CNN ``generate_anchors``: start from the inclusive box
``[0, 0, base_size - 1, base_size - 1]``, enumerate aspect ratios at constant area, then enumerate scales at
constant aspect ratio.  The classic code works on inclusive integer boxes; we compute in that form, in float64 as
it does, and convert to our half-open boxes at the end by adding 1 to ``x2`` and ``y2`` (``docs/conventions.md``).
:func:`shift_anchors` then places a copy of every base anchor at every feature-map cell.
"""


import numpy as np

from ._checks import MAX_COORDINATE, as_array, as_boxes, as_float, as_shape, round_half_away


def anchor_base(base_size=16, ratios=(0.5, 1, 2), scales=(8, 16, 32)):
    r"""The ``A = len(ratios) * len(scales)`` anchors centred on one feature-map cell.

    Parameters
    ----------
    base_size : positive finite real
        Side of the square base box, in image pixels (the feature stride, 16 in FCIS).
    ratios : (n_ratios,) array_like of positive finite reals
        Aspect ratios ``h / w``.
    scales : (n_scales,) array_like of positive finite reals
        Multipliers of the ratio anchors' sides.

    Returns
    -------
    anchors : (A, 4) float32 ndarray
        ``(x1, y1, x2, y2)``, half-open, relative to the cell's top-left corner.  Ratio-major: row
        ``i * len(scales) + j`` has ratio ``ratios[i]`` and scale ``scales[j]``.

    Raises
    ------
    ValueError
        If ``base_size`` is not positive and finite, ``ratios`` or ``scales`` are empty, not positive or not
        finite, a ratio is so extreme that a side of its ratio anchor rounds to 0 pixels, or an anchor would reach
        beyond ``MAX_COORDINATE`` (:math:`2^{23}`) pixels, the bound on every box coordinate.

    Notes
    -----
    These are the anchors of the region proposal network of Faster R-CNN (Ren et al. 2015, Sec. 3.1.1), from
    which FCIS (Li et al. 2017) takes its ROIs; the official FCIS configuration for COCO passes
    ``scales=(4, 8, 16, 32)`` (``A = 12``).  In inclusive form, with :math:`s = \mathrm{base\_size}` and the centre
    :math:`c = (s - 1)/2`, ratio :math:`r` and scale :math:`\sigma` give

    .. math::

        w_r = \mathrm{round}\bigl(\sqrt{s^2 / r}\bigr), \quad h_r = \mathrm{round}(w_r\, r), \quad
        w = \sigma w_r, \quad h = \sigma h_r,

    and the inclusive box :math:`[c - (w - 1)/2,\ c - (h - 1)/2,\ c + (w - 1)/2,\ c + (h - 1)/2]`.  "round" is
    round half away from zero (the project convention), where the classic code uses NumPy's half-to-even
    ``np.round``; for the default arguments the two give identical anchors (no value lands on a half with an
    even integer part: :math:`\sqrt{512} = 22.6 \to 23`, :math:`23 \cdot 0.5 = 11.5 \to 12` either way,
    :math:`\sqrt{128} = 11.3 \to 11`).  They differ, e.g., for ``anchor_base(5, (4,), (1,))``:
    :math:`\sqrt{25/4} = 2.5` rounds to 3 here and to 2 in the classic code.  Every half-open anchor is centred
    at ``(base_size / 2, base_size / 2)``.

    Examples
    --------
    >>> # inclusive base [0, 0, 3, 3], centre 1.5; ratio 1 gives w = h = round(sqrt(16)) = 4, scale 2 gives 8:
    >>> # inclusive [1.5 - 3.5, 1.5 - 3.5, 1.5 + 3.5, 1.5 + 3.5] = [-2, -2, 5, 5], half-open [-2, -2, 6, 6]
    >>> anchor_base(4, ratios=(1,), scales=(1, 2))
    array([[ 0.,  0.,  4.,  4.],
           [-2., -2.,  6.,  6.]], dtype=float32)
    """
    size = as_float("base_size", base_size, low=0.0, low_open=True)
    ratios = _positive_vector("ratios", ratios)
    scales = _positive_vector("scales", scales)

    # ratio enumeration: constant area size * size, in inclusive form
    ctr = 0.5 * (size - 1.0)  # inclusive centre of [0, size - 1]
    with np.errstate(over="ignore"):  # an absurd size overflows to inf here; the bound below names it
        ws = round_half_away(np.sqrt(size * size / ratios))  # (n_ratios,)
        hs = round_half_away(ws * ratios)  # (n_ratios,)
    if (ws < 1).any() or (hs < 1).any():
        raise ValueError(
            f"ratios {ratios.tolist()} are too extreme for base_size {size}: a ratio anchor side rounds to 0"
        )

    # scale enumeration, ratio-major: all scales of ratio 0 first
    with np.errstate(over="ignore", invalid="ignore"):
        w = (ws[:, None] * scales[None, :]).reshape(-1)  # (A,) inclusive widths, row = ratio * n_scales + scale
        h = (hs[:, None] * scales[None, :]).reshape(-1)  # (A,)
        inclusive = np.stack(
            [ctr - 0.5 * (w - 1.0), ctr - 0.5 * (h - 1.0), ctr + 0.5 * (w - 1.0), ctr + 0.5 * (h - 1.0)], axis=1
        )  # (A, 4) inclusive (x1, y1, x2, y2)
    anchors = inclusive + np.array([0.0, 0.0, 1.0, 1.0])  # half-open: x2 + 1, y2 + 1
    if not bool((np.abs(anchors) <= MAX_COORDINATE).all()):  # also catches inf and NaN
        raise ValueError(f"base_size {size} and scales {scales.tolist()} give anchors beyond "
                         f"{MAX_COORDINATE:.0f} pixels (MAX_COORDINATE)")
    return anchors.astype(np.float32)


def shift_anchors(base, feature_shape, stride):
    r"""Copies of the base anchors at every cell of an ``H x W`` feature map.

    Parameters
    ----------
    base : (A, 4) float32 array_like
        Half-open base anchors, e.g. from :func:`anchor_base`.
    feature_shape : (H, W) of positive ints
        Height and width of the **feature map**.
    stride : positive finite real
        Feature stride in image pixels (``1 / spatial_scale``, 16 in FCIS).

    Returns
    -------
    anchors : (H * W * A, 4) float32 ndarray
        Ordered ``(y, x, anchor)``: row ``(y * W + x) * A + a`` is ``base[a]`` shifted by
        ``(x * stride, y * stride)``, the order in which RPN outputs are flattened
        (:func:`fcis_twin.reference.proposals.rpn_outputs_to_anchor_order`).

    Raises
    ------
    ValueError
        If an anchor would reach beyond ``MAX_COORDINATE`` (:math:`2^{23}`) pixels, the bound on every box
        coordinate; it is checked before anything is allocated.

    Notes
    -----
    The shifts are computed in float32 as ``arange(W) * stride`` and ``arange(H) * stride`` and added to the
    base anchors, as in the official ``proposal`` operator of FCIS (Li et al. 2017), whose RPN shares the
    convolutional feature map with the segmentation head.

    Examples
    --------
    >>> shift_anchors([[0, 0, 16, 16]], (2, 2), 16)
    array([[ 0.,  0., 16., 16.],
           [16.,  0., 32., 16.],
           [ 0., 16., 16., 32.],
           [16., 16., 32., 32.]], dtype=float32)
    """
    base = as_boxes("base", base)
    h, w = as_shape("feature_shape", feature_shape, length=2)
    stride = np.float32(as_float("stride", stride, low=0.0, low_open=True, high=MAX_COORDINATE))
    reach = float(max(h, w) - 1) * float(stride) + float(np.abs(base).max(initial=0.0))
    if reach > MAX_COORDINATE:
        raise ValueError(f"feature_shape {(h, w)} and stride {float(stride)} place anchors beyond "
                         f"{MAX_COORDINATE:.0f} pixels (MAX_COORDINATE)")

    shift_x = np.arange(w, dtype=np.float32) * stride  # (W,)
    shift_y = np.arange(h, dtype=np.float32) * stride  # (H,)
    sy, sx = np.meshgrid(shift_y, shift_x, indexing="ij")  # (H, W) each
    shifts = np.stack([sx, sy, sx, sy], axis=-1).reshape(h * w, 1, 4)  # (H*W, 1, 4), row y * W + x
    anchors = shifts + base[None, :, :]  # (H*W, A, 4)
    return anchors.reshape(-1, 4).astype(np.float32)  # (H*W*A, 4), row (y * W + x) * A + a


def _positive_vector(name, values):
    """A non-empty 1-d float64 vector of positive finite numbers."""
    arr = as_array(name, values, ndim=1, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if (arr <= 0).any():
        raise ValueError(f"{name} must be positive, got {arr.tolist()}")
    return arr
