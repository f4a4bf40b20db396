r"""Joint mask prediction and classification (FCIS, Sec. 3).

Each class has an assembled pair of maps, outside and inside.  Per pixel, a softmax over the pair gives the mask
probability; the larger of the pair, averaged over the ROI, gives the class score, and a softmax over classes the
class probability.  Both sub-tasks read the same two maps, with no extra parameters.

:func:`joint_forward_arrays` and :func:`joint_backward_arrays` compute in the dtype they are given (float64 for gradient
checks); the public functions validate (:func:`check_joint_args`), convert to float32, and call them.
``joint_forward_arrays`` is written with NumPy functions only, so that it runs on a CuPy array too, through NumPy's
dispatch.
"""

from typing import NamedTuple

import numpy as np

from ._checks import as_array


class JointOutput(NamedTuple):
    """Result of :func:`joint_forward`; ``R`` ROIs, ``C`` classes including background, ``P x P`` maps."""

    mask_prob: np.ndarray  #: (R, C, P, P) float32, probability that a pixel is inside the instance
    cls_score: np.ndarray  #: (R, C) float32, mean over the ROI of the per-pixel max of the pair
    cls_prob: np.ndarray  #: (R, C) float32, softmax of ``cls_score`` over classes


def joint_forward(assembled):
    r"""Mask probabilities and class scores from assembled inside/outside maps.

    Parameters
    ----------
    assembled : (R, 2*C, P, P) float32 array_like
        Channel ``cls*2 + j``, ``j = 0`` outside, ``j = 1`` inside (the output of
        :func:`fcis_twin.reference.assemble.ps_assemble`); finite, ``C >= 1``, ``P >= 1``.

    Returns
    -------
    JointOutput
        ``mask_prob`` (R, C, P, P), ``cls_score`` (R, C) and ``cls_prob`` (R, C), all float32.

    Notes
    -----
    FCIS Sec. 3 ("joint mask prediction and classification").  With :math:`o, i` the outside and inside maps of a
    class and :math:`d = i - o` (float32),

    .. math:: \mathrm{mask\_prob} = \frac{e^{i}}{e^{o} + e^{i}} = \sigma(d), \qquad
              \mathrm{cls\_score} = \frac{1}{P^2}\sum_{p_h, p_w} \max(o, i), \qquad
              \mathrm{cls\_prob}_c = \frac{e^{s_c - m}}{\sum_{c'} e^{s_{c'} - m}}, \quad m = \max_c s_c .

    The sigmoid is written stably with :math:`e = \exp(-|d|)`: :math:`1/(1 + e)` when :math:`d \ge 0`, else
    :math:`e/(1 + e)`; this is bit for bit the two-way softmax that subtracts the larger logit.  The mean over
    ``P x P`` is accumulated in float64 and rounded once to float32.

    Examples
    --------
    >>> # one class, P = 1: inside = ln 3, outside = 0, so mask_prob = 3 / (1 + 3); a second class at (0, 0)
    >>> out = joint_forward(np.array([0, np.log(3), 0, 0], np.float32).reshape(1, 4, 1, 1))
    >>> out.mask_prob.ravel()
    array([0.75, 0.5 ], dtype=float32)
    >>> out.cls_prob  # softmax of (ln 3, 0) = (3, 1) / 4
    array([[0.75, 0.25]], dtype=float32)
    """
    return JointOutput(*joint_forward_arrays(check_joint_args(assembled)))


def joint_backward(assembled, grad_mask_prob=None, grad_cls_score=None, grad_cls_prob=None):
    r"""Gradient of a weighted sum of the :func:`joint_forward` outputs with respect to ``assembled``.

    Parameters
    ----------
    assembled : (R, 2*C, P, P) float32 array_like
        As in :func:`joint_forward`.
    grad_mask_prob : (R, C, P, P) float32 array_like, optional
    grad_cls_score : (R, C) float32 array_like, optional
    grad_cls_prob : (R, C) float32 array_like, optional
        Gradients with respect to the three outputs; ``None`` means zero.

    Returns
    -------
    grad_assembled : (R, 2*C, P, P) float32 ndarray
        Gradient of ``sum(grad_mask_prob * mask_prob) + sum(grad_cls_score * cls_score)
        + sum(grad_cls_prob * cls_prob)``.

    Notes
    -----
    :math:`\partial\,\mathrm{mask\_prob} / \partial i = -\partial\,\mathrm{mask\_prob} / \partial o = \sigma(d)
    (1 - \sigma(d)) = e / (1 + e)^2` with :math:`e = \exp(-|d|)`, exact even where :math:`\sigma(d)` rounds to 1.
    The class-score gradient is ``grad_cls_score`` plus the softmax's
    :math:`q_c (g_c - \sum_{c'} q_{c'} g_{c'})`; divided by :math:`P^2`, it goes to the larger of each
    outside/inside pair.  **On an exact tie it goes to the outside channel.**

    Examples
    --------
    >>> # tie (0, 0): mask_prob = 1/2, slope 1/4 to inside and -1/4 to outside; the class score's 1 goes outside
    >>> joint_backward(np.zeros((1, 2, 1, 1), np.float32), np.ones((1, 1, 1, 1)), np.ones((1, 1))).ravel()
    array([0.75, 0.25], dtype=float32)
    """
    x = check_joint_args(assembled)
    R, C, P = x.shape[0], x.shape[1] // 2, x.shape[2]
    grads = [
        None if g is None else _check_grad(name, g, shape)
        for name, g, shape in (
            ("grad_mask_prob", grad_mask_prob, (R, C, P, P)),
            ("grad_cls_score", grad_cls_score, (R, C)),
            ("grad_cls_prob", grad_cls_prob, (R, C)),
        )
    ]
    return joint_backward_arrays(x, *grads)


