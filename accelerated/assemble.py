r"""Position-sensitive assembling, forward and backward: the accelerated twin of :mod:`fcis_twin.reference.assemble`.

Every kernel is the reference's loop template (:func:`fcis_twin.reference.assemble.ps_assemble_loop`,
:func:`fcis_twin.reference.assemble.ps_assemble_backward_loop`) with one output element per thread, the template's
variable names, its ROI fields (``ROI_*``) and its float32 operation order, so that a forward result agrees bit for
bit with the loop.  The bin geometry is written once in Numba (:func:`bin_edges`, shared by the Numba-CPU and
Numba-CUDA kernels) and once in CUDA C (``assemble.cu``, for CuPy).

Fused multiply-adds would change the bin edges (``pw * bin_size_w + roi_start_w`` rounded once instead of twice), so
the CuPy kernels are compiled with ``--fmad=false`` and the Numba code multiplies with :func:`._float32.mul_rn`,
which on a GPU is ``__fmul_rn``, a product never fused into an add.
"""

import math

import numba
import numpy as np

from ..reference._checks import as_array
from ..reference.assemble import (
    MIN_ROI_SIZE,
    ROI_BATCH,
    ROI_X1,
    ROI_X2,
    ROI_Y1,
    ROI_Y2,
    check_assemble_args,
    check_backward_args,
    check_channels,
    finite_where_read,
)
from ._backend import cupy_array, like, resolve_backend, to_host, to_numba_device
from ._float32 import mul_rn
from ._launch import (
    THREADS_PER_BLOCK,
    blocks,
    cpu_kernel,
    cuda,
    cupy_module,
    device_function,
    fill_kernel,
    kernel,
    launch,
)


def ps_assemble(score_maps, rois, *, group_size, output_size, spatial_scale, backend=None):
    r"""Position-sensitive assembling on the chosen backend.

    The twin of :func:`fcis_twin.reference.assemble.ps_assemble`: the same arguments and errors, and bit for bit
    the result of the loop template :func:`fcis_twin.reference.assemble.ps_assemble_loop`.

    Parameters
    ----------
    score_maps, rois, group_size, output_size, spatial_scale
        As the reference; each array may be NumPy or CuPy.  ``score_maps`` is not scanned: only the outputs are
        checked, and a NaN or infinite one (a bin read such a value, or its float32 sum overflowed) raises the
        reference's error, naming the same bin
        (:func:`fcis_twin.reference.assemble.finite_where_read`).
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated.resolve_backend`).

    Returns
    -------
    assembled : (R, C_out, P, P) float32 array
        NumPy or CuPy, as ``score_maps``.

    Notes
    -----
    The GPU backends run one output element ``(n, c_out, ph, pw)`` per thread.  Numba-CPU runs one output channel
    per CPU thread (every ROI in turn) or, where the ROIs' bins are many for the map (:data:`CHANNELS_LAST`), one
    ROI per thread on a channels-last copy of the map, all ``C_out`` outputs of a bin side by side.  Every element
    sums its bin row-major in float32 and divides by the float32 bin area.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)  # x[h, w] = 4h + w
    >>> ps_assemble(x, [[0, 0, 0, 4, 4]], group_size=1, output_size=2, spatial_scale=1.0, backend="numba-cpu")
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]], dtype=float32)
    """
    return _assemble(score_maps, rois, group_size, output_size, spatial_scale, resolve_backend(backend), None)


def reusing_layouts(backend=None):
    """:func:`ps_assemble` for several calls on the same score maps, as ``detect``'s two passes make.

    Numba-CPU's channels-last copy of a map (:data:`CHANNELS_LAST`) is made on the first call that needs it and
    kept, with the map it was made from, for the later calls given that same array object; the last
    :data:`REUSED_LAYOUTS` maps are kept (``detect`` alternates between its mask and its box maps).  A map must not
    change in place between the calls.
    """
    backend = resolve_backend(backend)
    layouts = {}

    def assemble(score_maps, rois, *, group_size, output_size, spatial_scale):
        return _assemble(score_maps, rois, group_size, output_size, spatial_scale, backend, layouts)

    return assemble


