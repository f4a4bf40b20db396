"""Mask voting: hand-worked votes, candidate selection, ordering, empty and degenerate inputs, bad input."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fcis_twin.reference.boxes import box_iou
from fcis_twin.reference.nms import nms
from fcis_twin.reference.paste import paste_masks
from fcis_twin.reference.voting import (
    EXTENT_FIELDS,
    Detections,
    mask_voting,
    mask_voting_loop,
    voted_boxes,
    voter_lists,
)

#: Probabilities on a coarse dyadic grid: exact in float32, equal scores (ties) common.
grid_prob = st.integers(0, 8).map(lambda v: np.float32(v / 8))


def tight_box(mask):
    rows, cols = np.nonzero(mask)
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def naive_mask_voting(boxes, cls_masks, cls_probs, image_shape, nms_threshold, vote_threshold, binary_threshold,
                      max_detections, score_threshold):
    """The algorithm as the docstring states it: NMS over all ROIs, every voter pasted into the full image."""
    boxes, cls_masks, cls_probs = (np.asarray(a, np.float32) for a in (boxes, cls_masks, cls_probs))
    cands = []
    for c in range(1, cls_probs.shape[1]):
        cands += [(r, c) for r in nms(boxes, cls_probs[:, c], nms_threshold)[:max_detections]]
    cands = [rc for rc in cands if cls_probs[rc] >= np.float32(score_threshold)]
    cands.sort(key=lambda rc: (-cls_probs[rc], rc[1], rc[0]))
    out = []
    for r, c in cands[:max_detections]:
        iou = box_iou(boxes, boxes[r : r + 1])[:, 0]
        voters = [j for j in range(len(boxes)) if iou[j] >= np.float32(vote_threshold) or j == r]
        pasted = paste_masks(cls_masks[voters, c], boxes[voters], image_shape)
        acc = np.zeros(image_shape, np.float32)
        total = np.float32(0)
        for k, j in enumerate(voters):
            acc += cls_probs[j, c] * pasted[k]
            total += cls_probs[j, c]
        if total > 0:
            mask = acc / total >= np.float32(binary_threshold)
            if mask.any():
                out.append((tight_box(mask), cls_probs[r, c], c, mask, r))
    return out


@st.composite
def voting_inputs(draw, max_rois=8):
    """Small (boxes, cls_masks, cls_probs, image_shape): boxes on a half-pixel grid around a small image."""
    num_rois = draw(st.integers(0, max_rois))
    num_classes = draw(st.integers(1, 4))
    p = draw(st.integers(1, 4))
    image_shape = (draw(st.integers(1, 10)), draw(st.integers(1, 12)))
    corners = draw(hnp.arrays(np.float32, (num_rois, 4), elements=st.integers(-6, 28).map(lambda v: v / 2)))
    boxes = np.concatenate(
        [np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])], axis=1
    )
    cls_masks = draw(hnp.arrays(np.float32, (num_rois, num_classes, p, p), elements=grid_prob))
    cls_probs = draw(hnp.arrays(np.float32, (num_rois, num_classes), elements=grid_prob))
    return boxes, cls_masks, cls_probs, image_shape


def test_one_roi_returns_its_own_pasted_mask():
    """A single ROI is its own only voter: the output is its pasted mask binarized, boxed tightly."""
    rng = np.random.default_rng(3)
    cls_masks = rng.random((1, 3, 5, 5), dtype=np.float32)
    box = [[1.5, 2, 9, 6.5]]
    det = mask_voting(box, cls_masks, [[0.1, 0.3, 0.6]], (8, 10), binary_threshold=0.5)
    # two classes, two detections, class 2 (0.6) first
    assert len(det) == 2
    np.testing.assert_array_equal(det.labels, [2, 1])
    np.testing.assert_array_equal(det.scores, np.float32([0.6, 0.3]))
    for k, c in enumerate([2, 1]):
        # the weighted average of one voter is its own paste: p * m / p
        expected = paste_masks(cls_masks[:, c], box, (8, 10), threshold=0.5)[0]
        np.testing.assert_array_equal(det.masks[k], expected)
        np.testing.assert_array_equal(det.boxes[k], tight_box(expected))


@settings(max_examples=100)
@given(
    mask=hnp.arrays(np.float32, (1, 2, 3, 3), elements=st.floats(0, 1, width=32)),
    box=st.tuples(*[st.integers(-3, 12).map(lambda v: v / 2)] * 4),
    prob=st.sampled_from([0.125, 0.25, 0.5, 1.0]),
)
def test_one_roi_property(mask, box, prob):
    """For any single ROI the output is its paste binarized, or nothing when that is empty."""
    box = np.float32([[min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]])
    det = mask_voting(box, mask, [[0, prob]], (5, 6))
    # (p * v) / p == v for a power-of-two p (up to underflow far below the threshold 0.4)
    expected = paste_masks(mask[:, 1], box, (5, 6), threshold=0.4)
    np.testing.assert_array_equal(det.masks, expected if expected.any() else np.zeros((0, 5, 6), bool))
    np.testing.assert_array_equal(det.scores, [prob] if expected.any() else [])


def test_two_rois_vote_with_their_weights():
    """Two overlapping ROIs: the mask is their probability-weighted average, binarized with >=."""
    # ROI 0: box [0, 0, 4, 2), class-1 prob 0.75, mask all 1.  ROI 1: box [0, 0, 5, 3), class-1 prob 0.25, mask
    # all 1.  IoU = 8 / (8 + 15 - 8) = 0.53 >= 0.5, so each votes for the other; NMS (0.53 > 0.3) keeps ROI 0.
    # Inside ROI 0: (0.75 * 1 + 0.25 * 1) / (0.75 + 0.25) = 1; the rest of ROI 1: (0.75 * 0 + 0.25 * 1) / 1 = 0.25.
    boxes = [[0, 0, 4, 2], [0, 0, 5, 3]]
    cls_masks = np.ones((2, 2, 2, 2), np.float32)
    cls_probs = [[0.25, 0.75], [0.75, 0.25]]
    det = mask_voting(boxes, cls_masks, cls_probs, (5, 6), binary_threshold=0.4)
    assert len(det) == 1 and det.labels[0] == 1 and det.scores[0] == np.float32(0.75) and det.rois[0] == 0
    np.testing.assert_array_equal(det.boxes, [[0, 0, 4, 2]])  # 0.25 < 0.4: only ROI 0's pixels
    det = mask_voting(boxes, cls_masks, cls_probs, (5, 6), binary_threshold=0.25)
    np.testing.assert_array_equal(det.boxes, [[0, 0, 5, 3]])  # 0.25 >= 0.25: all of ROI 1's pixels too
    expected = np.zeros((5, 6), bool)
    expected[:3, :5] = True
    np.testing.assert_array_equal(det.masks[0], expected)


def test_two_rois_same_box_pixelwise_average():
    """Two ROIs on the same box average pixel by pixel: 0.75 * m0 + 0.25 * m1."""
    # P = 2 into a 2 x 2 box copies the mask.  m0 = [[1, 1], [0, 0]], m1 = [[0, 1], [0, 1]]:
    # average = [[0.75, 1], [0, 0.25]]; >= 0.5 gives the top row, >= 0.25 adds pixel (1, 1).
    cls_masks = np.zeros((2, 2, 2, 2), np.float32)
    cls_masks[0, 1] = [[1, 1], [0, 0]]
    cls_masks[1, 1] = [[0, 1], [0, 1]]
    boxes = [[0, 0, 2, 2], [0, 0, 2, 2]]
    cls_probs = [[0, 0.75], [0, 0.25]]
    det = mask_voting(boxes, cls_masks, cls_probs, (2, 2), binary_threshold=0.5)
    np.testing.assert_array_equal(det.masks, [[[1, 1], [0, 0]]])
    np.testing.assert_array_equal(det.boxes, [[0, 0, 2, 1]])
    det = mask_voting(boxes, cls_masks, cls_probs, (2, 2), binary_threshold=0.25)
    np.testing.assert_array_equal(det.masks, [[[1, 1], [0, 1]]])
    np.testing.assert_array_equal(det.boxes, [[0, 0, 2, 2]])


def test_voters_of_other_classes_give_the_detection_class_mask():
    """An ROI whose best class is another still votes, with its mask of the detection's class."""
    # Same box.  ROI 0: class 1 (0.75), class-1 mask top row.  ROI 1: class 2 (0.75) and class 1 (0.25),
    # class-1 mask bottom row, class-2 mask left column.
    # Class 1, detection ROI 0: (0.75 * top + 0.25 * bottom) / 1 = top 0.75, bottom 0.25 -> all four >= 0.25.
    # (Had ROI 1 voted with its class-2 mask, the bottom-right pixel would be 0.)
    # Class 2, detection ROI 1: ROI 0 votes with weight 0, so the mask is ROI 1's left column.
    cls_masks = np.zeros((2, 3, 2, 2), np.float32)
    cls_masks[0, 1] = [[1, 1], [0, 0]]
    cls_masks[0, 2] = 1  # weight 0: must not show
    cls_masks[1, 1] = [[0, 0], [1, 1]]
    cls_masks[1, 2] = [[1, 0], [1, 0]]
    det = mask_voting([[0, 0, 2, 2]] * 2, cls_masks, [[0, 0.75, 0], [0, 0.25, 0.75]], (2, 2), binary_threshold=0.25)
    # equal scores 0.75: class 1 (ROI 0) first
    np.testing.assert_array_equal(det.labels, [1, 2])
    np.testing.assert_array_equal(det.rois, [0, 1])
    np.testing.assert_array_equal(det.masks, [[[1, 1], [1, 1]], [[1, 0], [1, 0]]])
    np.testing.assert_array_equal(det.boxes, [[0, 0, 2, 2], [0, 0, 1, 2]])


