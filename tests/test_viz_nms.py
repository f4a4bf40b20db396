"""The figures of notebook 06 (``fcis_twin.viz.nms``): what each function draws, and the arguments it refuses."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from fcis_twin.viz import (
    PALETTE,
    draw_boxes_on_image,
    draw_iou_matrix,
    draw_scored_boxes,
    draw_suppression_bits,
    draw_survivor_counts,
    plot_nms_steps,
)

#: The nine boxes of the notebook: a best box with two duplicates, a chain, a tie.
BOXES = np.float32([[10, 10, 40, 40], [13, 12, 43, 42], [5, 5, 35, 38], [50, 10, 74, 34], [54, 12, 78, 36],
                    [60, 14, 84, 38], [20, 50, 50, 66], [22, 48, 52, 68], [30, 50, 60, 66]])
SCORES = np.float32([0.95, 0.80, 0.60, 0.90, 0.70, 0.65, 0.85, 0.85, 0.50])
STEPS = [(0, [1, 2]), (3, [4]), (6, [7]), (5, []), (8, [])]


def _axes(figsize=(6, 4.2)):
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig.subplots()


def test_scored_boxes_draws_one_box_and_one_caption_per_box_without_overlaps():
    """Each box gets its rectangle and its ``index: score`` caption in its colour; no two captions overlap."""
    ax = draw_scored_boxes(_axes(), BOXES, SCORES)
    assert len(ax.patches) == len(BOXES)
    assert [t.get_text() for t in ax.texts] == [f"{i}: {s:.2f}" for i, s in enumerate(SCORES)]
    for i, (patch, text) in enumerate(zip(ax.patches, ax.texts, strict=True)):
        assert patch.get_edgecolor() == to_rgba(PALETTE[i % len(PALETTE)]) == to_rgba(text.get_color())
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # y grows downwards, as in an image
    renderer = ax.figure.canvas.get_renderer()
    extents = [t.get_window_extent(renderer) for t in ax.texts]
    for i in range(len(extents)):
        for j in range(i):
            assert not extents[i].overlaps(extents[j]), f"captions {j} and {i} overlap"


def test_scored_boxes_refuses_scores_of_another_length():
    with pytest.raises(ValueError, match="scores"):
        draw_scored_boxes(_axes(), BOXES, SCORES[:3])


def test_iou_matrix_frames_exactly_the_pairs_above_the_threshold():
    """One red frame per off-diagonal IoU above the threshold, one number per overlapping pair."""
    a = BOXES[:, None]
    b = BOXES[None]
    inter = (np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
             * np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None))
    area = (BOXES[:, 2] - BOXES[:, 0]) * (BOXES[:, 3] - BOXES[:, 1])
    iou = inter / (area[:, None] + area[None] - inter)
    ax = draw_iou_matrix(_axes(), iou, 0.5)
    off = ~np.eye(len(iou), dtype=bool)
    assert len(ax.patches) == np.sum((iou > 0.5) & off)
    assert len(ax.texts) == np.sum((iou > 0) & off)
    np.testing.assert_array_equal(ax.images[0].get_array(), iou)
    assert len(ax.figure.axes) == 2  # the matrix and its colour bar


def test_iou_matrix_refuses_a_matrix_that_is_not_square():
    with pytest.raises(ValueError, match="iou"):
        draw_iou_matrix(_axes(), np.zeros((2, 3)), 0.5)


def test_nms_steps_draw_one_panel_per_step_and_the_kept_boxes_last():
    """A panel per step, titled with what it keeps and suppresses, then the result with the kept boxes alone."""
    fig = Figure(figsize=(10, 6))
    axes = plot_nms_steps(fig, BOXES, STEPS)
    assert len(axes) == len(STEPS) + 1
    assert axes[0].get_title() == "step 1: keep 0, suppress [1, 2]"
    assert axes[3].get_title() == "step 4: keep 5, suppress nothing"
    assert axes[-1].get_title() == "result: keep [0, 3, 6, 5, 8]"
    current = [p for p in axes[0].patches if p.get_linewidth() == 3.0]
    assert len(current) == 1 and current[0].get_edgecolor() == to_rgba("tab:blue")
    dashed = [p for p in axes[0].patches if p.get_linestyle() == "--"]
    assert len(dashed) == 2  # boxes 1 and 2, suppressed by box 0
    assert len(axes[-1].patches) == len(STEPS)


@pytest.mark.parametrize(("steps", "ncols", "match"), [
    ([(0, [9])], 3, "steps"),
    ([(0, [1])], 0, "ncols"),
])
def test_nms_steps_refuse_boxes_that_do_not_exist_and_no_columns(steps, ncols, match):
    with pytest.raises(ValueError, match=match):
        plot_nms_steps(Figure(), BOXES, steps, ncols=ncols)


def test_suppression_bits_write_every_computed_bit_and_mark_the_kept_rows():
    """One digit per upper cell, the kept ranks' labels blue, the highlighted cell framed."""
    bits = np.triu(np.ones((4, 4), bool), k=1)
    bits[0, 3] = False
    ax = draw_suppression_bits(_axes(), bits, np.array([2, 0, 1, 3]), [2, 3], highlight=(1, 2))
    assert [t.get_text() for t in ax.texts] == ["1", "1", "0", "1", "1", "1"]
    colors = [label.get_color() for label in ax.get_yticklabels()]
    assert colors == ["tab:blue", "0.55", "0.55", "tab:blue"]
    assert len(ax.patches) == 1 and ax.patches[0].get_xy() == (1.5, 0.5)


