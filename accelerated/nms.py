r"""Greedy non-maximum suppression: the accelerated twin of :mod:`fcis_twin.reference.nms`.

Every backend keeps exactly the boxes the reference keeps, in the same order.  Two things make that possible: the
visiting order is the reference's (``argsort(-scores, kind="stable")``: descending score, ties by index), and the
overlap test is the reference's float32 arithmetic, operation for operation (:func:`._float32.iou`, compared as
``iou > float32(threshold)``), so that a box lying exactly at the threshold goes the same way everywhere.

- ``"numba-cpu"``: the greedy sweep itself, compiled (:func:`_greedy`).  Each kept box marks, in one vectorised
  pass, every later box it overlaps; marked boxes are never kept.  Labels are separate sweeps, run in parallel.
- ``"numba-cuda"`` and ``"cupy"``: the 64-bit suppression bitmask.  One kernel fills, for every box ``i`` and every
  block of 64 boxes, a word with bit ``j`` set when box ``j`` comes after box ``i`` and overlaps it above the
  threshold (:func:`_mask_kernel`); a second, one-block kernel walks the boxes by rank, keeping a box unless a
  kept box has set its bit (:func:`_pass_kernel`).  Only the keep list leaves the device.

``batched_nms`` is the same computation with the boxes grouped by label: each label owns whole mask blocks, so the
mask kernel never compares boxes of different labels (a *segmented* launch).  Shifting each label's boxes apart by
a per-label offset, the other well-known formulation, changes float32 coordinates and hence IoU rounding unless
every shifted coordinate happens to be exact, so it is not offered.
"""

from typing import NamedTuple

import numba
import numpy as np

from ..reference._checks import as_boxes, as_labels, as_probability, as_scores
from ._backend import cupy_array, is_cupy, like, resolve_backend, to_host
from ._float32 import iou
from ._launch import NMS_PASS_THREADS, NMS_THREADS, SHARED_BYTES, cpu_kernel, cuda, cupy_module, kernel, launch

THREADS = NMS_THREADS  # one bit per box in a 64-bit mask word: a mask block is 64 rows x 64 columns
PASS_THREADS = NMS_PASS_THREADS  # the one-block pass stages 64 ranks at a time for its one walker
PASS_STATIC_BYTES = 2 * PASS_THREADS * 8  # the pass's staged chunk (positions and indices, int64)


def nms(boxes, scores, iou_threshold, *, backend=None):
    r"""Greedy non-maximum suppression on the chosen backend.

    The twin of :func:`fcis_twin.reference.nms.nms`: the same arguments, errors and result.

    Parameters
    ----------
    boxes, scores, iou_threshold
        As the reference; each array may be NumPy or CuPy.
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated.resolve_backend`).

    Returns
    -------
    keep : (K,) int64 array
        NumPy or CuPy, as ``boxes``.

    Notes
    -----
    The GPU backends hold an ``(R, ceil(R / 64))`` uint64 mask (4.5 MB for 6000 boxes) and, in the pass's shared
    memory, one bit per box: at most ``8 * (SHARED_BYTES - PASS_STATIC_BYTES)`` (385,024) boxes, each label's
    boxes counted in whole blocks of 64.

    Examples
    --------
    >>> # IoU = 9 / 23 = 0.391 > 0.3, so the second box goes
    >>> nms(np.array([[0, 0, 4, 4], [1, 1, 5, 5]], np.float32), np.array([.9, .8], np.float32), 0.3,
    ...     backend="numba-cpu")
    array([0])
    """
    return _suppress(boxes, scores, None, iou_threshold, backend)


def batched_nms(boxes, scores, labels, iou_threshold, *, backend=None):
    r"""Non-maximum suppression within each label, independently, on the chosen backend.

    The twin of :func:`fcis_twin.reference.nms.batched_nms`: the same arguments, errors and result.

    Parameters
    ----------
    boxes, scores, labels, iou_threshold
        As the reference; each array may be NumPy or CuPy.
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated.resolve_backend`).

    Returns
    -------
    keep : (K,) int64 array
        NumPy or CuPy, as ``boxes``.

    Notes
    -----
    Grouping the boxes by label (a stable sort of the score order by label) keeps each label's boxes in score
    order, and each label's greedy sweep is independent of the others; the pass then visits all boxes in the
    global score order, which is the order of the merged result.

    Examples
    --------
    >>> b = np.array([[0, 0, 4, 4], [1, 1, 5, 5], [1, 1, 5, 5]], np.float32)
    >>> batched_nms(b, np.array([.9, .8, .7], np.float32), np.array([7, 7, 8]), 0.3, backend="numba-cpu")
    array([0, 2])
    """
    return _suppress(boxes, scores, labels, iou_threshold, backend)