def test_background_class_never_detected():
    """Class 0 is background: even a dominant class-0 probability gives no detection labelled 0."""
    cls_probs = [[0.9, 0.05, 0.05], [0.95, 0.05, 0.0]]
    det = mask_voting([[0, 0, 2, 2], [4, 4, 6, 6]], np.ones((2, 3, 2, 2)), cls_probs, (8, 8))
    assert len(det) == 3 and set(det.labels.tolist()) == {1, 2}
    det = mask_voting([[0, 0, 2, 2]], np.ones((1, 1, 2, 2)), [[1.0]], (8, 8))  # C = 1: background only
    assert len(det) == 0 and det.masks.shape == (0, 8, 8)


def test_max_detections_cuts_at_the_last_score():
    """Without ties exactly max_detections come out, the highest scores."""
    # three separate ROIs of class 1 and one of class 2; scores 0.5, 0.375 | 0.25 | 0.125 (class 2)
    boxes = [[0, 0, 2, 2], [4, 0, 6, 2], [0, 4, 2, 6], [4, 4, 6, 6]]
    cls_probs = [[0, 0.5, 0], [0, 0.375, 0], [0, 0.25, 0], [0, 0, 0.125]]
    det = mask_voting(boxes, np.ones((4, 3, 2, 2)), cls_probs, (6, 6), max_detections=2)
    np.testing.assert_array_equal(det.scores, [0.5, 0.375])
    np.testing.assert_array_equal(det.boxes, [[0, 0, 2, 2], [4, 0, 6, 2]])