@pytest.mark.parametrize(("bits", "match"), [
    (np.tril(np.ones((3, 3), bool)), "upper triangular"),
    (np.zeros((2, 2), bool), "suppresses"),
])
def test_suppression_bits_refuse_a_lower_triangle_or_a_wrong_shape(bits, match):
    with pytest.raises(ValueError, match=match):
        draw_suppression_bits(_axes(), bits, np.arange(3), [0])


def test_survivor_counts_mark_each_curve_at_the_threshold_of_its_nms():
    """Each source's curve gets a marker at ``marked``, at its own count there; the y axis is logarithmic."""
    ts = np.array([0.1, 0.3, 0.5, 0.7])
    counts = {"oracle": [6, 6, 11, 34], "model": [14, 33, 116, 393]}
    ax = draw_survivor_counts(_axes(), ts, counts, marked=0.7, objects=6, title="RPN")
    markers = [line for line in ax.lines if line.get_marker() == "D"]
    assert [tuple(m.get_xydata()[0]) for m in markers] == [(0.7, 34.0), (0.7, 393.0)]
    assert [t.get_text() for t in ax.texts] == ["34", "393"]
    assert ax.get_yscale() == "log" and ax.get_title() == "RPN"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["6 objects", "oracle", "model"]


@pytest.mark.parametrize(("counts", "marked", "match"), [
    ({"a": [1, 2]}, 0.4, "marked"),
    ({"a": [1, 2, 3]}, 0.3, "counts"),
    ({}, 0.3, "counts"),
])
def test_survivor_counts_refuse_a_threshold_not_swept_and_counts_of_another_length(counts, marked, match):
    with pytest.raises(ValueError, match=match):
        draw_survivor_counts(_axes(), [0.3, 0.7], counts, marked=marked)


def test_boxes_on_image_colour_each_box_by_its_label_and_name_the_labels():
    """A rectangle per box in its label's colour, and a legend entry per label present."""
    image = np.zeros((20, 30, 3))
    boxes = np.float32([[1, 1, 5, 5], [2, 2, 9, 9], [10, 3, 20, 12]])
    ax = draw_boxes_on_image(_axes(), image, boxes, labels=[2, 1, 2], class_names=["bg", "a", "b"])
    assert [p.get_edgecolor() for p in ax.patches] == [to_rgba(PALETTE[k]) for k in (2, 1, 2)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    plain = draw_boxes_on_image(_axes(), image, boxes, title="t")
    assert {p.get_edgecolor() for p in plain.patches} == {to_rgba("yellow")} and plain.get_title() == "t"


def test_boxes_on_image_refuse_labels_of_another_length():
    with pytest.raises(ValueError, match="labels"):
        draw_boxes_on_image(_axes(), np.zeros((4, 4, 3)), [[0, 0, 1, 1]], labels=[1, 2])
