"""Exercises on the position-sensitive score maps: ``part_maps`` (notebook 02) and ``joint_forward`` (04)."""

import numpy as np
from hypothesis import strategies as st

from ..reference.joint import class_softmax, joint_forward
from ..reference.score_maps import part_maps
from ..strategies import assembled_maps, small_maps
from ..viz import annotate_cells, part_mosaic
from .comparing import compare_array, compare_parts
from .records import Case, Exercise, Pitfall
from .timing import twins

# --- part_maps ----------------------------------------------------------------------------------------------------


@st.composite
def _stacks(draw):
    """Small score-map stacks with distinct values (so that every misplaced map shows), a class and k."""
    k, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    N, H, W = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (N, 2 * C * k * k, H, W)
    x = draw(small_maps(shape))
    return Case((x, draw(st.integers(0, C - 1))), {"group_size": k})


def _maps_with(score_maps, cls, *, group_size, layout="official"):
    """One class's maps read with another channel layout: the pitfalls' common body."""
    x = np.asarray(score_maps, np.float32)
    N, channels, H, W = x.shape
    k, C = group_size, channels // (2 * group_size**2)
    if layout == "swapped pair":  # inside first
        return x.reshape(N, C, 2, k, k, H, W)[:, cls, ::-1]
    if layout == "transposed":  # the part's column before its row
        return x.reshape(N, C, 2, k, k, H, W)[:, cls].swapaxes(2, 3)
    if layout == "pair major":  # every class's outside maps, then every class's inside maps
        return x.reshape(N, 2, C, k, k, H, W)[:, :, cls]
    if layout == "part major":  # channel ((gh*k + gw)*C + cls)*2 + j
        return x.reshape(N, k, k, C, 2, H, W)[:, :, :, cls].transpose(0, 3, 1, 2, 4, 5)
    return x.reshape(N, C, 2, k, k, H, W)[:, cls]


def _compare_maps(case, expected, got):
    return compare_array("maps", expected, got)


