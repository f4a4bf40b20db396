r"""Mask voting: the accelerated twin of :mod:`fcis_twin.reference.voting`.

The candidates (per-class NMS, per-class cap, global cut) are chosen on the host from the small ``boxes`` and
``cls_probs`` arrays, all classes in one :func:`fcis_twin.accelerated.nms.batched_nms` call.  The voting itself runs
where the pixels are, in the four steps of the reference's loop template
(:func:`fcis_twin.reference.voting.mask_voting_loop`), with its names and named fields (``REGION_*``, ``WINDOW_*``,
``EXTENT_*``): 1. voter flags, one thread per (detection, ROI); 2. CSR voter lists; 3. weight sums and windows, one
thread per detection; 4. the vote, one thread per (detection, window pixel), whose mask extent grows by atomic
min/max.  No voter's full-image mask is ever formed: each thread samples the ``P x P`` masks it needs.  Every float32
product is rounded on its own (:func:`._float32.mul_rn`, ``--fmad=false``).
"""

import functools

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
)
from ..reference.voting import (
    EXTENT_FIELDS,
    EXTENT_X_MAX,
    EXTENT_X_MIN,
    EXTENT_Y_MAX,
    EXTENT_Y_MIN,
    WINDOW_BOTTOM,
    WINDOW_FIELDS,
    WINDOW_LEFT,
    WINDOW_RIGHT,
    WINDOW_TOP,
    Detections,
    check_voting_args,
    sort_and_cut,
    voted_boxes,
    voter_lists,
)
from ._backend import cupy_array, like, resolve_backend, to_host, to_numba_device
from ._float32 import axis_coord, bilinear, iou, lerp, mul_rn
from ._launch import THREADS_PER_BLOCK, blocks, cpu_kernel, cuda, cupy_module, fill_kernel, kernel, launch, owner
from .nms import batched_nms


def mask_voting(boxes, cls_masks, cls_probs, image_shape, *, nms_threshold=0.3, vote_threshold=0.5,
                binary_threshold=0.4, max_detections=100, score_threshold=1e-3, backend=None):
    r"""Per-class NMS, then one voted, binarized mask per surviving (ROI, class), on the chosen backend.

    The twin of :func:`fcis_twin.reference.voting.mask_voting`: the same arguments, errors and detections.

    Parameters
    ----------
    boxes, cls_masks, cls_probs, image_shape
        As the reference.  Each array may be NumPy or CuPy; a CuPy ``cls_masks`` is checked where it is.
    nms_threshold, vote_threshold, binary_threshold, max_detections, score_threshold
        As the reference.
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated.resolve_backend`).

    Returns
    -------
    fcis_twin.reference.voting.Detections
        Its arrays NumPy or CuPy, as ``cls_masks``.  Equal to the reference's on the CPU and under the CUDA
        simulator; on a real GPU see ``docs/conventions.md`` for the pixels that may differ.

    Examples
    --------
    >>> det = mask_voting([[1, 1, 3, 2]], np.full((1, 2, 2, 2), 0.5), [[0.2, 0.8]], (3, 4), backend="numba-cpu")
    >>> det.rois, det.labels, det.boxes
    (array([0]), array([1]), array([[1., 1., 3., 2.]], dtype=float32))
    """
    backend = resolve_backend(backend)
    inputs = (boxes, cls_masks, cls_probs)
    a = check_voting_args(to_host(boxes), cls_masks, to_host(cls_probs), image_shape, nms_threshold=nms_threshold,
                          vote_threshold=vote_threshold, binary_threshold=binary_threshold,
                          max_detections=max_detections, score_threshold=score_threshold, device=True)
    boxes, cls_masks, cls_probs, (height, width) = a.boxes, a.cls_masks, a.cls_probs, a.image_shape

    nms = functools.partial(batched_nms, backend=backend)
    rois, labels = batched_candidates(boxes, cls_probs, a.nms_threshold, a.max_detections, a.score_threshold, nms)
    regions = box_regions(boxes, height, width)  # (R, REGION_FIELDS) int64
    small = (np.ascontiguousarray(boxes), regions, np.ascontiguousarray(cls_probs), rois, labels)  # host arrays
    scalars = (a.vote_threshold, a.binary_threshold, height, width)
    if rois.shape[0] == 0:
        masks, totals, extents = np.zeros((0, height, width), bool), np.zeros(0, np.float32), np.zeros((0, 4))
    elif backend == "numba-cpu":
        masks, totals, extents = _vote_numba_cpu(np.ascontiguousarray(to_host(cls_masks)), *small, *scalars)
    elif backend == "numba-cuda":
        device = [cuda.to_device(x) for x in small]
        masks, totals, extents = _vote_cuda(to_numba_device(cls_masks), *device, *scalars)
        totals, extents = totals.copy_to_host(), extents.copy_to_host()
    else:
        device = [cupy_array(x) for x in small]
        masks, totals, extents = _vote_cupy(cupy_array(cls_masks), *device, *scalars)
        totals, extents = totals.get(), extents.get()

    keep, tight = voted_boxes(totals, extents)  # zero weights, empty masks go
    masks = like(masks, *inputs)
    if not keep.all():
        masks = masks[like(np.flatnonzero(keep), *inputs)]
    rois, labels = rois[keep], labels[keep]
    return Detections(
        boxes=like(tight, *inputs),
        scores=like(cls_probs[rois, labels].astype(np.float32), *inputs),
        labels=like(labels, *inputs),
        masks=masks,
        rois=like(rois, *inputs),
    )


