"""Figures of notebook ``03_assembling``: bins, part cells and assembled maps.

Feature-map panels are drawn in pixel-edge coordinates: feature pixel ``j`` covers ``[j, j + 1)`` (``imshow`` with
an ``extent``), so bin edges, which fall between pixels, are drawn where the assembly puts them.
"""

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from ..reference._checks import round_half_away
from ..reference.assemble import roi_bins
from .common import clean_axes, new_figure, part_mosaic

__all__ = ["roi_on_features", "draw_bins", "plot_channels_read", "plot_roi_bins", "plot_assembled_maps",
           "plot_p_against_k"]

#: Colours of the part-cell edges and of the bin edges.
CELL_COLOR, BIN_COLOR = "orangered", "deepskyblue"



def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _square(name, value):
    value = np.asarray(value, np.float64)
    if value.ndim != 2 or value.shape[0] != value.shape[1]:
        raise ValueError(f"{name} must be a square (P, P) array, got shape {value.shape}")
    return value


def roi_on_features(box, spatial_scale):
    """The ROI's start and end on the feature map, as the assembly computes them (float32).

    Parameters
    ----------
    box : (4,) float
        Half-open ``(x1, y1, x2, y2)`` in image pixels.
    spatial_scale : float
        ``1 / stride``.

    Returns
    -------
    start_w, start_h, end_w, end_h : float
        ``round(x1) * s``, ``round(y1) * s``, ``round(x2) * s``, ``round(y2) * s``, rounding half away from zero.

    Examples
    --------
    >>> roi_on_features((10.5, 3, 41, 20.4), 0.5)
    (5.5, 1.5, 20.5, 10.0)
    """
    box = np.asarray(box, np.float32)
    if box.shape != (4,):
        raise ValueError(f"box must be (x1, y1, x2, y2), got shape {box.shape}")
    s = np.float32(spatial_scale)
    x1, y1, x2, y2 = (float(round_half_away(v).astype(np.float32) * s) for v in box)
    return x1, y1, x2, y2


def draw_bins(ax, box, k, P, spatial_scale, *, cell_width=2.0, bin_width=0.6):
    """Draw an ROI's ``P x P`` bin edges (thin) and its ``k x k`` part-cell edges (thick) on a feature-map panel.

    Parameters
    ----------
    ax : matplotlib Axes
        A feature-map panel in pixel-edge coordinates.
    box : (4,) float
        Half-open ``(x1, y1, x2, y2)`` in image pixels.
    k, P : int
        Part grid and bins; every ``P / k``-th bin edge is a part-cell edge when ``k`` divides ``P``.
    spatial_scale : float
    cell_width, bin_width : float
        Line widths.

    Returns
    -------
    ax
    """
    k, P = _positive_int("k", k), _positive_int("P", P)
    x1, y1, x2, y2 = roi_on_features(box, spatial_scale)
    for p in range(P + 1):
        fx, fy = x1 + p * (x2 - x1) / P, y1 + p * (y2 - y1) / P
        ax.plot([fx, fx], [y1, y2], color=BIN_COLOR, lw=bin_width)
        ax.plot([x1, x2], [fy, fy], color=BIN_COLOR, lw=bin_width)
    for g in range(k + 1):
        fx, fy = x1 + g * (x2 - x1) / k, y1 + g * (y2 - y1) / k
        ax.plot([fx, fx], [y1, y2], color=CELL_COLOR, lw=cell_width)
        ax.plot([x1, x2], [fy, fy], color=CELL_COLOR, lw=cell_width)
    return ax