def _assemble(score_maps, rois, group_size, output_size, spatial_scale, backend, layouts):
    """:func:`ps_assemble` on a resolved backend; ``layouts`` (a dict, or None) keeps channels-last copies."""
    x = as_array("score_maps", score_maps, ndim=4, finite="converted", device=True)
    rois_host, k, P, s = check_assemble_args(to_host(rois), x.shape[0], group_size, output_size, spatial_scale)
    C_out = check_channels("score_maps", x.shape[1], k)
    rois_host = np.ascontiguousarray(rois_host)  # the kernels read each ROI as ROI_FIELDS consecutive floats
    out_shape = (rois_host.shape[0], C_out, P, P)
    if backend == "numba-cpu":
        out, finite = _ps_assemble_numba_cpu(np.ascontiguousarray(to_host(x)), rois_host, k, P, s, out_shape,
                                             layouts)
    elif backend == "numba-cuda":
        out, finite = _ps_assemble_cuda(to_numba_device(x), cuda.to_device(rois_host), k, P, s, out_shape)
    else:
        out, finite = _ps_assemble_cupy(cupy_array(x), cupy_array(rois_host), k, P, s, out_shape)
    if not finite:  # a bin read NaN or infinity, or its float32 sum overflowed: the reference names the first
        finite_where_read(to_host(x), rois_host, k, P, s)
        raise AssertionError("ps_assemble: a non-finite output that the reference's check does not explain")
    return like(out, score_maps, rois)


def ps_assemble_backward(grad, rois, input_shape, *, group_size, output_size, spatial_scale, backend=None):
    r"""Adjoint of :func:`ps_assemble` on the chosen backend.

    The twin of :func:`fcis_twin.reference.assemble.ps_assemble_backward`: the same arguments and errors.

    Parameters
    ----------
    grad, rois, input_shape, group_size, output_size, spatial_scale
        As the reference; each array may be NumPy or CuPy (``grad`` is checked where it is).
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated.resolve_backend`).

    Returns
    -------
    grad_score_maps : (N, C_out*k*k, H, W) float32 array
        NumPy or CuPy, as ``grad``.  Numba-CPU adds in the loop template's order and agrees bit for bit with
        :func:`fcis_twin.reference.assemble.ps_assemble_backward_loop`; the GPU backends add atomically, in whatever
        order the threads arrive, so their float32 sums may differ from it in the last bits.

    Examples
    --------
    >>> ps_assemble_backward([[[[4.0]]]], [[0, 0, 0, 2, 2]], (1, 1, 2, 2), group_size=1, output_size=1,
    ...                      spatial_scale=1.0, backend="numba-cpu")
    array([[[[1., 1.],
             [1., 1.]]]], dtype=float32)
    """
    backend = resolve_backend(backend)
    top_diff, rois_host, input_shape, k, P, s = check_backward_args(
        grad, to_host(rois), input_shape, group_size, output_size, spatial_scale, device=True)
    rois_host = np.ascontiguousarray(rois_host)  # the kernels read each ROI as ROI_FIELDS consecutive floats
    if backend == "numba-cpu":
        out = _ps_assemble_backward_numba_cpu(np.ascontiguousarray(to_host(top_diff)), rois_host, k, P, s, input_shape)
    elif backend == "numba-cuda":
        out = _ps_assemble_backward_cuda(to_numba_device(top_diff), cuda.to_device(rois_host), k, P, s, input_shape)
    else:
        out = _ps_assemble_backward_cupy(cupy_array(top_diff), cupy_array(rois_host), k, P, s, input_shape)
    return like(out, grad, rois)


# ----------------------------------------------------------------------------------------------- Numba-CPU


