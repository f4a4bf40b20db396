"""Drawing helpers that every figure uses: the demo's and the notebooks'.

Functions draw onto a matplotlib ``Axes`` they are given and return it; none of them creates a window, so they work
headless (the demo builds a :class:`matplotlib.figure.Figure` directly, without pyplot).
"""

import numpy as np
from matplotlib.patches import Rectangle

__all__ = ["PALETTE", "ERROR_COLORS", "overlay_masks", "draw_boxes", "fit_boxes", "draw_instances", "part_mosaic",
           "zoom_to_box", "annotate_cells", "draw_message", "clean_axes", "mask_errors"]

#: Instance colours (RGB in [0, 1]), cycled.
PALETTE = np.array(
    [
        [0.90, 0.10, 0.10], [0.10, 0.45, 0.95], [0.10, 0.75, 0.20], [0.95, 0.65, 0.05],
        [0.65, 0.20, 0.85], [0.05, 0.80, 0.80], [0.95, 0.40, 0.70], [0.55, 0.35, 0.15],
    ]
)


def overlay_masks(image, masks, alpha=0.55):
    """Blend coloured binary masks onto an image.

    Parameters
    ----------
    image : (H, W, 3) uint8 or float in [0, 1]
    masks : (D, H, W) bool
    alpha : float
        Opacity of each mask.

    Returns
    -------
    blended : (H, W, 3) float64 in [0, 1]
    """
    out = np.asarray(image, dtype=np.float64)
    if out.max(initial=0) > 1:
        out = out / 255.0
    out = out.copy()
    for i, m in enumerate(np.asarray(masks, bool)):
        out[m] = (1 - alpha) * out[m] + alpha * PALETTE[i % len(PALETTE)]
    return out


def draw_boxes(ax, boxes, colors=None, linewidth=1.5, alpha=1.0):
    """Draw half-open ``(x1, y1, x2, y2)`` boxes; pixel ``j`` is drawn over ``[j - 0.5, j + 0.5)`` by imshow.  A box
    of zero area is drawn as a ``+`` at its corner, so that it does not vanish."""
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64)):
        color = PALETTE[i % len(PALETTE)] if colors is None else colors
        ax.add_patch(
            Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                      linewidth=linewidth, alpha=alpha)
        )
        if x2 == x1 or y2 == y1:
            ax.plot(x1 - 0.5, y1 - 0.5, marker="+", markersize=10 + 2 * linewidth, color=color, alpha=alpha)
    return ax


