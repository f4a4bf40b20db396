r"""Mask voting: the accelerated twin of :mod:`fcis_twin.reference.voting`.

The candidates (per-class NMS, per-class cap, global cut) are chosen on the host from the small ``boxes`` and
``cls_probs`` arrays, all classes in one :func:`fcis_twin.accelerated.nms.batched_nms` call.  The voting itself is a weighted
sum computed where the pixels are, in four steps that every backend takes in the same order:

1. **Voter flags**, one thread per (detection, ROI): ``IoU >= vote_threshold`` with the float32 formula of
   :func:`fcis_twin.reference.boxes._iou`, or the ROI is the detection's own.
2. **Voter lists** in CSR form, ``voters[voter_offsets[i]:voter_offsets[i + 1]]`` ascending: the flags compacted
   row by row (:func:`voter_lists`).
3. **Windows**, one thread per detection: the weight sum ``sum_j p_j`` in float32, ascending ``j``, and the union of
   the voters' in-image regions; a detection whose weights sum to 0 gets an empty window.
4. **Vote**, one thread per (detection, window pixel): ``sum_j p_j * paste(m_j)(y, x)`` over the voters whose
   region holds the pixel, ascending ``j``, in float32, divided once by the weight sum and compared ``>=
   binary_threshold``; the mask's tight box grows by atomic min/max.

No voter's full-image mask is ever formed: each thread samples the ``P x P`` masks it needs.  Every float32 product
is rounded on its own (:func:`fcis_twin.accelerated._float32.mul_rn`, ``--fmad=false``), so the masks agree bit for bit with
the reference.
"""

import functools

import numba
import numpy as np
from numba import cuda

from ..reference._checks import as_image_shape, as_int, as_probabilities, as_probability
from ..reference.paste import _as_mask_probs, _as_paste_boxes
from ..reference.voting import Detections, _sort_and_cut

from ._float32 import iou as _iou
from ._float32 import mul_rn as _mul_rn
from ._backend import is_cupy, like, resolve_backend, to_host
from .nms import batched_nms
from .paste import (CUDA_HELPERS, THREADS, _axis_coord, _bilinear, _cupy_module, _fill_kernel, _lerp,
                    as_device_mask_probs, blocks, box_regions, numba_device, owner)

WINDOW_FIELDS = 4  # a detection's window: top, left, bottom, right (int64, half-open; empty: all 0)
EXTENT_FIELDS = 4  # the tight box of a voted mask: min column, min row, max column, max row (int32)


