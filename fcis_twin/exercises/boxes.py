"""Exercises on boxes: ``box_iou`` (notebook 01) and ``decode_boxes`` (notebook 05)."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..reference.boxes import BBOX_XFORM_CLIP, HEAD_STDS, box_iou, decode_boxes
from ..strategies import boxes, float_boxes
from ..viz import draw_boxes, fit_boxes
from .comparing import compare_array
from .records import Case, Exercise, Pitfall

# --- box_iou ------------------------------------------------------------------------------------------------------


def _box_pairs():
    """Two small sets of boxes, on the half-pixel grid (exact areas, ties, touching edges, zero-size boxes) or
    anywhere in float32 (inexact products, where the float32 order of operations shows)."""
    grid = st.tuples(boxes(max_size=5), boxes(max_size=5))
    anywhere = st.tuples(float_boxes(max_size=4), float_boxes(max_size=4))
    return st.one_of(grid, anywhere).map(lambda ab: Case(ab))


def iou_with(a, b, *, dtype=np.float32, plus_one=0, clamp=True, guard=True):
    """``(N, M)`` IoU of every pair of ``a`` and ``b``, in ``dtype``, with one convention changed: the common body
    of the pitfalls of ``box_iou`` and ``nms``."""
    a, b = np.asarray(a, dtype)[:, None, :], np.asarray(b, dtype)[None, :, :]
    one = dtype(plus_one)
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + one
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + one
    if clamp:
        iw, ih = np.maximum(iw, dtype(0)), np.maximum(ih, dtype(0))
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
    area_b = (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    if guard:
        iou = np.where(union > 0, iou, dtype(0))
    return iou


def _compare_iou(case, expected, got):
    return compare_array("iou", expected, got)


def _draw_iou(fig, result):
    a, b = result.case.args
    diff = result.difference
    i, j = diff.index if diff is not None and diff.index is not None and len(diff.index) == 2 else (None, None)
    fig.set_size_inches(7, 5)
    ax = fig.subplots()
    draw_boxes(ax, a, colors="tab:blue", linewidth=1.2)
    draw_boxes(ax, b, colors="tab:orange", linewidth=1.2)
    for k, box in enumerate(a):
        ax.text(box[0] - 0.5, box[1] - 0.5, f"a{k}", fontsize=8, va="bottom", color="tab:blue")
    for k, box in enumerate(b):
        ax.text(box[2] - 0.5, box[3] - 0.5, f"b{k}", fontsize=8, va="top", ha="right", color="tab:orange")
    if i is not None:
        draw_boxes(ax, a[i : i + 1], colors="tab:blue", linewidth=3.5)
        draw_boxes(ax, b[j : j + 1], colors="tab:orange", linewidth=3.5)
        ax.set_title(f"the pair that differs (thick): a{i} = {a[i].tolist()}, b{j} = {b[j].tolist()}\n"
                     f"IoU: the reference's {float(result.expected[i, j]):.9g}, yours "
                     f"{float(np.asarray(result.got)[i, j]):.9g}", fontsize=9)
    fit_boxes(ax, np.concatenate([a, b]))
    ax.set_xlabel("x (pixel j drawn over [j - 0.5, j + 0.5)); blue: a, orange: b; + marks a box of zero area")


BOX_IOU = Exercise(
    name="box_iou",
    notebook="01_anchors_and_proposals",
    summary="pairwise IoU of half-open boxes, in float32",
    solution=box_iou,
    cases=_box_pairs(),
    compare=_compare_iou,
    pitfalls=(
        Pitfall("adds 1 to every width and height",
                "boxes are half-open: a box's width is x2 - x1, with no +1 (docs/conventions.md, Boxes)",
                lambda a, b: iou_with(a, b, plus_one=1)),
        Pitfall("multiplies the overlap's sides without clamping them at 0",
                "boxes that do not overlap have intersection 0: clamp each side of the overlap at 0 before "
                "multiplying (two negative sides make a positive area)",
                lambda a, b: iou_with(a, b, clamp=False)),
        Pitfall("divides 0 by 0 for two zero-area boxes",
                "the IoU of two boxes whose union is empty is 0, never NaN",
                lambda a, b: iou_with(a, b, guard=False)),
        Pitfall("computes in float64 and rounds to float32 at the end",
                "IoU in float32, in the order |a & b| / (|a| + |b| - |a & b|): the float32 IoU is what NMS compares "
                "with its threshold, and every kernel computes exactly it",
                lambda a, b: iou_with(a, b, dtype=np.float64).astype(np.float32)),
    ),
    draw=_draw_iou,
    workload=lambda size, rng: Case((_proposal_like(rng, size), _proposal_like(rng, size))),
    workload_size=300,
)


def _proposal_like(rng, n):
    """``n`` boxes clustered as proposals are, in a 600 x 1000 image (``fcis bench``'s)."""
    from ..bench import proposal_boxes

    return proposal_boxes(rng, n)


# --- decode_boxes -------------------------------------------------------------------------------------------------


#: Deltas: small, on a grid, and past the clamp of dw, dh (log(1000/16) = 4.135...).
_delta = st.one_of(st.floats(-2, 2, width=32), st.integers(-8, 8).map(lambda v: np.float32(v / 4)),
                   st.sampled_from([np.float32(BBOX_XFORM_CLIP), np.float32(9.0), np.float32(-9.0)]))
_stds = st.sampled_from([(1.0, 1.0, 1.0, 1.0), HEAD_STDS, (0.1, 0.1, 0.2, 0.2)])


@st.composite
def _decode_cases(draw):
    b = draw(boxes(max_size=5, allow_degenerate=False))
    deltas = draw(hnp.arrays(np.float32, (len(b), 4), elements=_delta))
    return Case((b, deltas, draw(_stds)))


def _decoded_with(boxes, deltas, stds=(1.0, 1.0, 1.0, 1.0), *, plus_one=0.0, clip=True, divide=False):
    """Decoding with one convention changed: the pitfalls' common body (float64, rounded at the end)."""
    b, d = np.asarray(boxes, np.float64), np.asarray(deltas, np.float64)
    d = d / np.asarray(stds, np.float64) if divide else d * np.asarray(stds, np.float64)
    w, h = b[:, 2] - b[:, 0] + plus_one, b[:, 3] - b[:, 1] + plus_one
    cx, cy = b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h
    dw, dh = (np.minimum(d[:, 2:], float(BBOX_XFORM_CLIP)) if clip else d[:, 2:]).T
    pcx, pcy = d[:, 0] * w + cx, d[:, 1] * h + cy
    pw, ph = np.exp(dw) * w, np.exp(dh) * h
    return np.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], axis=1).astype(np.float32)


