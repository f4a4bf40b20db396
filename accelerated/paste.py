r"""Pasting ``P x P`` mask probabilities into the image: the accelerated twin of :mod:`fcis_twin.reference.paste`.

Every backend computes, for each detection and each image pixel of its rounded box that lies in the image, the
bilinear sample of :func:`fcis_twin.reference.paste.paste_masks` with the same float32 operations in the same order, so the
results agree bit for bit: ``fl(fl(w0 * m0) + fl(w1 * m1))`` per axis, rows first.  Work is spent only on the
in-image part of each box (a *region*); the rest of the ``(D, H, W)`` output is a fill.

The scalar pieces of that arithmetic (:func:`_axis_coord`, :func:`_lerp`, :func:`_bilinear`,
:func:`fcis_twin.accelerated._float32.mul_rn`) are written once as ``numba.njit`` functions and called from the Numba-CPU loops and the Numba-CUDA kernels alike; the
CuPy kernels repeat them in CUDA C (:data:`CUDA_HELPERS`), compiled with :data:`NVRTC_OPTIONS`.
:mod:`fcis_twin.accelerated.voting` samples its voters' masks with the same pieces.
"""

import functools
import math

import numba
import numpy as np
from numba import cuda

from ..reference._checks import as_image_shape, as_probability, round_half_away
from ..reference.paste import _as_mask_probs, _as_paste_boxes

from ._float32 import mul_rn as _mul_rn
from ._backend import is_cupy, like, resolve_backend, to_host

THREADS = 128  # threads per block of every flat launch, one output pixel (or one fill element) per thread
NVRTC_OPTIONS = ("--fmad=false",)  # no fused multiply-add: every product is rounded before it is added
REGION_FIELDS = 8  # a region row: y1, x1, h, w (the rounded box), top, left, bottom, right (its in-image part)


def paste_masks(masks, boxes, image_shape, *, threshold=None, backend=None):
    r"""Resize each mask to its rounded box and write it into an image-sized canvas.

    Parameters
    ----------
    masks : (D, P, P) float32 array_like, NumPy or CuPy
        Mask probabilities in ``[0, 1]``; ``(D, Ph, Pw)`` is accepted too.
    boxes : (D, 4) float32 array_like, NumPy or CuPy
        ``(x1, y1, x2, y2)``, half-open, image pixels, within ``[-2**23, 2**23]``.
    image_shape : (H, W)
    threshold : float in [0, 1], optional
        When given, return ``prob >= float32(threshold)`` instead of the probabilities.
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated._backend.resolve_backend`).

    Returns
    -------
    pasted : (D, H, W) float32 array, or bool when ``threshold`` is given
        NumPy or CuPy, as ``masks``; bit-identical to :func:`fcis_twin.reference.paste.paste_masks`.

    Notes
    -----
    The regions (rounded box and its in-image part) are computed on the host from the small ``boxes`` array by
    :func:`box_regions`; ``offsets`` is the running sum of the region areas, so that flat thread ``t`` of a GPU
    launch paints pixel ``t - offsets[d]`` of the region of the detection ``d`` with
    ``offsets[d] <= t < offsets[d + 1]``.  No thread ever visits a pixel outside a box.

    Examples
    --------
    >>> paste_masks(np.array([[[0.0, 1.0], [0.0, 1.0]]]), [[1, 0, 5, 2]], (2, 6), backend="numba-cpu")
    array([[[0.  , 0.  , 0.25, 0.75, 1.  , 0.  ],
            [0.  , 0.  , 0.25, 0.75, 1.  , 0.  ]]], dtype=float32)
    """
    backend = resolve_backend(backend)
    inputs = (masks, boxes)
    if is_cupy(masks):
        masks = as_device_mask_probs("masks", masks, ndim=3)
    else:
        masks = _as_mask_probs("masks", masks, ndim=3)
    boxes = _as_paste_boxes("boxes", to_host(boxes))  # (D, 4): small, checked and rounded on the host
    if boxes.shape[0] != masks.shape[0]:
        raise ValueError(f"boxes must have shape ({masks.shape[0]}, 4) to match masks, got {boxes.shape}")
    height, width = as_image_shape("image_shape", image_shape)
    if threshold is not None:
        threshold = np.float32(as_probability("threshold", threshold))

    regions = box_regions(boxes, height, width)  # (D, REGION_FIELDS) int64
    offsets = region_offsets(regions)  # (D + 1,) int64
    if backend == "numba-cpu":
        pasted = _paste_numba_cpu(np.ascontiguousarray(to_host(masks)), regions, height, width, threshold)
    elif backend == "numba-cuda":
        pasted = _paste_cuda(numba_device(masks), cuda.to_device(regions), cuda.to_device(offsets),
                             int(offsets[-1]), height, width, threshold)
    else:
        import cupy

        pasted = _paste_cupy(cupy.ascontiguousarray(cupy.asarray(masks)), cupy.asarray(regions),
                             cupy.asarray(offsets), int(offsets[-1]), height, width, threshold)
    return like(pasted, *inputs)