def _suppress(boxes, scores, labels, iou_threshold, backend):
    """The public wrapper of both functions: validation, host/device transfer, dispatch (``labels=None``: one label)."""
    backend = resolve_backend(backend)
    # boxes, scores and labels are small: the reference's checkers run on host copies, for the same errors
    host_boxes = as_boxes("boxes", to_host(boxes))
    host_scores = as_scores("scores", to_host(scores), host_boxes.shape[0])
    host_labels = None if labels is None else as_labels("labels", to_host(labels), host_boxes.shape[0])
    threshold = np.float32(as_probability("iou_threshold", iou_threshold))
    if host_boxes.shape[0] == 0:
        return like(np.zeros(0, np.int64), boxes)

    if backend == "numba-cpu":
        keep = _nms_numba_cpu(host_boxes, host_scores, host_labels, threshold)
    elif backend == "numba-cuda":
        # numba has no device sort: the layout is sorted on the host
        layout = segmented_layout(np, host_boxes, host_scores, host_labels)
        device = _Layout(*(cuda.to_device(a) for a in layout[:-1]), layout.width)
        keep, count = _nms_cuda(device, threshold)
        keep = keep[: int(count.copy_to_host()[0])]  # a device view; like() copies it or hands it to CuPy
    else:
        keep = _nms_cupy(
            cupy_array(boxes if is_cupy(boxes) else host_boxes, np.float32),
            cupy_array(scores if is_cupy(scores) else host_scores, np.float32),
            None if labels is None else cupy_array(labels if is_cupy(labels) else host_labels, np.int64),
            threshold,
        )
    return like(keep, boxes)


# --- backends ---------------------------------------------------------------------------------------------------


def _nms_numba_cpu(boxes, scores, labels, threshold):
    """Greedy sweeps over each label's boxes in score order; the survivors, by rank."""
    order, by_label, starts = _order(np, scores, labels)
    grouped = order[by_label]
    coords = np.ascontiguousarray(boxes[grouped].T)  # (4, R): x1, y1, x2, y2 rows, grouped by label, by rank
    bounds = np.append(starts, len(grouped))  # label s owns grouped positions [bounds[s], bounds[s + 1])
    kept = _greedy_labels(coords[0], coords[1], coords[2], coords[3], bounds, threshold)
    flags = np.zeros(len(order), bool)
    flags[grouped] = kept.view(bool)  # by index into boxes
    return order[flags[order]]  # by rank


def _nms_cuda(layout, threshold):
    """The mask and pass kernels on device arrays; returns ``(keep, count)``: the first ``count`` of ``keep``."""
    rows, blocks, shared = launch_geometry(layout)
    mask = cuda.device_array((rows, layout.width), np.uint64)
    keep = cuda.device_array(layout.order.shape[0], np.int64)
    count = cuda.device_array(1, np.int64)
    launch(_mask_kernel, (blocks, layout.width), THREADS)(layout.boxes, layout.block_first, layout.block_end,
                                                          threshold, mask)
    launch(_pass_kernel, 1, PASS_THREADS, shared)(layout.rank_pos, layout.order, mask, layout.block_first,
                                                  layout.block_end, keep, count)
    return keep, count


def _nms_cupy(boxes, scores, labels, threshold):
    """The same two kernels in CUDA C (``nms.cu``), sorting and layout on the device with CuPy."""
    import cupy

    layout = segmented_layout(cupy, boxes, scores, labels)
    rows, blocks, shared = launch_geometry(layout)
    module = cupy_module("nms")
    mask = cupy.empty((rows, layout.width), cupy.uint64)
    keep = cupy.empty(layout.order.shape[0], cupy.int64)
    count = cupy.zeros(1, cupy.int64)
    width, n = np.int64(layout.width), np.int64(layout.order.shape[0])
    module.get_function("nms_mask")((blocks, layout.width), (THREADS,), (
        layout.boxes, layout.block_first, layout.block_end, threshold, width, mask))
    module.get_function("nms_pass")((1,), (PASS_THREADS,), (
        layout.rank_pos, layout.order, n, mask, width, layout.block_first, layout.block_end, np.int64(blocks),
        keep, count), shared_mem=shared)
    return keep[: int(count[0])]


# --- sorting and the segmented layout (NumPy or CuPy: ``xp``) ----------------------------------------------------


