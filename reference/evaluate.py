r"""Evaluation of instance masks: COCO mask and box AP through pycocotools, and the SBD :math:`mAP^r` of the paper.

Two metric families, as in Li et al., CVPR 2017, Sec. 4: COCO's AP averaged over IoU thresholds 0.5:0.95 (with
AP50, AP75 and AP for small, medium and large objects), computed by ``pycocotools.cocoeval.COCOeval`` on results in
COCO's format (:func:`detections_to_coco`, :func:`evaluate_coco`); and the :math:`mAP^r` at mask IoU 0.5 and 0.7 of
Hariharan et al.'s SDS, used on SBD (the paper's Tables 1-3), written out in NumPy by the protocol of the official
FCIS code (:func:`evaluate_sds`).  The latter matches by :func:`mask_iou`, which agrees exactly with
``pycocotools.mask.iou``, the IoU of ``COCOeval``.
"""

import contextlib
import io
import math
import numbers
import os
from collections.abc import Mapping

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ._checks import as_array, as_boxes, as_int, as_labels, as_probability
from ._files import read_json
from .coco_format import (
    check_box,
    check_dataset,
    check_segmentation,
    coco_api,
    finite_float,
    is_int,
    pycocotools_dataset,
    rle_counts,
)

#: Names of ``COCOeval.stats[0:6]``: AP at IoU 0.5:0.95, at 0.5, at 0.75, and for small, medium, large objects.
COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
#: The iou types :func:`evaluate_coco` knows.
IOU_TYPES = ("segm", "bbox")
#: The matching rules of :func:`evaluate_sds`: the official FCIS code's (the default), and COCO's.
SDS_MATCHING = ("official", "coco")


def _read_only(array):
    array.flags.writeable = False
    return array


#: The recall levels of :func:`evaluate_sds`'s 11-point AP, by name: the float64 values of the official code's
#: ``np.arange(0, 1.1, 0.1)`` (the default; 0.30000000000000004 at "0.3"), and the tenths ``k / 10``.  Read-only.
SDS_RECALL_LEVELS = {
    "official": _read_only(np.arange(0.0, 1.1, 0.1)),
    "tenths": _read_only(np.arange(11) / 10),
}


