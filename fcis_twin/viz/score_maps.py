"""Figures of notebook ``02_position_sensitive_score_maps``: inside/outside score maps.

Every panel here is drawn in pixel-edge coordinates: image pixel ``j`` covers ``[j, j + 1)`` (``imshow`` with an
``extent``), so half-open boxes ``(x1, y1, x2, y2)`` are drawn where they are, and a feature map of stride ``s``
lies over the image pixels it was computed from (feature pixel ``j`` covers ``[j s, (j + 1) s)``).
"""

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from .common import PALETTE, clean_axes, new_figure, part_mosaic

__all__ = ["gray_image", "draw_mask", "draw_named_boxes", "plot_named_instances", "draw_part_mosaic",
           "plot_part_mosaics", "draw_score_map", "plot_box_masks", "plot_part_probabilities"]

#: Colour of the outline that :func:`draw_mask` draws around a region (the overlap of two objects).
OUTLINE_COLOR = "yellow"



def _colors(colors, n, name="colors"):
    """``n`` RGB colours: ``colors`` (one per item) or the instance palette."""
    if colors is None:
        return [PALETTE[i % len(PALETTE)] for i in range(n)]
    colors = list(colors)
    if len(colors) < n:
        raise ValueError(f"{name} must give one colour per item, got {len(colors)} for {n}")
    return colors


def _window(ax, window):
    """Limit a pixel-edge panel to ``window = (x0, x1, y0, y1)``, rows growing downwards."""
    if window is not None:
        x0, x1, y0, y1 = window
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
    return ax


def _outline(ax, mask, color, linewidth=1.2):
    """Contour of a binary ``(H, W)`` mask in pixel-edge coordinates."""
    mask = np.asarray(mask, np.float64)
    if mask.any():
        h, w = mask.shape
        ax.contour(np.arange(w) + 0.5, np.arange(h) + 0.5, mask, levels=[0.5], colors=[color],
                   linewidths=linewidth)


def _rectangle(ax, box, color, **kwargs):
    """A half-open box ``(x1, y1, x2, y2)`` as an unfilled rectangle."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, **kwargs))


def gray_image(image, low=0.3, high=0.85):
    """An RGB image turned grey and squeezed into ``[low, high]``, so that coloured fills on it keep their hue.

    Parameters
    ----------
    image : (H, W, 3) uint8 or float in [0, 1]
    low, high : float
        The grey levels of the darkest and the brightest possible pixel.

    Returns
    -------
    gray : (H, W, 3) float64 in [low, high]

    Examples
    --------
    >>> gray_image(np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8))[0, :, 0].round(2).tolist()
    [0.85, 0.3]
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {image.shape}")
    rgb = image / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    return np.repeat((low + (high - low) * luma)[..., None], 3, axis=2)


def draw_mask(ax, image, masks, colors=None, *, outline=None, alpha=0.7, window=None):
    """The image in grey with binary masks filled in solid colours: a colour named is the colour seen.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) uint8 or float in [0, 1]
    masks : (D, H, W) or (H, W) bool
        Drawn in order, a later mask over an earlier one.
    colors : sequence of D RGB colours, optional
        Default: :data:`~fcis_twin.viz.common.PALETTE` (red, blue, green, ...).
    outline : (H, W) bool, optional
        A region outlined in :data:`OUTLINE_COLOR` (yellow) over the fills.
    alpha : float in [0, 1]
        Opacity of the fills.
    window : (x0, x1, y0, y1), optional
        Zoom, in image pixels.

    Returns
    -------
    ax
    """
    gray = gray_image(image)
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[1:] != gray.shape[:2]:
        raise ValueError(f"masks must be (D, H, W) with (H, W) = {gray.shape[:2]}, got shape {masks.shape}")
    if masks.dtype != bool:
        raise TypeError(f"masks must be bool, got {masks.dtype}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = gray.copy()
    for mask, color in zip(masks, _colors(colors, len(masks)), strict=False):
        out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float64)[:3]
    h, w = gray.shape[:2]
    ax.imshow(out, extent=(0, w, h, 0), interpolation="nearest")
    if outline is not None:
        _outline(ax, outline, OUTLINE_COLOR)
    _window(ax, window)
    return clean_axes(ax)