def _order(xp, scores, labels):
    """``(order, by_label, starts)``: the boxes by rank; the ranks grouped by label; each label's first group slot.

    ``order`` is the reference's ``argsort(-scores, kind="stable")`` (adding 0 turns ``-0.0`` into ``0.0``, so that
    a radix sort, CuPy's, ties the two zeros as NumPy's comparison sort does).  ``order[by_label]`` lists the boxes
    label by label, by rank within a label; label ``s`` starts at slot ``starts[s]``.
    """
    key = -scores + scores.dtype.type(0)
    order = xp.argsort(key, kind="stable") if xp is np else xp.argsort(key)  # CuPy's argsort is always stable
    if labels is None:
        return order, xp.arange(order.shape[0]), xp.zeros(1, xp.int64)
    ranked = labels[order]
    by_label = xp.argsort(ranked, kind="stable") if xp is np else xp.argsort(ranked)
    sorted_labels = ranked[by_label]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, bool), sorted_labels[1:] != sorted_labels[:-1]]))
    return order, by_label, starts


class _Layout(NamedTuple):
    """The boxes as the GPU kernels see them: grouped by label, each label starting on a :data:`THREADS` block."""

    boxes: object  # (B * THREADS, 4) float32: padded positions; padding rows are never read
    block_first: object  # (B,) int64: first block of the label that block b belongs to
    block_end: object  # (B,) int64: end of that label's boxes, as a padded position (exclusive)
    rank_pos: object  # (R,) int64: padded position of the box of rank r
    order: object  # (R,) int64: index into the input of the box of rank r
    width: int  # mask words per row: the blocks of the largest label


def segmented_layout(xp, boxes, scores, labels):
    """The segmented layout of the boxes (:class:`_Layout`), computed with ``xp`` (NumPy or CuPy)."""
    n = scores.shape[0]
    order, by_label, starts = _order(xp, scores, labels)
    lengths = xp.diff(xp.concatenate([starts, xp.full(1, n, xp.int64)]))  # (L,) boxes per label
    label_blocks = (lengths + THREADS - 1) // THREADS
    first_block = xp.cumsum(label_blocks) - label_blocks  # (L,) first block of each label
    is_start = xp.zeros(n, xp.int64)
    is_start[starts] = 1
    label = xp.cumsum(is_start) - 1  # (R,) label number of each grouped position
    pos = first_block[label] * THREADS + xp.arange(n) - starts[label]  # (R,) padded position of each grouped box

    blocks = int(label_blocks.sum())
    padded = xp.zeros((blocks * THREADS, 4), xp.float32)
    padded[pos] = boxes[order[by_label]]
    block_start = xp.zeros(blocks, xp.int64)
    block_start[first_block] = 1
    block_label = xp.cumsum(block_start) - 1  # (B,) label number of each block
    rank_pos = xp.empty(n, xp.int64)
    rank_pos[by_label] = pos
    return _Layout(padded, first_block[block_label], first_block[block_label] * THREADS + lengths[block_label],
                   rank_pos, order.astype(xp.int64), int(label_blocks.max()))


def launch_geometry(layout):
    """``(rows, blocks, shared bytes)`` of the two launches; too many boxes for the pass's shared memory raise."""
    blocks = layout.block_first.shape[0]
    shared = blocks * 8  # one uint64 of removed bits per block of boxes
    if shared > SHARED_BYTES - PASS_STATIC_BYTES:
        raise ValueError(f"the GPU backends take at most {(SHARED_BYTES - PASS_STATIC_BYTES) * 8} boxes, each "
                         f"label's counted in whole blocks of {THREADS}; got {blocks * THREADS}")
    return blocks * THREADS, blocks, shared


# --- Numba-CPU --------------------------------------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def _greedy(x1, y1, x2, y2, threshold, kept):
    """The reference's greedy loop over boxes already in rank order: ``kept[i] = 1`` for the survivors.

    Each kept box marks every later box it overlaps above the threshold.  The later boxes are taken as views
    starting at ``i + 1`` and looped from 0, a form LLVM vectorises (``range(i + 1, n)`` is not); marking an
    already removed box again changes nothing, so the loop needs no test for it.
    """
    removed = np.zeros(x1.shape[0], np.uint8)
    for i in range(x1.shape[0]):
        if removed[i]:
            continue
        kept[i] = 1
        later = slice(i + 1, x1.shape[0])
        bx1, by1, bx2, by2, gone = x1[later], y1[later], x2[later], y2[later], removed[later]
        for j in range(gone.shape[0]):
            if iou(x1[i], y1[i], x2[i], y2[i], bx1[j], by1[j], bx2[j], by2[j]) > threshold:
                gone[j] = 1


