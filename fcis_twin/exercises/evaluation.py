"""Exercises of the evaluation (notebook 08): ``mask_iou`` and ``average_precision``."""

import numbers

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..reference.sds import SDS_RECALL_LEVELS, average_precision, mask_iou
from ..viz import ERROR_COLORS, draw_message, mask_errors
from .comparing import Difference, compare_array
from .records import Case, Exercise, Pitfall

# --- mask_iou -----------------------------------------------------------------------------------------------------


@st.composite
def _mask_stack(draw, n, shape):
    """``(n, H, W)`` bool masks, drawn pixel by pixel (they shrink to the fewest pixels that matter) or from a seed
    (dense, overlapping), about one in four of them empty (the pairs whose union is empty)."""
    seeded = st.integers(0, 2**16).map(lambda seed: np.random.default_rng(seed).random((n, *shape)) < 0.5)
    masks = draw(st.one_of(hnp.arrays(np.bool_, (n, *shape), elements=st.booleans()), seeded))
    empty = draw(hnp.arrays(np.bool_, (n,), elements=st.integers(0, 3).map(lambda v: v == 0)))
    masks[empty] = False
    return masks


@st.composite
def _mask_pairs(draw):
    """Two stacks of small masks of one ``(H, W)``: empty stacks, empty masks, overlapping and disjoint ones."""
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 6)))
    sizes = st.sampled_from([1, 2, 3, 4, 1, 2, 3, 4, 0])  # an empty stack now and then
    a = draw(_mask_stack(draw(sizes), shape))
    b = draw(_mask_stack(draw(sizes), shape))
    return Case((a, b))


def _mask_iou_with(masks_a, masks_b, *, dtype=np.float64, guard=True, over="union"):
    """``(D, G)`` mask IoU with one convention changed: the pitfalls' common body.

    ``over`` is what the intersection is divided by: ``"union"``, ``"sum"`` (the two areas, the intersection
    counted twice), ``"smaller"`` (the smaller area) or ``"first"`` (the area of ``masks_a``'s mask).
    """
    a, b = np.asarray(masks_a, bool), np.asarray(masks_b, bool)
    a = a.reshape(a.shape[0], a.shape[1] * a.shape[2]).astype(dtype)  # (D, H*W), also for D = 0
    b = b.reshape(b.shape[0], b.shape[1] * b.shape[2]).astype(dtype)
    inter = a @ b.T
    area_a, area_b = a.sum(1)[:, None], b.sum(1)[None, :]
    denominator = {"union": area_a + area_b - inter, "sum": area_a + area_b,
                   "smaller": np.minimum(area_a, area_b), "first": np.broadcast_to(area_a, inter.shape)}[over]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / denominator
    if guard:
        iou = np.where(denominator > 0, iou, dtype(0))
    return iou.astype(np.float64)


def _compare_mask_iou(case, expected, got):
    # Exact: both counts are integers, exact in float64, and the reference divides them once, so any float64 way of
    # counting (sums, matrix products, integer counts divided at the end) gives the same correctly rounded quotient.
    return compare_array("iou", expected, got)


