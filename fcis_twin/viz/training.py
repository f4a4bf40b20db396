"""Figures of notebook ``10_training``: anchor and mask targets, OHEM's choice, loss curves and loss parts.

Boxes are half-open ``(x1, y1, x2, y2)`` in image pixels, drawn over an ``imshow`` image as
:func:`fcis_twin.viz.common.draw_boxes` draws them.  A "step" is what
:func:`fcis_twin.reference.train_step.training_step` returns, or anything with the same fields.
"""


import numpy as np

from ..reference._checks import as_int
from .common import (
    PALETTE,
    as_box_array,
    clean_axes,
    draw_boxes,
    draw_instances,
    overlay_masks,
    part_mosaic,
    zoom_to_box,
)

__all__ = ["ROI_COLORS", "draw_anchor_targets", "draw_anchor_iou_histogram", "plot_mask_targets",
           "draw_ohem_ranking", "draw_loss_against_iou", "plot_ohem_choice", "per_foreground_loss",
           "plot_loss_curves", "draw_loss_parts", "draw_top_detections", "loss_figure", "maps_figure"]

#: Colours of the four kinds of ROI in the OHEM figures.
ROI_COLORS = {"foreground, kept": "tab:red", "background, kept": "tab:orange",
              "background, dropped": "0.6", "foreground, dropped": "tab:purple"}



def _best_iou(boxes, gt_boxes):
    """(R,) each box's best IoU with a ground-truth box (0 when there is none)."""
    from ..reference.boxes import box_iou

    return box_iou(boxes, gt_boxes).max(axis=1, initial=0.0)


def draw_anchor_targets(ax, image, masks, anchors, anchor_labels, gt_boxes):
    """The sampled anchors of one image: positives as boxes, negatives as dots at their centres.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) uint8
    masks : (G, H, W) bool
        The ground-truth masks, tinted in :data:`~fcis_twin.viz.common.PALETTE` order.
    anchors : (A_total, 4) float
    anchor_labels : (A_total,) int
        1 positive, 0 negative, anything else not sampled.
    gt_boxes : (G, 4) float
        Each positive anchor is drawn in the colour of the box it overlaps most.

    Returns
    -------
    ax
        One rectangle patch per positive anchor, one line of negative centres.
    """
    anchors, gt_boxes = as_box_array("anchors", anchors), as_box_array("gt_boxes", gt_boxes)
    labels = np.asarray(anchor_labels)
    if labels.shape != (len(anchors),):
        raise ValueError(f"anchor_labels must have shape ({len(anchors)},), got {labels.shape}")
    positive, negative = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    ax.imshow(overlay_masks(image, masks, alpha=0.35))
    centres = (anchors[negative, :2] + anchors[negative, 2:]) / 2 - 0.5
    ax.plot(centres[:, 0], centres[:, 1], ".", color="white", markersize=3)
    if len(positive) and len(gt_boxes):
        from ..reference.boxes import box_iou

        match = box_iou(anchors[positive], gt_boxes).argmax(axis=1)
        for a, g in zip(positive, match, strict=True):
            draw_boxes(ax, anchors[a : a + 1], colors=PALETTE[g % len(PALETTE)], linewidth=2)
    ax.set_title(f"{len(positive)} positives (boxes), {len(negative)} negatives (dots)", fontsize=10)
    return clean_axes(ax)


def draw_anchor_iou_histogram(ax, anchors, anchor_labels, gt_boxes, image_shape, positive_iou=0.7,
                              negative_iou=0.3):
    """Histogram of the best IoU of every anchor inside the image, with the label thresholds and the positives.

    Parameters
    ----------
    ax : matplotlib Axes
    anchors : (A_total, 4) float
    anchor_labels : (A_total,) int
        1 marks the positives, drawn as triangles along the bottom.
    gt_boxes : (G, 4) float
    image_shape : (H, W, ...)
        Anchors that cross the border are left out, as the anchor targets leave them out.
    positive_iou, negative_iou : float
        Drawn as shaded zones.

    Returns
    -------
    ax
        Log-scaled counts; the x axis spans [0, 1].
    """
    anchors, gt_boxes = as_box_array("anchors", anchors), as_box_array("gt_boxes", gt_boxes)
    labels = np.asarray(anchor_labels)
    if labels.shape != (len(anchors),):
        raise ValueError(f"anchor_labels must have shape ({len(anchors)},), got {labels.shape}")
    h, w = image_shape[:2]
    inside = (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] <= w) & (anchors[:, 3] <= h)
    best = _best_iou(anchors, gt_boxes)
    ax.hist(best[inside], bins=np.linspace(0, 1, 51), color="0.5")
    ax.axvspan(0, negative_iou, color="tab:blue", alpha=0.12, label=f"negative if sampled (< {negative_iou})")
    ax.axvspan(positive_iou, 1, color="tab:red", alpha=0.12, label=f"positive (>= {positive_iou})")
    ax.plot(best[labels == 1], np.ones(int((labels == 1).sum())), "v", color="tab:red", markersize=8,
            label="the positive anchors")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("best IoU with a ground-truth box")
    ax.set_ylabel("anchors inside the image")
    ax.legend(fontsize=9)
    return ax


