"""The exercise ``mask_voting`` (notebook 07): per-class NMS, then one voted, binarised mask per detection.

It returns a :class:`~fcis_twin.reference.voting.Detections`, compared attribute by attribute, exactly.
"""

import functools

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..reference.boxes import box_iou, tight_boxes
from ..reference.paste import box_regions, paste_masks
from ..reference.voting import Detections, mask_voting, mask_voting_loop, voters_of
from ..strategies import prob, voting_settings
from ..viz import clean_axes, draw_boxes, draw_message, fit_boxes, mask_errors
from .comparing import Difference, compare_array
from .nms import greedy_with
from .records import Case, Exercise, Pitfall
from .timing import bench_workload, twins

#: The attributes of a Detections, in the order they are compared: which detections first, then what they hold.
_FIELDS = ("rois", "labels", "scores", "masks", "boxes")


#: Probabilities on the grid of eighths that shrink towards 1: a simplest scene detects something.
_high_prob = st.integers(0, 8).map(lambda v: np.float32((8 - v) / 8))
#: Class probabilities on the grid of quarters, for scores tied across ROIs and classes.
_high_score = st.integers(0, 4).map(lambda v: np.float32((4 - v) / 4))


@functools.cache
def _rois(width, height, num_classes, scores):
    """The list of ROIs of a scene: ``(corners, a copy of the ROI before, mask levels, class probabilities)``.
    Cached: a strategy is built once per shape and validated once, not at every draw."""
    # corners from a pixel before the image to a pixel past it; a ROI copies the one before a time in four
    x, y = (st.integers(-2, 2 * side + 2).map(lambda v: v / 2) for side in (width, height))
    roi = st.tuples(st.tuples(x, y, x, y), st.integers(0, 3).map(lambda v: v == 0),
                    hnp.arrays(np.float32, (num_classes, 1, 1), elements=_high_prob),
                    st.one_of(hnp.arrays(np.float32, num_classes, elements=scores),
                              scores.map(lambda v: np.full(num_classes, v))))  # every class equally probable
    return st.lists(roi, min_size=2, max_size=6)


@functools.cache
def _spots(size):
    """A few ``(flat index, value)`` cells of the ``size`` mask cells that differ from their mask's level (fewer
    choices to draw and shrink than a sparse array)."""
    return st.lists(st.tuples(st.integers(0, size - 1), prob), max_size=4)


@st.composite
def _voting_scenes(draw):
    """``(boxes, cls_masks, cls_probs, image_shape)`` in an image up to 10 x 12: 2 to 6 ROIs on the half-pixel grid
    around it, some a copy of the one before (IoU 1), and 1 or 2 foreground classes.  Probabilities lie on the grid
    of eighths or quarters most of the time (equal scores across ROIs and classes, averages exactly at a threshold),
    and sometimes all classes of a ROI are equally probable (an untrained network); each ``P x P`` mask is one level
    with a few other cells (a constant mask pastes its level exactly).  The ROIs are a list, so that shrinking can
    remove them one at a time."""
    height, width = draw(st.integers(1, 10)), draw(st.integers(1, 12))
    num_classes, p = draw(st.sampled_from([3, 2])), draw(st.integers(1, 4))
    rois = draw(_rois(width, height, num_classes, draw(st.sampled_from([_high_score, _high_prob, prob]))))
    corners = np.array([r[0] for r in rois], np.float32)
    for i in range(1, len(rois)):
        if rois[i][1]:
            corners[i] = corners[i - 1]
    boxes = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])],
                           axis=1)
    cls_masks = np.repeat(np.repeat([r[2] for r in rois], p, axis=2), p, axis=3).astype(np.float32)  # the levels
    for i, value in draw(_spots(cls_masks.size)):
        cls_masks.flat[i] = value
    cls_probs = np.array([r[3] for r in rois], np.float32)
    return boxes, cls_masks, cls_probs, (height, width)


@st.composite
def _voting_cases(draw):
    """A scene with :data:`fcis_twin.strategies.voting_settings`, ``max_detections`` redrawn uniformly (left alone it
    is 1 half of the time, where nothing is cut at a tie) and, half of the time, ``binary_threshold`` the level of
    a class-1 mask (a pixel that only voters of that level cover averages exactly to the threshold)."""
    scene = draw(_voting_scenes())
    kwargs = {**draw(voting_settings), "max_detections": draw(st.sampled_from([3, 2, 4, 1, 5, 6]))}
    level = scene[1][draw(st.integers(0, len(scene[1]) - 1)), 1, 0, 0]
    if level > 0 and draw(st.booleans()):
        kwargs["binary_threshold"] = float(level)
    return Case(scene, kwargs)


