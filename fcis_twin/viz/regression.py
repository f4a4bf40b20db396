"""Figures of notebook ``05_bbox_regression_second_pass``: box maps and the second pass.

Boxes are half-open ``(x1, y1, x2, y2)`` in image pixels; box-regression maps are ``(k*k, Hf, Wf)`` part maps of one
delta, channel ``gh*k + gw`` (``docs/conventions.md``, "Score-map channel layout").  Every function draws onto the
``Axes`` it is given and returns it.
"""

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from .common import clean_axes, draw_boxes, part_mosaic, zoom_to_box

__all__ = ["draw_box_map_mosaic", "draw_assembled_delta", "draw_regression", "draw_iou_before_after",
           "draw_pasted_prob"]

#: Colours of the boxes: proposal, regressed box, ground truth.
BOX_COLORS = {"proposal": "white", "regressed": "orange", "truth": "lime"}


def _box(name, box):
    box = np.asarray(box, np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"{name} must be a finite (x1, y1, x2, y2) box with x1 <= x2, y1 <= y2, got {box}")
    return box


def _group_size(part_maps):
    maps = np.asarray(part_maps, np.float64)
    k = int(round(np.sqrt(maps.shape[0]))) if maps.ndim == 3 else 0
    if maps.ndim != 3 or k * k != maps.shape[0] or k == 0:
        raise ValueError(f"part_maps must have shape (k*k, Hf, Wf), got {maps.shape}")
    return maps, k


def draw_box_map_mosaic(ax, part_maps, proposal, gt_box, stride, label="delta", margin=0.2):
    """The ``k x k`` part maps of one delta, cropped around a proposal and its object and tiled where their parts
    sit; in tile ``(gh, gw)`` the part cell ``(gh, gw)`` of the proposal (cyan), the only region of that map its
    bins read, the proposal (dotted black) and the ground-truth box (dashed green).

    Parameters
    ----------
    ax : matplotlib Axes
    part_maps : (k*k, Hf, Wf) float array_like
        One delta's maps (e.g. ``dx`` of the foreground slot), channel ``gh*k + gw``.
    proposal, gt_box : (4,) float array_like
        Half-open boxes in image pixels.
    stride : int
        Image pixels per feature pixel.
    label : str
        The colour bar's label.
    margin : float
        Crop margin around both boxes, as a fraction of their larger side.

    Returns
    -------
    ax
        With a symmetric red-blue colour bar (red: positive).
    """
    maps, k = _group_size(part_maps)
    proposal, gt_box = _box("proposal", proposal), _box("gt_box", gt_box)
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be an int >= 1, got {stride!r}")
    hf, wf = maps.shape[1:]
    union = np.r_[np.minimum(proposal[:2], gt_box[:2]), np.maximum(proposal[2:], gt_box[2:])] / stride
    pad = margin * (union[2:] - union[:2]).max()
    x0, y0 = (max(int(v - pad), 0) for v in union[:2])
    x1, y1 = min(int(np.ceil(union[2] + pad)), wf), min(int(np.ceil(union[3] + pad)), hf)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("proposal and gt_box must overlap the feature map")
    crop = maps[:, y0:y1, x0:x1]
    mosaic = part_mosaic(crop, k)
    lim = max(float(np.abs(crop).max()), 1e-6)
    im = ax.imshow(mosaic, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=(0, mosaic.shape[1], mosaic.shape[0], 0))
    tile_w, tile_h = x1 - x0 + 1, y1 - y0 + 1  # tile plus the one-pixel gap
    p, g = proposal / stride, gt_box / stride
    cw, ch = (p[2] - p[0]) / k, (p[3] - p[1]) / k
    for gh in range(k):
        for gw in range(k):
            ox, oy = gw * tile_w - x0, gh * tile_h - y0  # feature coordinate -> mosaic coordinate
            ax.add_patch(Rectangle((ox + g[0], oy + g[1]), g[2] - g[0], g[3] - g[1], fill=False, ec="green",
                                   lw=0.7, ls="--"))
            ax.add_patch(Rectangle((ox + p[0], oy + p[1]), p[2] - p[0], p[3] - p[1], fill=False, ec="black",
                                   lw=0.6, ls=":"))
            ax.add_patch(Rectangle((ox + p[0] + gw * cw, oy + p[1] + gh * ch), cw, ch, fill=False, ec="cyan",
                                   lw=1.5))
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    return clean_axes(ax)