def mask_voting(
    boxes,
    cls_masks,
    cls_probs,
    image_shape,
    *,
    nms_threshold=0.3,
    vote_threshold=0.5,
    binary_threshold=0.4,
    max_detections=100,
    score_threshold=1e-3,
    backend=None,
):
    r"""Per-class NMS, then one voted, binarized mask per surviving (ROI, class).

    Parameters
    ----------
    boxes : (R, 4) float32 array_like, NumPy or CuPy
        ``(x1, y1, x2, y2)``, half-open, image pixels: the boxes the masks were assembled in.
    cls_masks : (R, C, P, P) float32 array_like, NumPy or CuPy
        Foreground mask probabilities per ROI and class.
    cls_probs : (R, C) float32 array_like, NumPy or CuPy
        Class probabilities in ``[0, 1]``.
    image_shape : (H, W)
    nms_threshold, vote_threshold, binary_threshold, max_detections, score_threshold
        As :func:`fcis_twin.reference.voting.mask_voting`.
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}

    Returns
    -------
    fcis_twin.reference.voting.Detections
        Equal to :func:`fcis_twin.reference.voting.mask_voting`'s, its arrays NumPy or CuPy as ``cls_masks``.

    Notes
    -----
    See the module docstring for the four steps and :func:`fcis_twin.reference.voting.mask_voting` for the definition.  Only
    ``boxes`` and ``cls_probs`` (small) are validated on a host copy; a CuPy ``cls_masks`` is checked on the device.

    Examples
    --------
    >>> det = mask_voting([[1, 1, 3, 2]], np.full((1, 2, 2, 2), 0.5), [[0.2, 0.8]], (3, 4), backend="numba-cpu")
    >>> det.rois, det.labels, det.boxes
    (array([0]), array([1]), array([[1., 1., 3., 2.]], dtype=float32))
    """
    backend = resolve_backend(backend)
    inputs = (boxes, cls_masks, cls_probs)
    boxes = _as_paste_boxes("boxes", to_host(boxes))
    num_rois = boxes.shape[0]
    if is_cupy(cls_masks):
        cls_masks = as_device_mask_probs("cls_masks", cls_masks, ndim=4)
    else:
        cls_masks = _as_mask_probs("cls_masks", cls_masks, ndim=4)
    if cls_masks.shape[0] != num_rois or cls_masks.shape[1] < 1:
        expected = f"({num_rois}, C >= 1, P, P)"
        raise ValueError(f"cls_masks must have shape {expected} to match boxes, got {tuple(cls_masks.shape)}")
    num_classes = cls_masks.shape[1]
    cls_probs = as_probabilities("cls_probs", to_host(cls_probs), ndim=2)
    if cls_probs.shape != (num_rois, num_classes):
        expected = f"({num_rois}, {num_classes})"
        raise ValueError(f"cls_probs must have shape {expected} to match cls_masks, got {cls_probs.shape}")
    height, width = as_image_shape("image_shape", image_shape)
    nms_threshold = as_probability("nms_threshold", nms_threshold)
    vote_threshold = np.float32(as_probability("vote_threshold", vote_threshold))
    binary_threshold = np.float32(as_probability("binary_threshold", binary_threshold))
    max_detections = as_int("max_detections", max_detections, low=1)
    score_threshold = np.float32(as_probability("score_threshold", score_threshold))

    nms = functools.partial(batched_nms, backend=backend)
    rois, labels = _candidates(boxes, cls_probs, nms_threshold, max_detections, score_threshold, nms)
    regions = box_regions(boxes, height, width)  # (R, REGION_FIELDS) int64
    small = (np.ascontiguousarray(boxes), regions, np.ascontiguousarray(cls_probs), rois, labels)  # host arrays
    scalars = (vote_threshold, binary_threshold, height, width)
    if rois.shape[0] == 0:
        masks, totals, extents = np.zeros((0, height, width), bool), np.zeros(0, np.float32), np.zeros((0, 4))
    elif backend == "numba-cpu":
        masks, totals, extents = _vote_numba_cpu(np.ascontiguousarray(to_host(cls_masks)), *small, *scalars)
    elif backend == "numba-cuda":
        device = [cuda.to_device(a) for a in small]
        masks, totals, extents = _vote_cuda(numba_device(cls_masks), *device, *scalars)
        totals, extents = totals.copy_to_host(), extents.copy_to_host()
    else:
        import cupy

        device = [cupy.asarray(a) for a in small]
        masks, totals, extents = _vote_cupy(cupy.ascontiguousarray(cupy.asarray(cls_masks)), *device, *scalars)
        totals, extents = totals.get(), extents.get()

    # drop a zero weight sum or an empty mask; with binary_threshold 0 every mask is the whole image
    if binary_threshold <= 0:
        extents = np.tile(np.array([0, 0, width - 1, height - 1], np.int32), (rois.shape[0], 1))
    keep = (totals > 0) & (extents[:, 2] >= 0)  # (K,)
    masks = like(masks, *inputs)
    if not keep.all():
        masks = masks[like(np.flatnonzero(keep), *inputs)]
    tight = np.concatenate([extents[keep, :2], extents[keep, 2:] + 1], axis=1).astype(np.float32)
    rois, labels = rois[keep], labels[keep]
    return Detections(
        boxes=like(tight.reshape(-1, 4), *inputs),
        scores=like(cls_probs[rois, labels].astype(np.float32), *inputs),
        labels=like(labels, *inputs),
        masks=masks,
        rois=like(rois, *inputs),
    )


