"""The figures of notebook 08 (``fcis_twin.viz.evaluation``): what each draws, and the arguments each refuses."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fcis_twin import viz


@pytest.fixture
def ax():
    """A fresh panel, closed after the test."""
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _masks():
    """Three 8 x 8 masks: two squares and a bar."""
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 1:4, 1:4] = True
    masks[1, 4:7, 4:7] = True
    masks[2, 0:2, 5:8] = True
    return masks


def test_draw_verdicts_fills_true_positives_and_outlines_false_ones(ax):
    """A filled layer per true positive, an outline per drawn mask, and the counts in the title."""
    image = np.full((8, 8, 3), 200, np.uint8)
    viz.draw_verdicts(ax, image, _masks(), [True, False, True], title="image 0")
    assert len(ax.images) == 1 + 2  # the faded image, then one green layer per true positive
    assert ax.get_title() == "image 0\n2 TP, 1 FP"
    red = viz.VERDICT_COLORS["false positive"]
    outlines = [c for c in ax.collections if c.get_edgecolor().size]
    assert len(outlines) == 3
    assert np.allclose(outlines[-1].get_edgecolor()[0, :3], red)  # the false positive, drawn last
    assert not ax.get_xticks().size and not ax.get_yticks().size


def test_draw_verdicts_leaves_out_detections_below_min_score(ax):
    """Only detections scoring at least ``min_score`` are drawn and counted."""
    viz.draw_verdicts(ax, np.zeros((8, 8, 3)), _masks(), [True, False, False], scores=[0.9, 0.5, 0.1],
                      min_score=0.5)
    assert ax.get_title() == "1 TP, 1 FP"
    assert len(ax.images) == 2


@pytest.mark.parametrize(("masks", "tp", "scores", "match"), [
    (np.zeros((2, 8, 7), bool), [True, False], None, "masks must be"),
    (np.zeros((2, 8, 8), bool), [True], None, "tp must have shape"),
    (np.zeros((2, 8, 8), bool), [True, False], [0.5], "scores must have shape"),
    (np.zeros((2, 8, 8), bool), [True, False], [0.5, np.nan], "scores must be finite"),
])
def test_draw_verdicts_rejects_arrays_that_do_not_fit(ax, masks, tp, scores, match):
    """Masks of another size than the image, or verdicts and scores of another length, are refused by name."""
    with pytest.raises(ValueError, match=match):
        viz.draw_verdicts(ax, np.zeros((8, 8, 3)), masks, tp, scores=scores)


def test_draw_precision_recall_reads_the_interpolated_precision_at_both_sets_of_levels(ax):
    """The 11 and 101 dots are the best precision at each level or beyond, 0 past the last recall."""
    recall = np.array([0.25, 0.5, 0.5, 0.75])
    precision = np.array([1.0, 1.0, 2 / 3, 0.75])
    viz.draw_precision_recall(ax, recall, precision, title="square")
    envelope, curve, coco, voc = ax.lines
    np.testing.assert_allclose(voc.get_xdata(), np.arange(0, 1.1, 0.1))
    expected = [1.0] * 6 + [0.75] * 2 + [0.0] * 3  # levels 0..0.5, 0.6..0.7, 0.8..1
    np.testing.assert_allclose(voc.get_ydata(), expected)
    assert len(coco.get_xdata()) == 101 and coco.get_ydata()[75] == 0.75 and coco.get_ydata()[76] == 0.0
    np.testing.assert_allclose(curve.get_ydata(), precision)
    assert envelope.get_xdata()[-1] == 1.0 and envelope.get_ydata()[-1] == 0.0  # nothing past recall 0.75
    assert ax.get_title() == "square" and ax.get_legend() is not None


def test_draw_precision_recall_ends_at_the_last_precision_when_recall_reaches_one(ax):
    """A curve that reaches recall 1 is not closed by a drop to 0; no predictions draw a flat 0."""
    viz.draw_precision_recall(ax, [0.5, 1.0], [1.0, 1.0], legend=False)
    envelope = ax.lines[0]
    assert envelope.get_ydata()[-1] == 1.0 and ax.get_legend() is None
    ax.clear()
    viz.draw_precision_recall(ax, [], [])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [0.0, 0.0])


@pytest.mark.parametrize(("recall", "precision", "match"), [
    ([0.5, 0.25], [1.0, 0.5], "recall must never decrease"),
    ([0.5, 1.5], [1.0, 0.5], r"recall must lie in \[0, 1\]"),
    ([0.5], [1.0, 0.5], "precision must have the shape of recall"),
    ([[0.5]], [[1.0]], "recall must be 1-d"),
])
def test_draw_precision_recall_rejects_what_is_not_a_curve(ax, recall, precision, match):
    """A decreasing recall, values outside [0, 1], arrays of two lengths or ranks are refused by name."""
    with pytest.raises(ValueError, match=match):
        viz.draw_precision_recall(ax, recall, precision)


def test_draw_ap_by_threshold_draws_the_curve_and_its_mean(ax):
    """One line through the APs, one dashed line at their mean, named in the legend."""
    thresholds = np.linspace(0.5, 0.95, 10)
    ap = np.linspace(1.0, 0.1, 10)
    viz.draw_ap_by_threshold(ax, thresholds, ap, label="oracle", color="tab:blue")
    curve, mean = ax.lines
    np.testing.assert_allclose(curve.get_ydata(), ap)
    np.testing.assert_allclose(mean.get_ydata(), [0.55, 0.55])
    assert mean.get_linestyle() == "--"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oracle: mean 0.550"]


def test_draw_ap_by_threshold_rejects_bad_arguments(ax):
    """APs of another length or outside [0, 1], and a label that is not a str, are refused by name."""
    with pytest.raises(ValueError, match="ap must have the shape of thresholds"):
        viz.draw_ap_by_threshold(ax, [0.5, 0.75], [0.9], label="x")
    with pytest.raises(ValueError, match=r"ap must lie in \[0, 1\]"):
        viz.draw_ap_by_threshold(ax, [0.5], [1.2], label="x")
    with pytest.raises(TypeError, match="label must be a str"):
        viz.draw_ap_by_threshold(ax, [0.5], [0.9], label=3)


def test_draw_pixel_counts_shares_one_scale_and_one_colour_bar():
    """Every panel shows its map on the same scale, titled, with one colour bar for the row."""
    fig, axes = plt.subplots(1, 2)
    counts = np.zeros((2, 4, 4))
    counts[0, 0, 0], counts[1, 3, 3] = 2, 5
    bar = viz.draw_pixel_counts(axes, counts, ["a", "b"], label="misses")
    for ax, values, title in zip(axes, counts, "ab", strict=True):
        (image,) = ax.images
        np.testing.assert_array_equal(image.get_array(), values)
        assert image.get_clim() == (0, 5) and ax.get_title() == title
    assert bar.ax.get_ylabel() == "misses" and len(fig.axes) == 3
    plt.close(fig)


@pytest.mark.parametrize(("counts", "titles", "match"), [
    (np.zeros((2, 4)), ["a", "b"], "counts must be"),
    (-np.ones((2, 4, 4)), ["a", "b"], "counts must be finite and >= 0"),
    (np.zeros((2, 4, 4)), ["a"], "axes and titles must hold one entry per map"),
])
def test_draw_pixel_counts_rejects_maps_that_do_not_fit(counts, titles, match):
    """Maps that are not (M, H, W) counts, or as many titles as maps, are refused."""
    fig, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match=match):
        viz.draw_pixel_counts(axes, counts, titles, label="x")
    plt.close(fig)
