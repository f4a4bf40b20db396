r"""Position-sensitive assembling, forward and backward, as Numba-CPU, Numba-CUDA and CuPy kernels.

The twin of :mod:`fcis_twin.reference.assemble`.  Every kernel is the reference's loop template
(:func:`fcis_twin.reference.assemble.ps_assemble_loop`, :func:`fcis_twin.reference.assemble.ps_assemble_backward_loop`) with one output
element per thread, the template's variable names and its float32 operation order, so that a forward result agrees
bit for bit with the loop.  The bin geometry is written twice: once in Numba (:func:`_bin_edges`, shared by the
Numba-CPU and Numba-CUDA kernels) and once in CUDA C (:data:`CUDA_SOURCE`, for CuPy).

Fused multiply-adds would change the bin edges (``pw * bin_size_w + roi_start_w`` rounded once instead of twice), so
the CuPy kernels are compiled with ``--fmad=false`` and the Numba code multiplies with
:func:`fcis_twin.accelerated._float32.mul_rn`, which on a GPU is ``__fmul_rn``, a product never fused into an add.
"""

import functools
import math

import numba
import numpy as np

try:
    from numba import cuda
except ImportError:  # numba-cuda is optional: without it the "numba-cuda" backend is unavailable
    cuda = None

from ..reference._checks import as_array, as_shape
from ..reference.assemble import MIN_ROI_SIZE, _check_backward, _check_channels, _check_params

from ._float32 import mul_rn as _mul_rn
from ._backend import is_cupy, like, resolve_backend, to_host

#: Threads per block of every GPU launch: a multiple of the 32-thread warp, small enough for any GPU's register file.
THREADS_PER_BLOCK = 256


def ps_assemble(score_maps, rois, *, group_size, output_size, spatial_scale, backend=None):
    r"""Position-sensitive assembling: :func:`fcis_twin.reference.assemble.ps_assemble` on the chosen backend.

    Parameters
    ----------
    score_maps : (N, C_out*k*k, H, W) float32 array (NumPy or CuPy)
        Position-sensitive score maps; channel ``(c_out*k + gh)*k + gw``.
    rois : (R, 5) float32 array
        ``(batch_index, x1, y1, x2, y2)``, half-open, input-image pixels.
    group_size : int
        ``k``, the part grid is ``k x k``.
    output_size : int
        ``P``, the assembled maps are ``P x P``.
    spatial_scale : float > 0
        ``s``, feature cells per image pixel (1 / stride).
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated._backend.resolve_backend`).

    Returns
    -------
    assembled : (R, C_out, P, P) float32 array, of the input's array type
        Mean of each bin's pixels in its part cell's channel; 0 for an empty bin.  Bit for bit the result of
        :func:`fcis_twin.reference.assemble.ps_assemble_loop`.

    Notes
    -----
    FCIS Sec. 3 (the position-sensitive ROI pooling of R-FCN); the geometry is in ``docs/conventions.md``.  The GPU
    backends run one output element ``(n, c_out, ph, pw)`` per thread, Numba-CPU one output channel per CPU thread
    (every ROI in turn); each element sums its bin row-major in float32 and divides by the float32 bin area.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)  # x[h, w] = 4h + w
    >>> ps_assemble(x, [[0, 0, 0, 4, 4]], group_size=1, output_size=2, spatial_scale=1.0, backend="numba-cpu")
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]], dtype=float32)
    """
    backend = resolve_backend(backend)
    if is_cupy(score_maps):
        x = _device_array("score_maps", score_maps, 4, _cupy())
    else:
        x = as_array("score_maps", score_maps, ndim=4)
    rois_host, k, P, s = _check_params(to_host(rois), x.shape[0], group_size, output_size, spatial_scale)
    C_out = _check_channels("score_maps", x.shape[1], k)
    rois_host = np.ascontiguousarray(rois_host)  # the kernels read each ROI as 5 consecutive floats
    out_shape = (rois_host.shape[0], C_out, P, P)
    if backend == "numba-cpu":
        out = _ps_assemble_numba_cpu(np.ascontiguousarray(to_host(x)), rois_host, k, P, s, out_shape)
    elif backend == "numba-cuda":
        x_dev = cuda.as_cuda_array(x) if is_cupy(x) else cuda.to_device(np.ascontiguousarray(x))
        out = _ps_assemble_cuda(x_dev, cuda.to_device(rois_host), k, P, s, out_shape)
    else:
        cupy = _cupy()
        out = _ps_assemble_cupy(cupy.ascontiguousarray(cupy.asarray(x)), cupy.asarray(rois_host), k, P, s, out_shape)
    return like(out, score_maps, rois)