@cpu_kernel(error_model="numpy")
def _greedy_labels(x1, y1, x2, y2, bounds, threshold):
    """:func:`_greedy` on each label's grouped positions ``[bounds[s], bounds[s + 1])``, labels in parallel."""
    kept = np.zeros(x1.shape[0], np.uint8)
    for s in numba.prange(bounds.shape[0] - 1):
        a, b = bounds[s], bounds[s + 1]
        _greedy(x1[a:b], y1[a:b], x2[a:b], y2[a:b], threshold, kept[a:b])
    return kept


# --- Numba-CUDA kernels -----------------------------------------------------------------------------------------


@kernel
def _mask_kernel(boxes, block_first, block_end, threshold, mask):
    """One 64 x 64 mask block per CUDA block: ``mask[row, col]`` holds bit ``j`` when the box at padded position
    ``(first + col) * 64 + j`` (``first``: the first block of the row's label) comes after box ``row`` and overlaps it
    above the threshold.

    Grid ``(B, width)``: ``blockIdx.x`` is the row block, ``blockIdx.y`` the column block counted from the first
    block of the row block's label.  The column block's 64 boxes are staged in shared memory, then each thread
    compares its row box with them.  Blocks below the diagonal or past the label's end leave at once.  No FMA can
    change a bit: every product in :func:`fcis_twin.accelerated._float32.iou` is ``__fmul_rn``.
    """
    row_block, col, tid = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
    first, end = block_first[row_block], block_end[row_block]
    col_start = (first + col) * THREADS  # padded position of the column block's first box
    # bounds guard (the whole block leaves together): columns at or after the row block, within its label
    if first + col < row_block or col_start >= end:
        return
    cols = min(end - col_start, THREADS)
    col_boxes = cuda.shared.array((THREADS, 4), numba.float32)

    # phase 1: the column block's boxes into shared memory, one per thread
    if tid < cols:
        for k in range(4):
            col_boxes[tid, k] = boxes[col_start + tid, k]
    cuda.syncthreads()  # every column box is in shared memory before any row reads it

    # phase 2: this thread's row box against the columns after it; padding rows write nothing
    row = row_block * THREADS + tid
    if row < end:
        x1, y1, x2, y2 = boxes[row, 0], boxes[row, 1], boxes[row, 2], boxes[row, 3]
        start = tid + 1 if first + col == row_block else 0  # on the diagonal block, only the boxes after row
        word = np.uint64(0)
        for j in range(start, cols):
            if iou(x1, y1, x2, y2, col_boxes[j, 0], col_boxes[j, 1], col_boxes[j, 2], col_boxes[j, 3]) > threshold:
                word |= np.uint64(1) << np.uint64(j)
        mask[row, col] = word


@kernel
def _pass_kernel(rank_pos, order, mask, block_first, block_end, keep, count):
    """The greedy pass over the mask, in one block: visit the boxes by rank, keep one unless its removed bit is set,
    and OR a kept box's mask row into the removed bits.  Writes ``keep[:count[0]]``, by rank.

    The walk is sequential by nature and thread 0 does it; the block stages :data:`PASS_THREADS` ranks at a time
    into shared memory (coalesced loads), so the walk reads only shared memory and the kept rows of the mask.  The
    removed bits, one per padded position, live in dynamic shared memory (``blocks`` words).
    """
    tid = cuda.threadIdx.x
    n, blocks = rank_pos.shape[0], block_first.shape[0]
    removed = cuda.shared.array(0, numba.uint64)  # bit p % 64 of word p // 64: position p is suppressed
    chunk_pos = cuda.shared.array(PASS_THREADS, numba.int64)
    chunk_idx = cuda.shared.array(PASS_THREADS, numba.int64)

    # phase 1: nothing is removed yet
    for w in range(tid, blocks, PASS_THREADS):
        removed[w] = np.uint64(0)
    kept = 0

    # phase 2: the boxes by rank, PASS_THREADS ranks at a time
    for chunk in range(0, n, PASS_THREADS):
        if chunk + tid < n:
            chunk_pos[tid] = rank_pos[chunk + tid]
            chunk_idx[tid] = order[chunk + tid]
        cuda.syncthreads()  # the removed bits are zeroed and the chunk is staged before thread 0 walks it
        if tid == 0:
            for r in range(min(PASS_THREADS, n - chunk)):
                p = chunk_pos[r]
                b = p // THREADS
                if (removed[b] >> np.uint64(p % THREADS)) & np.uint64(1):
                    continue  # a kept box of higher rank overlaps it
                keep[kept] = chunk_idx[r]
                kept += 1
                first = block_first[b]
                words = (block_end[b] - first * THREADS + THREADS - 1) // THREADS  # blocks of this label
                for c in range(b - first, words):
                    removed[first + c] |= mask[p, c]
        cuda.syncthreads()  # thread 0 has walked the chunk before the next one overwrites it
    if tid == 0:
        count[0] = kept