def test_ties_at_the_last_score_are_cut_by_class_then_roi():
    """max_detections is a hard bound: of candidates tied at the last place the lower class, then ROI, goes on."""
    # class 1 keeps ROI 1 (0.5) after its per-class limit of 2; class 2 keeps ROI 0 (0.5); all three tie at 0.5
    boxes = [[0, 0, 2, 2], [4, 0, 6, 2], [0, 4, 2, 6]]
    cls_probs = [[0, 0, 0.5], [0, 0.5, 0], [0, 0.5, 0]]
    det = mask_voting(boxes, np.ones((3, 3, 2, 2)), cls_probs, (6, 6), max_detections=1)
    np.testing.assert_array_equal(det.labels, [1])  # equal scores: lower class first, though its ROI is 1
    np.testing.assert_array_equal(det.rois, [1])
    det = mask_voting(boxes, np.ones((3, 3, 2, 2)), cls_probs, (6, 6), max_detections=2)
    np.testing.assert_array_equal(det.labels, [1, 1])  # class 1's ROIs 1, 2 before class 2's ROI 0
    np.testing.assert_array_equal(det.rois, [1, 2])
    np.testing.assert_array_equal(det.boxes, [[4, 0, 6, 2], [0, 4, 2, 6]])


def test_equal_probabilities_are_bounded_by_max_detections():
    """An untrained network's equal probabilities over many ROIs and classes give max_detections, not thousands."""
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 60, (120, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + 4], axis=1)  # mostly separate 4 x 4 boxes
    cls_probs = np.full((120, 21), 1 / 21, np.float32)
    det = mask_voting(boxes, np.ones((120, 21, 2, 2)), cls_probs, (64, 64), max_detections=100)
    assert len(det) == 100
    np.testing.assert_array_equal(det.labels[:3], [1, 1, 1])  # all tied: class 1 first, by ROI


