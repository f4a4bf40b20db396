"""Figures of notebook ``00_overview``: the whole pipeline on one image, stage by stage.

Every function draws onto the ``Axes`` it is given (a sequence of them where it draws several panels) and returns
it; images are drawn with ``imshow`` (pixel ``j`` covers ``[j - 0.5, j + 0.5)``) and boxes are half-open
``(x1, y1, x2, y2)`` in image pixels, as :func:`fcis_twin.viz.common.draw_boxes` draws them.
"""

import numpy as np

from .common import clean_axes, draw_boxes, draw_instances, zoom_to_box

__all__ = ["draw_ground_truth", "draw_scene", "draw_rpn_foreground", "draw_top_proposals", "draw_roi_maps",
           "draw_class_masks", "draw_detections", "draw_shift_profile"]

#: Font size of the captions of detections and of the panel titles (the site shows a figure about 900 px wide).
CAPTION_SIZE = 9


def _array(name, value, ndim, dtype=np.float64):
    try:
        value = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}") from err
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    return value


def _axes(name, axes, count):
    axes = list(np.ravel(np.asarray(axes, dtype=object)))
    if len(axes) != count:
        raise ValueError(f"{name} must hold {count} Axes, got {len(axes)}")
    return axes


def _caption_size(ax):
    for text in ax.texts:
        text.set_fontsize(CAPTION_SIZE)
    return ax


def _scene(scene):
    for name in ("image", "masks", "boxes", "labels"):
        if not hasattr(scene, name):
            raise TypeError(f"scene must have image, masks, boxes and labels, got {type(scene).__name__}")
    image = np.asarray(scene.image)
    if image.ndim != 3:
        raise ValueError(f"scene.image must have shape (H, W, 3), got {image.shape}")
    return image, _array("scene.boxes", scene.boxes, 2)


def draw_ground_truth(ax, scene, class_names):
    """A scene's ground-truth instances on its image: coloured masks, boxes and class captions.

    Parameters
    ----------
    ax : matplotlib Axes
    scene : Scene
        ``image`` (H, W, 3) uint8, ``masks`` (G, H, W) bool (visible masks), ``boxes`` (G, 4) float, ``labels``
        (G,) int indices into ``class_names`` (:func:`fcis_twin.reference.shapes.make_scene`).
    class_names : sequence of str

    Returns
    -------
    ax
        Titled ``"Ground truth: G instances"``, one caption per instance in :data:`CAPTION_SIZE` points.
    """
    image, boxes = _scene(scene)
    draw_instances(ax, image, scene.masks, boxes, scene.labels, class_names)
    ax.set_title(f"Ground truth: {len(boxes)} instances", fontsize=10)
    return _caption_size(ax)


def draw_scene(axes, scene, class_names):
    """A scene: its image on the first panel, its ground truth (:func:`draw_ground_truth`) on the second.

    Parameters
    ----------
    axes : sequence of 2 matplotlib Axes
    scene : Scene
        As for :func:`draw_ground_truth`.
    class_names : sequence of str

    Returns
    -------
    axes : list of 2 Axes
        The first titled ``"Image, H x W"``.
    """
    axes = _axes("axes", axes, 2)
    image, _ = _scene(scene)
    axes[0].imshow(image)
    axes[0].set_title(f"Image, {image.shape[0]} x {image.shape[1]}", fontsize=10)
    clean_axes(axes[0])
    draw_ground_truth(axes[1], scene, class_names)
    return axes


