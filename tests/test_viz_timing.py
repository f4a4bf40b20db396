"""The figures of notebook 09 (``fcis_twin.viz.timing``): what each draws, and the arguments each refuses."""

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from fcis_twin.viz import draw_thread_indices, draw_ulp_difference, plot_first_calls, plot_speedups


def _ax():
    return Figure(figsize=(4, 3)).subplots()


def test_thread_indices_are_drawn_as_given_with_the_corners_written():
    """One image holding the indices, a colour bar beside it, and the four corner indices as text."""
    indices = 100 + np.arange(12).reshape(3, 4)
    ax = draw_thread_indices(_ax(), indices)
    assert len(ax.images) == 1
    np.testing.assert_array_equal(ax.images[0].get_array(), indices)
    assert len(ax.figure.axes) == 2  # the panel and its colour bar
    assert sorted(t.get_text() for t in ax.texts) == ["100", "103", "108", "111"]
    assert ax.get_title() == "thread index"


@pytest.mark.parametrize(("indices", "match"), [
    (np.zeros((2, 2)), "indices must hold integers"),
    (np.arange(4), "indices must be a non-empty 2-d array"),
    (np.zeros((0, 3), int), "indices must be a non-empty 2-d array"),
])
def test_thread_indices_refuse_what_is_not_a_grid_of_integers(indices, match):
    """Floats, a vector and an empty grid are a ValueError naming ``indices``."""
    with pytest.raises(ValueError, match=match):
        draw_thread_indices(_ax(), indices)


def test_ulp_difference_counts_float32_steps_per_element():
    """Equal bits give 0, the next float32 up 1, three steps down 3; the title counts the differing elements."""
    want = np.array([[1.0, 2.0], [0.5, 3.0]], np.float32)
    got = want.copy()
    got[0, 1] = np.nextafter(want[0, 1], np.float32(np.inf))
    got[1, 0] = want[1, 0]
    for _ in range(3):
        got[1, 0] = np.nextafter(got[1, 0], np.float32(-np.inf))
    ax = draw_ulp_difference(_ax(), got, want)
    np.testing.assert_array_equal(ax.images[0].get_array(), [[0, 1], [3, 0]])
    assert ax.get_title() == "2 of 4 differ, 3 ulp at most"
    assert len(ax.figure.axes) == 2


def test_ulp_difference_of_equal_maps_says_none_differ():
    """Identical maps draw an image of zeros and say that none of their elements differ."""
    want = np.linspace(0.1, 1, 6, dtype=np.float32).reshape(2, 3)
    ax = draw_ulp_difference(_ax(), want, want, title="same")
    assert not ax.images[0].get_array().any() and ax.get_title() == "same"


@pytest.mark.parametrize(("got", "want", "match"), [
    (np.zeros((2, 2)), np.zeros((2, 3)), "got and want must have the same shape"),
    (np.zeros(4), np.zeros(4), "got must be a non-empty 2-d array"),
    (np.zeros((2, 2)), np.zeros((2, 2, 1)), "want must be a non-empty 2-d array"),
])
def test_ulp_difference_refuses_maps_that_do_not_match(got, want, match):
    """Maps of other shapes than one shared ``(H, W)`` are a ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        draw_ulp_difference(_ax(), got, want)


def test_first_calls_join_each_first_call_to_its_later_median():
    """One vertical segment per implementation and stage, from the later median to the first call, on a log axis."""
    first = np.array([[2.0, 3.0, 4.0], [0.5, 0.05, 0.2]])
    later = np.array([[1.0, 2.0, 3.0], [0.001, 0.002, 0.003]])
    ax = plot_first_calls(_ax(), ["a", "b", "c"], first, later, ["reference", "numba-cpu"])
    segments = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(segments) == 2
    for collection, f, m in zip(segments, first, later, strict=True):
        ends = np.array([sorted(s[:, 1]) for s in collection.get_segments()])
        np.testing.assert_allclose(ends, np.c_[m, f])
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["reference", "numba-cpu"]


@pytest.mark.parametrize(("first", "later", "labels", "match"), [
    ([1.0, 2.0], [1.0, 2.0], None, r"first_s must have shape \(S,\) or \(B, S\) with S = 3"),
    ([1.0, 2.0, 3.0], [[1.0, 2.0, 3.0]] * 2, None, "first_s and later_s must have the same shape"),
    ([1.0, 0.0, 3.0], [1.0, 2.0, 3.0], None, "positive, finite seconds"),
    ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], ["a", "b"], "labels must hold 1 names"),
])
def test_first_calls_refuse_bad_times_and_labels(first, later, labels, match):
    """A wrong shape, a time that is not positive or the wrong number of labels is a ValueError."""
    with pytest.raises(ValueError, match=match):
        plot_first_calls(_ax(), ["a", "b", "c"], first, later, labels)


def test_speedups_draw_one_labelled_bar_per_ratio_and_the_line_at_one():
    """Bar heights are the ratios (a NaN one drawn empty, unlabelled), labelled x<ratio>, above a dashed line at 1."""
    ax = plot_speedups(_ax(), ["nms", "paste", "voting"], [[12.3, 1.5, np.nan]], ["numba-cpu"])
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [12.3, 1.5, 0.0])
    assert [t.get_text() for t in ax.texts] == ["x12", "x1.5", ""]
    assert any(list(line.get_ydata()) == [1, 1] for line in ax.lines)
    assert ax.get_yscale() == "log" and ax.get_title() == "speed-up over the reference"


@pytest.mark.parametrize(("ratios", "labels", "match"), [
    ([[2.0, -1.0]], None, "positive, finite ratios"),
    ([[2.0, np.inf]], None, "positive, finite ratios"),
    ([[2.0, 3.0, 4.0]], None, r"speedups must have shape \(S,\) or \(B, S\) with S = 2"),
    ([[2.0, 3.0], [4.0, 5.0]], ["cupy"], "labels must hold 2 names"),
])
def test_speedups_refuse_bad_ratios_and_labels(ratios, labels, match):
    """A ratio that is not positive, a wrong shape or the wrong number of labels is a ValueError."""
    with pytest.raises(ValueError, match=match):
        plot_speedups(_ax(), ["nms", "paste"], ratios, labels)
