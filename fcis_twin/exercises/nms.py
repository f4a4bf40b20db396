"""The exercise ``nms`` (notebook 06): greedy non-maximum suppression."""

import numpy as np
from hypothesis import strategies as st

from ..reference.boxes import box_iou
from ..reference.nms import nms
from ..strategies import exact_pairs, nms_cases
from ..viz import draw_boxes, fit_boxes
from .boxes import iou_with
from .comparing import Difference, compare_array
from .records import Case, Exercise, Pitfall
from .timing import bench_workload, twins


def _cases():
    """Boxes on the half-pixel grid with tied scores and thresholds equal to an IoU that occurs, and float boxes
    (anywhere, or crowded into a few pixels so that they overlap) whose threshold is the IoU of the two best boxes or
    the float32 just below it."""
    grid = nms_cases(max_size=10).map(lambda c: Case(c[:3]))
    crowded = exact_pairs(max_size=4, low=0.0, high=12.0, full_bits=True).map(lambda c: Case(c))
    anywhere = exact_pairs(max_size=6).map(lambda c: Case(c))
    return st.one_of(grid, crowded, anywhere)


def _float32_iou(box, others):
    return box_iou(box[None], others)[0]


def _plus_one_iou(box, others):
    """IoU with inclusive widths ``x2 - x1 + 1``: the old pixel convention."""
    return iou_with(box[None], others, plus_one=1)[0]


def _float64_iou(box, others):
    return iou_with(box[None], others, dtype=np.float64)[0]


def _greedy(boxes, scores, iou_threshold, *, order="stable", iou=_float32_iou, suppress_equal=False,
            index_order=False):
    """Greedy NMS with one convention changed: the pitfalls' common body."""
    boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
    t = np.float32(iou_threshold) if iou is not _float64_iou else float(iou_threshold)
    if order == "stable":
        ranked = np.argsort(-scores, kind="stable")
    else:  # ascending sort reversed: among equal scores the higher index comes first
        ranked = np.argsort(scores, kind="stable")[::-1]
    keep = []
    for i in ranked:
        if keep:
            overlap = iou(boxes[i], boxes[keep])
            if (overlap >= t).any() if suppress_equal else (overlap > t).any():
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
                "greater than the threshold", lambda b, s, t: _greedy(b, s, t, suppress_equal=True)),
        Pitfall("ranks equal scores with the higher index first",
                "ties keep the lower index first: rank by a stable sort of -scores (np.argsort(-scores, "
                "kind='stable'))", lambda b, s, t: _greedy(b, s, t, order="reversed")),
        Pitfall("returns the kept indices in ascending index order", "keep lists the kept boxes by descending "
                "score, the order in which they were kept", lambda b, s, t: _greedy(b, s, t, index_order=True)),
        Pitfall("adds 1 to widths and heights in the IoU",
                "boxes are half-open: widths are x2 - x1, with no +1",
                lambda b, s, t: _greedy(b, s, t, iou=_plus_one_iou)),
        Pitfall("computes the IoU in float64", "the IoU is computed in float32, as box_iou does, and compared with "
                "float32(iou_threshold): at a threshold equal to an IoU, one unit in the last place decides",
                lambda b, s, t: _greedy(b, s, t, iou=_float64_iou)),
    ),
    draw=_draw_keep,
    workload=bench_workload("nms_inputs"),
    workload_size=300,
    backends=twins("nms", "nms"),
)


EXERCISES = [NMS]
