"""The figures of notebook 10: anchor and mask targets, OHEM's choice, loss curves, loss parts, detections."""

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fcis_twin import viz

IMAGE = np.zeros((32, 32, 3), np.uint8)
GT_BOXES = np.array([[4, 4, 14, 14], [18, 16, 30, 30]], np.float32)


def _ax():
    return Figure().subplots()


def _rectangles(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _step(losses, labels, kept, rois=None):
    n = len(losses)
    if rois is None:
        rois = np.tile(np.array([[0, 0, 8, 8]], np.float32), (n, 1))
    return SimpleNamespace(roi_losses=np.asarray(losses, float), roi_labels=np.asarray(labels),
                           kept=np.asarray(kept, bool), rois=np.asarray(rois, np.float32))


def _log(n=5):
    return [{"rpn_cls": 0.7 - 0.1 * t, "rpn_box": 0.01, "cls": 1.6, "seg": 1.0 + 0.1 * t, "box": 0.1,
             "kept": 128, "kept_foreground": 16 + 4 * t} for t in range(n)]


def test_anchor_targets_draw_one_box_per_positive_and_a_dot_per_negative():
    """Positives are rectangles in their instance's colour, negatives one line of centre dots."""
    anchors = np.array([[4, 4, 14, 14], [18, 16, 30, 30], [0, 0, 4, 4], [20, 0, 28, 8], [1, 1, 2, 2]], np.float32)
    labels = np.array([1, 1, 0, 0, -1])
    ax = viz.draw_anchor_targets(_ax(), IMAGE, np.zeros((2, 32, 32), bool), anchors, labels, GT_BOXES)
    rects = _rectangles(ax)
    assert len(rects) == 2
    np.testing.assert_allclose(rects[1].get_edgecolor()[:3], viz.PALETTE[1])
    (dots,) = ax.lines
    np.testing.assert_allclose(dots.get_xdata(), [1.5, 23.5])  # centres, drawn half a pixel up-left
    assert ax.get_title().startswith("2 positives")


def test_anchor_targets_reject_labels_of_another_length():
    """Labels that are not one per anchor are a ValueError naming anchor_labels."""
    with pytest.raises(ValueError, match="anchor_labels"):
        viz.draw_anchor_targets(_ax(), IMAGE, np.zeros((2, 32, 32), bool), GT_BOXES, [1], GT_BOXES)


def test_anchor_iou_histogram_counts_only_anchors_inside_the_image():
    """An anchor across the border is left out of the histogram; the positives are marked at their IoU."""
    anchors = np.array([[4, 4, 14, 14], [-2, 0, 8, 8], [18, 16, 30, 30]], np.float32)
    ax = viz.draw_anchor_iou_histogram(_ax(), anchors, [1, 0, 0], GT_BOXES, IMAGE.shape)
    assert sum(p.get_height() for p in _rectangles(ax) if p.get_width() < 0.1) == 2
    marks = [line for line in ax.lines if line.get_marker() == "v"]
    np.testing.assert_allclose(marks[0].get_xdata(), [1.0])
    assert ax.get_xlim() == (0, 1) and ax.get_yscale() == "log"


def test_mask_targets_plot_one_row_per_roi_with_its_coverage():
    """Three panels per ROI; the middle one shows the coverage, the last the target, titled with the IoU."""
    coverage = np.linspace(0, 1, 2 * 9).reshape(2, 3, 3)
    fig = viz.plot_mask_targets(IMAGE, np.zeros((2, 32, 32), bool), GT_BOXES, coverage, coverage >= 0.4, 0.4,
                                ious=[0.5, 1.0])
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert len(panels) == 6
    np.testing.assert_allclose(panels[4].images[0].get_array(), coverage[1])
    assert panels[3].get_title() == "ROI 12 x 14 px, IoU 1.00"
    assert panels[5].get_title() == "target: fraction >= 0.4"


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(coverages=np.zeros((1, 3, 3))), "coverages"),
    (dict(ious=[0.5]), "ious"),
    (dict(rois=np.zeros((0, 4))), "rois"),
])
def test_mask_targets_reject_mismatched_inputs(kwargs, match):
    """Per-ROI inputs of another count, or no ROI at all, are a ValueError naming the argument."""
    args = dict(image=IMAGE, masks=np.zeros((2, 32, 32), bool), rois=GT_BOXES, coverages=np.zeros((2, 3, 3)),
                targets=np.zeros((2, 3, 3), bool), threshold=0.4)
    with pytest.raises(ValueError, match=match):
        viz.plot_mask_targets(**{**args, **kwargs})


