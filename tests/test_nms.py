"""Greedy NMS: hand-worked cases, ties, exact-threshold boxes and the defining properties."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fcis_twin.reference.boxes import box_iou
from fcis_twin.reference.nms import batched_nms, nms
from fcis_twin.strategies import boxes_and_scores


def test_hand_worked_chain():
    """A suppressed box cannot suppress: the greedy order matters."""
    b = np.float32([[0, 0, 4, 4], [1, 0, 5, 4], [2, 0, 6, 4]])
    s = np.float32([0.9, 0.8, 0.7])
    # IoU(0, 1) = 12 / 20 = 0.6, IoU(1, 2) = 0.6, IoU(0, 2) = 8 / 24 = 0.333
    # at 0.5: box 1 goes (0.6 > 0.5); box 2 is compared only with the kept box 0 (0.333), so it stays
    np.testing.assert_array_equal(nms(b, s, 0.5), [0, 2])
    # at 0.3: 0.333 > 0.3 removes box 2 as well
    np.testing.assert_array_equal(nms(b, s, 0.3), [0])


def test_exact_threshold_is_kept():
    """A box whose IoU equals the threshold exactly survives (strictly greater suppresses)."""
    # [0, 2) and [1, 3) on a unit-high strip: inter 1, union 3, IoU = 1/3 in float32
    b = np.float32([[0, 0, 2, 1], [1, 0, 3, 1]])
    s = np.float32([1, 1])
    iou = box_iou(b[:1], b[1:])[0, 0]
    np.testing.assert_array_equal(nms(b, s, float(iou)), [0, 1])
    np.testing.assert_array_equal(nms(b, s, float(np.nextafter(iou, np.float32(0)))), [0])


def test_ties_keep_lower_index_first():
    """Equal scores are visited in index order, so the lower index is kept."""
    b = np.float32([[0, 0, 4, 4], [0, 0, 4, 4], [10, 10, 12, 12]])
    s = np.float32([0.5, 0.5, 0.5])
    np.testing.assert_array_equal(nms(b, s, 0.5), [0, 2])


def test_empty_and_degenerate():
    """No boxes give an empty int64 array; zero-area boxes are never suppressed."""
    keep = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert keep.shape == (0,) and keep.dtype == np.int64
    b = np.float32([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 3, 3]])
    np.testing.assert_array_equal(nms(b, np.float32([0.1, 0.2, 0.3]), 0.0), [2, 1, 0])


@given(boxes_and_scores(), st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
def test_kept_boxes_never_overlap_above_threshold(bs, t):
    """Kept boxes never overlap each other above the threshold."""
    b, s = bs
    keep = nms(b, s, t)
    iou = box_iou(b[keep], b[keep])
    np.fill_diagonal(iou, 0)
    assert (iou <= np.float32(t)).all()


@given(boxes_and_scores(), st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
def test_every_suppressed_box_has_a_better_kept_suppressor(bs, t):
    """Every suppressed box overlaps, above the threshold, a kept box of higher or equal score that precedes it."""
    b, s = bs
    keep = nms(b, s, t)
    order = np.argsort(-s, kind="stable")
    rank = np.empty(len(b), int)
    rank[order] = np.arange(len(b))
    for i in np.setdiff1d(np.arange(len(b)), keep):
        iou = box_iou(b[i : i + 1], b[keep])[0]
        before = rank[keep] < rank[i]
        assert (before & (iou > np.float32(t))).any()


@given(boxes_and_scores())
def test_keep_order_and_uniqueness(bs):
    """Keep indices are unique, valid, and by descending score with ties by index."""
    b, s = bs
    keep = nms(b, s, 0.5)
    assert keep.dtype == np.int64
    assert len(np.unique(keep)) == len(keep)
    pairs = list(zip(-s[keep], keep, strict=True))
    assert pairs == sorted(pairs)


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.float32([[0, 0, 1, 1]]), np.float32([np.nan]), 0.5), "scores must be finite"),
        ((np.float32([[0, 0, 1, 1]]), np.float32([0.5, 0.5]), 0.5), "scores must have shape"),
        ((np.float32([[0, 0, 1, 1]]), np.float32([0.5]), 1.5), "iou_threshold"),
        ((np.float32([[0, 0, 1, 1]]), np.float32([0.5]), -0.1), "iou_threshold"),
        ((np.float32([[0, 0, 1]]), np.float32([0.5]), 0.5), "boxes"),
    ],
)
def test_bad_input_names_argument(args, match):
    """Bad input raises ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        nms(*args)


@given(boxes_and_scores(), st.data(), st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_batched_nms_is_nms_per_label(bs, data, t):
    """batched_nms equals nms run on each label alone, merged by descending score then index."""
    b, s = bs
    labels = data.draw(st.lists(st.integers(0, 3), min_size=len(b), max_size=len(b)))
    labels = np.array(labels, np.int64)
    keep = batched_nms(b, s, labels, t)
    expected = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        expected.extend(idx[nms(b[idx], s[idx], t)])
    expected = sorted(expected, key=lambda i: (-s[i], i))
    np.testing.assert_array_equal(keep, np.array(expected, np.int64))


def test_batched_nms_labels_are_checked():
    """Labels must be integers, one per box."""
    b = np.float32([[0, 0, 1, 1]])
    with pytest.raises(TypeError, match="labels"):
        batched_nms(b, np.float32([1]), np.float32([1.5]), 0.5)
    with pytest.raises(ValueError, match="labels"):
        batched_nms(b, np.float32([1]), np.int64([1, 2]), 0.5)