def mask_iou(masks_a, masks_b):
    r"""Pairwise intersection over union of binary masks.

    Parameters
    ----------
    masks_a : (D, H, W) bool array_like
    masks_b : (G, H, W) bool array_like

    Returns
    -------
    iou : (D, G) float64 ndarray
        ``|a & b| / |a | b|``; 0 where both masks are empty.

    Notes
    -----
    Both counts are exact integers in float64 and the quotient is rounded once, so the result equals
    ``pycocotools.mask.iou(encode(a), encode(b), iscrowd=[0] * G)`` bit for bit, including 0 for two empty masks.
    (pycocotools returns a list ``[]`` rather than a ``(D, 0)`` array when either side is empty.)

    Examples
    --------
    >>> a = np.zeros((1, 2, 4), bool); a[0, :, :2] = True    # 4 pixels
    >>> b = np.zeros((1, 2, 4), bool); b[0, :, 1:3] = True   # 4 pixels, 2 shared
    >>> mask_iou(a, b)  # 2 / (4 + 4 - 2)
    array([[0.33333333]])
    """
    a = as_array("masks_a", masks_a, ndim=3, dtype=bool)
    b = as_array("masks_b", masks_b, ndim=3, dtype=bool)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"masks_a and masks_b must have the same (H, W), got {a.shape[1:]} and {b.shape[1:]}")
    fa = a.reshape(len(a), math.prod(a.shape[1:])).astype(np.float64)  # (D, H*W), also for D = 0
    fb = b.reshape(len(b), math.prod(b.shape[1:])).astype(np.float64)  # (G, H*W)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def detections_to_coco(detections, image_id, category_ids):
    """The detections of one image as a COCO results list.

    Parameters
    ----------
    detections : Detections
        Or any object with ``boxes`` (D, 4) half-open, ``scores`` (D,), ``labels`` (D,) int in ``1 .. C-1`` and
        ``masks`` (D, H, W) bool.
    image_id : int
        The COCO image id.
    category_ids : sequence or mapping
        Our label -> COCO category id: ``category_ids[label]``.  A sequence or array is indexed by label (entry 0,
        the background, is never read: labels must be >= 1); a mapping needs a key for every label present.

    Returns
    -------
    results : list of dict
        One per detection, in order: ``{"image_id", "category_id", "segmentation", "bbox", "score"}``, with the
        mask as compressed RLE (``{"size": [H, W], "counts": str}``, ``pycocotools.mask.encode``) and the box as
        ``[x1, y1, x2 - x1, y2 - y1]`` (COCO's ``[x, y, w, h]`` is half-open too).  Plain Python numbers, ready for
        ``json.dump``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> masks = np.zeros((1, 2, 3), bool); masks[0, :, 1] = True  # column-major runs: 2 off, 2 on, 2 off
    >>> det = SimpleNamespace(boxes=[[1, 0, 2, 2]], scores=[0.75], labels=[1], masks=masks)
    >>> detections_to_coco(det, 7, category_ids=[None, 42])
    [{'image_id': 7, 'category_id': 42, 'segmentation': {'size': [2, 3], 'counts': '222'},
      'bbox': [1.0, 0.0, 1.0, 2.0], 'score': 0.75}]
    """
    masks = as_array("detections.masks", detections.masks, ndim=3, dtype=bool)
    num = masks.shape[0]
    boxes = np.asarray(detections.boxes)
    boxes = as_boxes("detections.boxes", boxes.reshape(0, 4) if boxes.size == 0 else boxes)
    if boxes.shape[0] != num:
        raise ValueError(f"detections.boxes must have shape ({num}, 4) to match the masks, got {boxes.shape}")
    scores = as_array("detections.scores", detections.scores, ndim=1, dtype=np.float64)
    if scores.shape != (num,):
        raise ValueError(f"detections.scores must have shape ({num},) to match the masks, got {scores.shape}")
    labels = _as_class_labels("detections.labels", detections.labels, num)
    image_id = as_int("image_id", image_id)
    categories = [_category_id(category_ids, int(c)) for c in labels]
    if num == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))  # wants (H, W, D)
    xywh = boxes.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]  # (x1, y1, x2, y2) -> (x, y, w, h), exact for float32 inputs
    return [
        {
            "image_id": image_id,
            "category_id": categories[d],
            "segmentation": {"size": [int(s) for s in rles[d]["size"]], "counts": rles[d]["counts"].decode("ascii")},
            "bbox": [float(v) for v in xywh[d]],
            "score": float(scores[d]),
        }
        for d in range(num)
    ]


def _category_id(category_ids, label):
    if isinstance(category_ids, Mapping):
        if label not in category_ids:
            raise ValueError(f"category_ids has no entry for label {label}")
        value = category_ids[label]
    else:
        try:
            value = category_ids[label] if 0 <= label < len(category_ids) else None
        except TypeError:
            kind = type(category_ids).__name__
            raise TypeError(f"category_ids must be a sequence or a mapping, got {kind}") from None
        if value is None:
            raise ValueError(f"category_ids has no entry for label {label}")
    return as_int(f"category_ids[{label}]", value)