def test_ohem_ranking_places_each_roi_at_its_rank():
    """Rank 0 is the highest loss; each kind of ROI is one line in its colour; the cut is at batch_size - 0.5."""
    ax = viz.draw_ohem_ranking(_ax(), [0.1, 2.0, 0.5, 1.0], [1, 0, 0, 2], [False, True, True, True], 3)
    lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(lines) == {"foreground, kept", "background, kept", "foreground, dropped"}
    np.testing.assert_array_equal(lines["background, kept"].get_xdata(), [0, 2])
    np.testing.assert_array_equal(lines["foreground, dropped"].get_xdata(), [3])
    assert lines["foreground, kept"].get_color() == viz.ROI_COLORS["foreground, kept"]
    cut = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert cut[0].get_xdata()[0] == 2.5


@pytest.mark.parametrize(("batch_size", "error"), [(0, ValueError), (2.0, TypeError), (True, TypeError)])
def test_ohem_ranking_rejects_a_bad_batch_size(batch_size, error):
    """batch_size below 1 is a ValueError, a float or a bool a TypeError, each naming batch_size."""
    with pytest.raises(error, match="batch_size"):
        viz.draw_ohem_ranking(_ax(), [1.0], [0], [True], batch_size)


def test_ohem_ranking_rejects_arrays_of_different_lengths():
    """Per-ROI arrays of different lengths are a ValueError naming them."""
    with pytest.raises(ValueError, match="roi_losses, roi_labels and kept"):
        viz.draw_ohem_ranking(_ax(), [1.0, 2.0], [0], [True, False], 1)


def test_loss_against_iou_plots_each_roi_at_its_iou():
    """The x of every marker is its ROI's IoU; the foreground threshold is a vertical line."""
    ax = viz.draw_loss_against_iou(_ax(), [1.0, 2.0], [0, 1], [True, True], [0.3, 0.7], fg_iou=0.5)
    xs = sorted(x for line in ax.lines if line.get_linestyle() == "None" for x in line.get_xdata())
    assert xs == [0.3, 0.7]
    with pytest.raises(ValueError, match="best_iou"):
        viz.draw_loss_against_iou(_ax(), [1.0], [0], [True], [0.3, 0.7])


def test_ohem_choice_has_a_row_per_step_on_one_loss_scale():
    """Two steps give two rows of three panels; every loss panel shares the y limits that hold all losses."""
    steps = {"a": _step([1.0, 2.0], [0, 1], [True, False], GT_BOXES),
             "b": _step([0.001, 30.0], [0, 0], [True, True], GT_BOXES)}
    fig = viz.plot_ohem_choice(steps, IMAGE, GT_BOXES, 1)
    assert len(fig.axes) == 6
    limits = {fig.axes[i].get_ylim() for i in (0, 1, 3, 4)}
    assert len(limits) == 1
    low, high = limits.pop()
    assert low <= 0.001 and high >= 30.0
    assert fig.axes[5].get_title() == "2 kept background ROIs"
    assert len(_rectangles(fig.axes[5])) == 2
    with pytest.raises(ValueError, match="steps"):
        viz.plot_ohem_choice({}, IMAGE, GT_BOXES, 1)


def test_per_foreground_loss_undoes_the_average_over_kept_rois_and_the_weight():
    """value * kept / (weight * kept_foreground), NaN where no foreground ROI was kept."""
    log = [{"seg": 1.0, "kept": 128, "kept_foreground": 16}, {"seg": 0.0, "kept": 128, "kept_foreground": 0}]
    values = viz.per_foreground_loss(log, "seg", 10.0)
    assert values[0] == pytest.approx(0.8) and np.isnan(values[1])
    with pytest.raises(ValueError, match="kept_foreground"):
        viz.per_foreground_loss([{"seg": 1.0, "kept": 128}], "seg", 10.0)
    with pytest.raises(ValueError, match="weight"):
        viz.per_foreground_loss(log, "seg", 0.0)
    with pytest.raises(ValueError, match="log"):
        viz.per_foreground_loss([], "seg", 1.0)


def test_loss_curves_draw_the_head_losses_both_ways():
    """The mask panel holds the logged curve without its weight and the per-foreground curve, labelled so."""
    log = _log()
    fig = viz.plot_loss_curves(log, (1.0, 10.0, 1.0))
    assert len(fig.axes) == 4
    mask = fig.axes[1]
    logged, per_fg = mask.lines
    np.testing.assert_allclose(logged.get_ydata(), [r["seg"] / 10 for r in log])
    np.testing.assert_allclose(per_fg.get_ydata(), viz.per_foreground_loss(log, "seg", 10.0))
    assert "128 kept ROIs" in logged.get_label() and "foreground" in per_fg.get_label()
    assert "weight 10" in mask.get_title()
    np.testing.assert_array_equal(fig.axes[3].lines[0].get_ydata(), [r["kept_foreground"] for r in log])


