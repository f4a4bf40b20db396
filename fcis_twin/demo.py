"""``fcis demo``: FCIS end to end on a synthetic scene, drawn stage by stage, on the network outputs of the bundled
model, of another trained model, or of the oracle (:mod:`fcis_twin.reference.oracle`).

:data:`SCENE_CONFIG` is the inference configuration for the synthetic scenes of :mod:`fcis_twin.reference.shapes`:
:class:`fcis_twin.reference.detect.FCISConfig`'s defaults (whose sources its docstring gives) except a feature stride
of 2 (the scenes are 240 x 320 pixels, not 600 x 1000), which the oracle uses too.  Notebooks import it from here.
"""

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure

from .reference._checks import as_int
from .reference._files import replace_file
from .reference.anchors import anchor_base, shift_anchors
from .reference.boxes import box_iou
from .reference.detect import FCISConfig, Stages, detect
from .reference.oracle import OracleOutputs, oracle_outputs
from .reference.paste import paste_masks
from .reference.sds import mask_iou
from .reference.shapes import CLASS_NAMES, Scene, make_scene
from .viz import clean_axes, draw_boxes, draw_instances, overlay_masks, part_mosaic, zoom_to_box

#: Inference settings for the synthetic scenes: :class:`FCISConfig`'s defaults at feature stride 2 (see
#: :mod:`fcis_twin.reference.oracle`).
SCENE_CONFIG = FCISConfig(stride=2)

#: Classes of the synthetic scenes, background included.
NUM_SCENE_CLASSES = len(CLASS_NAMES)