def evaluate_coco(results, coco_gt, *, iou_types=IOU_TYPES, image_ids=None, verbose=False):
    """COCO AP of results against a COCO-format ground truth, through ``pycocotools.cocoeval.COCOeval``.

    Parameters
    ----------
    results : list of dict
        COCO results (:func:`detections_to_coco`), possibly empty; not modified.  Each has an int ``image_id``
        of ``coco_gt``, an int ``category_id`` among its categories, a finite real ``score``, and a
        ``segmentation`` (needed for ``"segm"``) and/or a ``bbox`` (for ``"bbox"``; the mask's tight box when
        missing).  A ``segmentation`` is an RLE dict whose ``size`` is its image's ``[height, width]`` and whose
        ``counts`` (compressed str or bytes, or an uncompressed list of ints) are non-negative runs summing to
        ``height * width``; polygons are not accepted (COCO's results format is RLE).  A ``bbox`` is four finite
        numbers ``[x, y, w, h]`` with ``w, h >= 0``.  Other keys are ignored.
    coco_gt : pycocotools.coco.COCO, path to an ``instances.json``, or the dict such a file holds
        Checked as :func:`fcis_twin.reference.coco.load_coco` checks its file (without image file names), and
        every annotation needs an ``area``; a ``bbox`` too for ``"bbox"``; a ``segmentation`` for ``"segm"``,
        whose polygon coordinates and RLE counts are checked as well.  Never modified: pycocotools works on a
        copy of its records (of a COCO object, of its ``dataset``).
    iou_types : sequence of {"segm", "bbox"}
    image_ids : sequence of int, optional
        Evaluate on these images of ``coco_gt`` only (default: all of them).
    verbose : bool
        Let pycocotools print its progress and summary tables (silent otherwise).

    Returns
    -------
    metrics : dict
        ``{iou_type: {"AP", "AP50", "AP75", "APs", "APm", "APl"}}``: ``COCOeval.stats[0:6]`` as floats in
        ``[0, 1]``, at most 100 detections per image.  pycocotools' ``-1`` ("no ground truth in this area range")
        becomes ``nan``.

    Raises
    ------
    TypeError
        An argument, result or field of the wrong type, naming it (``results[3]['score']``).
    ValueError
        A ground truth that cannot be read or is not COCO's (naming the record), or a result that breaks the
        rules above (naming ``results[i]`` and the field).  Everything is checked before pycocotools sees it:
        pycocotools loops forever on RLE counts that do not add up to ``height * width`` and stops the
        interpreter on an RLE of size 0 x 0.

    Notes
    -----
    For ``"segm"`` the results are evaluated without their ``"bbox"`` key: given one, ``COCO.loadRes`` takes the
    box area as the detection's area, and small / medium / large would mean box sizes rather than mask sizes
    (Detectron2 does the same).  For ``"bbox"`` a result without one gets its mask's tight box.  An empty
    ``results`` gives AP 0 for every range that holds ground truth (``loadRes`` cannot read an empty list; an empty
    result set is built instead).  Ground-truth polygons of fewer than three points are skipped, as in
    ``load_coco`` (an annotation with none left is an empty mask).  ``COCOeval``'s precision is
    ``tp / (tp + fp + np.spacing(1))``, so a perfect AP comes out as ``1 - 2**-52`` or so, not 1.

    Examples
    --------
    >>> rle = {"size": [2, 3], "counts": "222"}  # one column of 2 pixels: an object of area 2, small
    >>> gt = {"images": [{"id": 1, "height": 2, "width": 3}], "categories": [{"id": 5, "name": "dot"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "segmentation": rle, "area": 2,
    ...                        "bbox": [1, 0, 1, 2], "iscrowd": 0}]}
    >>> perfect = [{"image_id": 1, "category_id": 5, "segmentation": rle, "bbox": [1, 0, 1, 2], "score": 0.9}]
    >>> {k: round(v, 9) for k, v in evaluate_coco(perfect, gt)["segm"].items()}  # no medium or large objects: nan
    {'AP': 1.0, 'AP50': 1.0, 'AP75': 1.0, 'APs': 1.0, 'APm': nan, 'APl': nan}
    >>> evaluate_coco([], gt, iou_types=["bbox"])["bbox"]["AP"]
    0.0
    """
    iou_types = _as_iou_types(iou_types)
    records = _ground_truth(coco_gt, iou_types)
    sizes = {img["id"]: (img["height"], img["width"]) for img in records.images}
    if not sizes:
        raise ValueError("coco_gt must hold at least one image")
    if image_ids is None:
        image_ids = sorted(sizes)
    else:
        if isinstance(image_ids, (str, bytes)) or not hasattr(image_ids, "__iter__"):
            raise TypeError(f"image_ids must be a sequence of ints, got {type(image_ids).__name__}")
        image_ids = sorted({as_int("image_ids", i) for i in image_ids})
        if not image_ids or not set(image_ids) <= sizes.keys():
            raise ValueError(f"image_ids must be a non-empty subset of the images of coco_gt, got {image_ids[:10]}")
    results = _as_results(results, sizes, set(records.category_ids), iou_types)
    with _quiet(verbose):
        gt = coco_api(pycocotools_dataset(records.images, records.categories, records.annotations))

    metrics = {}
    for iou_type in iou_types:
        # loadRes writes into every result dict: give it copies; for "segm" without "bbox", for "bbox" with one
        if iou_type == "segm":
            own = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        else:
            own = [{**r, "bbox": r["bbox"] if "bbox" in r else _rle_box(r["segmentation"])} for r in results]
        with _quiet(verbose):
            dt = gt.loadRes(own) if own else _empty_results(gt)
            ev = COCOeval(gt, dt, iouType=iou_type)
            ev.params.imgIds = image_ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = zip(COCO_METRICS, ev.stats[:6], strict=True)
        metrics[iou_type] = {name: float(v) if v >= 0 else math.nan for name, v in stats}
    return metrics


