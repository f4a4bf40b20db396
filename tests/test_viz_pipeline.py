"""The figures of notebook ``00_overview`` (``fcis_twin.viz.pipeline``): what each draws, and what it refuses."""

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure

from fcis_twin import viz

CLASS_NAMES = ("background", "a", "b")


def _scene():
    image = np.zeros((8, 10, 3), np.uint8)
    masks = np.zeros((2, 8, 10), bool)
    masks[0, 1:4, 1:4] = True
    masks[1, 4:7, 5:9] = True
    boxes = np.array([[1, 1, 4, 4], [5, 4, 9, 7]], np.float32)
    return SimpleNamespace(image=image, masks=masks, boxes=boxes, labels=np.array([1, 2]))


def _detections(count=3):
    scene = _scene()
    masks = np.concatenate([scene.masks, scene.masks])[:count]
    boxes = np.concatenate([scene.boxes, scene.boxes])[:count]
    return SimpleNamespace(masks=masks, boxes=boxes, labels=np.array([1, 2, 2, 1])[:count],
                           scores=np.linspace(0.9, 0.6, count))


def _array_of(ax, index=0):
    return np.asarray(ax.images[index].get_array())


def test_draw_scene_shows_the_image_and_captions_each_instance():
    """The first panel is the image itself; the second titles the instance count and captions each in 9 pt."""
    scene = _scene()
    axes = viz.draw_scene(Figure().subplots(1, 2), scene, CLASS_NAMES)
    np.testing.assert_array_equal(_array_of(axes[0]), scene.image)
    assert axes[0].get_title() == "Image, 8 x 10"
    assert axes[1].get_title() == "Ground truth: 2 instances"
    assert [t.get_text() for t in axes[1].texts] == ["a", "b"]
    assert {t.get_fontsize() for t in axes[1].texts} == {viz.pipeline.CAPTION_SIZE}
    assert len(axes[1].patches) == 2


def test_draw_scene_refuses_what_is_not_a_scene():
    """An object without masks is a TypeError, a 2-d image a ValueError, a single Axes a ValueError: each named."""
    ax = Figure().subplots()
    with pytest.raises(TypeError, match="scene must have"):
        viz.draw_ground_truth(ax, SimpleNamespace(image=np.zeros((2, 2, 3))), CLASS_NAMES)
    with pytest.raises(ValueError, match="scene.image"):
        viz.draw_ground_truth(ax, SimpleNamespace(**{**vars(_scene()), "image": np.zeros((8, 10))}), CLASS_NAMES)
    with pytest.raises(ValueError, match="axes must hold 2"):
        viz.draw_scene([ax], _scene(), CLASS_NAMES)


def test_draw_rpn_foreground_shows_the_best_anchor_per_position():
    """The image is the maximum over the anchors of (y, x, anchor)-ordered probabilities, on [0, 1], with a colour
    bar."""
    fig = Figure()
    ax = fig.subplots()
    prob = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2) / 12  # (Hf, Wf, A)
    viz.draw_rpn_foreground(ax, prob.ravel(), (2, 3), 2, stride=4)
    np.testing.assert_allclose(_array_of(ax), prob.max(axis=2))
    assert ax.images[0].get_clim() == (0, 1)
    assert len(fig.axes) == 2  # the panel and its colour bar
    assert "best of 2" in ax.get_title() and "stride 4" in ax.get_title()


def test_draw_rpn_foreground_refuses_a_count_that_does_not_fit():
    """A probability count other than Hf*Wf*A is a ValueError, a non-integer anchor count a TypeError."""
    ax = Figure().subplots()
    with pytest.raises(ValueError, match="num_anchors"):
        viz.draw_rpn_foreground(ax, np.zeros(11), (2, 3), 2)
    with pytest.raises(TypeError, match="num_anchors"):
        viz.draw_rpn_foreground(ax, np.zeros(12), (2, 3), 2.0)


def test_draw_top_proposals_draws_the_first_count():
    """``count`` rectangles, the first ones, and a title that counts them and all the proposals."""
    ax = Figure().subplots()
    proposals = np.array([[0, 0, 4, 4], [1, 1, 5, 6], [2, 2, 3, 3]], np.float32)
    viz.draw_top_proposals(ax, _scene().image, proposals, count=2)
    assert len(ax.patches) == 2 and ax.get_title() == "Top 2 of 3 proposals"
    assert ax.patches[1].get_xy() == (0.5, 0.5) and ax.patches[1].get_height() == 5
    ax = Figure().subplots()
    viz.draw_top_proposals(ax, _scene().image, proposals, count=10)
    assert len(ax.patches) == 3
    with pytest.raises(ValueError, match="count"):
        viz.draw_top_proposals(ax, _scene().image, proposals, count=-1)
    with pytest.raises(ValueError, match="proposals"):
        viz.draw_top_proposals(ax, _scene().image, proposals[0], count=1)