def box_regions(boxes, height, width):
    """``(R, REGION_FIELDS)`` int64 regions of host ``(R, 4)`` boxes: the rounded box and its in-image part.

    Columns ``y1, x1, h, w`` are the rounded box (``round_half_away``, ``h, w >= 1``); ``top, left, bottom,
    right`` its half-open intersection with the image, as :func:`fcis_twin.reference.paste.paste_mask_region`'s ``y0, x0``
    and extents (an empty region has ``bottom == top`` or ``right == left``).
    """
    rounded = round_half_away(boxes).astype(np.int64).reshape(-1, 4)  # (R, 4) as X1, Y1, X2, Y2
    return _box_regions(rounded, height, width)


def region_offsets(regions):
    """``(R + 1,)`` int64 running sum of region areas: region ``d`` owns flat pixels ``offsets[d]:offsets[d + 1]``."""
    areas = (regions[:, 6] - regions[:, 4]) * (regions[:, 7] - regions[:, 5])  # (R,) rows * columns
    return np.concatenate([[0], np.cumsum(areas)]).astype(np.int64)


def as_device_mask_probs(name, masks, *, ndim, xp=None):
    """:func:`fcis_twin.reference.paste._as_mask_probs` for a device array: the same checks and messages, no host copy.

    ``xp`` is the array module (CuPy by default; NumPy in tests, which compare the messages with the reference).
    Only booleans (finite, in range) go back to the host.
    """
    if xp is None:
        import cupy as xp
    if not (np.issubdtype(masks.dtype, np.number) or masks.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array, got dtype {masks.dtype}")
    if masks.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {tuple(masks.shape)}")
    masks = masks.astype(np.float32, copy=False)
    if masks.size and not bool(xp.isfinite(masks).all()):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    if masks.size and bool(((masks < 0) | (masks > 1)).any()):
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    if masks.shape[-1] == 0 or masks.shape[-2] == 0:
        raise ValueError(f"{name} must have a non-empty mask grid (P >= 1), got shape {tuple(masks.shape)}")
    return masks


def numba_device(x):
    """A Numba device view of a CuPy array (zero-copy) or a device copy of a host array."""
    if is_cupy(x):
        import cupy

        return cuda.as_cuda_array(cupy.ascontiguousarray(x))
    return cuda.to_device(np.ascontiguousarray(x))


# --- backends ---------------------------------------------------------------------------------------------------


def _paste_numba_cpu(masks, regions, height, width, threshold):
    binarize = threshold is not None
    out = np.full((masks.shape[0], height, width), binarize and threshold <= 0, bool if binarize else np.float32)
    _paste_cpu(masks, regions, np.float32(threshold if binarize else 0), binarize, out)
    return out


def _paste_cuda(masks, regions, offsets, total, height, width, threshold):
    binarize = threshold is not None
    out = cuda.device_array((masks.shape[0], height, width), bool if binarize else np.float32)
    flat = out.reshape(out.size)  # (D * H * W,) view
    if flat.size:
        _fill_kernel[blocks(flat.size), THREADS](flat, binarize and threshold <= 0)  # the outside of every box
    if total:
        kernel = _paste_binary_kernel if binarize else _paste_prob_kernel
        kernel[blocks(total), THREADS](masks, regions, offsets, np.float32(threshold if binarize else 0), out)
    return out


def _paste_cupy(masks, regions, offsets, total, height, width, threshold):
    import cupy

    binarize = threshold is not None
    fill = binarize and threshold <= 0
    out = cupy.full((masks.shape[0], height, width), fill, bool if binarize else np.float32)
    if total:
        num, mask_h, mask_w = masks.shape
        name = "paste_masks_binary" if binarize else "paste_masks_prob"
        args = (masks, regions, offsets, np.int32(num), np.int32(mask_h), np.int32(mask_w), np.int32(height),
                np.int32(width), np.float32(threshold if binarize else 0), out)
        _cupy_module(PASTE_SOURCE).get_function(name)((blocks(total),), (THREADS,), args)
    return out


def blocks(count):
    """Blocks of :data:`THREADS` threads covering ``count`` flat work items."""
    return (int(count) + THREADS - 1) // THREADS


@functools.cache
def _cupy_module(source):
    """The CuPy module of a CUDA C source, compiled once with :data:`NVRTC_OPTIONS`."""
    import cupy

    return cupy.RawModule(code=source, options=NVRTC_OPTIONS)


# --- scalar helpers shared by Numba-CPU and Numba-CUDA ------------------------------------------------------------


@numba.njit(cache=True)
def _axis_coord(offset, p, size):
    """Sample position of pixel ``offset`` of a ``size``-pixel box side on a ``p``-cell mask axis.

    Returns ``(i0, i1, a)``: the two cells and the float32 weight of ``i1``, with
    ``u = (float32(offset) + 0.5) * p / size - 0.5`` (left to right) clamped to ``[0, p - 1]``.
    """
    u = (np.float32(offset) + np.float32(0.5)) * np.float32(p) / np.float32(size) - np.float32(0.5)
    u = min(max(u, np.float32(0)), np.float32(p - 1))
    i0 = int(math.floor(u))
    return i0, min(i0 + 1, p - 1), u - np.float32(i0)


@numba.njit(cache=True)
def _lerp(v0, v1, a):
    """``fl(fl((1 - a) * v0) + fl(a * v1))`` in float32: one two-tap sum of the reference's weight products."""
    v0, v1, a = np.float32(v0), np.float32(v1), np.float32(a)  # the simulator may hand over Python floats
    return _mul_rn(np.float32(1) - a, v0) + _mul_rn(a, v1)


@numba.njit(cache=True)
def _bilinear(m00, m01, m10, m11, ay, ax):
    """Bilinear sample of the cells ``m[v0, u0], m[v0, u1], m[v1, u0], m[v1, u1]``: rows first, then columns."""
    return _lerp(_lerp(m00, m10, ay), _lerp(m01, m11, ay), ax)


@numba.njit(cache=True)
def _box_regions(rounded, height, width):
    """Regions (see :func:`box_regions`) of ``(R, 4)`` int64 rounded boxes ``X1, Y1, X2, Y2``."""
    regions = np.empty((rounded.shape[0], REGION_FIELDS), np.int64)
    for r in range(rounded.shape[0]):
        x1, y1, x2, y2 = rounded[r, 0], rounded[r, 1], rounded[r, 2], rounded[r, 3]
        h, w = max(y2 - y1, 1), max(x2 - x1, 1)
        top, left = min(max(y1, 0), height), min(max(x1, 0), width)
        bottom, right = max(min(y1 + h, height), top), max(min(x1 + w, width), left)
        regions[r, 0], regions[r, 1], regions[r, 2], regions[r, 3] = y1, x1, h, w
        regions[r, 4], regions[r, 5], regions[r, 6], regions[r, 7] = top, left, bottom, right
    return regions


# --- Numba-CPU ----------------------------------------------------------------------------------------------------


@numba.njit(parallel=True, cache=True)
def _paste_cpu(masks, regions, threshold, binarize, out):
    """One detection per parallel iteration, its region's pixels in a plain loop (the GPU kernel's body)."""
    mask_h, mask_w = masks.shape[1], masks.shape[2]
    for d in numba.prange(masks.shape[0]):
        y1, x1, h, w = regions[d, 0], regions[d, 1], regions[d, 2], regions[d, 3]
        for y in range(regions[d, 4], regions[d, 6]):
            v0, v1, ay = _axis_coord(y - y1, mask_h, h)
            for x in range(regions[d, 5], regions[d, 7]):
                u0, u1, ax = _axis_coord(x - x1, mask_w, w)
                value = _bilinear(masks[d, v0, u0], masks[d, v0, u1], masks[d, v1, u0], masks[d, v1, u1], ay, ax)
                if binarize:
                    out[d, y, x] = value >= threshold
                else:
                    out[d, y, x] = value


# --- Numba-CUDA ---------------------------------------------------------------------------------------------------


@cuda.jit(device=True)
def owner(offsets, t):
    """The ``d`` with ``offsets[d] <= t < offsets[d + 1]`` (binary search; empty owners are skipped)."""
    lo, hi = 0, offsets.shape[0] - 1  # invariant: offsets[lo] <= t < offsets[hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offsets[mid] <= t:
            lo = mid
        else:
            hi = mid
    return lo


@cuda.jit(device=True)
def _paste_pixel(masks, regions, offsets, t):
    """Flat thread ``t`` -> ``(d, y, x, value)``: its detection, its image pixel and the pasted probability."""
    d = owner(offsets, t)
    cols = regions[d, 7] - regions[d, 5]
    y = regions[d, 4] + (t - offsets[d]) // cols  # row-major inside the region
    x = regions[d, 5] + (t - offsets[d]) % cols
    v0, v1, ay = _axis_coord(y - regions[d, 0], masks.shape[1], regions[d, 2])
    u0, u1, ax = _axis_coord(x - regions[d, 1], masks.shape[2], regions[d, 3])
    value = _bilinear(masks[d, v0, u0], masks[d, v0, u1], masks[d, v1, u0], masks[d, v1, u1], ay, ax)
    return d, y, x, value


@cuda.jit
def _paste_prob_kernel(masks, regions, offsets, threshold, out):
    """One thread per (detection, pixel of its region): a flat launch over ``offsets[-1]`` threads."""
    t = cuda.grid(1)
    if t >= offsets[offsets.shape[0] - 1]:
        return
    d, y, x, value = _paste_pixel(masks, regions, offsets, t)
    out[d, y, x] = value


@cuda.jit
def _paste_binary_kernel(masks, regions, offsets, threshold, out):
    """As :func:`_paste_prob_kernel`, storing ``value >= threshold``."""
    t = cuda.grid(1)
    if t >= offsets[offsets.shape[0] - 1]:
        return
    d, y, x, value = _paste_pixel(masks, regions, offsets, t)
    out[d, y, x] = value >= threshold


@cuda.jit
def _fill_kernel(flat, value):
    """``flat[:] = value``, one element per thread."""
    i = cuda.grid(1)
    if i < flat.shape[0]:
        flat[i] = value


# --- CuPy (CUDA C) ------------------------------------------------------------------------------------------------

#: Device functions shared by the paste and voting kernels: the CUDA C spelling of the helpers above.
CUDA_HELPERS = r"""
#define REGION_FIELDS 8  // y1, x1, h, w (rounded box), top, left, bottom, right (in-image part)

// The d with offsets[d] <= t < offsets[d + 1], for offsets of length n + 1 (binary search).
__device__ int owner(const long long* offsets, int n, long long t) {
    int lo = 0, hi = n;  // invariant: offsets[lo] <= t < offsets[hi]
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (offsets[mid] <= t) lo = mid; else hi = mid;
    }
    return lo;
}

// Sample position of pixel `offset` of a `size`-pixel box side on a `p`-cell mask axis (reference order).
__device__ void axis_coord(long long offset, int p, long long size, int* i0, int* i1, float* a) {
    float u = ((float)offset + 0.5f) * (float)p / (float)size - 0.5f;
    u = fminf(fmaxf(u, 0.0f), (float)(p - 1));
    *i0 = (int)floorf(u);
    *i1 = min(*i0 + 1, p - 1);
    *a = u - (float)*i0;
}

// fl(fl((1 - a) * v0) + fl(a * v1)): exact only when compiled with --fmad=false.
__device__ float lerp(float v0, float v1, float a) {
    return (1.0f - a) * v0 + a * v1;
}

// The pasted value of one (P_h, P_w) mask at image pixel (y, x) of its region: rows first, then columns.
__device__ float sample(const float* mask, int mask_h, int mask_w, const long long* region, long long y,
                        long long x) {
    int v0, v1, u0, u1;
    float ay, ax;
    axis_coord(y - region[0], mask_h, region[2], &v0, &v1, &ay);
    axis_coord(x - region[1], mask_w, region[3], &u0, &u1, &ax);
    float r0 = lerp(mask[v0 * mask_w + u0], mask[v1 * mask_w + u0], ay);
    float r1 = lerp(mask[v0 * mask_w + u1], mask[v1 * mask_w + u1], ay);
    return lerp(r0, r1, ax);
}
"""

#: The paste kernels: one thread per (detection, pixel of its region), flat over ``offsets[num]`` threads.
PASTE_SOURCE = CUDA_HELPERS + r"""
__device__ float paste_pixel(const float* masks, const long long* regions, const long long* offsets, int num,
                             int mask_h, int mask_w, int height, int width, long long t, long long* index) {
    int d = owner(offsets, num, t);
    const long long* region = regions + (long long)d * REGION_FIELDS;
    long long cols = region[7] - region[5];
    long long y = region[4] + (t - offsets[d]) / cols;  // row-major inside the region
    long long x = region[5] + (t - offsets[d]) % cols;
    *index = ((long long)d * height + y) * width + x;
    return sample(masks + (long long)d * mask_h * mask_w, mask_h, mask_w, region, y, x);
}

extern "C" __global__ void paste_masks_prob(const float* masks, const long long* regions,
        const long long* offsets, int num, int mask_h, int mask_w, int height, int width, float threshold,
        float* out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= offsets[num]) return;
    long long index;
    float value = paste_pixel(masks, regions, offsets, num, mask_h, mask_w, height, width, t, &index);
    out[index] = value;
}

extern "C" __global__ void paste_masks_binary(const float* masks, const long long* regions,
        const long long* offsets, int num, int mask_h, int mask_w, int height, int width, float threshold,
        bool* out) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= offsets[num]) return;
    long long index;
    float value = paste_pixel(masks, regions, offsets, num, mask_h, mask_w, height, width, t, &index);
    out[index] = value >= threshold;
}
"""