def plot_mask_targets(image, masks, rois, coverages, targets, threshold, ious=None):
    """One row per foreground ROI: the ROI on its instance, each cell's covered fraction, the binary target.

    Parameters
    ----------
    image : (H, W, 3) uint8
    masks : (F, H, W) bool
        The instance mask of each ROI.
    rois : (F, 4) float
    coverages : (F, P, P) float in [0, 1]
        The fraction of each cell the mask covers (:func:`fcis_twin.reference.targets.mask_targets`).
    targets : (F, P, P) bool
    threshold : float
        The binarization threshold, for the titles.
    ious : (F,) float, optional
        Each ROI's IoU with its instance's box, for the titles.

    Returns
    -------
    matplotlib.figure.Figure
        ``F`` rows of three panels and one colour bar for the covered fractions, under the middle column.
    """
    from matplotlib.figure import Figure

    rois = as_box_array("rois", rois)
    coverages, targets = np.asarray(coverages, np.float64), np.asarray(targets, bool)
    n = len(rois)
    if n == 0:
        raise ValueError("rois must hold at least one ROI")
    if ious is not None and len(ious) != n:
        raise ValueError(f"ious must hold {n} values, got {len(ious)}")
    if len(masks) != n or coverages.shape[0] != n or targets.shape != coverages.shape or coverages.ndim != 3:
        raise ValueError(f"masks, coverages and targets must each hold {n} entries, (P, P) for the last two; got "
                         f"{np.shape(masks)}, {coverages.shape} and {targets.shape}")
    fig = Figure(figsize=(8, 2.6 * n + 0.6), layout="constrained")
    ax = fig.subplots(n, 3, squeeze=False)
    for row in range(n):
        ax[row, 0].imshow(overlay_masks(image, np.asarray(masks)[row : row + 1]))
        draw_boxes(ax[row, 0], rois[row : row + 1], colors="white", linewidth=1.5)
        zoom_to_box(ax[row, 0], rois[row], np.shape(image), pad=6)
        x1, y1, x2, y2 = rois[row]
        title = f"ROI {x2 - x1:.0f} x {y2 - y1:.0f} px"
        ax[row, 0].set_title(title if ious is None else f"{title}, IoU {ious[row]:.2f}", fontsize=10)
        im = ax[row, 1].imshow(coverages[row], cmap="viridis", vmin=0, vmax=1)
        ax[row, 1].set_title("covered fraction per cell", fontsize=10)
        ax[row, 2].imshow(targets[row], cmap="gray", vmin=0, vmax=1)
        ax[row, 2].set_title(f"target: fraction >= {threshold}", fontsize=10)
        for a in ax[row]:
            clean_axes(a)
    fig.colorbar(im, ax=ax[-1, 1], location="bottom", shrink=0.9, label="covered fraction")
    return fig


def _roi_kinds(roi_losses, roi_labels, kept):
    losses = np.asarray(roi_losses, np.float64)
    labels, kept = np.asarray(roi_labels), np.asarray(kept, bool)
    if losses.ndim != 1 or labels.shape != losses.shape or kept.shape != losses.shape:
        raise ValueError(f"roi_losses, roi_labels and kept must be 1-d of one length, got {losses.shape}, "
                         f"{labels.shape} and {kept.shape}")
    fg = labels > 0
    kinds = {"foreground, kept": fg & kept, "background, kept": ~fg & kept,
             "background, dropped": ~fg & ~kept, "foreground, dropped": fg & ~kept}
    return losses, kinds