def plot_channels_read(maps, outputs, *, fig=None):
    """A tiny assembly drawn in full: the ``k x k`` maps of one output channel, then its assembled outputs.

    The ROI is the whole map.  The first panel tiles the maps at their parts' places (:func:`part_mosaic`) and
    frames, in tile ``(gh, gw)``, part cell ``(gh, gw)``: the only block of that map any bin reads.  Each further
    panel is one output, its bins' values written on them and its part cells outlined in white.  All panels share
    one colour scale.

    Parameters
    ----------
    maps : (k*k, H, W) float
        Channel ``gh*k + gw`` is the map of part ``(gh, gw)``; ``k`` must divide ``H`` and ``W``.
    outputs : dict of int to (P, P) float
        ``P`` to the assembled output at that ``P``.
    fig : matplotlib Figure, optional
        Drawn into; a new figure at most 10 inches wide otherwise.

    Returns
    -------
    fig
    """
    maps = np.asarray(maps, np.float64)
    k = int(round(np.sqrt(maps.shape[0]))) if maps.ndim == 3 else 0
    if maps.ndim != 3 or k * k != maps.shape[0]:
        raise ValueError(f"maps must be (k*k, H, W), got shape {maps.shape}")
    _, H, W = maps.shape
    if H % k or W % k:
        raise ValueError(f"maps must have sides that k = {k} divides, got {H} x {W}")
    if not outputs:
        raise ValueError("outputs must hold at least one assembled output")
    fig = new_figure(fig, (min(10, 3.4 * (1 + len(outputs))), 3.6))
    ax = fig.subplots(1, 1 + len(outputs))
    norm = Normalize(maps.min(), maps.max())
    mosaic = part_mosaic(maps, k)
    im = ax[0].imshow(mosaic, cmap="viridis", norm=norm, extent=(0, mosaic.shape[1], mosaic.shape[0], 0))
    ch, cw = H // k, W // k
    for gh in range(k):
        for gw in range(k):
            oy, ox = gh * (H + 1), gw * (W + 1)  # tile origin, one blank pixel between tiles
            ax[0].add_patch(Rectangle((ox + gw * cw, oy + gh * ch), cw, ch, fill=False, ec="red", lw=2))
            ty, tx = ((gh + 1) % k + 0.5) * ch, (gw + 0.5) * cw  # a block of the tile away from the red one
            ax[0].text(ox + tx, oy + ty, f"{gh * k + gw}", ha="center", va="center", fontsize=11,
                       color="white", fontweight="bold")
    ax[0].set_title(f"the {k * k} maps (numbered), tiled\nby part; red: the block read")
    for a, (P, out) in zip(ax[1:], outputs.items(), strict=True):
        out = _square(f"outputs[{P}]", out)
        a.imshow(out, cmap="viridis", norm=norm, extent=(0, out.shape[1], out.shape[0], 0))
        for (ph, pw), v in np.ndenumerate(out):
            a.text(pw + 0.5, ph + 0.5, f"{v:g}", ha="center", va="center", fontsize=9,
                   color="white" if norm(v) < 0.6 else "black")
        for g in range(1, k):
            a.axhline(g * out.shape[0] / k, color="white", lw=2)
            a.axvline(g * out.shape[1] / k, color="white", lw=2)
        a.set_title(f"assembled, P = {out.shape[0]}")
    for a in ax:
        clean_axes(a)
    fig.colorbar(im, ax=ax, shrink=0.8, label="value")
    return fig


