"""The exercise ``paste_masks`` (notebook 07): a mask resized into its box in the image.

It is checked on its probabilities only: your function is called without ``threshold`` (so with None), since
thresholding them is a single ``pasted >= threshold``; they must be float32, equal to the reference's within
:data:`PASTE_ATOL`.
"""


import numpy as np

from ..reference._checks import round_half_away
from ..reference.paste import axis_coord, bilinear, box_regions, paste_masks, paste_masks_loop
from ..strategies import paste_inputs
from ..viz import draw_boxes, draw_message, fit_boxes
from .comparing import compare_array
from .records import Case, Exercise, Pitfall
from .timing import bench_workload, twins


def _paste_cases():
    """At most 5 small masks, boxes on the half-pixel grid reaching past every side of an image up to 16 x 20."""
    return paste_inputs(max_masks=5, max_height=16, max_width=20).map(lambda p: Case(p[:3]))


def _weights(offset, size, p, centres):
    """``(n, p)`` float64 interpolation weights of box pixels ``offset`` on a ``p``-cell mask axis."""
    u = (offset + 0.5) * p / size - 0.5 if centres else offset * p / size
    u = np.clip(u, 0, p - 1)
    u0 = np.floor(u).astype(np.int64)
    a = u - u0
    weights = np.zeros((len(offset), p))
    np.add.at(weights, (np.arange(len(offset)), u0), 1 - a)
    np.add.at(weights, (np.arange(len(offset)), np.minimum(u0 + 1, p - 1)), a)
    return weights


def _pasted_with(masks, boxes, image_shape, *, rounding=round_half_away, centres=True, least=1, yx=False,
                 clip_first=False):
    """Pasting with one convention changed, in float64 matrix products: the pitfalls' common body."""
    masks, boxes = np.asarray(masks, np.float32), np.asarray(boxes, np.float32).reshape(-1, 4)
    height, width = image_shape
    if yx:  # the box read as (y1, x1, y2, x2)
        boxes = boxes[:, [1, 0, 3, 2]]
    if clip_first:  # the box cut to the image, then the whole mask squeezed into what is left
        boxes = np.clip(boxes, 0, np.float32([width, height, width, height]))
    out = np.zeros((len(masks), height, width), np.float32)
    for d, (mask, box) in enumerate(zip(masks, boxes, strict=True)):
        x1, y1, x2, y2 = (int(v) for v in rounding(box.astype(np.float64)))
        w, h = max(x2 - x1, least), max(y2 - y1, least)
        ys, xs = np.arange(max(y1, 0), min(y1 + h, height)), np.arange(max(x1, 0), min(x1 + w, width))
        if len(ys) and len(xs):
            wy, wx = _weights(ys - y1, h, mask.shape[0], centres), _weights(xs - x1, w, mask.shape[1], centres)
            out[d, ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1] = wy @ mask @ wx.T
    return out


def _paste_pitfall(**options):
    return lambda masks, boxes, image_shape, threshold=None: _pasted_with(masks, boxes, image_shape, **options)


#: Tolerance of a pasted probability: 16 units in the last place of 1.  Values lie in [0, 1] and each is two
#: two-tap sums of products of weights and probabilities in [0, 1]; another order of the same operations (columns
#: first, ``v0 + a * (v1 - v0)``, float64, a matrix product) moves it by a few units of 2**-24, while a wrong
#: sample position or a pixel in or out of the box moves it by the difference of two mask values.
PASTE_ATOL = 2.0**-20


def _compare_pasted(case, expected, got):
    return compare_array("pasted", expected, got, atol=PASTE_ATOL)