def draw_ohem_ranking(ax, roi_losses, roi_labels, kept, batch_size, legend=True):
    """Every ROI's weighted loss against its rank (0: the highest), coloured by what OHEM did with it.

    Parameters
    ----------
    ax : matplotlib Axes
    roi_losses : (R,) float
        The loss OHEM ranks (``w_cls cls + w_seg seg + w_box box``), positive.
    roi_labels : (R,) int
        0 background, > 0 foreground.
    kept : (R,) bool
        The ROIs OHEM kept.
    batch_size : int >= 1
        Where the cut falls: a dashed line between rank ``batch_size - 1`` and ``batch_size``.
    legend : bool

    Returns
    -------
    ax
        One line of markers per kind of ROI present (:data:`ROI_COLORS`), log-scaled losses.
    """
    losses, kinds = _roi_kinds(roi_losses, roi_labels, kept)
    batch_size = as_int("batch_size", batch_size, low=1)
    rank = np.empty(len(losses), int)
    rank[np.argsort(-losses, kind="stable")] = np.arange(len(losses))
    for name, where in kinds.items():
        if where.any():
            ax.plot(rank[where], losses[where], "o", color=ROI_COLORS[name], markersize=3, label=name)
    ax.axvline(batch_size - 0.5, color="black", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("rank by weighted loss")
    ax.set_ylabel("cls + 10 seg + box")
    if legend:
        ax.legend(fontsize=9, loc="lower left")
    return ax


def draw_loss_against_iou(ax, roi_losses, roi_labels, kept, best_iou, fg_iou=0.5):
    """Every ROI's weighted loss against its best IoU with a ground-truth box, coloured as in
    :func:`draw_ohem_ranking`; a dotted line at the foreground threshold ``fg_iou``.

    Returns
    -------
    ax
        One line of markers per kind of ROI present, log-scaled losses, x in [0, 1].
    """
    losses, kinds = _roi_kinds(roi_losses, roi_labels, kept)
    best_iou = np.asarray(best_iou, np.float64)
    if best_iou.shape != losses.shape:
        raise ValueError(f"best_iou must have shape {losses.shape}, got {best_iou.shape}")
    for name, where in kinds.items():
        if where.any():
            ax.plot(best_iou[where], losses[where], "o", color=ROI_COLORS[name], markersize=3, alpha=0.7)
    ax.axvline(fg_iou, color="black", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("best IoU with a ground-truth box")
    return ax


def plot_ohem_choice(steps, image, gt_boxes, batch_size, fg_iou=0.5):
    """OHEM's choice in several steps on one image: one row per step.

    Parameters
    ----------
    steps : dict of str to step
        Row title to a step with ``rois`` (R, 4), ``roi_labels`` (R,), ``roi_losses`` (R,) and ``kept`` (R,).
    image : (H, W, 3) uint8
    gt_boxes : (G, 4) float
    batch_size : int >= 1
        ROIs OHEM keeps.
    fg_iou : float

    Returns
    -------
    matplotlib.figure.Figure
        Per row: :func:`draw_ohem_ranking` (the legend in the first row only), :func:`draw_loss_against_iou`,
        and the kept background ROIs on the image.  Every loss panel shares one log-scaled y axis.
    """
    from matplotlib.figure import Figure

    if not steps:
        raise ValueError("steps must hold at least one step")
    gt_boxes = as_box_array("gt_boxes", gt_boxes)
    fig = Figure(figsize=(10, 3.3 * len(steps)), layout="constrained")
    ax = fig.subplots(len(steps), 3, squeeze=False, width_ratios=(1.2, 1.2, 1))
    for row, (name, step) in enumerate(steps.items()):
        rois = as_box_array(f"steps[{name!r}].rois", step.rois)
        draw_ohem_ranking(ax[row, 0], step.roi_losses, step.roi_labels, step.kept, batch_size, legend=row == 0)
        ax[row, 0].set_title(name, fontsize=10, loc="left")
        draw_loss_against_iou(ax[row, 1], step.roi_losses, step.roi_labels, step.kept,
                              _best_iou(rois, gt_boxes), fg_iou)
        for a in ax[row, :2]:
            if a is not ax[0, 0]:
                a.sharey(ax[0, 0])
        background_kept = (np.asarray(step.roi_labels) == 0) & np.asarray(step.kept, bool)
        ax[row, 2].imshow(image)
        draw_boxes(ax[row, 2], rois[background_kept], colors="tab:orange", linewidth=0.7)
        ax[row, 2].set_title(f"{background_kept.sum()} kept background ROIs", fontsize=10)
        clean_axes(ax[row, 2])
    losses = np.concatenate([np.asarray(step.roi_losses, np.float64).ravel() for step in steps.values()])
    losses = losses[losses > 0]
    if len(losses):
        ax[0, 0].set_ylim(losses.min() / 2, losses.max() * 2)
    return fig


#: The fields of a training record that :func:`plot_loss_curves` reads.
_RECORD_KEYS = ("rpn_cls", "rpn_box", "cls", "seg", "box", "kept", "kept_foreground")


def per_foreground_loss(log, part, weight):
    """A head loss of every iteration, per kept foreground ROI and without its weight.

    ``seg`` and ``box`` are logged averaged over the kept ROIs, background ones (which add 0) included, and
    weighted; this undoes both: ``value * kept / (weight * kept_foreground)``.

    Parameters
    ----------
    log : list of dict
        Records with ``part``, ``"kept"`` and ``"kept_foreground"``.
    part : str
    weight : float > 0

    Returns
    -------
    (T,) float64 ndarray
        NaN where an iteration kept no foreground ROI.

    Examples
    --------
    >>> per_foreground_loss([{"seg": 1.0, "kept": 128, "kept_foreground": 16}], "seg", 10.0)
    array([0.8])
    """
    if not log:
        raise ValueError("log must hold at least one record")
    if not weight > 0:
        raise ValueError(f"weight must be > 0, got {weight}")
    missing = {part, "kept", "kept_foreground"} - set(log[0])
    if missing:
        raise ValueError(f"log records must hold {sorted(missing)}")
    value, kept, fg = (np.array([r[key] for r in log], np.float64) for key in (part, "kept", "kept_foreground"))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(fg > 0, value * kept / (weight * fg), np.nan)


def plot_loss_curves(log, loss_weights=(1.0, 10.0, 1.0)):
    """A training run's losses, the head's mask and box losses both as logged and per foreground ROI.

    Parameters
    ----------
    log : list of dict
        One record per iteration with ``rpn_cls``, ``rpn_box``, ``cls``, ``seg``, ``box`` (as
        :func:`fcis_twin.reference.train_step.training_step` returns them: the head's averaged over the kept ROIs
        and weighted), ``kept`` (ROIs OHEM kept) and ``kept_foreground`` (foreground ROIs among them).
    loss_weights : (3,) float
        The weights of ``cls``, ``seg`` and ``box``.

    Returns
    -------
    matplotlib.figure.Figure
        Four panels: the RPN's losses and ``cls`` as logged; the mask loss and the box loss, each divided by the
        kept ROIs (as logged, without its weight) and by the kept foreground ROIs; the numbers of kept foreground
        ROIs.
    """
    from matplotlib.figure import Figure

    if not log:
        raise ValueError("log must hold at least one record")
    missing = set(_RECORD_KEYS) - set(log[0])
    if missing:
        raise ValueError(f"log records must hold {sorted(missing)}")
    if len(loss_weights) != 3:
        raise ValueError(f"loss_weights must hold 3 values (cls, seg, box), got {len(loss_weights)}")
    t = np.arange(len(log))
    column = {key: np.array([r[key] for r in log], np.float64) for key in _RECORD_KEYS}
    fig = Figure(figsize=(10, 6.4), layout="constrained")
    ax = fig.subplots(2, 2, sharex=True)
    for key, label in (("rpn_cls", "RPN class, per sampled anchor"), ("rpn_box", "RPN box, per 256 anchors"),
                       ("cls", "head class, per kept ROI")):
        ax[0, 0].plot(t, column[key], label=label)
    ax[0, 0].set_yscale("log")
    ax[0, 0].set_title("RPN and class losses, as logged", fontsize=10)
    for a, key, weight, name in ((ax[0, 1], "seg", loss_weights[1], "mask"), (ax[1, 0], "box", loss_weights[2], "box")):
        a.plot(t, column[key] / weight, "--", color="0.45", label=f"÷ {int(column['kept'][0])} kept ROIs (as logged)")
        a.plot(t, per_foreground_loss(log, key, weight), color="tab:red", label="÷ kept foreground ROIs")
        a.set_title(f"{name} loss (without its weight {weight:g})", fontsize=10)
        a.set_ylim(0, None)
    ax[1, 1].plot(t, column["kept_foreground"], color="tab:red")
    ax[1, 1].set_ylim(0, None)
    ax[1, 1].set_title("kept foreground ROIs", fontsize=10)
    for a in ax.flat:
        a.grid(alpha=0.3)
        if a is not ax[1, 1]:
            a.legend(fontsize=9)
    for a in ax[1]:
        a.set_xlabel("iteration")
    return fig


def draw_loss_parts(ax, parts):
    """Grouped bars: the loss parts of a few networks side by side.

    Parameters
    ----------
    ax : matplotlib Axes
    parts : dict of str to dict of str to float
        Network name to ``{part name: value}``; every network gives the same parts, in the same order.

    Returns
    -------
    ax
        One bar container per network, each bar labelled with its value.
    """
    if not parts:
        raise ValueError("parts must hold at least one network")
    names = list(next(iter(parts.values())))
    for network, values in parts.items():
        if list(values) != names:
            raise ValueError(f"parts[{network!r}] must give the parts {names}, got {list(values)}")
    width = 0.8 / len(parts)
    x = np.arange(len(names))
    for i, (network, values) in enumerate(parts.items()):
        bars = ax.bar(x + (i - (len(parts) - 1) / 2) * width, list(values.values()), width, label=network)
        ax.bar_label(bars, [f"{v:.2f}" for v in values.values()], padding=2, fontsize=9)
    ax.set_xticks(x, names, fontsize=9)
    ax.set_ylabel("loss")
    ax.legend(fontsize=9)
    ax.margins(y=0.15)
    return ax


def draw_top_detections(ax, image, detections, class_names, top=3, title=None):
    """The ``top`` highest-scoring detections with their masks, boxes and ``class score`` captions.

    A caption sits above its box, or just inside it where the box touches the top of the image.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) uint8
    detections : Detections-like
        ``boxes`` (D, 4), ``masks`` (D, H, W), ``labels`` (D,), ``scores`` (D,), in descending score.
    class_names : sequence of str
    top : int >= 1
    title : str, optional

    Returns
    -------
    ax
        At most ``top`` box patches and as many captions.
    """
    top = as_int("top", top, low=1)
    n = min(top, len(detections.scores))
    boxes = as_box_array("detections.boxes", np.asarray(detections.boxes)[:n].reshape(-1, 4))
    ax.imshow(overlay_masks(image, np.asarray(detections.masks)[:n]))
    draw_boxes(ax, boxes)
    for i, (x1, y1, _, _) in enumerate(boxes):
        inside = y1 < 0.08 * np.shape(image)[0]
        ax.text(x1, y1 + 1 if inside else y1 - 2, f"{class_names[detections.labels[i]]} {detections.scores[i]:.2f}",
                fontsize=9, color="white", va="top" if inside else "bottom",
                bbox=dict(facecolor=PALETTE[i % len(PALETTE)], alpha=0.8, pad=1, linewidth=0))
    if title is not None:
        ax.set_title(title, fontsize=10)
    return clean_axes(ax)


def loss_figure(log, parts, window=50, head_weights=None, pretrain_log=None):
    """A training log's loss parts and their total against the iteration, each a running mean over ``window``
    iterations, on a log scale: the ``loss.png`` of ``fcis train``.

    With ``head_weights`` (and ``"kept"``, ``"kept_foreground"`` in the records), a second panel draws the mask and
    box losses per kept foreground ROI, without their weights (:func:`per_foreground_loss`): as logged they are
    averaged over all kept ROIs, so they rise with the share of foreground while the loss of each falls.

    Parameters
    ----------
    log : list of dict
        One record per iteration, with ``"iteration"``, each of ``parts`` and ``"total"``.
    parts : sequence of str
    window : int >= 1
    head_weights : dict of str to float, optional
        The weights of ``"seg"`` and ``"box"`` in the total.
    pretrain_log : list of dict, optional
        The log of the backbone's pretraining (:func:`fcis_twin.reference.pretrain.pretrain`): a first panel draws
        its loss and the share of objects it classifies right.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    def smoothed(values):
        w = max(1, min(window, len(values)))
        return t[w - 1 :], np.convolve(values, np.ones(w) / w, mode="valid")

    per_foreground = head_weights is not None and bool(log) and "kept_foreground" in log[0]
    pretrained = bool(pretrain_log)
    panels = 1 + per_foreground + pretrained
    fig = Figure(figsize=(5 * panels, 4.2), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    if pretrained:
        first, axes = axes[0], axes[1:]
        t = np.array([r["iteration"] for r in pretrain_log])
        first.plot(*smoothed(np.array([r["loss"] for r in pretrain_log])), label="loss")
        first.plot(*smoothed(np.array([r["accuracy"] for r in pretrain_log])), label="objects classified right")
        first.set_title("pretraining the backbone", fontsize=10)
        first.set_xlabel("pretraining iteration")
        first.set_ylabel(f"running mean of {window}")
        first.set_ylim(bottom=0)
        first.legend(fontsize=9)
        first.grid(alpha=0.3)
    t = np.array([r["iteration"] for r in log])
    for name in (*parts, "total"):
        axes[0].plot(*smoothed(np.array([r[name] for r in log])), label=name,
                     linewidth=2.2 if name == "total" else 1.2)
    axes[0].set_yscale("log")
    axes[0].set_title("as logged (seg and box averaged over all kept ROIs)", fontsize=10)
    if per_foreground:
        for name in ("seg", "box"):
            values = np.nan_to_num(per_foreground_loss(log, name, head_weights[name]), nan=0.0)
            axes[1].plot(*smoothed(values), label=f"{name} per kept foreground ROI")
        axes[1].set_title("mask and box losses per kept foreground ROI, unweighted", fontsize=10)
        axes[1].set_ylim(bottom=0)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"loss (running mean of {window})")
        ax.legend(ncols=2 if ax is axes[0] else 1, fontsize=9)
        ax.grid(alpha=0.3)
    return fig


def maps_figure(params, network, scene, class_index=None):
    """The network's learned inside and outside maps of one class beside the oracle's at the same settings.

    The oracle (:func:`fcis_twin.demo.scene_oracle_outputs`) is drawn at the network's own stride, ``k`` and anchors
    (:func:`fcis_twin.reference.network.inference_config`), so that the two sets of ``k x k`` maps compare tile for
    tile.

    Parameters
    ----------
    params : dict of str to ndarray
    network : NetworkConfig
    scene : Scene
    class_index : int, optional
        The class whose maps are drawn (default: that of the scene's largest instance).

    Returns
    -------
    matplotlib.figure.Figure
        Five panels: the image and its ground truth, then the learned inside and outside maps, then the oracle's,
        each a ``k x k`` mosaic (:func:`fcis_twin.viz.part_mosaic`) over the whole image.
    """
    from matplotlib.figure import Figure

    from ..demo import scene_oracle_outputs
    from ..reference.boxes import box_area
    from ..reference.network import inference_config, inference_outputs
    from ..reference.shapes import CLASS_NAMES

    k = network.group_size
    if class_index is None:
        class_index = int(scene.labels[np.argmax(box_area(scene.boxes))])
    learned = inference_outputs(params, scene.image, network).seg_maps
    oracle = scene_oracle_outputs(scene, inference_config(network), num_classes=network.num_classes).seg_maps
    fig = Figure(figsize=(17, 3.6), layout="constrained")
    ax = fig.subplots(1, 5)
    draw_instances(ax[0], scene.image, scene.masks, scene.boxes, scene.labels, CLASS_NAMES)
    ax[0].set_title("image and ground truth")
    name = CLASS_NAMES[class_index]
    for col, (source, maps) in enumerate((("learned", learned), ("oracle", oracle))):
        for j, word in ((1, "inside"), (0, "outside")):  # channel (2 c + j) k^2 + part: j = 1 inside, 0 outside
            first = (2 * class_index + j) * k * k
            a = ax[1 + 2 * col + (1 - j)]
            image = a.imshow(part_mosaic(maps[0, first : first + k * k], k), cmap="magma")
            fig.colorbar(image, ax=a, shrink=0.8)
            a.set_title(f"{source}: '{name}' {word} maps")
            clean_axes(a)
    return fig