def _candidates(boxes, cls_probs, nms_threshold, max_detections, score_threshold, batched_nms):
    """``(rois, labels)`` int64, as :func:`fcis_twin.reference.voting._candidates`, with one ``batched_nms`` call.

    Every live ``(ROI r, class c)`` pair (``c >= 1``, probability at least ``score_threshold``) becomes a box
    labelled ``c``, flattened ROI-major, so that within a class a lower flat index is a lower ROI index: the
    batched NMS then keeps, per class, what :func:`fcis_twin.reference.nms.nms` keeps, and lists each class's survivors in
    its NMS order (descending score, ties by ROI).  The per-class cap takes the first ``max_detections`` of each
    class in that order; the rest is the reference's sort and global cut.
    """
    live_rois, live_labels = np.nonzero(cls_probs[:, 1:] >= score_threshold)  # ROI-major, ascending
    live_labels = live_labels + 1
    scores = cls_probs[live_rois, live_labels]  # (L,) float32
    if live_rois.shape[0]:
        keep = np.asarray(to_host(batched_nms(boxes[live_rois], scores, live_labels, nms_threshold)), np.int64)
    else:
        keep = np.zeros(0, np.int64)
    rois, labels, scores = live_rois[keep], live_labels[keep], scores[keep]  # by descending score

    # per-class cap: the rank of each survivor among its class's survivors, in NMS order
    by_class = np.argsort(labels, kind="stable")  # classes grouped, NMS order kept inside each
    sorted_labels = labels[by_class]
    rank = np.empty(labels.shape[0], np.int64)
    rank[by_class] = np.arange(labels.shape[0]) - np.searchsorted(sorted_labels, sorted_labels, side="left")
    capped = rank < max_detections
    rois, labels, scores = rois[capped], labels[capped], scores[capped]

    return _sort_and_cut(rois, labels, scores, max_detections)


def voter_lists(flags, xp):
    """CSR voter lists of a ``(K, R)`` bool flag matrix: ``(offsets (K + 1,), voters)`` int64, ascending per row.

    ``xp`` is the array module (NumPy or CuPy): this is array code, the natural formulation on both.
    """
    offsets = xp.zeros(flags.shape[0] + 1, xp.int64)
    offsets[1:] = xp.cumsum(flags.sum(axis=1))
    return offsets, xp.nonzero(flags)[1].astype(xp.int64)  # row-major: ROIs ascend within each detection


# --- backends ---------------------------------------------------------------------------------------------------


def _vote_numba_cpu(cls_masks, boxes, regions, cls_probs, rois, labels, vote_threshold, binary_threshold, height,
                    width):
    flags = _voter_flags_cpu(boxes, rois, vote_threshold)  # 1. (K, R) bool
    voter_offsets, voters = voter_lists(flags, np)  # 2.
    windows, totals, extents = _voter_windows_cpu(cls_probs, labels, regions, voter_offsets, voters, height, width)
    # 4. the average is 0 outside every voter: False there, unless binary_threshold is 0
    masks = (np.ones if binary_threshold <= 0 else np.zeros)((rois.shape[0], height, width), bool)
    _vote_cpu(cls_masks, cls_probs, labels, regions, voter_offsets, voters, windows, totals, binary_threshold,
              masks, extents)
    return masks, totals, extents


def _vote_cuda(cls_masks, boxes, regions, cls_probs, rois, labels, vote_threshold, binary_threshold, height, width):
    num, num_rois = rois.shape[0], boxes.shape[0]
    # 1. voter flags; 2. CSR lists: count per row, scan, fill
    flags = cuda.device_array((num, num_rois), bool)
    _voter_flags_kernel[blocks(num * num_rois), THREADS](boxes, rois, vote_threshold, flags)
    counts, voter_offsets = cuda.device_array(num, np.int64), cuda.device_array(num + 1, np.int64)
    voters = cuda.device_array(num * num_rois, np.int64)  # capacity: every ROI votes for every detection
    _voter_count_kernel[blocks(num), THREADS](flags, counts)
    _scan_kernel[1, 1](counts, voter_offsets)
    _voter_fill_kernel[blocks(num), THREADS](flags, voter_offsets, voters)

    # 3. windows, weight sums, and the vote launch's pixel offsets
    windows, areas = cuda.device_array((num, WINDOW_FIELDS), np.int64), cuda.device_array(num, np.int64)
    totals, extents = cuda.device_array(num, np.float32), cuda.device_array((num, EXTENT_FIELDS), np.int32)
    _voter_windows_kernel[blocks(num), THREADS](cls_probs, labels, regions, voter_offsets, voters, height, width,
                                                windows, areas, totals, extents)
    pixel_offsets = cuda.device_array(num + 1, np.int64)
    _scan_kernel[1, 1](areas, pixel_offsets)
    total = int(pixel_offsets[num:].copy_to_host()[0])  # the launch size: one scalar back to the host

    # 4. background fill, then the vote over the windows
    masks = cuda.device_array((num, height, width), bool)
    flat = masks.reshape(masks.size)
    _fill_kernel[blocks(flat.size), THREADS](flat, binary_threshold <= 0)
    if total:
        _vote_kernel[blocks(total), THREADS](cls_masks, cls_probs, labels, regions, voter_offsets, voters, windows,
                                             pixel_offsets, totals, binary_threshold, masks, extents)
    return masks, totals, extents


