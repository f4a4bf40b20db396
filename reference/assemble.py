r"""Position-sensitive assembling: the official PSROIPooling, on half-open boxes.

Bin ``(ph, pw)`` of an ROI's ``P x P`` output reads the score map of its part cell ``(gh, gw)`` of the ``k x k``
grid and averages it over the bin's pixels.  The ``*_loop`` functions are the template of the GPU kernels: one
output element per iteration, with the kernel's variable names.  The vectorized functions are what the pipeline
calls; the tests hold the two together.  The bin geometry (:func:`roi_bins`) is written once and used by all four.
"""

import numpy as np

from ._checks import as_array, as_float, as_int, as_rois, as_shape, round_half_away

#: Official PSROIPooling: a zero-size ROI still spans 0.1 feature cells.
MIN_ROI_SIZE = np.float32(0.1)
#: Largest ``|round(x) * spatial_scale|`` accepted, so that float32 bin edges never overflow.
MAX_SCALED_COORD = 1e30
#: Columns of an ROI: its image in the batch, then its half-open box in input-image pixels.  The kernels use the same.
ROI_BATCH, ROI_X1, ROI_Y1, ROI_X2, ROI_Y2 = range(5)
#: float32's largest value: a bin whose float32 sum passes it overflows to infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def roi_bins(x1, y1, x2, y2, height, width, output_size, spatial_scale):
    """Feature rows ``[hstart, hend)`` and columns ``[wstart, wend)`` of the bins of ROIs.

    The coordinates are float32 scalars (one ROI) or ``(R,)`` arrays; each returned int64 array has shape
    ``(P,)``, or ``(R, P)``.  Every step is one float32 operation in the kernel's order; the product
    ``pw * bin_size_w`` is rounded before ``roi_start_w`` is added (no fused multiply-add).  Edges are clipped to
    the map in float before the cast to int, so a huge ROI never overflows an int.
    """
    s = np.float32(spatial_scale)
    roi_start_w = round_half_away(x1).astype(np.float32) * s
    roi_start_h = round_half_away(y1).astype(np.float32) * s
    roi_end_w = round_half_away(x2).astype(np.float32) * s
    roi_end_h = round_half_away(y2).astype(np.float32) * s
    roi_width = np.maximum(roi_end_w - roi_start_w, MIN_ROI_SIZE)
    roi_height = np.maximum(roi_end_h - roi_start_h, MIN_ROI_SIZE)
    bin_size_w = (roi_width / np.float32(output_size))[..., None]  # (..., 1), broadcast against the bins
    bin_size_h = (roi_height / np.float32(output_size))[..., None]
    p = np.arange(output_size, dtype=np.float32)  # (P,): pw along w, ph along h
    wstart = np.floor(p * bin_size_w + roi_start_w[..., None])
    wend = np.ceil((p + 1) * bin_size_w + roi_start_w[..., None])
    hstart = np.floor(p * bin_size_h + roi_start_h[..., None])
    hend = np.ceil((p + 1) * bin_size_h + roi_start_h[..., None])
    hstart, hend = (np.clip(e, 0, height).astype(np.int64) for e in (hstart, hend))
    wstart, wend = (np.clip(e, 0, width).astype(np.int64) for e in (wstart, wend))
    return hstart, hend, wstart, wend


def check_assemble_args(rois, num_images, group_size, output_size, spatial_scale):
    """Validated ``(rois, k, P, s)`` of an assembly over ``num_images`` images; ``s`` is float32."""
    rois = as_rois("rois", rois, num_images)
    k = as_int("group_size", group_size, low=1)
    P = as_int("output_size", output_size, low=1)
    s = as_float("spatial_scale", spatial_scale, low=0.0, low_open=True, high=float(np.finfo(np.float32).max))
    if rois.size:
        if (rois[:, ROI_X2] < rois[:, ROI_X1]).any() or (rois[:, ROI_Y2] < rois[:, ROI_Y1]).any():
            raise ValueError("rois must satisfy x1 <= x2 and y1 <= y2 (half-open boxes)")
        if (np.abs(round_half_away(rois[:, ROI_X1:])) * s > MAX_SCALED_COORD).any():
            raise ValueError(f"rois coordinates times spatial_scale must be at most {MAX_SCALED_COORD:g} in magnitude")
    return rois, k, P, np.float32(s)


