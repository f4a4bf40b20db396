"""Figures of notebook ``07_mask_voting_and_paste``: pasting a mask into its box, and mask voting.

Every function draws onto the ``Axes`` it is given and returns it.  Image panels follow ``imshow``'s convention
(pixel ``j`` covers ``[j - 0.5, j + 0.5)``); boxes and windows are half-open ``(x1, y1, x2, y2)`` in image pixels.
"""

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize

from .common import clean_axes, draw_boxes, mask_errors, zoom_to_box

__all__ = ["draw_mask_grid", "draw_pasted_mask", "draw_voters", "draw_vote_average", "draw_mask_errors",
           "draw_iou_change"]

#: Colour of a binary mask laid over an image, and of the ground truth's outline.
MASK_COLOR, TRUTH_COLOR = (1.0, 0.85, 0.1), "red"


def _as_image(name, values, ndim=2):
    values = np.asarray(values)
    if values.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {values.shape}")
    return values


def _as_box(name, box):
    box = np.asarray(box, np.float64)
    if box.shape != (4,):
        raise ValueError(f"{name} must be one (x1, y1, x2, y2) box, got shape {box.shape}")
    return box


def _outline(ax, truth):
    """The ground truth's outline, as a contour between its pixels."""
    ax.contour(np.asarray(truth, float), levels=[0.5], colors=TRUTH_COLOR, linewidths=1.2)


