"""Evaluation: mask IoU against pycocotools, COCO results and COCO AP, and the SDS mAP^r, hand-worked."""

import copy
import json
import math
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from fcis_twin.reference.boxes import tight_boxes
from fcis_twin.reference.evaluate import (
    COCO_METRICS,
    SDS_MATCHING,
    SDS_RECALL_LEVELS,
    detections_to_coco,
    evaluate_coco,
    evaluate_sds,
    mask_iou,
)
from fcis_twin.reference.sds import average_precision
from fcis_twin.reference.shapes import make_scene
from fcis_twin.reference.voting import Detections


def encode(masks):
    """(n, H, W) bool -> list of pycocotools RLEs."""
    return mask_util.encode(np.asfortranarray(np.asarray(masks, bool).transpose(1, 2, 0).astype(np.uint8)))


def decode(rle):
    """One RLE -> (H, W) bool.  pycocotools' decode trips NumPy 2's ``__array__(copy=...)`` deprecation: only that
    warning is silenced, here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                                category=DeprecationWarning)
        return mask_util.decode(rle).astype(bool)


def strip(h, w, *spans):
    """(len(spans), h, w) bool: mask k holds columns [start, stop) of every row."""
    masks = np.zeros((len(spans), h, w), bool)
    for k, (start, stop) in enumerate(spans):
        masks[k, :, start:stop] = True
    return masks


def det(masks, labels, scores):
    return SimpleNamespace(masks=np.asarray(masks, bool), labels=np.asarray(labels, np.int64),
                           scores=np.asarray(scores, np.float64))


def gt(masks, labels):
    return SimpleNamespace(masks=np.asarray(masks, bool), labels=np.asarray(labels, np.int64))


# ------------------------------------------------------------------------------------------------ mask_iou


@st.composite
def mask_pairs(draw):
    """(D, H, W) and (G, H, W) small bool masks, D, G >= 1; empty and full masks are common."""
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    a = draw(hnp.arrays(bool, (draw(st.integers(1, 4)), h, w)))
    b = draw(hnp.arrays(bool, (draw(st.integers(1, 4)), h, w)))
    return a, b


@given(mask_pairs())
def test_mask_iou_equals_pycocotools_exactly(pair):
    """mask_iou equals pycocotools.mask.iou(dt=a, gt=b, iscrowd=0) bit for bit, empty masks included."""
    a, b = pair
    theirs = mask_util.iou(encode(a), encode(b), [0] * len(b))  # (D, G): dt first, gt second
    ours = mask_iou(a, b)
    assert ours.dtype == np.float64
    np.testing.assert_array_equal(ours, np.asarray(theirs, np.float64))


def test_mask_iou_equals_pycocotools_on_scenes():
    """Exact agreement on full-size scene masks: visible against full masks, IoUs far from 0 and 1."""
    for seed in range(3):
        scene = make_scene(seed)
        theirs = mask_util.iou(encode(scene.masks), encode(scene.full_masks), [0] * len(scene.labels))
        np.testing.assert_array_equal(mask_iou(scene.masks, scene.full_masks), np.asarray(theirs, np.float64))


def test_mask_iou_empty_masks_hand_worked():
    """Two empty masks have IoU 0 in both implementations; so do boxes that overlap while masks do not."""
    a = np.zeros((2, 3, 3), bool)
    a[1, 0, 0] = a[1, 2, 2] = True  # a diagonal pair: its box covers the whole image
    b = np.zeros((2, 3, 3), bool)
    b[1, 0, 2] = b[1, 2, 0] = True  # the other diagonal pair: same box, no shared pixel
    # empty vs empty 0; empty vs 2 pixels 0/2 = 0; the two diagonals share nothing: 0
    expected = np.zeros((2, 2))
    np.testing.assert_array_equal(mask_iou(a, b), expected)
    np.testing.assert_array_equal(mask_util.iou(encode(a), encode(b), [0, 0]), expected)


def test_mask_iou_empty_sets():
    """An empty side gives a (D, 0) or (0, G) array (pycocotools returns a list [] there)."""
    a = strip(2, 4, (0, 2))
    assert mask_iou(a, np.zeros((0, 2, 4), bool)).shape == (1, 0)
    assert mask_iou(np.zeros((0, 2, 4), bool), a).shape == (0, 1)
    assert mask_util.iou(encode(a), [], []) == []


def test_mask_iou_bad_input():
    """Different image sizes or ranks are rejected, naming the argument."""
    with pytest.raises(ValueError, match="same"):
        mask_iou(np.zeros((1, 2, 3), bool), np.zeros((1, 2, 4), bool))
    with pytest.raises(ValueError, match="masks_b"):
        mask_iou(np.zeros((1, 2, 3), bool), np.zeros((2, 3), bool))


# ------------------------------------------------------------------------------------------------ detections_to_coco


@st.composite
def detections(draw):
    """Detections of one small image: non-empty masks, tight boxes, labels 1..3."""
    h, w, n = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(0, 5))
    masks = draw(hnp.arrays(bool, (n, h, w)))
    masks[:, 0, 0] |= ~masks.any(axis=(1, 2))  # never empty, as voting guarantees
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(1, 3)))
    scores = draw(hnp.arrays(np.float32, (n,), elements=st.floats(0, 1, width=32)))
    return Detections(boxes=tight_boxes(masks), scores=scores, labels=labels, masks=masks,
                      rois=np.arange(n, dtype=np.int64))


@given(detections())
def test_detections_to_coco_round_trip(d):
    """Decoding each RLE gives the mask back; bbox is the half-open box as (x, y, w, h), equal to COCO's toBbox."""
    category_ids = [None, 10, 20, 30]
    results = detections_to_coco(d, 3, category_ids)
    assert len(results) == len(d)
    assert json.loads(json.dumps(results)) == results  # plain Python numbers and strings
    for k, r in enumerate(results):
        assert r["image_id"] == 3 and r["category_id"] == 10 * d.labels[k] and r["score"] == d.scores[k]
        np.testing.assert_array_equal(decode(r["segmentation"]), d.masks[k])
        x1, y1, x2, y2 = d.boxes[k]
        assert r["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        np.testing.assert_array_equal(mask_util.toBbox(r["segmentation"]), r["bbox"])
    assert detections_to_coco(d, 3, {1: 10, 2: 20, 3: 30}) == results  # a mapping gives the same
    assert detections_to_coco(d, 3, np.array([-1, 10, 20, 30])) == results  # and an array, background -1


def test_detections_to_coco_hand_worked():
    """Column-major runs: a 2 x 3 mask with its middle column set is 2 off, 2 on, 2 off."""
    masks = strip(2, 3, (1, 2), (0, 3))  # second mask: all 6 pixels -> runs 0 off, 6 on
    d = SimpleNamespace(boxes=[[1, 0, 2, 2], [0, 0, 3, 2]], scores=[0.5, 0.25], labels=[2, 1], masks=masks)
    results = detections_to_coco(d, 1, {1: 7, 2: 9})
    assert [r["segmentation"]["counts"] for r in results] == ["222", "06"]
    assert [r["bbox"] for r in results] == [[1.0, 0.0, 1.0, 2.0], [0.0, 0.0, 3.0, 2.0]]
    assert [r["category_id"] for r in results] == [9, 7]
    assert [r["score"] for r in results] == [0.5, 0.25]


def test_detections_to_coco_empty():
    """No detections, no results."""
    d = SimpleNamespace(boxes=np.zeros((0, 4)), scores=[], labels=[], masks=np.zeros((0, 4, 5), bool))
    assert detections_to_coco(d, 1, [None, 1]) == []


def test_detections_to_coco_bad_input():
    """Unknown labels, wrong shapes and wrong types are rejected, naming the argument."""
    d = SimpleNamespace(boxes=[[1, 0, 2, 2]], scores=[0.5], labels=[2], masks=strip(2, 3, (1, 2)))
    with pytest.raises(ValueError, match="category_ids has no entry for label 2"):
        detections_to_coco(d, 1, {1: 7})
    with pytest.raises(ValueError, match="category_ids has no entry for label 2"):
        detections_to_coco(d, 1, [None, 7])
    with pytest.raises(TypeError, match="category_ids"):
        detections_to_coco(d, 1, 7)
    with pytest.raises(TypeError, match="category_ids\\[2\\]"):
        detections_to_coco(d, 1, {2: 7.5})
    with pytest.raises(ValueError, match="detections.labels must be >= 1"):
        detections_to_coco(SimpleNamespace(**{**vars(d), "labels": [0]}), 1, [7, 8])
    with pytest.raises(TypeError, match="image_id"):
        detections_to_coco(d, 1.0, {2: 7})
    with pytest.raises(ValueError, match="detections.boxes"):
        detections_to_coco(SimpleNamespace(**{**vars(d), "boxes": [[1, 0, 2, 2]] * 2}), 1, {2: 7})
    with pytest.raises(ValueError, match="detections.boxes"):
        detections_to_coco(SimpleNamespace(**{**vars(d), "boxes": [[2, 0, 1, 2]]}), 1, {2: 7})
    with pytest.raises(ValueError, match="detections.scores"):
        detections_to_coco(SimpleNamespace(**{**vars(d), "scores": [0.5, 0.4]}), 1, {2: 7})
    with pytest.raises(ValueError, match="detections.masks"):
        detections_to_coco(SimpleNamespace(**{**vars(d), "masks": np.ones((2, 3), bool)}), 1, {2: 7})


# ------------------------------------------------------------------------------------------------ evaluate_coco


def square(h, w, x, y, side):
    m = np.zeros((h, w), bool)
    m[y : y + side, x : x + side] = True
    return m


def ground_truth_dict():
    """Three images, one object each: small (6 x 6 = 36 px < 32^2), medium (40 x 40 = 1600), large (110 x 110 =
    12100 > 96^2), categories 3 and 8."""
    objects = [(1, 3, square(64, 64, 5, 5, 6)), (2, 8, square(64, 64, 10, 10, 40)), (3, 3, square(128, 128, 9, 9, 110))]
    anns = []
    for k, (image_id, cat, m) in enumerate(objects):
        rle = encode(m[None])[0]
        anns.append({"id": k + 1, "image_id": image_id, "category_id": cat, "iscrowd": 0, "area": int(m.sum()),
                     "bbox": [float(v) for v in mask_util.toBbox(rle)],
                     "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")}})
    images = [{"id": i, "height": m.shape[0], "width": m.shape[1], "file_name": f"{i}.png"} for i, _, m in objects]
    categories = [{"id": 3, "name": "three"}, {"id": 8, "name": "eight"}]
    return {"images": images, "categories": categories, "annotations": anns}, objects