def _quiet(verbose):
    """pycocotools prints its progress on stdout: swallow it unless ``verbose``."""
    return contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())


def _ground_truth(coco_gt, iou_types):
    """The records of ``coco_gt`` (a COCO object, a path or a dict), checked for the iou types evaluated."""
    if isinstance(coco_gt, COCO):
        dataset = coco_gt.dataset
    elif isinstance(coco_gt, (str, os.PathLike)):
        dataset = read_json("coco_gt", coco_gt)
    elif isinstance(coco_gt, Mapping):
        dataset = coco_gt
    else:
        raise TypeError(f"coco_gt must be a pycocotools COCO, a path or a dict, got {type(coco_gt).__name__}")
    segm = "segm" in iou_types
    records = check_dataset("coco_gt", dataset, file_names=False, segmentations=segm, boxes="bbox" in iou_types,
                            areas=True)
    if segm:  # pycocotools decodes every ground-truth mask: check what it will read
        sizes = {img["id"]: (img["height"], img["width"]) for img in records.images}
        for ann in records.annotations:
            check_segmentation(ann["segmentation"], *sizes[ann["image_id"]], f"coco_gt annotation id {ann['id']}")
    return records


def _as_iou_types(iou_types):
    if not isinstance(iou_types, str) and not hasattr(iou_types, "__iter__"):
        raise TypeError(f"iou_types must be a sequence of {IOU_TYPES}, got {type(iou_types).__name__}")
    iou_types = (iou_types,) if isinstance(iou_types, str) else tuple(iou_types)
    if not iou_types or any(t not in IOU_TYPES for t in iou_types):
        raise ValueError(f"iou_types must be a non-empty sequence of {IOU_TYPES}, got {iou_types!r}")
    return iou_types


