"""The figures of notebook 07 (``fcis_twin.viz.voting``): what each function draws, and the arguments it refuses."""

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.figure import Figure

from fcis_twin.viz import (
    ERROR_COLORS,
    draw_iou_change,
    draw_mask_errors,
    draw_mask_grid,
    draw_pasted_mask,
    draw_vote_average,
    draw_voters,
)

H, W = 40, 60
IMAGE = np.full((H, W, 3), 0.5)
BOX = np.float32([10, 8, 30, 24])


def _axes():
    return Figure().subplots()


def _square(x1, y1, x2, y2):
    mask = np.zeros((H, W), bool)
    mask[y1:y2, x1:x2] = True
    return mask


def test_mask_grid_shows_the_grid_with_a_colour_bar():
    """The P x P values are the image, ticks at the first, middle and last cell, and a colour bar."""
    grid = np.linspace(0, 1, 49).reshape(7, 7)
    ax = draw_mask_grid(_axes(), grid, title="ROI 3")
    np.testing.assert_array_equal(ax.images[0].get_array(), grid)
    assert list(ax.get_xticks()) == [0, 3, 6] and ax.get_title() == "ROI 3"
    assert len(ax.figure.axes) == 2


def test_mask_grid_refuses_what_is_not_a_grid():
    with pytest.raises(ValueError, match="grid"):
        draw_mask_grid(_axes(), np.zeros((2, 3, 3)))


def test_pasted_mask_leaves_zeros_transparent_and_zooms_onto_the_box():
    """Probabilities: zeros masked out and a colour bar; binary: one colour, no bar; the view is the padded box."""
    values = np.zeros((H, W), np.float32)
    values[8:24, 10:30] = 0.7
    ax = draw_pasted_mask(_axes(), IMAGE, values, BOX, pad=2)
    shown = ax.images[1].get_array()
    assert shown.mask[0, 0] and not shown.mask[10, 12] and shown[10, 12] == pytest.approx(0.7)
    assert len(ax.figure.axes) == 2
    assert ax.get_xlim() == (7.5, 31.5) and ax.get_ylim() == (25.5, 5.5)
    binary = draw_pasted_mask(_axes(), IMAGE, values >= 0.4, BOX, truth=_square(12, 9, 28, 22))
    assert len(binary.figure.axes) == 1 and len(binary.images) == 2
    assert binary.collections  # the ground truth's outline
    assert len(binary.patches) == 1  # the box


@pytest.mark.parametrize(("mask", "box", "match"), [
    (np.zeros((H, W + 1)), BOX, "mask"),
    (np.zeros((H, W)), BOX[:3], "box"),
])
def test_pasted_mask_refuses_a_mask_of_another_size_and_a_box_that_is_not_one(mask, box, match):
    with pytest.raises(ValueError, match=match):
        draw_pasted_mask(_axes(), IMAGE, mask, box)


def test_voters_are_coloured_by_weight_and_the_detecting_roi_is_drawn_last_and_thick():
    """One rectangle per voter in the colour of its weight; the detecting ROI last, three points wide."""
    boxes = np.float32([[10, 8, 30, 24], [11, 9, 31, 25], [0, 0, 5, 5], [9, 7, 29, 23]])
    ax = draw_voters(_axes(), IMAGE, boxes, [0, 1, 3], [0.9, 0.2, 0.5], 1, title="oracle")
    plasma = colormaps["plasma"]
    assert [p.get_edgecolor() for p in ax.patches] == [plasma(0.9), plasma(0.5), plasma(0.2)]
    assert [p.get_linewidth() for p in ax.patches] == [1.2, 1.2, 3.0]
    assert len(ax.figure.axes) == 2 and ax.get_title() == "oracle"


@pytest.mark.parametrize(("weights", "detecting", "match"), [
    ([0.5], 0, "weights"),
    ([0.5, 0.5], 2, "detecting"),
])
def test_voters_refuse_weights_that_do_not_match_and_a_detecting_roi_that_does_not_vote(weights, detecting, match):
    with pytest.raises(ValueError, match=match):
        draw_voters(_axes(), IMAGE, np.float32([[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 6, 6]]), [0, 1], weights,
                    detecting)


def test_vote_average_draws_the_threshold_level_only_where_it_is_crossed():
    """The average is the image; its threshold is a contour when some pixels lie on each side, else nothing."""
    average = np.zeros((H, W))
    average[10:20, 15:25] = 0.8
    ax = draw_vote_average(_axes(), average, 0.4, BOX)
    np.testing.assert_array_equal(ax.images[0].get_array(), average)
    assert ax.collections and ax.get_title() == "M (line: 0.4)"
    flat = draw_vote_average(_axes(), np.full((H, W), 0.2), 0.4, BOX, title="M")
    assert not flat.collections and flat.get_title() == "M"


def test_mask_errors_colour_each_case_and_count_the_errors_in_the_title():
    """Both, extra, missed and neither get their colours; the title counts the extra and the missed pixels."""
    mask, truth = _square(10, 10, 20, 20), _square(12, 10, 22, 20)
    ax = draw_mask_errors(_axes(), mask, truth, BOX, title="before")
    image = ax.images[0].get_array()
    for (y, x), case in (((15, 15), "both"), ((15, 10), "extra"), ((15, 21), "missed"), ((0, 0), "neither")):
        np.testing.assert_array_equal(image[y, x], ERROR_COLORS[case], err_msg=case)
    assert ax.get_title() == "before\n20 px extra, 20 missed"


def test_mask_errors_refuse_masks_of_two_shapes():
    with pytest.raises(ValueError, match="same shape"):
        draw_mask_errors(_axes(), np.zeros((H, W), bool), np.zeros((H, W - 1), bool), BOX)


def test_iou_change_scatters_each_source_against_the_diagonal():
    """One point set per source at (before, after), named with its count; equal axes ending at 1."""
    ious = {"oracle": ([0.9, 0.95], [0.93, 0.94]), "model": ([0.2, 0.6, 0.8], [0.7, 0.65, 0.85])}
    ax = draw_iou_change(_axes(), ious)
    assert len(ax.collections) == 2
    np.testing.assert_array_equal(ax.collections[1].get_offsets(), [[0.2, 0.7], [0.6, 0.65], [0.8, 0.85]])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oracle (2)", "model (3)"]
    assert ax.get_xlim() == ax.get_ylim() and ax.get_xlim()[1] == pytest.approx(1.005)
    assert ax.get_xlim()[0] == pytest.approx(0.18)
    assert not np.allclose(ax.collections[0].get_facecolor(), ax.collections[1].get_facecolor())


@pytest.mark.parametrize(("ious", "match"), [({}, "ious"), ({"a": ([0.5], [0.5, 0.6])}, "ious")])
def test_iou_change_refuses_no_source_and_iou_lists_of_two_lengths(ious, match):
    with pytest.raises(ValueError, match=match):
        draw_iou_change(_axes(), ious)