def test_draw_roi_maps_puts_both_maps_on_one_scale():
    """The ROI is drawn and zoomed onto; inside and outside are shown as given, with one shared colour range."""
    fig = Figure()
    axes = viz.draw_roi_maps(fig.subplots(1, 3), _scene().image, [1, 1, 4, 4], np.eye(3), -np.eye(3), "a",
                             pad=1)
    assert len(axes[0].patches) == 1
    assert axes[0].get_xlim() == (-0.5, 4.5)
    np.testing.assert_array_equal(_array_of(axes[1]), np.eye(3))
    np.testing.assert_array_equal(_array_of(axes[2]), -np.eye(3))
    assert axes[1].images[0].get_clim() == axes[2].images[0].get_clim() == (-1, 1)
    assert axes[1].get_title() == "'a' inside, 3 x 3" and len(fig.axes) == 4  # three panels, one colour bar


def test_draw_roi_maps_refuses_maps_of_two_shapes():
    """Inside and outside maps of different shapes, or an ROI that is not four numbers, are ValueErrors."""
    axes = Figure().subplots(1, 3)
    with pytest.raises(ValueError, match="inside and outside"):
        viz.draw_roi_maps(axes, _scene().image, [1, 1, 4, 4], np.eye(3), np.eye(2), "a")
    with pytest.raises(ValueError, match="roi"):
        viz.draw_roi_maps(axes, _scene().image, [1, 1, 4], np.eye(3), np.eye(3), "a")


def test_draw_class_masks_shows_every_object_class():
    """One panel per class but the background, each on [0, 1] and titled with its class probability."""
    mask_prob = np.stack([np.full((2, 2), v) for v in (0.1, 0.2, 0.9)])
    axes = viz.draw_class_masks(Figure().subplots(1, 2), mask_prob, [0.1, 0.3, 0.6], CLASS_NAMES)
    assert [ax.get_title() for ax in axes] == ["a: p 0.300", "b: p 0.600"]
    np.testing.assert_array_equal(_array_of(axes[1]), mask_prob[2])
    assert axes[0].images[0].get_clim() == (0, 1)
    with pytest.raises(ValueError, match="cls_prob and class_names"):
        viz.draw_class_masks(Figure().subplots(1, 2), mask_prob, [0.5, 0.5], CLASS_NAMES)
    with pytest.raises(ValueError, match="axes must hold 2"):
        viz.draw_class_masks(Figure().subplots(1, 3), mask_prob, [0.1, 0.3, 0.6], CLASS_NAMES)


def test_draw_detections_draws_the_kept_ones_with_their_scores():
    """``keep`` selects the detections drawn; each gets a box and a ``class score`` caption."""
    ax = viz.draw_detections(Figure().subplots(), _scene().image, _detections(), CLASS_NAMES, keep=[1, 2])
    assert len(ax.patches) == 2
    assert [t.get_text() for t in ax.texts] == ["b 0.75", "b 0.60"]
    assert ax.get_title() == "2 detections"
    ax = viz.draw_detections(Figure().subplots(), _scene().image, _detections(), CLASS_NAMES, title="all")
    assert len(ax.patches) == 3 and ax.get_title() == "all"
    with pytest.raises(TypeError, match="detections"):
        viz.draw_detections(ax, _scene().image, _scene(), CLASS_NAMES)


def test_draw_shift_profile_shades_the_shifts_of_iou_at_least_half():
    """One labelled line per curve, and a grey band from the first to the last shift whose IoU is >= 0.5."""
    shifts = np.linspace(-0.5, 0.5, 11)
    iou = (1 - np.abs(shifts)) / (1 + np.abs(shifts))  # >= 0.5 for |shift| <= 1/3
    ax = viz.draw_shift_profile(Figure().subplots(), shifts, iou, {"one": iou, "two": 1 - iou}, "score")
    assert [line.get_label() for line in ax.lines] == ["one", "two"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), 1 - iou)
    band = ax.patches[0]
    assert (band.get_x(), band.get_x() + band.get_width()) == pytest.approx((-0.3, 0.3))
    assert ax.get_ylabel() == "score"


def test_draw_shift_profile_refuses_curves_that_do_not_fit():
    """IoUs or a curve of another length are ValueErrors naming them; curves not in a dict a TypeError."""
    ax = Figure().subplots()
    shifts = np.linspace(-0.5, 0.5, 5)
    with pytest.raises(ValueError, match="iou"):
        viz.draw_shift_profile(ax, shifts, np.ones(4), {}, "score")
    with pytest.raises(ValueError, match=r"curves\['a'\]"):
        viz.draw_shift_profile(ax, shifts, np.ones(5), {"a": np.ones(3)}, "score")
    with pytest.raises(TypeError, match="curves"):
        viz.draw_shift_profile(ax, shifts, np.ones(5), [np.ones(5)], "score")
