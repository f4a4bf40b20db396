"""The figures of notebook 05 (``fcis_twin.viz.regression``): what they draw, and the arguments they refuse."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from fcis_twin import viz


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_box_map_mosaic_tiles_the_parts_and_marks_each_cell():
    """k = 2 part maps: a 2 x 2 mosaic of the crop, three rectangles per tile, a colour bar."""
    fig = Figure()
    ax = fig.subplots()
    maps = np.arange(4 * 20 * 20, dtype=float).reshape(4, 20, 20) - 800
    viz.draw_box_map_mosaic(ax, maps, [8, 8, 24, 24], [10, 10, 26, 26], stride=2, label="dx")
    image = ax.images[0].get_array()
    assert image.shape == (2 * 13 + 1, 2 * 13 + 1)  # crop [2, 15) per tile (boxes [4, 13) + 1.8) and a gap
    assert len(ax.patches) == 3 * 4
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "dx"
    cyan = [p for p in ax.patches if p.get_edgecolor()[:3] == (0.0, 1.0, 1.0)]
    assert [p.get_width() for p in cyan] == [4.0] * 4  # half of the 8-pixel proposal in feature pixels


@pytest.mark.parametrize(("maps", "proposal", "stride", "name"), [
    (np.zeros((3, 10, 10)), [0, 0, 4, 4], 2, "part_maps"),
    (np.zeros((4, 10, 10)), [4, 0, 0, 4], 2, "proposal"),
    (np.zeros((4, 10, 10)), [0, 0, 4, 4], 0, "stride"),
])
def test_box_map_mosaic_refuses_bad_arguments(maps, proposal, stride, name):
    """A channel count that is not a square, an inverted box or a stride below 1."""
    with pytest.raises(ValueError, match=name):
        viz.draw_box_map_mosaic(Figure().subplots(), maps, proposal, [0, 0, 4, 4], stride)


def test_assembled_delta_draws_the_part_cell_borders_and_the_mean():
    """P = 7, k = 3: two horizontal and two vertical borders at the first bins of cells 1 and 2, the mean below."""
    ax = Figure().subplots()
    pooled = np.linspace(-1, 2, 49).reshape(7, 7)
    viz.draw_assembled_delta(ax, pooled, 3, label="dy")
    assert len(ax.lines) == 4
    assert sorted({line.get_xydata()[0, 1] for line in ax.lines[::2]}) == [2.5, 4.5]  # ceil(7/3), ceil(14/3)
    assert ax.get_xlabel() == f"mean = {pooled.mean():.3f}"
    np.testing.assert_allclose(ax.images[0].get_array(), pooled)
    with pytest.raises(ValueError, match="k"):
        viz.draw_assembled_delta(ax, pooled, 8)
    with pytest.raises(ValueError, match="pooled"):
        viz.draw_assembled_delta(ax, pooled[:3], 3)


def test_regression_draws_three_boxes_with_a_legend():
    """Proposal, regressed box and dashed truth, named in a legend, zoomed onto the three."""
    ax = Figure().subplots()
    viz.draw_regression(ax, np.zeros((60, 60, 3)), [10, 10, 20, 20], [12, 14, 22, 24], [12, 15, 22, 25], pad=5)
    assert len(ax.patches) == 3 and ax.patches[-1].get_linestyle() == "--"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["proposal", "regressed", "truth"]
    assert ax.get_xlim() == (4.5, 26.5)
    with pytest.raises(ValueError, match="regressed"):
        viz.draw_regression(ax, np.zeros((60, 60, 3)), [10, 10, 20, 20], [1, 2, 3], [12, 15, 22, 25])


def test_iou_before_after_counts_better_worse_and_unchanged():
    """Each box is drawn once, in the group the legend counts."""
    ax = Figure().subplots()
    viz.draw_iou_before_after(ax, [0.2, 0.5, 0.7, 0.9], [0.6, 0.5, 0.8, 0.4], title="oracle")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["better: 2", "worse: 1", "unchanged: 1"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 4
    assert ax.get_title() == "oracle" and ax.get_xlim() == (0, 1.02)


@pytest.mark.parametrize(("before", "after"), [([0.2, 0.5], [0.3]), ([0.2, 1.5], [0.3, 0.4])])
def test_iou_before_after_refuses_bad_arguments(before, after):
    """Lengths that differ and IoUs outside [0, 1] are ValueErrors naming the arguments."""
    with pytest.raises(ValueError, match="before and after"):
        viz.draw_iou_before_after(Figure().subplots(), before, after)


def test_pasted_prob_hides_the_zeros_and_outlines_the_truth():
    """The probability is drawn masked below 0.02, the truth as a contour, the box as a rectangle, a colour bar."""
    fig = Figure()
    ax = fig.subplots()
    prob = np.zeros((30, 40))
    prob[5:15, 5:15] = 0.9
    truth = prob > 0.5
    viz.draw_pasted_prob(ax, np.ones((30, 40, 3)), prob, truth, [5, 5, 15, 15], window=[5, 5, 15, 15])
    shown = ax.images[1].get_array()
    assert shown.mask.sum() == 30 * 40 - 100 and shown.max() == pytest.approx(0.9)
    assert len(ax.collections) == 1 and len(ax.patches) == 1 and len(fig.axes) == 2
    assert ax.get_xlim() == (-0.5, 29.5)
    with pytest.raises(ValueError, match="prob"):
        viz.draw_pasted_prob(ax, np.ones((30, 40, 3)), prob * 2, truth, [5, 5, 15, 15])
    with pytest.raises(ValueError, match="gt_mask"):
        viz.draw_pasted_prob(ax, np.ones((30, 40, 3)), prob, truth[:10], [5, 5, 15, 15])