def _draw_maps(fig, result):
    x, cls = result.case.args
    k = result.case.kwargs["group_size"]
    index = result.difference.index if result.difference and result.difference.index else (0, 0, 0, 0, 0, 0)
    n, j = index[:2]
    got = result.got if isinstance(result.got, np.ndarray) and result.got.shape == result.expected.shape else None
    panels = fig.subplots(1, 2 if got is None else 3)
    word = ("outside", "inside")[j]
    shown = [(result.expected, "the reference's")] + ([] if got is None else [(got, "your")])
    for ax, (maps, who) in zip(panels, shown, strict=False):
        mosaic = part_mosaic(maps[n, j].reshape(k * k, *maps.shape[-2:]), k)
        ax.imshow(mosaic, cmap="viridis")
        annotate_cells(ax, mosaic, fmt="{:.3g}", max_cells=144, fontsize=7, nan=None)
        ax.set_title(f"{who} {word} maps of class {cls}, image {n}\n(tile (gh, gw) at row gh, column gw)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    channels = panels[-1]
    channels.axis("off")
    gh, gw = index[2:4]
    channel = ((cls * 2 + j) * k + gh) * k + gw
    channels.text(0, 0.9, f"part ({gh}, {gw}) of the {word} maps of class {cls}\nis channel ((cls*2 + j)*k + gh)*k + gw"
                  f"\n= (({cls}*2 + {j})*{k} + {gh})*{k} + {gw} = {channel}", fontsize=10, va="top", family="monospace")


PART_MAPS = Exercise(
    name="part_maps",
    notebook="02_position_sensitive_score_maps",
    summary="the k x k outside and inside maps of one class, out of the (N, 2*C*k*k, H, W) stack",
    solution=part_maps,
    cases=_stacks(),
    compare=_compare_maps,
    pitfalls=(
        Pitfall("takes the inside map first", "in each class's pair of maps, j = 0 is outside and j = 1 inside: "
                "channel ((cls*2 + j)*k + gh)*k + gw",
                lambda x, c, **kw: _maps_with(x, c, **kw, layout="swapped pair")),
        Pitfall("reads the part's column as its row", "part (gh, gw) is row gh, column gw of the grid: channel "
                "((cls*2 + j)*k + gh)*k + gw, gw fastest",
                lambda x, c, **kw: _maps_with(x, c, **kw, layout="transposed")),
        Pitfall("stacks every class's outside maps before the inside maps", "the class is the slowest index, then "
                "outside/inside, then the part: channel ((cls*2 + j)*k + gh)*k + gw",
                lambda x, c, **kw: _maps_with(x, c, **kw, layout="pair major")),
        Pitfall("makes the part the slowest index", "the class is the slowest index, the part the fastest: channel "
                "((cls*2 + j)*k + gh)*k + gw", lambda x, c, **kw: _maps_with(x, c, **kw, layout="part major")),
    ),
    draw=_draw_maps,
    workload=lambda size, rng: Case((rng.standard_normal((1, 2 * 81 * 49, 38, 63), dtype=np.float32), 1),
                                    {"group_size": 7}),
    workload_size=1,
    max_examples=150,
)


# --- joint_forward ------------------------------------------------------------------------------------------------

#: Assembled values: moderate ones, a few exact ones, and some past float32's exp range (exp(100) overflows).
_joint_values = st.one_of(st.floats(-30, 30, width=32), st.sampled_from([0.0, 1.0, -1.0, 17.5]),
                          st.sampled_from([100.0, -100.0, 200.0]))


def _joint_cases():
    return assembled_maps(max_rois=3, max_classes=3, max_p=3, values=_joint_values).map(lambda x: Case((x,)))


#: ``mask_prob`` tolerance: relative 2**-20 (a few float32 roundings of exp, an add and a division), and 2**-100
#: absolute, below which a probability may round to 0 by another formula (exp(-|d|) of |d| > 69).
MASK_RTOL, MASK_ATOL = 2.0**-20, 2.0**-100


def _score_tolerance(x):
    """``(R, C)`` bound on a float32 mean of the ``P x P`` per-pixel maxima: ``(P*P + 2) u mean|max|``."""
    P = x.shape[2]
    magnitude = np.abs(np.maximum(x[:, 0::2], x[:, 1::2]).astype(np.float64)).mean(axis=(2, 3))
    return (P * P + 2) * 2.0**-24 * magnitude + 2.0**-140


def _compare_joint(case, expected, got):
    (x,) = case.args
    score_tol = _score_tolerance(x)
    # softmax moves by at most twice the largest score error, relatively, plus its own roundings
    prob_tol = (2 * score_tol.max(axis=1, initial=0)[:, None] + MASK_RTOL) * expected[2] + MASK_ATOL
    comparators = (
        lambda name, e, g: compare_array(name, e, g, rtol=MASK_RTOL, atol=MASK_ATOL),
        lambda name, e, g: compare_array(name, e, g, atol=score_tol),
        lambda name, e, g: compare_array(name, e, g, atol=prob_tol),
    )
    return compare_parts(("mask_prob", "cls_score", "cls_prob"), expected, got, comparators)


def _joint_with(assembled, *, swap=False, naive=False, inside_score=False, softmax_axis=1):
    """The joint formulation with one convention changed: the pitfalls' common body."""
    x = np.asarray(assembled, np.float32)
    outside, inside = x[:, 0::2], x[:, 1::2]  # (R, C, P, P)
    if swap:
        outside, inside = inside, outside
    with np.errstate(over="ignore", invalid="ignore"):
        if naive:
            mask_prob = np.exp(inside) / (np.exp(outside) + np.exp(inside))
        else:
            mask_prob = 1 / (1 + np.exp(np.float32(-1) * (inside - outside)))
    per_pixel = inside if inside_score else np.maximum(outside, inside)
    cls_score = per_pixel.mean(axis=(2, 3), dtype=np.float64).astype(np.float32)
    if softmax_axis == 1:
        cls_prob = class_softmax(cls_score)
    else:
        e = np.exp(cls_score - cls_score.max(axis=0, keepdims=True, initial=-np.inf))
        cls_prob = e / e.sum(axis=0, keepdims=True)
    return mask_prob.astype(np.float32), cls_score, cls_prob.astype(np.float32)


def _draw_joint(fig, result):
    (x,) = result.case.args
    diff = result.difference
    index = diff.index if diff and diff.index else (0, 0)
    r, c = index[:2]
    got = result.got
    if diff is not None and diff.part == "mask_prob" and len(index) == 4:
        panels = fig.subplots(1, 4)
        shown = [(x[r, 2 * c], f"outside map (channel {2 * c})"),
                 (x[r, 2 * c + 1], f"inside map (channel {2 * c + 1})"),
                 (result.expected.mask_prob[r, c], "the reference's mask_prob")]
        if isinstance(got, tuple) and len(got) == 3 and np.shape(got[0]) == result.expected.mask_prob.shape:
            shown.append((np.asarray(got[0])[r, c], "your mask_prob"))
        for ax, (image, title) in zip(panels, shown, strict=False):
            im = ax.imshow(image, cmap="viridis")
            fig.colorbar(im, ax=ax, shrink=0.7)
            annotate_cells(ax, image, fmt="{:.4g}", max_cells=25)
            ax.plot(index[3], index[2], "rs", markerfacecolor="none", markersize=14)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.supxlabel(f"ROI {r}, class {c}: the pixel in the red square differs", fontsize=9)
        return
    ax = fig.subplots()
    part = diff.part if diff is not None and diff.part in ("cls_score", "cls_prob") else "cls_score"
    position = ("mask_prob", "cls_score", "cls_prob").index(part)
    expected = getattr(result.expected, part)[r]
    classes = np.arange(len(expected))
    ax.bar(classes - 0.2, expected, 0.4, label="the reference")
    if isinstance(got, tuple) and len(got) == 3 and np.shape(got[position]) == getattr(result.expected, part).shape:
        ax.bar(classes + 0.2, np.asarray(got[position])[r], 0.4, label="yours")
    ax.set_xticks(classes)
    ax.set_xlabel("class")
    ax.set_title(f"{part} of ROI {r}", fontsize=9)
    ax.legend()


def _joint_workload(size, rng):
    return Case((rng.standard_normal((size, 2 * 81, 21, 21), dtype=np.float32),))


JOINT_FORWARD = Exercise(
    name="joint_forward",
    notebook="04_joint_formulation",
    summary="mask probabilities, class scores and class probabilities from the assembled inside/outside pairs",
    solution=joint_forward,
    cases=_joint_cases(),
    compare=_compare_joint,
    pitfalls=(
        Pitfall("takes channel cls*2 as the inside map", "channel cls*2 + 0 is outside and cls*2 + 1 inside; the mask "
                "is the softmax's inside share, sigmoid(inside - outside)", lambda x: _joint_with(x, swap=True)),
        Pitfall("computes exp(inside) / (exp(outside) + exp(inside)) as written",
                "the two-way softmax without overflow: with d = inside - outside and e = exp(-|d|), 1 / (1 + e) "
                "where d >= 0 and e / (1 + e) elsewhere", lambda x: _joint_with(x, naive=True)),
        Pitfall("scores a class by the mean of its inside map", "the class score is the mean over the ROI of the "
                "per-pixel max(outside, inside): both maps vote", lambda x: _joint_with(x, inside_score=True)),
        Pitfall("takes the softmax over the ROIs", "cls_prob is the softmax of each ROI's scores over the classes "
                "(axis 1)", lambda x: _joint_with(x, softmax_axis=0)),
    ),
    draw=_draw_joint,
    workload=_joint_workload,
    workload_size=300,
    backends=twins("joint", "joint_forward"),
    max_examples=150,
)


EXERCISES = [PART_MAPS, JOINT_FORWARD]