def _vote_cupy(cls_masks, boxes, regions, cls_probs, rois, labels, vote_threshold, binary_threshold, height, width):
    import cupy

    module = _cupy_module(VOTING_SOURCE)
    num, num_rois = rois.shape[0], boxes.shape[0]
    _, num_classes, mask_h, mask_w = cls_masks.shape
    # 1. voter flags; 2. CSR lists as array code
    flags = cupy.empty((num, num_rois), bool)
    module.get_function("voter_flags")((blocks(num * num_rois),), (THREADS,), (
        boxes, rois, np.int32(num), np.int32(num_rois), np.float32(vote_threshold), flags))
    voter_offsets, voters = voter_lists(flags, cupy)

    # 3. windows, weight sums, and the vote launch's pixel offsets
    windows, areas = cupy.empty((num, WINDOW_FIELDS), np.int64), cupy.empty(num, np.int64)
    totals, extents = cupy.empty(num, np.float32), cupy.empty((num, EXTENT_FIELDS), np.int32)
    module.get_function("voter_windows")((blocks(num),), (THREADS,), (
        cls_probs, np.int32(num_classes), labels, regions, voter_offsets, voters, np.int32(num), np.int32(height),
        np.int32(width), windows, areas, totals, extents))
    pixel_offsets = cupy.concatenate([cupy.zeros(1, np.int64), cupy.cumsum(areas)])
    total = int(pixel_offsets[-1])  # the launch size: one scalar back to the host

    # 4. background fill, then the vote over the windows
    masks = cupy.full((num, height, width), binary_threshold <= 0, bool)
    if total:
        module.get_function("vote")((blocks(total),), (THREADS,), (
            cls_masks, np.int32(num_classes), np.int32(mask_h), np.int32(mask_w), cls_probs, labels, regions,
            voter_offsets, voters, windows, pixel_offsets, totals, np.int32(num), np.int32(height), np.int32(width),
            np.float32(binary_threshold), masks, extents))
    return masks, totals, extents


# --- scalar helpers shared by Numba-CPU and Numba-CUDA ------------------------------------------------------------


@numba.njit(cache=True)
def _weighted_add(acc, p, value):
    """``fl(acc + fl(p * value))``: one voter's term added to a pixel's weighted sum."""
    return np.float32(acc) + _mul_rn(np.float32(p), np.float32(value))


@numba.njit(cache=True, error_model="numpy")
def _at_least(acc, total, threshold):
    """``fl(acc / total) >= threshold``: the binarized weighted average."""
    return np.float32(acc) / np.float32(total) >= np.float32(threshold)


# --- Numba-CPU ----------------------------------------------------------------------------------------------------


@numba.njit(parallel=True, cache=True)
def _voter_flags_cpu(boxes, rois, threshold):
    """Step 1: ``(K, R)`` flags, one detection per parallel iteration."""
    flags = np.empty((rois.shape[0], boxes.shape[0]), np.bool_)
    for i in numba.prange(rois.shape[0]):
        r = rois[i]
        for j in range(boxes.shape[0]):
            iou = _iou(boxes[r, 0], boxes[r, 1], boxes[r, 2], boxes[r, 3],
                       boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3])
            flags[i, j] = j == r or iou >= threshold
    return flags