def _as_results(results, sizes, category_ids, iou_types):
    """Checked copies of the results, in the form pycocotools reads: ``image_id``, ``category_id``, ``score``,
    and ``segmentation`` (compressed RLE with str counts) and ``bbox`` where given."""
    if isinstance(results, (str, bytes, Mapping)) or not hasattr(results, "__iter__"):
        raise TypeError(f"results must be a list of dicts, got {type(results).__name__}")
    needs = {"segm": "segmentation", "bbox": "bbox"}
    checked = []
    for i, r in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(r, Mapping):
            raise TypeError(f"{where} must be a dict, got {type(r).__name__}")
        missing = [k for k in ("image_id", "category_id", "score") if k not in r]
        missing += [needs[t] for t in iou_types if needs[t] not in r and not (t == "bbox" and "segmentation" in r)]
        if missing:
            raise ValueError(f"{where} lacks {missing}")
        for key in ("image_id", "category_id"):
            if not is_int(r[key]):
                raise TypeError(f"{where}['{key}'] must be an int, got {type(r[key]).__name__}")
        if r["image_id"] not in sizes:
            raise ValueError(f"{where} has image_id {r['image_id']!r}, which coco_gt does not hold")
        if r["category_id"] not in category_ids:
            raise ValueError(f"{where} has category_id {r['category_id']!r}, which is not among the categories of "
                             "coco_gt")
        score = finite_float(r["score"])
        if score is None:
            raise ValueError(f"{where}['score'] must be a finite real number, got {r['score']!r}")
        out = {"image_id": int(r["image_id"]), "category_id": int(r["category_id"]), "score": score}
        if "segmentation" in r:
            out["segmentation"] = _result_rle(r["segmentation"], *sizes[r["image_id"]], f"{where}['segmentation']")
        if "bbox" in r:
            check_box(r["bbox"], f"{where}['bbox']")
            out["bbox"] = [float(v) for v in r["bbox"]]
        checked.append(out)
    return checked


def _result_rle(seg, h, w, where):
    """A result's segmentation, checked, as compressed RLE with str counts."""
    if isinstance(seg, list):
        raise ValueError(f"{where} must be an RLE dict {{'size', 'counts'}}, got a list: polygon results are not "
                         "accepted (COCO's results format is RLE)")
    if not isinstance(seg, Mapping):
        raise TypeError(f"{where} must be an RLE dict {{'size', 'counts'}}, got {type(seg).__name__}")
    runs = rle_counts(seg, h, w, where)
    counts = seg["counts"]
    if isinstance(counts, list):  # uncompressed: loadRes reads compressed RLE only
        counts = mask_util.frPyObjects({"size": [h, w], "counts": runs}, h, w)["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")  # checked: '0'..'o' only
    return {"size": [h, w], "counts": counts}


def _rle_box(rle):
    """``[x, y, w, h]`` of a compressed RLE: its tight box."""
    return [float(v) for v in mask_util.toBbox(rle)]


def _empty_results(gt):
    """A result set with no detections: what ``gt.loadRes([])`` would be if it did not fail."""
    dt = COCO()
    dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset.get("categories", [])),
                  "annotations": []}
    dt.createIndex()
    return dt


