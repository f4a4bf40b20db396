"""Training targets: anchor labels and sampling, ROI labels, box deltas and mask targets."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fcis_twin.reference.boxes import HEAD_STDS, decode_boxes
from fcis_twin.reference.losses import IGNORE
from fcis_twin.reference.targets import anchor_targets, mask_targets, proposal_targets


def test_anchor_targets_hand_worked():
    """IoU >= 0.7 positive, < 0.3 negative, between ignored, across the border never sampled; each box's best
    anchor is positive even below 0.7."""
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    anchors = np.array([
        [0, 0, 10, 11],    # IoU 100/110 = 0.91 with box 0: positive
        [0, 0, 10, 20],    # 0.5: between, ignored
        [40, 0, 50, 10],   # 0: negative
        [-5, 0, 5, 10],    # crosses the left border: never sampled
        [20, 0, 34, 10],   # IoU 100/140 = 0.71 with box 1: positive
        [22, 0, 36, 10],   # 80/160 = 0.5, but box 1 has a better anchor: ignored
    ], np.float32)
    t = anchor_targets(anchors, gt, (40, 60), np.random.default_rng(0))
    np.testing.assert_array_equal(t.labels, [1, IGNORE, 0, IGNORE, 1, IGNORE])
    np.testing.assert_allclose(decode_boxes(anchors[[0, 4]], t.deltas[[0, 4]]), gt, atol=1e-5)
    assert (t.deltas[[1, 2, 3, 5]] == 0).all()
    lone = np.array([[0, 0, 10, 10]], np.float32)
    low = anchor_targets(np.array([[0, 0, 10, 40]], np.float32), lone, (40, 60), np.random.default_rng(0))
    assert low.labels.tolist() == [1]  # IoU 0.25 < 0.3, but the best (only) anchor of the box


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 64))
def test_anchor_sampling_respects_the_batch_and_fraction(seed, batch):
    """At most batch * fg_fraction positives and batch anchors in all, drawn from the candidates."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, (300, 2))
    anchors = np.concatenate([xy, xy + rng.uniform(4, 30, (300, 2))], axis=1).astype(np.float32)
    gt = np.array([[10, 10, 30, 30], [35, 5, 60, 40]], np.float32)
    full = anchor_targets(anchors, gt, (100, 100), rng, batch_size=10**6)
    t = anchor_targets(anchors, gt, (100, 100), np.random.default_rng(seed), batch_size=batch)
    assert (t.labels == 1).sum() <= batch // 2 and (t.labels >= 0).sum() <= batch
    assert set(np.flatnonzero(t.labels == 1)) <= set(np.flatnonzero(full.labels == 1))
    assert set(np.flatnonzero(t.labels == 0)) <= set(np.flatnonzero(full.labels == 0))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), p=st.integers(1, 5))
def test_mask_targets_equal_the_covered_fraction(seed, p):
    """Each cell's value is its covered area over its area, as a 64-fold supersampling measures it."""
    rng = np.random.default_rng(seed)
    mask = rng.random((8, 9)) < 0.5
    x1, y1 = rng.uniform(-2, 6, 2)
    box = (x1, y1, x1 + rng.uniform(0.5, 6), y1 + rng.uniform(0.5, 6))
    got = mask_targets(mask, box, p)
    n = 64 * p  # sample points per axis: the centres of n equal sub-intervals
    xs = box[0] + (np.arange(n) + 0.5) * (box[2] - box[0]) / n
    ys = box[1] + (np.arange(n) + 0.5) * (box[3] - box[1]) / n
    inside = (xs[None] >= 0) & (xs[None] < 9) & (ys[:, None] >= 0) & (ys[:, None] < 8)
    values = np.where(inside, mask[np.clip(ys, 0, 7).astype(int)[:, None], np.clip(xs, 0, 8).astype(int)[None]], 0)
    expected = values.reshape(p, 64, p, 64).mean(axis=(1, 3))
    np.testing.assert_allclose(got, expected, atol=0.04)  # supersampling error: a pixel edge per 64 samples


def test_proposal_targets_append_the_ground_truth_and_label_by_iou():
    """The ground-truth boxes join the ROIs as foreground with their exact mask; IoU < 0.5 is background."""
    masks = np.zeros((2, 20, 20), bool)
    masks[0, 2:8, 2:12] = True
    masks[1, 10:20, 10:20] = True
    gt = np.array([[2, 2, 12, 8], [10, 10, 20, 20]], np.float32)
    proposals = np.array([[2, 2, 12, 9], [0, 10, 5, 15]], np.float32)  # IoU 60/70 with box 0; nothing
    t = proposal_targets(proposals, gt, np.array([3, 1]), masks, output_size=5)
    np.testing.assert_array_equal(t.rois, np.concatenate([proposals, gt]))
    np.testing.assert_array_equal(t.labels, [3, 0, 3, 1])
    np.testing.assert_allclose(decode_boxes(t.rois[[0, 2, 3]], t.deltas[[0, 2, 3]], HEAD_STDS), gt[[0, 0, 1]],
                               atol=1e-5)
    assert (t.deltas[1] == 0).all() and not t.mask_targets[1].any()
    assert t.mask_targets[2].all() and t.mask_targets[3].all()  # a box equal to its full instance: all inside
    # proposal 0 is one row taller than the instance: 7 rows in 5 cells, the last cell 1.4 rows, 0.4 covered
    np.testing.assert_array_equal(t.mask_targets[0][:, 0], [True, True, True, True, False])


def test_targets_without_ground_truth():
    """No instance: every anchor inside the image is a (sampled) negative, every ROI background."""
    anchors = np.array([[0, 0, 4, 4], [2, 2, 6, 6]], np.float32)
    t = anchor_targets(anchors, np.zeros((0, 4), np.float32), (8, 8), np.random.default_rng(0))
    assert t.labels.tolist() == [0, 0]
    p = proposal_targets(anchors, np.zeros((0, 4), np.float32), np.zeros(0, int), np.zeros((0, 8, 8), bool),
                         output_size=3)
    assert p.labels.tolist() == [0, 0] and p.gt_index.tolist() == [-1, -1]
