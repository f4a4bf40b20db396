"""The exercise ``nms`` (notebook 06): greedy non-maximum suppression."""

import numpy as np
from hypothesis import strategies as st

from ..reference.boxes import box_iou
from ..reference.nms import nms
from ..strategies import boxes, exact_pairs, nms_cases, scores, thresholds
from ..viz import draw_boxes, fit_boxes
from .boxes import iou_with
from .comparing import Difference, compare_array
from .records import Case, Exercise, Pitfall
from .timing import bench_workload, twins


@st.composite
def _many_ties(draw):
    """17 to 24 boxes with scores on a coarse grid: many ties, in arrays longer than the 16 elements below which
    NumPy's default sort (without vectorised sorting) happens to be an insertion sort, hence stable."""
    b = draw(boxes(min_size=17, max_size=24))
    return Case((b, draw(scores(len(b))), draw(thresholds(b))))


def _overlapping_pair(seed_and_below):
    """Two overlapping boxes with every bit of their float32 coordinates in use (their IoU is almost never exact),
    the first scored higher, and the threshold their float32 IoU (or the float32 just below it)."""
    seed, below = seed_and_below
    rng = np.random.default_rng(seed)
    first = np.concatenate([rng.uniform(0, 10, 2), rng.uniform(0, 10, 2) + rng.uniform(1, 6, 2)])
    second = first + rng.uniform(-2, 2, 4)
    b = np.stack([first, second]).astype(np.float32)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
    iou = box_iou(b[:1], b[1:])[0, 0]
    return Case((b, np.float32([1.0, 0.5]), float(np.nextafter(iou, np.float32(0)) if below else iou)))


def _cases():
    """Boxes on the half-pixel grid with tied scores and thresholds equal to an IoU that occurs, long lists of them,
    and float boxes (anywhere, or two that overlap) whose threshold is the IoU of the two best boxes or the float32
    just below it."""
    grid = nms_cases(max_size=10).map(lambda c: Case(c[:3]))
    crowded = st.tuples(st.integers(0, 2**16), st.booleans()).map(_overlapping_pair)
    anywhere = exact_pairs(max_size=6).map(lambda c: Case(c))
    return st.one_of(grid, crowded, anywhere, _many_ties())


def _float32_iou(box, others):
    return box_iou(box[None], others)[0]


def _plus_one_iou(box, others):
    """IoU with inclusive widths ``x2 - x1 + 1``: the old pixel convention."""
    return iou_with(box[None], others, plus_one=1)[0]


def _float64_iou(box, others):
    return iou_with(box[None], others, dtype=np.float64)[0]


def _nan_iou(box, others):
    """IoU with 0 / 0 = NaN for two boxes of zero area."""
    return iou_with(box[None], others, guard=False)[0]


def greedy_with(boxes, scores, iou_threshold, *, order="stable", iou=_float32_iou, suppress_equal=False,
            index_order=False, keep_test=False):
    """Greedy NMS with one convention changed: the common body of the pitfalls of ``nms`` and of ``mask_voting``'s
    per-class NMS."""
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    t = np.float32(iou_threshold) if iou is not _float64_iou else float(iou_threshold)
    if order == "stable":
        ranked = np.argsort(-scores, kind="stable")
    elif order == "default":  # NumPy's default sort: its order of equal scores depends on the machine
        ranked = np.argsort(-scores)
    else:  # ascending sort reversed: among equal scores the higher index comes first
        ranked = np.argsort(scores, kind="stable")[::-1]
    keep = []
    for i in ranked:
        if keep:
            overlap = iou(boxes[i], boxes[keep])
            if keep_test:  # "keep while IoU <= t": a NaN IoU fails it and suppresses
                if not (overlap <= t).all():
                    continue
            elif (overlap >= t).any() if suppress_equal else (overlap > t).any():
                continue
        keep.append(int(i))
    return np.array(sorted(keep) if index_order else keep, np.int64)


def _compare_keep(case, expected, got):
    diff = compare_array("keep", expected, got)
    if diff is None or not isinstance(got, np.ndarray) or got.dtype != expected.dtype or got.ndim != 1:
        return diff
    n = min(len(expected), len(got))
    at = next((p for p in range(n) if expected[p] != got[p]), n)
    if at < n:
        text = f"keep differs at position {at}: the reference keeps box {expected[at]} there, yours box {got[at]}"
    elif len(expected) > len(got):
        text = f"yours keeps {_boxes(len(got))}, the reference {len(expected)}: box {expected[at]} is missing"
    else:
        text = f"yours keeps {_boxes(len(got))}, the reference {len(expected)}: box {got[at]} should be suppressed"
    return Difference(text, "keep", (at,))


