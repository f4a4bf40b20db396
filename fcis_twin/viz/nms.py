"""Figures of notebook ``06_nms``: greedy NMS step by step, its bitmask, and its thresholds.

Every function draws onto the ``Axes`` (or the ``Figure``) it is given and returns it.  Boxes are half-open
``(x1, y1, x2, y2)``: on a panel of boxes alone they are drawn over ``[x1, x2)``, on an image as
:func:`fcis_twin.viz.common.draw_boxes` draws them (pixel ``j`` covers ``[j - 0.5, j + 0.5)``).
"""

import numpy as np
from matplotlib.patches import Rectangle

from .common import PALETTE, as_box_array, clean_axes, draw_boxes

__all__ = ["draw_scored_boxes", "draw_iou_matrix", "plot_nms_steps", "draw_suppression_bits",
           "draw_survivor_counts", "draw_boxes_on_image"]

#: How :func:`plot_nms_steps` draws a box in each state: (colour, line width, line style).
STEP_STYLES = {
    "current": ("tab:blue", 3.0, "-"),  # the box kept at this step
    "suppressed now": ("red", 1.5, "--"),  # the boxes it suppresses
    "kept before": ("0.3", 2.0, "-"),
    "suppressed before": ("0.82", 1.0, "-"),
    "undecided": ("black", 0.8, "-"),
}

#: Behind a box's caption, so that the lines it sits on do not cross its text.
CAPTION_BOX = dict(facecolor="white", alpha=0.85, pad=0.6, linewidth=0)



def _points_per_unit(ax):
    """Points per data unit along x and y of a panel whose limits and aspect are set."""
    ax.apply_aspect()
    pos = ax.get_position()
    fig_w, fig_h = ax.figure.get_size_inches() * 72
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    return pos.width * fig_w / abs(x1 - x0), pos.height * fig_h / abs(y1 - y0)


def _crosses(rect, boxes):
    """How many box edges pass through the inside of ``rect = (x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = rect
    n = 0
    for bx0, by0, bx1, by1 in boxes:
        for x in (bx0, bx1):  # vertical edges
            n += x0 < x < x1 and by0 < y1 and by1 > y0
        for y in (by0, by1):  # horizontal edges
            n += y0 < y < y1 and bx0 < x1 and bx1 > x0
    return n


def _overlap(a, b):
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _caption_places(ax, boxes, texts, fontsize):
    """A place for each box's caption, ``(x, y, ha, va)``: beside a corner or a side of its box, where it crosses
    the fewest box edges and overlaps no caption placed before it.  The panel's limits must be set."""
    px, py = _points_per_unit(ax)
    gap = 2.0 / px
    xlim, ylim = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    options = []  # per box: its candidate places, (x, y, ha, va, rect)
    for (x1, y1, x2, y2), text in zip(boxes, texts, strict=True):
        w, h = 0.62 * fontsize * len(text) / px, 1.25 * fontsize / py
        cy = (y1 + y2) / 2
        options.append([
            (x1, y1 - gap, "left", "bottom", (x1, y1 - gap - h, x1 + w, y1 - gap)),
            (x2, y1 - gap, "right", "bottom", (x2 - w, y1 - gap - h, x2, y1 - gap)),
            (x1, y2 + gap, "left", "top", (x1, y2 + gap, x1 + w, y2 + gap + h)),
            (x2, y2 + gap, "right", "top", (x2 - w, y2 + gap, x2, y2 + gap + h)),
            (x1 - gap, cy, "right", "center", (x1 - gap - w, cy - h / 2, x1 - gap, cy + h / 2)),
            (x2 + gap, cy, "left", "center", (x2 + gap, cy - h / 2, x2 + gap + w, cy + h / 2)),
        ])

    def cost(i, rect, chosen):
        outside = rect[0] < xlim[0] or rect[2] > xlim[1] or rect[1] < ylim[0] or rect[3] > ylim[1]
        clash = sum(_overlap(rect, options[j][c][4]) > 0 for j, c in enumerate(chosen) if j != i and c >= 0)
        return 100 * outside + 10 * clash + _crosses(rect, boxes)

    chosen = [-1] * len(boxes)
    for _ in range(3):  # place each caption given the others, a few rounds
        for i in range(len(boxes)):
            costs = [cost(i, option[4], chosen) for option in options[i]]
            chosen[i] = int(np.argmin(costs))
    return [options[i][c][:4] for i, c in enumerate(chosen)]