def plot_roi_bins(image, box, fmap, k, P, spatial_scale, *, cell=None, fig=None):
    """One ROI three ways: in the image, on the feature map with its part cells and bins, and one part cell close up.

    The close-up shades the feature pixels that two neighbouring bins of the part cell average
    (:func:`fcis_twin.reference.assemble.roi_bins`): rounded outwards to whole pixels, they may share a column.

    Parameters
    ----------
    image : (H, W, 3) uint8
    box : (4,) float
        Half-open ``(x1, y1, x2, y2)`` in image pixels.
    fmap : (Hf, Wf) float
        A feature map drawn in grey behind the bins (e.g. the largest of a class's inside maps).
    k, P : int
    spatial_scale : float
        ``1 / stride``.
    cell : (gh, gw), optional
        The part cell shown close up; default the centre one.
    fig : matplotlib Figure, optional
        Drawn into; a new 10 x 3.8 inch figure otherwise.

    Returns
    -------
    fig
    """
    k, P = _positive_int("k", k), _positive_int("P", P)
    fmap = np.asarray(fmap, np.float64)
    if fmap.ndim != 2:
        raise ValueError(f"fmap must be (Hf, Wf), got shape {fmap.shape}")
    gh, gw = (k // 2, k // 2) if cell is None else (int(cell[0]), int(cell[1]))
    if not (0 <= gh < k and 0 <= gw < k):
        raise ValueError(f"cell must be a part cell (gh, gw) in [0, {k}), got {cell}")
    hf, wf = fmap.shape
    x1, y1, x2, y2 = roi_on_features(box, spatial_scale)
    fig = new_figure(fig, (10, 3.8))
    ax = fig.subplots(1, 3)
    h, w = np.asarray(image).shape[:2]
    ax[0].imshow(image, extent=(0, w, h, 0))
    bx1, by1, bx2, by2 = (float(v) for v in box)
    ax[0].add_patch(Rectangle((bx1, by1), bx2 - bx1, by2 - by1, fill=False, ec="white", lw=2))
    ax[0].set_title("the ROI in the image")
    pad = 0.15 * max(x2 - x1, y2 - y1)
    for a in ax[1:]:
        im = a.imshow(fmap, cmap="gray", extent=(0, wf, hf, 0), interpolation="nearest")
        draw_bins(a, box, k, P, spatial_scale)
    fig.colorbar(im, ax=ax[1], shrink=0.8)
    ax[1].set(xlim=(x1 - pad, x2 + pad), ylim=(y2 + pad, y1 - pad))
    ax[1].set_title(f"{k} x {k} part cells (red),\n{P} x {P} bins (blue)")
    hs, he, ws, we = roi_bins(*np.asarray(box, np.float32), hf, wf, P, spatial_scale)
    ph, pw = gh * P // k + (P // k) // 2, gw * P // k + (P // k) // 2
    for q, color in ((pw, "cyan"), (pw + 1, "lime")):
        q = min(q, P - 1)
        ax[2].add_patch(Rectangle((ws[q], hs[ph]), we[q] - ws[q], he[ph] - hs[ph], color=color, alpha=0.45))
    cw, ch = (x2 - x1) / k, (y2 - y1) / k
    zx, zy = x1 + gw * cw, y1 + gh * ch
    ax[2].set(xlim=(zx - 0.3 * cw, zx + 1.3 * cw), ylim=(zy + 1.3 * ch, zy - 0.3 * ch))
    ax[2].set_xticks(np.arange(np.ceil(zx - 0.3 * cw), zx + 1.3 * cw))
    ax[2].set_yticks(np.arange(np.ceil(zy - 0.3 * ch), zy + 1.3 * ch))
    ax[2].tick_params(labelbottom=False, labelleft=False, length=0)
    ax[2].grid(color="black", lw=0.5, alpha=0.6)
    ax[2].set_title(f"part cell ({gh}, {gw}); shaded: the pixels\nof bins ({ph}, {pw}) and ({ph}, {pw + 1})")
    clean_axes(ax[0])
    ax[1].set_xticks([])
    ax[1].set_yticks([])
    return fig


def plot_assembled_maps(rows, *, truth=None, fig=None):
    """Assembled maps of one ROI: per row, its inside map, outside map and mask probability, each with a colour bar.

    Parameters
    ----------
    rows : dict of str to (inside, outside, prob)
        Row title to three ``(P, P)`` arrays (``P`` may differ between rows); ``prob`` in [0, 1].
    truth : (h, w) bool, optional
        The object's mask cropped to the ROI, outlined in white on each mask-probability panel.
    fig : matplotlib Figure, optional
        Drawn into; a new figure 10 inches wide otherwise.

    Returns
    -------
    fig
    """
    if not rows:
        raise ValueError("rows must hold at least one (inside, outside, prob)")
    fig = new_figure(fig, (10, 3.2 * len(rows)))
    ax = np.asarray(fig.subplots(len(rows), 3, squeeze=False))
    for r, (title, maps) in enumerate(rows.items()):
        if len(maps) != 3:
            raise ValueError(f"rows[{title!r}] must be (inside, outside, prob), got {len(maps)} arrays")
        for c, (name, value, cmap) in enumerate(zip(("inside", "outside", "mask probability"), maps,
                                                    ("magma", "magma", "viridis"), strict=True)):
            value = _square(f"rows[{title!r}][{c}]", value)
            n = value.shape[0]
            norm = Normalize(0, 1) if c == 2 else None
            im = ax[r, c].imshow(value, cmap=cmap, norm=norm, extent=(0, n, n, 0))
            fig.colorbar(im, ax=ax[r, c], shrink=0.85)
            if c == 2 and truth is not None:
                t = np.asarray(truth, np.float64)
                ax[r, c].contour((np.arange(t.shape[1]) + 0.5) * n / t.shape[1],
                                 (np.arange(t.shape[0]) + 0.5) * n / t.shape[0], t, levels=[0.5],
                                 colors="white", linewidths=1.2)
            ax[r, c].set_title(f"{title}: {name}", fontsize=10)
            clean_axes(ax[r, c])
    return fig


def plot_p_against_k(inside, prob, k, *, fig=None):
    """The same ROI assembled at several ``P``: inside maps on one scale (top row), mask probabilities (bottom).

    Parameters
    ----------
    inside, prob : dict of int to (P, P) float
        ``P`` to the assembled inside map, and to the mask probability in [0, 1]; the same keys.
    k : int
        The part grid, outlined in white in every panel.
    fig : matplotlib Figure, optional
        Drawn into; a new figure at most 10 inches wide otherwise.

    Returns
    -------
    fig
        One colour bar per row.
    """
    k = _positive_int("k", k)
    if not inside or list(inside) != list(prob):
        raise ValueError(f"inside and prob must have the same P keys, got {list(inside)} and {list(prob)}")
    n = len(inside)
    fig = new_figure(fig, (min(10, 0.5 + 3.6 * n), 6.4))
    ax = np.asarray(fig.subplots(2, n, squeeze=False))
    values = [_square(f"inside[{P}]", v) for P, v in inside.items()]
    row_norms = (Normalize(min(v.min() for v in values), max(v.max() for v in values)), Normalize(0, 1))
    for r, (name, maps, cmap) in enumerate((("inside", inside, "magma"), ("mask probability", prob, "viridis"))):
        for c, (P, value) in enumerate(maps.items()):
            value = _square(f"{name}[{P}]", value)
            im = ax[r, c].imshow(value, cmap=cmap, norm=row_norms[r], extent=(0, k, k, 0))
            for g in range(1, k):
                ax[r, c].axhline(g, color="white", lw=0.7, alpha=0.8)
                ax[r, c].axvline(g, color="white", lw=0.7, alpha=0.8)
            ax[r, c].set_title(f"{name}, P = {value.shape[0]}")
            clean_axes(ax[r, c])
        fig.colorbar(im, ax=ax[r, :], shrink=0.85, label=name)
    return fig