def draw_mask_grid(ax, grid, *, title=None):
    """One ROI's ``P x P`` mask of probabilities, one square per cell, with a colour bar.

    Parameters
    ----------
    ax : matplotlib Axes
    grid : (P, P) float array_like
        Probabilities in ``[0, 1]``.
    title : str, optional

    Returns
    -------
    ax
        ``ax.images[0]`` holds ``grid``; thin white lines separate the cells.
    """
    grid = _as_image("grid", grid).astype(np.float64)
    p_h, p_w = grid.shape
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(np.arange(-0.5, p_w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, p_h, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.3)
    ax.tick_params(which="both", length=0, labelsize=9)
    ax.set_xticks([0, p_w // 2, p_w - 1])
    ax.set_yticks([0, p_h // 2, p_h - 1])
    if title is not None:
        ax.set_title(title, fontsize=10)
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label="probability")
    return ax


def draw_pasted_mask(ax, image, mask, box, *, truth=None, title=None, pad=12):
    """A pasted mask over the image, zoomed onto its box (white).  Probabilities are drawn with a colour bar, a
    binary mask in one colour; ``truth`` adds the ground truth's outline in red.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array_like
    mask : (H, W) float or bool array_like
        Float: probabilities in ``[0, 1]``, 0 (outside the box) left transparent.  Bool: the binary mask.
    box : (4,) float array_like
        The box the mask was pasted into, half-open.
    truth : (H, W) bool array_like, optional
    title : str, optional
    pad : float
        Pixels shown around the box.

    Returns
    -------
    ax
        ``ax.images``: the image, then the mask.
    """
    image = _as_image("image", image, ndim=3)
    mask = _as_image("mask", mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must have the image's shape {image.shape[:2]}, got {mask.shape}")
    box = _as_box("box", box)
    ax.imshow(image)
    if mask.dtype == bool:
        ax.imshow(np.ma.masked_equal(mask.astype(float), 0), cmap=ListedColormap([MASK_COLOR]), vmin=0,
                  vmax=1, alpha=0.8, interpolation="nearest")
    else:
        im = ax.imshow(np.ma.masked_equal(mask.astype(float), 0), cmap="viridis", vmin=0, vmax=1,
                       interpolation="nearest")
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label="probability")
    if truth is not None:
        _outline(ax, truth)
    draw_boxes(ax, box[None], colors="white", linewidth=1.2)
    zoom_to_box(ax, box, image.shape, pad=pad)
    if title is not None:
        ax.set_title(title, fontsize=10)
    return clean_axes(ax)


def draw_voters(ax, image, boxes, voters, weights, detecting, *, window=None, title=None, pad=6):
    """A detection's voters on the image, each box coloured by its weight (colour bar); the detecting ROI thick.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array_like
    boxes : (R, 4) float array_like
        Every ROI's box, half-open.
    voters : (V,) int array_like
        Indices into ``boxes``.
    weights : (V,) float array_like
        Each voter's weight in ``[0, 1]``, in the order of ``voters``.
    detecting : int
        The detecting ROI, one of ``voters``.
    window : (4,) float array_like, optional
        The part of the image to show; by default the union of the voters' boxes.
    title : str, optional
    pad : float
        Pixels shown around the window.

    Returns
    -------
    ax
        One rectangle per voter in ``ax.patches``, the detecting ROI's last.
    """
    boxes = np.asarray(boxes, np.float64)
    voters = np.asarray(voters, np.int64)
    weights = np.asarray(weights, np.float64)
    if weights.shape != voters.shape:
        raise ValueError(f"weights must have shape {voters.shape} to match voters, got {weights.shape}")
    if detecting not in voters:
        raise ValueError(f"detecting must be one of voters, got {detecting}")
    cmap, norm = colormaps["plasma"], Normalize(0, 1)
    ax.imshow(image)
    order = np.argsort(voters == detecting, kind="stable")  # the detecting ROI drawn last, on top
    for j, p in zip(voters[order], weights[order], strict=True):
        draw_boxes(ax, boxes[j][None], colors=cmap(norm(p)), linewidth=3 if j == detecting else 1.2)
    if window is None:
        window = np.r_[boxes[voters, :2].min(axis=0), boxes[voters, 2:].max(axis=0)]
    zoom_to_box(ax, _as_box("window", window), np.shape(image), pad=pad)
    ax.figure.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.8, label="weight")
    if title is not None:
        ax.set_title(title, fontsize=10)
    return clean_axes(ax)


def draw_vote_average(ax, average, threshold, window, *, title=None, pad=6):
    """The voted average ``M`` with its ``threshold`` level (black line), zoomed onto ``window``, with a colour bar.

    Parameters
    ----------
    ax : matplotlib Axes
    average : (H, W) float array_like
        Values in ``[0, 1]``.
    threshold : float
        The binarization threshold, drawn as a contour.
    window : (4,) float array_like
        The part of the image to show.
    title : str, optional
    pad : float

    Returns
    -------
    ax
        ``ax.images[0]`` holds ``average``.
    """
    average = _as_image("average", average).astype(np.float64)
    im = ax.imshow(average, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    if average.max(initial=0) >= threshold > average.min(initial=0):
        ax.contour(average, levels=[threshold], colors="black", linewidths=1)
    zoom_to_box(ax, _as_box("window", window), average.shape, pad=pad)
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label="M")
    ax.set_title(f"M (line: {threshold:g})" if title is None else title, fontsize=10)
    return clean_axes(ax)


def draw_mask_errors(ax, mask, truth, window, *, title=None, pad=6):
    """Where a binary mask and the ground truth agree and differ, zoomed onto ``window``: dark grey in both,
    red only in the mask (extra), blue only in the truth (missed), light grey in neither; the title ends with
    the two error counts.

    Parameters
    ----------
    ax : matplotlib Axes
    mask, truth : (H, W) bool array_like
    window : (4,) float array_like
        The part of the image to show.
    title : str, optional
        Written above the counts.
    pad : float

    Returns
    -------
    ax
        ``ax.images[0]`` holds the ``(H, W, 3)`` colours (``ERROR_COLORS`` of :mod:`fcis_twin.viz.common`).
    """
    colors, extra, missed = mask_errors(mask, truth)
    ax.imshow(colors, interpolation="nearest")
    zoom_to_box(ax, _as_box("window", window), colors.shape[:2], pad=pad)
    counts = f"{extra} px extra, {missed} missed"
    ax.set_title(counts if title is None else f"{title}\n{counts}", fontsize=9)
    return clean_axes(ax)


def draw_iou_change(ax, ious):
    """Each detection's mask IoU before voting (its detecting ROI's mask alone) against after, one colour per
    source: points above the diagonal are detections the vote improved.

    Parameters
    ----------
    ax : matplotlib Axes
    ious : dict of str to ((D,) float array_like, (D,) float array_like)
        Per source (its legend label), the IoUs before and after voting, in ``[0, 1]``.

    Returns
    -------
    ax
        One scatter collection per source in ``ax.collections``, in the order of ``ious``; equal axes from a
        little below the lowest IoU to 1.
    """
    if not ious:
        raise ValueError("ious must name at least one source")
    lowest = 1.0
    ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", linewidth=1)
    for s, (name, (before, after)) in enumerate(ious.items()):
        before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
        if before.ndim != 1 or before.shape != after.shape:
            raise ValueError(f"ious[{name!r}] must be two 1-d arrays of one length, got {before.shape} "
                             f"and {after.shape}")
        ax.scatter(before, after, s=24, alpha=0.8, color=f"C{s}", label=f"{name} ({len(before)})")
        lowest = min(lowest, float(np.min(before, initial=1)), float(np.min(after, initial=1)))
    lo = min(lowest, 0.9) - 0.02
    ax.set_xlim(lo, 1.005)
    ax.set_ylim(lo, 1.005)
    ax.set_aspect("equal")
    ax.set_xlabel("mask IoU before voting")
    ax.set_ylabel("mask IoU after voting")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower right", title="detections")
    return ax