def test_ties_within_a_class_follow_nms_order():
    """Within one class the per-class limit keeps tied ROIs in NMS order, lower index first."""
    boxes = [[0, 0, 2, 2], [4, 0, 6, 2], [0, 4, 2, 6]]
    cls_probs = [[0, 0.25], [0, 0.5], [0, 0.5]]
    det = mask_voting(boxes, np.ones((3, 2, 2, 2)), cls_probs, (6, 6), max_detections=1)
    np.testing.assert_array_equal(det.boxes, [[4, 0, 6, 2]])  # ROI 1 before ROI 2
    det = mask_voting(boxes, np.ones((3, 2, 2, 2)), cls_probs, (6, 6), max_detections=3)
    np.testing.assert_array_equal(det.boxes, [[4, 0, 6, 2], [0, 4, 2, 6], [0, 0, 2, 2]])


def test_scores_below_threshold_are_dropped():
    """A candidate below score_threshold is dropped; one equal to it is kept."""
    boxes = [[0, 0, 2, 2], [4, 0, 6, 2], [0, 4, 2, 6]]
    cls_probs = [[0, 0.25], [0, 0.125], [0, 0.0005]]
    det = mask_voting(boxes, np.ones((3, 2, 2, 2)), cls_probs, (6, 6), score_threshold=0.25)
    np.testing.assert_array_equal(det.scores, [0.25])
    det = mask_voting(boxes, np.ones((3, 2, 2, 2)), cls_probs, (6, 6))  # default 1e-3 drops only 0.0005
    np.testing.assert_array_equal(det.scores, np.float32([0.25, 0.125]))


def test_empty_voted_mask_drops_the_detection():
    """A detection whose voted mask is empty is dropped; the others stay."""
    cls_masks = np.ones((2, 2, 2, 2), np.float32)
    cls_masks[0, 1] = 0.375  # below 0.4 everywhere
    det = mask_voting([[0, 0, 2, 2], [4, 4, 6, 6]], cls_masks, [[0, 0.75], [0, 0.5]], (6, 6))
    np.testing.assert_array_equal(det.scores, [0.5])
    np.testing.assert_array_equal(det.boxes, [[4, 4, 6, 6]])


def test_roi_outside_the_image_gives_nothing():
    """An ROI wholly outside the image votes nothing into it, so its detection is dropped."""
    det = mask_voting([[10, 10, 12, 12]], np.ones((1, 2, 2, 2)), [[0, 0.75]], (6, 6))
    assert len(det) == 0