def _ps_assemble_numba_cpu(x, rois, k, P, s, out_shape, layouts=None):
    """The output and whether it is finite everywhere, from the kernel that suits the sizes (:data:`CHANNELS_LAST`);
    ``layouts`` (a dict, or None) keeps the channels-last copy of ``x`` for later calls (:func:`reusing_layouts`)."""
    top_data = np.empty(out_shape, np.float32)
    bins = _bin_table_cpu(rois, x.shape[2], x.shape[3], k, P, s)
    N, channels, height, width = x.shape
    if out_shape[0] * P * P < CHANNELS_LAST * k * k * height * width * N:
        return top_data, bool(_forward_cpu(x, rois, bins, top_data).all())
    key = (id(x), k)
    if layouts is not None and key in layouts and layouts[key][0] is x:
        maps = layouts[key][1]
    else:
        maps = _channels_last_cpu(x, k * k)
        if layouts is not None:
            while len(layouts) >= REUSED_LAYOUTS:  # the oldest goes
                del layouts[next(iter(layouts))]
            layouts[key] = (x, maps)  # x held too, so that its id names it while the copy is kept
    return top_data, bool(_forward_channels_last_cpu(maps, rois, bins, top_data).all())


def _ps_assemble_backward_numba_cpu(top_diff, rois, k, P, s, input_shape):
    bottom_diff = np.zeros(input_shape, np.float32)
    _backward_cpu(top_diff, rois, _bin_table_cpu(rois, input_shape[2], input_shape[3], k, P, s), bottom_diff)
    return bottom_diff


# ----------------------------------------------------------------------------------------------- Numba-CUDA


def _ps_assemble_cuda(x, rois, k, P, s, out_shape):
    top_data = cuda.device_array(out_shape, np.float32)
    non_finite = cuda.to_device(np.zeros(1, np.int32))  # set by any thread whose output is NaN or infinite
    if top_data.size:
        launch(_forward_kernel, blocks(top_data.size))(x, rois, k, P, s, top_data, non_finite)
    return top_data, not non_finite.copy_to_host()[0]


def _ps_assemble_backward_cuda(top_diff, rois, k, P, s, input_shape):
    bottom_diff = cuda.device_array(input_shape, np.float32)
    if bottom_diff.size:
        flat = bottom_diff.reshape(bottom_diff.size)
        launch(fill_kernel, blocks(flat.size))(flat, np.float32(0))  # the adds accumulate into zeros
    if top_diff.size and bottom_diff.size:
        launch(_backward_kernel, blocks(top_diff.size))(top_diff, rois, k, P, s, bottom_diff)
    return bottom_diff


# ----------------------------------------------------------------------------------------------- CuPy


def _ps_assemble_cupy(x, rois, k, P, s, out_shape):
    import cupy

    top_data = cupy.empty(out_shape, cupy.float32)
    if top_data.size:
        N, channels, height, width = x.shape
        cupy_module("assemble").get_function("ps_assemble_forward")(
            (blocks(top_data.size),), (THREADS_PER_BLOCK,),
            (x, rois, np.int64(top_data.size), np.int32(channels), np.int32(height), np.int32(width),
             np.int32(out_shape[1]), np.int32(k), np.int32(P), np.float32(s), top_data),
        )
    return top_data, bool(cupy.isfinite(top_data).all())


def _ps_assemble_backward_cupy(top_diff, rois, k, P, s, input_shape):
    import cupy

    bottom_diff = cupy.zeros(input_shape, cupy.float32)
    if top_diff.size and bottom_diff.size:
        N, channels, height, width = input_shape
        cupy_module("assemble").get_function("ps_assemble_backward")(
            (blocks(top_diff.size),), (THREADS_PER_BLOCK,),
            (top_diff, rois, np.int64(top_diff.size), np.int32(channels), np.int32(height), np.int32(width),
             np.int32(top_diff.shape[1]), np.int32(k), np.int32(P), np.float32(s), bottom_diff),
        )
    return bottom_diff


# ----------------------------------------------------------------------------------------------- kernels


#: float32 values at least this large are integers already.
_INTEGRAL = np.float32(2**23)
_ZERO = np.float32(0)
_HALF = np.float32(0.5)
_ONE = np.float32(1)


