"""Figures of notebook ``01_anchors_and_proposals``: anchors, objectness, decoded proposals.

Every function draws onto the ``Axes`` it is given and returns it; boxes are half-open ``(x1, y1, x2, y2)`` in image
pixels, drawn over an ``imshow`` image (pixel ``j`` covers ``[j - 0.5, j + 0.5)``), as
:func:`fcis_twin.viz.common.draw_boxes` draws them.
"""

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from .common import PALETTE, as_box_array, clean_axes, draw_boxes

__all__ = ["draw_base_anchors", "draw_anchor_centres", "draw_anchors_at", "draw_objectness",
           "draw_decoded_box", "draw_proposals", "draw_step_counts"]

#: Colour of the feature cell (and of its grid) in the anchor figures.
CELL_COLOR = (0.95, 0.55, 0.05)



def _as_stride(stride):
    if isinstance(stride, bool) or not isinstance(stride, (int, float, np.integer, np.floating)):
        raise TypeError(f"stride must be a real number, got {type(stride).__name__}")
    if not np.isfinite(stride) or stride <= 0:
        raise ValueError(f"stride must be positive and finite, got {stride}")
    return float(stride)


def _as_n_scales(n_scales, count):
    if isinstance(n_scales, bool) or not isinstance(n_scales, (int, np.integer)):
        raise TypeError(f"n_scales must be an int, got {type(n_scales).__name__}")
    if n_scales < 1 or count % n_scales:
        raise ValueError(f"n_scales must be >= 1 and divide the {count} anchors, got {n_scales}")
    return int(n_scales)


def _anchor_style(a, n_scales):
    """Colour by ratio (row ``a // n_scales``), line width by scale (``a % n_scales``)."""
    return PALETTE[(a // n_scales) % len(PALETTE)], 0.8 + 1.6 * (a % n_scales) / max(n_scales - 1, 1)


def _grid(ax, step, xs, ys, offset=0.0, **style):
    """Lines at every multiple of ``step``, drawn ``offset`` away: vertical ones for the multiples in the range
    ``xs = (x0, x1)``, spanning ``ys``, and horizontal ones for those in ``ys``, spanning ``xs``; two collections."""
    def at(lo, hi):
        return np.arange(np.ceil(lo / step) * step, hi + 1e-9, step) + offset

    ax.vlines(at(*xs), ys[0] + offset, ys[1] + offset, **style)
    ax.hlines(at(*ys), xs[0] + offset, xs[1] + offset, **style)


def draw_base_anchors(ax, base, stride, n_scales, ratios=None, inset=True):
    """The ``A`` base anchors of one feature cell, the stride-``s`` cell grid, and a zoom onto the cell.

    Parameters
    ----------
    ax : matplotlib Axes
    base : (A, 4) float array_like
        Half-open anchors relative to the cell's top-left corner, ratio-major (:func:`anchor_base`).
    stride : positive real
        The feature stride ``s``: the cell is ``[0, s) x [0, s)``.
    n_scales : int
        Scales per ratio; anchor ``a`` has ratio index ``a // n_scales`` (its colour) and scale index
        ``a % n_scales`` (its line width).
    ratios : sequence of float, optional
        The ratios, for the legend.
    inset : bool
        Add an inset that zooms onto the cell (five cells wide), with the cell filled and its centre marked.

    Returns
    -------
    ax
        Its patches: the filled cell, then one rectangle per anchor.  The panel is widened to the right to leave
        room for the inset, which is ``ax.child_axes[0]``.
    """
    base = as_box_array("base", base)
    stride = _as_stride(stride)
    n_scales = _as_n_scales(n_scales, len(base))
    c = stride / 2
    reach = float(np.abs(base - c).max()) * 1.08
    lo, hi = c - reach, c + reach
    right = hi + (1.35 * reach if inset else 0.0)
    lines = (right - lo) / stride
    if lines <= 400:  # the grid of feature cells, where its lines stay apart
        _grid(ax, stride, (lo, right), (lo, hi), color=CELL_COLOR, linewidth=0.4,
              alpha=0.35 if lines < 80 else 0.2, zorder=0)
    ax.add_patch(Rectangle((0, 0), stride, stride, color=CELL_COLOR, zorder=1))
    for a, (x1, y1, x2, y2) in enumerate(base):
        color, width = _anchor_style(a, n_scales)
        label = None
        if ratios is not None and a % n_scales == 0:
            label = f"ratio h/w {ratios[a // n_scales]:g}"
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=width,
                               label=label, zorder=2))
    ax.plot(c, c, "ko", markersize=3, zorder=3)
    ax.set_xlim(lo, right)
    ax.set_ylim(hi, lo)  # image convention: y grows downwards
    ax.set_aspect("equal")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    if ratios is not None:
        ax.legend(loc="upper right", fontsize=9)
    if inset:
        sub = ax.inset_axes([0.63, 0.04, 0.33, 0.33 * (right - lo) / (hi - lo)])  # a square
        sub.set_facecolor("white")
        _grid(sub, stride, (-2 * stride, 3 * stride), (-2 * stride, 3 * stride), color=CELL_COLOR,
              linewidth=0.8, alpha=0.6)
        sub.add_patch(Rectangle((0, 0), stride, stride, color=CELL_COLOR))
        sub.plot(c, c, "ko", markersize=4)
        sub.set_xlim(-2 * stride, 3 * stride)
        sub.set_ylim(3 * stride, -2 * stride)
        sub.set_aspect("equal")
        sub.set_xticks([])
        sub.set_yticks([])
        sub.set_title(f"one cell: {stride:g} x {stride:g} px", fontsize=9)
        ax.indicate_inset_zoom(sub, edgecolor="black")
        ax.set_xticks([t for t in ax.get_xticks() if lo <= t <= hi])  # none under the inset
        ax.set_xlim(lo, right)
    return ax