def check_joint_args(assembled, *, device=False):
    """``assembled`` as a float32 ``(R, 2*C, P, P)`` array with ``C >= 1``, ``P >= 1``, finite; the one check of the
    joint formulation, shared with the accelerated twin (``device``: a GPU array is checked where it is)."""
    x = as_array("assembled", assembled, ndim=4, device=device)
    _, c2, ph, pw = x.shape
    if c2 == 0 or c2 % 2:
        raise ValueError(f"assembled must have an even, positive channel count 2*C (outside/inside pairs), got {c2}")
    if ph != pw or ph == 0:
        raise ValueError(f"assembled must hold non-empty square P x P maps, got shape {x.shape}")
    return x


def _check_grad(name, grad, shape):
    grad = as_array(name, grad, ndim=len(shape))
    if grad.shape != shape:
        raise ValueError(f"{name} must have shape {shape} to match assembled, got {grad.shape}")
    return grad


def _split(x):
    """Outside and inside maps ``(R, C, P, P)`` of ``(R, 2*C, P, P)`` maps, and ``e = exp(-|inside - outside|)``."""
    R, C2, P, _ = x.shape
    pair = x.reshape(R, C2 // 2, 2, P, P)  # (R, C, outside/inside, P, P)
    outside, inside = pair[:, :, 0], pair[:, :, 1]
    with np.errstate(over="ignore"):  # |d| overflowing to inf still gives e = 0, the right limit
        d = inside - outside
    return outside, inside, d, np.exp(-np.abs(d))


def joint_forward_arrays(x):
    """``(mask_prob, cls_score, cls_prob)`` of checked ``(R, 2*C, P, P)`` maps, in their dtype and array module."""
    outside, inside, d, e = _split(x)
    one = x.dtype.type(1)
    mask_prob = np.where(d >= 0, one / (one + e), e / (one + e))
    cls_score = _cls_score(outside, inside)
    return mask_prob, cls_score, class_softmax(cls_score)


def _cls_score(outside, inside):
    """``(R, C)`` mean over ``P x P`` of the per-pixel max, accumulated in float64, rounded once."""
    P = outside.shape[2]
    return (np.maximum(outside, inside).sum(axis=(2, 3), dtype=np.float64) / (P * P)).astype(outside.dtype)


def class_softmax(score):
    """Softmax over the class axis of ``(R, C)`` scores, subtracting the row maximum first: ``cls_prob`` of
    :func:`joint_forward` from its ``cls_score``."""
    with np.errstate(over="ignore"):  # a spread beyond the float range gives -inf, whose exp is the right 0
        z = score - score.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def joint_backward_arrays(x, grad_mask_prob, grad_cls_score, grad_cls_prob):
    """:func:`joint_backward` of checked maps and gradients (each may be None), in their dtype: the float64 path of
    the training step's gradient checks."""
    outside, inside, d, e = _split(x)
    R, C, P, _ = outside.shape
    grad = np.zeros((R, C, 2, P, P), x.dtype)  # (R, C, outside/inside, P, P)
    if grad_mask_prob is not None:
        one = x.dtype.type(1)
        slope = grad_mask_prob * (e / ((one + e) * (one + e)))  # d mask_prob / d inside
        grad[:, :, 0] -= slope
        grad[:, :, 1] += slope
    grad_score = np.zeros((R, C), x.dtype)
    if grad_cls_score is not None:
        grad_score += grad_cls_score
    if grad_cls_prob is not None:
        q = class_softmax(_cls_score(outside, inside))
        grad_score += q * (grad_cls_prob - (q * grad_cls_prob).sum(axis=1, keepdims=True))
    per_pixel = (grad_score / x.dtype.type(P * P))[:, :, None, None]  # (R, C, 1, 1)
    inside_wins = inside > outside  # a tie goes to the outside channel
    grad[:, :, 0] += np.where(inside_wins, 0, per_pixel)
    grad[:, :, 1] += np.where(inside_wins, per_pixel, 0)
    return grad.reshape(R, 2 * C, P, P)  # channel cls*2 + j, as assembled
