"""The full inference graph on oracle outputs: intermediates, recovery of ground truth, bad input."""

import numpy as np
import pytest

from fcis_twin.demo import SCENE_CONFIG, best_mask_iou, run_oracle_pipeline
from fcis_twin.reference.detect import FCISConfig, detect
from fcis_twin.reference.evaluate import mask_iou
from fcis_twin.reference.shapes import CLASS_NAMES, make_scene

SEEDS = range(12)


@pytest.fixture(scope="module")
def runs():
    out = {}
    for seed in SEEDS:
        scene = make_scene(seed)
        out[seed] = (scene, *run_oracle_pipeline(scene))
    return out


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
