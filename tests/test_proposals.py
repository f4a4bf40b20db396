"""Proposals: RPN output layout, the decode-clip-filter-rank-NMS pipeline, its properties and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fcis_twin.reference.anchors import anchor_base, shift_anchors
from fcis_twin.reference.boxes import box_iou, clip_boxes, decode_boxes
from fcis_twin.reference.proposals import Proposals, propose, rpn_outputs_to_anchor_order
from fcis_twin.strategies import boxes, scores

# The hand-worked scene: image H = 20, W = 30, min_size 2, NMS 0.7.
HAND_ANCHORS = np.float32(
    [
        [0, 0, 10, 10],  # 0: no delta -> [0, 0, 10, 10]
        [1, 0, 11, 10],  # 1: no delta; IoU with box 0 = 9*10 / (100 + 100 - 90) = 90/110 = 0.818
        [20, 5, 30, 15],  # 2: dx = 0.5 moves it by 0.5 * 10 = 5 -> [25, 5, 35, 15], clipped to [25, 5, 30, 15]
        [-9, 10, 1, 20],  # 3: clipped to [0, 10, 1, 20]: width 1 < 2, dropped despite the best prob
        [10, 10, 20, 20],  # 4: dy = -0.5 moves it up by 5 -> [10, 5, 20, 15]; touches box 0 only at x = 10
    ]
)
HAND_DELTAS = np.float32([[0, 0, 0, 0], [0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0, 0, 0], [0, -0.5, 0, 0]])
HAND_PROB = np.float32([0.9, 0.8, 0.7, 0.95, 0.6])
HAND_SHAPE = (20, 30)


def test_hand_worked_pipeline():
    """Decode, clip, min_size drop and NMS on five anchors give the three hand-computed proposals."""
    out = propose(HAND_PROB, HAND_DELTAS, HAND_ANCHORS, HAND_SHAPE)
    assert isinstance(out, Proposals)
    # box 3 dropped (width 1), box 1 suppressed by box 0 (0.818 > 0.7), boxes 2 and 4 overlap nothing kept
    np.testing.assert_array_equal(out.boxes, [[0, 0, 10, 10], [25, 5, 30, 15], [10, 5, 20, 15]])
    np.testing.assert_array_equal(out.scores, np.float32([0.9, 0.7, 0.6]))
    assert out.boxes.dtype == np.float32 and out.scores.dtype == np.float32


def test_hand_worked_knobs():
    """Each knob changes the hand-worked result as computed by hand."""
    # a looser NMS (0.818 <= 0.9) keeps box 1 too, in score order 0.9, 0.8, 0.7, 0.6
    boxes_, scores_ = propose(HAND_PROB, HAND_DELTAS, HAND_ANCHORS, HAND_SHAPE, nms_threshold=0.9)
    np.testing.assert_array_equal(scores_, np.float32([0.9, 0.8, 0.7, 0.6]))
    # min_size 1 keeps box 3 (width 1 >= 1), which has the best prob 0.95
    boxes_, scores_ = propose(HAND_PROB, HAND_DELTAS, HAND_ANCHORS, HAND_SHAPE, min_size=1)
    np.testing.assert_array_equal(boxes_[0], [0, 10, 1, 20])
    np.testing.assert_array_equal(scores_, np.float32([0.95, 0.9, 0.7, 0.6]))
    # min_size 6 also drops box 2 (width 30 - 25 = 5 < 6)
    _, scores_ = propose(HAND_PROB, HAND_DELTAS, HAND_ANCHORS, HAND_SHAPE, min_size=6)
    np.testing.assert_array_equal(scores_, np.float32([0.9, 0.6]))
    # post_nms_top_n 2 cuts after NMS: boxes 0 and 2
    _, scores_ = propose(HAND_PROB, HAND_DELTAS, HAND_ANCHORS, HAND_SHAPE, post_nms_top_n=2)
    np.testing.assert_array_equal(scores_, np.float32([0.9, 0.7]))
    # pre_nms_top_n 2 cuts before NMS: candidates 0 (0.9) and 1 (0.8) enter, 1 is suppressed, one box remains
    boxes_, scores_ = propose(HAND_PROB, HAND_DELTAS, HAND_ANCHORS, HAND_SHAPE, pre_nms_top_n=2)
    np.testing.assert_array_equal(boxes_, [[0, 0, 10, 10]])
    np.testing.assert_array_equal(scores_, np.float32([0.9]))


def test_pre_nms_top_n_is_stable_on_ties():
    """With equal probabilities the lower anchor index ranks first."""
    anchors = np.float32([[0, 0, 4, 4], [10, 0, 14, 4], [20, 0, 24, 4], [30, 0, 34, 4]])  # disjoint
    prob = np.float32([0.5, 0.9, 0.5, 0.5])
    boxes_, scores_ = propose(prob, np.zeros((4, 4)), anchors, (10, 40), pre_nms_top_n=3)
    # order: anchor 1 (0.9), then the tied anchors 0, 2, 3 by index; the first three are 1, 0, 2
    np.testing.assert_array_equal(boxes_, anchors[[1, 0, 2]])
    np.testing.assert_array_equal(scores_, np.float32([0.9, 0.5, 0.5]))


def test_many_ties_keep_anchor_order():
    """Ties stay in anchor order beyond the small sizes where any sort happens to be stable."""
    n = 200
    anchors = np.stack([np.arange(n) * 10, np.zeros(n), np.arange(n) * 10 + 5, np.full(n, 5)], axis=1)  # disjoint
    prob = np.float32(np.arange(n) % 3 == 0) * np.float32(0.5) + np.float32(0.25)  # 0.75 at every third, else 0.25
    boxes_, scores_ = propose(prob, np.zeros((n, 4)), anchors, (10, 10 * n), pre_nms_top_n=150, post_nms_top_n=n)
    # the 67 anchors 0, 3, ..., 198 first (0.75), then the 0.25 ones by index until 150 are taken
    order = np.concatenate([np.arange(0, n, 3), np.setdiff1d(np.arange(n), np.arange(0, n, 3))])[:150]
    np.testing.assert_array_equal(boxes_, anchors[order])
    np.testing.assert_array_equal(scores_, prob[order])


def test_empty_input():
    """No anchors give (0, 4) boxes and (0,) scores."""
    boxes_, scores_ = propose(np.zeros(0), np.zeros((0, 4)), np.zeros((0, 4)), (10, 10))
    assert boxes_.shape == (0, 4) and boxes_.dtype == np.float32
    assert scores_.shape == (0,) and scores_.dtype == np.float32


def test_everything_filtered_gives_empty_output():
    """When min_size drops every box the result is empty, not padded."""
    # both anchors lie left of the image and clip to width 0
    anchors = np.float32([[-10, 0, -5, 5], [-20, 0, -1, 5]])
    boxes_, scores_ = propose(np.float32([0.5, 0.6]), np.zeros((2, 4)), anchors, (10, 10), min_size=1)
    assert boxes_.shape == (0, 4) and scores_.shape == (0,)
    # with min_size 0 the two zero-width boxes [0, 0, 0, 5] survive; zero area never suppresses
    boxes_, scores_ = propose(np.float32([0.5, 0.6]), np.zeros((2, 4)), anchors, (10, 10), min_size=0)
    np.testing.assert_array_equal(boxes_, [[0, 0, 0, 5], [0, 0, 0, 5]])
    np.testing.assert_array_equal(scores_, np.float32([0.6, 0.5]))


@st.composite
def proposal_inputs(draw):
    """Anchors, probabilities (with ties), moderate deltas and an image shape."""
    anchors = draw(boxes(max_size=25))
    r = anchors.shape[0]
    prob = draw(scores(r))
    delta = st.integers(-8, 8).map(lambda v: np.float32(v / 8))  # steps of 1/8: exact centre shifts, ties
    deltas = draw(hnp.arrays(np.float32, (r, 4), elements=delta))
    image_shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    return prob, deltas, anchors, image_shape


knobs = st.fixed_dictionaries(
    {
        "pre_nms_top_n": st.integers(1, 30),
        "post_nms_top_n": st.integers(1, 30),
        "nms_threshold": st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]),
        "min_size": st.sampled_from([0, 0.5, 1, 2, 4]),
    }
)


@given(proposal_inputs(), knobs)
def test_proposal_properties(inputs, kw):
    """Count <= post_nms_top_n, inside the image, sides >= min_size, scores descending, IoU <= threshold."""
    prob, deltas, anchors, (h, w) = inputs
    boxes_, scores_ = propose(prob, deltas, anchors, (h, w), **kw)
    k = boxes_.shape[0]
    assert boxes_.shape == (k, 4) and scores_.shape == (k,)
    assert k <= kw["post_nms_top_n"] and k <= min(kw["pre_nms_top_n"], len(prob))
    assert (boxes_[:, 0] >= 0).all() and (boxes_[:, 2] <= w).all()
    assert (boxes_[:, 1] >= 0).all() and (boxes_[:, 3] <= h).all()
    assert (boxes_[:, 2] - boxes_[:, 0] >= np.float32(kw["min_size"])).all()
    assert (boxes_[:, 3] - boxes_[:, 1] >= np.float32(kw["min_size"])).all()
    assert (np.diff(scores_) <= 0).all()
    iou = box_iou(boxes_, boxes_)
    np.fill_diagonal(iou, 0)
    assert (iou <= np.float32(kw["nms_threshold"])).all()


@given(proposal_inputs(), knobs)
def test_every_proposal_is_a_clipped_decode(inputs, kw):
    """Each output is the clipped decode of a distinct input anchor, with that anchor's probability."""
    prob, deltas, anchors, shape = inputs
    boxes_, scores_ = propose(prob, deltas, anchors, shape, **kw)
    candidates = clip_boxes(decode_boxes(anchors, deltas), shape)
    used = set()
    for box, score in zip(boxes_, scores_, strict=True):
        match = np.flatnonzero((candidates == box).all(axis=1) & (prob == score))
        free = [i for i in match if i not in used]
        assert free, f"{box} with score {score} is not the clipped decode of any unused anchor"
        used.add(free[0])