def draw_named_boxes(ax, boxes, names, colors=None, fontsize=12):
    """Half-open boxes outlined in their colours, each with its name in that colour at its top-left corner.

    Parameters
    ----------
    ax : matplotlib Axes
        A pixel-edge panel (pixel ``j`` covers ``[j, j + 1)``).
    boxes : (R, 4) float
    names : sequence of R str
    colors : sequence of R RGB colours, optional
    fontsize : float

    Returns
    -------
    ax
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(names) != len(boxes):
        raise ValueError(f"names must give one name per box, got {len(names)} for {len(boxes)} boxes")
    for box, name, color in zip(boxes, names, _colors(colors, len(boxes)), strict=False):
        _rectangle(ax, box, color, lw=1.8)
        ax.text(box[0] + 1.5, box[1] + 1.5, name, color=color, fontsize=fontsize, fontweight="bold", va="top",
                bbox=dict(facecolor="white", alpha=0.7, pad=1, linewidth=0))
    return ax


def plot_named_instances(image, masks, boxes, names, *, colors=None, window=None, fig=None):
    """Two panels: the image with the named boxes, and the ground-truth masks filled on the grey image.

    Parameters
    ----------
    image : (H, W, 3) uint8
    masks : (R, H, W) bool
        Visible masks, one per box.
    boxes : (R, 4) float
    names : sequence of R str
    colors : sequence of R RGB colours, optional
        Default: the palette, red then blue.
    window : (x0, x1, y0, y1), optional
        Zoom of both panels, in image pixels.
    fig : matplotlib Figure, optional
        Drawn into; a new 10 x 4.4 inch figure otherwise.

    Returns
    -------
    fig
    """
    fig = new_figure(fig, (10, 4.4))
    ax = fig.subplots(1, 2)
    h, w = np.asarray(image).shape[:2]
    ax[0].imshow(image, extent=(0, w, h, 0))
    draw_named_boxes(ax[0], boxes, names, colors)
    ax[0].set_title("the image and the two boxes")
    draw_mask(ax[1], image, masks, colors)
    draw_named_boxes(ax[1], boxes, names, colors)
    ax[1].set_title("ground truth (visible pixels)")
    for a in ax:
        _window(a, window)
        clean_axes(a)
    return fig


def draw_part_mosaic(ax, maps, box, crop, *, cmap="magma", norm=None, label=None):
    """The ``k x k`` maps of one class and one of outside/inside, tiled at their parts' places, with a box.

    Every tile shows its map over the same crop of the feature map; the box is drawn dashed in every tile, and in
    tile ``(gh, gw)`` the box's part cell ``(gh, gw)`` solid cyan: the only place of that map that an ROI equal to
    the box reads.

    Parameters
    ----------
    ax : matplotlib Axes
    maps : (k, k, Hf, Wf) float
        ``maps[gh, gw]`` is the map of part ``(gh, gw)``, as :func:`fcis_twin.reference.score_maps.part_maps`
        gives them (one image, one of outside/inside).
    box : (4,) float
        ``(x1, y1, x2, y2)`` in feature pixels.
    crop : (y0, y1, x0, x1) int
        Rows ``[y0, y1)`` and columns ``[x0, x1)`` of the feature map shown in each tile.
    cmap : str
    norm : matplotlib Normalize, optional
        Default: the maps' own range.
    label : str, optional
        Label of the colour bar.

    Returns
    -------
    ax
    """
    maps = np.asarray(maps, np.float64)
    if maps.ndim != 4 or maps.shape[0] != maps.shape[1]:
        raise ValueError(f"maps must be (k, k, Hf, Wf), got shape {maps.shape}")
    k = maps.shape[0]
    y0, y1, x0, x1 = (int(v) for v in crop)
    if not (0 <= y0 < y1 <= maps.shape[2] and 0 <= x0 < x1 <= maps.shape[3]):
        raise ValueError(f"crop must be (y0, y1, x0, x1) inside the {maps.shape[2:]} maps, got {tuple(crop)}")
    tiles = maps[:, :, y0:y1, x0:x1].reshape(k * k, y1 - y0, x1 - x0)
    mosaic = part_mosaic(tiles, k)
    norm = norm or Normalize(np.nanmin(tiles), np.nanmax(tiles))
    im = ax.imshow(mosaic, cmap=cmap, norm=norm, extent=(0, mosaic.shape[1], mosaic.shape[0], 0),
                   interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    bx1, by1, bx2, by2 = (float(v) for v in box)
    cw, ch = (bx2 - bx1) / k, (by2 - by1) / k
    for gh in range(k):
        for gw in range(k):
            ox, oy = gw * (x1 - x0 + 1) - x0, gh * (y1 - y0 + 1) - y0  # feature pixel (0, 0) of tile (gh, gw)
            _rectangle(ax, (ox + bx1, oy + by1, ox + bx2, oy + by2), "0.6", lw=0.6, ls="--")
            cx, cy = ox + bx1 + gw * cw, oy + by1 + gh * ch
            _rectangle(ax, (cx, cy, cx + cw, cy + ch), "cyan", lw=1.0)
    return clean_axes(ax)


def plot_part_mosaics(maps, box, crop, *, fig=None):
    """The inside (left) and outside (right) maps of one class as two mosaics of ``k x k`` tiles.

    Parameters
    ----------
    maps : (2, k, k, Hf, Wf) float
        ``maps[j, gh, gw]``, ``j = 0`` outside, ``j = 1`` inside: one image of
        :func:`fcis_twin.reference.score_maps.part_maps`.
    box : (4,) float
        The box drawn in every tile, in feature pixels.
    crop : (y0, y1, x0, x1) int
        The part of the feature map each tile shows.
    fig : matplotlib Figure, optional
        Drawn into; a new 10 x 4.6 inch figure otherwise.

    Returns
    -------
    fig
    """
    maps = np.asarray(maps)
    if maps.ndim != 5 or maps.shape[0] != 2:
        raise ValueError(f"maps must be (2, k, k, Hf, Wf), got shape {maps.shape}")
    fig = new_figure(fig, (10, 4.6))
    ax = fig.subplots(1, 2)
    for a, j, word in zip(ax, (1, 0), ("inside", "outside"), strict=True):
        draw_part_mosaic(a, maps[j], box, crop, label=f"{word} score")
        a.set_title(f"the {maps.shape[1] ** 2} {word} maps\n(tile (gh, gw): row gh, column gw)")
    return fig


def draw_score_map(ax, fmap, stride, *, boxes=None, colors=None, window=None, cmap="magma", label=None):
    """A feature map laid over the image pixels it covers, with a colour bar and, optionally, boxes.

    Parameters
    ----------
    ax : matplotlib Axes
    fmap : (Hf, Wf) float
        Feature pixel ``j`` covers image pixels ``[j * stride, (j + 1) * stride)``.
    stride : int >= 1
    boxes : (R, 4) float, optional
        Half-open boxes in image pixels, outlined in ``colors``.
    colors : sequence of R RGB colours, optional
    window : (x0, x1, y0, y1), optional
        Zoom, in image pixels.
    cmap : str
    label : str, optional
        Label of the colour bar.

    Returns
    -------
    ax
    """
    fmap = np.asarray(fmap, np.float64)
    if fmap.ndim != 2:
        raise ValueError(f"fmap must be (Hf, Wf), got shape {fmap.shape}")
    if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride < 1:
        raise ValueError(f"stride must be an int >= 1, got {stride!r}")
    hf, wf = fmap.shape
    im = ax.imshow(fmap, cmap=cmap, extent=(0, wf * stride, hf * stride, 0), interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    if boxes is not None:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        for box, color in zip(boxes, _colors(colors, len(boxes)), strict=False):
            _rectangle(ax, box, color, lw=1.5)
    _window(ax, window)
    return clean_axes(ax)


def plot_box_masks(image, columns, boxes, names, *, colors=None, overlap=None, window=None, fig=None):
    """Masks assembled in each box, one row per box and one column per method, filled on the grey image.

    Parameters
    ----------
    image : (H, W, 3) uint8
    columns : dict of str to (R, H, W) bool
        Column title to the binary mask of each box (row ``i`` shows ``masks[i]``, in box ``i``'s colour).
    boxes : (R, 4) float
        Half-open, image pixels; row ``i`` outlines box ``i``.
    names : sequence of R str
        The boxes' names, for the panel titles.
    colors : sequence of R RGB colours, optional
    overlap : (H, W) bool, optional
        Outlined in yellow in every panel.
    window : (x0, x1, y0, y1), optional
    fig : matplotlib Figure, optional
        Drawn into; a new figure at most 10 inches wide otherwise.

    Returns
    -------
    fig
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not columns:
        raise ValueError("columns must hold at least one set of masks")
    for title, masks in columns.items():
        if np.shape(masks)[0] != len(boxes):
            raise ValueError(f"columns[{title!r}] must hold one mask per box ({len(boxes)}), "
                             f"got shape {np.shape(masks)}")
    if len(names) != len(boxes):
        raise ValueError(f"names must give one name per box, got {len(names)} for {len(boxes)} boxes")
    colors = _colors(colors, len(boxes))
    n = len(columns)
    fig = new_figure(fig, (min(10, 3.4 * n), 3.3 * len(boxes)))
    ax = np.asarray(fig.subplots(len(boxes), n, squeeze=False))
    for col, (title, masks) in enumerate(columns.items()):
        for i, box in enumerate(boxes):
            a = ax[i, col]
            draw_mask(a, image, np.asarray(masks)[i], [colors[i]], outline=overlap, window=window)
            _rectangle(a, box, colors[i], lw=1.5)
            a.set_title(f"{title}\nmask in {names[i]}'s box", fontsize=10)
    return fig


def plot_part_probabilities(sources, boxes, *, colors=None, outline=None, window=None, fig=None):
    """Per source, a grid of parts: ``sigmoid(inside - outside)`` of each part's pair of maps, on one scale.

    Parameters
    ----------
    sources : sequence of (title, probs, stride, parts)
        ``probs`` is ``(k, k, Hf, Wf)`` in [0, 1], ``probs[gh, gw]`` the mask probability that part
        ``(gh, gw)``'s maps give each feature pixel; ``stride`` lays them over the image; ``parts`` lists the
        part rows (and columns) shown, e.g. ``range(k)`` or ``(0, 3, 6)``.
    boxes : (R, 4) float
        Half-open boxes in image pixels: each tile outlines them dashed and, solid, their part cell that the tile
        scores.
    colors : sequence of R RGB colours, optional
    outline : (H, W) bool, optional
        A region outlined in white in every tile (the objects).
    window : (x0, x1, y0, y1), optional
    fig : matplotlib Figure, optional
        Drawn into; a new 10 x 5.6 inch figure otherwise.

    Returns
    -------
    fig
        One subfigure per source; the last one holds the colour bar, which all share.
    """
    sources = list(sources)
    if not sources:
        raise ValueError("sources must hold at least one (title, probs, stride, parts)")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    colors = _colors(colors, len(boxes))
    fig = new_figure(fig, (10, 5.6))
    ratios = [1.0] * (len(sources) - 1) + [1.18]  # the last one holds the colour bar too
    subs = np.atleast_1d(fig.subfigures(1, len(sources), wspace=0.04, width_ratios=ratios))
    norm = Normalize(0, 1)
    for sub, (title, probs, stride, parts) in zip(subs, sources, strict=True):
        probs = np.asarray(probs, np.float64)
        if probs.ndim != 4 or probs.shape[0] != probs.shape[1]:
            raise ValueError(f"probs of {title!r} must be (k, k, Hf, Wf), got shape {probs.shape}")
        k, parts = probs.shape[0], list(parts)
        if not parts or min(parts) < 0 or max(parts) >= k:
            raise ValueError(f"parts of {title!r} must be part indices in [0, {k}), got {parts}")
        ax = np.asarray(sub.subplots(len(parts), len(parts), squeeze=False))
        extent = (0, probs.shape[3] * stride, probs.shape[2] * stride, 0)
        for (r, c), a in np.ndenumerate(ax):
            gh, gw = parts[r], parts[c]
            im = a.imshow(probs[gh, gw], cmap="viridis", norm=norm, extent=extent, interpolation="nearest")
            if outline is not None:
                _outline(a, outline, "white", linewidth=0.6)
            for box, color in zip(boxes, colors, strict=False):
                cw, ch = (box[2] - box[0]) / k, (box[3] - box[1]) / k
                _rectangle(a, box, color, lw=0.8, ls="--")
                x, y = box[0] + gw * cw, box[1] + gh * ch
                _rectangle(a, (x, y, x + cw, y + ch), color, lw=1.8)
            _window(a, window)
            a.set_title(f"part ({gh}, {gw})", fontsize=9)
            clean_axes(a)
        sub.suptitle(title, fontsize=11)
    subs[-1].colorbar(im, ax=ax, shrink=0.8, label="sigmoid(inside - outside)")
    return fig