def assert_metrics(got, expected):
    """COCOeval's precision is tp / (tp + fp + np.spacing(1)), so a perfect one is 1 - 2**-52, and means of it may
    round either way: equal within 1e-12, nan where expected."""
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_metrics(got[key], value)
        elif math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), key


def perfect_results(objects, score=0.9):
    out = []
    for image_id, cat, m in objects:
        d = SimpleNamespace(boxes=tight_boxes(m[None]), scores=[score], labels=[1], masks=m[None])
        out += detections_to_coco(d, image_id, {1: cat})
    return out


def test_evaluate_coco_perfect_and_empty(tmp_path, capsys):
    """Perfect results give 1.0 everywhere, no results 0.0; the ground truth as dict, COCO or path; silent."""
    dataset, objects = ground_truth_dict()
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(dataset))
    quiet_coco = COCO()
    quiet_coco.dataset = dataset
    quiet_coco.createIndex()
    capsys.readouterr()
    for coco_gt in (dataset, quiet_coco, path, str(path)):
        perfect = evaluate_coco(perfect_results(objects), coco_gt)
        assert_metrics(perfect, {t: dict.fromkeys(COCO_METRICS, 1.0) for t in ("segm", "bbox")})
        assert evaluate_coco([], coco_gt) == {t: dict.fromkeys(COCO_METRICS, 0.0) for t in ("segm", "bbox")}
    assert capsys.readouterr().out == ""


