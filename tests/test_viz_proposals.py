"""The figures of notebook 01 (``fcis_twin.viz.proposals``): what each function draws, and what it refuses."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fcis_twin import viz
from fcis_twin.reference.anchors import anchor_base, shift_anchors

BASE = anchor_base(2, (0.5, 1, 2), (8, 16))  # (6, 4): 3 ratios x 2 scales


def _axes(n=1):
    return Figure().subplots(1, n) if n > 1 else Figure().subplots()


def _rectangles(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_every_public_name_is_exported():
    """Each function of the module is in its __all__ and importable from fcis_twin.viz."""
    from fcis_twin.viz import proposals

    for name in proposals.__all__:
        assert getattr(viz, name) is getattr(proposals, name)


def test_draw_base_anchors_draws_the_cell_and_every_anchor_and_zooms_onto_the_cell():
    """One filled cell of side stride at the origin, one outline per anchor, an inset around the cell."""
    ax = viz.draw_base_anchors(_axes(), BASE, 2, n_scales=2, ratios=(0.5, 1, 2))
    cell, *outlines = _rectangles(ax)
    assert cell.get_fill() and (cell.get_x(), cell.get_y(), cell.get_width(), cell.get_height()) == (0, 0, 2, 2)
    assert len(outlines) == len(BASE) and not any(r.get_fill() for r in outlines)
    assert [r.get_width() for r in outlines] == pytest.approx((BASE[:, 2] - BASE[:, 0]).tolist())
    assert len(ax.get_legend().get_texts()) == 3
    inset = ax.child_axes[0]
    assert inset.get_xlim() == (-4, 6) and "2 x 2" in inset.get_title()
    left, right = ax.get_xlim()
    assert left < BASE[:, 0].min() and right > BASE[:, 2].max()
    vertical = ax.collections[0].get_segments()  # the grid of feature cells, one line every stride
    assert np.diff([seg[0, 0] for seg in vertical]) == pytest.approx(2.0)


def test_draw_base_anchors_without_inset_has_no_child_axes():
    """inset=False draws no zoom."""
    ax = viz.draw_base_anchors(_axes(), BASE, 16, n_scales=2, inset=False)
    assert not ax.child_axes and ax.get_legend() is None


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(base=np.zeros((6, 3)), stride=2, n_scales=2), ValueError, "base"),
    (dict(base=BASE, stride=0, n_scales=2), ValueError, "stride"),
    (dict(base=BASE, stride="2", n_scales=2), TypeError, "stride"),
    (dict(base=BASE, stride=2, n_scales=4), ValueError, "n_scales"),
    (dict(base=BASE, stride=2, n_scales=2.0), TypeError, "n_scales"),
])
def test_draw_base_anchors_rejects_bad_arguments(kwargs, error, match):
    """A wrong shape, a non-positive or non-real stride, a n_scales that does not divide A."""
    with pytest.raises(error, match=match):
        viz.draw_base_anchors(_axes(), **kwargs)


def test_draw_anchor_centres_puts_one_dot_per_position_at_the_cell_centres():
    """Every step-th position gets one dot, at its anchors' centre minus imshow's half-pixel shift."""
    anchors = shift_anchors(BASE, (4, 6), 2)
    image = np.zeros((8, 12, 3))
    ax = viz.draw_anchor_centres(_axes(), image, anchors, (4, 6), 2, step=2)
    x, y = ax.lines[0].get_data()
    assert len(x) == 2 * 3
    assert sorted(set(x.tolist())) == [0.5, 4.5, 8.5] and sorted(set(y.tolist())) == [0.5, 4.5]
    np.testing.assert_array_equal(ax.images[0].get_array(), image)


def test_draw_anchor_centres_window_zooms_and_draws_cell_borders_on_pixel_edges():
    """A window sets the limits to its pixels; the cell borders lie on pixel edges, one every stride."""
    anchors = shift_anchors(BASE, (4, 6), 2)
    ax = viz.draw_anchor_centres(_axes(), np.zeros((8, 12, 3)), anchors, (4, 6), 2, window=(3, 1, 4))
    assert ax.get_xlim() == (2.5, 6.5) and ax.get_ylim() == (4.5, 0.5)
    pixels, _, cells, _ = ax.collections  # vertical and horizontal borders of pixels, then of cells
    assert [seg[0, 0] for seg in pixels.get_segments()] == [2.5, 3.5, 4.5, 5.5, 6.5]
    assert [seg[0, 0] for seg in cells.get_segments()] == [3.5, 5.5]


def test_draw_anchor_centres_rejects_a_bad_step_and_a_feature_shape_that_does_not_fit():
    """step must be an int >= 1; the anchors must be a multiple of the positions."""
    anchors = shift_anchors(BASE, (4, 6), 2)
    with pytest.raises(ValueError, match="step"):
        viz.draw_anchor_centres(_axes(), np.zeros((8, 12, 3)), anchors, (4, 6), 2, step=0)
    with pytest.raises(ValueError, match="feature_shape"):
        viz.draw_anchor_centres(_axes(), np.zeros((8, 12, 3)), anchors, (5, 7), 2)


def test_draw_anchors_at_draws_the_anchors_of_that_position():
    """A rectangles, each the base anchor shifted to the position, and one centre marker."""
    anchors = shift_anchors(BASE, (4, 6), 2)
    ax = viz.draw_anchors_at(_axes(), anchors, (4, 6), (1, 3), n_scales=2)
    rects = _rectangles(ax)
    assert len(rects) == len(BASE)
    expected = BASE + np.float32([6, 2, 6, 2])
    assert [r.get_x() + 0.5 for r in rects] == pytest.approx(expected[:, 0].tolist())
    assert rects[0].get_edgecolor()[:3] != rects[2].get_edgecolor()[:3]  # another ratio, another colour
    assert rects[1].get_linewidth() > rects[0].get_linewidth()  # a larger scale, a thicker line
    with pytest.raises(ValueError, match="position"):
        viz.draw_anchors_at(_axes(), anchors, (4, 6), (4, 0), n_scales=2)


def test_draw_objectness_spans_the_image_and_keeps_probabilities_on_zero_to_one():
    """The map covers Hf*s x Wf*s pixels, its colour limits are 0 and 1, the boxes and a colour bar are drawn."""
    prob = np.linspace(0, 0.5, 12).reshape(3, 4)
    ax = _axes()
    viz.draw_objectness(ax, prob, 4, boxes=[[0, 0, 8, 8]], title="max p_fg")
    im = ax.images[0]
    assert im.get_extent() == [-0.5, 15.5, 11.5, -0.5] and im.get_clim() == (0, 1)
    np.testing.assert_array_equal(im.get_array(), prob)
    assert len(ax.patches) == 1 and ax.get_title() == "max p_fg" and len(ax.figure.axes) == 2
    with pytest.raises(ValueError, match="prob"):
        viz.draw_objectness(_axes(), np.zeros((1, 3, 4)), 4)


def test_draw_decoded_box_draws_truth_anchor_and_box_and_stays_inside_the_image():
    """Three rectangles (truth, dashed anchor, decoded), an arrow between centres, limits inside the image."""
    ax = viz.draw_decoded_box(_axes(), np.zeros((40, 50, 3)), [10, 10, 20, 30], [14, 12, 26, 28],
                              truth=[15, 12, 25, 28], pad=20)
    truth, anchor, decoded = _rectangles(ax)
    assert anchor.get_linestyle() == "--" and decoded.get_width() == 12
    assert len(ax.texts) == 1  # the arrow
    assert ax.get_xlim() == (-0.5, 45.5) and ax.get_ylim() == (39.5, -0.5)
    with pytest.raises(ValueError, match="anchor"):
        viz.draw_decoded_box(_axes(), np.zeros((4, 4, 3)), [[0, 0, 1, 1], [0, 0, 2, 2]], [0, 0, 1, 1])


def test_draw_proposals_draws_the_best_box_last_in_its_score_colour():
    """Ground truth first (dashed), then the proposals from the worst to the best score, coloured by score."""
    from matplotlib import colormaps

    boxes = np.float32([[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 6, 6]])
    scores = np.float32([0.2, 0.9, 0.5])
    ax = _axes()
    viz.draw_proposals(ax, np.zeros((8, 8, 3)), boxes, scores, truth=[[0, 0, 8, 8]], title="p")
    truth, *drawn = _rectangles(ax)
    assert truth.get_linestyle() == "--" and len(drawn) == 3
    assert [r.get_x() + 0.5 for r in drawn] == [0, 2, 1]
    np.testing.assert_allclose(drawn[-1].get_edgecolor(), colormaps["viridis"](0.9))
    assert len(ax.figure.axes) == 2  # the colour bar
    with pytest.raises(ValueError, match="scores"):
        viz.draw_proposals(_axes(), np.zeros((8, 8, 3)), boxes, scores[:2])


def test_draw_step_counts_draws_one_labelled_bar_per_run_and_step():
    """Bars of the counts (zero drawn as a stub), one group per step, log axis, one legend entry per run."""
    ax = viz.draw_step_counts(_axes(), ["anchors", "NMS"], {"oracle": [100, 0], "model": [50, 20]})
    widths = [p.get_width() for p in ax.patches]
    assert widths == pytest.approx([100, 0.8, 50, 20])
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["100", "0", "50", "20"]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_yticklabels()] == ["anchors", "NMS"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oracle", "model"]
    with pytest.raises(ValueError, match=r"counts\['model'\]"):
        viz.draw_step_counts(_axes(), ["anchors", "NMS"], {"model": [1]})
    with pytest.raises(ValueError, match="counts"):
        viz.draw_step_counts(_axes(), ["anchors"], {})
