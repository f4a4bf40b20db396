"""Training at its boundaries: each threshold of the targets at its exact value, the losses' zones and shifts, OHEM's
order and what it ranks, the RPN box loss's normaliser, and one hand-worked optimiser step."""

import numpy as np
import pytest

from fcis_twin.reference import train_step as step_module
from fcis_twin.reference.losses import IGNORE, ohem_keep, smooth_l1, softmax_cross_entropy
from fcis_twin.reference.network import inference_config
from fcis_twin.reference.targets import AnchorTargets, anchor_targets, proposal_targets
from fcis_twin.reference.train import TrainConfig, sgd_step
from fcis_twin.reference.train_step import LossConfig, training_step

from .test_train_step import TINY, two_object_scene

# TINY: a 12 x 14 image, stride 2, 2 anchors per cell: 6 x 7 x 2 = 84 anchors; two_object_scene: a square (class 1)
# and a bar (class 2) on it

# --- anchor and proposal targets --------------------------------------------------------------------------------

GT = np.array([[0, 0, 10, 10]], np.float32)  # area 100


def test_anchor_iou_of_exactly_0_7_is_positive_and_0_3_is_not_negative():
    """Best IoU 0.7 exactly is positive (>=), 0.3 exactly is neither negative nor positive (< 0.3 is negative)."""
    anchors = np.array([
        [0, 0, 10, 10],  # IoU 1: the box's best anchor
        [0, 0, 10, 7],   # IoU 70/100 = 0.7 (float32(70) / float32(100) == float32(0.7)): positive
        [0, 0, 10, 6],   # IoU 0.6: between, ignored
        [0, 0, 10, 3],   # IoU 30/100 = 0.3: not below 0.3, ignored
        [0, 0, 10, 2],   # IoU 0.2: negative
    ], np.float32)
    t = anchor_targets(anchors, GT, (40, 40), np.random.default_rng(0))
    np.testing.assert_array_equal(t.labels, [1, 1, IGNORE, IGNORE, 0])


def test_best_anchor_rule_needs_an_overlap_and_keeps_every_tie():
    """A box that no anchor overlaps makes no anchor positive (its best IoU 0 is not a best anchor); the anchors that
    tie a box's best IoU are all positive."""
    anchors = np.array([
        [0, 0, 10, 40],   # IoU 100/400 = 0.25 with box 0, tied best: positive
        [0, 0, 40, 10],   # IoU 0.25 too: positive
        [50, 50, 60, 60], # IoU 0 with both boxes: negative
        [0, 20, 10, 30],  # IoU 0 with both (box 0 ends at y 10): negative
    ], np.float32)
    gt = np.array([[0, 0, 10, 10],     # best anchor IoU 0.25, anchors 0 and 1
                   [80, 80, 90, 90]],  # overlaps no anchor: max IoU 0, which every anchor "ties"
                  np.float32)
    t = anchor_targets(anchors, gt, (100, 100), np.random.default_rng(0))
    np.testing.assert_array_equal(t.labels, [1, 1, 0, 0])


@pytest.mark.parametrize("positives, kept_positives, kept_negatives", [
    (3, 3, 253),      # few positives: all kept, negatives fill 256 - 3
    (200, 128, 128),  # positives capped at 256 * 0.5 = 128, negatives fill 256 - 128
])
def test_negatives_fill_the_batch_left_by_the_capped_positives(positives, kept_positives, kept_negatives):
    """Of 256 anchors at most 128 positive, and the negatives fill 256 minus the positives kept."""
    anchors = np.concatenate([np.repeat(GT, positives, axis=0),                    # IoU 1: positive
                              np.repeat([[50, 50, 60, 60]], 300, axis=0)]).astype(np.float32)  # IoU 0: negative
    t = anchor_targets(anchors, GT, (100, 100), np.random.default_rng(0))
    assert (t.labels == 1).sum() == kept_positives
    assert (t.labels == 0).sum() == kept_negatives
    assert (t.labels[:positives] != 0).all() and (t.labels[positives:] != 1).all()