def fit_boxes(ax, boxes, pad=1.0):
    """Limit a panel to half-open ``(x1, y1, x2, y2)`` boxes, widened by ``pad``, in image orientation (y down, equal
    scales), as :func:`draw_boxes` draws them.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = fit_boxes(Figure().subplots(), [[0, 0, 4, 2], [2, 1, 6, 3]])
    >>> [float(v) for v in ax.get_xlim() + ax.get_ylim()]  # (left, right, bottom, top)
    [-1.5, 6.5, 3.5, -1.5]
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    b = b[np.isfinite(b).all(axis=1)]
    if len(b) == 0:
        b = np.zeros((1, 4))
    ax.set_xlim(b[:, 0].min() - pad - 0.5, b[:, 2].max() + pad - 0.5)
    ax.set_ylim(b[:, 3].max() + pad - 0.5, b[:, 1].min() - pad - 0.5)
    ax.set_aspect("equal")
    return ax


def draw_instances(ax, image, masks, boxes, labels, class_names, scores=None):
    """Image with coloured masks, boxes and ``class score`` captions."""
    ax.imshow(overlay_masks(image, masks))
    draw_boxes(ax, boxes)
    for i, (box, label) in enumerate(zip(np.asarray(boxes), np.asarray(labels), strict=True)):
        text = class_names[label] if scores is None else f"{class_names[label]} {scores[i]:.2f}"
        ax.text(box[0], box[1] - 2, text, fontsize=9, color="white", va="bottom",
                bbox=dict(facecolor=PALETTE[i % len(PALETTE)], alpha=0.8, pad=1, linewidth=0))
    return clean_axes(ax)


def part_mosaic(maps, k, gap=1):
    """Tile the ``k * k`` position-sensitive maps of one class into a ``k x k`` mosaic.

    Parameters
    ----------
    maps : (k*k, Hf, Wf) float
        Channels ``gh*k + gw`` of one class and one of inside/outside.
    k : int
    gap : int
        Pixels of NaN between tiles (drawn as blank).

    Returns
    -------
    mosaic : (k*(Hf+gap) - gap, k*(Wf+gap) - gap) float64
        Tile ``(gh, gw)`` sits at row ``gh``, column ``gw``: the same place as the part cell it scores.
    """
    maps = np.asarray(maps, np.float64)
    _, hf, wf = maps.shape
    out = np.full((k * (hf + gap) - gap, k * (wf + gap) - gap), np.nan)
    for gh in range(k):
        for gw in range(k):
            y, x = gh * (hf + gap), gw * (wf + gap)
            out[y : y + hf, x : x + wf] = maps[gh * k + gw]
    return out


def zoom_to_box(ax, box, image_shape, pad=10):
    """Show only a window around a half-open ``(x1, y1, x2, y2)`` box, widened by ``pad`` and clamped to the image.

    Parameters
    ----------
    ax : matplotlib Axes
        A panel drawn with ``imshow`` (pixel ``j`` covers ``[j - 0.5, j + 0.5)``; rows grow downwards).
    box : (4,) float
    image_shape : tuple
        ``(H, W, ...)`` of the image the panel shows; the window never leaves it.
    pad : float or (float, float)
        Pixels added on each side; a pair gives ``(pad_x, pad_y)``.

    Returns
    -------
    ax

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> _ = zoom_to_box(ax, (5, 40, 30, 60), (64, 100), pad=10)
    >>> [float(v) for v in ax.get_xlim() + ax.get_ylim()]  # (left, right, bottom, top)
    [-0.5, 39.5, 63.5, 29.5]
    """
    x1, y1, x2, y2 = np.asarray(box, np.float64).tolist()
    pad_x, pad_y = np.broadcast_to(np.asarray(pad, np.float64), (2,)).tolist()
    h, w = image_shape[:2]
    ax.set_xlim(max(x1 - pad_x, 0) - 0.5, min(x2 + pad_x, w) - 0.5)
    ax.set_ylim(min(y2 + pad_y, h) - 0.5, max(y1 - pad_y, 0) - 0.5)
    return ax


def annotate_cells(ax, values, fmt="{:.4g}", max_cells=64, fontsize=8, nan="NaN"):
    """Write each value of a small ``(H, W)`` image on its pixel, as ``imshow`` draws it; NaN as ``nan`` (None: left
    blank, as the gaps of :func:`part_mosaic`).  An image of more than ``max_cells`` pixels is left as it is.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = annotate_cells(Figure().subplots(), [[0.5, float("nan")]])
    >>> [t.get_text() for t in ax.texts]
    ['0.5', 'NaN']
    """
    values = np.asarray(values, np.float64)
    if values.size > max_cells:
        return ax
    for (y, x), v in np.ndenumerate(values):
        if np.isnan(v) and nan is None:
            continue
        text = nan if np.isnan(v) else fmt.format(v)
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color="black",
                bbox=dict(facecolor="white", alpha=0.6, pad=1, linewidth=0))
    return ax


def draw_message(fig, text):
    """A figure of text alone, monospaced, top left: what a figure shows when there is nothing to draw."""
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0, 1, text, family="monospace", fontsize=8, va="top")
    return ax


def clean_axes(ax):
    """Hide the ticks of an image panel."""
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


#: Colours of :func:`mask_errors` (RGB in [0, 1]): neither mask, both, only the prediction, only the ground truth.
ERROR_COLORS = {"neither": (0.92, 0.92, 0.92), "both": (0.55, 0.55, 0.55), "extra": (0.90, 0.10, 0.10),
                "missed": (0.10, 0.30, 0.95)}


def mask_errors(mask, truth):
    """Where a predicted mask and the ground truth agree and differ, as an image, with the two error counts.

    Parameters
    ----------
    mask, truth : (H, W) bool array_like
        A predicted mask (or the union of several) and the ground truth.

    Returns
    -------
    image : (H, W, 3) float ndarray
        RGB in [0, 1], coloured by :data:`ERROR_COLORS`: light grey where neither holds the pixel, dark grey where
        both do, red where only ``mask`` does (an extra pixel), blue where only ``truth`` does (a missed one).
    extra, missed : int
        The numbers of red and of blue pixels.

    Examples
    --------
    >>> image, extra, missed = mask_errors([[True, True], [False, False]], [[True, False], [True, False]])
    >>> extra, missed, image[0, 1].tolist() == list(ERROR_COLORS["extra"])
    (1, 1, True)
    """
    from ..reference._checks import as_array

    mask = as_array("mask", mask, ndim=2, dtype=bool)
    truth = as_array("truth", truth, ndim=2, dtype=bool)
    if mask.shape != truth.shape:
        raise ValueError(f"mask and truth must have the same shape, got {mask.shape} and {truth.shape}")
    image = np.empty((*mask.shape, 3))
    for where, name in ((~mask & ~truth, "neither"), (mask & truth, "both"), (mask & ~truth, "extra"),
                        (~mask & truth, "missed")):
        image[where] = ERROR_COLORS[name]
    return image, int((mask & ~truth).sum()), int((~mask & truth).sum())


# ---- argument checks and figure creation shared by the notebooks' figure modules (not exported by fcis_twin.viz)


def as_box_array(name, boxes):
    """``boxes`` as an ``(R, 4)`` float64 array; a ``ValueError`` naming ``name`` for any other shape."""
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (R, 4), got {boxes.shape}")
    return boxes


def new_figure(fig, figsize):
    """``fig`` if one is given, else a new pyplot figure of ``figsize`` inches with a constrained layout."""
    if fig is not None:
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")
