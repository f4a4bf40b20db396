"""Launch plumbing shared by every stage's GPU kernels, written once.

- the guarded ``numba.cuda`` import (:data:`cuda` is None without numba-cuda; its backend is then never offered) and
  the decorators that make a Numba-CUDA kernel or device function of a plain function (:func:`kernel`,
  :func:`device_function`);
- the block sizes, each with its reason, and the one block-count helper (:func:`blocks`);
- :func:`launch`, a configured Numba-CUDA launch;
- the CuPy side: the CUDA C sources beside the modules (``<stage>.cu``, which include ``common.cuh``) with the
  named fields of :func:`cuda_defines` in front, compiled by NVRTC once per device (:func:`cupy_module`);
- device helpers that kernels of two stages call: :func:`owner`, :func:`fill_kernel`;
- the numba-cpu side: :func:`cpu_kernel`, which makes a parallel Numba kernel of a plain function that is safe to
  call from forked children and from several threads at once (see :func:`choose_threading_layer`).
"""

import functools
import os
import threading
import warnings

import numba

from ..reference.assemble import MIN_ROI_SIZE, ROI_BATCH, ROI_X1, ROI_X2, ROI_Y1, ROI_Y2
from ..reference.paste import (
    REGION_BOTTOM,
    REGION_FIELDS,
    REGION_H,
    REGION_LEFT,
    REGION_RIGHT,
    REGION_TOP,
    REGION_W,
    REGION_X1,
    REGION_Y1,
)
from ..reference.voting import (
    EXTENT_FIELDS,
    EXTENT_X_MAX,
    EXTENT_X_MIN,
    EXTENT_Y_MAX,
    EXTENT_Y_MIN,
    WINDOW_BOTTOM,
    WINDOW_FIELDS,
    WINDOW_LEFT,
    WINDOW_RIGHT,
    WINDOW_TOP,
)

try:
    from numba import cuda
except ImportError:  # numba without its CUDA target: the "numba-cuda" backend is not offered
    cuda = None

#: Threads per block of every flat launch (one output element per thread): eight 32-thread warps, and few enough
#: registers per thread that any GPU keeps several such blocks on each multiprocessor.
THREADS_PER_BLOCK = 256
#: Threads per block of the NMS mask kernel: one bit per box in a 64-bit mask word, so that a block compares 64 row
#: boxes (one per thread) with 64 column boxes.
NMS_THREADS = 64
#: Threads of the one-block NMS pass: they stage 64 ranks at a time into shared memory for its one walking thread.
NMS_PASS_THREADS = 64
#: Shared memory a block gets without opting in; it bounds the NMS pass's array of removed bits.
SHARED_BYTES = 48 * 1024
#: NVRTC options of every CuPy kernel: no fused multiply-add, so every product is rounded before it is added.
NVRTC_OPTIONS = ("--fmad=false",)


def blocks(count, threads=THREADS_PER_BLOCK):
    """Blocks of ``threads`` threads that cover ``count`` threads of a flat launch."""
    return (int(count) + threads - 1) // threads


def launch(kernel, grid, block=THREADS_PER_BLOCK, shared=0):
    """``kernel[grid, block, 0, shared]``, without numba-cuda's low-occupancy warning: the NMS pass is one block by
    design, and a few detections make only a few blocks."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Grid size \d+ will likely result in GPU under-utilization")
        return kernel[grid, block, 0, shared]


def kernel(fn):
    """``fn`` as a Numba-CUDA kernel (compiled on its first launch); ``fn`` itself without numba-cuda."""
    return fn if cuda is None else cuda.jit(fn)


def device_function(fn):
    """``fn`` as a Numba-CUDA device function; ``fn`` itself without numba-cuda."""
    return fn if cuda is None else cuda.jit(device=True)(fn)


# --- CuPy: CUDA C sources, compiled once per device ----------------------------------------------------------------


def cuda_defines():
    """``#define`` lines of the named fields and sizes the CUDA C shares with the Python side, from their one source."""
    names = dict(
        ROI_BATCH=ROI_BATCH, ROI_X1=ROI_X1, ROI_Y1=ROI_Y1, ROI_X2=ROI_X2, ROI_Y2=ROI_Y2, ROI_FIELDS=5,
        REGION_Y1=REGION_Y1, REGION_X1=REGION_X1, REGION_H=REGION_H, REGION_W=REGION_W, REGION_TOP=REGION_TOP,
        REGION_LEFT=REGION_LEFT, REGION_BOTTOM=REGION_BOTTOM, REGION_RIGHT=REGION_RIGHT, REGION_FIELDS=REGION_FIELDS,
        WINDOW_TOP=WINDOW_TOP, WINDOW_LEFT=WINDOW_LEFT, WINDOW_BOTTOM=WINDOW_BOTTOM, WINDOW_RIGHT=WINDOW_RIGHT,
        WINDOW_FIELDS=WINDOW_FIELDS, EXTENT_X_MIN=EXTENT_X_MIN, EXTENT_Y_MIN=EXTENT_Y_MIN,
        EXTENT_X_MAX=EXTENT_X_MAX, EXTENT_Y_MAX=EXTENT_Y_MAX, EXTENT_FIELDS=EXTENT_FIELDS,
        NMS_THREADS=NMS_THREADS, NMS_PASS_THREADS=NMS_PASS_THREADS,
    )
    lines = [f"#define {name} {value}" for name, value in names.items()]
    lines.append(f"#define MIN_ROI_SIZE {float(MIN_ROI_SIZE)!r}f")
    return "\n".join(lines) + "\n"


