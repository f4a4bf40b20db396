"""Float32 scalar helpers written once and shared by the Numba-CPU code and the Numba-CUDA kernels of every stage.

The reference's float32 results come from operations each rounded on its own.  On a GPU, NVVM would contract a
product followed by a sum into one fused multiply-add (one rounding instead of two), and numba-cuda has no switch to
stop it; so every product that a sum follows goes through :func:`mul_rn`, which becomes libdevice's ``fmul_rn``
(PTX ``mul.rn.f32``, never contracted) in CUDA kernels.  On the CPU LLVM contracts nothing without fast-math flags,
and the CUDA simulator runs the plain Python function.  The CuPy kernels get the same guarantee from NVRTC's
``--fmad=false``.
"""

import numba
import numpy as np
from numba.core.extending import overload

from ._backend import cuda_simulated


def mul_rn(a, b):
    """``a * b`` rounded to float32 on its own, never fused with a following add."""
    return a * b


@overload(mul_rn, target="cpu", inline="always")
def _mul_rn_cpu(a, b):
    return lambda a, b: a * b


if not cuda_simulated():
    try:
        from numba import cuda
        from numba.cuda.extending import overload as _cuda_overload

        @_cuda_overload(mul_rn, target="cuda", inline="always")
        def _mul_rn_cuda(a, b):
            return lambda a, b: cuda.libdevice.fmul_rn(a, b)  # PTX mul.rn.f32: never contracted into an FMA
    except ImportError:  # no numba-cuda: the numba-cuda backend is not offered
        pass

_ZERO = np.float32(0)


@numba.njit(inline="always", cache=True, error_model="numpy")
def iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2):
    """IoU of two float32 boxes: :func:`fcis_twin.reference.boxes._iou`, one float32 operation at a time, in its order.

    The intersection is clamped at 0 per axis; ``inter / (area_a + area_b - inter)``, 0 when the union is 0.
    """
    iw = max(min(ax2, bx2) - max(ax1, bx1), _ZERO)
    ih = max(min(ay2, by2) - max(ay1, by1), _ZERO)
    inter = mul_rn(iw, ih)
    union = mul_rn(ax2 - ax1, ay2 - ay1) + mul_rn(bx2 - bx1, by2 - by1) - inter
    if union > _ZERO:
        return inter / union
    return _ZERO