@numba.njit(inline="always", cache=True)
def _round_half_away(x):
    """C's ``roundf`` of a float32: half away from zero, exact (truncate, then step up on a remainder >= 0.5)."""
    ax = abs(x)
    if ax >= _INTEGRAL:
        return x
    r = np.float32(np.int64(ax))  # truncation, exact below 2**23
    if ax - r >= _HALF:  # exact: r <= ax < 2r, or r = 0
        r += _ONE
    return -r if x < 0 else r


@numba.njit(inline="always", cache=True)
def bin_edges(ph, pw, x1, y1, x2, y2, height, width, output_size, spatial_scale):
    """Feature rows ``[hstart, hend)`` and columns ``[wstart, wend)`` of bin ``(ph, pw)`` of one ROI.

    The reference's ``roi_bins`` for one bin, one float32 operation at a time in the same order.  The edges are
    clipped to the map in float and then floored (ceiled): clipping to ``[0, W]`` commutes with floor and ceil
    because ``0`` and ``W`` are integers, and clipping first keeps a huge ROI's edge from overflowing the int.
    """
    # the ROI in feature cells: rounded image coordinates, scaled; at least MIN_ROI_SIZE on a side
    roi_start_w = mul_rn(_round_half_away(x1), spatial_scale)
    roi_start_h = mul_rn(_round_half_away(y1), spatial_scale)
    roi_end_w = mul_rn(_round_half_away(x2), spatial_scale)
    roi_end_h = mul_rn(_round_half_away(y2), spatial_scale)
    roi_width = max(roi_end_w - roi_start_w, MIN_ROI_SIZE)
    roi_height = max(roi_end_h - roi_start_h, MIN_ROI_SIZE)
    bin_size_w = roi_width / np.float32(output_size)
    bin_size_h = roi_height / np.float32(output_size)
    # the bin's edges: each product rounded before the add
    wstart = mul_rn(np.float32(pw), bin_size_w) + roi_start_w
    wend = mul_rn(np.float32(pw + 1), bin_size_w) + roi_start_w
    hstart = mul_rn(np.float32(ph), bin_size_h) + roi_start_h
    hend = mul_rn(np.float32(ph + 1), bin_size_h) + roi_start_h
    # clipped to the map, then to ints
    W, H = np.float32(width), np.float32(height)
    wstart, wend = min(max(wstart, _ZERO), W), min(max(wend, _ZERO), W)
    hstart, hend = min(max(hstart, _ZERO), H), min(max(hend, _ZERO), H)
    return math.floor(hstart), math.ceil(hend), math.floor(wstart), math.ceil(wend)