def evaluate_sds(detections, ground_truth, iou_thresholds=(0.5, 0.7), use_07_metric=True, *, matching="official",
                 recall_levels="official"):
    r"""The SDS :math:`mAP^r` (Hariharan et al., ECCV 2014) over a set of images, by the FCIS paper's protocol.

    Parameters
    ----------
    detections : sequence of Detections
        One per image; any objects with ``masks`` (D, H, W) bool, ``labels`` (D,) int >= 1 and ``scores`` (D,).
    ground_truth : sequence of Scene
        One per image; any objects with ``masks`` (G, H, W) bool and ``labels`` (G,) int >= 1.
    iou_thresholds : float or sequence of float in [0, 1]
        A match needs a mask IoU ``>=`` the threshold.
    use_07_metric : bool
        VOC 2007's 11-point AP (what the official FCIS code reports), else the area under the precision envelope.
    matching : {"official", "coco"}
        How a prediction finds its ground-truth instance (step 2 of the Notes).  ``"official"``: the
        best-overlapping instance of its class in its image, matched or not; a repeat of a matched instance is a
        false positive.  ``"coco"``: the best-overlapping instance among those still unmatched.
    recall_levels : {"official", "tenths"}
        The 11 recall levels of the VOC07 AP (step 4; not read when ``use_07_metric`` is False).
        ``"official"``: the float64 values of ``np.arange(0, 1.1, 0.1)``, three of which lie just above their
        tenth (0.30000000000000004, 0.6000000000000001, 0.7000000000000001).  ``"tenths"``: ``k / 10``, so that
        a recall of exactly 3/10, 6/10 or 7/10 reaches the level of that name.

    Returns
    -------
    metrics : dict
        ``"mAP@{t:g}"`` per threshold (``"mAP@0.5"``, ``"mAP@0.7"``): the mean AP over the classes with ground
        truth (``nan`` if none has); ``"per_class"``: ``{t: {label: AP}}`` (float keys ``t`` as given), for every
        label found in ``detections`` or ``ground_truth``, ``nan`` for a label without ground truth.

    Raises
    ------
    TypeError
        An argument of the wrong type, naming it (``matching`` must be a str, ``use_07_metric`` a bool, ...).
    ValueError
        Lists of different lengths, masks of different sizes, labels below 1, scores that are not finite,
        thresholds outside ``[0, 1]``, or a ``matching`` / ``recall_levels`` not among the names above.

    Notes
    -----
    The FCIS paper reports this metric at IoU 0.5 and 0.7 on SBD's VOC 2012 validation images (Li et al.,
    CVPR 2017, Sec. 4, Tables 1-3), computed by ``voc_eval_sds`` and ``voc_ap`` in ``lib/dataset/pascal_voc_eval.py``
    of the official FCIS code (after MNC), which ``_py_evaluate_segmentation`` in ``lib/dataset/pascal_voc.py``
    calls at 0.5 and 0.7 with the 11-point AP.  The defaults follow it.  Per class ``c`` and threshold ``t``:

    1. The predictions of class ``c`` over all images, by descending score.  The sort is stable: equal scores
       keep image order, then detection order within the image.
    2. In that order each prediction takes, among **all** ground-truth instances of class ``c`` in its image,
       the one of highest mask IoU (:func:`mask_iou`; equal IoUs: the lowest index).  It is a true positive if
       that IoU is ``>= t`` and the instance is not yet matched; the instance is then matched.  It is a false
       positive if the IoU is below ``t``, if the image holds no instance of ``c``, or if the instance is already
       matched (a repeat), even when another, unmatched instance also reaches ``t``.
    3. After ``n`` predictions, :math:`\text{prec}_n = TP_n / n` and :math:`\text{rec}_n = TP_n / N_c`
       (:math:`N_c` ground-truth instances of class ``c`` over all images).
    4. VOC07: :math:`AP = \frac{1}{11} \sum_r \max_{\text{rec}_n \ge r} \text{prec}_n` (0 where no prediction
       reaches ``r``) over the 11 levels ``r`` of ``np.arange(0, 1.1, 0.1)``.  As float64, its fourth, seventh and
       eighth values are a little above 0.3, 0.6 and 0.7, so a recall of exactly 3/10 does not reach the level
       "0.3" (nor 6/10 and 7/10 theirs).  Otherwise :math:`AP = \sum_n (\text{rec}_n - \text{rec}_{n-1})
       \max_{m \ge n} \text{prec}_m`, with :math:`\text{rec}_0 = 0`.

    The options change one step each: ``matching="coco"`` makes step 2 choose among the instances still
    unmatched, so that a prediction whose best instance is taken can match another one that reaches ``t`` (the
    rule of ``COCOeval.evaluateImg`` in pycocotools' ``cocoeval.py``, here without its crowd and area handling and
    with the lowest index among equal IoUs where COCOeval keeps the last); ``recall_levels="tenths"`` makes the
    levels of step 4 ``k / 10``.

    Whatever the options, three details differ from the official code: its sort, ``np.argsort(-scores)``, is not
    stable, so its equal scores come in no defined order; it adds the 11 terms as ``p / 11`` one by one where this
    function divides their sum by 11 (the two may differ in the last bit: a perfect class gives ``1 + 2**-52``
    there and 1 here); and it averages over the 20 VOC classes, where a class without ground truth would score 0
    (its recall is ``0 / 0``), while here its AP is ``nan`` and it is left out of the mean (every class has
    instances in SBD's validation set).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> gt_mask = np.zeros((1, 2, 2), bool); gt_mask[0, 0] = True              # top row: 2 pixels
    >>> gt = SimpleNamespace(masks=gt_mask, labels=[1])
    >>> det = SimpleNamespace(masks=np.ones((2, 2, 2), bool), labels=[1, 1], scores=[0.9, 0.8])
    >>> m = evaluate_sds([det], [gt])  # IoU 2/4: a tp at 0.5 then a repeat; nothing at 0.7
    >>> m["mAP@0.5"], m["mAP@0.7"], m["per_class"]
    (1.0, 0.0, {0.5: {1: 1.0}, 0.7: {1: 0.0}})

    Where the two matching rules part: instances of 3 pixels and 1 pixel in a 1 x 4 image; the second prediction
    covers both, IoU 3/4 with the first instance (already matched) and 1/4 with the second.

    >>> gt = SimpleNamespace(masks=np.array([[[1, 1, 1, 0]], [[0, 0, 0, 1]]], bool), labels=[1, 1])
    >>> det = SimpleNamespace(masks=np.array([[[1, 1, 1, 0]], [[1, 1, 1, 1]]], bool), labels=[1, 1],
    ...                       scores=[0.9, 0.8])
    >>> evaluate_sds([det], [gt], 0.25)["mAP@0.25"]  # tp, repeat: recall 1/2 at precision 1, 6 of 11 levels
    0.5454545454545454
    >>> evaluate_sds([det], [gt], 0.25, matching="coco")["mAP@0.25"]  # tp, tp (the second instance at 1/4)
    1.0
    """
    images = _sds_images(detections, ground_truth)
    thresholds = _as_thresholds(iou_thresholds)
    if not isinstance(use_07_metric, (bool, np.bool_)):
        raise TypeError(f"use_07_metric must be a bool, got {type(use_07_metric).__name__}")
    matching = _as_name("matching", matching, SDS_MATCHING)
    levels = SDS_RECALL_LEVELS[_as_name("recall_levels", recall_levels, tuple(SDS_RECALL_LEVELS))]
    ious = [mask_iou(det_masks, gt_masks) for det_masks, _, _, gt_masks, _ in images]  # (D_i, G_i) per image
    classes = sorted({int(c) for _, det_labels, _, _, gt_labels in images for c in (*det_labels, *gt_labels)})

    per_class = {t: {} for t in thresholds}
    for c in classes:
        # the predictions of class c in image order, then detection order: (image, detection, score)
        owner = [(i, j, scores[j]) for i, (_, labels, scores, _, _) in enumerate(images)
                 for j in np.flatnonzero(labels == c)]
        order = np.argsort([-s for _, _, s in owner], kind="stable")  # descending score, ties keep that order
        ranked = [owner[k][:2] for k in order]
        is_class = [gt_labels == c for *_, gt_labels in images]
        num_gt = sum(int(m.sum()) for m in is_class)
        for t in thresholds:
            tp = _match(ranked, ious, is_class, t, matching)
            per_class[t][c] = _average_precision(tp, num_gt, use_07_metric, levels)

    metrics = {}
    for t in thresholds:
        defined = [ap for ap in per_class[t].values() if not math.isnan(ap)]
        metrics[f"mAP@{t:g}"] = sum(defined) / len(defined) if defined else math.nan
    metrics["per_class"] = per_class
    return metrics