def test_zero_area_roi_votes_for_itself():
    """A zero-area ROI (IoU 0 with itself) still votes for its own detection, as one pixel."""
    det = mask_voting([[3, 1, 3, 1]], np.ones((1, 2, 2, 2)), [[0, 0.75]], (4, 5))
    np.testing.assert_array_equal(det.boxes, [[3, 1, 4, 2]])
    assert det.masks[0].sum() == 1


def test_binary_threshold_zero_is_refused():
    """binary_threshold 0 would put every pixel no voter covers (average 0) into the mask: it is refused."""
    with pytest.raises(ValueError, match=r"binary_threshold must be in \(0\.0, 1\.0\]"):
        mask_voting([[1, 1, 2, 2]], np.zeros((1, 2, 2, 2)), [[0, 0.75]], (3, 4), binary_threshold=0)


def test_no_rois():
    """R = 0 gives empty detections with the right shapes and dtypes."""
    det = mask_voting(np.zeros((0, 4)), np.zeros((0, 5, 21, 21)), np.zeros((0, 5)), (7, 9))
    assert len(det) == 0
    assert det.boxes.shape == (0, 4) and det.boxes.dtype == np.float32
    assert det.scores.shape == (0,) and det.scores.dtype == np.float32
    assert det.labels.shape == (0,) and det.labels.dtype == np.int64
    assert det.masks.shape == (0, 7, 9) and det.masks.dtype == np.bool_
    assert det.rois.shape == (0,) and det.rois.dtype == np.int64