@given(proposal_inputs(), st.integers(1, 30))
def test_pre_nms_top_n_keeps_the_best(inputs, n):
    """Without suppression or filtering, the result is the stable top pre_nms_top_n by probability."""
    prob, deltas, anchors, shape = inputs
    boxes_, scores_ = propose(
        prob, deltas, anchors, shape, pre_nms_top_n=n, post_nms_top_n=1000, nms_threshold=1.0, min_size=0
    )
    order = np.argsort(-prob, kind="stable")[:n]  # nothing is dropped or suppressed (IoU > 1 never holds)
    np.testing.assert_array_equal(boxes_, clip_boxes(decode_boxes(anchors, deltas), shape)[order])
    np.testing.assert_array_equal(scores_, prob[order])


def test_rpn_layout_hand_case():
    """Official RPN maps flatten to rows (y, x, anchor), foreground channels A + a, deltas a*4 + coord."""
    a_, h, w = 2, 1, 2
    prob = np.zeros((1, 2 * a_, h, w), np.float32)
    prob[0, 2:, 0, :] = [[0.1, 0.2], [0.3, 0.4]]  # foreground: anchor 0 -> (0.1, 0.2), anchor 1 -> (0.3, 0.4)
    prob[0, :2] = 1 - prob[0, 2:]  # background channels 0, 1
    deltas = np.arange(4 * a_ * h * w, dtype=np.float32).reshape(1, 4 * a_, h, w)  # value = channel * 2 + x
    fg, d = rpn_outputs_to_anchor_order(prob, deltas)
    # rows: (x0, a0), (x0, a1), (x1, a0), (x1, a1)
    np.testing.assert_array_equal(fg, np.float32([0.1, 0.3, 0.2, 0.4]))
    # row (x0, a1): channels 4..7 at x = 0 -> 8, 10, 12, 14; row (x1, a0): channels 0..3 at x = 1 -> 1, 3, 5, 7
    np.testing.assert_array_equal(d, [[0, 2, 4, 6], [8, 10, 12, 14], [1, 3, 5, 7], [9, 11, 13, 15]])