def draw_anchor_centres(ax, image, anchors, feature_shape, stride, step=1, window=None):
    """An image with the centre of the anchors of every ``step``-th feature position, one dot per position.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array_like
    anchors : (Hf*Wf*A, 4) float array_like
        In ``(y, x, anchor)`` order (:func:`shift_anchors`); the dots are the centres of anchor 0.
    feature_shape : (Hf, Wf)
    stride : positive real
        Drawn as the grid of feature cells when ``window`` is given.
    step : int >= 1
        Draw every ``step``-th position in each direction.
    window : (x, y, size), optional
        Zoom onto the ``size x size`` pixels from pixel ``(x, y)``, drawn as squares with thin white borders, and
        draw the borders of the feature cells there (orange).

    Returns
    -------
    ax
        ``ax.lines[0]`` holds the dots.
    """
    anchors = as_box_array("anchors", anchors)
    hf, wf = (int(v) for v in feature_shape)
    if hf < 1 or wf < 1 or len(anchors) % (hf * wf):
        raise ValueError(f"feature_shape {tuple(feature_shape)} does not divide the {len(anchors)} anchors")
    stride = _as_stride(stride)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step must be an int >= 1, got {step!r}")
    grid = anchors.reshape(hf, wf, -1, 4)[::step, ::step, 0]  # (h, w, 4)
    centres = (grid[..., :2] + grid[..., 2:]) / 2 - 0.5  # imshow coordinates
    ax.imshow(image, interpolation="nearest")
    ax.plot(centres[..., 0].ravel(), centres[..., 1].ravel(), "o", color="white",
            markersize=1.5 if window is None else 5, markeredgewidth=0 if window is None else 1,
            markeredgecolor="black")
    if window is not None:
        x, y, size = (float(v) for v in window)
        xs, ys = (x, x + size), (y, y + size)
        _grid(ax, 1, xs, ys, offset=-0.5, color="white", linewidth=0.3, alpha=0.6)  # pixel borders
        _grid(ax, stride, xs, ys, offset=-0.5, color=CELL_COLOR, linewidth=1.2)
        ax.set_xlim(x - 0.5, x + size - 0.5)
        ax.set_ylim(y + size - 0.5, y - 0.5)
    return clean_axes(ax)


