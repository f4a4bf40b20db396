"""The full inference graph on oracle outputs: intermediates, recovery of ground truth, bad input."""

import numpy as np
import pytest

from fcis_twin.demo import SCENE_CONFIG, best_mask_iou
from fcis_twin.reference.assemble import ps_assemble
from fcis_twin.reference.detect import FCISConfig, detect
from fcis_twin.reference.evaluate import mask_iou
from fcis_twin.reference.shapes import CLASS_NAMES

SEEDS = range(12)


@pytest.fixture
def runs(oracle_runs):
    """The shared oracle scenes (``conftest.oracle_runs``)."""
    return oracle_runs


@pytest.mark.parametrize("seed", SEEDS)
def test_oracle_recovers_every_mostly_visible_instance(runs, seed):
    """Every ground-truth instance at least half visible is found with its class and mask IoU >= 0.8."""
    scene, _, stages = runs[seed]
    det = stages.detections
    iou = mask_iou(det.masks, scene.masks)  # (D, G)
    same = det.labels[:, None] == scene.labels[None, :]
    best = np.where(same, iou, 0).max(axis=0, initial=0)  # (G,) best same-class detection per instance
    half_visible = scene.visible_fraction >= 0.5
    assert half_visible.any()
    assert (best[half_visible] >= 0.8).all(), (best, scene.visible_fraction)


def test_intermediate_shapes(runs):
    """Every intermediate has the documented shape and dtype."""
    scene, outputs, stages = runs[0]
    cfg = stages.config
    h, w = scene.image.shape[:2]
    hf, wf = outputs.seg_maps.shape[2:]
    c, p = len(CLASS_NAMES), cfg.output_size
    assert stages.anchors.shape == (hf * wf * cfg.num_anchors, 4)
    r = len(stages.proposals)
    assert 0 < r <= cfg.post_nms_top_n
    for one_pass in (stages.first, stages.second):
        assert one_pass.boxes.shape == (r, 4)
        assert one_pass.assembled.shape == (r, 2 * c, p, p)
        assert one_pass.mask_prob.shape == (r, c, p, p)
        assert one_pass.cls_prob.shape == (r, c)
        assert one_pass.assembled.dtype == np.float32
    assert stages.regressed.shape == (r, 4)
    assert (stages.regressed[:, [0, 2]] <= w).all() and (stages.regressed[:, [1, 3]] <= h).all()
    det = stages.detections
    assert det.masks.shape == (len(det.scores), h, w) and det.masks.dtype == bool
    assert (np.diff(det.scores) <= 0).all()


def test_regression_moves_proposals_towards_ground_truth(runs):
    """On oracle outputs, box regression does not make the proposals worse on average."""
    from fcis_twin.reference.boxes import box_iou

    ious_before, ious_after = [], []
    for scene, _, stages in runs.values():
        ious_before.append(box_iou(stages.proposals, scene.boxes).max(axis=1))
        ious_after.append(box_iou(stages.regressed, scene.boxes).max(axis=1))
    assert np.mean(np.concatenate(ious_after)) >= np.mean(np.concatenate(ious_before)) - 1e-3


def test_best_mask_iou_matches_by_class(runs):
    """The demo's IoU column only matches detections to ground truth of the same class."""
    scene, _, stages = runs[0]
    best = best_mask_iou(stages.detections, scene)
    assert best.shape == (len(stages.detections.scores),)
    assert ((best >= 0) & (best <= 1)).all()


def test_bad_inputs_name_the_argument(runs):
    """Inconsistent network outputs raise ValueError naming the argument."""
    scene, out, _ = runs[0]
    image_shape = scene.image.shape[:2]
    args = (out.rpn_prob, out.rpn_deltas, out.seg_maps, out.bbox_maps)
    with pytest.raises(ValueError, match="seg_maps"):
        detect(args[0], args[1], args[2][:, :-1], args[3], image_shape, SCENE_CONFIG)
    with pytest.raises(ValueError, match="bbox_maps"):
        detect(args[0], args[1], args[2], args[3][:, :-1], image_shape, SCENE_CONFIG)
    with pytest.raises(ValueError, match="rpn_prob"):
        detect(*args, image_shape, FCISConfig(stride=4, anchor_scales=(8, 16)))
    with pytest.raises(ValueError, match="image_shape"):
        detect(*args, (0, 10), SCENE_CONFIG)
    with pytest.raises(TypeError, match="config"):
        detect(*args, image_shape, {"stride": 4})