def _voted_with(boxes, cls_masks, cls_probs, image_shape, *, nms_threshold=0.3, vote_threshold=0.5,
                binary_threshold=0.4, max_detections=100, score_threshold=1e-3, suppress_equal=False,
                vote_above=False, binarize_above=False, weighted=True, own_class=False, keep_ties=False,
                roi_first=False):
    """Mask voting with one convention changed: the pitfalls' common body."""
    boxes, cls_masks = np.asarray(boxes, np.float32), np.asarray(cls_masks, np.float32)
    cls_probs = np.asarray(cls_probs, np.float32)
    height, width = image_shape
    rois, labels = [], []
    for c in range(1, cls_probs.shape[1]):  # per-class NMS over the ROIs that pass the score threshold
        live = np.flatnonzero(cls_probs[:, c] >= np.float32(score_threshold))
        keep = live[greedy_with(boxes[live], cls_probs[live, c], nms_threshold, suppress_equal=suppress_equal)]
        rois += keep[:max_detections].tolist()
        labels += [c] * len(keep[:max_detections])
    rois, labels = np.array(rois, np.int64), np.array(labels, np.int64)
    scores = cls_probs[rois, labels]
    order = np.lexsort((labels, rois, -scores) if roi_first else (rois, labels, -scores))
    cut = max_detections
    if keep_ties and len(order) > cut:  # every candidate scoring as high as the last one kept
        cut = int(np.sum(scores >= scores[order[cut - 1]]))
    rois, labels = rois[order[:cut]], labels[order[:cut]]

    kept, masks = [], []
    for i, (r, c) in enumerate(zip(rois, labels, strict=True)):
        iou = box_iou(boxes[r : r + 1], boxes)[0]
        voters = np.flatnonzero((iou > np.float32(vote_threshold)) if vote_above else
                                (iou >= np.float32(vote_threshold)))
        voters = np.union1d(voters, [r])  # a zero-area ROI votes for itself
        classes = np.argmax(cls_probs[voters], axis=1) if own_class else np.full(len(voters), c)
        pasted = paste_masks(cls_masks[voters, classes], boxes[voters], image_shape)  # (V, H, W)
        weights = cls_probs[voters, c] if weighted else np.ones(len(voters), np.float32)
        acc, total = np.zeros((height, width), np.float32), np.float32(0)
        for weight, values in zip(weights, pasted, strict=True):  # float32, ascending voters
            acc, total = acc + weight * values, total + weight
        if not total > 0:
            continue
        average, threshold = acc / total, np.float32(binary_threshold)
        mask = average > threshold if binarize_above else average >= threshold
        if mask.any():
            kept.append(i)
            masks.append(mask)
    kept = np.array(kept, np.int64)
    masks = np.array(masks, bool).reshape(-1, height, width)
    return Detections(boxes=tight_boxes(masks), scores=cls_probs[rois[kept], labels[kept]], labels=labels[kept],
                      masks=masks, rois=rois[kept])


def _voting_pitfall(**options):
    return lambda boxes, cls_masks, cls_probs, image_shape, **kw: _voted_with(boxes, cls_masks, cls_probs,
                                                                             image_shape, **kw, **options)


def _compare_detections(case, expected, got):
    missing = [name for name in _FIELDS if not hasattr(got, name)]
    if missing:
        return Difference(f"the output must be a Detections (attributes boxes, scores, labels, masks, rois), got "
                          f"{type(got).__name__} without {', '.join(missing)}")
    e, g = expected.rois, got.rois
    if isinstance(g, np.ndarray) and g.ndim == 1 and g.dtype == e.dtype and len(g) != len(e):
        at = next((p for p in range(min(len(e), len(g))) if e[p] != g[p]), min(len(e), len(g)))
        return Difference(f"yours returns {len(g)} detections (rois {g.tolist()}), the reference {len(e)} (rois "
                          f"{e.tolist()}, labels {expected.labels.tolist()})", "rois", (at,))
    for name in _FIELDS:
        diff = compare_array(name, getattr(expected, name), getattr(got, name))
        if diff is not None:
            return diff
    return None