def draw_anchors_at(ax, anchors, feature_shape, position, n_scales):
    """The ``A`` anchors of one feature position, coloured by ratio, thicker for larger scales, with their centre.

    Parameters
    ----------
    ax : matplotlib Axes
    anchors : (Hf*Wf*A, 4) float array_like
        In ``(y, x, anchor)`` order.
    feature_shape : (Hf, Wf)
    position : (y, x)
        The feature position.
    n_scales : int
        Scales per ratio (anchor ``a`` has ratio index ``a // n_scales``).

    Returns
    -------
    ax
        ``A`` more rectangles among its patches.
    """
    anchors = as_box_array("anchors", anchors)
    hf, wf = (int(v) for v in feature_shape)
    if hf < 1 or wf < 1 or len(anchors) % (hf * wf):
        raise ValueError(f"feature_shape {tuple(feature_shape)} does not divide the {len(anchors)} anchors")
    y, x = position
    if not (0 <= y < hf and 0 <= x < wf):
        raise ValueError(f"position must lie in the {hf} x {wf} feature map, got {tuple(position)}")
    boxes = anchors.reshape(hf, wf, -1, 4)[y, x]  # (A, 4)
    n_scales = _as_n_scales(n_scales, len(boxes))
    for a, box in enumerate(boxes):
        color, width = _anchor_style(a, n_scales)
        draw_boxes(ax, box[None], colors=color, linewidth=width)
    cx, cy = (boxes[0, :2] + boxes[0, 2:]) / 2 - 0.5
    ax.plot(cx, cy, "o", color="white", markersize=5, markeredgecolor="black")
    return ax


def draw_objectness(ax, prob, stride, boxes=None, title=None, colorbar=True):
    """A foreground-probability map over the feature grid, drawn at the image's scale, with boxes on top.

    Parameters
    ----------
    ax : matplotlib Axes
    prob : (Hf, Wf) float array_like
        Probabilities in ``[0, 1]``; feature pixel ``(y, x)`` covers image pixels ``[x s, x s + s)`` and likewise
        in ``y``.
    stride : positive real
        ``s``.
    boxes : (G, 4) float array_like, optional
        Ground-truth boxes, drawn in white.
    title : str, optional
    colorbar : bool
        Add a colour bar for ``[0, 1]`` beside the panel.

    Returns
    -------
    ax
        ``ax.images[0]`` is the map, with colour limits 0 and 1.
    """
    prob = np.asarray(prob, np.float64)
    if prob.ndim != 2:
        raise ValueError(f"prob must be 2-d (Hf, Wf), got shape {prob.shape}")
    stride = _as_stride(stride)
    hf, wf = prob.shape
    extent = (-0.5, wf * stride - 0.5, hf * stride - 0.5, -0.5)
    im = ax.imshow(prob, cmap="viridis", vmin=0, vmax=1, extent=extent, interpolation="nearest")
    if boxes is not None:
        draw_boxes(ax, as_box_array("boxes", boxes), colors="white", linewidth=0.8, alpha=0.8)
    if title is not None:
        ax.set_title(title, fontsize=10)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label="foreground prob.")
    return clean_axes(ax)