def _outputs_with_bbox_maps(runs, fill):
    """The first scene's oracle outputs with ``bbox_maps`` replaced by ``fill(shape)``."""
    scene, outputs, _ = runs[0]
    bbox_maps = fill(outputs.bbox_maps.shape).astype(np.float32)
    return scene, (outputs.rpn_prob, outputs.rpn_deltas, outputs.seg_maps, bbox_maps)


def test_regression_reads_the_foreground_slot(runs):
    """Box deltas come from slot ``reg = 1`` of the box maps, never slot 0 (the oracle fills only slot 1)."""
    k = SCENE_CONFIG.group_size
    wanted = np.float32([0.25, -0.5, 0.125, 0.0])  # dyadic: the float32 mean of equal values is exact

    def fill(shape):
        values = np.full((2, 4), 100.0)  # slot 0: far from anything a test could mistake for slot 1
        values[1] = wanted
        return np.broadcast_to(np.repeat(values.reshape(8), k * k)[None, :, None, None], shape)

    scene, outputs = _outputs_with_bbox_maps(runs, fill)
    stages = detect(*outputs, scene.image.shape[:2], SCENE_CONFIG)
    np.testing.assert_array_equal(stages.bbox_deltas, np.broadcast_to(wanted, stages.bbox_deltas.shape))


def test_regression_pools_at_output_size_then_averages(runs):
    """As the official graph: the box maps assembled at P x P (group k), then the P x P bins averaged; pooling at
    k x k first gives other deltas on maps that vary within a cell."""
    cfg = SCENE_CONFIG
    scene, outputs = _outputs_with_bbox_maps(runs, lambda shape: np.random.default_rng(3).standard_normal(shape))
    stages = detect(*outputs, scene.image.shape[:2], cfg)
    rois = np.concatenate([np.zeros((len(stages.proposals), 1), np.float32), stages.proposals], axis=1)
    pooled = ps_assemble(outputs[3], rois, group_size=cfg.group_size, output_size=cfg.output_size,
                         spatial_scale=1 / cfg.stride)  # (R, 8, P, P)
    np.testing.assert_array_equal(stages.bbox_deltas, pooled.mean(axis=(2, 3), dtype=np.float32)[:, 4:])
    coarse = ps_assemble(outputs[3], rois, group_size=cfg.group_size, output_size=cfg.group_size,
                         spatial_scale=1 / cfg.stride).mean(axis=(2, 3), dtype=np.float32)[:, 4:]
    assert not np.array_equal(stages.bbox_deltas, coarse)


@pytest.mark.parametrize("min_drop_size", [0, 2, 40, 1e9])
def test_small_rois_are_dropped_before_voting(runs, min_drop_size):
    """ROIs of either pass narrower or shorter than min_drop_size (half-open widths) never reach voting; the
    detections index the ROIs that do."""
    scene, outputs, _ = runs[0]
    cfg = FCISConfig(stride=SCENE_CONFIG.stride, min_drop_size=min_drop_size)
    stages = detect(outputs.rpn_prob, outputs.rpn_deltas, outputs.seg_maps, outputs.bbox_maps,
                    scene.image.shape[:2], cfg)
    boxes = np.concatenate([stages.first.boxes, stages.second.boxes])
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    np.testing.assert_array_equal(stages.voting_rois, np.flatnonzero(sides >= np.float32(min_drop_size)))
    det = stages.detections
    chosen = stages.voting_rois[det.rois]  # indices into both passes
    assert (sides[chosen] >= min_drop_size).all()
    cls_prob = np.concatenate([stages.first.cls_prob, stages.second.cls_prob])
    np.testing.assert_array_equal(det.scores, cls_prob[chosen, det.labels])
    if min_drop_size == 1e9:
        assert len(det) == 0
    if min_drop_size == 0:
        assert len(stages.voting_rois) == len(boxes)


def test_config_checks_min_drop_size():
    with pytest.raises(ValueError, match="min_drop_size must be in"):
        FCISConfig(min_drop_size=-1)
    with pytest.raises(TypeError, match="min_drop_size"):
        FCISConfig(min_drop_size="2")