def check_channels(name, channels, k):
    """``C_out`` of ``channels = C_out*k*k`` position-sensitive channels; ``name`` is the argument that gave them."""
    if channels % (k * k):
        raise ValueError(f"{name} must have a channel count divisible by k*k = {k * k} (group_size**2), got {channels}")
    return channels // (k * k)


def check_backward_args(grad, rois, input_shape, group_size, output_size, spatial_scale, *, device=False):
    """Validated ``(grad, rois, input_shape, k, P, s)`` for the backward passes.

    ``device=True`` (the accelerated wrappers) checks a GPU ``grad`` where it is; ``rois`` is a host array.
    """
    input_shape = as_shape("input_shape", input_shape, length=4, low=0, form="(N, C_out*k*k, H, W)")
    rois, k, P, s = check_assemble_args(rois, input_shape[0], group_size, output_size, spatial_scale)
    c_out = check_channels("input_shape", input_shape[1], k)
    grad = as_array("grad", grad, ndim=4, device=device)
    if grad.shape != (rois.shape[0], c_out, P, P):
        expected = (rois.shape[0], c_out, P, P)
        raise ValueError(f"grad must have shape (R, C_out, P, P) = {expected}, got {tuple(grad.shape)}")
    return grad, rois, input_shape, k, P, s


