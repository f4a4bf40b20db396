"""Figures of notebook ``04_joint_formulation``: mask softmax and class score.

An ROI's assembled maps are ``(2*C, P, P)``, channel ``cls*2 + j`` with ``j = 0`` outside and ``j = 1`` inside
(``docs/conventions.md``).  Functions that draw one panel take the ``Axes`` and return it; the inside/outside figure
fills a ``Figure`` it is given and returns its axes.
"""

import numpy as np

from .common import clean_axes, draw_boxes, zoom_to_box

__all__ = ["plot_inside_outside", "draw_class_prob_bars", "draw_rois_and_truth", "draw_score_sweep"]

#: Line colours of the sources a sweep or a bar chart compares (oracle, then trained model, then others).
SOURCE_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")


def _roi_maps(roi_maps):
    maps = np.asarray(roi_maps, np.float64)
    if maps.ndim != 3 or maps.shape[0] % 2 or maps.shape[0] == 0:
        raise ValueError(f"roi_maps must have shape (2*C, P, P), got {maps.shape}")
    return maps


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def plot_inside_outside(fig, roi_maps, classes, class_names=None, row_labels=None, annotate=False, title=None):
    """One row per class: inside map, outside map, their per-pixel max and the mask probability, for one ROI.

    Parameters
    ----------
    fig : matplotlib Figure
        Empty; it gets ``len(classes) x 4`` panels and two colour bars.
    roi_maps : (2*C, P, P) float array_like
        One ROI's assembled maps, channel ``cls*2 + j`` (``j = 0`` outside, ``j = 1`` inside).
    classes : sequence of int
        The classes to draw, one row each, in ``[0, C)``.
    class_names : sequence of str, optional
        ``C`` names; default ``class 0``, ``class 1``, ...
    row_labels : sequence of str, optional
        A label per row, drawn left of it (e.g. "right class").
    annotate : bool
        Write each value on its bin (for small ``P``).
    title : str, optional
        The figure's title.

    Returns
    -------
    axes : (len(classes), 4) ndarray of Axes
        Under the max panel its mean, the class score; under the mask panel the class probability (a softmax of
        the ``C`` class scores).  The three score columns share one colour scale.
    """
    maps = _roi_maps(roi_maps)
    n_cls = maps.shape[0] // 2
    classes = [int(c) for c in np.atleast_1d(np.asarray(classes))]
    if not classes or any(c < 0 or c >= n_cls for c in classes):
        raise ValueError(f"classes must be a non-empty list of classes in [0, {n_cls}), got {classes}")
    names = [f"class {c}" for c in range(n_cls)] if class_names is None else list(class_names)
    if len(names) != n_cls:
        raise ValueError(f"class_names must hold {n_cls} names, got {len(names)}")
    if row_labels is not None and len(row_labels) != len(classes):
        raise ValueError(f"row_labels must hold {len(classes)} labels, got {len(row_labels)}")
    pairs = maps.reshape(n_cls, 2, *maps.shape[1:])
    best = pairs.max(axis=1)  # (C, P, P)
    cls_prob = _softmax(best.mean(axis=(1, 2)))
    lo, hi = float(pairs[classes].min()), float(pairs[classes].max())
    hi = hi if hi > lo else lo + 1.0
    axes = fig.subplots(len(classes), 4, squeeze=False)
    for row, c in enumerate(classes):
        outside, inside = pairs[c]
        mask = 1.0 / (1.0 + np.exp(outside - inside))
        panels = [(inside, "inside", "magma", lo, hi), (outside, "outside", "magma", lo, hi),
                  (best[c], "max(out, in)", "magma", lo, hi), (mask, "mask_prob", "viridis", 0.0, 1.0)]
        for ax, (img, name, cmap, vmin, vmax) in zip(axes[row], panels, strict=True):
            ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(f"'{names[c]}' {name}", fontsize=10)
            if annotate:
                _annotate(ax, img, vmin, vmax)
            clean_axes(ax)
        axes[row, 2].set_xlabel(f"mean = cls_score = {best[c].mean():.2f}", fontsize=10)
        axes[row, 3].set_xlabel(f"cls_prob = {cls_prob[c]:.3f}", fontsize=10)
        if row_labels is not None:
            axes[row, 0].set_ylabel(row_labels[row], fontsize=10)
    fig.colorbar(axes[0, 0].images[0], ax=axes[:, :3], shrink=0.8, label="assembled score")
    fig.colorbar(axes[0, 3].images[0], ax=axes[:, 3], shrink=0.8, label="probability")
    if title is not None:
        fig.suptitle(title, fontsize=11)
    return axes


def _annotate(ax, img, vmin, vmax):
    for (y, x), v in np.ndenumerate(img):
        dark = v < vmin + 0.6 * (vmax - vmin)
        ax.text(x, y, f"{v:.3g}", ha="center", va="center", fontsize=10, color="white" if dark else "black")