def _draw_voting(fig, result):
    boxes, cls_masks, cls_probs, (height, width) = result.case.args
    expected, got, diff = result.expected, result.got, result.difference
    i = diff.index[0] if diff and diff.index else 0
    mine = all(isinstance(getattr(got, n, None), np.ndarray) for n in _FIELDS) and got.masks.shape[1:] == (
        height, width) and got.rois.shape == got.labels.shape == got.masks.shape[:1]
    found = [(int(d.rois[i]), int(d.labels[i]), d.masks[i]) if d is not None and i < len(d.rois) else None
             for d in (expected, got if mine else None)]
    if found == [None, None]:
        draw_message(fig, result.message)
        return
    r, c, _ = found[0] or found[1]
    masks = [f[2] if f else np.zeros((height, width), bool) for f in found]
    errors, extra, missed = mask_errors(masks[1], masks[0])
    titles = [f"{who} detection {i}: " + (f"ROI {f[0]}, class {f[1]}" if f else "none")
              for who, f in zip(("the reference's", "your"), found, strict=True)]
    regions = box_regions(boxes, height, width)  # the rounded boxes, as they are pasted
    rounded = np.stack([regions[:, 1], regions[:, 0], regions[:, 1] + regions[:, 3], regions[:, 0] + regions[:, 2]], 1)
    voters = voters_of(boxes, r, np.float32(result.case.kwargs["vote_threshold"]))
    for ax, image, title in zip(fig.subplots(1, 3), [mask_errors(m, m)[0] for m in masks] + [errors],
                                [*titles, f"red: only yours ({extra}), blue: only the reference's ({missed})"],
                                strict=True):
        ax.imshow(image)
        draw_boxes(ax, [[0, 0, width, height]], colors="black", linewidth=0.8)  # the image's edge
        draw_boxes(ax, rounded[voters], colors="tab:green", linewidth=1.5)
        draw_boxes(ax, rounded[r : r + 1], colors="orange", linewidth=2.5)
        fit_boxes(ax, np.concatenate([[[0, 0, width, height]], rounded[voters]]), pad=0.6)
        clean_axes(ax).set_title(title, fontsize=9)
    weights = ", ".join(f"ROI {j}: {cls_probs[j, c]:g}" for j in voters)
    listed = [", ".join(f"({int(j)}, {int(k)}, {float(v):g})" for j, k, v in zip(d.rois, d.labels, d.scores,
                                                                               strict=False)) or "none"
              for d in ([expected, got] if mine else [expected])]
    fig.supxlabel(f"ROI {r}'s rounded box (orange) and its voters' (green), whose weights for class {c} are "
                  f"{weights}; dark grey: in the mask.\nDetections (ROI, class, score): the reference {listed[0]}"
                  + (f"; yours {listed[1]}" if mine else ""), fontsize=9, wrap=True)


MASK_VOTING = Exercise(
    name="mask_voting",
    notebook="07_mask_voting_and_paste",
    summary="per-class NMS, then one mask per detection: the voters' pasted masks of its class, averaged with their "
            "class probabilities as weights and binarized; a Detections",
    solution=mask_voting,
    cases=_voting_cases(),
    compare=_compare_detections,
    pitfalls=(
        Pitfall("suppresses in NMS a box whose IoU equals nms_threshold", "NMS suppresses a box only when its IoU "
                "with a kept box is greater than nms_threshold", _voting_pitfall(suppress_equal=True)),
        Pitfall("takes as voters the ROIs whose IoU is greater than vote_threshold", "ROI j votes when "
                "IoU(boxes[j], boxes[r]) >= vote_threshold (equal counts)", _voting_pitfall(vote_above=True)),
        Pitfall("keeps a pixel whose average is greater than binary_threshold", "a pixel is in the mask when its "
                "voted average is >= binary_threshold", _voting_pitfall(binarize_above=True)),
        Pitfall("averages the voters' masks without weights", "each voter's mask is weighted by its probability of "
                "the detection's class, cls_probs[j, c], and the sum divided by the sum of those weights",
                _voting_pitfall(weighted=False)),
        Pitfall("gives each voter's mask of its own most probable class, argmax(cls_probs[j])", "every voter "
                "gives its mask of the detection's class c, cls_masks[j, c], as in the paper (the official code takes "
                "each voter's own argmax class)", _voting_pitfall(own_class=True)),
        Pitfall("keeps every candidate tied with the max_detections-th score", "max_detections is a hard bound: "
                "ties at the last place are cut by class, then ROI index", _voting_pitfall(keep_ties=True)),
        Pitfall("orders equal scores by ROI index before class", "detections are ordered by descending score, then "
                "class, then ROI index", _voting_pitfall(roi_first=True)),
    ),
    draw=_draw_voting,
    workload=bench_workload("voting_inputs"),
    workload_size=75,
    backends=twins("voting", "mask_voting"),
    readings=(mask_voting_loop, voters_of),
)


EXERCISES = [MASK_VOTING]
