"""The official code's second resampling of voted masks (``fcis_twin.reference.official``)."""

import numpy as np
import pytest

from fcis_twin.reference.official import official_resampling, voted_averages
from fcis_twin.reference.voting import mask_voting


def voting_inputs(stages):
    keep = stages.voting_rois
    return (np.concatenate([stages.first.boxes, stages.second.boxes])[keep],
            np.concatenate([stages.first.mask_prob, stages.second.mask_prob])[keep],
            np.concatenate([stages.first.cls_prob, stages.second.cls_prob])[keep])


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_averages_binarize_to_the_voted_masks(oracle_runs, seed):
    """voted_averages are the values mask_voting binarizes: thresholded, they are its masks exactly."""
    scene, _, stages = oracle_runs[seed]
    boxes, cls_masks, cls_probs = voting_inputs(stages)
    cfg = stages.config
    averages = voted_averages(boxes, cls_masks, cls_probs, scene.image.shape[:2], stages.detections,
                              vote_threshold=cfg.vote_threshold)
    assert averages.dtype == np.float32 and averages.shape == stages.detections.masks.shape
    np.testing.assert_array_equal(averages >= np.float32(cfg.binary_threshold), stages.detections.masks)


def test_resampling_by_hand():
    """A voted average of 0.5 on a 4 x 6 box and 0.9 on its right third: squeezed to 3 x 3 and pasted back,
    bilinear both ways, the mask keeps the box; at a threshold of 0.7 only the right third survives, and the
    round trip through 3 x 3 samples moves its edge (the blur of a second resampling)."""
    cls_masks = np.zeros((1, 2, 4, 6), np.float32)
    cls_masks[0, 1] = 0.5
    cls_masks[0, 1, :, 4:] = 0.9
    det = mask_voting([[2, 1, 8, 5]], cls_masks, [[0.0, 1.0]], (6, 10), binary_threshold=0.4)
    averages = voted_averages([[2, 1, 8, 5]], cls_masks, [[0.0, 1.0]], (6, 10), det)
    np.testing.assert_array_equal(official_resampling(averages, det, output_size=3, binary_threshold=0.4),
                                  det.masks)  # 0.5 and 0.9 are both >= 0.4 wherever they are blended
    strict = mask_voting([[2, 1, 8, 5]], cls_masks, [[0.0, 1.0]], (6, 10), binary_threshold=0.7)
    np.testing.assert_array_equal(strict.boxes, [[6, 1, 8, 5]])  # columns 6, 7: the 0.9 third
    resampled = official_resampling(voted_averages([[2, 1, 8, 5]], cls_masks, [[0.0, 1.0]], (6, 10), strict),
                                    strict, output_size=3, binary_threshold=0.7)
    # the crop is all 0.9 (columns 6, 7), so the squeeze and the paste give 0.9 everywhere in the box: kept whole
    np.testing.assert_array_equal(resampled, strict.masks)


def test_resampling_blurs_a_fine_mask():
    """A one-pixel stripe comes back five pixels wide from a 3 x 3 squeeze: the official masks blur detail finer
    than box / P."""
    cls_masks = np.zeros((1, 2, 9, 9), np.float32)
    cls_masks[0, 1] = 0.45
    cls_masks[0, 1, :, 4] = 1.0  # a stripe in the middle column of a 9 x 9 box
    det = mask_voting([[0, 0, 9, 9]], cls_masks, [[0.0, 1.0]], (9, 9), binary_threshold=0.4)
    averages = voted_averages([[0, 0, 9, 9]], cls_masks, [[0.0, 1.0]], (9, 9), det)
    assert det.masks.sum() == 81 and (averages[0, :, 4] == 1).all() and (averages[0, :, 3] == 0.45).all()
    masks = official_resampling(averages, det, output_size=3, binary_threshold=0.5)
    # squeeze, u = 3x + 1: columns 1, 4, 7 -> (0.45, 1, 0.45); paste back, u = (x + 0.5) / 3 - 0.5: columns 2..6
    # sample 0.633, 0.817, 1, 0.817, 0.633 >= 0.5, columns 1 and 7 land on 0.45: a band 5 wide where
    # thresholding the average at 0.5 keeps the stripe alone
    np.testing.assert_array_equal(masks[0].any(axis=0), (np.arange(9) >= 2) & (np.arange(9) <= 6))
    assert masks.sum() == 45 and (averages >= 0.5).sum() == 9


def test_evaluate_oracle_scores_the_official_masks(tmp_path):
    """masks="official" scores the resampled masks: the same detections and boxes, other mask metrics."""
    from fcis_twin.demo import evaluate_oracle
    from fcis_twin.reference.coco import load_coco, make_data

    coco_set = load_coco(make_data(tmp_path / "set", 4, 5), tmp_path / "set" / "images")
    full = evaluate_oracle(coco_set)
    official = evaluate_oracle(coco_set, masks="official")
    assert official["detections"] == full["detections"] > 0
    assert official["coco"]["bbox"] == full["coco"]["bbox"]
    with pytest.raises(ValueError, match="masks must be 'full' or 'official'"):
        evaluate_oracle(coco_set, masks="half")