def test_proposal_iou_of_exactly_0_5_is_foreground():
    """An ROI of IoU 0.5 exactly with its box is foreground (>= 0.5), of IoU 0.49 background."""
    masks = np.zeros((1, 20, 20), bool)
    masks[0, :10, :10] = True
    proposals = np.array([[0, 0, 10, 5],     # IoU 50/100 = 0.5: foreground
                          [0, 0, 10, 4.9]],  # IoU 49/100: background
                         np.float32)
    t = proposal_targets(proposals, GT, np.array([2]), masks, output_size=2)
    np.testing.assert_array_equal(t.labels, [2, 0, 2])  # the ground-truth box joins as the last ROI
    assert t.mask_targets[0].all() and not t.mask_targets[1].any()


def test_mask_target_cell_covered_exactly_0_4_is_inside():
    """A mask-target cell covered exactly 0.4 is inside (>= binary_threshold), one covered 0.36 is outside."""
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 0:2, 0:5] = True  # cell (0, 0) = rows [0, 5) x columns [0, 5): 10 of 25 pixels, 10 / 25 = 0.4
    masks[0, 0:3, 5:8] = True  # cell (0, 1) = rows [0, 5) x columns [5, 10): 9 of 25, 0.36
    masks[0, 5:10, 0:5] = True  # cell (1, 0): all 25, 1.0; cell (1, 1) empty, 0
    t = proposal_targets(np.zeros((0, 4), np.float32), GT, np.array([1]), masks, output_size=2)
    np.testing.assert_array_equal(t.mask_targets[0], [[True, False], [True, False]])


# --- losses ------------------------------------------------------------------------------------------------------


def test_softmax_shift_is_per_row():
    """Rows of very different scales each keep their exact loss: each row's own maximum is subtracted, so a row
    near 0 next to one near 1000 neither underflows to log(0) nor loses its digits."""
    scores = np.array([[1000.0, 999.0], [0.0, 1.0], [-1000.0, -1001.0]])
    loss, grad = softmax_cross_entropy(scores, np.array([0, 1, 1]))
    # rows 0 and 1: the label's score leads by 1: -log(e^0 / (e^0 + e^-1)) = log(1 + e^-1) = 0.31326168751822286
    # row 2: the label's score trails by 1: log(1 + e^1) = 1.3132616875182228
    np.testing.assert_allclose(loss, [0.31326168751822286, 0.31326168751822286, 1.3132616875182228], rtol=1e-15)
    p = 1 / (1 + np.exp(-1.0))  # 0.7310585786300049, the leader's probability
    np.testing.assert_allclose(grad, [[p - 1, 1 - p], [1 - p, p - 1], [p, -p]], rtol=1e-14)


def test_smooth_l1_zone_for_sigma_3():
    """For sigma = 3 the quadratic zone is |x| < 1/9: 0.1 is inside, 0.12 and 0.2 outside, and at 1/9 both branches
    give 1/18 with slope 1."""
    x = np.array([0.1, -0.1, 0.12, -0.12, 0.2, 1 / 9])
    loss, grad = smooth_l1(x, 3.0)
    expected = [
        0.5 * 9 * 0.01,    # 0.1 < 1/9 = 0.111: 0.5 (3 * 0.1)^2 = 0.045
        0.045,
        0.12 - 0.5 / 9,    # 0.12 >= 1/9: |x| - 0.5 / 9 = 0.0644444, not 0.5 (3 * 0.12)^2 = 0.0648
        0.12 - 0.5 / 9,
        0.2 - 0.5 / 9,     # 0.1444444, not 0.18
        1 / 18,            # 1/9 - 0.5/9 = 0.5 * 9 / 81
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-14)
    np.testing.assert_allclose(grad, [0.9, -0.9, 1, -1, 1, 1], rtol=1e-14)  # 9 x inside, sign(x) outside


# --- OHEM ----------------------------------------------------------------------------------------------------------


