"""The figures of notebook 03 (``fcis_twin.viz.assembly``): what each draws, on small inputs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fcis_twin import viz  # noqa: E402
from fcis_twin.reference.assemble import ps_assemble, roi_bins  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _tiny(k=3, side=6):
    """``(k*k, side, side)`` maps: channel m holds 100 m + (side * y + x)."""
    pixel = np.arange(side * side, dtype=np.float32).reshape(side, side)
    return 100 * np.arange(k * k, dtype=np.float32)[:, None, None] + pixel


def test_roi_on_features_rounds_half_away_then_scales():
    """Each coordinate is rounded half away from zero, then multiplied by the scale."""
    assert viz.roi_on_features((10.5, 3, 41, 20.4), 0.5) == (5.5, 1.5, 20.5, 10.0)
    assert viz.roi_on_features((-0.5, 0, 2.5, 1), 1.0) == (-1.0, 0.0, 3.0, 1.0)
    with pytest.raises(ValueError, match="box must be"):
        viz.roi_on_features((1, 2, 3), 1.0)


def test_draw_bins_draws_every_bin_edge_and_every_part_cell_edge():
    """P + 1 bin edges and k + 1 cell edges per axis, from the ROI's start to its end on the feature map."""
    ax = Figure().subplots()
    viz.draw_bins(ax, (4, 2, 16, 14), 2, 4, 0.5)  # feature map: (2, 1) to (8, 7)
    assert len(ax.lines) == 2 * (4 + 1) + 2 * (2 + 1)
    first_bin, last_cell = ax.lines[0].get_xydata(), ax.lines[-2].get_xydata()
    np.testing.assert_allclose(first_bin, [[2, 1], [2, 7]])
    np.testing.assert_allclose(last_cell, [[8, 1], [8, 7]])
    assert ax.lines[-1].get_color() == viz.assembly.CELL_COLOR and ax.lines[0].get_color() == viz.assembly.BIN_COLOR


@pytest.mark.parametrize(("k", "P", "error"), [(0, 4, ValueError), (2, 2.0, TypeError), (True, 4, TypeError)])
def test_draw_bins_rejects_a_bad_grid(k, P, error):
    with pytest.raises(error, match="k must|P must"):
        viz.draw_bins(Figure().subplots(), (0, 0, 4, 4), k, P, 1.0)


def test_plot_channels_read_writes_every_bin_and_frames_every_part():
    """The mosaic frames one block per map; each output panel writes its P x P values on one shared scale."""
    maps = _tiny()
    outputs = {P: ps_assemble(maps[None], np.array([[0, 0, 0, 6, 6]], np.float32), group_size=3, output_size=P,
                              spatial_scale=1)[0, 0] for P in (3, 6)}
    fig = viz.plot_channels_read(maps, outputs)
    mosaic, p3, p6, bar = fig.axes
    assert len(mosaic.patches) == 9 and [t.get_text() for t in mosaic.texts] == [str(m) for m in range(9)]
    assert [t.get_text() for t in p3.texts][4] == "417.5"  # channel 4, block rows 2-3, columns 2-3
    assert len(p6.texts) == 36 and p6.get_title() == "assembled, P = 6"
    assert p3.images[0].get_clim() == mosaic.images[0].get_clim() == (0, maps.max())
    assert bar.get_ylabel() == "value"


@pytest.mark.parametrize(("maps", "outputs", "match"), [
    (np.zeros((8, 6, 6)), {3: np.zeros((3, 3))}, "maps must be"),
    (np.zeros((9, 5, 6)), {3: np.zeros((3, 3))}, "sides that k = 3 divides"),
    (np.zeros((9, 6, 6)), {}, "outputs must"),
    (np.zeros((9, 6, 6)), {3: np.zeros((3, 2))}, "outputs\\[3\\] must be a square"),
])
def test_plot_channels_read_rejects_what_is_not_a_part_grid(maps, outputs, match):
    with pytest.raises(ValueError, match=match):
        viz.plot_channels_read(maps, outputs, fig=Figure())