def _draw_pasted(fig, result):
    masks, boxes, (height, width) = result.case.args
    diff = result.difference
    d, y, x = diff.index if diff and diff.index and len(diff.index) == 3 else (0, None, None)
    got, expected = result.got, result.expected
    if len(masks) == 0:  # nothing to draw: a wrong type, dtype or shape of an empty output
        draw_message(fig, result.message)
        return
    mine = isinstance(got, np.ndarray) and got.shape == expected.shape and got.dtype.kind == "f"
    shown = [(expected[d], "the reference's paste", 1.0)]
    if mine:
        error = np.abs(got[d].astype(np.float64) - expected[d])
        shown += [(got[d], "your paste", 1.0), (error, "|yours - reference|", max(error.max(), 1e-6))]
    X1, Y1, X2, Y2 = round_half_away(boxes[d])
    rounded = [X1, Y1, max(X2, X1 + 1), max(Y2, Y1 + 1)]
    panels = fig.subplots(1, len(shown) + 1, width_ratios=[0.6] + [1] * len(shown))
    fig.colorbar(panels[0].imshow(masks[d], cmap="viridis", vmin=0, vmax=1), ax=panels[0], shrink=0.5)
    panels[0].set_xticks(range(masks.shape[2]))
    panels[0].set_yticks(range(masks.shape[1]))
    panels[0].set_title(f"mask {d}, the input", fontsize=9)
    for ax, (image, title, top) in zip(panels[1:], shown, strict=True):
        fig.colorbar(ax.imshow(image, cmap="viridis", vmin=0, vmax=top), ax=ax, shrink=0.7)
        draw_boxes(ax, [[0, 0, width, height]], colors="0.6", linewidth=1)
        draw_boxes(ax, [rounded], colors="orange", linewidth=2.4)
        draw_boxes(ax, boxes[d : d + 1], colors="black", linewidth=1.2)
        if y is not None:
            ax.plot(x, y, "rs", markerfacecolor="none", markersize=12, markeredgewidth=2)
        fit_boxes(ax, [[0, 0, width, height], boxes[d], rounded])
        ax.set_title(title, fontsize=9)
    text = f"mask {d} ({masks.shape[1]} x {masks.shape[2]} cells), box {boxes[d].tolist()} (black; orange: rounded)"
    if y is not None and mine:
        text += (f"; red square: pixel (row {y}, column {x}), the reference {float(expected[d, y, x]):.9g}, yours "
                 f"{float(got[d, y, x]):.9g}")
    fig.supxlabel(text + "; grey: the image's edge", fontsize=9, wrap=True)


PASTE_MASKS = Exercise(
    name="paste_masks",
    notebook="07_mask_voting_and_paste",
    summary="resize each mask bilinearly into its rounded box in an image-sized canvas: the probabilities, float32 "
            "(called without threshold: thresholding is a single >=)",
    solution=paste_masks,
    cases=_paste_cases(),
    compare=_compare_pasted,
    pitfalls=(
        Pitfall("truncates the box coordinates (int(x), astype(int))", "box coordinates are rounded, half away "
                "from zero: X1 = round(x1), X2 = round(x2)", _paste_pitfall(rounding=np.trunc)),
        Pitfall("rounds the box coordinates half to even (np.round, Python's round)", "box coordinates are rounded "
                "half away from zero, as C's round: 0.5 -> 1, 2.5 -> 3, -0.5 -> -1", _paste_pitfall(rounding=np.round)),
        Pitfall("samples the mask at u = (x - X1) * P / w", "pixel centres map to cell centres: u = (x - X1 + 0.5) "
                "* P / w - 0.5, clamped to [0, P - 1] (OpenCV's INTER_LINEAR)", _paste_pitfall(centres=False)),
        Pitfall("lets a box that rounds to zero width or height paste nothing", "a rounded box is at least one "
                "pixel on a side: w = max(X2 - X1, 1), h = max(Y2 - Y1, 1)", _paste_pitfall(least=0)),
        Pitfall("reads the box as (y1, x1, y2, x2)", "boxes are (x1, y1, x2, y2): x is the column, y the row",
                _paste_pitfall(yx=True)),
        Pitfall("clips the box to the image before resizing the mask into it", "the mask is resized to the whole "
                "rounded box; only then are the pixels outside the image left out", _paste_pitfall(clip_first=True)),
    ),
    draw=_draw_pasted,
    workload=bench_workload("paste_inputs"),
    workload_size=10,
    backends=twins("paste", "paste_masks"),
    readings=(paste_masks_loop, box_regions, axis_coord, bilinear),
)


EXERCISES = [PASTE_MASKS]