def test_ohem_ties_keep_the_lower_index_among_many_equal_losses():
    """Among more than 16 equal losses (where NumPy's default, unstable sort reorders them) the lower indices are
    kept first."""
    run = np.r_[np.ones(24), 5.0]  # 24 equal losses, then the hardest at index 24
    kept = ohem_keep(run, np.arange(25), 5)
    np.testing.assert_array_equal(np.flatnonzero(kept != IGNORE), [0, 1, 2, 3, 24])  # 24, then ties 0, 1, 2, 3
    alternating = np.array([1.0, 0.5] * 12)  # 12 ties at 1.0 on the even indices, 12 at 0.5 on the odd
    kept = ohem_keep(alternating, np.ones(24, np.int64), 6)
    np.testing.assert_array_equal(np.flatnonzero(kept != IGNORE), [0, 2, 4, 6, 8, 10])


def _hand_outputs(monkeypatch, rpn_bbox):
    """Make the step's network give ``rpn_bbox`` (each anchor's four deltas, everywhere) and zeros for the other three
    outputs, and its backward pass hand back the outputs' gradients as they are."""
    A, hf, wf = TINY.num_anchors, 6, 7  # 2 anchors per cell, 12 x 14 image at stride 2: 84 anchors
    C, k = TINY.num_classes, TINY.group_size
    outputs = {"rpn_cls": np.zeros((1, 2 * A, hf, wf), np.float32),
               "rpn_bbox": np.full((1, 4 * A, hf, wf), rpn_bbox, np.float32),
               "seg": np.zeros((1, 2 * C * k * k, hf, wf), np.float32),
               "bbox": np.zeros((1, 8 * k * k, hf, wf), np.float32)}
    monkeypatch.setattr(step_module, "forward", lambda params, x, cfg: (outputs, None))
    monkeypatch.setattr(step_module, "backward", lambda grads, cache, cfg: grads)


def test_ohem_ranks_the_weighted_sum_of_the_roi_losses(monkeypatch):
    """OHEM keeps the ROIs of highest 1 * cls + 10 * seg + 1 * box (box on foreground ROIs), where the unweighted sum
    would keep others; the kept ROIs' losses are averaged over them."""
    _hand_outputs(monkeypatch, 0.0)
    # five ROIs (3 proposals, then the 2 ground-truth boxes, foreground by construction); box losses only on those
    head = {"softmax_cross_entropy": np.float32([2.5, 0.1, 0.2, 0.0, 0.4]),
            "mask_loss": np.float32([0.0, 0.3, 0.1, 0.0, 0.19]),
            "smooth_l1": np.float32([[0] * 4, [0] * 4, [0] * 4, [0.5] * 4, [0.025] * 4])}
    for name, values in head.items():
        original = getattr(step_module, name)

        def hand(*args, _original=original, _values=values, **kwargs):
            loss, grad = _original(*args, **kwargs)
            return (_values, grad) if len(loss) == 5 else (loss, grad)  # the RPN's calls have 84 rows

        monkeypatch.setattr(step_module, name, hand)
    step = training_step({}, two_object_scene(), TINY, LossConfig(rpn_batch=16, ohem_rois=2),
                         rng=np.random.default_rng(0), inference=inference_config(TINY, post_nms_top_n=3))
    assert len(step.rois) == 5 and (step.roi_labels[3:] > 0).all()
    # weighted:   2.5, 0.1 + 3 = 3.1, 0.2 + 1 = 1.2, 2.0, 0.4 + 1.9 + 0.1 = 2.4 -> keeps 1 and 0
    # unweighted: 2.5, 0.4,           0.3,           2.0, 0.69               -> would keep 0 and 3
    np.testing.assert_allclose(step.roi_losses, [2.5, 3.1, 1.2, 2.0, 2.4], rtol=1e-6)
    np.testing.assert_array_equal(step.kept, [True, True, False, False, False])
    assert step.losses["cls"] == pytest.approx((2.5 + 0.1) / 2, rel=1e-6)  # 1.3
    assert step.losses["seg"] == pytest.approx(10 * (0.0 + 0.3) / 2, rel=1e-6)  # 1.5
    assert step.losses["box"] == 0


# --- the RPN box loss's normaliser -----------------------------------------------------------------------------