def draw_rpn_foreground(ax, fg_prob, feature_shape, num_anchors, stride=None):
    """The RPN's foreground probability over the feature map: at each position, the largest of its anchors'.

    Parameters
    ----------
    ax : matplotlib Axes
    fg_prob : (Hf*Wf*A,) float array_like
        Foreground probability of every anchor, in ``(y, x, anchor)`` order (``Stages.rpn_fg_prob``).
    feature_shape : (int, int)
        ``(Hf, Wf)``.
    num_anchors : int
        ``A``.
    stride : int, optional
        The feature stride, for the title.

    Returns
    -------
    ax
        Its one image is the ``(Hf, Wf)`` maximum over the anchors, on a fixed scale [0, 1], with a colour bar.
    """
    fg_prob = _array("fg_prob", fg_prob, 1)
    hf, wf = (int(v) for v in feature_shape)
    if isinstance(num_anchors, bool) or not isinstance(num_anchors, (int, np.integer)):
        raise TypeError(f"num_anchors must be an int, got {type(num_anchors).__name__}")
    if num_anchors < 1 or fg_prob.size != hf * wf * num_anchors:
        raise ValueError(f"num_anchors must be >= 1 and fg_prob hold Hf*Wf*A = {hf}*{wf}*{num_anchors} values, "
                         f"got {fg_prob.size}")
    best = fg_prob.reshape(hf, wf, num_anchors).max(axis=2)
    im = ax.imshow(best, cmap="viridis", vmin=0, vmax=1)
    where = f"{hf} x {wf}" + ("" if stride is None else f", stride {stride}")
    ax.set_title(f"RPN foreground, best of {num_anchors}\n({where})", fontsize=10)
    ax.figure.colorbar(im, ax=ax, shrink=0.85, label="probability")
    return clean_axes(ax)


def draw_top_proposals(ax, image, proposals, count=20):
    """The first ``count`` proposals (the highest-scoring, as ``propose`` orders them) in white on the image.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array_like
    proposals : (R, 4) float array_like
        In descending score order.
    count : int
        How many to draw, at most ``R``.

    Returns
    -------
    ax
        One rectangle per drawn proposal; titled ``"Top n of R proposals"``.
    """
    proposals = _array("proposals", proposals, 2)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    shown = min(int(count), len(proposals))
    ax.imshow(image)
    draw_boxes(ax, proposals[:shown], colors="white", linewidth=0.8)
    ax.set_title(f"Top {shown} of {len(proposals)} proposals", fontsize=10)
    return clean_axes(ax)


def draw_roi_maps(axes, image, roi, inside, outside, class_name, pad=30):
    """One ROI on the image, then its assembled inside and outside maps of one class, on one colour scale.

    Parameters
    ----------
    axes : sequence of 3 matplotlib Axes
    image : (H, W, 3) array_like
    roi : (4,) float array_like
        The ROI's box.
    inside, outside : (P, P) float array_like
        Its assembled maps of the class (channels ``cls*2 + 1`` and ``cls*2``).
    class_name : str
    pad : float
        Pixels of image shown around the ROI.

    Returns
    -------
    axes : list of 3 Axes
        The two maps share ``vmin``/``vmax`` and one colour bar.
    """
    axes = _axes("axes", axes, 3)
    roi = _array("roi", roi, 1)
    if roi.shape != (4,):
        raise ValueError(f"roi must have shape (4,), got {roi.shape}")
    inside = _array("inside", inside, 2)
    outside = _array("outside", outside, 2)
    if inside.shape != outside.shape:
        raise ValueError(f"inside and outside must have one shape, got {inside.shape} and {outside.shape}")
    image = np.asarray(image)
    axes[0].imshow(image)
    draw_boxes(axes[0], roi[None], colors="white", linewidth=2)
    zoom_to_box(axes[0], roi, image.shape, pad=pad)
    axes[0].set_title("The ROI", fontsize=10)
    lo, hi = min(inside.min(), outside.min()), max(inside.max(), outside.max())
    for ax, values, name in ((axes[1], inside, "inside"), (axes[2], outside, "outside")):
        im = ax.imshow(values, cmap="magma", vmin=lo, vmax=hi)
        ax.set_title(f"'{class_name}' {name}, {values.shape[0]} x {values.shape[1]}", fontsize=10)
    for ax in axes:
        clean_axes(ax)
    axes[0].figure.colorbar(im, ax=axes[1:], shrink=0.85, label="score (logit)")
    return axes