@pytest.mark.parametrize(("log", "weights", "match"), [
    ([], (1, 10, 1), "log"),
    ([{"seg": 1.0}], (1, 10, 1), "log records"),
    (_log(), (1, 10), "loss_weights"),
])
def test_loss_curves_reject_a_bad_log(log, weights, match):
    """An empty log, records without the needed fields, or two weights are a ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        viz.plot_loss_curves(log, weights)


def test_loss_parts_draw_a_labelled_bar_per_network_and_part():
    """Two networks of three parts: two bar containers of three bars, each labelled with its value."""
    ax = viz.draw_loss_parts(_ax(), {"a": {"x": 1.0, "y": 0.5, "z": 0.25}, "b": {"x": 2.0, "y": 1.0, "z": 0.0}})
    assert len(ax.containers) == 2 and all(len(c) == 3 for c in ax.containers)
    assert [b.get_height() for b in ax.containers[1]] == [2.0, 1.0, 0.0]
    assert "0.25" in [t.get_text() for t in ax.texts]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]
    with pytest.raises(ValueError, match=r"parts\['b'\]"):
        viz.draw_loss_parts(_ax(), {"a": {"x": 1.0}, "b": {"y": 1.0}})


def test_top_detections_draw_at_most_top_with_captions_inside_the_image():
    """Only the ``top`` best are drawn; a box at the top edge gets its caption inside, below its edge."""
    det = SimpleNamespace(boxes=np.array([[2, 0, 12, 10], [16, 16, 30, 30], [0, 20, 5, 25]], np.float32),
                          masks=np.zeros((3, 32, 32), bool), labels=np.array([1, 2, 3]),
                          scores=np.array([0.9, 0.5, 0.1]))
    ax = viz.draw_top_detections(_ax(), IMAGE, det, ["bg", "circle", "square", "star"], top=2, title="t")
    assert len(_rectangles(ax)) == 2 and ax.get_title() == "t"
    captions = {t.get_text(): t for t in ax.texts}
    assert set(captions) == {"circle 0.90", "square 0.50"}
    assert captions["circle 0.90"].get_position()[1] > 0 and captions["circle 0.90"].get_va() == "top"
    assert captions["square 0.50"].get_va() == "bottom"
    with pytest.raises(ValueError, match="top"):
        viz.draw_top_detections(_ax(), IMAGE, det, ["bg"], top=0)


def _log(n=60):
    return [{"iteration": t, "rpn_cls": 0.5, "rpn_box": 0.1, "cls": 0.4, "seg": 2.0 + t / 30, "box": 0.2,
             "total": 3.0, "kept": 128, "kept_foreground": 16 + t // 3} for t in range(n)]


def test_loss_figure_draws_the_head_losses_per_kept_foreground_roi():
    """With the head's weights, a second panel holds seg and box per kept foreground ROI, unweighted."""
    log = _log()
    fig = viz.loss_figure(log, ("rpn_cls", "rpn_box", "cls", "seg", "box"), window=1,
                          head_weights={"cls": 1.0, "seg": 10.0, "box": 1.0})
    first, second = fig.axes[:2]
    assert len(first.lines) == 6 and len(second.lines) == 2
    seg = second.lines[0].get_ydata()
    np.testing.assert_allclose(seg, [r["seg"] * 128 / (10.0 * r["kept_foreground"]) for r in log])


def test_loss_figure_without_weights_or_counts_has_one_panel():
    """Without the head's weights, or for a log without kept_foreground, only the logged losses are drawn."""
    parts = ("rpn_cls", "rpn_box", "cls", "seg", "box")
    assert len(viz.loss_figure(_log(), parts).axes) == 1
    old = [{k: v for k, v in r.items() if k != "kept_foreground"} for r in _log()]
    assert len(viz.loss_figure(old, parts, head_weights={"seg": 10.0, "box": 1.0}).axes) == 1


def test_loss_figure_draws_the_pretraining_first():
    """With a pretraining log, a first panel holds its loss and the share of objects named right, per pretraining
    iteration; the FCIS panels follow."""
    pretrain_log = [{"iteration": t, "lr": 0.01, "loss": 1.6 - t / 100, "accuracy": t / 100} for t in range(80)]
    fig = viz.loss_figure(_log(), ("rpn_cls", "rpn_box", "cls", "seg", "box"), window=1,
                          head_weights={"cls": 1.0, "seg": 10.0, "box": 1.0}, pretrain_log=pretrain_log)
    first, second, third = fig.axes[:3]
    assert first.get_title() == "pretraining the backbone" and [line.get_label() for line in first.lines] == [
        "loss", "objects classified right"]
    np.testing.assert_allclose(first.lines[1].get_ydata(), [r["accuracy"] for r in pretrain_log])
    assert len(second.lines) == 6 and len(third.lines) == 2
    assert len(viz.loss_figure(_log(), ("cls",), pretrain_log=[]).axes) == 1
