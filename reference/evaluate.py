r"""Evaluation of instance masks: COCO mask and box AP through pycocotools, and the SBD :math:`mAP^r` of the paper.

Two metric families, as in Li et al., CVPR 2017, Sec. 4: COCO's AP averaged over IoU thresholds 0.5:0.95 (with
AP50, AP75 and AP for small, medium and large objects), computed by ``pycocotools.cocoeval.COCOeval`` on results in
COCO's format (:func:`detections_to_coco`, :func:`evaluate_coco`); and the :math:`mAP^r` at mask IoU 0.5 and 0.7 of
Hariharan et al.'s SDS, used on SBD (the paper's Tables 1-3), written out in NumPy by the protocol of the official
FCIS code (:func:`fcis_twin.reference.sds.evaluate_sds`).  The latter matches by
:func:`fcis_twin.reference.sds.mask_iou`, which agrees exactly with ``pycocotools.mask.iou``, the IoU of
``COCOeval``.  Both are imported here too, so that ``fcis_twin.reference.evaluate`` holds every metric.
"""

import contextlib
import io
import math
import os
from collections.abc import Mapping

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ._checks import as_array, as_boxes, as_class_labels, as_int
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
from .sds import (  # noqa: F401  (re-exported here)
    SDS_MATCHING,
    SDS_RECALL_LEVELS,
    covering_classes,
    evaluate_sds,
    mask_iou,
)

#: Names of ``COCOeval.stats[0:6]``: AP at IoU 0.5:0.95, at 0.5, at 0.75, and for small, medium, large objects.
COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
#: The iou types :func:`evaluate_coco` knows.
IOU_TYPES = ("segm", "bbox")


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
    labels = as_class_labels("detections.labels", detections.labels, num)
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