def test_evaluate_coco_verbose_prints(capsys):
    """verbose=True lets pycocotools print its summary."""
    dataset, objects = ground_truth_dict()
    evaluate_coco(perfect_results(objects), dataset, iou_types="segm", verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_evaluate_coco_bbox_from_masks_alone():
    """Results without "bbox" are scored for boxes by their masks' tight boxes: perfect masks, perfect boxes."""
    dataset, objects = ground_truth_dict()
    results = [{k: v for k, v in r.items() if k != "bbox"} for r in perfect_results(objects)]
    assert_metrics(evaluate_coco(results, dataset, iou_types="bbox"), {"bbox": dict.fromkeys(COCO_METRICS, 1.0)})


def test_evaluate_coco_hand_worked_false_positive_first():
    """One object, a false positive ranked above the true one: precision 1/2 at recall 1, so AP = 0.5."""
    dataset, objects = ground_truth_dict()
    image_id, cat, m = objects[1]
    wrong = square(64, 64, 52, 52, 12)  # 144 px, no overlap with the object: IoU 0 at every threshold
    results = perfect_results([objects[1]], score=0.5) + perfect_results([(image_id, cat, wrong)], score=0.9)
    # ranked: fp (p 0/1, r 0), tp (p 1/2, r 1); interpolated precision is 1/2 at every recall level <= 1
    metrics = evaluate_coco(results, dataset, image_ids=[image_id])
    # the fp is small (144 px) and the only object medium: for APm the fp is ignored; APs and APl have no ground
    # truth
    expected = {"AP": 0.5, "AP50": 0.5, "AP75": 0.5, "APs": math.nan, "APm": 1.0, "APl": math.nan}
    assert_metrics(metrics, {"segm": expected, "bbox": expected})


def test_evaluate_coco_segm_uses_mask_area():
    """For segm, a detection's area is its mask's, not its box's (the bbox key is dropped before loadRes)."""
    dataset, objects = ground_truth_dict()
    image_id, cat, m = objects[0]  # the small object (36 px) at [5, 11)
    thin = np.zeros((64, 64), bool)
    thin[20, 20:60] = thin[20:60, 20] = True  # an L: 79 px (small) in a 40 x 40 box (1600 px, medium)
    results = perfect_results([objects[0]], score=0.5) + perfect_results([(image_id, cat, thin)], score=0.9)
    metrics = evaluate_coco(results, dataset, image_ids=[image_id])
    # segm: the L is a small false positive ranked first -> APs = 1/2; had its box area been used it would be
    # medium, ignored for APs, and APs would be 1
    assert metrics["segm"]["APs"] == pytest.approx(0.5, abs=1e-12)
    # bbox: the L's box really is medium and is ignored for APs
    assert metrics["bbox"]["APs"] == pytest.approx(1.0, abs=1e-12)


def test_evaluate_coco_image_subset_and_results_untouched():
    """image_ids restricts the evaluation; the caller's results are not modified."""
    dataset, objects = ground_truth_dict()
    results = perfect_results(objects[:1])  # only image 1 detected
    before = copy.deepcopy(results)
    everything = evaluate_coco(results, dataset, iou_types=["segm"])["segm"]
    # one of three objects found, each of its own size: APs 1, APm 0, APl 0.  Over all sizes, category 3 has
    # recall 1/2 at precision 1: 51 of COCO's 101 recall levels (0, .01, ..., .5) -> 51/101; category 8 -> 0:
    # AP = (51/101 + 0) / 2 = 51/202
    ap = 51 / 202
    assert_metrics(everything, {"AP": ap, "AP50": ap, "AP75": ap, "APs": 1.0, "APm": 0.0, "APl": 0.0})
    subset = evaluate_coco(results, dataset, iou_types=["segm"], image_ids=[1])["segm"]
    assert_metrics(subset, {"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "APs": 1.0, "APm": math.nan, "APl": math.nan})
    assert results == before
    assert dataset == ground_truth_dict()[0]  # a dict ground truth is copied before COCOeval writes into it


def test_evaluate_coco_bad_input():
    """Unknown iou types, images or keys, and wrong types are rejected, naming the argument."""
    dataset, objects = ground_truth_dict()
    results = perfect_results(objects)
    with pytest.raises(ValueError, match="iou_types"):
        evaluate_coco(results, dataset, iou_types=["keypoints"])
    with pytest.raises(ValueError, match="iou_types"):
        evaluate_coco(results, dataset, iou_types=[])
    with pytest.raises(TypeError, match="iou_types"):
        evaluate_coco(results, dataset, iou_types=1)
    with pytest.raises(ValueError, match="image_ids"):
        evaluate_coco(results, dataset, image_ids=[1, 99])
    with pytest.raises(TypeError, match="image_ids"):
        evaluate_coco(results, dataset, image_ids=1)
    with pytest.raises(ValueError, match=r"results\[0\] has image_id 99"):
        evaluate_coco([{**results[0], "image_id": 99}], dataset)
    with pytest.raises(ValueError, match=r"results\[1\] lacks \['segmentation'\]"):
        evaluate_coco([results[0], {k: v for k, v in results[1].items() if k != "segmentation"}], dataset)
    with pytest.raises(TypeError, match="results"):
        evaluate_coco(results[0], dataset)
    with pytest.raises(TypeError, match=r"results\[0\]"):
        evaluate_coco([1], dataset)
    with pytest.raises(TypeError, match="coco_gt"):
        evaluate_coco(results, 3)
    with pytest.raises(ValueError, match="coco_gt"):
        evaluate_coco([], {**dataset, "images": [], "annotations": []})


# ------------------------------------------------------------------------------------------------ evaluate_sds


def test_sds_hand_worked_tp_fp_tp():
    """tp, fp, tp over 2 instances: precision [1, 1/2, 2/3], recall [1/2, 1/2, 1]."""
    # image 0: instance [0, 4) and a prediction on it (0.9) and one on empty ground (0.8); image 1: instance
    # [4, 8) found at 0.7
    dets = [det(strip(2, 8, (0, 4), (4, 8)), [1, 1], [0.9, 0.8]), det(strip(2, 8, (4, 8)), [1], [0.7])]
    gts = [gt(strip(2, 8, (0, 4)), [1]), gt(strip(2, 8, (4, 8)), [1])]
    # VOC07: the levels 0, .1, .2, .30000000000000004, .4, .5 (6 levels; 1/2 >= 0.5, which np.arange gives
    # exactly) are reached with best precision 1; the other 5 only by the third prediction, 2/3:
    # (6 * 1 + 5 * 2/3) / 11 = 28/33
    for matching in ("official", "coco"):  # no prediction overlaps two instances: both rules agree
        m = evaluate_sds(dets, gts, matching=matching)
        assert m["mAP@0.5"] == pytest.approx(28 / 33, abs=1e-15)  # one rounded sum of 11 terms, one division
        assert m["per_class"] == {0.5: {1: m["mAP@0.5"]}, 0.7: {1: m["mAP@0.7"]}}
        assert m["mAP@0.7"] == m["mAP@0.5"]  # every IoU is 0 or 1
    # area under the envelope [1, 2/3, 2/3]: recall steps 1/2, 0, 1/2 -> 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert evaluate_sds(dets, gts, use_07_metric=False)["mAP@0.5"] == pytest.approx(5 / 6, abs=1e-15)


def test_sds_area_uses_the_precision_envelope():
    """Precision dips, then rises at a later recall step: the area takes the envelope, not the raw precision."""
    # a 1 x 8 image, one-pixel instances at pixels 0..3; predictions at pixels 0 (0.9, tp), 5 (0.8, fp),
    # 6 (0.7, fp), 1 (0.6, tp), 2 (0.5, tp); instance 3 is never found
    pixels = np.eye(8, dtype=bool)[:, None, :]  # (8, 1, 8): mask k is pixel k
    gts = [gt(pixels[:4], [1] * 4)]
    dets = [det(pixels[[0, 5, 6, 1, 2]], [1] * 5, [0.9, 0.8, 0.7, 0.6, 0.5])]
    # recall    [1/4, 1/4, 1/4, 1/2, 3/4]   (steps 1/4, 0, 0, 1/4, 1/4)
    # precision [1,   1/2, 1/3, 1/2, 3/5]
    # envelope  [1,   3/5, 3/5, 3/5, 3/5]   (max of the precisions from there on)
    # area: 1/4 * 1 + 1/4 * 3/5 + 1/4 * 3/5 = 1/4 + 3/10 = 11/20
    # (the raw precision would give 1/4 * 1 + 1/4 * 1/2 + 1/4 * 3/5 = 21/40: the dip at recall 1/2 must not count)
    for matching in ("official", "coco"):
        m = evaluate_sds(dets, gts, use_07_metric=False, matching=matching)
        assert m["mAP@0.5"] == pytest.approx(11 / 20, abs=1e-15)
        assert m["mAP@0.7"] == m["mAP@0.5"]
    # VOC07 on the same ranking: levels 0, .1, .2 (<= 1/4) take the best precision overall, 1; levels .3 to .7
    # (5 levels, each reached by recall 1/2 or 3/4) take max(1/2, 3/5) = 3/5; .8, .9, 1 are never reached:
    # (3 * 1 + 5 * 3/5) / 11 = 6/11, with either set of levels (no recall is exactly 3/10, 6/10 or 7/10)
    for levels in ("official", "tenths"):
        assert evaluate_sds(dets, gts, recall_levels=levels)["mAP@0.5"] == pytest.approx(6 / 11, abs=1e-15)


def test_sds_ties_keep_image_then_detection_order():
    """Equal scores keep image order, then detection order (documented); fp then tp gives AP 1/2, tp then fp 1."""
    doc = " ".join(evaluate_sds.__doc__.split())
    assert "The sort is stable: equal scores keep image order, then detection order within the image." in doc
    hit, miss = strip(2, 8, (0, 4)), strip(2, 8, (4, 8))
    truth, nothing = gt(hit, [1]), gt(np.zeros((0, 2, 8)), [])
    for matching in ("official", "coco"):
        def ap(dets, gts, matching=matching):
            return evaluate_sds(dets, gts, matching=matching)["mAP@0.5"]

        # image 0: a miss on empty ground; image 1: a hit on its instance; both at 0.5: ranked fp, tp ->
        # precision [0, 1/2], recall [0, 1]; every recall level's best precision is 1/2 -> AP 1/2
        assert ap([det(miss, [1], [0.5]), det(hit, [1], [0.5])], [nothing, truth]) == 0.5
        # the same two images the other way round: tp, fp -> precision [1, 1/2], recall [1, 1] -> AP 1
        assert ap([det(hit, [1], [0.5]), det(miss, [1], [0.5])], [truth, nothing]) == 1.0
        # within one image: detection 0 (a miss) before detection 1 (a hit) -> fp, tp -> 1/2; reversed -> 1
        assert ap([det(np.concatenate([miss, hit]), [1, 1], [0.5, 0.5])], [truth]) == 0.5
        assert ap([det(np.concatenate([hit, miss]), [1, 1], [0.5, 0.5])], [truth]) == 1.0

    # 24 predictions in one 1 x 24 image, one-pixel instances at pixels 10..19.  Detections 0..9 are misses
    # (pixels 0..9), 10..19 hits (pixels 10..19), all at score 0.5; detections 20..23 are misses (pixels 20..23)
    # at 0.9, 0.1, 0.9, 0.1, so that the sort has more than one key to move.  Ranked: the two misses at 0.9
    # (20, 22), then 0..9 (misses), then 10..19 (hits), then the two at 0.1.
    pixels = np.eye(24, dtype=bool)[:, None, :]
    gts = [gt(pixels[10:20], [1] * 10)]
    dets = [det(pixels, [1] * 24, [0.5] * 20 + [0.9, 0.1, 0.9, 0.1])]
    # after 12 + j predictions (j = 1..10 hits) precision j / (12 + j) rises to 10/22 = 5/11 at recall 1, so
    # every level's best precision is 5/11: AP = 11 * (5/11) / 11 = 5/11; area: 10 steps of 1/10 at 5/11 = 5/11
    assert evaluate_sds(dets, gts)["mAP@0.5"] == pytest.approx(5 / 11, abs=1e-15)
    assert evaluate_sds(dets, gts, use_07_metric=False)["mAP@0.5"] == pytest.approx(5 / 11, abs=1e-15)
    # the same masks with the hits listed first among the equal scores: the two 0.9 misses, then the 10 hits:
    # precision j / (2 + j) rises to 10/12 = 5/6 at recall 1 -> every level 5/6 -> AP 5/6
    swapped = [det(pixels[[*range(10, 20), *range(10), 20, 21, 22, 23]], [1] * 24, [0.5] * 20 + [0.9, 0.1, 0.9, 0.1])]
    assert evaluate_sds(swapped, gts)["mAP@0.5"] == pytest.approx(5 / 6, abs=1e-15)


def test_sds_repeat_of_a_matched_instance():
    """The best instance already matched: a false positive by default, a match with the next free one by COCO's."""
    # a 1 x 10 image, instances [0, 6) (6 pixels) and [6, 10) (4 pixels).  Prediction 0 = [0, 6) (0.9) takes
    # instance 0 (IoU 1).  Prediction 1 = [0, 10) (0.8): IoU 6/10 with instance 0, 4/10 with instance 1
    gts = [gt(strip(1, 10, (0, 6), (6, 10)), [1, 1])]
    dets = [det(strip(1, 10, (0, 6), (0, 10)), [1, 1], [0.9, 0.8])]
    # official, t = 0.3: prediction 1's best instance overall is instance 0 (6/10 >= 0.3), already matched: a
    # repeat, fp, although instance 1 (4/10) also passes.  tp, fp -> precision [1, 1/2], recall [1/2, 1/2]:
    # VOC07 levels 0 to 0.5 (6 of 11) at precision 1 -> 6/11; area 1/2 * 1 = 1/2
    official = evaluate_sds(dets, gts, iou_thresholds=[0.3])
    assert official["mAP@0.3"] == pytest.approx(6 / 11, abs=1e-15)
    assert evaluate_sds(dets, gts, 0.3, use_07_metric=False)["mAP@0.3"] == pytest.approx(1 / 2, abs=1e-15)
    # coco, t = 0.3: instance 0 is out of the running, instance 1 (4/10 >= 0.3) is taken: tp, tp -> precision
    # [1, 1], recall [1/2, 1] -> every level at 1 -> AP 1; area 1/2 * 1 + 1/2 * 1 = 1
    assert evaluate_sds(dets, gts, 0.3, matching="coco")["mAP@0.3"] == 1.0
    assert evaluate_sds(dets, gts, 0.3, use_07_metric=False, matching="coco")["mAP@0.3"] == 1.0
    # at 0.5 the 4/10 is too low for either rule: tp, fp -> 6/11 both
    for matching in ("official", "coco"):
        m = evaluate_sds(dets, gts, iou_thresholds=0.5, matching=matching)
        assert m["mAP@0.5"] == pytest.approx(6 / 11, abs=1e-15)
    # a repeat does not use up anything: a third prediction [6, 10) (0.7) still takes instance 1 (IoU 1) under
    # the official rule: tp, fp, tp -> precision [1, 1/2, 2/3], recall [1/2, 1/2, 1] ->
    # (6 * 1 + 5 * 2/3) / 11 = 28/33; under COCO's, instance 1 is gone: tp, tp, fp -> every level at 1 -> 1
    dets3 = [det(strip(1, 10, (0, 6), (0, 10), (6, 10)), [1, 1, 1], [0.9, 0.8, 0.7])]
    assert evaluate_sds(dets3, gts, 0.3)["mAP@0.3"] == pytest.approx(28 / 33, abs=1e-15)
    assert evaluate_sds(dets3, gts, 0.3, matching="coco")["mAP@0.3"] == 1.0


def test_sds_threshold_is_inclusive_and_equal_ious_take_lower_index():
    """IoU exactly at the threshold is a tp; of equal IoUs the lower instance index is taken."""
    # prediction 0 = [0, 8) has IoU 4/8 = 1/2 with both instances [0, 4) and [4, 8): takes instance 0 (tp at 0.5)
    # prediction 1 = [0, 4): official, its best instance is instance 0 (IoU 1), taken -> a repeat, fp; coco,
    # instance 1 (IoU 0) is the only one left -> fp.  Recall 1/2 at precision 1: 6/11.  (Had prediction 0 taken
    # instance 1, prediction 1 would be a tp and the AP 1.)
    gts = [gt(strip(1, 8, (0, 4), (4, 8)), [1, 1])]
    dets = [det(strip(1, 8, (0, 8), (0, 4)), [1, 1], [0.9, 0.8])]
    for matching in ("official", "coco"):
        m = evaluate_sds(dets, gts, iou_thresholds=[0.5, 0.7], matching=matching)
        assert m["mAP@0.5"] == pytest.approx(6 / 11, abs=1e-15)
        # at 0.7 prediction 0 misses (1/2 < 0.7) and prediction 1 then takes instance 0 (IoU 1): fp, tp ->
        # precision [0, 1/2], recall [0, 1/2] -> 1/2 at the 6 levels up to 0.5 -> 3/11
        assert m["mAP@0.7"] == pytest.approx(3 / 11, abs=1e-15)
    # 7 of 10 pixels: IoU 7/10, equal to the double 0.7, counts at 0.7
    seven = evaluate_sds([det(strip(1, 10, (0, 7)), [1], [1.0])], [gt(strip(1, 10, (0, 10)), [1])])
    assert seven["mAP@0.7"] == 1.0


@pytest.mark.parametrize(("found", "official", "tenths"), [
    # k of 10 instances found, at precision 1 throughout: recall k/10; AP = (levels reached) / 11.
    # "tenths": levels 0, 0.1, ..., k/10 -> k + 1 levels.  "official" (np.arange(0, 1.1, 0.1)): the same, except
    # where the level is the double just above k/10: k = 3 (0.30000000000000004), 6 (0.6000000000000001) and
    # 7 (0.7000000000000001) miss their own level -> k levels
    (1, 2 / 11, 2 / 11), (2, 3 / 11, 3 / 11), (3, 3 / 11, 4 / 11), (4, 5 / 11, 5 / 11), (5, 6 / 11, 6 / 11),
    (6, 6 / 11, 7 / 11), (7, 7 / 11, 8 / 11), (8, 9 / 11, 9 / 11), (9, 10 / 11, 10 / 11), (10, 1.0, 1.0),
])
def test_sds_recall_levels(found, official, tenths):
    """A recall of exactly 3/10 (6/10, 7/10) misses the level "0.3" (0.6, 0.7) by default, reaches it as k / 10."""
    instances = np.eye(10, dtype=bool)[:, None, :]  # 10 one-pixel instances in a 1 x 10 image
    dets = [det(instances[:found], [1] * found, np.linspace(0.9, 0.1, found))]
    gts = [gt(instances, [1] * 10)]
    assert evaluate_sds(dets, gts)["mAP@0.5"] == pytest.approx(official, abs=1e-15)
    assert evaluate_sds(dets, gts, recall_levels="tenths")["mAP@0.5"] == pytest.approx(tenths, abs=1e-15)
    # the levels are not read by the area: k steps of 1/10 at precision 1
    for levels in ("official", "tenths"):
        area = evaluate_sds(dets, gts, use_07_metric=False, recall_levels=levels)["mAP@0.5"]
        assert area == pytest.approx(found / 10, abs=1e-15)


def test_sds_recall_level_constants():
    """The named level sets: np.arange(0, 1.1, 0.1)'s doubles (three just above their tenth) and k / 10; read-only."""
    official, tenths = SDS_RECALL_LEVELS["official"], SDS_RECALL_LEVELS["tenths"]
    assert official.tolist() == [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6000000000000001,
                                 0.7000000000000001, 0.8, 0.9, 1.0]
    assert tenths.tolist() == [k / 10 for k in range(11)]
    assert np.flatnonzero(official != tenths).tolist() == [3, 6, 7]
    with pytest.raises(ValueError, match="read-only"):
        official[3] = 0.3
    assert SDS_MATCHING == ("official", "coco")


def test_sds_class_without_ground_truth_or_without_predictions():
    """No ground truth: AP nan, left out of the mean.  Ground truth but no prediction: AP 0, in the mean."""
    hit = strip(2, 8, (0, 4))
    # class 1 found perfectly (AP 1), class 2 predicted but absent (nan), class 3 present but never predicted (0)
    dets = [det(np.concatenate([hit, strip(2, 8, (4, 8))]), [1, 2], [0.9, 0.8])]
    gts = [gt(np.concatenate([hit, strip(2, 8, (4, 6))]), [1, 3])]
    for use_07 in (True, False):
        m = evaluate_sds(dets, gts, use_07_metric=use_07)
        for t in (0.5, 0.7):
            assert m["per_class"][t][1] == 1.0 and math.isnan(m["per_class"][t][2]) and m["per_class"][t][3] == 0.0
            assert m[f"mAP@{t}"] == 0.5  # (1 + 0) / 2
    only_fp = evaluate_sds([det(hit, [2], [0.5])], [gt(np.zeros((0, 2, 8)), [])])
    assert math.isnan(only_fp["mAP@0.5"]) and math.isnan(only_fp["per_class"][0.5][2])


def test_sds_empty():
    """No images, or images with nothing in them: no classes, mAP nan."""
    for dets, gts in (([], []), ([det(np.zeros((0, 3, 3)), [], [])], [gt(np.zeros((0, 3, 3)), [])])):
        m = evaluate_sds(dets, gts)
        assert math.isnan(m["mAP@0.5"]) and math.isnan(m["mAP@0.7"]) and m["per_class"] == {0.5: {}, 0.7: {}}


def test_sds_perfect_detector_on_scenes():
    """Ground-truth masks given back as Detections, against Scenes, score AP 1 at both thresholds and both metrics."""
    scenes = [make_scene(s, image_shape=(48, 64), size_range=(12, 40), min_visible_area=16) for s in range(6)]
    dets = [Detections(boxes=sc.boxes, scores=np.linspace(1, 0.5, len(sc.labels), dtype=np.float32),
                       labels=sc.labels, masks=sc.masks, rois=np.arange(len(sc.labels))) for sc in scenes]
    assert sum(len(sc.labels) for sc in scenes) > 6
    for use_07 in (True, False):
        m = evaluate_sds(dets, scenes, use_07_metric=use_07)
        assert m["mAP@0.5"] == m["mAP@0.7"] == 1.0


@st.composite
def sds_sets(draw):
    """A few small images of disjoint ground-truth instances (a random label map) and random predictions."""
    images = []
    for _ in range(draw(st.integers(1, 3))):
        h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        ids = draw(hnp.arrays(np.int64, (h, w), elements=st.integers(0, 4)))  # 0: background
        gt_masks = np.array([ids == k for k in range(1, 5) if (ids == k).any()], bool).reshape(-1, h, w)
        gt_labels = draw(hnp.arrays(np.int64, (len(gt_masks),), elements=st.integers(1, 2)))
        n = draw(st.integers(0, 5))
        det_masks = draw(hnp.arrays(bool, (n, h, w)))
        det_labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(1, 2)))
        scores = draw(hnp.arrays(np.float64, (n,), elements=st.integers(1, 4).map(lambda v: v / 4)))
        images.append((det(det_masks, det_labels, scores), gt(gt_masks, gt_labels)))
    return [d for d, _ in images], [g for _, g in images]


@given(sds_sets(), st.booleans(), st.sampled_from(SDS_MATCHING), st.sampled_from(sorted(SDS_RECALL_LEVELS)))
def test_sds_properties(sets, use_07, matching, levels):
    """AP is in [0, 1] exactly where a class has ground truth (nan elsewhere); a false positive ranked last
    changes nothing; the ground truth itself as predictions scores 1; for every option."""
    dets, gts = sets
    options = {"use_07_metric": use_07, "matching": matching, "recall_levels": levels}
    m = evaluate_sds(dets, gts, **options)
    for c, ap in m["per_class"][0.5].items():
        has_gt = any((g.labels == c).any() for g in gts)
        assert (0 <= ap <= 1) if has_gt else math.isnan(ap)
    # a prediction of every class on empty ground, scored 0 (below all): recall does not move, nothing changes
    h, w = gts[0].masks.shape[1:]
    extra_image = (det(np.ones((2, h, w)), [1, 2], [0.0, 0.0]), gt(np.zeros((0, h, w)), []))
    m2 = evaluate_sds([*dets, extra_image[0]], [*gts, extra_image[1]], **options)
    for t in (0.5, 0.7):
        for c, ap in m["per_class"][t].items():
            assert ap == m2["per_class"][t][c] or (math.isnan(ap) and math.isnan(m2["per_class"][t][c]))
    perfect = [det(g.masks, g.labels, np.ones(len(g.labels))) for g in gts]
    assert all(ap == 1.0 for ap in evaluate_sds(perfect, gts, **options)["per_class"][0.7].values())


def test_sds_bad_input():
    """Mismatched lists, shapes, labels, thresholds and types are rejected, naming the argument."""
    hit = strip(2, 8, (0, 4))
    dets, gts = [det(hit, [1], [0.5])], [gt(hit, [1])]
    with pytest.raises(ValueError, match="one entry per image"):
        evaluate_sds(dets, gts * 2)
    with pytest.raises(TypeError, match=r"detections\[0\] must have attributes masks, labels, scores"):
        evaluate_sds([gt(hit, [1])], gts)
    with pytest.raises(TypeError, match=r"ground_truth\[0\]"):
        evaluate_sds(dets, [SimpleNamespace(masks=hit)])
    with pytest.raises(ValueError, match="same \\(H, W\\)"):
        evaluate_sds(dets, [gt(strip(2, 9, (0, 4)), [1])])
    with pytest.raises(ValueError, match=r"ground_truth\[0\].labels must be >= 1"):
        evaluate_sds(dets, [gt(hit, [0])])
    with pytest.raises(ValueError, match=r"detections\[0\].labels"):
        evaluate_sds([det(hit, [1, 1], [0.5])], gts)
    with pytest.raises(ValueError, match=r"detections\[0\].scores"):
        evaluate_sds([det(hit, [1], [0.5, 0.4])], gts)
    with pytest.raises(ValueError, match=r"detections\[0\].scores must be finite"):
        evaluate_sds([det(hit, [1], [np.nan])], gts)
    with pytest.raises(ValueError, match="iou_thresholds"):
        evaluate_sds(dets, gts, iou_thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="iou_thresholds"):
        evaluate_sds(dets, gts, iou_thresholds=[])
    with pytest.raises(TypeError, match="iou_thresholds"):
        evaluate_sds(dets, gts, iou_thresholds=["0.5"])
    with pytest.raises(TypeError, match="use_07_metric"):
        evaluate_sds(dets, gts, use_07_metric="yes")
    with pytest.raises(ValueError, match=r"matching must be one of \('official', 'coco'\), got 'voc'"):
        evaluate_sds(dets, gts, matching="voc")
    with pytest.raises(TypeError, match="matching must be a str"):
        evaluate_sds(dets, gts, matching=None)
    with pytest.raises(ValueError, match=r"recall_levels must be one of \('official', 'tenths'\), got 'coco'"):
        evaluate_sds(dets, gts, recall_levels="coco")
    with pytest.raises(TypeError, match="recall_levels must be a str"):
        evaluate_sds(dets, gts, recall_levels=11)
    with pytest.raises(TypeError, match="positional"):  # the options are keyword-only
        evaluate_sds(dets, gts, 0.5, True, "coco")


# ------------------------------------------------------------------------------------ evaluate_coco: checked input


def one_result(**change):
    """A perfect result on image 1 of ground_truth_dict, with fields changed."""
    dataset, objects = ground_truth_dict()
    return {**perfect_results(objects[:1])[0], **change}


@pytest.mark.parametrize(
    "segmentation, match",
    [
        # counts that do not add up to H x W: pycocotools loops forever on these
        ({"size": [64, 64], "counts": "1" * 2000}, r"results\[1\]\['segmentation'\]: RLE counts sum to 1000001"),
        # a 0 x 0 RLE: pycocotools divides by zero and the interpreter dies of SIGFPE
        ({"size": [0, 0], "counts": "02"}, r"results\[1\]\['segmentation'\]: RLE size \[0, 0\] is not the image's"),
        ({"size": [64, 63], "counts": [64 * 63]}, r"RLE size \[64, 63\] is not the image's \[height, width\]"),
        ({"size": [64, 64], "counts": [4000, -1, 97]}, "non-negative integers"),
        ({"size": [64, 64], "counts": "ab\x00"}, "outside '0'..'o'"),
        ({"size": [64, 64]}, "needs 'counts' and 'size'"),
        ([[5, 5, 11, 5, 11, 11]], "polygon results are not accepted"),
    ],
)
def test_evaluate_coco_rejects_bad_result_masks_before_pycocotools(segmentation, match):
    """Every result mask is checked before pycocotools sees it: a ValueError at once, never a hang or a crash."""
    dataset, _ = ground_truth_dict()
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        evaluate_coco([one_result(), one_result(segmentation=segmentation)], dataset)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(score=math.nan), ValueError, r"results\[0\]\['score'\] must be a finite real number, got nan"),
        (dict(score=math.inf), ValueError, r"results\[0\]\['score'\] must be a finite real number"),
        (dict(score="0.9"), ValueError, r"results\[0\]\['score'\] must be a finite real number"),
        (dict(score=True), ValueError, r"results\[0\]\['score'\] must be a finite real number"),
        (dict(category_id=4), ValueError, r"results\[0\] has category_id 4, which is not among the categories"),
        (dict(category_id=3.0), TypeError, r"results\[0\]\['category_id'\] must be an int, got float"),
        (dict(image_id=1.0), TypeError, r"results\[0\]\['image_id'\] must be an int, got float"),
        (dict(image_id="1"), TypeError, r"results\[0\]\['image_id'\] must be an int"),
        (dict(bbox=[0, 0, math.inf, 1]), ValueError, r"results\[0\]\['bbox'\]: bbox must be \[x, y, w, h\]"),
        (dict(bbox=[0, 0, -1, 1]), ValueError, r"results\[0\]\['bbox'\]: bbox must be"),
        (dict(bbox=[0, 0, 1]), ValueError, r"results\[0\]\['bbox'\]: bbox must be"),
        (dict(bbox=None), ValueError, r"results\[0\]\['bbox'\]: bbox must be"),
        (dict(segmentation=None), TypeError, r"results\[0\]\['segmentation'\] must be an RLE dict"),
    ],
)
def test_evaluate_coco_rejects_bad_result_fields(change, error, match):
    """Scores, categories, image ids and boxes are checked; a NaN score once ranked first and gave AP 1."""
    dataset, _ = ground_truth_dict()
    with pytest.raises(error, match=match):
        evaluate_coco([one_result(**change)], dataset)