#: The folder of the CUDA C sources, the include path of their ``#include "common.cuh"``.
CUDA_INCLUDE_DIR = os.path.dirname(os.path.abspath(__file__))


def cuda_source(stage):
    """The CUDA C that NVRTC compiles for ``stage``: :func:`cuda_defines`, then ``<stage>.cu`` (which includes
    ``common.cuh`` from :data:`CUDA_INCLUDE_DIR` where it needs the shared device functions)."""
    with open(os.path.join(CUDA_INCLUDE_DIR, f"{stage}.cu")) as source:
        return cuda_defines() + source.read()


_MODULES = {}  # (device id, stage) -> cupy.RawModule


def cupy_module(stage):
    """The compiled CuPy module of ``stage``'s CUDA C on the current device, compiled there once."""
    import cupy

    key = (cupy.cuda.runtime.getDevice(), stage)
    if key not in _MODULES:
        options = (*NVRTC_OPTIONS, f"-I{CUDA_INCLUDE_DIR}")
        _MODULES[key] = cupy.RawModule(code=cuda_source(stage), options=options)
    return _MODULES[key]


# --- device helpers shared by the stages' Numba-CUDA kernels -------------------------------------------------------


@device_function
def owner(offsets, t):
    """The segment ``d`` with ``offsets[d] <= t < offsets[d + 1]`` that flat thread ``t`` works for (binary search;
    empty segments are never returned)."""
    lo, hi = 0, offsets.shape[0] - 1  # invariant: offsets[lo] <= t < offsets[hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offsets[mid] <= t:
            lo = mid
        else:
            hi = mid
    return lo


@kernel
def fill_kernel(flat, value):
    """``flat[:] = value``, one element per thread."""
    i = cuda.grid(1)
    if i < flat.shape[0]:
        flat[i] = value


# --- numba-cpu: parallel kernels that forked children and threads may call -----------------------------------------


def choose_threading_layer():
    """Ask Numba for a fork-safe threading layer, unless the process has chosen one or already launched one.

    Numba's parallel kernels run on a threading layer picked at their first launch.  Its default on Linux wheels is
    GNU OpenMP, which kills a child process started with ``fork`` (multiprocessing's default there, and what data
    loaders use) once the parent has run a parallel region.  ``"forksafe"`` picks TBB where it is installed and
    otherwise the built-in workqueue, both safe across ``fork``; the workqueue is not safe for concurrent calls,
    which :func:`cpu_kernel` serialises.  A layer set through ``NUMBA_THREADING_LAYER`` or
    ``numba.config.THREADING_LAYER`` is the user's and is left alone.  Returns the layer asked for, or None.
    """
    if numba.config.THREADING_LAYER != "default":
        return None
    try:
        numba.threading_layer()  # raises ValueError while no layer has been launched
    except ValueError:
        numba.config.THREADING_LAYER = "forksafe"
        return "forksafe"
    return None


choose_threading_layer()

#: Held by every call of a :func:`cpu_kernel`: one parallel region at a time in this process, as the workqueue
#: layer requires.  Each call is parallel itself, so threads lose little by taking turns.
_PARALLEL_LOCK = threading.Lock()


def _new_lock_in_child():
    """A forked child gets a fresh lock: another thread of the parent may have held it at the fork."""
    global _PARALLEL_LOCK
    _PARALLEL_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def cpu_kernel(**options):
    """Decorator: ``fn`` as a parallel Numba kernel (``numba.njit(parallel=True, cache=True, **options)``) whose
    calls hold :data:`_PARALLEL_LOCK`.  The plain function stays reachable as ``.py_func``, as on a dispatcher, and
    the Numba dispatcher as ``.dispatcher`` (for its ``parallel_diagnostics``, say)."""
    def decorate(fn):
        dispatcher = numba.njit(parallel=True, cache=True, **options)(fn)

        @functools.wraps(fn)
        def call(*args):
            with _PARALLEL_LOCK:
                return dispatcher(*args)

        call.py_func = fn
        call.dispatcher = dispatcher
        return call

    return decorate