def ps_assemble_backward(grad, rois, input_shape, *, group_size, output_size, spatial_scale, backend=None):
    r"""Adjoint of :func:`ps_assemble`: :func:`fcis_twin.reference.assemble.ps_assemble_backward` on the chosen backend.

    Parameters
    ----------
    grad : (R, C_out, P, P) float32 array (NumPy or CuPy)
        Gradient with respect to the assembled maps.
    rois : (R, 5) float32 array
        As in :func:`ps_assemble`.
    input_shape : 4 ints
        ``(N, C_out*k*k, H, W)``, the shape of the score maps.
    group_size, output_size, spatial_scale, backend
        As in :func:`ps_assemble`.

    Returns
    -------
    grad_score_maps : (N, C_out*k*k, H, W) float32 array, of the input's array type
        Each bin's gradient divided by its float32 area and added, in float32, to every pixel of the bin.  Numba-CPU
        adds in the loop template's order and agrees bit for bit with
        :func:`fcis_twin.reference.assemble.ps_assemble_backward_loop`; the GPU backends add atomically, in whatever order the
        threads arrive, so their float32 sums may differ from it in the last bits.

    Examples
    --------
    >>> ps_assemble_backward([[[[4.0]]]], [[0, 0, 0, 2, 2]], (1, 1, 2, 2), group_size=1, output_size=1,
    ...                      spatial_scale=1.0, backend="numba-cpu")
    array([[[[1., 1.],
             [1., 1.]]]], dtype=float32)
    """
    backend = resolve_backend(backend)
    if is_cupy(grad):
        top_diff, rois_host, input_shape, k, P, s = _check_backward_device(
            grad, to_host(rois), input_shape, group_size, output_size, spatial_scale, _cupy())
    else:
        top_diff, rois_host, input_shape, k, P, s = _check_backward(
            grad, to_host(rois), input_shape, group_size, output_size, spatial_scale)
    rois_host = np.ascontiguousarray(rois_host)  # the kernels read each ROI as 5 consecutive floats
    if backend == "numba-cpu":
        out = _ps_assemble_backward_numba_cpu(np.ascontiguousarray(to_host(top_diff)), rois_host, k, P, s, input_shape)
    elif backend == "numba-cuda":
        g_dev = cuda.as_cuda_array(top_diff) if is_cupy(top_diff) else cuda.to_device(np.ascontiguousarray(top_diff))
        out = _ps_assemble_backward_cuda(g_dev, cuda.to_device(rois_host), k, P, s, input_shape)
    else:
        cupy = _cupy()
        g_dev = cupy.ascontiguousarray(cupy.asarray(top_diff))
        out = _ps_assemble_backward_cupy(g_dev, cupy.asarray(rois_host), k, P, s, input_shape)
    return like(out, grad, rois)


# ----------------------------------------------------------------------------------------------- validation


def _device_array(name, x, ndim, xp):
    """:func:`fcis_twin.reference._checks.as_array` for an array that stays where it is (CuPy on the GPU; NumPy in the tests).

    The same checks in the same order with the shared checker's own messages, and no copy to the host: the rank is
    checked on a zero-stride NumPy stand-in of ``x``'s shape, finiteness on the device with ``xp``.
    """
    as_array(name, np.broadcast_to(np.float32(0), x.shape), ndim=ndim, finite=False)
    x = xp.ascontiguousarray(x.astype(xp.float32, copy=False))
    if x.size and not bool(xp.isfinite(x).all()):
        as_array(name, np.float32([np.nan]))  # raises the shared checker's message for a non-finite array
    return x