def test_detections_is_frozen():
    """Detections cannot be modified field by field."""
    det = mask_voting([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 0.75]], (3, 3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        det.scores = np.zeros(1)
    assert isinstance(det, Detections)


@settings(max_examples=150)
@given(
    inputs=voting_inputs(),
    nms_threshold=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    vote_threshold=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    binary_threshold=st.sampled_from([0.125, 0.4, 0.5, 1.0]),
    max_detections=st.integers(1, 6),
    score_threshold=st.sampled_from([0.001, 0.25, 0.5]),
)
def test_output_is_well_formed_and_matches_the_plain_algorithm(
    inputs, nms_threshold, vote_threshold, binary_threshold, max_detections, score_threshold
):
    """Masks non-empty and tightly boxed, labels foreground, scores sorted; equal to full-image voting."""
    boxes, cls_masks, cls_probs, image_shape = inputs
    kwargs = dict(nms_threshold=nms_threshold, vote_threshold=vote_threshold, binary_threshold=binary_threshold,
                  max_detections=max_detections, score_threshold=score_threshold)
    det = mask_voting(boxes, cls_masks, cls_probs, image_shape, **kwargs)
    num_classes = cls_masks.shape[1]
    assert det.masks.shape == (len(det), *image_shape)
    for k in range(len(det)):
        assert det.masks[k].any()
        np.testing.assert_array_equal(det.boxes[k], tight_box(det.masks[k]))
    assert ((det.labels >= 1) & (det.labels <= num_classes - 1)).all()
    assert (np.diff(det.scores) <= 0).all()
    assert (det.scores >= np.float32(score_threshold)).all()
    assert len(det) <= max_detections

    expected = naive_mask_voting(boxes, cls_masks, cls_probs, image_shape, **kwargs)
    assert len(det) == len(expected)
    for k, (box, score, label, mask, roi) in enumerate(expected):
        np.testing.assert_array_equal(det.boxes[k], box)
        assert det.scores[k] == score and det.labels[k] == label and det.rois[k] == roi
        np.testing.assert_array_equal(det.masks[k], mask)


@settings(max_examples=100)
@given(
    inputs=voting_inputs(max_rois=5),
    vote_threshold=st.sampled_from([0.0, 0.5, 1.0]),
    binary_threshold=st.sampled_from([1e-6, 0.125, 0.4, 1.0]),
    max_detections=st.integers(1, 4),
)
def test_loop_template_equals_the_vectorised_voting(inputs, vote_threshold, binary_threshold, max_detections):
    """The kernels' four-step template gives exactly the vectorised voting's detections."""
    kwargs = dict(vote_threshold=vote_threshold, binary_threshold=binary_threshold, max_detections=max_detections)
    expected = mask_voting(*inputs, **kwargs)
    looped = mask_voting_loop(*inputs, **kwargs)
    for field in dataclasses.fields(Detections):
        a, b = getattr(looped, field.name), getattr(expected, field.name)
        assert a.dtype == b.dtype, field.name
        np.testing.assert_array_equal(a, b, err_msg=field.name)


def test_voter_lists_are_rows_of_ascending_rois():
    """CSR lists: detection i's voters are voters[offsets[i]:offsets[i + 1]], ascending; an empty row is allowed."""
    offsets, voters = voter_lists(np.array([[False, True, True, False], [False] * 4, [True, False, False, True]]))
    np.testing.assert_array_equal(offsets, [0, 2, 2, 4])
    np.testing.assert_array_equal(voters, [1, 2, 0, 3])
    assert offsets.dtype == voters.dtype == np.int64


def test_voted_boxes_drop_zero_weights_and_empty_masks():
    """Extents become half-open tight boxes; a zero weight sum or an empty extent drops the detection."""
    extents = np.array([[1, 2, 3, 4], [5, 6, -1, -1], [0, 0, 0, 0]])  # x min, y min, x max, y max
    assert extents.shape[1] == EXTENT_FIELDS
    keep, boxes = voted_boxes(np.float32([0.5, 0.5, 0.0]), extents)
    np.testing.assert_array_equal(keep, [True, False, False])
    np.testing.assert_array_equal(boxes, [[1, 2, 4, 5]])


@pytest.mark.parametrize(
    ("boxes", "cls_masks", "cls_probs", "kwargs", "match"),
    [
        ([0, 0, 2, 2], np.ones((1, 2, 2, 2)), [[0, 1]], {}, "boxes must be 2-d"),
        ([[2, 0, 1, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], {}, "boxes must satisfy"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2)), [[0, 1]], {}, "cls_masks must be 4-d"),
        ([[0, 0, 2, 2]], np.ones((2, 2, 2, 2)), [[0, 1]], {}, "cls_masks must have shape"),
        ([[0, 0, 2, 2]], np.ones((1, 0, 2, 2)), np.zeros((1, 0)), {}, "cls_masks must have shape"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 0, 0)), [[0, 1]], {}, "cls_masks must have a non-empty"),
        ([[0, 0, 2, 2]], np.full((1, 2, 2, 2), 2.0), [[0, 1]], {}, "cls_masks must hold probabilities"),
        ([[0, 0, 2, 2]], np.full((1, 2, 2, 2), np.nan), [[0, 1]], {}, "cls_masks must be finite"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1, 0]], {}, "cls_probs must have shape"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [0, 1], {}, "cls_probs must be 2-d"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, np.nan]], {}, "cls_probs must be finite"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1.5]], {}, "cls_probs must hold probabilities"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[-0.5, 1]], {}, "cls_probs must hold probabilities"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], {"nms_threshold": 1.5}, "nms_threshold"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], {"vote_threshold": -0.1}, "vote_threshold"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], {"binary_threshold": 2}, "binary_threshold"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], {"score_threshold": 1.1}, "score_threshold"),
        ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], {"max_detections": 0}, "max_detections"),
    ],
)
def test_bad_input_names_the_argument(boxes, cls_masks, cls_probs, kwargs, match):
    """Inconsistent shapes, non-probabilities and out-of-range settings raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        mask_voting(boxes, cls_masks, cls_probs, (4, 4), **kwargs)


def test_bad_types_and_image_shape():
    """A non-integer max_detections is a TypeError; a bad image_shape is named."""
    with pytest.raises(TypeError, match="max_detections"):
        mask_voting([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), max_detections=1.5)
    with pytest.raises(ValueError, match="image_shape"):
        mask_voting([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4,))
