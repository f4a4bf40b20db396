r"""One FCIS training step on one image: forward, targets, losses, OHEM, and every gradient back to the weights.

The step follows the official FCIS training graph (``fcis/symbols/resnet_v1_101_fcis.py``, ``is_train``) and its
OHEM operator (``fcis/operator_py/box_annotator_ohem.py``), and reads the network's outputs with inference's own
helpers (the anchors, proposal settings and assembly geometry of the network's
:func:`~fcis_twin.reference.network.inference_config`, the RPN layout of :mod:`fcis_twin.reference.proposals`, the
ROIs and the box maps' foreground slot of :mod:`fcis_twin.reference.detect`):

1. the network's four outputs (:func:`fcis_twin.reference.network.forward`);
2. :func:`rpn_losses`: anchor targets, the softmax loss averaged over the sampled anchors, the smooth L1 (sigma 3) of
   the positive anchors divided by the anchor batch;
3. proposals from the RPN's current outputs, as inference makes them (no gradient flows through them), then
   proposal targets: the ground truth joins the ROIs; every ROI gets a class, box deltas and, if foreground, a
   ``P x P`` mask target;
4. :func:`head_losses`: assembly of the inside/outside maps and of the box maps' foreground slot for every ROI; the
   joint formulation gives the class scores; per ROI, the classification loss, the mask loss (averaged over its
   pixels) and the box loss; OHEM keeps the 128 ROIs of highest weighted loss ``1 * cls + 10 * seg + 1 * box``;
   the kept ROIs' losses, each averaged over the kept ROIs, weighted 1, 10 and 1, send their gradients back
   through the joint formulation (the max routes the class gradient to the winner of each pair) and through
   assembly (``ps_assemble_backward``) to the maps;
5. the network's backward pass, from the gradients of both.

The departures from the official recipe (the mask loss's mean over a ROI's pixels, the divisor, OHEM's order on
ties, ...) are listed with their reasons in ``docs/training.md``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .assemble import ps_assemble, ps_assemble_backward
from .detect import FCISConfig, foreground_box_maps, image_rois
from .joint import class_softmax, joint_backward_arrays, joint_forward_arrays
from .losses import IGNORE, mask_loss, ohem_keep, smooth_l1, softmax_cross_entropy
from .network import backward, forward, inference_config, preprocess
from .nms import nms
from .proposals import (
    deltas_in_anchor_order,
    deltas_to_rpn_layout,
    propose,
    scores_in_anchor_order,
    scores_to_rpn_layout,
)
from .targets import anchor_targets, proposal_targets


class TrainingKernels(NamedTuple):
    """The stage functions the training step calls for its heavy work, each with the reference's signature.

    :data:`REFERENCE_TRAINING_KERNELS` holds the reference's; ``fcis_twin.accelerated.train_step.training_kernels``
    those of a backend.
    """

    nms: Callable  #: the RPN's NMS
    ps_assemble: Callable  #: assembly of the inside/outside maps and of the box maps
    ps_assemble_backward: Callable  #: its adjoint


REFERENCE_TRAINING_KERNELS = TrainingKernels(nms, ps_assemble, ps_assemble_backward)


@dataclass(frozen=True)
class LossConfig:
    """What the losses sample and weigh: the official COCO configuration's values (the keys of
    ``experiments/fcis/cfgs/resnet_v1_101_coco_fcis_end2end_ohem.yaml``, but the RPN's sigma, which is in
    ``fcis/symbols/resnet_v1_101_fcis.py``).  The proposals that reach the head are inference's
    (:attr:`fcis_twin.reference.detect.FCISConfig.proposal_settings` of the network's
    :func:`~fcis_twin.reference.network.inference_config`)."""

    rpn_batch: int = 256  #: anchors sampled per image (``RPN_BATCH_SIZE``)
    rpn_fg_fraction: float = 0.5  #: at most this fraction of them positive (``RPN_FG_FRACTION``)
    rpn_sigma: float = 3.0  #: smooth L1 of the RPN deltas
    fg_iou: float = 0.5  #: an ROI of best IoU >= this is foreground (``FG_THRESH``)
    binary_threshold: float = 0.4  #: a mask-target cell covered at least this much is inside (``BINARY_THRESH``)
    ohem_rois: int = 128  #: ROIs kept by OHEM (``BATCH_ROIS_OHEM``)
    loss_weights: tuple = (1.0, 10.0, 1.0)  #: cls, seg, box (``LOSS_WEIGHT``)


#: The official values.
DEFAULT_LOSSES = LossConfig()


class StepResult(NamedTuple):
    """Everything one training step computed; ``losses`` and ``grads`` drive the optimiser, the rest the notebooks."""

    losses: dict  #: "rpn_cls", "rpn_box", "cls", "seg", "box" (weighted as they enter the total) and "total"
    grads: dict  #: d total / d each parameter
    outputs: dict  #: the network's outputs (:func:`fcis_twin.reference.network.forward`)
    anchor_labels: np.ndarray  #: (Hf*Wf*A,) 1, 0 or IGNORE
    rois: np.ndarray  #: (R, 4) the proposals, then the ground-truth boxes
    roi_labels: np.ndarray  #: (R,) class of each ROI
    mask_targets: np.ndarray  #: (R, P, P) bool
    roi_losses: np.ndarray  #: (R,) the weighted per-ROI loss OHEM ranked
    kept: np.ndarray  #: (R,) bool, the ROIs OHEM kept


def training_step(params, scene, net_config, loss_config=DEFAULT_LOSSES, *, rng, kernels=REFERENCE_TRAINING_KERNELS,
                  x=None, inference=None):
    """Losses and gradients of one image.

    Parameters
    ----------
    params : dict of str to ndarray
        The network's weights (float32 to train, float64 for gradient checks).
    scene : Scene-like
        ``image`` (H, W, 3) uint8, ``boxes`` (G, 4), ``labels`` (G,), ``masks`` (G, H, W) bool.
    net_config : NetworkConfig
    loss_config : LossConfig
    rng : numpy.random.Generator
        Draws the anchor sample.
    kernels : TrainingKernels
        NMS and assembly; a backend's give the same losses to float32 rounding.
    x : (1, 3, H, W) ndarray, optional
        The network input (default :func:`preprocess` of the image), e.g. in float64.
    inference : FCISConfig, optional
        The inference settings the step shares, default :func:`~fcis_twin.reference.network.inference_config` of
        ``net_config``: its proposal settings, and its stride, ``k``, ``P`` and anchors, which must be the network's.

    Returns
    -------
    StepResult
    """
    cfg, lc = check_inference(net_config, inference), loss_config
    image_shape = scene.image.shape[:2]
    x = preprocess(scene.image) if x is None else x
    outputs, cache = forward(params, x, net_config)
    gt_boxes = np.asarray(scene.boxes, np.float32).reshape(-1, 4)
    anchors = cfg.anchors(outputs["seg"].shape[2:])  # (Hf*Wf*A, 4), (y, x, anchor) order
    rpn = rpn_losses(outputs, anchors, gt_boxes, image_shape, lc, rng)

    # proposals from the current RPN (no gradient flows through them), then their targets
    fg_prob = class_softmax(rpn.scores.astype(np.float32))[:, 1]
    proposals = propose(fg_prob, rpn.deltas.astype(np.float32), anchors, image_shape, **cfg.proposal_settings,
                        nms_kernel=kernels.nms)
    pt = proposal_targets(proposals.boxes, gt_boxes, scene.labels, scene.masks, output_size=cfg.output_size,
                          fg_iou=lc.fg_iou, binary_threshold=lc.binary_threshold)
    head = head_losses(outputs, pt, cfg, lc, kernels)

    losses = {**rpn.losses, **head.losses}
    losses["total"] = sum(losses.values())
    grads = backward({**rpn.grads, **head.grads}, cache, net_config)
    return StepResult({name: float(v) for name, v in losses.items()}, grads, outputs, rpn.labels, pt.rois,
                      pt.labels, pt.mask_targets, head.roi_losses, head.kept)


def check_inference(net_config, inference):
    """``inference`` (default the network's :func:`~fcis_twin.reference.network.inference_config`), checked to have
    the network's stride, ``k``, ``P`` and anchors."""
    expected = inference_config(net_config)
    if inference is None:
        return expected
    if not isinstance(inference, FCISConfig):
        raise TypeError(f"inference must be an FCISConfig, got {type(inference).__name__}")
    fields = ("stride", "group_size", "output_size", "anchor_scales", "anchor_ratios")
    differ = [f for f in fields if tuple(np.atleast_1d(getattr(inference, f))) != tuple(np.atleast_1d(
        getattr(expected, f)))]
    if differ:
        raise ValueError(f"inference must have the network's {', '.join(differ)}; build it with "
                         "inference_config(network, **overrides)")
    return inference


class RPNLosses(NamedTuple):
    """The RPN's part of a step (:func:`rpn_losses`)."""

    losses: dict  #: "rpn_cls", "rpn_box"
    grads: dict  #: of the total with respect to the outputs "rpn_cls" and "rpn_bbox"
    labels: np.ndarray  #: (Hf*Wf*A,) 1, 0 or IGNORE per anchor
    scores: np.ndarray  #: (Hf*Wf*A, 2) the (background, foreground) scores per anchor
    deltas: np.ndarray  #: (Hf*Wf*A, 4) the deltas per anchor


def rpn_losses(outputs, anchors, gt_boxes, image_shape, loss_config, rng):
    """The RPN's losses and their gradients, per anchor in the anchors' ``(y, x, a)`` order: the softmax
    cross-entropy averaged over the sampled anchors, the smooth L1 (sigma 3) of the positive anchors' deltas divided
    by the anchor batch."""
    lc = loss_config
    hf, wf = outputs["rpn_cls"].shape[2:]
    scores = scores_in_anchor_order(outputs["rpn_cls"])  # (Hf*Wf*A, bg/fg)
    deltas = deltas_in_anchor_order(outputs["rpn_bbox"])  # (Hf*Wf*A, 4)
    targets = anchor_targets(anchors, gt_boxes, image_shape, rng, batch_size=lc.rpn_batch,
                             fg_fraction=lc.rpn_fg_fraction)
    sampled = max(int((targets.labels != IGNORE).sum()), 1)
    loss, g = softmax_cross_entropy(scores, targets.labels)
    losses = {"rpn_cls": loss.sum() / sampled}
    grads = {"rpn_cls": scores_to_rpn_layout(g / sampled, (hf, wf))}
    positive = (targets.labels == 1)[:, None]
    loss, g = smooth_l1(deltas - targets.deltas.astype(deltas.dtype), lc.rpn_sigma)
    losses["rpn_box"] = np.sum(loss * positive) / lc.rpn_batch
    grads["rpn_bbox"] = deltas_to_rpn_layout(g * positive / lc.rpn_batch, (hf, wf))
    return RPNLosses(losses, grads, targets.labels, scores, deltas)


class HeadLosses(NamedTuple):
    """The FCIS head's part of a step (:func:`head_losses`)."""

    losses: dict  #: "cls", "seg", "box", weighted as they enter the total
    grads: dict  #: of the total with respect to the outputs "seg" and "bbox"
    roi_losses: np.ndarray  #: (R,) the weighted per-ROI loss OHEM ranked
    kept: np.ndarray  #: (R,) bool, the ROIs OHEM kept


def head_losses(outputs, targets, config, loss_config, kernels):
    """The head's losses and their gradients for the labelled ROIs ``targets``
    (:func:`~fcis_twin.reference.targets.proposal_targets`): assembly and the joint formulation as inference does
    them (``config`` an :class:`~fcis_twin.reference.detect.FCISConfig`), the per-ROI losses, OHEM, then the kept
    ROIs' losses averaged over them and weighted; the gradients go back through the joint formulation and assembly
    to the maps."""
    lc, pt, geometry = loss_config, targets, config.assembly_geometry
    P = config.output_size
    dtype = outputs["seg"].dtype
    rois = image_rois(pt.rois)  # (R, 5), image 0

    # assembly, joint formulation, per-ROI losses
    assembled = _assemble(kernels, outputs["seg"], rois, geometry)  # (R, 2C, P, P)
    _, cls_score, _ = joint_forward_arrays(assembled)
    fg_box_maps = foreground_box_maps(outputs["bbox"], config.group_size)  # (1, 4 k^2, Hf, Wf)
    box_bins = _assemble(kernels, fg_box_maps, rois, geometry)  # (R, 4, P, P)
    bbox_pred = box_bins.mean(axis=(2, 3))  # (R, 4); the background slot gets no loss and no gradient
    foreground = (pt.labels > 0)[:, None]
    cls_loss, cls_grad = softmax_cross_entropy(cls_score, pt.labels)
    seg_loss, seg_grad = mask_loss(assembled, pt.labels, pt.mask_targets)
    box_loss, box_grad = smooth_l1(bbox_pred - pt.deltas.astype(dtype), 1.0)
    box_loss = (box_loss * foreground).sum(axis=1)
    w_cls, w_seg, w_box = lc.loss_weights
    roi_losses = w_cls * cls_loss + w_seg * seg_loss + w_box * box_loss

    # OHEM, then the kept ROIs' losses averaged over them
    kept = ohem_keep(roi_losses, pt.labels, lc.ohem_rois) != IGNORE
    n = max(int(kept.sum()), 1)
    weight = kept / n  # (R,)
    losses = {"cls": w_cls * (cls_loss @ weight), "seg": w_seg * (seg_loss @ weight),
              "box": w_box * (box_loss @ weight)}
    # only the kept ROIs carry gradient: the backward passes run on them alone
    k, w = np.flatnonzero(kept), weight[kept]
    grad_assembled = w_seg * seg_grad[k] * w[:, None, None, None] + joint_backward_arrays(
        assembled[k], None, w_cls * cls_grad[k] * w[:, None], None)
    grad_box_bins = np.broadcast_to((w_box * box_grad[k] * foreground[k] * w[:, None] / (P * P))[:, :, None, None],
                                    (len(k), *box_bins.shape[1:]))
    grads = {"seg": _assemble_backward(kernels, grad_assembled, rois[k], outputs["seg"], geometry),
             "bbox": np.zeros_like(outputs["bbox"])}
    grads["bbox"][:, fg_box_maps.shape[1]:] = _assemble_backward(kernels, np.ascontiguousarray(grad_box_bins),
                                                                 rois[k], fg_box_maps, geometry)  # the fg slot
    return HeadLosses(losses, grads, roi_losses, kept)


def _assemble(kernels, maps, rois, geometry):
    """Assembly in the maps' dtype (the kernels work in float32; a float64 kernel is kept float64)."""
    return np.asarray(kernels.ps_assemble(maps, rois, **geometry)).astype(maps.dtype, copy=False)


def _assemble_backward(kernels, grad, rois, maps, geometry):
    return np.asarray(kernels.ps_assemble_backward(grad, rois, maps.shape, **geometry)).astype(maps.dtype,
                                                                                              copy=False)
