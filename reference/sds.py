r"""The SDS :math:`mAP^r` (Hariharan et al., ECCV 2014) of the FCIS paper's Tables 1-3, by the official code's
protocol, in NumPy.

:func:`evaluate_sds` follows ``voc_eval_sds`` of the official FCIS code (``lib/dataset/pascal_voc_eval.py``) by
default; ``docs/evaluation.md`` says where and why it may depart.  Masks are matched by :func:`mask_iou`.
"""

import math
import numbers

import numpy as np

from ._checks import as_array, as_class_labels, as_probability

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
        label found in ``detections`` or ``ground_truth``, ``nan`` for a label without ground truth;
        ``"curves"``: ``{t: {label: curve}}`` for the same labels, where ``curve`` is a dict of the ranked
        predictions of that class (step 1 of the Notes) and what became of them: ``"ranked"`` (n, 2) int, each
        row ``(image, detection)``; ``"tp"`` (n,) bool; ``"recall"`` and ``"precision"`` (n,) float64 after each
        prediction (step 3; ``recall`` is ``nan`` for a label without ground truth), the curve the AP summarises.

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
    _as_name("recall_levels", recall_levels, tuple(SDS_RECALL_LEVELS))
    ious = [mask_iou(det_masks, gt_masks) for det_masks, _, _, gt_masks, _ in images]  # (D_i, G_i) per image
    classes = sorted({int(c) for _, det_labels, _, _, gt_labels in images for c in (*det_labels, *gt_labels)})

    per_class = {t: {} for t in thresholds}
    curves = {t: {} for t in thresholds}
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
            tp_count = np.cumsum(tp)  # (n,)
            recall = tp_count / num_gt if num_gt else np.full(len(tp), math.nan)
            precision = tp_count / np.arange(1, len(tp) + 1)
            per_class[t][c] = (average_precision(recall, precision, use_07_metric, recall_levels) if num_gt
                               else math.nan)
            curves[t][c] = {"ranked": np.array(ranked, np.int64).reshape(-1, 2), "tp": tp, "recall": recall,
                            "precision": precision}

    metrics = {}
    for t in thresholds:
        defined = [ap for ap in per_class[t].values() if not math.isnan(ap)]
        metrics[f"mAP@{t:g}"] = sum(defined) / len(defined) if defined else math.nan
    metrics["per_class"] = per_class
    metrics["curves"] = curves
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


def average_precision(recall, precision, use_07_metric=True, recall_levels="official"):
    r"""The AP of one class from its recall and precision after each ranked prediction.

    Parameters
    ----------
    recall, precision : (n,) float64 array_like
        After each of the class's ``n`` predictions by descending score (:func:`evaluate_sds`'s ``curves``):
        recall in ``[0, 1]``, never decreasing; precision in ``[0, 1]``.
    use_07_metric : bool
        VOC 2007's 11-point AP (what the official FCIS code reports), else the area under the precision envelope.
    recall_levels : {"official", "tenths"}
        The 11 recall levels of the 11-point AP (:data:`SDS_RECALL_LEVELS`; not read otherwise).

    Returns
    -------
    ap : float

    Notes
    -----
    ``voc_ap`` of the official code (``lib/dataset/pascal_voc_eval.py``).  The 11-point AP is
    :math:`\frac{1}{11}\sum_r \max_{\text{rec}_n \ge r} \text{prec}_n` over the levels ``r``, a level that no
    prediction reaches adding 0.  With the official levels, the float64 values of ``np.arange(0, 1.1, 0.1)``, a recall
    of exactly 3/10 does not reach the level "0.3", which is 0.30000000000000004 (likewise 0.6 and 0.7).  The area
    version sums each prediction's recall gain times the best precision at its recall or beyond.

    Examples
    --------
    >>> # two of four instances found by the first two predictions, then a miss
    >>> average_precision([0.25, 0.5, 0.5], [1.0, 1.0, 2 / 3])  # precision 1 up to level 0.5: 6 of 11 levels
    0.5454545454545454
    >>> average_precision([0.25, 0.5, 0.5], [1.0, 1.0, 2 / 3], use_07_metric=False)
    0.5
    """
    recall = as_array("recall", recall, ndim=1, dtype=np.float64)
    precision = as_array("precision", precision, ndim=1, dtype=np.float64)
    if precision.shape != recall.shape:
        raise ValueError(f"precision must have the shape of recall, {recall.shape}, got {precision.shape}")
    for name, values in (("recall", recall), ("precision", precision)):
        if ((values < 0) | (values > 1)).any():
            raise ValueError(f"{name} must lie in [0, 1]")
    if (np.diff(recall) < 0).any():
        raise ValueError("recall must never decrease: it is counted after each prediction by descending score")
    if not isinstance(use_07_metric, (bool, np.bool_)):
        raise TypeError(f"use_07_metric must be a bool, got {type(use_07_metric).__name__}")
    levels = SDS_RECALL_LEVELS[_as_name("recall_levels", recall_levels, tuple(SDS_RECALL_LEVELS))]
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