def _box_panel(ax, boxes, pad):
    """Limits around ``boxes`` with ``pad``, y down, equal scales, no ticks."""
    ax.set_xlim(boxes[:, 0].min() - pad, boxes[:, 2].max() + pad)
    ax.set_ylim(boxes[:, 3].max() + pad, boxes[:, 1].min() - pad)
    ax.set_aspect("equal")
    return clean_axes(ax)


def draw_scored_boxes(ax, boxes, scores, *, pad=8.0):
    """Boxes on a blank panel, each captioned ``index: score`` at a free corner, in a colour of its own.

    Parameters
    ----------
    ax : matplotlib Axes
    boxes : (R, 4) float array_like
        Half-open ``(x1, y1, x2, y2)``.
    scores : (R,) float array_like
    pad : float
        Room around the boxes, in box units.

    Returns
    -------
    ax
        One rectangle per box in ``ax.patches`` and one caption per box in ``ax.texts``, in box order.
    """
    boxes = as_box_array("boxes", boxes)
    scores = np.asarray(scores, np.float64)
    if scores.shape != (len(boxes),):
        raise ValueError(f"scores must have shape ({len(boxes)},) to match boxes, got {scores.shape}")
    _box_panel(ax, boxes, pad)
    texts = [f"{i}: {v:.2f}" for i, v in enumerate(scores)]
    places = _caption_places(ax, boxes, texts, fontsize=9)
    for i, ((x1, y1, x2, y2), (x, y, ha, va)) in enumerate(zip(boxes, places, strict=True)):
        color = PALETTE[i % len(PALETTE)]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=2))
        ax.text(x, y, texts[i], fontsize=9, ha=ha, va=va, color=color, bbox=CAPTION_BOX)
    ax.set_title("box index: score")
    return ax


def draw_iou_matrix(ax, iou, threshold):
    """The IoU of every pair of boxes, each value written on its cell, pairs above ``threshold`` framed in red.

    Parameters
    ----------
    ax : matplotlib Axes
    iou : (R, R) float array_like
        Values in ``[0, 1]`` (:func:`fcis_twin.reference.boxes.box_iou` of the boxes with themselves).
    threshold : float
        Off-diagonal cells with ``iou > threshold`` are framed.

    Returns
    -------
    ax
        ``ax.patches`` holds one frame per framed cell; ``ax.images[0]`` the matrix, with a colour bar.
    """
    iou = np.asarray(iou, np.float64)
    if iou.ndim != 2 or iou.shape[0] != iou.shape[1]:
        raise ValueError(f"iou must be a square (R, R) matrix, got shape {iou.shape}")
    n = len(iou)
    im = ax.imshow(iou, cmap="viridis", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(iou):
        if i != j and v > 0:
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if v > 0.6 else "white")
        if i != j and v > threshold:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("box j")
    ax.set_ylabel("box i")
    ax.set_title(f"IoU; red frame: IoU > {threshold:g}")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="IoU")
    return ax


def _step_states(n, steps, k):
    """The state of each of ``n`` boxes in panel ``k`` of :func:`plot_nms_steps` (``k == len(steps)``: result)."""
    state = ["undecided"] * n
    for s, (kept, hit) in enumerate(steps[: k + 1]):
        for j in hit:
            state[j] = "suppressed now" if s == k else "suppressed before"
        state[kept] = "current" if s == k else "kept before"
    return state