@numba.njit(cache=True)
def _voter_windows_cpu(cls_probs, labels, regions, voter_offsets, voters, height, width):
    """Step 3: windows ``(K, 4)`` as top, left, bottom, right, weight sums ``(K,)`` and initial extents."""
    num = labels.shape[0]
    windows = np.zeros((num, WINDOW_FIELDS), np.int64)
    totals = np.zeros(num, np.float32)
    extents = np.empty((num, EXTENT_FIELDS), np.int32)
    for i in range(num):
        total = np.float32(0)
        top, left, bottom, right = height, width, 0, 0
        for v in range(voter_offsets[i], voter_offsets[i + 1]):
            j = voters[v]
            total = total + cls_probs[j, labels[i]]  # float32, ascending j
            if regions[j, 6] > regions[j, 4] and regions[j, 7] > regions[j, 5]:  # a non-empty region
                top, left = min(top, regions[j, 4]), min(left, regions[j, 5])
                bottom, right = max(bottom, regions[j, 6]), max(right, regions[j, 7])
        totals[i] = total
        if total > 0 and bottom > top:
            windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3] = top, left, bottom, right
        extents[i, 0], extents[i, 1], extents[i, 2], extents[i, 3] = width, height, -1, -1
    return windows, totals, extents


@numba.njit(parallel=True, cache=True)
def _vote_cpu(cls_masks, cls_probs, labels, regions, voter_offsets, voters, windows, totals, threshold, masks,
              extents):
    """Step 4, one detection per parallel iteration: each voter's paste added into a window buffer.

    Per pixel the terms are added in ascending ``j``, exactly as the GPU kernel's loop adds them; the CPU only
    reorders the loops (voter outermost) so that each mask row is interpolated once per image row.
    """
    mask_h, mask_w = cls_masks.shape[2], cls_masks.shape[3]
    for i in numba.prange(labels.shape[0]):
        top, left, bottom, right = windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3]
        if bottom <= top:
            continue
        c = labels[i]
        acc = np.zeros((bottom - top, right - left), np.float32)  # (window rows, window columns)
        row = np.empty(mask_w, np.float32)  # one mask row, interpolated between two mask rows
        col0, col1 = np.empty(right - left, np.int64), np.empty(right - left, np.int64)  # per window column
        col_a = np.empty(right - left, np.float32)
        for v in range(voter_offsets[i], voter_offsets[i + 1]):
            j = voters[v]
            if regions[j, 6] <= regions[j, 4] or regions[j, 7] <= regions[j, 5]:
                continue  # an empty region, whose columns may lie outside the window
            p = cls_probs[j, c]
            for x in range(regions[j, 5], regions[j, 7]):  # the voter's column samples, once
                col0[x - left], col1[x - left], col_a[x - left] = _axis_coord(x - regions[j, 1], mask_w, regions[j, 3])
            for y in range(regions[j, 4], regions[j, 6]):
                v0, v1, ay = _axis_coord(y - regions[j, 0], mask_h, regions[j, 2])
                for q in range(mask_w):
                    row[q] = _lerp(cls_masks[j, c, v0, q], cls_masks[j, c, v1, q], ay)
                for x in range(regions[j, 5] - left, regions[j, 7] - left):  # window columns
                    value = _lerp(row[col0[x]], row[col1[x]], col_a[x])
                    acc[y - top, x] = _weighted_add(acc[y - top, x], p, value)
        for y in range(top, bottom):
            for x in range(left, right):
                inside = _at_least(acc[y - top, x - left], totals[i], threshold)
                masks[i, y, x] = inside
                if inside:
                    extents[i, 0], extents[i, 1] = min(extents[i, 0], x), min(extents[i, 1], y)
                    extents[i, 2], extents[i, 3] = max(extents[i, 2], x), max(extents[i, 3], y)


# --- Numba-CUDA ---------------------------------------------------------------------------------------------------


@cuda.jit
def _voter_flags_kernel(boxes, rois, threshold, flags):
    """Step 1: one thread per (detection ``i``, ROI ``j``)."""
    t = cuda.grid(1)
    if t >= flags.shape[0] * flags.shape[1]:
        return
    i, j = t // flags.shape[1], t % flags.shape[1]
    r = rois[i]
    iou = _iou(boxes[r, 0], boxes[r, 1], boxes[r, 2], boxes[r, 3], boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3])
    flags[i, j] = j == r or iou >= threshold


@cuda.jit
def _voter_count_kernel(flags, counts):
    """Step 2a: one thread per detection counts its flags."""
    i = cuda.grid(1)
    if i >= flags.shape[0]:
        return
    n = 0
    for j in range(flags.shape[1]):
        if flags[i, j]:
            n += 1
    counts[i] = n