def test_evaluate_coco_accepts_every_rle_form():
    """Uncompressed counts (which loadRes cannot read) and bytes counts score as the compressed str does."""
    dataset, objects = ground_truth_dict()
    results = perfect_results(objects)
    expected = evaluate_coco(results, dataset)
    as_bytes, as_list = [], []
    for r, (_, _, m) in zip(results, objects, strict=True):
        seg = r["segmentation"]
        as_bytes.append({**r, "segmentation": {**seg, "counts": seg["counts"].encode()}})
        flat = m.ravel(order="F")  # column-major; runs alternate background and foreground, background first
        bounds = np.r_[0, np.flatnonzero(np.diff(flat.astype(np.int8))) + 1, flat.size]
        runs = ([0] if flat[0] else []) + np.diff(bounds).tolist()
        as_list.append({**r, "segmentation": {"size": seg["size"], "counts": runs}})
    assert evaluate_coco(as_bytes, dataset) == expected
    assert evaluate_coco(as_list, dataset) == expected
    assert isinstance(results[0]["segmentation"]["counts"], str)  # the caller's results are untouched


def test_evaluate_coco_ground_truth_files(tmp_path):
    """A coco_gt path is read by the one JSON reader: missing, invalid or too deep is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"coco_gt '.*missing.json' is not a file"):
        evaluate_coco([], tmp_path / "missing.json")
    path = tmp_path / "gt.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"coco_gt '.*gt.json' is not valid JSON"):
        evaluate_coco([], path)
    path.write_text("[" * 100_000)
    with pytest.raises(ValueError, match=r"coco_gt '.*gt.json' is nested too deeply"):
        evaluate_coco([], path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="coco_gt must hold a JSON object"):
        evaluate_coco([], path)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d["images"].append(dict(d["images"][0])), r"images\[3\]: id 1 is used twice"),
        (lambda d: d["images"][0].update(id=2**63), r"images\[0\]\['id'\] = .* is outside the int64"),
        (lambda d: d["images"][0].update(height=0), "height and width must be >= 1"),
        (lambda d: d["annotations"][0].pop("area"), "annotation id 1 has no 'area'"),
        (lambda d: d["annotations"][0].update(area=math.nan), "annotation id 1: area must be a finite number"),
        (lambda d: d["annotations"][0].pop("bbox"), "annotation id 1 has no 'bbox'"),
        (lambda d: d["annotations"][0].update(category_id=9), "annotation id 1: category_id 9 is not in categories"),
        (lambda d: d["annotations"][0]["segmentation"].update(counts="1" * 2000),  # would hang pycocotools
         "coco_gt annotation id 1: RLE counts sum to"),
        (lambda d: d["annotations"][0].update(segmentation=[[0, 0, 1e9, 0, 0, 1e9]]),
         "coco_gt annotation id 1: a polygon must be an even number of coordinates"),
        (lambda d: d.pop("categories"), "coco_gt has no 'categories' list"),
    ],
)
def test_evaluate_coco_checks_the_ground_truth(change, match):
    """A dict ground truth gets load_coco's structural checks, plus what COCOeval reads (area, bbox, masks)."""
    dataset, objects = ground_truth_dict()
    change(dataset)
    with pytest.raises(ValueError, match=match):
        evaluate_coco(perfect_results(objects[1:2]), dataset)