def plot_nms_steps(fig, boxes, steps, *, ncols=3, pad=6.0):
    """One panel per step of greedy NMS, then the result: what each kept box suppresses.

    Parameters
    ----------
    fig : matplotlib Figure
        Empty; the panels are added to it.
    boxes : (R, 4) float array_like
        Half-open ``(x1, y1, x2, y2)``.
    steps : sequence of (int, sequence of int)
        Per step, in order: the box kept, and the boxes it suppresses at that step.
    ncols : int
        Panels per row.
    pad : float
        Room around the boxes, in box units.

    Returns
    -------
    axes : list of Axes
        ``len(steps) + 1`` panels.  In step ``k``: the box kept now thick and blue, those it suppresses red and
        dashed, boxes kept before dark grey, suppressed before light grey, undecided thin black (``STEP_STYLES``).
        The last panel shows the kept boxes alone.
    """
    boxes = as_box_array("boxes", boxes)
    steps = [(int(kept), [int(j) for j in hit]) for kept, hit in steps]
    if any(not 0 <= j < len(boxes) for kept, hit in steps for j in [kept, *hit]):
        raise ValueError(f"steps must name boxes in [0, {len(boxes)})")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be an int >= 1, got {ncols!r}")
    total = len(steps) + 1
    rows = -(-total // ncols)
    axes = [fig.add_subplot(rows, ncols, k + 1) for k in range(total)]
    for ax in axes:
        _box_panel(ax, boxes, pad)
    places = _caption_places(axes[0], boxes, [str(j) for j in range(len(boxes))], fontsize=9)
    for k, ax in enumerate(axes):
        result = k == len(steps)
        state = _step_states(len(boxes), steps, k - 1 if result else k)
        for j, ((x1, y1, x2, y2), (x, y, ha, va)) in enumerate(zip(boxes, places, strict=True)):
            if result and state[j] not in ("current", "kept before"):
                continue  # the result shows the kept boxes only
            color, width, style = STEP_STYLES["kept before" if result else state[j]]
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                                   linewidth=width, linestyle=style))
            ax.text(x, y, str(j), fontsize=9, ha=ha, va=va, color=color, bbox=CAPTION_BOX)
        if result:
            ax.set_title(f"result: keep {[kept for kept, _ in steps]}", fontsize=10)
        else:
            kept, hit = steps[k]
            ax.set_title(f"step {k + 1}: keep {kept}, suppress {hit or 'nothing'}", fontsize=10)
    return axes


def draw_suppression_bits(ax, suppresses, order, keep, *, highlight=None):
    """The suppression matrix of the GPU formulation, in rank order: bit ``(r, c)`` is 1 when the box of rank
    ``r`` would suppress the box of rank ``c > r`` if it were kept.

    Parameters
    ----------
    ax : matplotlib Axes
    suppresses : (R, R) bool array_like
        Strictly upper triangular.
    order : (R,) int array_like
        The box of each rank.
    keep : sequence of int
        The kept boxes: their rows (the ones the sequential pass reads) get blue, bold labels.
    highlight : (int, int), optional
        A ``(rank r, rank c)`` cell to frame in orange.

    Returns
    -------
    ax
        ``ax.images[0]`` the bits; the lower triangle (never computed) shaded; ``ax.texts`` one digit per upper
        cell.
    """
    bits = np.asarray(suppresses, bool)
    order = np.asarray(order)
    n = len(order)
    if bits.shape != (n, n):
        raise ValueError(f"suppresses must have shape ({n}, {n}) to match order, got {bits.shape}")
    if np.tril(bits).any():
        raise ValueError("suppresses must be strictly upper triangular: rank r only suppresses later ranks")
    ax.imshow(bits, cmap="Greys", vmin=0, vmax=1.4)
    ax.imshow(np.where(np.tril(np.ones((n, n), bool)), 1.0, np.nan), cmap="Reds", vmin=0, vmax=6, alpha=0.5)
    kept = np.isin(order, np.asarray(keep))
    ax.set_xticks(range(n), [f"{c}\nbox {order[c]}" for c in range(n)], fontsize=9)
    ax.set_yticks(range(n), [f"rank {r}, box {order[r]}" for r in range(n)], fontsize=9)
    for r, label in enumerate(ax.get_yticklabels()):
        label.set_color("tab:blue" if kept[r] else "0.55")
        label.set_fontweight("bold" if kept[r] else "normal")
    for r in range(n):
        for c in range(r + 1, n):
            ax.text(c, r, int(bits[r, c]), ha="center", va="center", fontsize=9,
                    color="white" if bits[r, c] else "0.6")
    if highlight is not None:
        r, c = highlight
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="tab:orange", linewidth=2.5))
    ax.set_xlabel("column: rank c (bit c)")
    ax.set_title("bit (r, c): rank r would suppress rank c\nshaded: c <= r, never computed", fontsize=10)
    return ax


