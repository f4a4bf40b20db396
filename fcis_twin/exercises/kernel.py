"""The kernel exercise ``ps_assemble_kernel`` (notebook 09): position-sensitive assembly as a Numba kernel, one
output element per iteration (CPU) or per thread (CUDA).

The kernel's arguments are those of the GPU kernels of :mod:`fcis_twin.accelerated.assemble` and of the loop
template :func:`fcis_twin.reference.assemble.ps_assemble_loop`, with the output written in place::

    kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data)

``bottom_data`` (N, C_out*k*k, H, W) float32, ``rois`` (R, 5) float32, ``group_size`` and ``output_size`` int64,
``spatial_scale`` float32, ``top_data`` (R, C_out, P, P) float32 zeros.  Two kinds are accepted:

- a Numba CPU kernel, ``@numba.njit(parallel=True)`` with ``for index in numba.prange(top_data.size)``: called
  as it is (on Linux in a child process, so that a kernel that never ends or writes outside an array is reported,
  not fatal);
- a CUDA kernel, ``@cuda.jit`` with ``index = cuda.grid(1)``: launched with one thread per output element, 256 to a
  block, on the GPU or under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` before numba is imported).

Every element must equal the loop template's bit for bit: a row-major float32 sum divided by the float32 bin area,
the bin edges computed in float32.
"""

import numba
import numpy as np

from ..accelerated.assemble import assemble_element
from ..reference.assemble import ps_assemble_loop, roi_bins
from .assembly import ASSEMBLY_MISTAKES, PS_ASSEMBLE, assemble_with
from .comparing import compare_array
from .limits import is_cuda_kernel
from .records import Exercise, Pitfall
from .timing import twins


@numba.njit(parallel=True, cache=True)
def ps_assemble_kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data):
    """Position-sensitive assembly, one output element per iteration of a parallel loop.

    The element (:func:`fcis_twin.accelerated.assemble.assemble_element`) is the CUDA kernel's, one Python body
    compiled for both: flat ``index`` to ``(n, c_out, ph, pw)``, the bin's float32 edges, its part cell's channel,
    a row-major float32 sum divided by the float32 area.
    """
    for index in numba.prange(top_data.size):
        assemble_element(index, bottom_data, rois, group_size, output_size, spatial_scale, top_data)


def kernel_arguments(case):
    """The kernel's arguments for a case of the assembly: the maps, the ROIs, ``k`` and ``P`` as int64, the scale as
    float32, and a zeroed output."""
    score_maps, rois = case.args
    kw = case.kwargs
    k, P, s = np.int64(kw["group_size"]), np.int64(kw["output_size"]), np.float32(kw["spatial_scale"])
    C_out = score_maps.shape[1] // (k * k)
    top_data = np.zeros((rois.shape[0], C_out, P, P), np.float32)
    return score_maps, rois, k, P, s, top_data


def launch_kernel(fn, case):
    """Run a kernel on a case and return its ``top_data``: a CUDA kernel with one thread per output element, any
    other (a Numba CPU kernel, a plain Python function) called with the arguments."""
    args = kernel_arguments(case)
    top_data = args[-1]
    if not is_cuda_kernel(fn):
        fn(*args)
        return top_data
    from ..accelerated._launch import blocks, cuda, launch

    if top_data.size:
        device = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
        launch(fn, blocks(top_data.size))(*device)
        top_data = device[-1].copy_to_host()
    return top_data


launch_kernel.kernel_arguments = kernel_arguments  # the types a Numba CPU kernel is compiled for


def _compare(case, expected, got):
    return compare_array("top_data", expected, got)


def _kernel_pitfall(mistake, convention, options):
    """A Python function with the kernel's arguments that fills ``top_data`` as a kernel with one convention changed
    would: the loop template's float32 sums, but for ``options`` (those of :func:`.assembly.assemble_with`)."""
    def kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data):
        top_data[...] = assemble_with(bottom_data, rois, group_size=int(group_size), output_size=int(output_size),
                                      spatial_scale=spatial_scale, **{"float32_sum": True, **options})
    return Pitfall(mistake, convention, kernel)


PS_ASSEMBLE_KERNEL = Exercise(
    name="ps_assemble_kernel",
    notebook="09_kernels_cpu_vs_gpu",
    summary="position-sensitive assembly as a Numba kernel: one output element per prange iteration or CUDA thread",
    solution=ps_assemble_kernel,
    cases=PS_ASSEMBLE.cases,
    compare=_compare,
    pitfalls=(
        _kernel_pitfall("sums the bin in float64 (out_sum = 0.0 is a float64 in Numba)",
                        "sum the bin in float32, row-major, as the loop template: out_sum = np.float32(0)",
                        {"float32_sum": False}),
        *(_kernel_pitfall(*m) for m in ASSEMBLY_MISTAKES[:5]),
    ),
    draw=PS_ASSEMBLE.draw,
    workload=PS_ASSEMBLE.workload,
    workload_size=PS_ASSEMBLE.workload_size,
    backends=twins("assemble", "ps_assemble"),
    call=launch_kernel,
    max_examples=100,
    readings=(assemble_element, ps_assemble_loop, roi_bins),
)


EXERCISES = [PS_ASSEMBLE_KERNEL]