def draw_decoded_box(ax, image, anchor, decoded, truth=None, pad=12):
    """One anchor (dashed white), the box decoded from it (magenta), an arrow between their centres, zoomed.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array_like
    anchor, decoded : (4,) float array_like
        Half-open boxes.
    truth : (4,) float array_like, optional
        The object's ground-truth box (thin green).
    pad : float
        Pixels of image around the two boxes; the view stays inside the image.

    Returns
    -------
    ax
        Patches: the ground truth (if given), the anchor, the decoded box.
    """
    anchor = as_box_array("anchor", np.reshape(anchor, (-1, 4)))
    decoded = as_box_array("decoded", np.reshape(decoded, (-1, 4)))
    if len(anchor) != 1 or len(decoded) != 1:
        raise ValueError("anchor and decoded must be single boxes (4 values each)")
    ax.imshow(image)
    if truth is not None:
        draw_boxes(ax, np.reshape(truth, (1, 4)), colors="lime", linewidth=1)
    draw_boxes(ax, anchor, colors="white", linewidth=1.5)
    ax.patches[-1].set_linestyle("--")
    draw_boxes(ax, decoded, colors="magenta", linewidth=2)
    start = (anchor[0, :2] + anchor[0, 2:]) / 2 - 0.5
    end = (decoded[0, :2] + decoded[0, 2:]) / 2 - 0.5
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="white", linewidth=1.5))
    h, w = np.shape(image)[:2]
    lo = np.maximum(np.minimum(anchor[0], decoded[0])[:2] - pad, 0)
    hi = np.minimum(np.maximum(anchor[0], decoded[0])[2:] + pad, (w, h))
    ax.set_xlim(lo[0] - 0.5, hi[0] - 0.5)
    ax.set_ylim(hi[1] - 0.5, lo[1] - 0.5)
    return clean_axes(ax)


def draw_proposals(ax, image, boxes, scores, truth=None, title=None, colorbar=True):
    """Proposals coloured by objectness (best drawn on top), over the image, with the ground truth dashed.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array_like
    boxes : (K, 4) float array_like
    scores : (K,) float array_like
        Objectness in ``[0, 1]``; the colour of each box.
    truth : (G, 4) float array_like, optional
        Ground-truth boxes, dashed white.
    title : str, optional
    colorbar : bool

    Returns
    -------
    ax
        Patches: the ``G`` ground-truth boxes, then the ``K`` proposals from the worst to the best.
    """
    boxes = as_box_array("boxes", boxes)
    scores = np.asarray(scores, np.float64)
    if scores.shape != (len(boxes),):
        raise ValueError(f"scores must have shape ({len(boxes)},) to match boxes, got {scores.shape}")
    cmap = "viridis"
    ax.imshow(image)
    if truth is not None:
        draw_boxes(ax, as_box_array("truth", truth), colors="white", linewidth=1.2)
        for patch in ax.patches:
            patch.set_linestyle("--")
    rgba = colormaps[cmap](scores)
    width = 1.0 if len(boxes) <= 60 else 0.5  # thinner lines where boxes crowd
    for i in np.argsort(scores, kind="stable"):  # worst first, so the best lie on top
        draw_boxes(ax, boxes[i][None], colors=rgba[i], linewidth=width)
    if title is not None:
        ax.set_title(title, fontsize=10)
    if colorbar:
        ax.figure.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=ax, shrink=0.8, label="objectness")
    return clean_axes(ax)


def draw_step_counts(ax, steps, counts):
    """How many boxes are left after each step of ``propose``, for one or more runs: grouped horizontal bars.

    Parameters
    ----------
    ax : matplotlib Axes
    steps : sequence of str
        The steps, top to bottom.
    counts : dict of str to sequence of int
        Per run (the legend's label), one count per step.

    Returns
    -------
    ax
        One bar per (run, step), on a logarithmic axis, each labelled with its count.
    """
    steps = list(steps)
    if not counts:
        raise ValueError("counts must hold at least one run")
    for name, values in counts.items():
        if len(values) != len(steps):
            raise ValueError(f"counts[{name!r}] must have one value per step ({len(steps)}), got {len(values)}")
    height = 0.8 / len(counts)
    y = np.arange(len(steps))
    for i, (name, values) in enumerate(counts.items()):
        values = np.asarray(values, np.float64)
        bars = ax.barh(y + (i - (len(counts) - 1) / 2) * height, np.maximum(values, 0.8), height,
                       color=PALETTE[(i + 1) % len(PALETTE)], label=name)
        ax.bar_label(bars, [f"{v:,.0f}" for v in values], padding=2, fontsize=9)
    ax.set_yticks(y, steps)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(0.8, max(max(v) for v in counts.values()) * 8)
    ax.set_xlabel("boxes left (log scale)")
    ax.legend(loc="lower right", fontsize=9)
    return ax