def draw_survivor_counts(ax, thresholds, counts, *, marked, objects=None, title=None):
    """How many boxes one NMS keeps at each IoU threshold, one curve per source, each marked at the threshold
    this NMS uses.

    Parameters
    ----------
    ax : matplotlib Axes
    thresholds : (T,) float array_like
        Increasing IoU thresholds.
    counts : dict of str to (T,) int array_like
        Boxes kept at each threshold, per source (its legend label).
    marked : float
        The threshold of this NMS in FCIS; one of ``thresholds``.  Each curve gets a marker there, with its count.
    objects : int, optional
        The number of objects in the image, drawn as a dashed line.
    title : str, optional

    Returns
    -------
    ax
        One line per source, then one marker per source, in ``ax.lines`` (after the vertical line at
        ``marked`` and, with ``objects``, the horizontal one); the y axis is logarithmic.
    """
    thresholds = np.asarray(thresholds, np.float64)
    if thresholds.ndim != 1 or len(thresholds) == 0:
        raise ValueError(f"thresholds must be a non-empty 1-d array, got shape {thresholds.shape}")
    hits = np.flatnonzero(np.isclose(thresholds, marked))
    if len(hits) != 1:
        raise ValueError(f"marked must be one of thresholds, got {marked!r}")
    if not counts:
        raise ValueError("counts must name at least one source")
    ax.axvline(marked, color="0.5", linestyle=":", linewidth=1)
    if objects is not None:
        ax.axhline(objects, color="0.35", linestyle="--", linewidth=1, label=f"{objects} objects")
    curves = []
    for s, (name, values) in enumerate(counts.items()):
        values = np.asarray(values, np.float64)
        if values.shape != thresholds.shape:
            raise ValueError(f"counts[{name!r}] must have shape {thresholds.shape}, got {values.shape}")
        (line,) = ax.plot(thresholds, values, "o-", markersize=3, color=PALETTE[(s + 1) % len(PALETTE)],
                          label=name)
        curves.append((line, values[hits[0]]))
    for line, value in curves:
        ax.plot(marked, value, "D", markersize=8, color=line.get_color(), markeredgecolor="black")
        ax.annotate(f"{value:g}", (marked, value), xytext=(7, -3), textcoords="offset points", fontsize=9,
                    color=line.get_color(), fontweight="bold")
    ax.set_yscale("log")
    ax.set_xlabel(f"IoU threshold (dotted: FCIS's {marked:g})")
    ax.set_ylabel("boxes kept")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    if title is not None:
        ax.set_title(title, fontsize=11)
    return ax


def draw_boxes_on_image(ax, image, boxes, *, labels=None, class_names=None, title=None, linewidth=1.2):
    """An image with boxes on it, coloured by label when ``labels`` is given (one colour per label).

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array_like
    boxes : (R, 4) float array_like
        Half-open ``(x1, y1, x2, y2)`` in image pixels.
    labels : (R,) int array_like, optional
        Box ``i`` is drawn in ``PALETTE[labels[i] % len(PALETTE)]``; without labels every box is yellow.
    class_names : sequence of str, optional
        With ``labels``: a legend names the colour of each label present.
    title : str, optional
    linewidth : float

    Returns
    -------
    ax
        One rectangle per box in ``ax.patches``, in box order.
    """
    boxes = as_box_array("boxes", boxes)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(boxes),):
            raise ValueError(f"labels must have shape ({len(boxes)},) to match boxes, got {labels.shape}")
    ax.imshow(image)
    for i, box in enumerate(boxes):
        color = "yellow" if labels is None else PALETTE[int(labels[i]) % len(PALETTE)]
        draw_boxes(ax, box[None], colors=color, linewidth=linewidth)
    if labels is not None and class_names is not None:
        for label in np.unique(labels):
            ax.plot([], [], "s", color=PALETTE[int(label) % len(PALETTE)], label=class_names[int(label)])
        if len(labels):
            ax.legend(fontsize=8, loc="lower right", framealpha=0.8, handlelength=1)
    if title is not None:
        ax.set_title(title, fontsize=10)
    return clean_axes(ax)