def draw_class_masks(axes, mask_prob, cls_prob, class_names):
    """One ROI's mask probabilities under each object class (background, class 0, left out), titled by class
    probability.

    Parameters
    ----------
    axes : sequence of C - 1 matplotlib Axes
    mask_prob : (C, P, P) float array_like
        ``mask_prob`` of one ROI, in [0, 1].
    cls_prob : (C,) float array_like
    class_names : sequence of C str

    Returns
    -------
    axes : list of C - 1 Axes
        Panel ``c - 1`` shows class ``c`` on the scale [0, 1], titled ``"name: p 0.123"``; one colour bar.
    """
    mask_prob = _array("mask_prob", mask_prob, 3)
    cls_prob = _array("cls_prob", cls_prob, 1)
    if len(cls_prob) != len(mask_prob) or len(class_names) != len(mask_prob):
        raise ValueError(f"cls_prob and class_names must have one entry per class of mask_prob "
                         f"({len(mask_prob)}), got {len(cls_prob)} and {len(class_names)}")
    axes = _axes("axes", axes, len(mask_prob) - 1)
    for ax, c in zip(axes, range(1, len(mask_prob)), strict=True):
        im = ax.imshow(mask_prob[c], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{class_names[c]}: p {cls_prob[c]:.3f}", fontsize=10)
        clean_axes(ax)
    axes[0].figure.colorbar(im, ax=axes, shrink=0.85, label="mask probability")
    return axes


def draw_detections(ax, image, detections, class_names, keep=None, title=None):
    """Detections on the image: coloured masks, boxes and ``class score`` captions.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W, 3) array_like
    detections : Detections
        ``masks`` (D, H, W), ``boxes`` (D, 4), ``labels`` (D,), ``scores`` (D,).
    class_names : sequence of str
    keep : (S,) int array_like, optional
        Indices of the detections to draw (all when None).
    title : str, optional
        The panel's title; by default ``"D detections"``.

    Returns
    -------
    ax
        One caption per drawn detection, in :data:`CAPTION_SIZE` points.
    """
    for name in ("masks", "boxes", "labels", "scores"):
        if not hasattr(detections, name):
            raise TypeError(f"detections must have masks, boxes, labels and scores, got {type(detections).__name__}")
    keep = np.arange(len(detections.scores)) if keep is None else _array("keep", keep, 1, np.int64)
    draw_instances(ax, image, detections.masks[keep], detections.boxes[keep], detections.labels[keep],
                   class_names, detections.scores[keep])
    ax.set_title(f"{len(keep)} detections" if title is None else title, fontsize=10)
    return _caption_size(ax)


def draw_shift_profile(ax, shifts, iou, curves, ylabel):
    """Values of ROIs slid sideways across an object, one line per source, over a band where the ROI's IoU with
    the object is at least 0.5 (where training counts an ROI as a positive of the object's class).

    Parameters
    ----------
    ax : matplotlib Axes
    shifts : (S,) float array_like
        Each ROI's horizontal shift, in widths of the object's box, ascending.
    iou : (S,) float array_like
        Each ROI's box IoU with the object.
    curves : dict of str to (S,) float array_like
        One line per entry, labelled by its key (e.g. ``{"oracle": ..., "bundled model": ...}``).
    ylabel : str

    Returns
    -------
    ax
        One line per curve, a shaded band over the shifts of IoU >= 0.5, and a legend.
    """
    shifts = _array("shifts", shifts, 1)
    iou = _array("iou", iou, 1)
    if iou.shape != shifts.shape:
        raise ValueError(f"iou must have one value per shift ({len(shifts)}), got {len(iou)}")
    if not isinstance(curves, dict):
        raise TypeError(f"curves must be a dict of label to values, got {type(curves).__name__}")
    positive = shifts[iou >= 0.5]
    if len(positive):
        ax.axvspan(positive.min(), positive.max(), color="0.9", zorder=0, label="IoU ≥ 0.5")
    for label, values in curves.items():
        values = _array(f"curves[{label!r}]", values, 1)
        if values.shape != shifts.shape:
            raise ValueError(f"curves[{label!r}] must have one value per shift ({len(shifts)}), got {len(values)}")
        ax.plot(shifts, values, marker=".", label=label)
    ax.set_xlabel("ROI shift (box widths)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=9)
    return ax
