"""The drawing helpers that the demo and the notebooks share."""

import numpy as np
import pytest

from fcis_twin.viz import ERROR_COLORS, mask_errors


def test_mask_errors_colours_every_pixel_by_its_case():
    """Each of the four cases gets its colour, and the counts are those of the two error cases."""
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    truth = np.array([[1, 0, 1, 0], [1, 1, 0, 1]], bool)
    image, extra, missed = mask_errors(mask, truth)
    assert image.shape == (2, 4, 3) and (extra, missed) == (2, 2)
    expected = [["both", "extra", "missed", "neither"], ["both", "both", "extra", "missed"]]
    for y, row in enumerate(expected):
        for x, case in enumerate(row):
            np.testing.assert_array_equal(image[y, x], ERROR_COLORS[case], err_msg=f"pixel {(y, x)}")


@pytest.mark.parametrize(("mask", "truth", "match"), [
    (np.zeros((2, 2), bool), np.zeros((2, 3), bool), "same shape"),
    (np.zeros((2, 2, 1), bool), np.zeros((2, 2), bool), "mask must be 2-d"),
    (np.full((2, 2), 0.5), np.zeros((2, 2), bool), "mask must be a binary mask"),
])
def test_mask_errors_rejects_what_is_not_two_masks_of_one_shape(mask, truth, match):
    with pytest.raises(ValueError, match=match):
        mask_errors(mask, truth)


def test_zoom_to_box_pads_the_box_and_stays_inside_the_image():
    """The window is the box plus ``pad`` on each side, cut at the image border, in imshow's pixel-edge coordinates."""
    from matplotlib.figure import Figure

    from fcis_twin.viz import zoom_to_box

    ax = Figure().subplots()
    zoom_to_box(ax, (20, 10, 40, 30), (100, 200), pad=(5, 3))
    assert ax.get_xlim() == (14.5, 44.5) and ax.get_ylim() == (32.5, 6.5)
    zoom_to_box(ax, (-4, 90, 210, 99), (100, 200, 3), pad=8)
    assert ax.get_xlim() == (-0.5, 199.5) and ax.get_ylim() == (99.5, 81.5)


def test_a_box_of_zero_area_is_marked():
    """draw_boxes marks a box of zero width or height with a + at its corner, so that it does not vanish."""
    from matplotlib.figure import Figure

    from fcis_twin.viz import draw_boxes

    ax = Figure().subplots()
    draw_boxes(ax, [[0, 0, 4, 4], [2, 3, 2, 3], [1, 1, 1, 5]])
    assert len(ax.patches) == 3
    assert [tuple(line.get_xydata()[0]) for line in ax.lines] == [(1.5, 2.5), (0.5, 0.5)]


def test_draw_message_holds_only_the_text():
    """draw_message writes its text on a panel without axes."""
    from matplotlib.figure import Figure

    from fcis_twin.viz import draw_message

    ax = draw_message(Figure(), "nothing to draw")
    assert not ax.axison and [t.get_text() for t in ax.texts] == ["nothing to draw"]