@numba.njit(inline="always", cache=True)
def output_index(i, output_dim, output_size):
    """``(n, c_out, ph, pw)`` of flat element ``i`` of an ``(R, C_out, P, P)`` output (or gradient), ``pw`` fastest:
    consecutive threads take neighbouring bins."""
    pw = i % output_size
    ph = (i // output_size) % output_size
    c_out = (i // (output_size * output_size)) % output_dim
    n = i // (output_size * output_size * output_dim)
    return n, c_out, ph, pw


@numba.njit(inline="always", cache=True)
def part_cell(p, group_size, output_size):
    """Part cell ``g = (p * k) // P`` of bin ``p`` along one axis: ``gh`` for row ``ph``, ``gw`` for column ``pw``."""
    return (p * group_size) // output_size


#: numba-cpu runs the channels-last kernel when the ROIs' bins (``R*P*P``) number at least this fraction of a score
#: map's pixels across its ``k*k`` part channels (``N*k*k*H*W``): then a transposed copy of the map pays for itself.
#: One FCIS-COCO pass (300 ROIs, P = 21) is at 1.1, the assemble_pk sweep (P = 7) at 0.13 and below.
CHANNELS_LAST = 0.25
#: Channels-last copies that :func:`reusing_layouts` keeps: the mask maps and the box maps of one image.
REUSED_LAYOUTS = 2
#: Fields of the CPU kernels' bin table, ``bins[n, ph*P + pw]``: the part cell ``gh*k + gw``, the first row and
#: column of the bin, and its rows and columns (0 for an empty bin).
BIN_PART, BIN_HSTART, BIN_WSTART, BIN_ROWS, BIN_COLS = range(5)


@numba.njit(cache=True)
def _bin_table_cpu(rois, height, width, group_size, output_size, spatial_scale):
    """``(R, P*P, 5)`` int64: every bin of every ROI (fields ``BIN_*``), computed once for all channels.

    Row ``ph``'s edges come from bin ``(ph, ph)`` and column ``pw``'s from bin ``(pw, pw)``: a bin's rows depend on
    ``ph`` alone and its columns on ``pw`` alone, so ``2P`` edge computations per ROI serve all ``P*P`` bins.
    """
    P = output_size
    bins = np.empty((rois.shape[0], P * P, 5), np.int64)
    hstart, hend = np.empty(P, np.int64), np.empty(P, np.int64)
    wstart, wend = np.empty(P, np.int64), np.empty(P, np.int64)
    for n in range(rois.shape[0]):
        for p in range(P):
            hstart[p], hend[p], wstart[p], wend[p] = bin_edges(
                p, p, rois[n, ROI_X1], rois[n, ROI_Y1], rois[n, ROI_X2], rois[n, ROI_Y2], height, width, P,
                spatial_scale)
        for ph in range(P):
            gh = part_cell(ph, group_size, P)
            for pw in range(P):
                empty = hend[ph] <= hstart[ph] or wend[pw] <= wstart[pw]
                row = bins[n, ph * P + pw]
                row[BIN_PART] = gh * group_size + part_cell(pw, group_size, P)
                row[BIN_HSTART], row[BIN_WSTART] = hstart[ph], wstart[pw]
                row[BIN_ROWS] = 0 if empty else hend[ph] - hstart[ph]
                row[BIN_COLS] = 0 if empty else wend[pw] - wstart[pw]
    return bins


@cpu_kernel()
def _forward_cpu(bottom_data, rois, bins, top_data):
    """One output channel ``c_out`` per thread, every ROI in turn, each output element as in the loop template.

    Channel-major rather than ROI-major for the cache: the ``k*k`` input channels of one ``c_out`` (470 KB at
    FCIS-COCO size) stay in cache while all the ROIs read them.  Returns ``finite``, ``(C_out,)`` bool: whether
    every output of the channel is finite.
    """
    num_rois, output_dim, output_size = top_data.shape[0], top_data.shape[1], top_data.shape[2]
    kk = bottom_data.shape[1] // output_dim
    finite = np.ones(output_dim, np.bool_)
    for c_out in numba.prange(output_dim):
        for n in range(num_rois):
            roi_batch_ind = int(rois[n, ROI_BATCH])
            for ph in range(output_size):
                for pw in range(output_size):
                    part, hstart, wstart, rows, cols = bins[n, ph * output_size + pw]
                    if rows == 0:
                        top_data[n, c_out, ph, pw] = 0  # an empty bin
                        continue
                    # the mean of the bin in its part cell's channel, as in the loop template
                    plane = bottom_data[roi_batch_ind, c_out * kk + part]  # (H, W) view
                    out_sum = _ZERO
                    for h in range(hstart, hstart + rows):
                        for w in range(wstart, wstart + cols):
                            out_sum += plane[h, w]
                    top_data[n, c_out, ph, pw] = out_sum / np.float32(rows * cols)
                    if not math.isfinite(out_sum):
                        finite[c_out] = False
    return finite


@cpu_kernel()
def _channels_last_cpu(bottom_data, kk):
    """``(N, C_out*kk, H, W)`` score maps as ``(N, kk, H, W, C_out)``: the ``C_out`` values that one bin's pixel
    feeds side by side.  A transpose of each image's ``(C_out, kk*H*W)`` matrix in 64 x 64 blocks (each block's
    reads and writes stay in the L1 cache)."""
    N, channels, height, width = bottom_data.shape
    output_dim, pixels = channels // kk, kk * height * width
    out = np.empty((N, kk, height, width, output_dim), np.float32)
    block = 64
    for b in range(N):
        src = bottom_data[b].reshape(output_dim, pixels)
        dst = out[b].reshape(pixels, output_dim)
        for i in numba.prange((pixels + block - 1) // block):
            m0, m1 = i * block, min(i * block + block, pixels)
            for c0 in range(0, output_dim, block):
                for c in range(c0, min(c0 + block, output_dim)):
                    for m in range(m0, m1):
                        dst[m, c] = src[c, m]
    return out


@cpu_kernel()
def _forward_channels_last_cpu(maps, rois, bins, top_data):
    """One ROI per thread; each bin's ``C_out`` outputs summed side by side (SIMD) from the channels-last maps.

    Every output element is still its bin's row-major float32 sum divided by the float32 area, as in the loop
    template, so the result is that of :func:`_forward_cpu` bit for bit.  A row of bins is gathered ``(P, C_out)``
    and then written out channel by channel.  Returns ``finite``, ``(R,)`` bool: whether every output of the ROI
    is finite.
    """
    num_rois, output_dim, output_size = top_data.shape[0], top_data.shape[1], top_data.shape[2]
    finite = np.ones(num_rois, np.bool_)
    for n in numba.prange(num_rois):
        roi_batch_ind = int(rois[n, ROI_BATCH])
        row = np.empty((output_size, output_dim), np.float32)  # one row of bins, (pw, c_out)
        for ph in range(output_size):
            for pw in range(output_size):
                part, hstart, wstart, rows, cols = bins[n, ph * output_size + pw]
                out_sum = row[pw]
                for c_out in range(output_dim):
                    out_sum[c_out] = 0  # an empty bin stays 0
                for h in range(hstart, hstart + rows):
                    for w in range(wstart, wstart + cols):
                        pixel = maps[roi_batch_ind, part, h, w]  # (C_out,)
                        for c_out in range(output_dim):
                            out_sum[c_out] += pixel[c_out]
                if rows:
                    bin_area = np.float32(rows * cols)
                    for c_out in range(output_dim):
                        out_sum[c_out] /= bin_area
            nan_if_not_finite = _ZERO  # v * 0 is NaN exactly when v is NaN or infinite
            for c_out in range(output_dim):
                for pw in range(output_size):
                    top_data[n, c_out, ph, pw] = row[pw, c_out]
                    nan_if_not_finite += row[pw, c_out] * _ZERO
            if nan_if_not_finite != _ZERO:
                finite[n] = False
    return finite


@cpu_kernel()
def _backward_cpu(top_diff, rois, bins, bottom_diff):
    """One output channel ``c_out`` per thread, free of races: the ``k*k`` channels it writes are its alone.

    Within a thread the ROIs, bins and pixels run in the loop template's order, so every pixel receives its
    float32 additions in the template's order and the result agrees with it bit for bit.
    """
    num_rois, output_dim, output_size = top_diff.shape[0], top_diff.shape[1], top_diff.shape[2]
    kk = bottom_diff.shape[1] // output_dim
    for c_out in numba.prange(output_dim):
        for n in range(num_rois):
            roi_batch_ind = int(rois[n, ROI_BATCH])
            for ph in range(output_size):
                for pw in range(output_size):
                    part, hstart, wstart, rows, cols = bins[n, ph * output_size + pw]
                    if rows == 0:
                        continue  # an empty bin spreads nothing
                    # the bin's share per pixel, added to every pixel of the bin in its part cell's channel
                    plane = bottom_diff[roi_batch_ind, c_out * kk + part]  # (H, W) view
                    diff_val = top_diff[n, c_out, ph, pw] / np.float32(rows * cols)
                    for h in range(hstart, hstart + rows):
                        for w in range(wstart, wstart + cols):
                            plane[h, w] += diff_val


def _assemble_element(index, bottom_data, rois, group_size, output_size, spatial_scale, top_data):
    """Output element ``index`` of the assembly, written to ``top_data``; returns the bin's float32 sum.

    ``index`` is flat over ``top_data`` (``(n, c_out, ph, pw)``, ``pw`` fastest).  The bin is summed row-major in
    float32 and divided by its float32 area, as in the loop template; an empty bin is 0.  The sum is NaN or infinite
    when the bin read such a value or overflowed.  One Python body, compiled twice: for the CPU
    (:data:`assemble_element`) and as a CUDA device function (the one-thread-per-element kernel's).
    """
    n, c_out, ph, pw = output_index(index, top_data.shape[1], output_size)
    # the bin; 0 for an empty one
    hstart, hend, wstart, wend = bin_edges(ph, pw, rois[n, ROI_X1], rois[n, ROI_Y1], rois[n, ROI_X2], rois[n, ROI_Y2],
                                           bottom_data.shape[2], bottom_data.shape[3], output_size, spatial_scale)
    if hend <= hstart or wend <= wstart:
        top_data[n, c_out, ph, pw] = 0
        return _ZERO
    # the mean of its part cell's channel: a row-major float32 sum divided by the float32 area
    gw = part_cell(pw, group_size, output_size)
    gh = part_cell(ph, group_size, output_size)
    c = (c_out * group_size + gh) * group_size + gw
    roi_batch_ind = int(rois[n, ROI_BATCH])
    out_sum = _ZERO
    for h in range(hstart, hend):
        for w in range(wstart, wend):
            out_sum += bottom_data[roi_batch_ind, c, h, w]
    bin_area = np.float32((hend - hstart) * (wend - wstart))
    top_data[n, c_out, ph, pw] = out_sum / bin_area
    return out_sum


#: :func:`_assemble_element` compiled for the CPU: the body of a kernel with one output element per iteration of a
#: parallel loop (the kernel exercise's solution, ``fcis_twin.exercises``).
assemble_element = numba.njit(inline="always", cache=True)(_assemble_element)
_assemble_element_cuda = device_function(_assemble_element)


@kernel
def _forward_kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data, non_finite):
    """One thread per output element ``(n, c_out, ph, pw)``, ``pw`` fastest: consecutive threads write consecutive
    outputs (coalesced stores) and read neighbouring bins.

    No atomics and no shared memory: each output is written by its own thread only, and bins are too small to be
    worth staging.  A thread whose output is NaN or infinite sets ``non_finite[0]`` (every such thread writes the
    same 1).
    """
    i = cuda.grid(1)
    if i >= top_data.size:
        return
    out_sum = _assemble_element_cuda(i, bottom_data, rois, group_size, output_size, spatial_scale, top_data)
    if not math.isfinite(out_sum):
        non_finite[0] = 1


@kernel
def _backward_kernel(top_diff, rois, group_size, output_size, spatial_scale, bottom_diff):
    """One thread per gradient element ``(n, c_out, ph, pw)``: it adds ``grad / bin_area`` to every pixel of its bin.

    Bins overlap (neighbouring bins share an edge row or column, and ROIs overlap), so the adds are atomic; their
    order, and hence the float32 sum's last bits, depends on the thread schedule.
    """
    i = cuda.grid(1)
    if i >= top_diff.size:
        return
    n, c_out, ph, pw = output_index(i, top_diff.shape[1], output_size)
    # the bin; nothing to spread from an empty one
    hstart, hend, wstart, wend = bin_edges(ph, pw, rois[n, ROI_X1], rois[n, ROI_Y1], rois[n, ROI_X2], rois[n, ROI_Y2],
                                            bottom_diff.shape[2], bottom_diff.shape[3], output_size, spatial_scale)
    if hend <= hstart or wend <= wstart:
        return
    # the bin's share per pixel, added to every pixel of the bin in its part cell's channel
    gw = part_cell(pw, group_size, output_size)
    gh = part_cell(ph, group_size, output_size)
    c = (c_out * group_size + gh) * group_size + gw
    roi_batch_ind = int(rois[n, ROI_BATCH])
    bin_area = np.float32((hend - hstart) * (wend - wstart))
    diff_val = top_diff[n, c_out, ph, pw] / bin_area
    for h in range(hstart, hend):
        for w in range(wstart, wend):
            cuda.atomic.add(bottom_diff, (roi_batch_ind, c, h, w), diff_val)
