r"""The losses of FCIS training, each per sample with its gradient, and the OHEM choice of hard ROIs.

Every loss returns one value per sample (an anchor, an ROI) and the gradient of each value with respect to the
inputs of its sample; the training step weights, normalises and sums them.  Per-sample values are what online hard
example mining (:func:`ohem_keep`) ranks.  The functions compute in the dtype they are given: float32 for training,
float64 for the finite-difference checks of ``tests/test_losses.py``.

The official FCIS code (``fcis/symbols/resnet_v1_101_fcis.py`` and ``fcis/operator_py/box_annotator_ohem.py``)
uses: an RPN softmax averaged over the sampled anchors and a smooth L1 with :math:`\sigma = 3`; a classification
softmax averaged over the kept ROIs; a per-pixel two-way softmax on the ground-truth class's outside/inside pair of
foreground ROIs; a box smooth L1 with :math:`\sigma = 1`; weights 1, 10 and 1; OHEM ranking ROIs by the weighted
sum of their three losses, the mask loss averaged over its ``P x P`` pixels.
"""

import numpy as np

#: A label that takes no part in a loss (unsampled anchors, ROIs that OHEM leaves out).
IGNORE = -1


def softmax_cross_entropy(scores, labels):
    r"""Softmax cross-entropy of each row of scores against its label.

    Parameters
    ----------
    scores : (M, K) float ndarray
        Unnormalised scores (logits).
    labels : (M,) int ndarray
        In ``[0, K)``, or :data:`IGNORE`.

    Returns
    -------
    loss : (M,) ndarray
        :math:`-\log \mathrm{softmax}(s)_y`; 0 where the label is ignored.
    grad : (M, K) ndarray
        :math:`\partial\, loss_m / \partial s_m = \mathrm{softmax}(s_m) - \mathrm{onehot}(y_m)`; 0 rows where ignored.

    Examples
    --------
    >>> loss, grad = softmax_cross_entropy(np.array([[0.0, 0.0], [5.0, 1.0]]), np.array([1, IGNORE]))
    >>> loss.round(4), grad
    (array([0.6931, 0.    ]), array([[ 0.5, -0.5],
           [ 0. ,  0. ]]))
    """
    labels = np.asarray(labels)
    shifted = scores - scores.max(axis=1, keepdims=True)  # (M, K), the same softmax without overflow
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    used = labels != IGNORE
    rows = np.flatnonzero(used)
    loss = np.zeros(scores.shape[0], scores.dtype)
    loss[rows] = -log_prob[rows, labels[rows]]
    grad = np.exp(log_prob)
    grad[rows, labels[rows]] -= 1
    grad[~used] = 0
    return loss, grad


def smooth_l1(diff, sigma=1.0):
    r"""Smooth L1 of each element, as in Fast R-CNN with the official code's :math:`\sigma`.

    .. math:: f(x) = \begin{cases} 0.5\, (\sigma x)^2 & |x| < 1/\sigma^2 \\ |x| - 0.5 / \sigma^2 & \text{else}
              \end{cases}

    Parameters
    ----------
    diff : float ndarray
        Prediction minus target.
    sigma : float > 0
        The quadratic zone is ``|x| < 1 / sigma**2``.

    Returns
    -------
    loss, grad : ndarrays of the shape of ``diff``
        ``f(x)`` and ``f'(x)``.

    Examples
    --------
    >>> smooth_l1(np.array([0.5, -2.0]))
    (array([0.125, 1.5  ]), array([ 0.5, -1. ]))
    """
    s2 = sigma * sigma
    quadratic = np.abs(diff) < 1 / s2
    loss = np.where(quadratic, 0.5 * s2 * diff * diff, np.abs(diff) - 0.5 / s2)
    grad = np.where(quadratic, s2 * diff, np.sign(diff))
    return loss.astype(diff.dtype), grad.astype(diff.dtype)


def mask_loss(assembled, labels, mask_targets):
    r"""Per-pixel two-way softmax loss on the ground-truth class's (outside, inside) pair, averaged per ROI.

    Parameters
    ----------
    assembled : (R, 2*C, P, P) float ndarray
        Channel ``c*2 + j``, ``j = 0`` outside, ``j = 1`` inside (:func:`fcis_twin.reference.assemble.ps_assemble`).
    labels : (R,) int ndarray
        The ground-truth class of each ROI, 0 for background, or :data:`IGNORE`.
    mask_targets : (R, P, P) bool ndarray
        The ROI's target mask; read only for foreground ROIs.

    Returns
    -------
    loss : (R,) ndarray
        The mean over the ``P x P`` pixels of :math:`-\log p_t`, with
        :math:`p = \mathrm{softmax}(\text{outside}, \text{inside})`; 0 for background and ignored ROIs.
    grad : (R, 2*C, P, P) ndarray
        :math:`\partial\, loss_r / \partial\, \text{assembled}_r`: non-zero only on the pair of the ROI's class,
        ``(p_in - t) / P^2`` on inside and its negative on outside.

    Examples
    --------
    >>> loss, grad = mask_loss(np.zeros((1, 4, 1, 1)), np.array([1]), np.ones((1, 1, 1), bool))
    >>> loss.round(4), grad[0, :, 0, 0]  # p_in = 1/2 where the target is inside: -log(1/2)
    (array([0.6931]), array([ 0. ,  0. ,  0.5, -0.5]))
    """
    labels = np.asarray(labels)
    num_rois, _, size, _ = assembled.shape
    loss = np.zeros(num_rois, assembled.dtype)
    grad = np.zeros_like(assembled)
    for r in np.flatnonzero(labels > 0):
        c = labels[r]
        d = assembled[r, 2 * c + 1] - assembled[r, 2 * c]  # (P, P) inside minus outside: the inside logit
        t = mask_targets[r].astype(assembled.dtype)
        # -log sigmoid(d) where t = 1, -log sigmoid(-d) where t = 0, written without overflow
        loss[r] = np.mean(np.logaddexp(0, -d) * t + np.logaddexp(0, d) * (1 - t))
        g = (0.5 * (1 + np.tanh(0.5 * d)) - t) / (size * size)  # (sigmoid(d) - t) / P^2
        grad[r, 2 * c + 1] = g
        grad[r, 2 * c] = -g
    return loss, grad


def ohem_keep(losses, labels, batch_size):
    """Online hard example mining: the ``batch_size`` ROIs of highest loss keep their labels, the rest are ignored.

    Parameters
    ----------
    losses : (R,) float ndarray
        Each ROI's weighted loss (the official code: ``w_cls * cls + w_seg * seg + w_box * box``).
    labels : (R,) int ndarray
    batch_size : int >= 1
        ROIs kept per image (128 in the official configuration).

    Returns
    -------
    labels_ohem : (R,) int ndarray
        ``labels`` where the ROI is among the ``batch_size`` highest losses, :data:`IGNORE` elsewhere.  Equal losses
        keep the lower index first.

    Examples
    --------
    >>> ohem_keep(np.array([0.1, 2.0, 0.5, 2.0]), np.array([1, 0, 2, 3]), 2)
    array([-1,  0, -1,  3])
    """
    order = np.argsort(-np.asarray(losses), kind="stable")  # descending loss, ties by index
    labels_ohem = np.full(len(order), IGNORE, np.int64)
    kept = order[:batch_size]
    labels_ohem[kept] = np.asarray(labels)[kept]
    return labels_ohem