@cuda.jit
def _scan_kernel(counts, offsets):
    """``offsets = [0, cumsum(counts)]`` by one thread: a few hundred detections at most, serially."""
    if cuda.grid(1) != 0:
        return
    offsets[0] = 0
    for k in range(counts.shape[0]):
        offsets[k + 1] = offsets[k] + counts[k]


@cuda.jit
def _voter_fill_kernel(flags, offsets, voters):
    """Step 2b: one thread per detection writes its voters, ascending, from its offset on."""
    i = cuda.grid(1)
    if i >= flags.shape[0]:
        return
    n = offsets[i]
    for j in range(flags.shape[1]):
        if flags[i, j]:
            voters[n] = j
            n += 1


@cuda.jit
def _voter_windows_kernel(cls_probs, labels, regions, voter_offsets, voters, height, width, windows, areas, totals,
                          extents):
    """Step 3: one thread per detection, as :func:`_voter_windows_cpu`; ``areas`` sizes the vote launch."""
    i = cuda.grid(1)
    if i >= labels.shape[0]:
        return
    # weight sum and union of the non-empty voter regions
    total = np.float32(0)
    top, left, bottom, right = height, width, 0, 0
    for v in range(voter_offsets[i], voter_offsets[i + 1]):
        j = voters[v]
        total = total + cls_probs[j, labels[i]]
        if regions[j, 6] > regions[j, 4] and regions[j, 7] > regions[j, 5]:
            top, left = min(top, regions[j, 4]), min(left, regions[j, 5])
            bottom, right = max(bottom, regions[j, 6]), max(right, regions[j, 7])
    # a zero weight sum drops the detection: no pixels to vote
    if not (total > 0 and bottom > top):
        top, left, bottom, right = 0, 0, 0, 0
    windows[i, 0], windows[i, 1], windows[i, 2], windows[i, 3] = top, left, bottom, right
    areas[i] = (bottom - top) * (right - left)
    totals[i] = total
    extents[i, 0], extents[i, 1], extents[i, 2], extents[i, 3] = width, height, -1, -1


@cuda.jit
def _vote_kernel(cls_masks, cls_probs, labels, regions, voter_offsets, voters, windows, pixel_offsets, totals,
                 threshold, masks, extents):
    """Step 4: one thread per (detection, window pixel), a flat launch over ``pixel_offsets[-1]`` threads."""
    t = cuda.grid(1)
    if t >= pixel_offsets[pixel_offsets.shape[0] - 1]:
        return
    # the detection and the image pixel
    i = owner(pixel_offsets, t)
    cols = windows[i, 3] - windows[i, 1]
    y = windows[i, 0] + (t - pixel_offsets[i]) // cols
    x = windows[i, 1] + (t - pixel_offsets[i]) % cols
    # weighted sum over the voters whose region holds the pixel, ascending j
    c = labels[i]
    acc = np.float32(0)
    for v in range(voter_offsets[i], voter_offsets[i + 1]):
        j = voters[v]
        if regions[j, 4] <= y < regions[j, 6] and regions[j, 5] <= x < regions[j, 7]:
            v0, v1, ay = _axis_coord(y - regions[j, 0], cls_masks.shape[2], regions[j, 2])
            u0, u1, ax = _axis_coord(x - regions[j, 1], cls_masks.shape[3], regions[j, 3])
            value = _bilinear(cls_masks[j, c, v0, u0], cls_masks[j, c, v0, u1], cls_masks[j, c, v1, u0],
                              cls_masks[j, c, v1, u1], ay, ax)
            acc = _weighted_add(acc, cls_probs[j, c], value)
    # binarize; grow the tight box (a plain read first skips most atomics, a stale read only costs one)
    inside = _at_least(acc, totals[i], threshold)
    masks[i, y, x] = inside
    if inside:
        if x < extents[i, 0]:
            cuda.atomic.min(extents, (i, 0), np.int32(x))
        if y < extents[i, 1]:
            cuda.atomic.min(extents, (i, 1), np.int32(y))
        if x > extents[i, 2]:
            cuda.atomic.max(extents, (i, 2), np.int32(x))
        if y > extents[i, 3]:
            cuda.atomic.max(extents, (i, 3), np.int32(y))


# --- CuPy (CUDA C) ------------------------------------------------------------------------------------------------