def ps_assemble_loop(score_maps, rois, *, group_size, output_size, spatial_scale):
    r"""Position-sensitive assembling, one output element at a time (the GPU kernel's template).

    Parameters
    ----------
    score_maps : (N, C_out*k*k, H, W) float32 array_like
        Position-sensitive score maps; channel ``(c_out*k + gh)*k + gw``.  Finite wherever a bin reads it, with
        every bin's float32 sum within float32's range (:func:`finite_where_read`); values that no bin reads are
        not looked at.
    rois : (R, 5) float32 array_like
        ``(batch_index, x1, y1, x2, y2)``, half-open, input-image pixels.
    group_size : int
        ``k``, the part grid is ``k x k``.
    output_size : int
        ``P``, the assembled maps are ``P x P``.
    spatial_scale : float > 0
        ``s``, feature cells per image pixel (1 / stride).

    Returns
    -------
    assembled : (R, C_out, P, P) float32 ndarray
        Mean of each bin's pixels in its part cell's channel; 0 for an empty bin.

    Notes
    -----
    FCIS Sec. 3 assembles the inside/outside maps with the position-sensitive ROI pooling of R-FCN (Dai et al.,
    NIPS 2016); the geometry is written out in ``docs/conventions.md``.  In float32,

    .. math:: \mathrm{out}[n, c, p_h, p_w] = \frac{1}{|B|}\sum_{(h, w) \in B} x[b_n, (c k + g_h) k + g_w, h, w],
              \quad g_w = \lfloor p_w k / P \rfloor,

    the sum running row-major through the bin ``B``, in float32, divided by the float32 bin area.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)  # x[h, w] = 4h + w
    >>> ps_assemble_loop(x, [[0, 0, 0, 4, 4]], group_size=1, output_size=2, spatial_scale=1.0)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]], dtype=float32)
    """
    bottom_data = as_array("score_maps", score_maps, ndim=4, finite="converted")
    num, channels, height, width = bottom_data.shape
    rois, k, P, s = check_assemble_args(rois, num, group_size, output_size, spatial_scale)
    output_dim = check_channels("score_maps", channels, k)
    top_data = np.zeros((rois.shape[0], output_dim, P, P), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # a sum that overflows or reads NaN is reported below
        for n in range(rois.shape[0]):
            roi_batch_ind = int(rois[n, ROI_BATCH])
            hstarts, hends, wstarts, wends = roi_bins(*rois[n, ROI_X1:], height, width, P, s)  # (P,) each
            for c_out in range(output_dim):
                for ph in range(P):
                    for pw in range(P):
                        hstart, hend, wstart, wend = hstarts[ph], hends[ph], wstarts[pw], wends[pw]
                        is_empty = hend <= hstart or wend <= wstart
                        gw = (pw * k) // P
                        gh = (ph * k) // P
                        c = (c_out * k + gh) * k + gw
                        out_sum = np.float32(0)
                        for h in range(hstart, hend):
                            for w in range(wstart, wend):
                                out_sum += bottom_data[roi_batch_ind, c, h, w]
                        bin_area = np.float32((hend - hstart) * (wend - wstart))
                        top_data[n, c_out, ph, pw] = 0 if is_empty else out_sum / bin_area
    if not np.isfinite(top_data).all():  # a bin read NaN or infinity, or its float32 sum overflowed
        finite_where_read(bottom_data, rois, k, P, s)  # raises, naming the first such bin
    return top_data


def ps_assemble(score_maps, rois, *, group_size, output_size, spatial_scale):
    r"""Position-sensitive assembling, vectorized; the same result as :func:`ps_assemble_loop`.

    Parameters and Returns are those of :func:`ps_assemble_loop`.

    Notes
    -----
    Bin sums come from a float64 summed-area table of each channel, gathered for all ROIs at once; the mean is
    taken in float64 and rounded once to float32.  The loop sums in float32 instead, so the two agree to about
    ``bin_area * 2**-24`` times the mean absolute value of the bin (the tests write the bound out).  Finiteness
    is checked first (:func:`finite_where_read`), where the loop and the kernels check only when an output is not
    finite; both raise the same error for the same bin.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)  # x[h, w] = 4h + w
    >>> # bins of a 3 x 3 ROI overlap: [0, ceil(1.5)) and [floor(1.5), 3); top-left mean (0 + 1 + 4 + 5) / 4
    >>> ps_assemble(x, [[0, 0, 0, 3, 3]], group_size=1, output_size=2, spatial_scale=1.0)
    array([[[[2.5, 3.5],
             [6.5, 7.5]]]], dtype=float32)
    """
    x = as_array("score_maps", score_maps, ndim=4, finite="converted")
    N, CKK, H, W = x.shape
    rois, k, P, s = check_assemble_args(rois, N, group_size, output_size, spatial_scale)
    check_channels("score_maps", CKK, k)
    x = finite_where_read(x, rois, k, P, s)  # NaN and infinity where no bin reads them become 0
    bins = _Bins(x.shape, rois, k, P, s)
    total = bins.sums(x)  # (R, C_out, P, P) float64
    return np.where(bins.area > 0, total / np.maximum(bins.area, 1), 0.0).astype(np.float32)


def summation_error_bound(score_maps, rois, *, group_size, output_size, spatial_scale):
    r"""How far :func:`ps_assemble_loop` (and every kernel, which sums as it does) may be from :func:`ps_assemble`.

    Parameters and their checks are those of :func:`ps_assemble`.

    Returns
    -------
    bound : (R, C_out, P, P) float64 ndarray
        :math:`(HW + 2)\, u_{32}\, \overline{|x|}_B + 4 (H + W + 1)\, u_{64} \sum |x| + 2^{-149}` per bin ``B``, with
        :math:`u_{32} = 2^{-24}`, :math:`u_{64} = 2^{-53}` and :math:`\overline{|x|}_B` the bin's mean absolute
        value.

    Notes
    -----
    The loop's float32 running sum of a bin's ``n <= HW`` values errs by at most :math:`(n - 1) u_{32}` times the
    sum of their absolute values, and its division and rounding by :math:`2 u_{32}` of the mean; the vectorized
    mean carries the error of its float64 summed-area table (four prefix sums and three subtractions, each prefix a
    chain of at most ``H + W`` additions) and one rounding.  :math:`2^{-149}`, the smallest float32 subnormal,
    covers a result that underflows.  The agreement tests and ``notebooks/09_kernels_cpu_vs_gpu`` check against it.
    """
    geometry = dict(group_size=group_size, output_size=output_size, spatial_scale=spatial_scale)
    magnitude = np.abs(as_array("score_maps", score_maps, ndim=4, finite="converted"))
    H, W = magnitude.shape[2:]
    mean_abs = ps_assemble(magnitude, rois, **geometry).astype(np.float64)
    return (H * W + 2) * 2.0**-24 * mean_abs + 4 * (H + W + 1) * 2.0**-53 * magnitude.sum(dtype=np.float64) + 2.0**-149


class _Bins:
    """Every bin of an assembly, for gathering from summed-area tables: ``sums(values)`` is the float64 sum of
    ``values`` over each bin, ``(R, C_out, P, P)``; ``area`` is ``(R, 1, P, P)``; ``channel`` ``(C_out, P, P)``."""

    def __init__(self, shape, rois, k, P, s):
        N, CKK, H, W = shape
        hstart, hend, wstart, wend = roi_bins(*rois[:, ROI_X1:].T, H, W, P, s)  # (4, R) coordinates in, (R, P) out
        self.batch = rois[:, ROI_BATCH].astype(np.int64)[:, None, None, None]  # (R, 1, 1, 1)
        self.channel = part_channels(CKK // (k * k), k, P)  # (C_out, P, P)
        self.hs, self.he = hstart[:, None, :, None], hend[:, None, :, None]  # (R, 1, P, 1)
        self.ws, self.we = wstart[:, None, None, :], wend[:, None, None, :]  # (R, 1, 1, P)
        self.area = (self.he - self.hs) * (self.we - self.ws)  # never negative: clipping keeps start <= end

    def sums(self, values):
        N, CKK, H, W = values.shape
        sat = np.zeros((N, CKK, H + 1, W + 1), np.float64)  # sat[..., h, w] = sum of values[..., :h, :w]
        sat[:, :, 1:, 1:] = values.cumsum(axis=2, dtype=np.float64).cumsum(axis=3)
        b, c, hs, he, ws, we = self.batch, self.channel, self.hs, self.he, self.ws, self.we
        return sat[b, c, he, we] - sat[b, c, hs, we] - sat[b, c, he, ws] + sat[b, c, hs, ws]

    def name(self, index):
        """``'bin (ph, pw) of ROI n (channel c)'`` for an ``(n, c_out, ph, pw)`` index."""
        n, c_out, ph, pw = (int(i) for i in index)
        return f"bin ({ph}, {pw}) of ROI {n} (channel {int(self.channel[c_out, ph, pw])})"


def finite_where_read(score_maps, rois, k, P, s):
    r"""The score maps with every NaN or infinity that no bin reads set to 0; an error where a bin reads one, or
    where a bin's float32 sum overflows.

    Every backend's ``ps_assemble`` keeps this contract: only the values that some bin reads must be finite, and
    every bin's float32 sum (row-major, as the loop template adds) must stay within float32's range.  The
    reference calls this before it assembles; the loop template and the kernels only when an output came out NaN
    or infinite, which happens exactly when one of the two fails.  So checking costs nothing where all is well,
    and every backend names the same bin: the first in ``(n, c_out, ph, pw)`` order.

    Parameters
    ----------
    score_maps : (N, C_out*k*k, H, W) float32 ndarray
    rois : (R, 5) float32 ndarray
    k, P, s
        Validated arguments (:func:`check_assemble_args`).

    Returns
    -------
    score_maps : float32 ndarray
        ``score_maps`` itself when it is finite everywhere; otherwise a copy with 0 where it was not (no bin reads
        those values, so any number serves, and a summed-area table needs a finite one).

    Raises
    ------
    ValueError
        A bin reads NaN or infinity, or (every value it reads finite) its float32 sum overflows.
    """
    x = score_maps
    bins = _Bins(x.shape, rois, k, P, s)
    finite = np.isfinite(x)
    if not finite.all():
        reads_bad = bins.sums(~finite) > 0  # (R, C_out, P, P): a count of the non-finite values each bin reads
        if reads_bad.any():
            raise ValueError(f"score_maps must be finite where the ROIs read it (no NaN or infinity): "
                             f"{bins.name(np.argwhere(reads_bad)[0])} reads one")
        x = np.where(finite, x, np.float32(0))
    # A float32 running sum of n values is at most sum|x| * (1 + 2**-24)**n in magnitude: only bins where that
    # bound reaches FLOAT32_MAX can overflow, and those (rare) are added up in float32, in the loop's order.
    largest = float(max(x.max(initial=0), -x.min(initial=0)))
    most = int(bins.area.max(initial=0))
    if largest * most * (1 + 2.0**-24) ** most < FLOAT32_MAX:
        return x
    bound = bins.sums(np.abs(x)) * (1 + 2.0**-24) ** bins.area.astype(np.float64)
    for index in np.argwhere(bound >= FLOAT32_MAX * (1 - 2.0**-40)):  # (n, c_out, ph, pw) order
        n, c_out, ph, pw = index
        c = bins.channel[c_out, ph, pw]
        rows = slice(int(bins.hs[n, 0, ph, 0]), int(bins.he[n, 0, ph, 0]))
        cols = slice(int(bins.ws[n, 0, 0, pw]), int(bins.we[n, 0, 0, pw]))
        with np.errstate(over="ignore"):
            total = np.add.accumulate(x[int(bins.batch[n, 0, 0, 0]), c, rows, cols].ravel(), dtype=np.float32)
        if total.size and not np.isfinite(total[-1]):
            raise ValueError(f"score_maps is too large where the ROIs read it: the float32 sum over "
                             f"{bins.name(index)} overflows (largest float32 {FLOAT32_MAX:.4g}); scale the maps down")
    return x


def part_channels(C_out, k, P):
    """``(C_out, P, P)`` channel read by each output element: ``(c_out*k + gh)*k + gw``."""
    part = (np.arange(P) * k) // P  # (P,): gh along ph, gw along pw
    return (np.arange(C_out)[:, None, None] * k + part[:, None]) * k + part


def ps_assemble_backward_loop(grad, rois, input_shape, *, group_size, output_size, spatial_scale):
    r"""Adjoint of :func:`ps_assemble_loop`, one output element at a time (the atomic-add kernel's template).

    Parameters
    ----------
    grad : (R, C_out, P, P) float32 array_like
        Gradient with respect to the assembled maps.
    rois : (R, 5) float32 array_like
        As in :func:`ps_assemble_loop`.
    input_shape : 4 ints
        ``(N, C_out*k*k, H, W)``, the shape of the score maps.
    group_size, output_size, spatial_scale
        As in :func:`ps_assemble_loop`.

    Returns
    -------
    grad_score_maps : (N, C_out*k*k, H, W) float32 ndarray
        Each bin's gradient divided by its float32 area and added, in float32, to every pixel of the bin;
        nothing for an empty bin.

    Examples
    --------
    >>> ps_assemble_backward_loop([[[[4.0]]]], [[0, 0, 0, 2, 2]], (1, 1, 2, 2), group_size=1, output_size=1,
    ...                           spatial_scale=1.0)
    array([[[[1., 1.],
             [1., 1.]]]], dtype=float32)
    """
    top_diff, rois, input_shape, k, P, s = check_backward_args(grad, rois, input_shape, group_size, output_size,
                                                           spatial_scale)
    num, channels, height, width = input_shape
    bottom_diff = np.zeros(input_shape, np.float32)
    for n in range(rois.shape[0]):
        roi_batch_ind = int(rois[n, ROI_BATCH])
        hstarts, hends, wstarts, wends = roi_bins(*rois[n, ROI_X1:], height, width, P, s)  # (P,) each
        for c_out in range(top_diff.shape[1]):
            for ph in range(P):
                for pw in range(P):
                    hstart, hend, wstart, wend = hstarts[ph], hends[ph], wstarts[pw], wends[pw]
                    if hend <= hstart or wend <= wstart:
                        continue
                    gw = (pw * k) // P
                    gh = (ph * k) // P
                    c = (c_out * k + gh) * k + gw
                    bin_area = np.float32((hend - hstart) * (wend - wstart))
                    diff_val = top_diff[n, c_out, ph, pw] / bin_area
                    for h in range(hstart, hend):
                        for w in range(wstart, wend):
                            bottom_diff[roi_batch_ind, c, h, w] += diff_val  # atomicAdd on the GPU
    return bottom_diff


def ps_assemble_backward(grad, rois, input_shape, *, group_size, output_size, spatial_scale):
    r"""Adjoint of :func:`ps_assemble`, vectorized; the same result as :func:`ps_assemble_backward_loop`.

    Parameters and Returns are those of :func:`ps_assemble_backward_loop`.

    Notes
    -----
    Each bin adds ``grad / area`` to a rectangle: it is written as four corners of a float64 2-D difference array
    (``+v`` at ``(hstart, wstart)`` and ``(hend, wend)``, ``-v`` at the other two), summed per corner with
    ``np.bincount``; two cumulative sums turn the corners into rectangles, and the result is rounded once to float32.

    Examples
    --------
    >>> # bins [0, 2) and [1, 3) of a 3 x 3 ROI overlap, so pixel (1, 1) gets a quarter of all four bins
    >>> ps_assemble_backward(np.full((1, 1, 2, 2), 4.0), [[0, 0, 0, 3, 3]], (1, 1, 3, 3), group_size=1,
    ...                      output_size=2, spatial_scale=1.0)
    array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]], dtype=float32)
    """
    grad, rois, (N, CKK, H, W), k, P, s = check_backward_args(grad, rois, input_shape, group_size, output_size,
                                                           spatial_scale)
    C_out = grad.shape[1]
    hstart, hend, wstart, wend = roi_bins(*rois[:, ROI_X1:].T, H, W, P, s)  # (4, R) coordinates in, (R, P) each out
    b = rois[:, ROI_BATCH].astype(np.int64)[:, None, None, None]  # (R, 1, 1, 1)
    bc = b * CKK + part_channels(C_out, k, P)  # (R, C_out, P, P): flat (image, channel) of each bin
    hs, he = hstart[:, None, :, None], hend[:, None, :, None]  # (R, 1, P, 1)
    ws, we = wstart[:, None, None, :], wend[:, None, None, :]  # (R, 1, 1, P)
    area = (he - hs) * (we - ws)  # (R, 1, P, P)
    v = np.where(area > 0, grad / np.maximum(area, 1), 0.0)  # (R, C_out, P, P) float64

    def corner(h, w):  # flat index into the (N, CKK, H + 1, W + 1) difference array
        return np.broadcast_to((bc * (H + 1) + h) * (W + 1) + w, v.shape).ravel()

    index = np.concatenate([corner(hs, ws), corner(hs, we), corner(he, ws), corner(he, we)])
    weight = np.concatenate([v.ravel(), -v.ravel(), -v.ravel(), v.ravel()])
    diff = np.bincount(index, weight, minlength=N * CKK * (H + 1) * (W + 1)).reshape(N, CKK, H + 1, W + 1)
    return diff.cumsum(axis=2).cumsum(axis=3)[:, :, :H, :W].astype(np.float32)