#: File name of the figure when :func:`run_demo`'s ``out`` is a folder.
DEMO_FIGURE = "fcis_demo.png"


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` computed.

    Attributes
    ----------
    scene : Scene
    outputs : OracleOutputs
    stages : Stages
    best_iou : (D,) float64
        Mask IoU of each detection with the best-matching ground-truth instance of its class (0 if none).
    table : str
        The detections as printed by ``fcis demo`` (the first ``DEMO_TABLE_ROWS``).
    figure_path : pathlib.Path or None
        The file the figure was written to (:func:`figure_path`), None when none was written.
    """

    scene: Scene
    outputs: OracleOutputs  # or NetworkOutputs: both name their four tensors alike
    stages: Stages
    best_iou: np.ndarray
    table: str
    figure_path: Path | None = None


def run_oracle_pipeline(scene, config=SCENE_CONFIG, *, num_classes=NUM_SCENE_CLASSES, backend="reference",
                        **oracle_kwargs):
    """Oracle network outputs for ``scene`` (``num_classes`` with background) and the full inference on them.

    ``backend`` is ``"reference"`` (:func:`fcis_twin.reference.detect.detect`) or a backend of
    :func:`fcis_twin.accelerated.detect.detect` (None: the fastest available); ``oracle_kwargs`` go to
    :func:`fcis_twin.reference.oracle.oracle_outputs`.

    Returns
    -------
    outputs : OracleOutputs
    stages : Stages
    """
    outputs = scene_oracle_outputs(scene, config, num_classes=num_classes, **oracle_kwargs)
    stages = detector(backend)(outputs.rpn_prob, outputs.rpn_deltas, outputs.seg_maps, outputs.bbox_maps,
                               scene.image.shape[:2], config)
    return outputs, stages


def scene_oracle_outputs(scene, config=SCENE_CONFIG, *, num_classes=NUM_SCENE_CLASSES, **oracle_kwargs):
    """:func:`fcis_twin.reference.oracle.oracle_outputs` for ``scene`` at ``config``'s stride, ``k`` and anchors
    (the outputs :func:`run_oracle_pipeline` runs the inference on)."""
    h, w = scene.image.shape[:2]
    feature_shape = (-(-h // config.stride), -(-w // config.stride))
    anchors = shift_anchors(anchor_base(config.stride, config.anchor_ratios, config.anchor_scales),
                            feature_shape, config.stride)
    return oracle_outputs(scene, anchors, stride=config.stride, group_size=config.group_size,
                          num_classes=num_classes, **oracle_kwargs)


def run_model_pipeline(scene, params, network, *, backend="reference", **config_overrides):
    """A trained network's outputs for ``scene`` and the full inference on them (the model's twin of
    :func:`run_oracle_pipeline`).

    ``network`` is the model's :class:`~fcis_twin.reference.network.NetworkConfig`; the inference configuration is
    :func:`~fcis_twin.reference.network.inference_config` of it, with ``config_overrides``.

    Returns
    -------
    outputs : NetworkOutputs
    stages : Stages
    """
    from .reference.network import inference_config, inference_outputs

    outputs = inference_outputs(params, scene.image, network)
    stages = detector(backend)(*outputs, scene.image.shape[:2], inference_config(network, **config_overrides))
    return outputs, stages


def detector(backend="reference"):
    """The ``detect`` function of ``backend``: the reference's for ``"reference"``, else the accelerated one bound to
    that backend (None: the fastest available); an unknown or unavailable backend is a ValueError."""
    if backend == "reference":
        return detect
    from .accelerated.detect import detect as accelerated_detect
    from .accelerated.detect import kernels

    kernels(backend)  # checks the backend now
    return functools.partial(accelerated_detect, backend=backend)


def best_mask_iou(detections, scene):
    """(D,) mask IoU of each detection with the best ground-truth instance of the same class (0 if none)."""
    iou = mask_iou(detections.masks, scene.masks)  # (D, G)
    same_class = detections.labels[:, None] == scene.labels[None, :]
    return np.where(same_class, iou, 0.0).max(axis=1, initial=0.0)


#: Most detections the demo's last panel draws.
DEMO_MAX_SHOWN = 12
#: Most rows of the demo's printed table.
DEMO_TABLE_ROWS = 20


def distinct_detections(detections, *, overlap=0.5, limit=DEMO_MAX_SHOWN, min_fraction=0.25):
    """Indices of the detections to draw: down the list by score, each one whose mask overlaps no mask already taken
    by ``overlap`` (mask IoU) or more and whose score is at least ``min_fraction`` of the top score, at most
    ``limit`` of them.

    Per-class NMS suppresses only within a class, so a network that spreads its class probabilities returns one
    object under several classes; drawn together those would hide each other.  The oracle's detections are all
    distinct and come back whole (up to ``limit``).

    Returns
    -------
    (S,) int64 ndarray
        Ascending, so still in score order.
    """
    limit = as_int("limit", limit, low=0)
    iou = mask_iou(detections.masks, detections.masks)  # (D, D)
    taken = []
    for d in range(len(detections.scores)):
        if len(taken) == limit or detections.scores[d] < min_fraction * detections.scores[0]:
            break
        if not (iou[d, taken] >= overlap).any():
            taken.append(d)
    return np.array(taken, np.int64)


def detection_table(detections, best_iou, limit=None):
    """A plain-text table: rank, class, score, box, mask IoU with ground truth; only the first ``limit`` rows (and a
    line that counts the others) when ``limit`` is given."""
    lines = [f"{'#':>3}  {'class':<9} {'score':>6}  {'box (x1, y1, x2, y2)':<24} {'mask IoU':>8}"]
    count = len(detections.scores)
    for i in range(count if limit is None else min(count, limit)):
        box = ", ".join(f"{v:.0f}" for v in detections.boxes[i])
        lines.append(
            f"{i:>3}  {CLASS_NAMES[detections.labels[i]]:<9} {detections.scores[i]:>6.3f}  ({box}){'':<{22 - len(box)}}"
            f" {best_iou[i]:>8.3f}"
        )
    if len(lines) == 1:
        lines.append("  (no detections)")
    elif len(lines) - 1 < count:
        lines.append(f"  ... and {count - len(lines) + 1} more, of lower scores")
    return "\n".join(lines)


def figure_path(out):
    """The file :func:`run_demo` writes its figure to for ``out``, checked before anything is computed.

    Parameters
    ----------
    out : str or path
        An existing folder: the figure is ``DEMO_FIGURE`` (``fcis_demo.png``) inside it.  A path without a
        suffix gets ``.png`` (``fig`` becomes ``fig.png``).  Otherwise the suffix names the format, one that
        matplotlib writes (``.png``, ``.pdf``, ``.svg``, ``.jpg``, ...), and the file's folder must exist.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ValueError
        An empty ``out``, a path ending in a separator that is not an existing folder, a suffix matplotlib
        cannot write, or a folder that does not exist; each naming ``out``.

    Examples
    --------
    >>> str(figure_path("scene3")), str(figure_path("scene3.svg"))
    ('scene3.png', 'scene3.svg')
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a str or path, got {type(out).__name__}")
    text = os.fspath(out)
    if not text:
        raise ValueError("out must not be empty")
    if os.path.isdir(text):
        return Path(text) / DEMO_FIGURE
    if text.endswith((os.sep, "/")) or (os.altsep and text.endswith(os.altsep)):
        raise ValueError(f"out {text!r} ends in a separator but is not an existing folder")
    path = Path(text)
    suffix = os.path.splitext(path.name)[1]
    if not suffix:
        path = path.with_name(path.name + ".png")
    elif _figure_format(path) not in FigureCanvasBase.get_supported_filetypes():
        known = ", ".join(sorted(FigureCanvasBase.get_supported_filetypes()))
        raise ValueError(f"out {text!r}: matplotlib cannot write a {suffix!r} file; use one of {known}")
    if not path.absolute().parent.is_dir():
        raise ValueError(f"out {text!r}: the folder {str(path.parent)!r} does not exist")
    return path


def _figure_format(path):
    return os.path.splitext(path.name)[1][1:].lower()


def run_demo(seed=0, out=DEMO_FIGURE, backend="reference", model=None):
    """Generate a scene, run FCIS on its network outputs and write the figure; returns a DemoResult.

    Parameters
    ----------
    seed : int >= 0
        The scene's seed (:func:`fcis_twin.reference.shapes.make_scene`).
    out : str, path or None
        Where the figure goes, resolved by :func:`figure_path` before anything is computed (None: no figure).
        The file is written under a temporary name in its folder and renamed into place when complete, so an
        existing figure is replaced whole, and a failure leaves it as it was.
    backend : str or None
        Where the inference runs, as in :func:`run_oracle_pipeline`.
    model : (params, NetworkConfig, name), optional
        A trained network (:func:`fcis_twin.reference.train.load_model`) and what to call it in the figure; None:
        the oracle network outputs.

    Returns
    -------
    result : DemoResult
        With ``figure_path`` the file written.
    """
    path = None if out is None else figure_path(out)
    detector(backend)  # an unknown backend fails before anything runs
    if path is None:
        return _demo_result(seed, backend, model)
    with replace_file("out", path) as temp:  # made now: an unwritable folder fails before the pipeline runs
        result = _demo_result(seed, backend, model, path)
        figure = demo_figure(result)
        figure.suptitle("FCIS on oracle network outputs" if model is None else f"FCIS with {model[2]}",
                        fontsize=14)
        figure.savefig(temp, dpi=110, format=_figure_format(path))
    return result


def _demo_result(seed, backend, model, path=None):
    scene = make_scene(seed)
    if model is None:
        outputs, stages = run_oracle_pipeline(scene, backend=backend)
    else:
        outputs, stages = run_model_pipeline(scene, model[0], model[1], backend=backend)
    best_iou = best_mask_iou(stages.detections, scene)
    table = detection_table(stages.detections, best_iou, limit=DEMO_TABLE_ROWS)
    return DemoResult(scene, outputs, stages, best_iou, table, path)


def demo_figure(result):
    """One figure of every stage, for the top detection: a :class:`matplotlib.figure.Figure` (no pyplot)."""
    scene, outputs, stages = result.scene, result.outputs, result.stages
    cfg, det = stages.config, stages.detections
    k, h, w = cfg.group_size, *scene.image.shape[:2]
    boxes = np.concatenate([stages.first.boxes, stages.second.boxes])  # (2R, 4): the voting ROIs
    assembled = np.concatenate([stages.first.assembled, stages.second.assembled])  # (2R, 2*C, P, P)
    mask_prob = np.concatenate([stages.first.mask_prob, stages.second.mask_prob])  # (2R, C, P, P)

    fig = Figure(figsize=(17, 8.4), layout="constrained")
    ax = fig.subplots(2, 4).ravel()
    ax[0].set_title(f"1. Image and ground truth ({len(scene.labels)} instances)")
    draw_instances(ax[0], scene.image, scene.masks, scene.boxes, scene.labels, CLASS_NAMES)
    shown = min(len(stages.proposals), 40)
    ax[1].set_title(f"2. RPN proposals (top {shown} of {len(stages.proposals)})")
    ax[1].imshow(scene.image)
    draw_boxes(ax[1], stages.proposals[:shown], colors="white", linewidth=0.7, alpha=0.8)
    clean_axes(ax[1])
    if len(det.scores) == 0:
        for a in ax[2:]:
            a.set_axis_off()
        return fig

    r, c = int(det.rois[0]), int(det.labels[0])
    name = CLASS_NAMES[c]
    # 3-4: the k x k inside / outside maps of class c, cropped around the ROI of the top detection
    y0, y1, x0, x1 = _feature_crop(boxes[r], cfg.stride, outputs.seg_maps.shape[2:])
    for j, (a, word) in enumerate(zip(ax[2:4], ("inside", "outside"), strict=True)):
        j_channel = 1 - j  # j = 1 inside, j = 0 outside
        first = (c * 2 + j_channel) * k * k
        maps = outputs.seg_maps[0, first : first + k * k, y0:y1, x0:x1]  # (k*k, crop h, crop w)
        a.imshow(part_mosaic(maps, k), cmap="magma")
        a.set_title(f"{3 + j}. '{name}' {word} maps, {k}x{k} parts")
        clean_axes(a)
    # 5: what assembling gives in that ROI
    gap = np.full((cfg.output_size, 2), np.nan)
    strip = np.hstack([assembled[r, 2 * c + 1], gap, assembled[r, 2 * c], gap,
                       mask_prob[r, c] * assembled[r].max()])
    ax[4].imshow(strip, cmap="magma")
    ax[4].set_title("5. Assembled in one ROI: inside | outside | mask")
    clean_axes(ax[4])
    # 6: that ROI's mask pasted into the image, before voting
    pasted = paste_masks(mask_prob[r, c][None], boxes[r][None], (h, w))[0]
    ax[5].imshow(scene.image)
    ax[5].imshow(np.ma.masked_less(pasted, 0.05), cmap="viridis", alpha=0.75, vmin=0, vmax=1)
    draw_boxes(ax[5], boxes[r][None], colors="white")
    ax[5].set_title(f"6. Its '{name}' mask, pasted, before voting")
    _zoom(ax[5], boxes[r], h, w)
    # 7: after voting, with the voters' boxes
    voters = np.flatnonzero(box_iou(boxes, boxes[r][None])[:, 0] >= cfg.vote_threshold)
    ax[6].imshow(overlay_masks(scene.image, det.masks[:1]))
    draw_boxes(ax[6], boxes[voters], colors="white", linewidth=0.5, alpha=0.6)
    ax[6].set_title(f"7. After voting: {len(voters)} ROIs vote")
    _zoom(ax[6], boxes[r], h, w)
    # 8: final instances, one per object
    shown = distinct_detections(det)
    ax[7].set_title(f"8. Final instances ({len(det.scores)})" if len(shown) == len(det.scores) else
                    f"8. Final instances: top {len(shown)} distinct of {len(det.scores)}")
    draw_instances(ax[7], scene.image, det.masks[shown], det.boxes[shown], det.labels[shown], CLASS_NAMES,
                   det.scores[shown])
    return fig


def _feature_crop(box, stride, feature_shape, margin=0.3):
    """Feature-map window (y0, y1, x0, x1) around an image box, widened by ``margin`` on each side."""
    x1, y1, x2, y2 = np.asarray(box, np.float64) / stride
    mw, mh = margin * max(x2 - x1, 1), margin * max(y2 - y1, 1)
    hf, wf = feature_shape
    return (max(int(y1 - mh), 0), min(int(np.ceil(y2 + mh)), hf),
            max(int(x1 - mw), 0), min(int(np.ceil(x2 + mw)), wf))


def _zoom(ax, box, h, w, margin=0.4):
    """Zoom on ``box``, widened by ``margin`` of its size (at least 8 pixels') on each side."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    zoom_to_box(ax, box, (h, w), pad=(margin * max(x2 - x1, 8), margin * max(y2 - y1, 8)))
    clean_axes(ax)


def model_class_names(network):
    """The class names of a model of ``network``, background first: :data:`CLASS_NAMES` of the synthetic scenes.

    Model files record the number of classes (``network.num_classes``), not their names: every model ``fcis train``
    writes, the bundled one included, has the scenes' classes (a ``--data`` set is matched to them by name).

    Raises
    ------
    ValueError
        ``network.num_classes`` is not ``len(CLASS_NAMES)``: such a model's names are unknown.
    """
    if network.num_classes != len(CLASS_NAMES):
        raise ValueError(f"the model has {network.num_classes} classes (background included) and its file records "
                         f"no names; only a model of the synthetic scenes' {len(CLASS_NAMES)} classes {CLASS_NAMES} "
                         "can be matched to a data set by name: pass class_names")
    return CLASS_NAMES


def evaluate_model(coco_set, params, network, *, limit=None, progress=iter, backend="reference", masks="full",
                   class_names=None):
    """:func:`evaluate_oracle` of a trained network (``params`` of ``network``) instead of the oracle; the same
    arguments otherwise, and the same result.

    ``class_names`` (background first; default :func:`model_class_names`) are the model's classes.  The set's
    categories are matched to them by name before any inference (:meth:`CocoSet.relabeled
    <fcis_twin.reference.coco.CocoSet.relabeled>`): their ids may come in any order, but a set that lacks one of
    the classes, names another or names one twice is a ValueError naming both lists.  A set in the model's order is
    evaluated as it is.
    """
    if class_names is None:
        class_names = model_class_names(network)
    elif isinstance(class_names, str) or len(class_names) != network.num_classes:
        raise ValueError(f"class_names must be the model's {network.num_classes} class names (background first), got "
                         f"{class_names!r}")
    coco_set = coco_set.relabeled(class_names, name="coco_set")
    return _evaluate(coco_set, lambda scene: run_model_pipeline(scene, params, network, backend=backend)[1],
                     limit=limit, progress=progress, masks=masks)


def evaluate_oracle(coco_set, *, limit=None, config=SCENE_CONFIG, progress=iter, backend="reference",
                    masks="full"):
    """FCIS on the oracle outputs of every image of a COCO-format set, scored with COCO AP and SBD mAP^r.

    Parameters
    ----------
    coco_set : fcis_twin.reference.coco.CocoSet
        Loaded with images (``load_coco(..., with_images=True)``).  The oracle reads each image's labels from the set,
        so it takes any categories (``C`` = their number plus background) and needs no matching.
    limit : int, optional
        Only the first ``limit`` images.
    config : FCISConfig
    progress : callable
        Wraps the image iterator, e.g. ``tqdm.tqdm`` for a progress bar.
    backend : str or None
        Where the inference runs, as in :func:`run_oracle_pipeline`.
    masks : {"full", "official"}
        The voted masks at the image's resolution (this project's), or as the official code evaluates them, squeezed
        to ``P x P`` and pasted back (:func:`fcis_twin.reference.official.official_resampling`).

    Returns
    -------
    metrics : dict
        ``{"images": n, "detections": d, "coco": evaluate_coco(...), "sds": evaluate_sds(...), "classes":
        covering_classes(...), "predictions": [Detections, ...]}``: ``d`` detections in all, and each image's own
        (in the order of ``coco_set``), whose indices ``evaluate_sds``'s ``"curves"`` use.
    """
    num_classes = len(coco_set.class_names)
    return _evaluate(coco_set, lambda scene: run_oracle_pipeline(scene, config, num_classes=num_classes,
                                                                 backend=backend)[1],
                     limit=limit, progress=progress, masks=masks)


def _evaluate(coco_set, pipeline, *, limit, progress, masks):
    """Run ``pipeline(scene) -> Stages`` on the images of ``coco_set`` and score the detections."""
    from .reference.evaluate import covering_classes, detections_to_coco, evaluate_coco, evaluate_sds

    n = len(coco_set) if limit is None else min(as_int("limit", limit, low=1), len(coco_set))
    if masks not in ("full", "official"):
        raise ValueError(f"masks must be 'full' or 'official', got {masks!r}")
    results, detections, truths = [], [], []
    for i in progress(range(n)):
        record = coco_set[i]
        stages = pipeline(record.to_scene())
        if masks == "official":
            stages = _officially_resampled(stages)
        results += detections_to_coco(stages.detections, record.image_id, coco_set.category_ids)
        detections.append(stages.detections)
        truths.append(record)
    image_ids = [int(i) for i in coco_set.image_ids[:n]]
    return {
        "images": n,
        "detections": len(results),
        "coco": evaluate_coco(results, coco_set.coco(), image_ids=image_ids),
        "sds": evaluate_sds(detections, truths),
        "classes": covering_classes(detections, truths),
        "predictions": detections,
    }


def _officially_resampled(stages):
    """``stages`` with the detections' masks resampled as the official code evaluates them."""
    from .reference.official import official_resampling, voted_averages

    cfg, keep = stages.config, stages.voting_rois
    boxes = np.concatenate([stages.first.boxes, stages.second.boxes])[keep]
    cls_masks = np.concatenate([stages.first.mask_prob, stages.second.mask_prob])[keep]
    cls_probs = np.concatenate([stages.first.cls_prob, stages.second.cls_prob])[keep]
    image_shape = stages.detections.masks.shape[1:]
    averages = voted_averages(boxes, cls_masks, cls_probs, image_shape, stages.detections,
                              vote_threshold=cfg.vote_threshold)
    masks = official_resampling(averages, stages.detections, output_size=cfg.output_size,
                                binary_threshold=cfg.binary_threshold)
    return dataclasses.replace(stages, detections=dataclasses.replace(stages.detections, masks=masks))