def _match(ranked, ious, is_class, threshold, matching):
    """(n,) bool: whether each ranked prediction ``(image, detection)`` is a true positive, by ``matching``."""
    matched = [np.zeros(len(m), bool) for m in is_class]  # per image, per ground-truth instance
    tp = np.zeros(len(ranked), bool)
    for n, (i, j) in enumerate(ranked):
        # "official": every instance of the class competes; "coco": only those not matched yet
        candidates = is_class[i] if matching == "official" else is_class[i] & ~matched[i]
        if not candidates.any():
            continue
        iou = np.where(candidates, ious[i][j], -1.0)  # (G_i,): instances out of the running never win
        g = int(np.argmax(iou))  # the first of equal IoUs
        if iou[g] >= threshold and not matched[i][g]:  # a matched best instance: a repeat, a false positive
            tp[n] = True
            matched[i][g] = True
    return tp


def _average_precision(tp, num_gt, use_07_metric, levels):
    """AP of one class from its ranked true-positive flags; nan without ground truth.  ``levels``: the 11 recall
    levels of the VOC07 AP."""
    if num_gt == 0:
        return math.nan
    tp_count = np.cumsum(tp)  # (n,)
    recall = tp_count / num_gt
    precision = tp_count / np.arange(1, len(tp) + 1)
    if use_07_metric:
        total = 0.0
        for r in levels:
            reached = recall >= r
            total += float(precision[reached].max()) if reached.any() else 0.0
        return total / 11
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # (n,): best precision at this recall or beyond
    steps = np.diff(recall, prepend=0.0)  # (n,): recall gained by each prediction
    return float(np.sum(steps * envelope))