def test_rpn_layout_matches_shift_anchors():
    """Row r of the flattened RPN outputs belongs to row r of shift_anchors."""
    base = np.float32([[0, 0, 16, 16], [0, 0, 32, 8], [0, 0, 8, 32]])  # A = 3, told apart by their sizes
    a_, h, w, stride = 3, 2, 3, 16
    anchors = shift_anchors(base, (h, w), stride)

    def code(a, y, x):  # a unique value per (anchor, cell), in [0, 1]
        return np.float32((100 * a + 10 * y + x) / 1000)

    prob = np.zeros((1, 2 * a_, h, w), np.float32)
    deltas = np.zeros((1, 4 * a_, h, w), np.float32)
    for a in range(a_):
        for y in range(h):
            for x in range(w):
                prob[0, a_ + a, y, x] = code(a, y, x)
                deltas[0, a * 4 : a * 4 + 4, y, x] = code(a, y, x) + np.arange(4)  # coord c adds c
    fg, d = rpn_outputs_to_anchor_order(prob, deltas)
    assert fg.shape == (h * w * a_,) and d.shape == (h * w * a_, 4)
    sizes = (base[:, 2:] - base[:, :2]).tolist()
    for r, anchor in enumerate(anchors):
        x, y = int(anchor[0]) // stride, int(anchor[1]) // stride
        a = sizes.index((anchor[2:] - anchor[:2]).tolist())
        assert fg[r] == code(a, y, x)
        np.testing.assert_array_equal(d[r], code(a, y, x) + np.arange(4, dtype=np.float32))


