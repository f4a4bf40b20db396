"""The figures of notebook 02 (``fcis_twin.viz.score_maps``): what each draws, on small inputs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fcis_twin import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _image(h=8, w=10):
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _masks(h=8, w=10):
    masks = np.zeros((2, h, w), bool)
    masks[0, 1:4, 2:6] = True
    masks[1, 3:7, 4:9] = True
    return masks


def test_gray_image_is_grey_and_within_its_levels():
    """Every pixel has three equal channels within [low, high]; black and white reach the two ends."""
    image = _image()
    image[0, 0], image[0, 1] = 0, 255
    gray = viz.gray_image(image, low=0.2, high=0.9)
    assert gray.shape == (8, 10, 3)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    assert gray.min() >= 0.2 and gray.max() <= 0.9
    np.testing.assert_allclose(gray[0, :2, 0], [0.2, 0.9])


def test_gray_image_rejects_what_is_not_rgb():
    with pytest.raises(ValueError, match="image must be"):
        viz.gray_image(np.zeros((4, 4)))


def test_draw_mask_fills_each_mask_in_its_colour_on_grey():
    """Mask pixels are the blend of grey and their colour, the others stay grey; the later mask is on top."""
    image, masks = _image(), _masks()
    ax = Figure().subplots()
    viz.draw_mask(ax, image, masks, [(1, 0, 0), (0, 0, 1)], alpha=1.0)
    shown = ax.images[0].get_array()
    gray = viz.gray_image(image)
    np.testing.assert_array_equal(shown[1, 2], [1, 0, 0])  # only mask 0
    np.testing.assert_array_equal(shown[3, 5], [0, 0, 1])  # both: mask 1 drawn last
    np.testing.assert_array_equal(shown[7, 0], gray[7, 0])  # neither
    assert ax.images[0].get_extent() == [0, 10, 8, 0]  # pixel j covers [j, j + 1)


def test_draw_mask_outlines_a_region_and_zooms():
    """The outline is one contour set; the window sets the limits, rows growing downwards."""
    ax = Figure().subplots()
    viz.draw_mask(ax, _image(), _masks(), outline=_masks()[1], window=(1, 9, 2, 7))
    assert len(ax.collections) == 1
    assert ax.get_xlim() == (1, 9) and ax.get_ylim() == (7, 2)


@pytest.mark.parametrize(("masks", "error", "match"), [
    (np.zeros((2, 8, 9), bool), ValueError, "masks must be"),
    (np.zeros((2, 8, 10), np.uint8), TypeError, "masks must be bool"),
])
def test_draw_mask_rejects_masks_that_do_not_fit(masks, error, match):
    with pytest.raises(error, match=match):
        viz.draw_mask(Figure().subplots(), _image(), masks)


def test_draw_named_boxes_writes_each_name_in_its_box_colour():
    """One rectangle and one caption per box, both in the box's colour."""
    ax = Figure().subplots()
    viz.draw_named_boxes(ax, [[1, 1, 5, 5], [2, 3, 8, 7]], ["A", "B"])
    assert [t.get_text() for t in ax.texts] == ["A", "B"]
    assert len(ax.patches) == 2
    np.testing.assert_allclose(ax.patches[1].get_edgecolor()[:3], viz.PALETTE[1])
    np.testing.assert_allclose(ax.texts[0].get_color(), viz.PALETTE[0])
    assert ax.patches[1].get_xy() == (2, 3) and ax.patches[1].get_width() == 6


def test_draw_named_boxes_needs_one_name_per_box():
    with pytest.raises(ValueError, match="names must"):
        viz.draw_named_boxes(Figure().subplots(), [[1, 1, 5, 5]], ["A", "B"])


def test_plot_named_instances_draws_the_image_and_the_masks_in_one_window():
    """Two panels, the image and the masks on grey, both named boxes in each, both zoomed alike."""
    fig = viz.plot_named_instances(_image(), _masks(), [[2, 1, 6, 4], [4, 3, 9, 7]], ["A", "B"],
                                   window=(1, 9, 0, 8))
    ax = fig.axes
    assert len(ax) == 2 and all(len(a.patches) == 2 for a in ax)
    np.testing.assert_array_equal(ax[0].images[0].get_array(), _image())
    assert ax[1].get_xlim() == ax[0].get_xlim() == (1, 9)


def _part_stack(k=3, h=6, w=7):
    """(k, k, h, w) maps whose value names the part: 10 * gh + gw."""
    return np.broadcast_to((10 * np.arange(k)[:, None] + np.arange(k))[:, :, None, None], (k, k, h, w)).copy()


def test_draw_part_mosaic_tiles_the_parts_and_frames_each_cell():
    """Tile (gh, gw) holds part (gh, gw)'s map; each tile gets the dashed box and its solid part cell."""
    ax = Figure().subplots()
    viz.draw_part_mosaic(ax, _part_stack(), (1, 1, 4, 4), (0, 5, 0, 6))
    mosaic = ax.images[0].get_array()
    assert mosaic.shape == (3 * 6 - 1, 3 * 7 - 1)  # 5 x 6 crops, one blank pixel between tiles
    assert mosaic[6, 14] == 12  # row 1, column 2
    assert len(ax.patches) == 2 * 9
    cell = ax.patches[2 * 4 + 1]  # tile (1, 1): its cell (1, 1) of the box, in that tile's coordinates
    assert cell.get_xy() == pytest.approx((7 + 1 + 1, 6 + 1 + 1)) and cell.get_width() == pytest.approx(1)
    assert len(ax.figure.axes) == 2  # the colour bar