def test_evaluate_coco_degenerate_ground_truth_polygons():
    """Polygons of fewer than three points are skipped as load_coco skips them; pycocotools failed on them."""
    dataset, objects = ground_truth_dict()
    for seg in ([], [[0, 0, 5, 5]], [[0, 0, 5, 5], [5, 5, 11, 5, 11, 11, 5, 11]]):
        changed = copy.deepcopy(dataset)
        changed["annotations"][0].pop("iscrowd")  # missing iscrowd is 0, as in load_coco
        changed["annotations"][0]["segmentation"] = seg
        metrics = evaluate_coco(perfect_results(objects[:1]), changed, iou_types=["segm"], image_ids=[1])
        assert metrics["segm"]["AP"] == pytest.approx(1.0 if len(seg) == 2 else 0.0, abs=1e-12)


def test_evaluate_coco_leaves_a_coco_object_untouched():
    """A COCO ground truth is checked and copied: COCOeval no longer writes into the caller's annotations."""
    dataset, objects = ground_truth_dict()
    dataset["annotations"][0]["segmentation"] = [[5, 5, 11, 5, 11, 11, 5, 11]]
    api = COCO()
    api.dataset = copy.deepcopy(dataset)
    api.createIndex()
    before = copy.deepcopy(api.dataset)
    metrics = evaluate_coco(perfect_results(objects), api)
    assert_metrics(metrics, {t: dict.fromkeys(COCO_METRICS, 1.0) for t in ("segm", "bbox")})
    assert api.dataset == before and api.anns[1] == before["annotations"][0]
    api.dataset["annotations"][0]["segmentation"] = {"size": [64, 64], "counts": "1" * 2000}
    with pytest.raises(ValueError, match="coco_gt annotation id 1: RLE counts sum to"):
        evaluate_coco([], api)