def test_plot_roi_bins_shades_the_pixels_of_two_neighbouring_bins():
    """The close-up shades two bins' windows exactly as roi_bins gives them; the image panel frames the ROI."""
    image = np.zeros((40, 60, 3), np.uint8)
    box = np.array([6, 4, 46, 34], np.float32)
    fmap = np.arange(20 * 30, dtype=float).reshape(20, 30)
    fig = viz.plot_roi_bins(image, box, fmap, 3, 9, 0.5, cell=(1, 2))
    picture, features, close, _ = fig.axes
    assert picture.patches[0].get_xy() == (6, 4) and picture.patches[0].get_width() == 40
    hs, he, ws, we = roi_bins(*box, 20, 30, 9, 0.5)
    ph, pw = 4, 7  # the middle bin of part cell (1, 2), and its right neighbour
    shaded = [(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in close.patches]
    assert shaded == [(ws[pw], hs[ph], we[pw] - ws[pw], he[ph] - hs[ph]),
                      (ws[pw + 1], hs[ph], we[pw + 1] - ws[pw + 1], he[ph] - hs[ph])]
    assert len(features.lines) == 2 * 10 + 2 * 4
    assert "(1, 2)" in close.get_title()


def test_plot_roi_bins_rejects_a_cell_outside_the_grid():
    with pytest.raises(ValueError, match="cell must"):
        viz.plot_roi_bins(np.zeros((8, 8, 3)), (0, 0, 8, 8), np.zeros((4, 4)), 3, 9, 0.5, cell=(3, 0), fig=Figure())
    with pytest.raises(ValueError, match="fmap must"):
        viz.plot_roi_bins(np.zeros((8, 8, 3)), (0, 0, 8, 8), np.zeros(4), 3, 9, 0.5, fig=Figure())


def test_plot_assembled_maps_gives_every_panel_its_colour_bar():
    """Rows of inside, outside and mask probability, one colour bar per panel; the truth outlined on the masks."""
    rng = np.random.default_rng(0)
    rows = {"oracle": (rng.normal(size=(21, 21)), rng.normal(size=(21, 21)), rng.uniform(size=(21, 21))),
            "model": (rng.normal(size=(21, 21)) * 10, rng.normal(size=(21, 21)), rng.uniform(size=(21, 21)))}
    truth = np.zeros((40, 50), bool)
    truth[10:30, 10:40] = True
    fig = viz.plot_assembled_maps(rows, truth=truth)
    panels = [a for a in fig.axes if a.get_title()]
    assert len(panels) == 6 and len(fig.axes) == 12
    assert [a.get_title() for a in panels[3:]] == ["model: inside", "model: outside", "model: mask probability"]
    assert panels[2].images[0].get_clim() == (0, 1) and len(panels[2].collections) == 1
    assert panels[0].images[0].get_clim() != panels[3].images[0].get_clim()  # each panel its own scale


def test_plot_assembled_maps_rejects_rows_that_are_not_three_maps():
    with pytest.raises(ValueError, match="rows must hold"):
        viz.plot_assembled_maps({}, fig=Figure())
    with pytest.raises(ValueError, match="must be \\(inside, outside, prob\\)"):
        viz.plot_assembled_maps({"x": (np.zeros((3, 3)),) * 2}, fig=Figure())


def test_plot_p_against_k_shares_one_scale_per_row():
    """The inside maps share one colour scale (their joint range), the probabilities [0, 1]: two colour bars."""
    inside = {3: np.full((3, 3), -1.0), 9: np.linspace(0, 5, 81).reshape(9, 9)}
    prob = {3: np.zeros((3, 3)), 9: np.ones((9, 9))}
    fig = viz.plot_p_against_k(inside, prob, 3)
    panels = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in panels] == ["inside, P = 3", "inside, P = 9", "mask probability, P = 3",
                                               "mask probability, P = 9"]
    assert panels[0].images[0].get_clim() == panels[1].images[0].get_clim() == (-1, 5)
    assert panels[2].images[0].get_clim() == (0, 1)
    assert len(fig.axes) == 6 and len(panels[1].lines) == 2 * 2  # the inner part-cell edges
    with pytest.raises(ValueError, match="same P keys"):
        viz.plot_p_against_k(inside, {3: prob[3]}, 3, fig=Figure())
