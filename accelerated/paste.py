r"""Pasting ``P x P`` mask probabilities into the image: the accelerated twin of :mod:`fcis_twin.reference.paste`.

Every kernel is the reference's loop template (:func:`fcis_twin.reference.paste.paste_masks_loop`) with one image
pixel per thread: the same region rows (:func:`fcis_twin.reference.paste.box_regions`, ``REGION_*`` columns), the
same names, and the same float32 operations in the same order (:func:`._float32.axis_coord`,
:func:`._float32.bilinear`; ``common.cuh`` for CuPy), so the results agree bit for bit.  Work is spent only on the
in-image part of each box (its *region*); the rest of the ``(D, H, W)`` output is a fill.
"""

import numba
import numpy as np

from ..reference.paste import (
    REGION_BOTTOM,
    REGION_H,
    REGION_LEFT,
    REGION_RIGHT,
    REGION_TOP,
    REGION_W,
    REGION_X1,
    REGION_Y1,
    box_regions,
    check_paste_args,
)
from ._backend import cupy_array, like, resolve_backend, to_host, to_numba_device
from ._float32 import axis_coord, bilinear
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
    owner,
)


def paste_masks(masks, boxes, image_shape, *, threshold=None, backend=None):
    r"""Resize each mask to its rounded box and write it into an image-sized canvas, on the chosen backend.

    The twin of :func:`fcis_twin.reference.paste.paste_masks`: the same arguments, errors and result, bit for bit.

    Parameters
    ----------
    masks, boxes, image_shape, threshold
        As the reference.  ``masks`` may be a NumPy or a CuPy array (checked where it is); ``boxes`` too.
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated.resolve_backend`).

    Returns
    -------
    pasted : (D, H, W) float32 array, or bool when ``threshold`` is given
        NumPy or CuPy, as ``masks``.

    Notes
    -----
    Numba-CPU runs one detection per CPU thread.  The GPU backends run one thread per pixel of every region: the
    regions' areas, summed into ``offsets``, lay the regions end to end, and flat thread ``t`` paints pixel
    ``t - offsets[d]`` of region ``d`` (:func:`._launch.owner`).

    Examples
    --------
    >>> paste_masks(np.array([[[0.0, 1.0], [0.0, 1.0]]]), [[1, 0, 5, 2]], (2, 6), backend="numba-cpu")
    array([[[0.  , 0.  , 0.25, 0.75, 1.  , 0.  ],
            [0.  , 0.  , 0.25, 0.75, 1.  , 0.  ]]], dtype=float32)
    """
    backend = resolve_backend(backend)
    inputs = (masks, boxes)
    masks, boxes, (height, width), threshold = check_paste_args(masks, to_host(boxes), image_shape, threshold,
                                                                 device=True)
    regions = box_regions(boxes, height, width)  # (D, REGION_FIELDS) int64, small: on the host
    if backend == "numba-cpu":
        pasted = _paste_numba_cpu(np.ascontiguousarray(to_host(masks)), regions, height, width, threshold)
    elif backend == "numba-cuda":
        offsets = region_offsets(regions)
        pasted = _paste_cuda(to_numba_device(masks), cuda.to_device(regions), cuda.to_device(offsets),
                             int(offsets[-1]), height, width, threshold)
    else:
        offsets = region_offsets(regions)
        pasted = _paste_cupy(cupy_array(masks), cupy_array(regions), cupy_array(offsets), int(offsets[-1]), height,
                             width, threshold)
    return like(pasted, *inputs)


def region_offsets(regions):
    """``(R + 1,)`` int64 running sum of the regions' areas: region ``d`` owns flat pixels
    ``offsets[d]:offsets[d + 1]`` of a GPU launch."""
    rows = regions[:, REGION_BOTTOM] - regions[:, REGION_TOP]
    cols = regions[:, REGION_RIGHT] - regions[:, REGION_LEFT]
    return np.concatenate([[0], np.cumsum(rows * cols)]).astype(np.int64)


# --- backends ---------------------------------------------------------------------------------------------------


def _paste_numba_cpu(masks, regions, height, width, threshold):
    binarize = threshold is not None
    out = np.zeros((masks.shape[0], height, width), bool if binarize else np.float32)
    _paste_cpu(masks, regions, np.float32(threshold if binarize else 0), binarize, out)
    return out


