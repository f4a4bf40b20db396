"""Figures of notebook ``08_evaluation``: detections judged right or wrong, precision/recall curves and their
average precision, AP over the IoU thresholds, and where masks lose pixels.

Every function draws onto the ``Axes`` it is given and returns it (:func:`draw_pixel_counts`, which draws a row of
them, returns its colour bar); none of them opens a window.
"""

import numpy as np
from matplotlib.colors import ListedColormap

from .common import clean_axes

__all__ = ["VERDICT_COLORS", "draw_verdicts", "draw_precision_recall", "draw_ap_by_threshold",
           "draw_pixel_counts"]

#: Colours (RGB in [0, 1]) of :func:`draw_verdicts`: a true positive, a false positive.
VERDICT_COLORS = {"true positive": (0.10, 0.70, 0.20), "false positive": (0.90, 0.10, 0.10)}

#: VOC 2007's 11 recall levels, as the official code writes them (``np.arange(0, 1.1, 0.1)``), and COCO's 101.
VOC07_LEVELS = np.arange(0.0, 1.1, 0.1)
COCO_LEVELS = np.linspace(0.0, 1.0, 101)


def _as_vector(name, values, *, unit=False):
    """``values`` as a finite float64 vector; in ``[0, 1]`` when ``unit``."""
    try:
        values = np.asarray(values, np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers") from exc
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite")
    if unit and ((values < 0) | (values > 1)).any():
        raise ValueError(f"{name} must lie in [0, 1]")
    return values


def _interpolated(recall, precision, levels):
    """(L,) the best precision at a recall ``>= r`` for each level ``r``, 0 where no recall reaches it."""
    return np.array([precision[recall >= r].max(initial=0.0) for r in levels])


def draw_verdicts(ax, image, masks, tp, *, scores=None, min_score=0.0, title=None):
    """An image, faded to grey, with each detection's mask by its verdict: a true positive filled green and outlined
    in dark green, a false positive outlined in red (last, so that one lying on a found instance still shows).

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) uint8 or float in [0, 1]
    masks : (D, H, W) bool array_like
        The detections' binary masks.
    tp : (D,) bool array_like
        Whether each detection is a true positive.
    scores : (D,) float array_like, optional
        The detections' scores; with ``min_score``, only those scoring at least ``min_score`` are drawn.
    min_score : float
    title : str, optional
        The first line of the panel's title; the second line counts the true and false positives drawn.

    Returns
    -------
    ax

    Raises
    ------
    ValueError
        ``masks`` not ``(D, H, W)`` of the image's size, ``tp`` or ``scores`` not ``(D,)``.
    """
    image = np.asarray(image, np.float64)
    if image.max(initial=0) > 1:
        image = image / 255.0
    masks = np.asarray(masks, bool)
    tp = np.asarray(tp, bool)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks must be (D, H, W) with (H, W) = {image.shape[:2]}, got {masks.shape}")
    if tp.shape != masks.shape[:1]:
        raise ValueError(f"tp must have shape ({len(masks)},), got {tp.shape}")
    if scores is not None:
        scores = _as_vector("scores", scores)
        if scores.shape != tp.shape:
            raise ValueError(f"scores must have shape ({len(masks)},), got {scores.shape}")
        masks, tp = masks[scores >= min_score], tp[scores >= min_score]
    gray = image[..., :3].mean(axis=-1) if image.ndim == 3 else image
    ax.imshow(gray, cmap="gray", vmin=-0.6, vmax=1.4, interpolation="nearest")  # faded, to show the colours
    green, red = VERDICT_COLORS["true positive"], VERDICT_COLORS["false positive"]
    for mask in masks[tp]:
        ax.imshow(np.ma.masked_where(~mask, mask), cmap=ListedColormap([green]), alpha=0.55,
                  interpolation="nearest")
    for where, color, width in ((tp, "darkgreen", 1.0), (~tp, red, 1.6)):  # false positives drawn last
        for mask in masks[where]:
            if mask.any() and not mask.all():
                ax.contour(mask, levels=[0.5], colors=[color], linewidths=width)
    counts = f"{np.count_nonzero(tp)} TP, {np.count_nonzero(~tp)} FP"
    ax.set_title(counts if title is None else f"{title}\n{counts}")
    return clean_axes(ax)


def draw_precision_recall(ax, recall, precision, *, title=None, legend=True):
    r"""One class's precision/recall curve, its interpolated precision, and where VOC07 and COCO read it.

    Parameters
    ----------
    ax : matplotlib Axes
    recall, precision : (n,) float array_like in [0, 1]
        After each of the class's ranked predictions (``evaluate_sds``'s ``"curves"``); recall never decreases.
    title : str, optional
    legend : bool
        Add a legend (lower left).

    Returns
    -------
    ax
        With four lines, in this order: the interpolated precision :math:`\max_{\text{rec}_n \ge r}
        \text{prec}_n` (a wide step line, 0 past the last recall), the precision after each prediction (thin,
        black), and the interpolated precision at COCO's 101 recall levels (small dots) and at VOC07's 11 levels
        (large circles).

    Raises
    ------
    ValueError
        Arrays not 1-d of one length, values outside ``[0, 1]``, or a recall that decreases.
    """
    recall = _as_vector("recall", recall, unit=True)
    precision = _as_vector("precision", precision, unit=True)
    if precision.shape != recall.shape:
        raise ValueError(f"precision must have the shape of recall, {recall.shape}, got {precision.shape}")
    if (np.diff(recall) < 0).any():
        raise ValueError("recall must never decrease")
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # (n,) the best precision from here on
    x, y = np.concatenate([[0.0], recall]), np.concatenate([envelope[:1], envelope])
    if len(recall) == 0 or recall[-1] < 1:  # past the last recall no precision is left: 0
        x, y = np.append(x, 1.0), np.append(y if len(y) else [0.0], 0.0)
    ax.plot(x, y, color="tab:blue", linewidth=3.0, alpha=0.6, drawstyle="steps-pre", label="interpolated")
    ax.plot(recall, precision, color="black", linewidth=1.0, label="after each prediction")
    ax.plot(COCO_LEVELS, _interpolated(recall, precision, COCO_LEVELS), "o", color="tab:blue", markersize=2.5,
            label="COCO: 101 levels")
    ax.plot(VOC07_LEVELS, _interpolated(recall, precision, VOC07_LEVELS), "o", color="tab:orange",
            markersize=7, markerfacecolor="none", markeredgewidth=1.8, label="VOC07: 11 levels")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    if title is not None:
        ax.set_title(title)
    if legend:
        ax.legend(loc="lower left", fontsize=9)
    return ax


def draw_ap_by_threshold(ax, thresholds, ap, *, label, color=None):
    """AP against the mask-IoU threshold, with its mean over the thresholds (COCO's AP) as a dashed line.

    Parameters
    ----------
    ax : matplotlib Axes
    thresholds : (T,) float array_like in [0, 1]
    ap : (T,) float array_like in [0, 1]
        The AP (averaged over the classes) at each threshold.
    label : str
        Names the line in the legend; the mean is added to it.
    color : matplotlib colour, optional

    Returns
    -------
    ax
        With two lines: the AP at each threshold (markers), and its mean across the thresholds (dashed).

    Raises
    ------
    ValueError
        Arrays not 1-d of one length, or values outside ``[0, 1]``.
    TypeError
        ``label`` not a str.
    """
    thresholds = _as_vector("thresholds", thresholds, unit=True)
    ap = _as_vector("ap", ap, unit=True)
    if ap.shape != thresholds.shape:
        raise ValueError(f"ap must have the shape of thresholds, {thresholds.shape}, got {ap.shape}")
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    (line,) = ax.plot(thresholds, ap, "o-", color=color, linewidth=1.8, markersize=5,
                      label=f"{label}: mean {ap.mean():.3f}")
    ax.axhline(ap.mean(), color=line.get_color(), linestyle="--", linewidth=1.0)
    ax.set_xlabel("mask IoU threshold t")
    ax.set_ylabel("AP at t (mean over classes)")
    ax.set_ylim(-0.03, 1.05)
    ax.legend(loc="lower left", fontsize=9)
    return ax


def draw_pixel_counts(axes, counts, titles, *, label):
    """Maps of per-pixel counts side by side, on one colour scale with one colour bar.

    Parameters
    ----------
    axes : sequence of matplotlib Axes
        One per map, all in one figure (e.g. a row of ``plt.subplots``).
    counts : (M, H, W) float array_like >= 0
        How many masks (say) miss each pixel, one map per panel.
    titles : sequence of M str
    label : str
        The colour bar's label.

    Returns
    -------
    colorbar : matplotlib.colorbar.Colorbar

    Raises
    ------
    ValueError
        ``counts`` not 3-d, negative or not finite, or as many ``axes`` and ``titles`` as maps.
    """
    counts = np.asarray(counts, np.float64)
    axes = list(np.ravel(axes))
    titles = list(titles)
    if counts.ndim != 3 or len(counts) == 0:
        raise ValueError(f"counts must be (M, H, W) with M >= 1, got shape {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("counts must be finite and >= 0")
    if len(axes) != len(counts) or len(titles) != len(counts):
        raise ValueError(f"axes and titles must hold one entry per map ({len(counts)}), got {len(axes)} and "
                         f"{len(titles)}")
    top = max(counts.max(initial=0.0), 1.0)
    for ax, values, title in zip(axes, counts, titles, strict=True):
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=top, interpolation="nearest")
        ax.set_title(title)
        clean_axes(ax)
    return axes[0].figure.colorbar(image, ax=axes, shrink=0.8, label=label)