def covering_classes(detections, ground_truth, iou_threshold=0.5):
    """How often the best detection on an instance names its class: what a model's classifier gets right.

    An instance is *covered* when some detection's mask has an IoU of at least ``iou_threshold`` with its mask,
    whatever that detection's class; of the detections that cover it, the one of highest score is its *best covering
    detection*, and the instance is *named right* when that detection has the instance's class.  Masks good and
    classes wrong show as many covered instances and few named right.

    Parameters
    ----------
    detections, ground_truth : sequences
        As in :func:`evaluate_sds`.
    iou_threshold : float in [0, 1]

    Returns
    -------
    dict
        ``{"instances": G, "covered": c, "named_right": r}``, counts over all the images.

    Examples
    --------
    >>> from types import SimpleNamespace as Obj
    >>> gt = Obj(masks=np.eye(2, dtype=bool)[None], labels=np.array([1]))
    >>> det = Obj(masks=np.eye(2, dtype=bool)[None].repeat(2, 0), labels=np.array([2, 1]), scores=np.array([.9, .8]))
    >>> covering_classes([det], [gt])  # covered twice; the best-scoring detection names class 2
    {'instances': 1, 'covered': 1, 'named_right': 0}
    """
    threshold = as_probability("iou_threshold", iou_threshold)
    counts = {"instances": 0, "covered": 0, "named_right": 0}
    for det_masks, det_labels, scores, gt_masks, gt_labels in _sds_images(detections, ground_truth):
        ious = mask_iou(det_masks, gt_masks)  # (D, G)
        counts["instances"] += len(gt_labels)
        for g, label in enumerate(gt_labels):
            covering = np.flatnonzero(ious[:, g] >= threshold)
            if covering.size:
                counts["covered"] += 1
                counts["named_right"] += int(det_labels[covering[np.argmax(scores[covering])]] == label)
    return counts


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
        det_labels = as_class_labels(f"detections[{i}].labels", det.labels, det_masks.shape[0])
        gt_labels = as_class_labels(f"ground_truth[{i}].labels", gt.labels, gt_masks.shape[0])
        scores = as_array(f"detections[{i}].scores", det.scores, ndim=1, dtype=np.float64)
        if scores.shape != det_labels.shape:
            raise ValueError(f"detections[{i}].scores must have shape {det_labels.shape} to match the masks, "
                             f"got {scores.shape}")
        images.append((det_masks, det_labels, scores, gt_masks, gt_labels))
    return images


def _as_thresholds(iou_thresholds):
    if isinstance(iou_thresholds, numbers.Real):
        iou_thresholds = (iou_thresholds,)
    thresholds = tuple(as_probability("iou_thresholds", t) for t in iou_thresholds)
    if not thresholds:
        raise ValueError("iou_thresholds must hold at least one threshold")
    return thresholds