def draw_assembled_delta(ax, pooled, k, label="delta"):
    """One delta assembled in one ROI, ``P x P`` bins, with the borders of its ``k x k`` part cells (grey) and
    the mean of its bins, the ROI's delta, under it.

    Parameters
    ----------
    ax : matplotlib Axes
    pooled : (P, P) float array_like
    k : int
        Part cells per side; ``P`` need not be a multiple of it.
    label : str
        The colour bar's label.

    Returns
    -------
    ax
    """
    pooled = np.asarray(pooled, np.float64)
    if pooled.ndim != 2 or pooled.shape[0] != pooled.shape[1]:
        raise ValueError(f"pooled must have shape (P, P), got {pooled.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= pooled.shape[0]:
        raise ValueError(f"k must be an int in [1, P], got {k!r}")
    size = pooled.shape[0]
    lim = max(float(np.abs(pooled).max()), 1e-6)
    im = ax.imshow(pooled, cmap="RdBu_r", vmin=-lim, vmax=lim)
    for cell in range(1, k):
        edge = -((-cell * size) // k) - 0.5  # first bin of part cell `cell`: ceil(cell * P / k)
        ax.axhline(edge, color="0.5", lw=0.6)
        ax.axvline(edge, color="0.5", lw=0.6)
    ax.set_xlabel(f"mean = {pooled.mean():.3f}", fontsize=10)
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    return clean_axes(ax)


def draw_regression(ax, image, proposal, regressed, gt_box, pad=15):
    """A proposal (white), its regressed box (orange) and the ground-truth box (dashed green), zoomed onto them.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array
    proposal, regressed, gt_box : (4,) float array_like
        Half-open boxes in image pixels.
    pad : float
        Pixels shown around the three boxes.

    Returns
    -------
    ax
        With a legend naming the three boxes, under the panel.
    """
    boxes = np.stack([_box("proposal", proposal), _box("regressed", regressed), _box("gt_box", gt_box)])
    ax.imshow(image)
    for box, name in zip(boxes, BOX_COLORS, strict=True):
        draw_boxes(ax, box[None], colors=BOX_COLORS[name], linewidth=1.5 if name == "truth" else 2)
    ax.patches[-1].set_linestyle("--")
    zoom_to_box(ax, (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0)), np.shape(image), pad=pad)
    handles = [Line2D([], [], color=c, lw=2, ls="--" if n == "truth" else "-") for n, c in BOX_COLORS.items()]
    ax.legend(handles, ["proposal", "regressed", "truth"], fontsize=9, loc="upper center",
              bbox_to_anchor=(0.5, 0.0), ncol=3, facecolor="0.3", labelcolor="white", framealpha=0.9,
              handlelength=1.2, columnspacing=0.8)
    return clean_axes(ax)


def draw_iou_before_after(ax, before, after, title=None, tol=1e-6):
    """Each box's best IoU with the ground truth before regression (x) against after (y), coloured by whether
    regression improved it (green), made it worse (red) or left it (grey); the diagonal dashed.

    Parameters
    ----------
    ax : matplotlib Axes
    before, after : (R,) float array_like
        In ``[0, 1]``.
    title : str, optional
    tol : float
        Changes within ``tol`` count as unchanged.

    Returns
    -------
    ax
        The legend gives the count of each group.
    """
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    if before.ndim != 1 or before.shape != after.shape:
        raise ValueError(f"before and after must be 1-d of one length, got {before.shape} and {after.shape}")
    if not (np.all((before >= 0) & (before <= 1)) and np.all((after >= 0) & (after <= 1))):
        raise ValueError("before and after must lie in [0, 1]")
    groups = {"better": (after > before + tol, "tab:green"), "worse": (after < before - tol, "tab:red")}
    groups["unchanged"] = (~groups["better"][0] & ~groups["worse"][0], "0.5")
    for name, (where, color) in groups.items():
        ax.scatter(before[where], after[where], s=14, color=color, label=f"{name}: {int(where.sum())}")
    ax.plot([0, 1], [0, 1], color="0.4", lw=1, ls="--")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("best IoU before")
    ax.set_ylabel("best IoU after regression")
    ax.legend(fontsize=9, loc="lower right")
    if title is not None:
        ax.set_title(title, fontsize=10)
    return ax


def draw_pasted_prob(ax, image, prob, gt_mask, box, window=None, colorbar=True):
    """A mask probability pasted into the image (viridis, hidden below 0.02), over the image in faded grey (so
    that no object's colour reads as a probability), with the ground-truth outline (red) and the box it was
    pasted into (white).

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array
    prob : (H, W) float array_like
        In ``[0, 1]``, e.g. from :func:`fcis_twin.reference.paste.paste_masks`.
    gt_mask : (H, W) bool array_like
    box : (4,) float array_like
    window : (4,) float array_like, optional
        Zoom onto this box, widened by 15 pixels; None shows the whole image.
    colorbar : bool

    Returns
    -------
    ax
    """
    prob, gt_mask = np.asarray(prob, np.float64), np.asarray(gt_mask, bool)
    if prob.shape != np.shape(image)[:2] or gt_mask.shape != prob.shape:
        raise ValueError(f"prob and gt_mask must have the image's shape {np.shape(image)[:2]}, got "
                         f"{prob.shape} and {gt_mask.shape}")
    if not np.all((prob >= 0) & (prob <= 1)):
        raise ValueError("prob must lie in [0, 1]")
    grey = np.asarray(image, np.float64)
    grey = grey.mean(axis=2) if grey.ndim == 3 else grey
    ax.imshow(grey, cmap="gray", alpha=0.5)
    im = ax.imshow(np.ma.masked_less(prob, 0.02), cmap="viridis", vmin=0, vmax=1)
    if gt_mask.any():
        ax.contour(gt_mask, levels=[0.5], colors="red", linewidths=1)
    draw_boxes(ax, _box("box", box)[None], colors="white", linewidth=1.5)
    if window is not None:
        zoom_to_box(ax, _box("window", window), np.shape(image), pad=15)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label="mask probability")
    return clean_axes(ax)