def _boxes(n):
    return f"{n} box" if n == 1 else f"{n} boxes"


def _draw_keep(fig, result):
    boxes, scores, threshold = result.case.args
    got = result.got if isinstance(result.got, np.ndarray) and result.got.ndim == 1 else np.zeros(0, np.int64)
    panels = fig.subplots(1, 2, sharex=True, sharey=True)
    step = 0.07 * (float(boxes[:, 3].max(initial=0) - boxes[:, 1].min(initial=0)) + 3)  # label spacing, in pixels
    for ax, keep, who in ((panels[0], result.expected, "the reference"), (panels[1], got, "yours")):
        kept = [int(i) for i in keep if 0 <= i < len(boxes)]
        for i, box in enumerate(boxes):
            on = i in kept
            draw_boxes(ax, box[None], colors="tab:blue" if on else "0.6", linewidth=2.2 if on else 0.8,
                       alpha=1.0 if on else 0.8)
            ax.text(box[0] - 0.5, box[1] - 0.5 + step * i, f"{i}: score {scores[i]:g}",
                    fontsize=8, va="bottom", color="tab:blue" if on else "0.4")
        ax.set_title(f"{who} keeps {kept} (blue; grey: suppressed)", fontsize=9)
        fit_boxes(ax, boxes)
    differing = _first_differing_box(result.expected, got)
    if differing is not None:
        others = [int(i) for i in result.expected if i != differing][:4]
        ious = box_iou(boxes[differing][None], boxes)[0]
        text = ", ".join(f"with box {j} {float(ious[j]):.9g}" for j in others)
        fig.supxlabel(f"box {differing} is kept by one side only; iou_threshold {threshold!r}; its float32 IoU "
                      f"{text}", fontsize=9)


def _first_differing_box(expected, got):
    for a, b in zip(expected, got, strict=False):
        if a != b:
            return int(a)
    longer = expected if len(expected) > len(got) else got
    return int(longer[min(len(expected), len(got))]) if len(expected) != len(got) else None


NMS = Exercise(
    name="nms",
    notebook="06_nms",
    summary="greedy non-maximum suppression: the kept indices, by descending score",
    solution=nms,
    cases=_cases(),
    compare=_compare_keep,
    pitfalls=(
        Pitfall("suppresses a box whose IoU equals the threshold",
                "IoU equal to the threshold must not suppress: a box goes only when its IoU with a kept box is "
                "greater than the threshold", lambda b, s, t: greedy_with(b, s, t, suppress_equal=True)),
        Pitfall("ranks equal scores with the higher index first",
                "ties keep the lower index first: rank by a stable sort of -scores (np.argsort(-scores, "
                "kind='stable'))", lambda b, s, t: greedy_with(b, s, t, order="reversed")),
        Pitfall("ranks by np.argsort(-scores), whose default sort is not stable",
                "ties keep the lower index first: np.argsort's default sort may order equal scores any way (it "
                "does on machines with vectorised sorts); ask for kind='stable'",
                lambda b, s, t: greedy_with(b, s, t, order="default")),
        Pitfall("returns the kept indices in ascending index order", "keep lists the kept boxes by descending "
                "score, the order in which they were kept", lambda b, s, t: greedy_with(b, s, t, index_order=True)),
        Pitfall("adds 1 to widths and heights in the IoU",
                "boxes are half-open: widths are x2 - x1, with no +1",
                lambda b, s, t: greedy_with(b, s, t, iou=_plus_one_iou)),
        Pitfall("computes the IoU in float64", "the IoU is computed in float32, as box_iou does, and compared with "
                "float32(iou_threshold): at a threshold equal to an IoU, one unit in the last place decides",
                lambda b, s, t: greedy_with(b, s, t, iou=_float64_iou)),
        Pitfall("divides 0 by 0 for two boxes of zero area, and a NaN IoU suppresses",
                "a box of zero area overlaps nothing: its IoU is 0, never NaN (0 / 0), and it is always kept",
                lambda b, s, t: greedy_with(b, s, t, iou=_nan_iou, keep_test=True)),
    ),
    draw=_draw_keep,
    workload=bench_workload("nms_inputs"),
    workload_size=300,
    backends=twins("nms", "nms"),
)


EXERCISES = [NMS]
