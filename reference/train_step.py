r"""One FCIS training step on one image: forward, targets, losses, OHEM, and every gradient back to the weights.

The step follows the official FCIS training graph (``fcis/symbols/resnet_v1_101_fcis.py``, ``is_train``) and its
OHEM operator (``fcis/operator_py/box_annotator_ohem.py``):

1. the network's four outputs (:func:`fcis_twin.reference.network.forward`);
2. RPN: anchor targets, the softmax loss averaged over the sampled anchors, the smooth L1 (sigma 3) of the positive
   anchors divided by the anchor batch;
3. proposals from the RPN's current outputs (no gradient flows through them), then proposal targets: the ground
   truth joins the ROIs; every ROI gets a class, box deltas and, if foreground, a ``P x P`` mask target;
4. assembly of the inside/outside maps and of the box maps for every ROI; the joint formulation gives the class
   scores; per ROI, the classification loss, the mask loss (averaged over its pixels) and the box loss;
5. OHEM: the 128 ROIs of highest weighted loss ``1 * cls + 10 * seg + 1 * box`` are kept;
6. the kept ROIs' losses, each averaged over the kept ROIs, weighted 1, 10 and 1; their gradients go back through
   the joint formulation (the max routes the class gradient to the winner of each pair) and through assembly
   (``ps_assemble_backward``) to the maps, then through the network.

One departure from the official graph: its mask loss adds up the per-pixel losses of the kept ROIs and divides by
128; here each ROI's mask loss is the mean over its ``P^2`` pixels (the value OHEM ranks in both), so ``seg`` is on
the scale of ``cls`` and weight 10 means what it says.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .anchors import anchor_base, shift_anchors
from .assemble import ps_assemble, ps_assemble_backward
from .joint import class_softmax, joint_backward_arrays, joint_forward_arrays
from .losses import IGNORE, mask_loss, ohem_keep, smooth_l1, softmax_cross_entropy
from .network import backward, forward, preprocess
from .nms import nms
from .proposals import propose
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
    """What the losses sample and weigh; the official configuration's values (``TRAIN.*``)."""

    rpn_batch: int = 256  #: anchors sampled per image (``RPN_BATCH_SIZE``)
    rpn_fg_fraction: float = 0.5
    rpn_sigma: float = 3.0  #: smooth L1 of the RPN deltas
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300  #: proposals per image that reach the head
    rpn_nms_threshold: float = 0.7
    min_size: int = 2
    fg_iou: float = 0.5  #: an ROI of best IoU >= this is foreground
    binary_threshold: float = 0.4  #: a mask-target cell covered at least this much is inside
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
                  x=None):
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

    Returns
    -------
    StepResult
    """
    cfg, lc = net_config, loss_config
    k, P, A, stride = cfg.group_size, cfg.output_size, cfg.num_anchors, cfg.stride
    height, width = scene.image.shape[:2]
    x = preprocess(scene.image) if x is None else x
    outputs, cache = forward(params, x, cfg)
    dtype = outputs["seg"].dtype
    hf, wf = outputs["seg"].shape[2:]
    gt_boxes = np.asarray(scene.boxes, np.float32).reshape(-1, 4)
    losses, grads = {}, {}

    # --- RPN: per anchor, in the anchors' (y, x, a) order
    anchors = shift_anchors(anchor_base(stride, cfg.anchor_ratios, cfg.anchor_scales), (hf, wf), stride)
    scores = outputs["rpn_cls"][0].reshape(2, A, hf, wf).transpose(2, 3, 1, 0).reshape(-1, 2)  # (Hf*Wf*A, bg/fg)
    deltas = outputs["rpn_bbox"][0].reshape(A, 4, hf, wf).transpose(2, 3, 0, 1).reshape(-1, 4)  # (Hf*Wf*A, 4)
    targets = anchor_targets(anchors, gt_boxes, (height, width), rng, batch_size=lc.rpn_batch,
                             fg_fraction=lc.rpn_fg_fraction)
    sampled = max(int((targets.labels != IGNORE).sum()), 1)
    loss, g = softmax_cross_entropy(scores, targets.labels)
    losses["rpn_cls"] = loss.sum() / sampled
    grads["rpn_cls"] = (g / sampled).reshape(hf, wf, A, 2).transpose(3, 2, 0, 1).reshape(1, 2 * A, hf, wf)
    positive = (targets.labels == 1)[:, None]
    loss, g = smooth_l1(deltas - targets.deltas.astype(dtype), lc.rpn_sigma)
    losses["rpn_box"] = np.sum(loss * positive) / lc.rpn_batch
    grads["rpn_bbox"] = (g * positive / lc.rpn_batch).reshape(hf, wf, A, 4).transpose(2, 3, 0, 1).reshape(
        1, 4 * A, hf, wf)

    # --- proposals from the current RPN (no gradient), then their targets
    fg_prob = class_softmax(scores.astype(np.float32))[:, 1]
    proposals = propose(fg_prob, deltas.astype(np.float32), anchors, (height, width), pre_nms_top_n=lc.pre_nms_top_n,
                        post_nms_top_n=lc.post_nms_top_n, nms_threshold=lc.rpn_nms_threshold,
                        min_size=lc.min_size, nms_kernel=kernels.nms)
    pt = proposal_targets(proposals.boxes, gt_boxes, scene.labels, scene.masks, output_size=P, fg_iou=lc.fg_iou,
                          binary_threshold=lc.binary_threshold)
    rois = np.concatenate([np.zeros((len(pt.rois), 1), np.float32), pt.rois], axis=1)  # (R, 5), image 0
    geometry = dict(group_size=k, output_size=P, spatial_scale=1.0 / stride)

    # --- the head: assembly, joint formulation, per-ROI losses
    assembled = _assemble(kernels, outputs["seg"], rois, geometry)  # (R, 2C, P, P)
    _, cls_score, _ = joint_forward_arrays(assembled)
    fg_box_maps = np.ascontiguousarray(outputs["bbox"][:, 4 * k * k :])  # the foreground slot's 4 k^2 channels
    box_bins = _assemble(kernels, fg_box_maps, rois, geometry)  # (R, 4, P, P)
    bbox_pred = box_bins.mean(axis=(2, 3))  # (R, 4); the background slot gets no loss and no gradient
    foreground = (pt.labels > 0)[:, None]
    cls_loss, cls_grad = softmax_cross_entropy(cls_score, pt.labels)
    seg_loss, seg_grad = mask_loss(assembled, pt.labels, pt.mask_targets)
    box_loss, box_grad = smooth_l1(bbox_pred - pt.deltas.astype(dtype), 1.0)
    box_loss = (box_loss * foreground).sum(axis=1)
    w_cls, w_seg, w_box = lc.loss_weights
    roi_losses = w_cls * cls_loss + w_seg * seg_loss + w_box * box_loss

    # --- OHEM, then the kept ROIs' losses averaged over them
    kept = ohem_keep(roi_losses, pt.labels, lc.ohem_rois) != IGNORE
    n = max(int(kept.sum()), 1)
    weight = kept / n  # (R,)
    losses["cls"] = w_cls * (cls_loss @ weight)
    losses["seg"] = w_seg * (seg_loss @ weight)
    losses["box"] = w_box * (box_loss @ weight)
    grad_assembled = w_seg * seg_grad * weight[:, None, None, None] + joint_backward_arrays(
        assembled, None, w_cls * cls_grad * weight[:, None], None)
    grad_box_bins = np.broadcast_to((w_box * box_grad * foreground * weight[:, None] / (P * P))[:, :, None, None],
                                    box_bins.shape)
    grads["seg"] = _assemble_backward(kernels, grad_assembled, rois, outputs["seg"], geometry)
    grads["bbox"] = np.zeros_like(outputs["bbox"])
    grads["bbox"][:, 4 * k * k :] = _assemble_backward(kernels, np.ascontiguousarray(grad_box_bins), rois,
                                                       fg_box_maps, geometry)
    losses["total"] = sum(losses.values())

    return StepResult({name: float(v) for name, v in losses.items()}, backward(grads, cache, cfg), outputs,
                      targets.labels, pt.rois, pt.labels, pt.mask_targets, roi_losses, kept)


def _assemble(kernels, maps, rois, geometry):
    """Assembly in the maps' dtype (the kernels work in float32; a float64 kernel is kept float64)."""
    return np.asarray(kernels.ps_assemble(maps, rois, **geometry)).astype(maps.dtype, copy=False)


def _assemble_backward(kernels, grad, rois, maps, geometry):
    return np.asarray(kernels.ps_assemble_backward(grad, rois, maps.shape, **geometry)).astype(maps.dtype,
                                                                                              copy=False)
