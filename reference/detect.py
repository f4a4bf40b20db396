r"""The FCIS inference graph, network-agnostic: from network outputs to voted instances.

Given what the network computes for one image — RPN probabilities and deltas, the position-sensitive
inside/outside score maps and the position-sensitive box-regression maps — :func:`detect` runs the paper's
inference (Sec. 3, "Inference"):

1. anchors and proposals (RPN decode, clip, NMS, top 300);
2. assemble the inside/outside maps in every ROI and form masks and class probabilities (the joint formulation);
3. assemble the box-regression maps at ``P x P`` (group ``k``), average the bins, and regress every ROI;
4. a second pass: the regressed boxes are new ROIs, assembled again;
5. both passes together (2 x 300 ROIs), less those narrower or shorter than ``min_drop_size``, go to mask voting.

Every intermediate is returned in a :class:`Stages` record so that each one can be inspected and drawn.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ._checks import as_array, as_float, as_image_shape, as_int, is_device_array
from .anchors import anchor_base, shift_anchors
from .assemble import ps_assemble
from .boxes import HEAD_STDS, clip_boxes, decode_boxes
from .joint import joint_forward
from .nms import nms
from .proposals import propose, rpn_outputs_to_anchor_order
from .voting import Detections, mask_voting


class Kernels(NamedTuple):
    """The stage functions :func:`detect` calls for its heavy work, each with the reference's signature.

    :data:`REFERENCE_KERNELS` holds the reference's own; ``fcis_twin.accelerated.detect.kernels(backend)`` those of
    a backend, so that one graph, written once here, runs on every backend.
    """

    nms: Callable  #: the RPN's NMS (:func:`fcis_twin.reference.nms.nms`)
    ps_assemble: Callable  #: the assembly passes and the box maps (:func:`fcis_twin.reference.assemble.ps_assemble`)
    joint_forward: Callable  #: the joint formulation of both passes (:func:`fcis_twin.reference.joint.joint_forward`)
    mask_voting: Callable  #: per-class NMS, voting and pasting (:func:`fcis_twin.reference.voting.mask_voting`)


#: The reference's kernels, :func:`detect`'s default.
REFERENCE_KERNELS = Kernels(nms, ps_assemble, joint_forward, mask_voting)


@dataclass(frozen=True)
class FCISConfig:
    """Hyper-parameters of FCIS inference.

    ``stride`` is the feature stride (``spatial_scale = 1 / stride``); anchors are
    ``anchor_base(base_size=stride, ratios, scales)`` shifted over the feature map.

    Notes
    -----
    The defaults are the official code's test settings; all but the anchors are those of its COCO configuration
    (``experiments/fcis/cfgs/resnet_v1_101_coco_fcis_end2end_ohem.yaml``; ``fcis_coco_demo.yaml`` has the same
    values), which overrides the default configuration ``fcis/config/config.py``:

    - ``anchor_scales`` ``(8, 16, 32)`` with ``anchor_ratios`` ``(0.5, 1, 2)``, 9 anchors: the anchors of the default
      and the VOC (SBD) configurations.  The COCO configuration's ``ANCHOR_SCALES`` are ``(4, 8, 16, 32)``,
      12 anchors (``anchor_scales=(4, 8, 16, 32)``).
    - ``min_size`` 2: the COCO configuration's ``TEST.RPN_MIN_SIZE``; the default configuration's is 16, the
      feature stride.
    - ``stride`` 16 (``RPN_FEAT_STRIDE``), ``output_size`` 21 (``MASK_SIZE``), ``binary_threshold`` 0.4
      (``BINARY_THRESH``), ``pre_nms_top_n`` 6000, ``post_nms_top_n`` 300, ``rpn_nms_threshold`` 0.7
      (``TEST.RPN_PRE_NMS_TOP_N``, ``TEST.RPN_POST_NMS_TOP_N``, ``TEST.RPN_NMS_THRESH``), ``nms_threshold`` 0.3
      (``TEST.NMS``): the same in both configurations; ``vote_threshold`` 0.5: the default configuration's
      ``TEST.MASK_MERGE_THRESH``, which the COCO one keeps.  ``min_drop_size`` 2: the COCO configuration's
      ``TEST.MIN_DROP_SIZE``, with which ``im_detect`` in ``fcis/core/tester.py`` drops the ROIs of both passes
      whose inclusive width or height ``x2 - x1 + 1`` (``filter_boxes``, ``lib/bbox/bbox_transform.py``) is below
      it before mask voting; in half-open boxes that width is ``x2 - x1``.
    - ``group_size`` 7: the paper's ``k``.  ``max_detections`` 100: ``max_per_image`` in ``fcis/core/tester.py``
      (``pred_eval``, with mask voting).  ``score_threshold`` 1e-3: the floor of the score cut in
      ``lib/mask/mask_transform.py`` (``gpu_mask_voting``, ``cpu_mask_voting``).
    """

    stride: int = 16
    group_size: int = 7
    output_size: int = 21
    anchor_ratios: tuple = (0.5, 1.0, 2.0)
    anchor_scales: tuple = (8, 16, 32)
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    rpn_nms_threshold: float = 0.7
    min_size: int = 2
    nms_threshold: float = 0.3
    vote_threshold: float = 0.5
    binary_threshold: float = 0.4
    max_detections: int = 100
    score_threshold: float = 1e-3
    min_drop_size: float = 2

    def __post_init__(self):
        as_int("stride", self.stride, low=1)
        as_int("group_size", self.group_size, low=1)
        as_int("output_size", self.output_size, low=1)
        as_float("min_drop_size", self.min_drop_size, low=0.0)

    @property
    def num_anchors(self):
        return len(self.anchor_ratios) * len(self.anchor_scales)

    def anchors(self, feature_shape):
        """``(Hf*Wf*A, 4)`` float32 anchors over a feature map of ``feature_shape``, in ``(y, x, anchor)`` order."""
        return shift_anchors(anchor_base(self.stride, self.anchor_ratios, self.anchor_scales), feature_shape,
                             self.stride)

    @property
    def proposal_settings(self):
        """The keyword arguments of :func:`~fcis_twin.reference.proposals.propose` (but ``nms_kernel``): the one
        place the proposal settings are read from, by inference and by the training step alike."""
        return dict(pre_nms_top_n=self.pre_nms_top_n, post_nms_top_n=self.post_nms_top_n,
                    nms_threshold=self.rpn_nms_threshold, min_size=self.min_size)

    @property
    def assembly_geometry(self):
        """The keyword arguments of :func:`~fcis_twin.reference.assemble.ps_assemble` for this configuration."""
        return dict(group_size=self.group_size, output_size=self.output_size, spatial_scale=1.0 / self.stride)


@dataclass(frozen=True)
class PassOutput:
    """One assembly pass over a set of ROIs.

    Attributes
    ----------
    boxes : (R, 4) float32
        The ROIs of this pass, image pixels.
    assembled : (R, 2*C, P, P) float32
        Assembled inside/outside score maps, channel ``cls*2 + j``.
    mask_prob : (R, C, P, P) float32
    cls_score : (R, C) float32
    cls_prob : (R, C) float32
    """

    boxes: np.ndarray
    assembled: np.ndarray
    mask_prob: np.ndarray
    cls_score: np.ndarray
    cls_prob: np.ndarray


@dataclass(frozen=True)
class Stages:
    """Every intermediate of :func:`detect`.

    Attributes
    ----------
    config : FCISConfig
    anchors : (Hf*Wf*A, 4) float32
        In ``(y, x, anchor)`` order.
    rpn_fg_prob : (Hf*Wf*A,) float32
    proposals : (R, 4) float32
        After NMS, at most ``post_nms_top_n``.
    proposal_scores : (R,) float32
    first : PassOutput
        Assembly on the proposals.
    bbox_deltas : (R, 4) float32
        Position-sensitive box regression of the proposals: the box maps assembled at ``P x P`` (group ``k``, as
        the mask maps) and averaged over the ``P x P`` bins, normalised by ``HEAD_STDS``.
    regressed : (R, 4) float32
        Proposals moved by ``bbox_deltas``, clipped to the image.
    second : PassOutput
        Assembly on the regressed boxes.
    voting_rois : (M,) int64
        The ROIs that go to mask voting, as indices into both passes' ``2R`` ROIs (first pass, then second): those
        at least ``min_drop_size`` wide and high, ascending.
    detections : Detections
        After mask voting; ``detections.rois`` indexes ``voting_rois``, so ``voting_rois[detections.rois]`` is the
        detecting ROI among the ``2R``.
    """

    config: FCISConfig
    anchors: np.ndarray
    rpn_fg_prob: np.ndarray
    proposals: np.ndarray
    proposal_scores: np.ndarray
    first: PassOutput
    bbox_deltas: np.ndarray
    regressed: np.ndarray
    second: PassOutput
    voting_rois: np.ndarray
    detections: Detections = field(repr=False)


#: The configuration :func:`detect` uses when none is given (``FCISConfig()``; frozen, so it is safe to share).
DEFAULT_CONFIG = FCISConfig()


def detect(rpn_prob, rpn_deltas, seg_maps, bbox_maps, image_shape, config=DEFAULT_CONFIG, *,
           kernels=REFERENCE_KERNELS):
    r"""Run FCIS inference on one image's network outputs.

    Parameters
    ----------
    rpn_prob : (1, 2*A, Hf, Wf) float32 array_like
        RPN probabilities, channels ``[0, A)`` background and ``[A, 2A)`` foreground.
    rpn_deltas : (1, 4*A, Hf, Wf) float32 array_like
        RPN deltas, channel ``a*4 + coord``.
    seg_maps : (1, 2*C*k*k, Hf, Wf) float32 array_like
        Position-sensitive inside/outside score maps, channel ``((cls*2 + j)*k + gh)*k + gw``.
    bbox_maps : (1, 8*k*k, Hf, Wf) float32 array_like
        Position-sensitive box-regression maps, channel ``((reg*4 + coord)*k + gh)*k + gw``; ``reg = 1`` is used.
    image_shape : (H, W)
        The image the network saw, in pixels.
    config : FCISConfig
        Default :data:`DEFAULT_CONFIG`.
    kernels : Kernels
        The functions that do the heavy work (default :data:`REFERENCE_KERNELS`); the rest of the graph (anchors,
        decoding, clipping, ranking, the box regression's average) is the NumPy code here whatever they are.

    Returns
    -------
    stages : Stages
        Every intermediate; ``stages.detections`` is the final result.

    Raises
    ------
    TypeError
        GPU network outputs (CuPy arrays) with the reference's kernels, or some outputs on a GPU and some on the host.

    Notes
    -----
    First-pass masks are pasted into the proposals they were assembled in, second-pass masks into the regressed
    boxes; voting sees all ``2R`` of them (see ``docs/conventions.md``).

    The array code between the kernels takes CuPy network outputs as it takes NumPy ones: NumPy's functions dispatch
    to CuPy's (``__array_function__``), the arrays it creates are made beside the outputs (``like=``), and nothing
    is copied to the host, so that with a GPU backend's kernels the whole graph stays on the GPU
    (:func:`fcis_twin.accelerated.detect.detect`).
    """
    cfg = config
    if not isinstance(cfg, FCISConfig):
        raise TypeError(f"config must be an FCISConfig, got {type(cfg).__name__}")
    if not isinstance(kernels, Kernels):
        raise TypeError(f"kernels must be a Kernels record, got {type(kernels).__name__}")
    _check_sides(dict(rpn_prob=rpn_prob, rpn_deltas=rpn_deltas, seg_maps=seg_maps, bbox_maps=bbox_maps), kernels)
    image_shape = as_image_shape("image_shape", image_shape)
    k = cfg.group_size
    seg_maps = as_array("seg_maps", seg_maps, ndim=4, device=True)
    bbox_maps = as_array("bbox_maps", bbox_maps, ndim=4, device=True)
    feature_shape = seg_maps.shape[2:]
    if seg_maps.shape[0] != 1 or seg_maps.shape[1] % (2 * k * k) or seg_maps.shape[1] < 4 * k * k:
        raise ValueError(
            f"seg_maps must be (1, 2*C*k*k, Hf, Wf) with C >= 2 and k = {k}, got shape {seg_maps.shape}"
        )
    if bbox_maps.shape != (1, 8 * k * k, *feature_shape):
        raise ValueError(f"bbox_maps must be (1, {8 * k * k}, {feature_shape[0]}, {feature_shape[1]}), "
                         f"got shape {bbox_maps.shape}")

    anchors = np.asarray(cfg.anchors(feature_shape), like=seg_maps)  # where the outputs are (CuPy: copied there)
    fg_prob, deltas = rpn_outputs_to_anchor_order(rpn_prob, rpn_deltas)
    if fg_prob.shape[0] != anchors.shape[0]:
        raise ValueError(
            f"rpn_prob must be (1, {2 * cfg.num_anchors}, {feature_shape[0]}, {feature_shape[1]}) to match "
            f"seg_maps and config, got shape {np.shape(rpn_prob)}"
        )
    proposals, proposal_scores = propose(fg_prob, deltas, anchors, image_shape, **cfg.proposal_settings,
                                         nms_kernel=kernels.nms)

    first = _assembly_pass(seg_maps, proposals, cfg, kernels)
    bbox_deltas = box_regression(bbox_maps, proposals, cfg, kernels.ps_assemble)
    regressed = clip_boxes(decode_boxes(proposals, bbox_deltas, HEAD_STDS), image_shape)
    second = _assembly_pass(seg_maps, regressed, cfg, kernels)

    boxes = np.concatenate([first.boxes, second.boxes])  # (2R, 4)
    voting_rois = _large_enough(boxes, cfg.min_drop_size)  # (M,)
    detections = kernels.mask_voting(
        boxes[voting_rois],  # (M, 4)
        np.concatenate([first.mask_prob, second.mask_prob])[voting_rois],  # (M, C, P, P)
        np.concatenate([first.cls_prob, second.cls_prob])[voting_rois],  # (M, C)
        image_shape,
        nms_threshold=cfg.nms_threshold, vote_threshold=cfg.vote_threshold,
        binary_threshold=cfg.binary_threshold, max_detections=cfg.max_detections,
        score_threshold=cfg.score_threshold,
    )
    return Stages(cfg, anchors, fg_prob, proposals, proposal_scores, first, bbox_deltas, regressed, second,
                  voting_rois, detections)


def _check_sides(outputs, kernels):
    """The network outputs all on the host, or all on a GPU (CuPy arrays) with a backend's kernels."""
    on_gpu = [name for name, a in outputs.items() if is_device_array(a)]
    if on_gpu and len(on_gpu) < len(outputs):
        raise TypeError(f"{', '.join(on_gpu)} on a GPU and the other network outputs on the host: pass all four "
                        "on one side")
    if on_gpu and kernels is REFERENCE_KERNELS:
        raise TypeError("the network outputs are GPU arrays, and the reference's kernels take host arrays: copy them "
                        "to the host (.get()), or call fcis_twin.accelerated.detect.detect with a GPU backend")


def image_rois(boxes):
    """``(R, 4)`` boxes -> the ``(R, 5)`` ROIs of image 0 that assembly takes, beside ``boxes`` (NumPy or CuPy)."""
    return np.concatenate([np.zeros((len(boxes), 1), np.float32, like=boxes), boxes], axis=1)


def foreground_box_maps(bbox_maps, group_size):
    """The ``(1, 4*k*k, Hf, Wf)`` foreground slot (``reg = 1``, channels ``[4 k^2, 8 k^2)``) of the ``(1, 8*k*k,
    Hf, Wf)`` box maps, contiguous: the only slot that inference reads and training gives a loss and a gradient."""
    kk = group_size * group_size
    return np.ascontiguousarray(bbox_maps[:, 4 * kk :], like=bbox_maps)


def _assembly_pass(seg_maps, boxes, cfg, kernels):
    assembled = kernels.ps_assemble(seg_maps, image_rois(boxes), **cfg.assembly_geometry)  # (R, 2*C, P, P)
    joint = kernels.joint_forward(assembled)
    return PassOutput(boxes, assembled, joint.mask_prob, joint.cls_score, joint.cls_prob)


def box_regression(bbox_maps, boxes, cfg, assemble):
    """``(R, 4)`` box deltas of ``boxes``, as the official graph computes them: assemble the box maps at P x P
    with group k (``psroipool_bbox``, ``pooled_size=21``, in ``fcis/symbols/resnet_v1_101_fcis.py``), average the
    P x P bins (global average pooling), keep the foreground slot ``reg = 1`` (here assembled alone: the background
    slot is never read).  ChainerCV's head does the same (``FCISResNet101Head._pool`` in
    ``chainercv/experimental/links/model/fcis/fcis_resnet101.py``)."""
    box_bins = assemble(foreground_box_maps(bbox_maps, cfg.group_size), image_rois(boxes),
                        **cfg.assembly_geometry)  # (R, 4, P, P)
    return box_bins.mean(axis=(2, 3), dtype=np.float32)  # (R, coord)


def _large_enough(boxes, min_size):
    """Indices of the boxes at least ``min_size`` wide and high (half-open widths), ascending."""
    return np.flatnonzero((boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size))
