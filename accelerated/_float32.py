"""Float32 scalar helpers written once and shared by the Numba-CPU code and the Numba-CUDA kernels of every stage:
:func:`iou` (NMS and voting) and the bilinear sampling of a mask, :func:`axis_coord`, :func:`lerp` and
:func:`bilinear` (paste and voting).  ``common.cuh`` spells the same functions in CUDA C for the CuPy kernels.

The reference's float32 results come from operations each rounded on its own.  On a GPU, NVVM would contract a
product followed by a sum into one fused multiply-add (one rounding instead of two), and numba-cuda has no switch to
stop it; so every product that a sum follows goes through :func:`mul_rn`, which becomes libdevice's ``fmul_rn``
(PTX ``mul.rn.f32``, never contracted) in CUDA kernels.  On the CPU LLVM contracts nothing without fast-math flags,
and the CUDA simulator runs the plain Python function.  The CuPy kernels get the same guarantee from NVRTC's
``--fmad=false``.
"""

import math

import numba
import numpy as np
from numba.core.extending import overload

from ._backend import cuda_simulated
from ._launch import cuda


def mul_rn(a, b):
    """``a * b`` rounded to float32 on its own, never fused with a following add."""
    return a * b


@overload(mul_rn, target="cpu", inline="always")
def _mul_rn_cpu(a, b):
    return lambda a, b: a * b


if cuda is not None and not cuda_simulated():
    try:
        from numba.cuda.extending import overload as _cuda_overload

        @_cuda_overload(mul_rn, target="cuda", inline="always")
        def _mul_rn_cuda(a, b):
            return lambda a, b: cuda.libdevice.fmul_rn(a, b)  # PTX mul.rn.f32: never contracted into an FMA
    except ImportError:  # numba's own CUDA target, without the numba-cuda package: not offered (see _backend)
        pass


_ZERO = np.float32(0)


@numba.njit(inline="always", cache=True, error_model="numpy")
def iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2):
    """IoU of two float32 boxes: the reference's formula (:mod:`fcis_twin.reference.boxes`), one float32 operation
    at a time, in its order.

    The intersection is clamped at 0 per axis; ``inter / (area_a + area_b - inter)``, 0 when the union is 0.
    """
    iw = max(min(ax2, bx2) - max(ax1, bx1), _ZERO)
    ih = max(min(ay2, by2) - max(ay1, by1), _ZERO)
    inter = mul_rn(iw, ih)
    union = mul_rn(ax2 - ax1, ay2 - ay1) + mul_rn(bx2 - bx1, by2 - by1) - inter
    if union > _ZERO:
        return inter / union
    return _ZERO


@numba.njit(cache=True)
def axis_coord(offset, p, size):
    """:func:`fcis_twin.reference.paste.axis_coord`: cells ``i0, i1`` and the float32 weight ``a`` of ``i1`` for pixel
    ``offset`` of a ``size``-pixel box side on a ``p``-cell mask axis."""
    u = (np.float32(offset) + np.float32(0.5)) * np.float32(p) / np.float32(size) - np.float32(0.5)
    u = min(max(u, np.float32(0)), np.float32(p - 1))
    i0 = int(math.floor(u))
    return i0, min(i0 + 1, p - 1), u - np.float32(i0)


@numba.njit(cache=True)
def lerp(v0, v1, a):
    """:func:`fcis_twin.reference.paste.lerp`: ``fl(fl((1 - a) * v0) + fl(a * v1))`` in float32."""
    v0, v1, a = np.float32(v0), np.float32(v1), np.float32(a)  # the CUDA simulator may hand over Python floats
    return mul_rn(np.float32(1) - a, v0) + mul_rn(a, v1)


@numba.njit(cache=True)
def bilinear(m00, m01, m10, m11, ay, ax):
    """:func:`fcis_twin.reference.paste.bilinear`: cells ``m[v0, u0], m[v0, u1], m[v1, u0], m[v1, u1]``, rows first."""
    return lerp(lerp(m00, m10, ay), lerp(m01, m11, ay), ax)