#: The voting kernels, the CUDA C spelling of the Numba-CUDA ones; compiled with ``--fmad=false``.
VOTING_SOURCE = CUDA_HELPERS + r"""
// IoU in float32, in the order of fcis_twin.reference.boxes._iou; 0 for an empty union.
__device__ float iou(const float* a, const float* b) {
    float iw = fmaxf(fminf(a[2], b[2]) - fmaxf(a[0], b[0]), 0.0f);
    float ih = fmaxf(fminf(a[3], b[3]) - fmaxf(a[1], b[1]), 0.0f);
    float inter = iw * ih;
    float uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

// Step 1: one thread per (detection i, ROI j).
extern "C" __global__ void voter_flags(const float* boxes, const long long* rois, int num, int num_rois,
                                       float threshold, bool* flags) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)num * num_rois) return;
    long long i = t / num_rois, j = t % num_rois;
    long long r = rois[i];
    flags[t] = j == r || iou(boxes + 4 * r, boxes + 4 * j) >= threshold;
}

// Step 3: one thread per detection: weight sum (float32, ascending j), window, launch area, initial extents.
extern "C" __global__ void voter_windows(const float* cls_probs, int num_classes, const long long* labels,
        const long long* regions, const long long* voter_offsets, const long long* voters, int num, int height,
        int width, long long* windows, long long* areas, float* totals, int* extents) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= num) return;
    // weight sum and union of the non-empty voter regions
    float total = 0.0f;
    long long top = height, left = width, bottom = 0, right = 0;
    for (long long v = voter_offsets[i]; v < voter_offsets[i + 1]; ++v) {
        const long long* region = regions + voters[v] * REGION_FIELDS;
        total = total + cls_probs[voters[v] * num_classes + labels[i]];
        if (region[6] > region[4] && region[7] > region[5]) {
            top = min(top, region[4]);
            left = min(left, region[5]);
            bottom = max(bottom, region[6]);
            right = max(right, region[7]);
        }
    }
    // a zero weight sum drops the detection: no pixels to vote
    if (!(total > 0.0f && bottom > top)) top = left = bottom = right = 0;
    windows[4 * i] = top; windows[4 * i + 1] = left; windows[4 * i + 2] = bottom; windows[4 * i + 3] = right;
    areas[i] = (bottom - top) * (right - left);
    totals[i] = total;
    extents[4 * i] = width; extents[4 * i + 1] = height; extents[4 * i + 2] = -1; extents[4 * i + 3] = -1;
}

// Step 4: one thread per (detection, window pixel), flat over pixel_offsets[num] threads.
extern "C" __global__ void vote(const float* cls_masks, int num_classes, int mask_h, int mask_w,
        const float* cls_probs, const long long* labels, const long long* regions, const long long* voter_offsets,
        const long long* voters, const long long* windows, const long long* pixel_offsets, const float* totals,
        int num, int height, int width, float threshold, bool* masks, int* extents) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= pixel_offsets[num]) return;
    // the detection and the image pixel
    int i = owner(pixel_offsets, num, t);
    long long cols = windows[4 * i + 3] - windows[4 * i + 1];
    long long y = windows[4 * i] + (t - pixel_offsets[i]) / cols;
    long long x = windows[4 * i + 1] + (t - pixel_offsets[i]) % cols;
    // weighted sum over the voters whose region holds the pixel, ascending j
    long long c = labels[i];
    float acc = 0.0f;
    for (long long v = voter_offsets[i]; v < voter_offsets[i + 1]; ++v) {
        long long j = voters[v];
        const long long* region = regions + j * REGION_FIELDS;
        if (region[4] <= y && y < region[6] && region[5] <= x && x < region[7]) {
            const float* mask = cls_masks + (j * num_classes + c) * mask_h * mask_w;
            acc = acc + cls_probs[j * num_classes + c] * sample(mask, mask_h, mask_w, region, y, x);
        }
    }
    // binarize; grow the tight box (a plain read first skips most atomics, a stale read only costs one)
    bool inside = acc / totals[i] >= threshold;
    masks[((long long)i * height + y) * width + x] = inside;
    if (inside) {
        int* e = extents + 4 * i;
        if (x < e[0]) atomicMin(e, (int)x);
        if (y < e[1]) atomicMin(e + 1, (int)y);
        if (x > e[2]) atomicMax(e + 2, (int)x);
        if (y > e[3]) atomicMax(e + 3, (int)y);
    }
}
"""