def test_sds_curves_are_the_ranked_predictions_behind_the_ap():
    """The hand-worked case above: the curve lists the predictions by score with their fate and running P/R."""
    dets = [det(strip(2, 8, (0, 4), (4, 8)), [1, 1], [0.8, 0.9]), det(strip(2, 8, (4, 8)), [1], [0.7])]
    gts = [gt(strip(2, 8, (0, 4)), [1]), gt(strip(2, 8, (4, 8)), [1])]
    m = evaluate_sds(dets, gts)
    assert m["curves"].keys() == {0.5, 0.7}
    curve = m["curves"][0.5][1]
    np.testing.assert_array_equal(curve["ranked"], [[0, 1], [0, 0], [1, 0]])  # 0.9 (on empty ground), 0.8, 0.7
    np.testing.assert_array_equal(curve["tp"], [False, True, True])
    np.testing.assert_allclose(curve["precision"], [0, 1 / 2, 2 / 3], rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve["recall"], [0, 1 / 2, 1], rtol=0, atol=1e-15)
    only_fp = evaluate_sds([det(strip(2, 8, (0, 4)), [2], [0.5])], [gt(np.zeros((0, 2, 8)), [])])
    lonely = only_fp["curves"][0.5][2]
    assert np.isnan(lonely["recall"]).all() and lonely["precision"].tolist() == [0.0]