def draw_class_prob_bars(ax, probs, class_names, labels=None, title=None):
    """Grouped bars of class probabilities, one group per class, one bar per source (e.g. oracle and model).

    Parameters
    ----------
    ax : matplotlib Axes
    probs : (S, C) or (C,) float array_like
        ``cls_prob`` of one ROI from ``S`` sources, each in ``[0, 1]``.
    class_names : sequence of str
        ``C`` names, the x tick labels.
    labels : sequence of str, optional
        ``S`` source names for the legend.
    title : str, optional

    Returns
    -------
    ax
        Every bar carries its value; the y axis runs from 0 to 1.1 (1.3 with a legend, which sits above the bars).
    """
    probs = np.atleast_2d(np.asarray(probs, np.float64))
    if probs.ndim != 2 or probs.shape[1] != len(class_names):
        raise ValueError(f"probs must have shape (S, {len(class_names)}), got {probs.shape}")
    if not np.all((probs >= 0) & (probs <= 1)):
        raise ValueError("probs must lie in [0, 1]")
    if labels is not None and len(labels) != len(probs):
        raise ValueError(f"labels must hold {len(probs)} names, got {len(labels)}")
    x = np.arange(probs.shape[1])
    width = 0.8 / len(probs)
    for s, row in enumerate(probs):
        bars = ax.bar(x + (s - (len(probs) - 1) / 2) * width, row, width=width,
                      color=SOURCE_COLORS[s % len(SOURCE_COLORS)], label=None if labels is None else labels[s])
        ax.bar_label(bars, fmt="%.2f", fontsize=9 if len(probs) == 1 else 8)
    ax.set_xticks(x, class_names, fontsize=9, rotation=20, ha="right", rotation_mode="anchor")
    ax.set_ylim(0, 1.1 if labels is None else 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("cls_prob")
    if labels is not None:
        ax.legend(fontsize=9, loc="upper center", ncol=len(labels))
    if title is not None:
        ax.set_title(title, fontsize=10)
    return ax


def draw_rois_and_truth(ax, image, rois, gt_box=None, names=None, pad=None):
    """An image with ROIs (white, named at their top left corner) and a ground-truth box (dashed green).

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array
    rois : (R, 4) float array_like
        Half-open ``(x1, y1, x2, y2)`` boxes in image pixels.
    gt_box : (4,) float array_like, optional
    names : sequence of str, optional
        ``R`` names written on the ROIs.
    pad : float, optional
        Zoom onto all boxes, widened by ``pad`` pixels; None shows the whole image.

    Returns
    -------
    ax
    """
    rois = np.asarray(rois, np.float64).reshape(-1, 4) if np.size(rois) else np.zeros((0, 4))
    if names is not None and len(names) != len(rois):
        raise ValueError(f"names must hold {len(rois)} names, got {len(names)}")
    ax.imshow(image)
    boxes = list(rois)
    if gt_box is not None:
        gt_box = np.asarray(gt_box, np.float64).reshape(4)
        draw_boxes(ax, gt_box[None], colors="lime", linewidth=1.5)
        ax.patches[-1].set_linestyle("--")
        boxes.append(gt_box)
    draw_boxes(ax, rois, colors="white", linewidth=2)
    for i, name in enumerate(names or []):
        ax.text(rois[i, 0], rois[i, 1] - 2, name, color="white", fontsize=9, va="bottom",
                bbox=dict(facecolor="black", alpha=0.6, pad=1, linewidth=0))
    if pad is not None and boxes:
        b = np.array(boxes)
        zoom_to_box(ax, (*b[:, :2].min(axis=0), *b[:, 2:].max(axis=0)), np.shape(image), pad=pad)
    return clean_axes(ax)


def draw_score_sweep(ax, iou, curves, ylabel, threshold=0.5):
    """Class scores (or probabilities) of ROIs slid off their objects, against the ROI's IoU with the object.

    Parameters
    ----------
    ax : matplotlib Axes
    iou : (S,) float array_like
        IoU of each step's ROI with its object, in ``[0, 1]``.
    curves : dict of str to (S,) or (S, G) float array_like
        Per source (e.g. ``"oracle"``, ``"bundled model"``), the value at each step for ``G`` objects: each
        object is a thin line, their mean a thick line with markers.
    ylabel : str
    threshold : float or None
        A dotted vertical line at this IoU (FCIS trains ROIs of IoU >= 0.5 as positives).

    Returns
    -------
    ax
        The x axis runs from IoU 1 (left) down to 0.
    """
    iou = np.asarray(iou, np.float64)
    if iou.ndim != 1 or not np.all((iou >= 0) & (iou <= 1)):
        raise ValueError(f"iou must be a 1-d array in [0, 1], got shape {iou.shape}")
    if not isinstance(curves, dict) or not curves:
        raise TypeError("curves must be a non-empty dict of name -> (S,) or (S, G) array")
    for s, (name, values) in enumerate(curves.items()):
        values = np.asarray(values, np.float64)
        values = values[:, None] if values.ndim == 1 else values
        if values.ndim != 2 or len(values) != len(iou):
            raise ValueError(f"curves[{name!r}] must have {len(iou)} rows, got shape {values.shape}")
        color = SOURCE_COLORS[s % len(SOURCE_COLORS)]
        if values.shape[1] > 1:
            ax.plot(iou, values, color=color, lw=0.8, alpha=0.35)
        ax.plot(iou, values.mean(axis=1), "o-", ms=3.5, lw=2.2, color=color, label=f"{name} (mean)")
    if threshold is not None:
        ax.axvline(threshold, color="tab:red", ls=":", lw=1.2, label=f"IoU {threshold}")
    ax.set_xlim(1.02, -0.02)
    ax.set_xlabel("IoU of the slid ROI with its object")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return ax
