"""The figures of notebook 04 (``fcis_twin.viz.joint``): what they draw, and the arguments they refuse."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from fcis_twin import viz
from fcis_twin.reference.joint import joint_forward

NAMES = ["background", "circle", "square"]


@pytest.fixture
def roi_maps():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2 * len(NAMES), 5, 5)).astype(np.float32)  # (2*C, P, P)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_inside_outside_draws_a_row_per_class_with_the_joint_values(roi_maps):
    """Rows are classes; the max and mask panels hold max(out, in) and sigmoid(in - out); labels hold the scores."""
    fig = Figure()
    axes = viz.plot_inside_outside(fig, roi_maps, [2, 0], NAMES, ["right", "wrong"])
    assert axes.shape == (2, 4)
    ref = joint_forward(roi_maps[None])
    outside, inside = roi_maps[4], roi_maps[5]
    np.testing.assert_allclose(axes[0, 0].images[0].get_array(), inside)
    np.testing.assert_allclose(axes[0, 2].images[0].get_array(), np.maximum(outside, inside))
    np.testing.assert_allclose(axes[0, 3].images[0].get_array(), ref.mask_prob[0, 2], rtol=1e-5)
    assert axes[0, 2].get_xlabel().endswith(f"{ref.cls_score[0, 2]:.2f}")
    assert axes[1, 3].get_xlabel().endswith(f"{ref.cls_prob[0, 0]:.3f}")
    assert axes[0, 0].get_title() == "'square' inside" and axes[1, 0].get_ylabel() == "wrong"
    assert len(fig.axes) == 8 + 2  # two colour bars


def test_inside_outside_annotates_every_bin_when_asked(roi_maps):
    """annotate=True writes one value per bin on each of the four panels."""
    axes = viz.plot_inside_outside(Figure(), roi_maps, [1], annotate=True)
    assert all(len(ax.texts) == 25 for ax in axes[0])
    assert axes[0, 0].get_title() == "'class 1' inside"


@pytest.mark.parametrize(("kwargs", "name"), [({"roi_maps": np.zeros((5, 3, 3))}, "roi_maps"),
                                              ({"classes": [3]}, "classes"),
                                              ({"class_names": ["a"]}, "class_names"),
                                              ({"row_labels": ["a", "b"]}, "row_labels")])
def test_inside_outside_refuses_bad_arguments(roi_maps, kwargs, name):
    """Odd channel counts, classes out of range and wrong name counts are ValueErrors naming the argument."""
    args = {"roi_maps": roi_maps, "classes": [1], **kwargs}
    with pytest.raises(ValueError, match=name):
        viz.plot_inside_outside(Figure(), **args)


def test_class_prob_bars_draw_one_bar_per_source_and_class():
    """Two sources over three classes: six bars with the probabilities as heights, a legend with both names."""
    ax = Figure().subplots()
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    viz.draw_class_prob_bars(ax, probs, NAMES, ["oracle", "model"], title="ROI 3")
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, probs.ravel())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oracle", "model"]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert ax.get_title() == "ROI 3"


@pytest.mark.parametrize(("probs", "labels", "name"), [([[0.5, 0.5]], None, "probs"),
                                                       ([[0.5, 0.6, -0.1]], None, "probs"),
                                                       ([[0.2, 0.3, 0.5]], ["a", "b"], "labels")])
def test_class_prob_bars_refuse_bad_arguments(probs, labels, name):
    """A class count that differs from the names, values outside [0, 1], or a label count that differs."""
    with pytest.raises(ValueError, match=name):
        viz.draw_class_prob_bars(Figure().subplots(), probs, NAMES, labels)


def test_rois_and_truth_draws_every_box_and_name_and_zooms():
    """Two ROIs and a dashed truth box are three rectangles; names are texts; pad zooms onto the boxes."""
    ax = Figure().subplots()
    image = np.zeros((50, 80, 3))
    viz.draw_rois_and_truth(ax, image, [[10, 10, 20, 20], [30, 5, 40, 25]], [12, 8, 22, 18], ["a", "b"], pad=2)
    assert len(ax.patches) == 3
    assert ax.patches[0].get_linestyle() == "--"
    assert [t.get_text() for t in ax.texts] == ["a", "b"]
    assert ax.get_xlim() == (7.5, 41.5)
    with pytest.raises(ValueError, match="names"):
        viz.draw_rois_and_truth(ax, image, [[10, 10, 20, 20]], names=["a", "b"])


def test_score_sweep_draws_objects_thin_and_their_mean_thick():
    """Per source: one thin line per object and one mean line, on an x axis that runs from IoU 1 down to 0."""
    ax = Figure().subplots()
    iou = np.linspace(1, 0, 5)
    values = np.arange(15, dtype=float).reshape(5, 3)
    viz.draw_score_sweep(ax, iou, {"oracle": values, "model": values[:, 0]}, "cls_score")
    assert len(ax.lines) == 3 + 1 + 1 + 1  # oracle's objects and mean, model's mean, the threshold line
    np.testing.assert_allclose(ax.lines[3].get_ydata(), values.mean(axis=1))
    assert ax.get_xlim() == (1.02, -0.02)
    assert ax.get_ylabel() == "cls_score"
    assert "oracle (mean)" in [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize(("iou", "curves", "error", "name"), [([1.5, 0.5], {"a": [1, 2]}, ValueError, "iou"),
                                                              ([1, 0.5], {"a": [1, 2, 3]}, ValueError, "curves"),
                                                              ([1, 0.5], [[1, 2]], TypeError, "curves")])
def test_score_sweep_refuses_bad_arguments(iou, curves, error, name):
    """IoU outside [0, 1], curves of another length and curves that are not a dict."""
    with pytest.raises(error, match=name):
        viz.draw_score_sweep(Figure().subplots(), iou, curves, "y")