def batched_candidates(boxes, cls_probs, nms_threshold, max_detections, score_threshold, batched_nms):
    """``(rois, labels)`` int64, as the reference's candidates, with one ``batched_nms`` call.

    Every live ``(ROI r, class c)`` pair (``c >= 1``, probability at least ``score_threshold``) becomes a box
    labelled ``c``, flattened ROI-major, so that within a class a lower flat index is a lower ROI index: the
    batched NMS then keeps, per class, what :func:`fcis_twin.reference.nms.nms` keeps, and lists each class's
    survivors in its NMS order (descending score, ties by ROI).  The per-class cap takes the first
    ``max_detections`` of each class in that order; the rest is the reference's sort and global cut.
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

    return sort_and_cut(rois, labels, scores, max_detections)


# --- backends ---------------------------------------------------------------------------------------------------


def _vote_numba_cpu(cls_masks, boxes, regions, cls_probs, rois, labels, vote_threshold, binary_threshold, height,
                    width):
    flags = _voter_flags_cpu(boxes, rois, vote_threshold)  # 1. (K, R) bool
    voter_offsets, voters = voter_lists(flags)  # 2.
    windows, totals, extents = _voter_windows_cpu(cls_probs, labels, regions, voter_offsets, voters, height, width)
    # 4. the average is 0 outside every voter: False there (binary_threshold > 0)
    masks = np.zeros((rois.shape[0], height, width), bool)
    _vote_cpu(cls_masks, cls_probs, labels, regions, voter_offsets, voters, windows, totals, binary_threshold,
              masks, extents)
    return masks, totals, extents


def _vote_cuda(cls_masks, boxes, regions, cls_probs, rois, labels, vote_threshold, binary_threshold, height, width):
    num, num_rois = rois.shape[0], boxes.shape[0]
    # 1. voter flags; 2. CSR lists: count per row, scan, fill
    flags = cuda.device_array((num, num_rois), bool)
    launch(_voter_flags_kernel, blocks(num * num_rois))(boxes, rois, vote_threshold, flags)
    counts, voter_offsets = cuda.device_array(num, np.int64), cuda.device_array(num + 1, np.int64)
    voters = cuda.device_array(num * num_rois, np.int64)  # capacity: every ROI votes for every detection
    launch(_voter_count_kernel, blocks(num))(flags, counts)
    launch(_scan_kernel, 1, 1)(counts, voter_offsets)
    launch(_voter_fill_kernel, blocks(num))(flags, voter_offsets, voters)

    # 3. windows, weight sums, and the vote launch's pixel offsets
    windows, areas = cuda.device_array((num, WINDOW_FIELDS), np.int64), cuda.device_array(num, np.int64)
    totals, extents = cuda.device_array(num, np.float32), cuda.device_array((num, EXTENT_FIELDS), np.int32)
    launch(_voter_windows_kernel, blocks(num))(cls_probs, labels, regions, voter_offsets, voters, height, width,
                                               windows, areas, totals, extents)
    pixel_offsets = cuda.device_array(num + 1, np.int64)
    launch(_scan_kernel, 1, 1)(areas, pixel_offsets)
    total = int(pixel_offsets[num:].copy_to_host()[0])  # the launch size: one scalar back to the host

    # 4. background fill, then the vote over the windows
    masks = cuda.device_array((num, height, width), bool)
    flat = masks.reshape(masks.size)
    launch(fill_kernel, blocks(flat.size))(flat, False)
    if total:
        launch(_vote_kernel, blocks(total))(cls_masks, cls_probs, labels, regions, voter_offsets, voters, windows,
                                            pixel_offsets, totals, binary_threshold, masks, extents)
    return masks, totals, extents


def _vote_cupy(cls_masks, boxes, regions, cls_probs, rois, labels, vote_threshold, binary_threshold, height, width):
    import cupy

    module = cupy_module("voting")
    num, num_rois = rois.shape[0], boxes.shape[0]
    _, num_classes, mask_h, mask_w = cls_masks.shape
    # 1. voter flags; 2. CSR lists as array code
    flags = cupy.empty((num, num_rois), bool)
    module.get_function("voter_flags")((blocks(num * num_rois),), (THREADS_PER_BLOCK,), (
        boxes, rois, np.int32(num), np.int32(num_rois), np.float32(vote_threshold), flags))
    voter_offsets, voters = voter_lists(flags)

    # 3. windows, weight sums, and the vote launch's pixel offsets
    windows, areas = cupy.empty((num, WINDOW_FIELDS), np.int64), cupy.empty(num, np.int64)
    totals, extents = cupy.empty(num, np.float32), cupy.empty((num, EXTENT_FIELDS), np.int32)
    module.get_function("voter_windows")((blocks(num),), (THREADS_PER_BLOCK,), (
        cls_probs, np.int32(num_classes), labels, regions, voter_offsets, voters, np.int32(num), np.int32(height),
        np.int32(width), windows, areas, totals, extents))
    pixel_offsets = cupy.concatenate([cupy.zeros(1, np.int64), cupy.cumsum(areas)])
    total = int(pixel_offsets[-1])  # the launch size: one scalar back to the host

    # 4. background fill, then the vote over the windows
    masks = cupy.zeros((num, height, width), bool)
    if total:
        module.get_function("vote")((blocks(total),), (THREADS_PER_BLOCK,), (
            cls_masks, np.int32(num_classes), np.int32(mask_h), np.int32(mask_w), cls_probs, labels, regions,
            voter_offsets, voters, windows, pixel_offsets, totals, np.int32(num), np.int32(height), np.int32(width),
            np.float32(binary_threshold), masks, extents))
    return masks, totals, extents


# --- scalar helpers shared by Numba-CPU and Numba-CUDA ------------------------------------------------------------


@numba.njit(cache=True)
def _weighted_add(acc, p, value):
    """``fl(acc + fl(p * value))``: one voter's term added to a pixel's weighted sum."""
    return np.float32(acc) + mul_rn(np.float32(p), np.float32(value))


@numba.njit(cache=True, error_model="numpy")
def _at_least(acc, total, threshold):
    """``fl(acc / total) >= threshold``: the binarized weighted average."""
    return np.float32(acc) / np.float32(total) >= np.float32(threshold)


# --- Numba-CPU ----------------------------------------------------------------------------------------------------


@cpu_kernel()
def _voter_flags_cpu(boxes, rois, threshold):
    """Step 1: ``(K, R)`` flags, one detection per parallel iteration."""
    flags = np.empty((rois.shape[0], boxes.shape[0]), np.bool_)
    for i in numba.prange(rois.shape[0]):
        r = rois[i]
        for j in range(boxes.shape[0]):
            overlap = iou(boxes[r, 0], boxes[r, 1], boxes[r, 2], boxes[r, 3],
                          boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3])
            flags[i, j] = j == r or overlap >= threshold
    return flags


@numba.njit(cache=True)
def _voter_windows_cpu(cls_probs, labels, regions, voter_offsets, voters, height, width):
    """Step 3: windows ``(K, WINDOW_FIELDS)``, weight sums ``(K,)`` and empty extents ``(K, EXTENT_FIELDS)``."""
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
            if regions[j, REGION_BOTTOM] > regions[j, REGION_TOP] and (
                regions[j, REGION_RIGHT] > regions[j, REGION_LEFT]):  # a non-empty region
                top, left = min(top, regions[j, REGION_TOP]), min(left, regions[j, REGION_LEFT])
                bottom, right = max(bottom, regions[j, REGION_BOTTOM]), max(right, regions[j, REGION_RIGHT])
        totals[i] = total
        if total > 0 and bottom > top:  # a zero weight sum drops the detection: no pixels to vote
            windows[i, WINDOW_TOP], windows[i, WINDOW_LEFT] = top, left
            windows[i, WINDOW_BOTTOM], windows[i, WINDOW_RIGHT] = bottom, right
        extents[i, EXTENT_X_MIN], extents[i, EXTENT_Y_MIN] = width, height
        extents[i, EXTENT_X_MAX], extents[i, EXTENT_Y_MAX] = -1, -1
    return windows, totals, extents


@cpu_kernel()
def _vote_cpu(cls_masks, cls_probs, labels, regions, voter_offsets, voters, windows, totals, threshold, masks,
              extents):
    """Step 4, one detection per parallel iteration: each voter's paste added into a window buffer.

    Per pixel the terms are added in ascending ``j``, exactly as the template and the GPU kernel add them; the CPU
    only reorders the loops (voter outermost) so that each mask row is interpolated once per image row.
    """
    mask_h, mask_w = cls_masks.shape[2], cls_masks.shape[3]
    for i in numba.prange(labels.shape[0]):
        top, left = windows[i, WINDOW_TOP], windows[i, WINDOW_LEFT]
        bottom, right = windows[i, WINDOW_BOTTOM], windows[i, WINDOW_RIGHT]
        if bottom <= top:
            continue
        c = labels[i]
        acc = np.zeros((bottom - top, right - left), np.float32)  # (window rows, window columns)
        row = np.empty(mask_w, np.float32)  # one mask row, interpolated between two mask rows
        col0, col1 = np.empty(right - left, np.int64), np.empty(right - left, np.int64)  # per window column
        col_a = np.empty(right - left, np.float32)
        for v in range(voter_offsets[i], voter_offsets[i + 1]):
            j = voters[v]
            y_first, y_stop = regions[j, REGION_TOP], regions[j, REGION_BOTTOM]  # the voter's in-image region
            x_first, x_stop = regions[j, REGION_LEFT], regions[j, REGION_RIGHT]
            if y_stop <= y_first or x_stop <= x_first:
                continue  # an empty region, whose columns may lie outside the window
            p = cls_probs[j, c]
            for x in range(x_first, x_stop):  # the voter's column samples, once
                col0[x - left], col1[x - left], col_a[x - left] = axis_coord(x - regions[j, REGION_X1], mask_w,
                                                                             regions[j, REGION_W])
            for y in range(y_first, y_stop):
                v0, v1, ay = axis_coord(y - regions[j, REGION_Y1], mask_h, regions[j, REGION_H])
                for q in range(mask_w):
                    row[q] = lerp(cls_masks[j, c, v0, q], cls_masks[j, c, v1, q], ay)
                for x in range(x_first - left, x_stop - left):  # window columns
                    value = lerp(row[col0[x]], row[col1[x]], col_a[x])
                    acc[y - top, x] = _weighted_add(acc[y - top, x], p, value)
        for y in range(top, bottom):
            for x in range(left, right):
                inside = _at_least(acc[y - top, x - left], totals[i], threshold)
                masks[i, y, x] = inside
                if inside:
                    extents[i, EXTENT_X_MIN] = min(extents[i, EXTENT_X_MIN], x)
                    extents[i, EXTENT_Y_MIN] = min(extents[i, EXTENT_Y_MIN], y)
                    extents[i, EXTENT_X_MAX] = max(extents[i, EXTENT_X_MAX], x)
                    extents[i, EXTENT_Y_MAX] = max(extents[i, EXTENT_Y_MAX], y)


# --- Numba-CUDA ---------------------------------------------------------------------------------------------------


@kernel
def _voter_flags_kernel(boxes, rois, threshold, flags):
    """Step 1: one thread per (detection ``i``, ROI ``j``)."""
    t = cuda.grid(1)
    if t >= flags.shape[0] * flags.shape[1]:
        return
    i, j = t // flags.shape[1], t % flags.shape[1]
    r = rois[i]
    overlap = iou(boxes[r, 0], boxes[r, 1], boxes[r, 2], boxes[r, 3],
                  boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3])
    flags[i, j] = j == r or overlap >= threshold


@kernel
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


@kernel
def _scan_kernel(counts, offsets):
    """``offsets = [0, cumsum(counts)]`` by one thread: a few hundred detections at most, serially."""
    if cuda.grid(1) != 0:
        return
    offsets[0] = 0
    for k in range(counts.shape[0]):
        offsets[k + 1] = offsets[k] + counts[k]


@kernel
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


@kernel
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
        if regions[j, REGION_BOTTOM] > regions[j, REGION_TOP] and (
                regions[j, REGION_RIGHT] > regions[j, REGION_LEFT]):  # a non-empty region
            top, left = min(top, regions[j, REGION_TOP]), min(left, regions[j, REGION_LEFT])
            bottom, right = max(bottom, regions[j, REGION_BOTTOM]), max(right, regions[j, REGION_RIGHT])
    # a zero weight sum drops the detection: no pixels to vote
    if not (total > 0 and bottom > top):
        top, left, bottom, right = 0, 0, 0, 0
    windows[i, WINDOW_TOP], windows[i, WINDOW_LEFT] = top, left
    windows[i, WINDOW_BOTTOM], windows[i, WINDOW_RIGHT] = bottom, right
    areas[i] = (bottom - top) * (right - left)
    totals[i] = total
    extents[i, EXTENT_X_MIN], extents[i, EXTENT_Y_MIN] = width, height
    extents[i, EXTENT_X_MAX], extents[i, EXTENT_Y_MAX] = -1, -1


@kernel
def _vote_kernel(cls_masks, cls_probs, labels, regions, voter_offsets, voters, windows, pixel_offsets, totals,
                 threshold, masks, extents):
    """Step 4: one thread per (detection, window pixel), a flat launch over ``pixel_offsets[-1]`` threads."""
    t = cuda.grid(1)
    if t >= pixel_offsets[pixel_offsets.shape[0] - 1]:
        return
    # the detection and the image pixel
    i = owner(pixel_offsets, t)
    cols = windows[i, WINDOW_RIGHT] - windows[i, WINDOW_LEFT]
    y = windows[i, WINDOW_TOP] + (t - pixel_offsets[i]) // cols
    x = windows[i, WINDOW_LEFT] + (t - pixel_offsets[i]) % cols
    # weighted sum over the voters whose region holds the pixel, ascending j
    c = labels[i]
    acc = np.float32(0)
    for v in range(voter_offsets[i], voter_offsets[i + 1]):
        j = voters[v]
        if (regions[j, REGION_TOP] <= y < regions[j, REGION_BOTTOM]
                and regions[j, REGION_LEFT] <= x < regions[j, REGION_RIGHT]):
            v0, v1, ay = axis_coord(y - regions[j, REGION_Y1], cls_masks.shape[2], regions[j, REGION_H])
            u0, u1, ax = axis_coord(x - regions[j, REGION_X1], cls_masks.shape[3], regions[j, REGION_W])
            value = bilinear(cls_masks[j, c, v0, u0], cls_masks[j, c, v0, u1], cls_masks[j, c, v1, u0],
                             cls_masks[j, c, v1, u1], ay, ax)
            acc = _weighted_add(acc, cls_probs[j, c], value)
    # binarize; grow the extent (a plain read first skips most atomics, a stale read only costs one)
    inside = _at_least(acc, totals[i], threshold)
    masks[i, y, x] = inside
    if inside:
        if x < extents[i, EXTENT_X_MIN]:
            cuda.atomic.min(extents, (i, EXTENT_X_MIN), np.int32(x))
        if y < extents[i, EXTENT_Y_MIN]:
            cuda.atomic.min(extents, (i, EXTENT_Y_MIN), np.int32(y))
        if x > extents[i, EXTENT_X_MAX]:
            cuda.atomic.max(extents, (i, EXTENT_X_MAX), np.int32(x))
        if y > extents[i, EXTENT_Y_MAX]:
            cuda.atomic.max(extents, (i, EXTENT_Y_MAX), np.int32(y))