def _check_backward_device(grad, rois, input_shape, group_size, output_size, spatial_scale, xp):
    """:func:`fcis_twin.reference.assemble._check_backward` with ``grad`` checked where it lives (see :func:`_device_array`).

    The same checks in the same order; ``rois`` is small and comes as a host array.
    """
    input_shape = as_shape("input_shape", input_shape, length=4, low=0, form="(N, C_out*k*k, H, W)")
    rois, k, P, s = _check_params(rois, input_shape[0], group_size, output_size, spatial_scale)
    c_out = _check_channels("input_shape", input_shape[1], k)
    grad = _device_array("grad", grad, 4, xp)
    if grad.shape != (rois.shape[0], c_out, P, P):
        raise ValueError(f"grad must have shape (R, C_out, P, P) = {(rois.shape[0], c_out, P, P)}, got {grad.shape}")
    return grad, rois, input_shape, k, P, s


# ----------------------------------------------------------------------------------------------- Numba-CPU


def _ps_assemble_numba_cpu(x, rois, k, P, s, out_shape):
    top_data = np.zeros(out_shape, np.float32)
    _forward_cpu(x, rois, k, P, s, top_data)
    return top_data


def _ps_assemble_backward_numba_cpu(top_diff, rois, k, P, s, input_shape):
    bottom_diff = np.zeros(input_shape, np.float32)
    _backward_cpu(top_diff, rois, k, P, s, bottom_diff)
    return bottom_diff


# ----------------------------------------------------------------------------------------------- Numba-CUDA


def _ps_assemble_cuda(x, rois, k, P, s, out_shape):
    top_data = cuda.device_array(out_shape, np.float32)
    if top_data.size:
        forward, _, _ = _cuda_kernels()
        forward[_blocks(top_data.size), THREADS_PER_BLOCK](x, rois, k, P, s, top_data)
    return top_data


def _ps_assemble_backward_cuda(top_diff, rois, k, P, s, input_shape):
    _, backward, zero = _cuda_kernels()
    bottom_diff = cuda.device_array(input_shape, np.float32)
    if bottom_diff.size:
        flat = bottom_diff.reshape(bottom_diff.size)
        zero[_blocks(flat.size), THREADS_PER_BLOCK](flat)
    if top_diff.size and bottom_diff.size:
        backward[_blocks(top_diff.size), THREADS_PER_BLOCK](top_diff, rois, k, P, s, bottom_diff)
    return bottom_diff


# ----------------------------------------------------------------------------------------------- CuPy


def _ps_assemble_cupy(x, rois, k, P, s, out_shape):
    cupy = _cupy()
    top_data = cupy.empty(out_shape, cupy.float32)
    if top_data.size:
        N, channels, height, width = x.shape
        _cupy_kernel("ps_assemble_forward")(
            (_blocks(top_data.size),), (THREADS_PER_BLOCK,),
            (x, rois, np.int64(top_data.size), np.int32(channels), np.int32(height), np.int32(width),
             np.int32(out_shape[1]), np.int32(k), np.int32(P), np.float32(s), top_data),
        )
    return top_data


def _ps_assemble_backward_cupy(top_diff, rois, k, P, s, input_shape):
    cupy = _cupy()
    bottom_diff = cupy.zeros(input_shape, cupy.float32)
    if top_diff.size and bottom_diff.size:
        N, channels, height, width = input_shape
        _cupy_kernel("ps_assemble_backward")(
            (_blocks(top_diff.size),), (THREADS_PER_BLOCK,),
            (top_diff, rois, np.int64(top_diff.size), np.int32(channels), np.int32(height), np.int32(width),
             np.int32(top_diff.shape[1]), np.int32(k), np.int32(P), np.float32(s), bottom_diff),
        )
    return bottom_diff