@pytest.mark.parametrize("recall, precision, kw, error, words", [
    ([0.5, 0.25], [1.0, 1.0], {}, ValueError, "recall must never decrease"),
    ([0.5], [1.0, 1.0], {}, ValueError, "precision must have the shape of recall"),
    ([1.5], [1.0], {}, ValueError, "recall must lie in \\[0, 1\\]"),
    ([0.5], [np.nan], {}, ValueError, "precision"),
    ([0.5], [1.0], {"use_07_metric": 1}, TypeError, "use_07_metric must be a bool"),
    ([0.5], [1.0], {"recall_levels": "coco"}, ValueError, "recall_levels must be one of"),
])
def test_average_precision_rejects_bad_curves(recall, precision, kw, error, words):
    """average_precision names a bad curve or option."""
    with pytest.raises(error, match=words):
        average_precision(recall, precision, **kw)


def test_average_precision_official_levels_at_three_tenths():
    """A recall of exactly 3/10 reaches the level "0.3" of the tenths but not the official 0.30000000000000004."""
    recall, precision = np.array([0.1, 0.2, 0.3]), np.ones(3)
    assert average_precision(recall, precision) == pytest.approx(3 / 11, abs=1e-15)  # levels 0, 0.1, 0.2
    assert average_precision(recall, precision, recall_levels="tenths") == pytest.approx(4 / 11, abs=1e-15)