def _as_name(name, value, choices):
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _sds_images(detections, ground_truth):
    """Per image ``(det_masks, det_labels, det_scores, gt_masks, gt_labels)``, validated."""
    detections, ground_truth = list(detections), list(ground_truth)
    if len(detections) != len(ground_truth):
        raise ValueError(f"detections and ground_truth must have one entry per image, got {len(detections)} "
                         f"and {len(ground_truth)}")
    images = []
    for i, (det, gt) in enumerate(zip(detections, ground_truth, strict=True)):
        for name, obj, attrs in ((f"detections[{i}]", det, ("masks", "labels", "scores")),
                                 (f"ground_truth[{i}]", gt, ("masks", "labels"))):
            if not all(hasattr(obj, a) for a in attrs):
                raise TypeError(f"{name} must have attributes {', '.join(attrs)}")
        det_masks = as_array(f"detections[{i}].masks", det.masks, ndim=3, dtype=bool)
        gt_masks = as_array(f"ground_truth[{i}].masks", gt.masks, ndim=3, dtype=bool)
        if det_masks.shape[1:] != gt_masks.shape[1:]:
            raise ValueError(f"detections[{i}].masks and ground_truth[{i}].masks must have the same (H, W), got "
                             f"{det_masks.shape[1:]} and {gt_masks.shape[1:]}")
        det_labels = _as_class_labels(f"detections[{i}].labels", det.labels, det_masks.shape[0])
        gt_labels = _as_class_labels(f"ground_truth[{i}].labels", gt.labels, gt_masks.shape[0])
        scores = as_array(f"detections[{i}].scores", det.scores, ndim=1, dtype=np.float64)
        if scores.shape != det_labels.shape:
            raise ValueError(f"detections[{i}].scores must have shape {det_labels.shape} to match the masks, "
                             f"got {scores.shape}")
        images.append((det_masks, det_labels, scores, gt_masks, gt_labels))
    return images


def _as_class_labels(name, labels, length):
    labels = as_labels(name, _empty_as_int(labels), length)
    if (labels < 1).any():
        raise ValueError(f"{name} must be >= 1 (0 is background)")
    return labels


def _empty_as_int(labels):
    """An empty label list such as ``[]`` (float64 to NumPy) is an empty int64 array; anything else unchanged."""
    arr = np.asarray(labels)
    return arr.astype(np.int64) if arr.size == 0 and arr.dtype == np.float64 else labels


def _as_thresholds(iou_thresholds):
    if isinstance(iou_thresholds, numbers.Real):
        iou_thresholds = (iou_thresholds,)
    thresholds = tuple(as_probability("iou_thresholds", t) for t in iou_thresholds)
    if not thresholds:
        raise ValueError("iou_thresholds must hold at least one threshold")
    return thresholds