def _draw_mask_iou(fig, result):
    a, b = result.case.args
    diff = result.difference
    if diff is not None and diff.index is not None and len(diff.index) == 2:
        i, j = diff.index
    elif len(a) and len(b):
        i, j = 0, 0
    else:  # an empty stack: no pair to draw
        return draw_message(fig, result.message)
    panels = fig.subplots(1, 3)
    errors, only_a, only_b = mask_errors(a[i], b[j])
    inter, area_a, area_b = int((a[i] & b[j]).sum()), int(a[i].sum()), int(b[j].sum())
    shown = ((a[i], f"masks_a[{i}]: {area_a} pixel(s)"), (b[j], f"masks_b[{j}]: {area_b} pixel(s)"),
             (errors, f"both: {inter} (dark grey), only a: {only_a} (red), only b: {only_b} (blue)"))
    for ax, (image, title) in zip(panels, shown, strict=True):
        ax.imshow(image if image.ndim == 3 else np.where(image[..., None], ERROR_COLORS["both"],
                                                         ERROR_COLORS["neither"]))
        ax.set_title(title, fontsize=9)
        ax.set_xticks(np.arange(a.shape[2]))  # columns and rows by index, white lines at the pixel edges
        ax.set_yticks(np.arange(a.shape[1]))
        ax.set_xticks(np.arange(a.shape[2] + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(a.shape[1] + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="both", length=0, labelsize=7)
    got = result.got
    if isinstance(got, np.ndarray) and got.shape == result.expected.shape:
        got = float(got[i, j])
    union = area_a + area_b - inter
    fig.supxlabel(f"pair ({i}, {j}): |a & b| = {inter}, |a | b| = {union}; the reference's IoU "
                  f"{float(result.expected[i, j])!r}, yours {got!r}", fontsize=9)


def _blobs(rng, boxes, shape):
    """``(n, H, W)`` bool ellipses inscribed in ``boxes``: object-like masks of an image."""
    h, w = shape
    ys, xs = np.arange(h)[:, None] + 0.5, np.arange(w)[None, :] + 0.5
    masks = np.zeros((len(boxes), h, w), bool)
    for mask, (x1, y1, x2, y2) in zip(masks, np.asarray(boxes, np.float64), strict=True):
        rx, ry = max((x2 - x1) / 2, 1.0), max((y2 - y1) / 2, 1.0)
        mask[:] = ((xs - (x1 + x2) / 2) / rx) ** 2 + ((ys - (y1 + y2) / 2) / ry) ** 2 <= 1
    return masks


def _mask_iou_workload(size, rng, num_truth=20):
    """``size`` detections, each near one of ``num_truth`` ground-truth objects, in a 600 x 1000 image."""
    from ..bench import IMAGE, proposal_boxes

    truth = proposal_boxes(rng, num_truth)
    near = truth[rng.integers(0, num_truth, size)] + rng.normal(0, 10, (size, 4)).astype(np.float32)
    return Case((_blobs(rng, near, IMAGE), _blobs(rng, truth, IMAGE)))


MASK_IOU = Exercise(
    name="mask_iou",
    notebook="08_evaluation",
    summary="pairwise IoU of binary masks, in float64, 0 for two empty masks",
    solution=mask_iou,
    cases=_mask_pairs(),
    compare=_compare_mask_iou,
    pitfalls=(
        Pitfall("divides 0 by 0 for two empty masks", "the IoU of two masks whose union is empty is 0, never NaN",
                lambda a, b: _mask_iou_with(a, b, guard=False)),
        Pitfall("counts and divides in float32", "the two counts are divided in float64 (exact integers, one "
                "rounding), as pycocotools does: a float32 quotient is off in the last bits",
                lambda a, b: _mask_iou_with(a, b, dtype=np.float32)),
        Pitfall("divides the intersection by the smaller mask's area", "IoU divides the intersection by the union, "
                "|a | b|, not by either mask's area", lambda a, b: _mask_iou_with(a, b, over="smaller")),
        Pitfall("divides the intersection by the first mask's area", "IoU divides the intersection by the union, "
                "|a | b|, symmetric in a and b, not by the detection's area",
                lambda a, b: _mask_iou_with(a, b, over="first")),
        Pitfall("takes the union as the sum of the two areas", "the union is |a| + |b| - |a & b|: the shared pixels "
                "count once", lambda a, b: _mask_iou_with(a, b, over="sum")),
    ),
    draw=_draw_mask_iou,
    workload=_mask_iou_workload,
    workload_size=20,
)


# --- average_precision ----------------------------------------------------------------------------------------------

#: The official recall levels, ``np.arange(0, 1.1, 0.1)``: three lie just above their tenth.
_LEVELS = SDS_RECALL_LEVELS["official"]
#: The AP's tolerance: another order of the 11 additions (or dividing each term by 11) moves the last bits only.
AP_ATOL = 1e-12


@st.composite
def _curves(draw):
    """Recall and precision after each ranked prediction, from a list of hits and misses and a ground-truth count
    at least the number of hits: often 10 or 20 instances, so that recalls of exactly 3/10, 6/10 and 7/10 occur."""
    num_gt = draw(st.one_of(st.sampled_from([10, 20]), st.integers(1, 25)))
    n = draw(st.integers(0, 30))
    hits = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    if draw(st.integers(0, 3)) == 0:  # every hit first, as a perfect ranking puts them: precision 1 up to the last
        hits = np.sort(hits)[::-1]
    tp = hits & (np.cumsum(hits) <= num_gt)
    found = np.cumsum(tp)
    return Case((found / num_gt, found / np.arange(1, len(tp) + 1)))


def _ap_with(recall, precision, *, levels=_LEVELS, reach="at least", envelope=True, terms=11, metric="11-point"):
    """The AP with one convention changed: the pitfalls' common body."""
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if metric == "area":
        best = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        return float(np.sum(np.diff(recall, prepend=0.0) * best))
    total = 0.0
    for r in levels:
        reached = recall >= r if reach == "at least" else recall > r
        if not reached.any():
            continue
        total += float(precision[reached].max() if envelope else precision[np.argmax(reached)])
    return total / terms


def _compare_ap(case, expected, got):
    if isinstance(got, np.ndarray) and got.ndim == 0 and got.dtype.kind == "f":
        got = got[()]
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return Difference(f"ap must be a float, got {type(got).__name__}", "ap")
    if abs(float(got) - expected) <= AP_ATOL or float(got) == expected:
        return None
    return Difference(f"ap differs: the reference's is {expected!r}, yours {float(got)!r} (beyond {AP_ATOL:g})", "ap")


def _draw_ap(fig, result):
    recall, precision = result.case.args
    ax = fig.subplots()
    for r in _LEVELS:
        ax.axvline(r, color="0.8", linewidth=0.8, zorder=0)
    if len(recall):
        best = np.maximum.accumulate(precision[::-1])[::-1]
        ax.plot(recall, precision, "o-", color="tab:blue", markersize=4, linewidth=1, label="precision after each "
                "prediction")
        ax.step(recall, best, where="pre", color="tab:green", linestyle="--", linewidth=1, label="envelope: best "
                "precision at this recall or beyond")
    points = [(r, float(precision[recall >= r].max()) if (recall >= r).any() else 0.0) for r in _LEVELS]
    ax.plot(*zip(*points, strict=True), "D", color="tab:green", markersize=7, markerfacecolor="none",
            label="the reference's value at each level (0 where no recall reaches it)")
    for (r, p), name in zip(points, [f"{k / 10:g}" for k in range(11)], strict=True):
        ax.annotate(name, (r, p), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.05, 1.12)
    ax.set_xlabel("recall (grey lines: the 11 levels of np.arange(0, 1.1, 0.1))")
    ax.text(1.02, 0.62, "The levels named 0.3, 0.6 and 0.7 are\n0.30000000000000004, 0.6000000000000001\nand "
            "0.7000000000000001: a recall of exactly\n3/10, 6/10 or 7/10 does not reach them.", fontsize=8,
            va="top", transform=ax.transAxes)
    ax.set_ylabel("precision")
    got = result.got
    got = f"{float(got)!r}" if isinstance(got, numbers.Real) and not isinstance(got, bool) else repr(got)
    hits = sum(1 for p, q in zip(recall, np.concatenate([[0.0], recall]), strict=False) if p > q)
    ax.set_title(f"{len(recall)} predictions, {hits} true positive(s): the reference's AP {result.expected!r}, "
                 f"yours {got}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def _ap_workload(size, rng):
    """A curve of ``size`` predictions whose hits thin out down the ranking."""
    tp = rng.random(size) < np.linspace(0.9, 0.05, size)
    found = np.cumsum(tp)
    num_gt = int(found[-1]) + size // 10 + 1 if size else 1
    return Case((found / num_gt, found / np.arange(1, size + 1)))


AVERAGE_PRECISION = Exercise(
    name="average_precision",
    notebook="08_evaluation",
    summary="VOC 2007's 11-point AP of one class's precision/recall curve, at the official recall levels",
    solution=average_precision,
    cases=_curves(),
    compare=_compare_ap,
    pitfalls=(
        Pitfall("uses the levels k / 10", "the levels are the float64 values of np.arange(0, 1.1, 0.1), as the "
                "official code's: 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001, which a recall "
                "of exactly 3/10, 6/10 or 7/10 does not reach",
                lambda r, p: _ap_with(r, p, levels=SDS_RECALL_LEVELS["tenths"])),
        Pitfall("counts a level as reached only by a recall above it", "a recall equal to a level reaches it: "
                "the max is over recall >= r", lambda r, p: _ap_with(r, p, reach="above")),
        Pitfall("takes the precision where the curve first reaches the level", "each level takes the best "
                "precision at that recall or beyond (the max over recall >= r), the envelope of the curve",
                lambda r, p: _ap_with(r, p, envelope=False)),
        Pitfall("divides the sum by 10", "there are 11 levels, 0 to 1 included: the sum is divided by 11",
                lambda r, p: _ap_with(r, p, terms=10)),
        Pitfall("computes the area under the envelope", "the default is VOC 2007's 11-point AP (use_07_metric="
                "True), what the official FCIS code reports; the area under the envelope is the other metric",
                lambda r, p: _ap_with(r, p, metric="area")),
    ),
    draw=_draw_ap,
    workload=_ap_workload,
    workload_size=5000,
)


EXERCISES = [MASK_IOU, AVERAGE_PRECISION]