def test_covering_classes_counts_the_best_covering_detections_class():
    """Ground truth as detections names every instance right; the same masks with the next class name none; a
    detection that misses every mask covers nothing; a wrong class scored below a right one does not count."""
    from fcis_twin.reference.evaluate import covering_classes
    from fcis_twin.reference.shapes import make_dataset

    scenes = make_dataset(4, seed=3, image_size=(48, 48), max_objects=3, size_range=(12, 30))
    total = sum(len(s.labels) for s in scenes)

    def detections(scene, labels, scores=None):
        return SimpleNamespace(masks=scene.masks, labels=labels,
                               scores=np.ones(len(labels)) if scores is None else scores)

    right = covering_classes([detections(s, s.labels) for s in scenes], scenes)
    assert right == {"instances": total, "covered": total, "named_right": total}
    wrong = covering_classes([detections(s, s.labels % 4 + 1) for s in scenes], scenes)
    assert wrong == {"instances": total, "covered": total, "named_right": 0}
    scene = scenes[0]
    both = SimpleNamespace(masks=np.concatenate([scene.masks, scene.masks]),
                           labels=np.concatenate([scene.labels % 4 + 1, scene.labels]),
                           scores=np.concatenate([np.full(len(scene.labels), 0.4), np.full(len(scene.labels), 0.6)]))
    assert covering_classes([both], [scene])["named_right"] == len(scene.labels)
    empty = SimpleNamespace(masks=np.zeros((0, 48, 48), bool), labels=np.zeros(0, np.int64), scores=np.zeros(0))
    assert covering_classes([empty], [scene]) == {"instances": len(scene.labels), "covered": 0, "named_right": 0}
    with pytest.raises(ValueError, match="iou_threshold"):
        covering_classes([empty], [scene], iou_threshold=1.5)
