r"""The joint formulation on a backend: the twin of :mod:`fcis_twin.reference.joint` (forward).

Numba-CPU and Numba-CUDA run one ``(ROI, class)`` pair per thread: over its ``P x P`` pixels, ``d = inside -
outside`` and ``e = exp(-|d|)`` in float32, ``mask_prob = 1 / (1 + e)`` where ``d >= 0`` else ``e / (1 + e)``, and
the float64 sum of ``max(outside, inside)``, divided by ``P * P`` and rounded once to ``cls_score``.  ``cls_prob`` is
the reference's :func:`~fcis_twin.reference.joint.class_softmax` of that score.  CuPy runs the reference's own array
code on the device.

Agreement with the reference: ``cls_score`` and ``cls_prob`` are the reference's exactly whenever the float64 sums
are (they are exact for float32 terms within a factor :math:`2^{29}` of one another; the reference sums pairwise,
the kernels in row-major order).  ``mask_prob`` may differ in the last bits: NumPy and the kernels' ``exp`` are
different float32 implementations, each within an ulp or two of the true value, so ``mask_prob`` agrees within a
relative ``2**-20``, which ``tests/test_joint_agreement.py`` checks.
"""

import math

import numba
import numpy as np

from ..reference.joint import JointOutput, check_joint_args, class_softmax, joint_forward_arrays
from ._backend import cupy_array, like, resolve_backend, to_host, to_numba_device
from ._launch import blocks, cpu_kernel, cuda, kernel, launch


def joint_forward(assembled, *, backend=None):
    """Mask probabilities and class scores from assembled inside/outside maps, on the chosen backend.

    The twin of :func:`fcis_twin.reference.joint.joint_forward`: the same argument and errors; ``cls_score`` and
    ``cls_prob`` as the reference's, ``mask_prob`` within a relative ``2**-20`` of it (module docstring).

    Parameters
    ----------
    assembled : (R, 2*C, P, P) float32 array
        NumPy or CuPy (checked where it is).
    backend : {None, "numba-cpu", "numba-cuda", "cupy"}
        ``None`` picks the fastest available (:func:`fcis_twin.accelerated.resolve_backend`).

    Returns
    -------
    JointOutput
        NumPy or CuPy arrays, as ``assembled``.
    """
    backend = resolve_backend(backend)
    x = check_joint_args(assembled, device=True)
    if backend == "cupy":
        return JointOutput(*(like(a, assembled) for a in joint_forward_arrays(cupy_array(x))))
    R, C2, P, _ = x.shape
    if backend == "numba-cpu":
        mask_prob, cls_score = _joint_numba_cpu(np.ascontiguousarray(to_host(x)), R, C2 // 2, P)
    else:  # device arrays: like() hands them to CuPy without a copy, or makes the one copy to the host
        mask_prob, cls_score = _joint_cuda(to_numba_device(x), R, C2 // 2, P)
    mask_prob, cls_score = like(mask_prob, assembled), like(cls_score, assembled)
    return JointOutput(mask_prob, cls_score, class_softmax(cls_score))  # the softmax runs where cls_score is


def _joint_numba_cpu(x, R, C, P):
    mask_prob = np.empty((R, C, P, P), np.float32)
    cls_score = np.empty((R, C), np.float32)
    _joint_cpu(x, mask_prob, cls_score)
    return mask_prob, cls_score


def _joint_cuda(x, R, C, P):
    mask_prob = cuda.device_array((R, C, P, P), np.float32)
    cls_score = cuda.device_array((R, C), np.float32)
    if R * C:
        launch(_joint_kernel, blocks(R * C))(x, mask_prob, cls_score)
    return mask_prob, cls_score


def _pair(x, r, c, mask_prob):
    """Pair ``(r, c)``: its ``P x P`` mask probabilities written, the mean of its per-pixel max returned (float32)."""
    P = x.shape[2]
    one = np.float32(1)
    total = np.float64(0)  # float64 in compiled code and in the CUDA simulator alike
    for ph in range(P):
        for pw in range(P):
            outside = x[r, 2 * c, ph, pw]
            inside = x[r, 2 * c + 1, ph, pw]
            d = inside - outside
            e = np.float32(math.exp(-abs(d)))
            mask_prob[r, c, ph, pw] = one / (one + e) if d >= 0 else e / (one + e)
            total += np.float64(max(outside, inside))
    return np.float32(total / (P * P))


_pair_cpu = numba.njit(inline="always", cache=True, error_model="numpy")(_pair)


@cpu_kernel(error_model="numpy")
def _joint_cpu(x, mask_prob, cls_score):
    """One ``(ROI, class)`` pair per parallel iteration."""
    C = cls_score.shape[1]
    for t in numba.prange(cls_score.shape[0] * C):
        r, c = t // C, t % C
        cls_score[r, c] = _pair_cpu(x, r, c, mask_prob)


_pair_device = _pair if cuda is None else cuda.jit(device=True)(_pair)


@kernel
def _joint_kernel(x, mask_prob, cls_score):
    """One ``(ROI, class)`` pair per thread."""
    t = cuda.grid(1)
    C = cls_score.shape[1]
    if t < cls_score.shape[0] * C:
        r, c = t // C, t % C
        cls_score[r, c] = _pair_device(x, r, c, mask_prob)