def _blocks(threads):
    """Blocks of :data:`THREADS_PER_BLOCK` that cover ``threads`` threads."""
    return (threads + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK


def _cupy():
    import cupy

    return cupy


@functools.cache
def _cupy_kernel(name):
    """A kernel of :data:`CUDA_SOURCE`, compiled once by NVRTC without fused multiply-adds."""
    return _cupy().RawModule(code=CUDA_SOURCE, options=("--fmad=false",)).get_function(name)


@functools.cache
def _cuda_kernels():
    """The Numba-CUDA kernels ``(forward, backward, zero)``, compiled on first use (numba-cuda is optional).

    Every product goes through :func:`fcis_twin.accelerated._float32.mul_rn`, libdevice's ``fmul_rn`` on a GPU: NVVM would
    contract a plain product and sum into a fused multiply-add.
    """
    return cuda.jit(_forward_kernel), cuda.jit(_backward_kernel), cuda.jit(_zero_kernel)


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
def _bin_edges(ph, pw, x1, y1, x2, y2, height, width, output_size, spatial_scale):
    """Feature rows ``[hstart, hend)`` and columns ``[wstart, wend)`` of bin ``(ph, pw)`` of one ROI.

    :func:`fcis_twin.reference.assemble._roi_bins` for one bin, one float32 operation at a time in the same order.  The edges
    are clipped to the map in float and then floored (ceiled): clipping to ``[0, W]`` commutes with floor and ceil
    because ``0`` and ``W`` are integers, and clipping first keeps a huge ROI's edge from overflowing the int.
    """
    # the ROI in feature cells: rounded image coordinates, scaled; at least MIN_ROI_SIZE on a side
    roi_start_w = _mul_rn(_round_half_away(x1), spatial_scale)
    roi_start_h = _mul_rn(_round_half_away(y1), spatial_scale)
    roi_end_w = _mul_rn(_round_half_away(x2), spatial_scale)
    roi_end_h = _mul_rn(_round_half_away(y2), spatial_scale)
    roi_width = max(roi_end_w - roi_start_w, MIN_ROI_SIZE)
    roi_height = max(roi_end_h - roi_start_h, MIN_ROI_SIZE)
    bin_size_w = roi_width / np.float32(output_size)
    bin_size_h = roi_height / np.float32(output_size)
    # the bin's edges: each product rounded before the add
    wstart = _mul_rn(np.float32(pw), bin_size_w) + roi_start_w
    wend = _mul_rn(np.float32(pw + 1), bin_size_w) + roi_start_w
    hstart = _mul_rn(np.float32(ph), bin_size_h) + roi_start_h
    hend = _mul_rn(np.float32(ph + 1), bin_size_h) + roi_start_h
    # clipped to the map, then to ints
    W, H = np.float32(width), np.float32(height)
    wstart, wend = min(max(wstart, _ZERO), W), min(max(wend, _ZERO), W)
    hstart, hend = min(max(hstart, _ZERO), H), min(max(hend, _ZERO), H)
    return math.floor(hstart), math.ceil(hend), math.floor(wstart), math.ceil(wend)


@numba.njit(inline="always", cache=True)
def _part_cell(p, group_size, output_size):
    """Part cell ``g = (p * k) // P`` of bin ``p`` along one axis: ``gh`` for row ``ph``, ``gw`` for column ``pw``."""
    return (p * group_size) // output_size


@numba.njit(cache=True)
def _geometry_cpu(rois, height, width, group_size, output_size, spatial_scale):
    """The bins of every ROI and the part cells, computed once for all channels.

    Returns ``edges``, ``(R, P, 4)`` int64 with ``hstart, hend`` of row ``p`` and ``wstart, wend`` of column ``p``,
    and ``part``, ``(P,)`` int64 with the part cell of bin ``p`` along either axis.
    """
    edges = np.empty((rois.shape[0], output_size, 4), np.int64)
    for n in range(rois.shape[0]):
        for p in range(output_size):  # bin (p, p) holds row p's and column p's edges
            edges[n, p, 0], edges[n, p, 1], edges[n, p, 2], edges[n, p, 3] = _bin_edges(
                p, p, rois[n, 1], rois[n, 2], rois[n, 3], rois[n, 4], height, width, output_size, spatial_scale)
    part = np.empty(output_size, np.int64)
    for p in range(output_size):
        part[p] = _part_cell(p, group_size, output_size)
    return edges, part


@numba.njit(parallel=True, cache=True)
def _forward_cpu(bottom_data, rois, group_size, output_size, spatial_scale, top_data):
    """One output channel ``c_out`` per thread, every ROI in turn, each output element as in the loop template.

    Channel-major rather than ROI-major for the cache: the ``k*k`` input channels of one ``c_out`` (470 KB at
    FCIS-COCO size) stay in cache while all the ROIs read them.
    """
    height, width = bottom_data.shape[2], bottom_data.shape[3]
    num_rois, output_dim = top_data.shape[0], top_data.shape[1]
    edges, part = _geometry_cpu(rois, height, width, group_size, output_size, spatial_scale)
    for c_out in numba.prange(output_dim):
        for n in range(num_rois):
            roi_batch_ind = int(rois[n, 0])
            for ph in range(output_size):
                hstart, hend, gh = edges[n, ph, 0], edges[n, ph, 1], part[ph]
                for pw in range(output_size):
                    wstart, wend, gw = edges[n, pw, 2], edges[n, pw, 3], part[pw]
                    if hend <= hstart or wend <= wstart:
                        continue  # an empty bin stays 0
                    # the mean of the bin in its part cell's channel, as in the loop template
                    c = (c_out * group_size + gh) * group_size + gw
                    plane = bottom_data[roi_batch_ind, c]  # (H, W) view
                    out_sum = _ZERO
                    for h in range(hstart, hend):
                        for w in range(wstart, wend):
                            out_sum += plane[h, w]
                    bin_area = np.float32((hend - hstart) * (wend - wstart))
                    top_data[n, c_out, ph, pw] = out_sum / bin_area


@numba.njit(parallel=True, cache=True)
def _backward_cpu(top_diff, rois, group_size, output_size, spatial_scale, bottom_diff):
    """One output channel ``c_out`` per thread, free of races: the ``k*k`` channels it writes are its alone.

    Within a thread the ROIs, bins and pixels run in the loop template's order, so every pixel receives its
    float32 additions in the template's order and the result agrees with it bit for bit.
    """
    height, width = bottom_diff.shape[2], bottom_diff.shape[3]
    num_rois, output_dim = top_diff.shape[0], top_diff.shape[1]
    edges, part = _geometry_cpu(rois, height, width, group_size, output_size, spatial_scale)
    for c_out in numba.prange(output_dim):
        for n in range(num_rois):
            roi_batch_ind = int(rois[n, 0])
            for ph in range(output_size):
                hstart, hend, gh = edges[n, ph, 0], edges[n, ph, 1], part[ph]
                for pw in range(output_size):
                    wstart, wend, gw = edges[n, pw, 2], edges[n, pw, 3], part[pw]
                    if hend <= hstart or wend <= wstart:
                        continue  # an empty bin spreads nothing
                    # the bin's share per pixel, added to every pixel of the bin in its part cell's channel
                    c = (c_out * group_size + gh) * group_size + gw
                    plane = bottom_diff[roi_batch_ind, c]  # (H, W) view
                    bin_area = np.float32((hend - hstart) * (wend - wstart))
                    diff_val = top_diff[n, c_out, ph, pw] / bin_area
                    for h in range(hstart, hend):
                        for w in range(wstart, wend):
                            plane[h, w] += diff_val


def _forward_kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data):
    """One thread per output element ``(n, c_out, ph, pw)``, ``pw`` fastest: consecutive threads write consecutive
    outputs (coalesced stores) and read neighbouring bins.

    The bin is summed row-major in float32 and divided by its float32 area, as in the loop template.  No atomics and
    no shared memory: each output is written by its own thread only, and bins are too small to be worth staging.
    """
    i = cuda.grid(1)
    if i >= top_data.size:
        return
    # (n, c_out, ph, pw) from the flat index
    output_dim = top_data.shape[1]
    pw = i % output_size
    ph = (i // output_size) % output_size
    c_out = (i // (output_size * output_size)) % output_dim
    n = i // (output_size * output_size * output_dim)
    # the bin; 0 for an empty one
    hstart, hend, wstart, wend = _bin_edges(ph, pw, rois[n, 1], rois[n, 2], rois[n, 3], rois[n, 4],
                                            bottom_data.shape[2], bottom_data.shape[3], output_size, spatial_scale)
    if hend <= hstart or wend <= wstart:
        top_data[n, c_out, ph, pw] = 0
        return
    # the mean of its part cell's channel: a row-major float32 sum divided by the float32 area
    gw = _part_cell(pw, group_size, output_size)
    gh = _part_cell(ph, group_size, output_size)
    c = (c_out * group_size + gh) * group_size + gw
    roi_batch_ind = int(rois[n, 0])
    out_sum = _ZERO
    for h in range(hstart, hend):
        for w in range(wstart, wend):
            out_sum += bottom_data[roi_batch_ind, c, h, w]
    bin_area = np.float32((hend - hstart) * (wend - wstart))
    top_data[n, c_out, ph, pw] = out_sum / bin_area


def _backward_kernel(top_diff, rois, group_size, output_size, spatial_scale, bottom_diff):
    """One thread per gradient element ``(n, c_out, ph, pw)``: it adds ``grad / bin_area`` to every pixel of its bin.

    Bins overlap (neighbouring bins share an edge row or column, and ROIs overlap), so the adds are atomic; their
    order, and hence the float32 sum's last bits, depends on the thread schedule.
    """
    i = cuda.grid(1)
    if i >= top_diff.size:
        return
    # (n, c_out, ph, pw) from the flat index
    output_dim = top_diff.shape[1]
    pw = i % output_size
    ph = (i // output_size) % output_size
    c_out = (i // (output_size * output_size)) % output_dim
    n = i // (output_size * output_size * output_dim)
    # the bin; nothing to spread from an empty one
    hstart, hend, wstart, wend = _bin_edges(ph, pw, rois[n, 1], rois[n, 2], rois[n, 3], rois[n, 4],
                                            bottom_diff.shape[2], bottom_diff.shape[3], output_size, spatial_scale)
    if hend <= hstart or wend <= wstart:
        return
    # the bin's share per pixel, added to every pixel of the bin in its part cell's channel
    gw = _part_cell(pw, group_size, output_size)
    gh = _part_cell(ph, group_size, output_size)
    c = (c_out * group_size + gh) * group_size + gw
    roi_batch_ind = int(rois[n, 0])
    bin_area = np.float32((hend - hstart) * (wend - wstart))
    diff_val = top_diff[n, c_out, ph, pw] / bin_area
    for h in range(hstart, hend):
        for w in range(wstart, wend):
            cuda.atomic.add(bottom_diff, (roi_batch_ind, c, h, w), diff_val)


def _zero_kernel(flat):
    """``flat[:] = 0``, one element per thread (the backward pass accumulates into a zeroed array)."""
    i = cuda.grid(1)
    if i < flat.size:
        flat[i] = 0


#: The CuPy kernels in CUDA C, compiled by NVRTC with ``--fmad=false``: the Numba kernels line by line, with C's
#: ``roundf`` (half away from zero, as the conventions) in place of :func:`_round_half_away`.
CUDA_SOURCE = r"""
#define MIN_ROI_SIZE 0.1f

// Feature rows [hstart, hend) and columns [wstart, wend) of bin (ph, pw) of one ROI (x1, y1, x2, y2):
// fcis_twin.reference.assemble._roi_bins for one bin; clipped to the map in float, then floored / ceiled.
__device__ void bin_edges(int ph, int pw, const float* roi, int height, int width, int output_size,
                          float spatial_scale, int* hstart, int* hend, int* wstart, int* wend)
{
    // the ROI in feature cells: rounded image coordinates, scaled; at least MIN_ROI_SIZE on a side
    float roi_start_w = roundf(roi[0]) * spatial_scale;
    float roi_start_h = roundf(roi[1]) * spatial_scale;
    float roi_end_w = roundf(roi[2]) * spatial_scale;
    float roi_end_h = roundf(roi[3]) * spatial_scale;
    float roi_width = fmaxf(roi_end_w - roi_start_w, MIN_ROI_SIZE);
    float roi_height = fmaxf(roi_end_h - roi_start_h, MIN_ROI_SIZE);
    float bin_size_w = roi_width / (float)output_size;
    float bin_size_h = roi_height / (float)output_size;
    // the bin's edges: each product rounded before the add (--fmad=false)
    float ws = (float)pw * bin_size_w + roi_start_w;
    float we = (float)(pw + 1) * bin_size_w + roi_start_w;
    float hs = (float)ph * bin_size_h + roi_start_h;
    float he = (float)(ph + 1) * bin_size_h + roi_start_h;
    // clipped to the map, then to ints
    *wstart = (int)floorf(fminf(fmaxf(ws, 0.0f), (float)width));
    *wend = (int)ceilf(fminf(fmaxf(we, 0.0f), (float)width));
    *hstart = (int)floorf(fminf(fmaxf(hs, 0.0f), (float)height));
    *hend = (int)ceilf(fminf(fmaxf(he, 0.0f), (float)height));
}

// One thread per output element (n, c_out, ph, pw), pw fastest.
extern "C" __global__ void ps_assemble_forward(
    const float* bottom_data, const float* rois, long long total, int channels, int height, int width,
    int output_dim, int group_size, int output_size, float spatial_scale, float* top_data)
{
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    // (n, c_out, ph, pw) from the flat index
    int pw = (int)(index % output_size);
    int ph = (int)((index / output_size) % output_size);
    int c_out = (int)((index / output_size / output_size) % output_dim);
    long long n = index / output_size / output_size / output_dim;
    // the bin and its part cell's channel
    const float* roi = rois + n * 5;
    int roi_batch_ind = (int)roi[0];
    int hstart, hend, wstart, wend;
    bin_edges(ph, pw, roi + 1, height, width, output_size, spatial_scale, &hstart, &hend, &wstart, &wend);
    int gw = (pw * group_size) / output_size;
    int gh = (ph * group_size) / output_size;
    int c = (c_out * group_size + gh) * group_size + gw;
    // the mean: a row-major float32 sum divided by the float32 area; 0 for an empty bin
    if (hend <= hstart || wend <= wstart) {
        top_data[index] = 0.0f;
        return;
    }
    const float* data = bottom_data + ((long long)roi_batch_ind * channels + c) * height * width;
    float out_sum = 0.0f;
    for (int h = hstart; h < hend; ++h)
        for (int w = wstart; w < wend; ++w)
            out_sum += data[h * width + w];
    float bin_area = (float)((hend - hstart) * (wend - wstart));
    top_data[index] = out_sum / bin_area;
}

// One thread per gradient element (n, c_out, ph, pw): atomically adds grad / bin_area to every pixel of its bin.
extern "C" __global__ void ps_assemble_backward(
    const float* top_diff, const float* rois, long long total, int channels, int height, int width,
    int output_dim, int group_size, int output_size, float spatial_scale, float* bottom_diff)
{
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    // (n, c_out, ph, pw) from the flat index
    int pw = (int)(index % output_size);
    int ph = (int)((index / output_size) % output_size);
    int c_out = (int)((index / output_size / output_size) % output_dim);
    long long n = index / output_size / output_size / output_dim;
    // the bin; nothing to spread from an empty one
    const float* roi = rois + n * 5;
    int roi_batch_ind = (int)roi[0];
    int hstart, hend, wstart, wend;
    bin_edges(ph, pw, roi + 1, height, width, output_size, spatial_scale, &hstart, &hend, &wstart, &wend);
    if (hend <= hstart || wend <= wstart) return;
    // the bin's share per pixel, added to every pixel of the bin in its part cell's channel
    int gw = (pw * group_size) / output_size;
    int gh = (ph * group_size) / output_size;
    int c = (c_out * group_size + gh) * group_size + gw;
    float bin_area = (float)((hend - hstart) * (wend - wstart));
    float diff_val = top_diff[index] / bin_area;
    float* diff = bottom_diff + ((long long)roi_batch_ind * channels + c) * height * width;
    for (int h = hstart; h < hend; ++h)
        for (int w = wstart; w < wend; ++w)
            atomicAdd(diff + h * width + w, diff_val);
}
"""