def test_rpn_box_loss_is_divided_by_the_anchor_batch(monkeypatch):
    """The RPN box loss and its gradient are the positive anchors' smooth L1 (sigma 3) divided by rpn_batch (16
    here), neither by the 5 sampled anchors nor by the 2 positive ones."""
    _hand_outputs(monkeypatch, 1.0)  # every anchor predicts (1, 1, 1, 1)
    labels = np.full(84, IGNORE, np.int64)
    labels[[0, 1]] = 1  # anchors 0 and 1: cell (0, 0), anchors a = 0 and a = 1
    labels[[2, 3, 4]] = 0
    deltas = np.zeros((84, 4), np.float32)
    deltas[1] = [1, 1, 1, 0.9]
    deltas[2] = [5, 5, 5, 5]  # a negative anchor's deltas take no part
    monkeypatch.setattr(step_module, "anchor_targets", lambda *args, **kwargs: AnchorTargets(labels, deltas))
    step = training_step({}, two_object_scene(), TINY, LossConfig(rpn_batch=16, ohem_rois=4),
                         rng=np.random.default_rng(0), inference=inference_config(TINY, post_nms_top_n=12))
    # anchor 0: diff (1, 1, 1, 1), each >= 1/9: 1 - 0.5/9 = 17/18, four of them 34/9
    # anchor 1: diff (0, 0, 0, 0.1), 0.1 < 1/9: 0.5 * 9 * 0.01 = 0.045
    assert step.losses["rpn_box"] == pytest.approx((34 / 9 + 0.045) / 16, rel=1e-6)  # 0.23892361
    grad = step.grads["rpn_bbox"][0, :, 0, 0]  # channel a * 4 + coord of cell (0, 0)
    np.testing.assert_allclose(grad, [1 / 16] * 4 + [0, 0, 0, 9 * 0.1 / 16], rtol=1e-6, atol=1e-9)
    assert not step.grads["rpn_bbox"][0, :, 1:].any() and not step.grads["rpn_bbox"][0, :, 0, 1:].any()
    assert step.losses["rpn_cls"] == pytest.approx(np.log(2), rel=1e-6)  # 5 anchors of loss log 2, over 5


# --- the optimiser ---------------------------------------------------------------------------------------------


def test_sgd_step_hand_worked():
    """v = m v + g + wd w on weights, v = m v + g on biases and normalisation parameters, then w -= rate v, in
    place; dyadic values, so exact."""
    params = {"conv.weight": np.float32([1, -2]), "conv.bias": np.float32([0.5]),
              "conv.norm_scale": np.float32([1.0]), "conv.norm_shift": np.float32([-1.0])}
    grads = {"conv.weight": np.float32([0.5, 0.5]), "conv.bias": np.float32([0.5]),
             "conv.norm_scale": np.float32([0.25]), "conv.norm_shift": np.float32([0.0])}
    velocity = {name: np.ones_like(v) for name, v in params.items()}
    weight = params["conv.weight"]
    sgd_step(params, grads, velocity, 0.5, TrainConfig(momentum=0.75, weight_decay=0.25))
    # weight: v = 0.75 * 1 + 0.5 + 0.25 * (1, -2) = (1.5, 0.75); w = (1 - 0.75, -2 - 0.375) = (0.25, -2.375)
    np.testing.assert_array_equal(velocity["conv.weight"], [1.5, 0.75])
    np.testing.assert_array_equal(params["conv.weight"], [0.25, -2.375])
    assert params["conv.weight"] is weight  # in place
    # bias: v = 0.75 + 0.5 = 1.25, b = 0.5 - 0.625 = -0.125; scale: v = 0.75 + 0.25 = 1, s = 1 - 0.5 = 0.5;
    # shift: v = 0.75 + 0 = 0.75, s = -1 - 0.375 = -1.375 (decayed, v would be 1.375, 1.25 and 0.5)
    np.testing.assert_array_equal(velocity["conv.bias"], [1.25])
    np.testing.assert_array_equal(params["conv.bias"], [-0.125])
    np.testing.assert_array_equal(velocity["conv.norm_scale"], [1.0])
    np.testing.assert_array_equal(params["conv.norm_scale"], [0.5])
    np.testing.assert_array_equal(velocity["conv.norm_shift"], [0.75])
    np.testing.assert_array_equal(params["conv.norm_shift"], [-1.375])