#: Tolerance of decoded coordinates, relative to the largest magnitude in the box's row (input or output): 32 units
#: in the last place of float32.  The reference's float32 steps (scale, multiply, add, exp, multiply, subtract) each
#: round once, so another order or float64 lands within a few units of it.
DECODE_RTOL = 2.0**-19


def _compare_decoded(case, expected, got):
    boxes_in = case.args[0]
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.maximum(np.abs(expected).max(axis=1, initial=0), np.abs(boxes_in).max(axis=1, initial=0))
    return compare_array("decoded", expected, got, atol=DECODE_RTOL * scale[:, None])


def _draw_decoded(fig, result):
    boxes_in, deltas, stds = result.case.args
    r = result.difference.index[0] if result.difference and result.difference.index else 0
    fig.set_size_inches(7, 5)
    ax = fig.subplots()
    shown = [boxes_in[r : r + 1], result.expected[r : r + 1]]
    draw_boxes(ax, boxes_in[r : r + 1], colors="0.5", linewidth=1.2)
    draw_boxes(ax, result.expected[r : r + 1], colors="tab:green", linewidth=2.5)
    got = result.got
    yours = ""
    if isinstance(got, np.ndarray) and got.shape == result.expected.shape:
        yours = f"\nyours {np.round(got[r].astype(np.float64), 6).tolist()}"
        if np.isfinite(got[r]).all():
            draw_boxes(ax, got[r : r + 1], colors="red", linewidth=1.5)
            shown.append(got[r : r + 1])
    fit_boxes(ax, np.concatenate(shown))
    ax.set_title(f"row {r}: box {boxes_in[r].tolist()}, deltas {deltas[r].tolist()}, stds {tuple(stds)}\n"
                 f"the reference's decoded box {np.round(result.expected[r].astype(np.float64), 6).tolist()}{yours}",
                 fontsize=9)
    ax.set_xlabel("grey: the box, green: the reference's decoded box, red: yours")


DECODE_BOXES = Exercise(
    name="decode_boxes",
    notebook="05_bbox_regression_second_pass",
    summary="apply (dx, dy, dw, dh) deltas, scaled by stds, to boxes",
    solution=decode_boxes,
    cases=_decode_cases(),
    compare=_compare_decoded,
    pitfalls=(
        Pitfall("ignores stds", "the deltas are multiplied by stds before they are applied (HEAD_STDS for the "
                "detection head's deltas)", lambda b, d, stds=None: _decoded_with(b, d)),
        Pitfall("divides the deltas by stds", "decoding multiplies by stds; it is encoding that divides",
                lambda b, d, stds=(1.0, 1.0, 1.0, 1.0): _decoded_with(b, d, stds, divide=True)),
        Pitfall("applies exp to dw and dh without the clamp",
                "dw and dh are clamped at log(1000/16) (BBOX_XFORM_CLIP) before exp",
                lambda b, d, stds=(1.0, 1.0, 1.0, 1.0): _decoded_with(b, d, stds, clip=False)),
        Pitfall("uses the inclusive width x2 - x1 + 1", "boxes are half-open: w = x2 - x1 and the centre is "
                "x1 + w / 2", lambda b, d, stds=(1.0, 1.0, 1.0, 1.0): _decoded_with(b, d, stds, plus_one=1.0)),
    ),
    draw=_draw_decoded,
    workload=lambda size, rng: Case((_proposal_like(rng, size),
                                     (0.3 * rng.standard_normal((size, 4))).astype(np.float32), HEAD_STDS)),
    workload_size=6000,
)


EXERCISES = [BOX_IOU, DECODE_BOXES]