def _paste_cuda(masks, regions, offsets, total, height, width, threshold):
    binarize = threshold is not None
    out = cuda.device_array((masks.shape[0], height, width), bool if binarize else np.float32)
    flat = out.reshape(out.size)  # (D * H * W,) view
    if flat.size:
        launch(fill_kernel, blocks(flat.size))(flat, False)  # outside every region
    if total:
        paste = _paste_binary_kernel if binarize else _paste_prob_kernel
        launch(paste, blocks(total))(masks, regions, offsets, np.float32(threshold if binarize else 0), out)
    return out


def _paste_cupy(masks, regions, offsets, total, height, width, threshold):
    import cupy

    binarize = threshold is not None
    out = cupy.zeros((masks.shape[0], height, width), bool if binarize else np.float32)
    if total:
        num, mask_h, mask_w = masks.shape
        name = "paste_masks_binary" if binarize else "paste_masks_prob"
        args = (masks, regions, offsets, np.int32(num), np.int32(mask_h), np.int32(mask_w), np.int32(height),
                np.int32(width), np.float32(threshold if binarize else 0), out)
        cupy_module("paste").get_function(name)((blocks(total),), (THREADS_PER_BLOCK,), args)
    return out


# --- Numba-CPU ----------------------------------------------------------------------------------------------------


@cpu_kernel()
def _paste_cpu(masks, regions, threshold, binarize, out):
    """The loop template with one detection per parallel iteration."""
    mask_h, mask_w = masks.shape[1], masks.shape[2]
    for d in numba.prange(masks.shape[0]):
        y1, x1, h, w = regions[d, REGION_Y1], regions[d, REGION_X1], regions[d, REGION_H], regions[d, REGION_W]
        for y in range(regions[d, REGION_TOP], regions[d, REGION_BOTTOM]):
            v0, v1, ay = axis_coord(y - y1, mask_h, h)
            for x in range(regions[d, REGION_LEFT], regions[d, REGION_RIGHT]):
                u0, u1, ax = axis_coord(x - x1, mask_w, w)
                value = bilinear(masks[d, v0, u0], masks[d, v0, u1], masks[d, v1, u0], masks[d, v1, u1], ay, ax)
                if binarize:
                    out[d, y, x] = value >= threshold
                else:
                    out[d, y, x] = value


# --- Numba-CUDA ---------------------------------------------------------------------------------------------------


@device_function
def _paste_pixel(masks, regions, offsets, t):
    """Flat thread ``t`` -> ``(d, y, x, value)``: its detection, its image pixel and the pasted probability."""
    d = owner(offsets, t)
    cols = regions[d, REGION_RIGHT] - regions[d, REGION_LEFT]
    y = regions[d, REGION_TOP] + (t - offsets[d]) // cols  # row-major inside the region
    x = regions[d, REGION_LEFT] + (t - offsets[d]) % cols
    v0, v1, ay = axis_coord(y - regions[d, REGION_Y1], masks.shape[1], regions[d, REGION_H])
    u0, u1, ax = axis_coord(x - regions[d, REGION_X1], masks.shape[2], regions[d, REGION_W])
    value = bilinear(masks[d, v0, u0], masks[d, v0, u1], masks[d, v1, u0], masks[d, v1, u1], ay, ax)
    return d, y, x, value



@kernel
def _paste_prob_kernel(masks, regions, offsets, threshold, out):
    """One thread per (detection, pixel of its region): a flat launch over ``offsets[-1]`` threads."""
    t = cuda.grid(1)
    if t >= offsets[offsets.shape[0] - 1]:
        return
    d, y, x, value = _paste_pixel(masks, regions, offsets, t)
    out[d, y, x] = value


@kernel
def _paste_binary_kernel(masks, regions, offsets, threshold, out):
    """As :func:`_paste_prob_kernel`, storing ``value >= threshold``."""
    t = cuda.grid(1)
    if t >= offsets[offsets.shape[0] - 1]:
        return
    d, y, x, value = _paste_pixel(masks, regions, offsets, t)
    out[d, y, x] = value >= threshold