def test_rpn_outputs_into_propose():
    """Flattened RPN outputs of the default anchors run through propose; an all-zero map gives clipped anchors."""
    h, w, stride = 2, 2, 16
    anchors = shift_anchors(anchor_base(), (h, w), stride)  # (36, 4)
    prob = np.full((1, 18, h, w), 0.5, np.float32)
    fg, d = rpn_outputs_to_anchor_order(prob, np.zeros((1, 36, h, w), np.float32))
    boxes_, scores_ = propose(fg, d, anchors, (32, 32), nms_threshold=1.0, min_size=0, post_nms_top_n=1000)
    # zero deltas decode every anchor onto itself; all probabilities tie at 0.5, so the anchor order is kept
    np.testing.assert_array_equal(boxes_, clip_boxes(anchors, (32, 32)))
    assert (scores_ == np.float32(0.5)).all()


@pytest.mark.parametrize(
    "prob, deltas, match",
    [
        (np.zeros((2, 2, 1, 1)), np.zeros((2, 4, 1, 1)), "rpn_prob must have batch size N = 1"),
        (np.zeros((1, 2, 1, 1)), np.zeros((2, 4, 1, 1)), "rpn_deltas must have batch size N = 1"),
        (np.zeros((1, 3, 1, 1)), np.zeros((1, 4, 1, 1)), "rpn_prob must have 2\\*A channels"),
        (np.zeros((1, 2, 1, 1)), np.zeros((1, 8, 1, 1)), "rpn_deltas must have shape"),
        (np.zeros((1, 2, 1, 1)), np.zeros((1, 4, 1, 2)), "rpn_deltas must have shape"),
        (np.zeros((1, 2, 1)), np.zeros((1, 4, 1, 1)), "rpn_prob must be 4-d"),
        (np.full((1, 2, 1, 1), 1.5), np.zeros((1, 4, 1, 1)), "rpn_prob must hold probabilities"),
        (np.full((1, 2, 1, 1), np.nan), np.zeros((1, 4, 1, 1)), "rpn_prob must be finite"),
        (np.zeros((1, 2, 1, 1)), np.full((1, 4, 1, 1), np.inf), "rpn_deltas must be finite"),
    ],
)
def test_rpn_layout_bad_input(prob, deltas, match):
    """Bad RPN maps raise ValueError naming the argument (only N = 1 is supported)."""
    with pytest.raises(ValueError, match=match):
        rpn_outputs_to_anchor_order(prob, deltas)


GOOD = (np.float32([0.5, 0.5]), np.zeros((2, 4), np.float32), np.float32([[0, 0, 4, 4], [1, 1, 5, 5]]), (8, 8))


@pytest.mark.parametrize(
    "replace, kwargs, match",
    [
        ({0: np.float32([np.nan, 0.5])}, {}, "fg_prob must be finite"),
        ({0: np.float32([1.5, 0.5])}, {}, "fg_prob must hold probabilities"),
        ({0: np.float32([-0.1, 0.5])}, {}, "fg_prob must hold probabilities"),
        ({0: np.float32([0.5])}, {}, "fg_prob must have shape"),
        ({0: np.float32([[0.5, 0.5]])}, {}, "fg_prob must be 1-d"),
        ({1: np.zeros((2, 3))}, {}, "deltas must have last axis"),
        ({1: np.zeros((3, 4))}, {}, "deltas must have shape"),
        ({1: np.float32([[np.nan, 0, 0, 0], [0, 0, 0, 0]])}, {}, "deltas must be finite"),
        ({2: np.float32([[0, 0, 4, 4]])}, {}, "fg_prob must have shape"),
        ({2: np.float32([[0, 0, 4, 4], [5, 1, 1, 5]])}, {}, "anchors must satisfy"),
        ({2: np.zeros((2, 5))}, {}, "anchors must have last axis"),
        ({3: (0, 8)}, {}, "image_shape"),
        ({}, {"nms_threshold": 1.5}, "nms_threshold"),
        ({}, {"nms_threshold": -0.1}, "nms_threshold"),
        ({}, {"min_size": -1}, "min_size"),
        ({}, {"min_size": float("inf")}, "min_size must be finite"),
        ({}, {"pre_nms_top_n": 0}, "pre_nms_top_n"),
        ({}, {"post_nms_top_n": 0}, "post_nms_top_n"),
        ({}, {"post_nms_top_n": -300}, "post_nms_top_n"),
    ],
)
def test_propose_bad_input(replace, kwargs, match):
    """Bad propose input raises ValueError naming the argument."""
    args = [replace.get(i, v) for i, v in enumerate(GOOD)]
    with pytest.raises(ValueError, match=match):
        propose(*args, **kwargs)


def test_propose_wrong_types():
    """A non-integer top-n or a non-numeric threshold raises TypeError naming the argument."""
    with pytest.raises(TypeError, match="pre_nms_top_n"):
        propose(*GOOD, pre_nms_top_n=2.5)
    with pytest.raises(TypeError, match="post_nms_top_n"):
        propose(*GOOD, post_nms_top_n=True)
    with pytest.raises(TypeError, match="nms_threshold"):
        propose(*GOOD, nms_threshold="0.7")