@pytest.mark.parametrize(("maps", "crop", "match"), [
    (np.zeros((3, 2, 5, 5)), (0, 5, 0, 5), "maps must be"),
    (np.zeros((2, 2, 5, 5)), (0, 6, 0, 5), "crop must be"),
])
def test_draw_part_mosaic_rejects_bad_maps_and_crops(maps, crop, match):
    with pytest.raises(ValueError, match=match):
        viz.draw_part_mosaic(Figure().subplots(), maps, (0, 0, 2, 2), crop)


def test_plot_part_mosaics_puts_inside_left_and_outside_right():
    """The left mosaic is j = 1 (inside), the right j = 0 (outside), each with its colour bar."""
    maps = np.stack([_part_stack(2), _part_stack(2) + 100])  # outside, inside
    fig = viz.plot_part_mosaics(maps, (1, 1, 4, 4), (0, 6, 0, 7))
    left, right = (a for a in fig.axes if a.images and a.get_title())
    assert "inside" in left.get_title() and "outside" in right.get_title()
    assert np.nanmin(left.images[0].get_array()) == 100 and np.nanmin(right.images[0].get_array()) == 0
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="maps must be"):
        viz.plot_part_mosaics(maps[:1], (1, 1, 4, 4), (0, 6, 0, 7))


def test_draw_score_map_lays_the_map_over_its_image_pixels():
    """A feature pixel covers ``stride`` image pixels; boxes are drawn where they are; a colour bar comes with it."""
    ax = Figure().subplots()
    viz.draw_score_map(ax, np.arange(12.0).reshape(3, 4), 4, boxes=[[2, 2, 10, 6]], window=(0, 12, 0, 8))
    assert ax.images[0].get_extent() == [0, 16, 12, 0]
    assert ax.patches[0].get_xy() == (2, 2) and ax.patches[0].get_height() == 4
    assert ax.get_ylim() == (8, 0) and len(ax.figure.axes) == 2
    with pytest.raises(ValueError, match="stride"):
        viz.draw_score_map(ax, np.zeros((3, 4)), 0)
    with pytest.raises(ValueError, match="fmap"):
        viz.draw_score_map(ax, np.zeros(3), 2)


def test_plot_box_masks_draws_one_row_per_box_and_one_column_per_method():
    """Row i shows each method's mask i in box i's colour, with box i and the outlined overlap."""
    masks = _masks()
    columns = {"one map": masks, "part maps": masks[::-1]}
    fig = viz.plot_box_masks(_image(), columns, [[2, 1, 6, 4], [4, 3, 9, 7]], ["A", "B"], overlap=masks[0],
                             colors=[(1, 0, 0), (0, 0, 1)])
    ax = np.asarray(fig.axes).reshape(2, 2)
    assert ax[1, 0].get_title() == "one map\nmask in B's box"
    np.testing.assert_allclose(ax[1, 0].patches[0].get_edgecolor()[:3], (0, 0, 1))
    assert all(len(a.collections) == 1 for a in ax.flat)  # the overlap's outline
    shown = ax[0, 1].images[0].get_array()  # row A, column "part maps": mask 1 drawn in red
    assert shown[5, 7, 0] > shown[5, 7, 2]


@pytest.mark.parametrize(("columns", "names", "match"), [
    ({}, ["A", "B"], "columns must hold"),
    ({"x": np.zeros((1, 8, 10), bool)}, ["A", "B"], "columns\\['x'\\]"),
    ({"x": np.zeros((2, 8, 10), bool)}, ["A"], "names must"),
])
def test_plot_box_masks_rejects_masks_or_names_that_do_not_match_the_boxes(columns, names, match):
    with pytest.raises(ValueError, match=match):
        viz.plot_box_masks(_image(), columns, [[2, 1, 6, 4], [4, 3, 9, 7]], names, fig=Figure())


def test_plot_part_probabilities_shows_the_chosen_parts_on_one_scale():
    """One tile per chosen part and source, all on [0, 1], one colour bar; a tile shows its part's map."""
    probs7 = np.linspace(0, 1, 7 * 7 * 4 * 5).reshape(7, 7, 4, 5)
    probs3 = np.full((3, 3, 2, 3), 0.5)
    fig = viz.plot_part_probabilities([("oracle", probs7, 2, (0, 3, 6)), ("model", probs3, 4, range(3))],
                                      [[1, 1, 7, 7]], outline=np.ones((8, 10), bool))
    tiles = [a for a in fig.axes if a.images]
    assert len(tiles) == 18 and len(fig.axes) == 19  # and the colour bar
    assert all(a.images[0].get_clim() == (0, 1) for a in tiles)
    assert tiles[1].get_title() == "part (0, 3)"
    np.testing.assert_array_equal(tiles[1].images[0].get_array(), probs7[0, 3])
    assert tiles[9].images[0].get_extent() == [0, 12, 8, 0]  # the model's stride 4


@pytest.mark.parametrize(("sources", "match"), [
    ([], "sources must"),
    ([("x", np.zeros((2, 3, 4, 4)), 1, range(2))], "must be \\(k, k, Hf, Wf\\)"),
    ([("x", np.zeros((2, 2, 4, 4)), 1, (0, 2))], "parts of 'x'"),
])
def test_plot_part_probabilities_rejects_bad_sources(sources, match):
    with pytest.raises(ValueError, match=match):
        viz.plot_part_probabilities(sources, [[0, 0, 2, 2]], fig=Figure())
