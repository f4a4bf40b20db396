"""Agreement of ``fcis_twin.accelerated.assemble`` with ``fcis_twin.reference.assemble`` on every backend, forward
and backward.

Tolerances, once per kind of result (all float32):

- forward, every backend, against the loop template: **exact**.  Each output element is the template's float32
  operations in the template's order (bin edges with every product rounded, a row-major float32 sum, one division);
  the CUDA code multiplies with ``__fmul_rn`` and the CUDA C is compiled with ``--fmad=false``, so no fused
  multiply-add intervenes.
- forward, against the vectorized reference: the reference's own loop-versus-vectorized bound
  (``tests/test_assemble.py``): ``(H*W + 2) u mean|x|`` for the float32 sum and division, plus the float64
  summed-area table's error.
- backward, Numba-CPU against the loop template: **exact** (race-free, every pixel's additions in the template's
  order).  GPU backends add atomically in the order the threads arrive: two float32 sums of the same ``m`` terms in
  different orders each lie within ``(m - 1) u sum|terms|`` of the exact sum, so they differ by at most
  ``2 m u sum|terms|``, with ``m <= R*P*P`` and ``sum|terms|`` the backward pass of ``|grad|``.  Against the
  vectorized reference the order-free bound of the reference's tests applies unchanged.
"""

import ctypes
import functools
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fcis_twin.accelerated import assemble as acc
from fcis_twin.accelerated._backend import available_backends, cuda_simulated
from fcis_twin.accelerated._launch import NVRTC_OPTIONS, THREADS_PER_BLOCK, blocks, cuda_source
from fcis_twin.reference._checks import as_array
from fcis_twin.reference.assemble import (
    check_backward_args,
    ps_assemble,
    ps_assemble_backward,
    ps_assemble_backward_loop,
    ps_assemble_loop,
    summation_error_bound,
)
from fcis_twin.strategies import assembly_kwargs as _kw

from .fakes import StrictDeviceArray, strictly_on_device
from .test_assemble import ETA32, U32, diff_error, grads_of, problems, sat_error, within_tolerance
from .test_assemble_finite import numba_cpu_kernel

SIMULATED = "numba-cuda" in available_backends() and cuda_simulated()
#: Backends that this machine runs with small hypothesis inputs: Numba-CPU and, under the simulator or on a GPU,
#: Numba-CUDA (the CuPy kernels are exercised below by nvcc and a host build of their source).
needs_numba_cuda = pytest.mark.skipif("numba-cuda" not in available_backends(), reason="numba-cuda is not available")
#: Small grids are normal here; on a real GPU numba-cuda warns about their occupancy.
small_grids = pytest.mark.filterwarnings("ignore:Grid size")
#: Fewer examples where each launch runs its threads in Python (the simulator); ROIs, channels and P are small in
#: problems() (at most 4 * 2 * 6 * 6 = 288 threads a launch).
SIMULATOR_EXAMPLES = 40


@st.composite
def backward_problems(draw):
    """A problem of :func:`tests.test_assemble.problems` and a gradient of its output shape."""
    problem = draw(problems())
    return problem, draw(grads_of(problem))


def _grid(N=1, C=1, H=4, W=4):
    """Score maps holding 0, 1, 2, ... in C order (with the defaults x[0, 0, h, w] = 4h + w)."""
    return np.arange(N * C * H * W, dtype=np.float32).reshape(N, C, H, W)


#: Hand-picked problems kept as explicit examples: empty ROI sets, empty maps, zero-size, outside, partly outside and
#: huge ROIs, P not a multiple of k, a second image, coordinates on the .5 rounding edge, a feature stride of 16, and a
#: bin edge that a fused multiply-add would move.
EXAMPLES = [
    (np.zeros((1, 18, 3, 3), np.float32), np.zeros((0, 5), np.float32), _kw(3, 4, 1.0)),
    (np.zeros((2, 4, 0, 5), np.float32), np.float32([[1, 0, 0, 4, 4]]), _kw(2, 3, 1.0)),
    (_grid(), np.float32([[0, 1, 2, 1, 2], [0, 10, 10, 14, 14], [0, -2, -2, 2, 2]]), _kw(1, 2, 1.0)),
    (_grid(), np.float32([[0, -1e6, -1e6, 1e6, 1e6]]), _kw(1, 2, 1.0)),
    (_grid(2, 8), np.float32([[1, 0, 0, 4, 4], [0, 0.5, 0.5, 3.5, 2.5]]), _kw(2, 3, 1.0)),
    (_grid(1, 9, 5, 6), np.float32([[0, -0.5, 2.5, 1.5, 4.5], [0, 0, 0, 96, 80]]), _kw(3, 5, 1 / 16)),
    # the last bin's end 7 * fl(8/7) + (-3) is 5.0 rounded twice but 5.0000005 fused: ceil 5, not 6
    (_grid(1, 1, 8, 8), np.float32([[0, -2.5, -2.5, 5, 5]]), _kw(1, 7, 1.0)),
]
def _ramp_grad(problem):
    """A gradient of the problem's output shape, evenly spaced in [-3, 3]."""
    x, rois, kw = problem
    shape = (rois.shape[0], x.shape[1] // kw["group_size"] ** 2, kw["output_size"], kw["output_size"])
    return np.linspace(-3, 3, int(np.prod(shape))).astype(np.float32).reshape(shape)


BACKWARD_EXAMPLES = [(p, _ramp_grad(p)) for p in EXAMPLES]


def _with_examples(examples):
    """Apply every one of ``examples`` as a hypothesis ``@example``."""

    def decorate(test):
        for e in examples:
            test = example(e)(test)
        return test

    return decorate


# ----------------------------------------------------------------------------------------------- checks


def _agree_forward(problem, backend):
    x, rois, kw = problem
    out = acc.ps_assemble(x, rois, **kw, backend=backend)
    assert type(out) is np.ndarray and out.dtype == np.float32
    np.testing.assert_array_equal(out, ps_assemble_loop(x, rois, **kw))
    within_tolerance(out, ps_assemble(x, rois, **kw), summation_error_bound(x, rois, **kw))


def _agree_backward(problem, grad, backend, *, exact):
    x, rois, kw = problem
    out = acc.ps_assemble_backward(grad, rois, x.shape, **kw, backend=backend)
    assert type(out) is np.ndarray and out.dtype == np.float32 and out.shape == x.shape
    loop = ps_assemble_backward_loop(grad, rois, x.shape, **kw)
    spread_abs = ps_assemble_backward(np.abs(grad), rois, x.shape, **kw).astype(np.float64)
    m = rois.shape[0] * kw["output_size"] ** 2
    if exact:
        np.testing.assert_array_equal(out, loop)
    else:  # another order of the same float32 terms (see the module docstring)
        within_tolerance(out, loop, 2 * m * U32 * (spread_abs * (1 + U32) + diff_error(grad, x.shape)))
    tol = (m + 2) * U32 * spread_abs + diff_error(grad, x.shape) + (m + 1) * ETA32
    within_tolerance(out, ps_assemble_backward(grad, rois, x.shape, **kw), tol)


def _agree_adjoint(problem, grad, backend):
    """<A x, g> == <x, A^T g> within the reference tests' bound (``test_backward_is_the_adjoint``)."""
    x, rois, kw = problem
    H, W = x.shape[2:]
    R, P = rois.shape[0], kw["output_size"]
    B = np.vdot(ps_assemble(np.abs(x), rois, **kw).astype(np.float64), np.abs(grad).astype(np.float64))
    sum_g, sum_x = np.abs(grad.astype(np.float64)).sum(), np.abs(x.astype(np.float64)).sum()
    tol = (H * W + R * P * P + 4) * U32 * B + sat_error(x) * sum_g + diff_error(grad, x.shape) * sum_x
    tol += (R * P * P + 2) * ETA32 * (sum_g + sum_x)
    lhs = np.vdot(acc.ps_assemble(x, rois, **kw, backend=backend).astype(np.float64), grad.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), acc.ps_assemble_backward(grad, rois, x.shape, **kw, backend=backend))
    assert abs(lhs - rhs) <= tol


# ----------------------------------------------------------------------------------------------- Numba-CPU


@pytest.mark.parametrize("kernel", ["direct", "channels-last"])
@given(problem=problems())
@_with_examples(EXAMPLES)
def test_numba_cpu_forward_matches_loop(kernel, problem):
    """Both Numba-CPU kernels assemble bit for bit as the loop template, and within the bound of the vectorized
    reference."""
    with numba_cpu_kernel(kernel):
        _agree_forward(problem, "numba-cpu")


@given(backward_problems())
@_with_examples(BACKWARD_EXAMPLES)
def test_numba_cpu_backward_matches_loop(problem_and_grad):
    """Numba-CPU's backward pass agrees bit for bit with the loop template (race-free, same addition order)."""
    _agree_backward(*problem_and_grad, "numba-cpu", exact=True)


@given(backward_problems())
@_with_examples(BACKWARD_EXAMPLES)
def test_numba_cpu_backward_is_the_adjoint(problem_and_grad):
    """Numba-CPU's forward and backward passes are adjoint."""
    _agree_adjoint(*problem_and_grad, "numba-cpu")


@pytest.mark.parametrize("P", [6, 7])
def test_numba_cpu_many_rois(P):
    """A thousand ROIs over two images, P a multiple of k = 3 and not: loop-exact on a sample, bounded on all."""
    rng = np.random.default_rng(P)
    x = rng.uniform(-100, 100, (2, 2 * 9, 30, 40)).astype(np.float32)
    R = 1000
    lo = rng.uniform(-100, 700, (R, 2))  # image pixels at s = 1/16: partly and wholly outside the 30 x 40 map too
    hi = lo + rng.uniform(0, 300, (R, 2)) * (rng.random((R, 1)) < 0.9)  # a tenth of zero size
    rois = np.column_stack([rng.integers(0, 2, R), lo, hi]).astype(np.float32)
    kw = _kw(3, P, 1 / 16)
    grad = rng.uniform(-100, 100, (R, 2, P, P)).astype(np.float32)
    sample = rng.choice(R, 20, replace=False)
    _agree_forward((x, rois[sample], kw), "numba-cpu")
    _agree_backward((x, rois[sample], kw), grad[sample], "numba-cpu", exact=True)
    out = acc.ps_assemble(x, rois, **kw, backend="numba-cpu")
    np.testing.assert_array_equal(out[sample], ps_assemble_loop(x, rois[sample], **kw))
    with numba_cpu_kernel("direct" if R * P * P >= acc.CHANNELS_LAST * 9 * 30 * 40 * 2 else "channels-last"):
        np.testing.assert_array_equal(acc.ps_assemble(x, rois, **kw, backend="numba-cpu"), out)  # the other kernel
    within_tolerance(out, ps_assemble(x, rois, **kw), summation_error_bound(x, rois, **kw))
    g = acc.ps_assemble_backward(grad, rois, x.shape, **kw, backend="numba-cpu")
    m = R * P * P
    spread_abs = ps_assemble_backward(np.abs(grad), rois, x.shape, **kw).astype(np.float64)
    tol = (m + 2) * U32 * spread_abs + diff_error(grad, x.shape) + (m + 1) * ETA32
    within_tolerance(g, ps_assemble_backward(grad, rois, x.shape, **kw), tol)


def test_reusing_layouts_transposes_each_map_once(monkeypatch):
    """detect's assembly makes one channels-last copy per map for all its passes, keeps the last two maps, and
    assembles as ps_assemble does."""
    made = []
    transpose = acc._channels_last_cpu
    monkeypatch.setattr(acc, "_channels_last_cpu", lambda x, kk: made.append(x) or transpose(x, kk))
    rng = np.random.default_rng(0)
    maps = [rng.standard_normal((1, 2 * 9, 6, 7)).astype(np.float32) for _ in range(3)]
    rois = np.float32([[0, 0, 0, 50, 40], [0, 10, 20, 90, 100]])
    kw = _kw(3, 4, 1 / 16)
    assemble = acc.reusing_layouts("numba-cpu")
    with numba_cpu_kernel("channels-last"):
        for i in (0, 1, 0, 1, 2, 0):  # map 0 is copied again only after maps 1 and 2 came
            np.testing.assert_array_equal(assemble(maps[i], rois, **kw), ps_assemble_loop(maps[i], rois, **kw))
    assert [next(i for i, m in enumerate(maps) if m is x) for x in made] == [0, 1, 2, 0]


# ----------------------------------------------------------------------------------------------- Numba-CUDA


@needs_numba_cuda
@small_grids
@settings(max_examples=SIMULATOR_EXAMPLES)
@given(problems())
@_with_examples(EXAMPLES)
def test_numba_cuda_forward_matches_loop(problem):
    """Numba-CUDA assembles bit for bit as the loop template (``__fmul_rn``: no fused multiply-add)."""
    _agree_forward(problem, "numba-cuda")


@needs_numba_cuda
@small_grids
@settings(max_examples=SIMULATOR_EXAMPLES)
@given(backward_problems())
@_with_examples(BACKWARD_EXAMPLES)
def test_numba_cuda_backward_matches_loop(problem_and_grad):
    """Numba-CUDA's atomic backward pass agrees with the loop template up to the order of its float32 additions."""
    _agree_backward(*problem_and_grad, "numba-cuda", exact=False)


@needs_numba_cuda
@small_grids
@settings(max_examples=SIMULATOR_EXAMPLES)
@given(backward_problems())
def test_numba_cuda_backward_is_the_adjoint(problem_and_grad):
    """Numba-CUDA's forward and backward passes are adjoint."""
    _agree_adjoint(*problem_and_grad, "numba-cuda")


# ----------------------------------------------------------------------------------------------- CuPy source

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found")
needs_cxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not found")


@needs_nvcc
def test_cuda_source_compiles_without_fma(tmp_path):
    """The CuPy kernels' CUDA C compiles with -fmad=false, and its PTX holds no fused multiply-add."""
    src = tmp_path / "assemble.cu"
    src.write_text(cuda_source("assemble"))
    ptx = tmp_path / "assemble.ptx"
    done = subprocess.run(["nvcc", "--ptx", "-arch=sm_80", *NVRTC_OPTIONS, "-o", str(ptx), str(src)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = ptx.read_text()
    assert ".entry ps_assemble_forward" in text and ".entry ps_assemble_backward" in text
    assert "fma.rn.f32" not in text


#: Host stand-ins for the CUDA built-ins that the kernels use, so that g++ can build CUDA_SOURCE and the tests can
#: run its kernels one thread at a time in launch order (blocks, then threads).
HOST_SHIM = """
#include <math.h>
struct HostDim { unsigned int x; };
static HostDim blockIdx, blockDim, threadIdx;
#define __global__
#define __device__ static
static float atomicAdd(float* address, float val) { float old = *address; *address = old + val; return old; }
"""
HOST_LAUNCH = """
#define LAUNCH(kernel)                                                                                      \\
extern "C" void launch_##kernel(long long blocks, const float* in, const float* rois, long long total,       \\
    int channels, int height, int width, int output_dim, int group_size, int output_size, float s, float* out) \\
{                                                                                                           \\
    blockDim.x = THREADS;                                                                                   \\
    for (long long b = 0; b < blocks; ++b)                                                                  \\
        for (unsigned int t = 0; t < THREADS; ++t) {                                                        \\
            blockIdx.x = (unsigned int)b; threadIdx.x = t;                                                  \\
            kernel(in, rois, total, channels, height, width, output_dim, group_size, output_size, s, out);  \\
        }                                                                                                   \\
}
LAUNCH(ps_assemble_forward)
LAUNCH(ps_assemble_backward)
"""


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    """The CuPy CUDA C source built for the host by g++ (no contraction), as ``(forward, backward)`` launchers."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    folder = tmp_path_factory.mktemp("host_kernels")
    src, lib = folder / "assemble_host.cpp", folder / "assemble_host.so"
    src.write_text(HOST_SHIM + cuda_source("assemble") + HOST_LAUNCH)
    done = subprocess.run(["g++", "-O2", "-ffp-contract=off", "-fPIC", "-shared", f"-DTHREADS={THREADS_PER_BLOCK}",
                           "-o", str(lib), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    dll = ctypes.CDLL(str(lib))
    launchers = []
    for name in ("launch_ps_assemble_forward", "launch_ps_assemble_backward"):
        f = getattr(dll, name)
        f.restype = None
        f.argtypes = [ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong] + [ctypes.c_int] * 6 + [
            ctypes.c_float, ctypes.c_void_p]
        launchers.append(f)
    return launchers


def _host_launch(launcher, threads, data, rois, output, input_shape, k, P, s):
    """Launch a host-built kernel with ``threads`` threads, as the CuPy path of the accelerated assembly does."""
    data, rois = np.ascontiguousarray(data, np.float32), np.ascontiguousarray(rois, np.float32)
    N, channels, height, width = input_shape
    output_dim = channels // (k * k)
    launcher(blocks(threads), data.ctypes.data, rois.ctypes.data, threads, channels, height, width, output_dim,
             k, P, s, output.ctypes.data)
    return output


@needs_cxx
@given(problems())
@_with_examples(EXAMPLES)
def test_cuda_source_forward_matches_loop(host_kernels, problem):
    """The CuPy forward kernel's source, run on the host in launch order, agrees bit for bit with the loop."""
    x, rois, kw = problem
    k, P, s = kw["group_size"], kw["output_size"], np.float32(kw["spatial_scale"])
    out = np.full((rois.shape[0], x.shape[1] // (k * k), P, P), np.nan, np.float32)  # every element is written
    _host_launch(host_kernels[0], out.size, x, rois, out, x.shape, k, P, s)
    np.testing.assert_array_equal(out, ps_assemble_loop(x, rois, **kw))


@needs_cxx
@given(backward_problems())
@_with_examples(BACKWARD_EXAMPLES)
def test_cuda_source_backward_matches_loop(host_kernels, problem_and_grad):
    """The CuPy backward kernel's source, run on the host in launch order, agrees bit for bit with the loop."""
    (x, rois, kw), grad = problem_and_grad
    k, P, s = kw["group_size"], kw["output_size"], np.float32(kw["spatial_scale"])
    out = np.zeros(x.shape, np.float32)
    _host_launch(host_kernels[1], grad.size, grad, rois, out, x.shape, k, P, s)
    # launch order is (n, c_out, ph, pw), so each pixel's additions come in the loop template's order
    np.testing.assert_array_equal(out, ps_assemble_backward_loop(grad, rois, x.shape, **kw))


# ----------------------------------------------------------------------------------------------- bad inputs

MAPS = np.zeros((1, 4, 3, 3), np.float32)
ROI = [[0, 0, 0, 2, 2]]
BAD_FORWARD = [
    (np.zeros((4, 3, 3)), ROI, _kw(2, 2, 1.0)),
    (np.zeros((1, 5, 3, 3)), ROI, _kw(2, 2, 1.0)),
    (np.full((1, 4, 3, 3), np.nan), ROI, _kw(2, 2, 1.0)),
    (np.full((1, 4, 3, 3), np.inf), [[0, 0, 0, 2]], _kw(2, 2, 1.0)),
    ([["a"]], ROI, _kw(2, 2, 1.0)),
    (MAPS, [[0, 0, 0, 2]], _kw(2, 2, 1.0)),
    (MAPS, [[1, 0, 0, 2, 2]], _kw(2, 2, 1.0)),
    (MAPS, [[0.5, 0, 0, 2, 2]], _kw(2, 2, 1.0)),
    (MAPS, [[0, 3, 0, 2, 2]], _kw(2, 2, 1.0)),
    (MAPS, [[0, 0, 0, 2, np.inf]], _kw(2, 2, 1.0)),
    (MAPS, [[0, 0, 0, 2, 1e38]], _kw(2, 2, 1.0)),
    (MAPS, ROI, _kw(0, 2, 1.0)),
    (MAPS, ROI, _kw(2.0, 2, 1.0)),
    (MAPS, ROI, _kw(2, True, 1.0)),
    (MAPS, ROI, _kw(2, 2, 0.0)),
    (MAPS, ROI, _kw(2, 2, float("inf"))),
    (MAPS, ROI, _kw(2, 2, "1")),
]
BAD_BACKWARD = [
    (np.zeros((1, 1, 3, 3)), ROI, (1, 4, 3, 3)),
    (np.zeros((2, 1, 2, 2)), ROI, (1, 4, 3, 3)),
    (np.zeros((1, 1, 2)), ROI, (1, 4, 3, 3)),
    (np.full((1, 1, 2, 2), np.nan), ROI, (1, 4, 3, 3)),
    (np.full((2, 1, 2, 2), np.nan), ROI, (1, 4, 3, 3)),  # non-finite and the wrong shape: finiteness first
    (np.full((1, 1, 2, 2), np.nan), ROI, (1, 6, 3, 3)),  # a bad shape before a non-finite gradient
    (np.zeros((1, 1, 2, 2)), ROI, (1, 4, 3)),
    (np.zeros((1, 1, 2, 2)), ROI, (1, 6, 3, 3)),
    (np.zeros((1, 1, 2, 2)), ROI, (1, 4, -3, 3)),
    (np.zeros((1, 1, 2, 2)), ROI, 4),
    (np.zeros((1, 1, 2, 2)), ROI, (1, 4, 3.0, 3)),
    (np.zeros((1, 1, 2, 2)), [[1, 0, 0, 2, 2]], (1, 4, 3, 3)),
    (np.zeros((1, 1, 2, 2)), ROI, (1, 4, 3, 3), _kw(2, 2, -1.0)),
]
LOCAL_BACKENDS = [b for b in ("numba-cpu", "numba-cuda") if b in available_backends()]


def _error(call):
    """The exception that ``call()`` raises (it must raise)."""
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    return info.value


def _same_error(got, expected):
    assert type(got) is type(expected) and str(got) == str(expected)


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize("maps, rois, kw", BAD_FORWARD)
def test_forward_rejects_bad_input_as_the_reference(backend, maps, rois, kw):
    """Every backend raises the reference's exception, with its message, for bad score maps, ROIs and parameters."""
    expected = _error(lambda: ps_assemble(maps, rois, **kw))
    _same_error(_error(lambda: acc.ps_assemble(maps, rois, **kw, backend=backend)), expected)


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize("case", BAD_BACKWARD)
def test_backward_rejects_bad_input_as_the_reference(backend, case):
    """Every backend raises the reference's exception, with its message, for bad gradients, ROIs and shapes."""
    grad, rois, shape, kw = (*case, _kw(2, 2, 1.0))[:4]
    expected = _error(lambda: ps_assemble_backward(grad, rois, shape, **kw))
    _same_error(_error(lambda: acc.ps_assemble_backward(grad, rois, shape, **kw, backend=backend)), expected)


@pytest.mark.parametrize("maps", [c[0] for c in BAD_FORWARD[:4]] + [MAPS, np.zeros((1, 4, 3, 3), np.float64)])
def test_device_check_of_maps_is_the_reference_check(maps):
    """Score maps checked where they live (a stand-in GPU array) raise as on the host, or stay there as float32."""
    try:
        expected = as_array("score_maps", maps, ndim=4, finite="converted")
    except (TypeError, ValueError) as error:
        _same_error(_error(lambda: as_array("score_maps", strictly_on_device(maps), ndim=4, finite="converted",
                                            device=True)), error)
    else:
        got = as_array("score_maps", strictly_on_device(maps), ndim=4, finite="converted", device=True)
        assert isinstance(got, StrictDeviceArray) and got.dtype == np.float32
        np.testing.assert_array_equal(got.get(), expected)


@pytest.mark.parametrize("case", BAD_BACKWARD + [(np.ones((1, 1, 2, 2), np.float64), ROI, (1, 4, 3, 3))])
def test_device_check_of_backward_is_the_reference_check(case):
    """The backward check of a grad on a (stand-in) GPU raises, or passes, as the host check does."""
    grad, rois, shape, kw = (*case, _kw(2, 2, 1.0))[:4]
    args = (grad, np.asarray(rois, np.float32), shape, kw["group_size"], kw["output_size"], kw["spatial_scale"])
    device_args = (strictly_on_device(grad) if isinstance(grad, np.ndarray) else grad, *args[1:])
    try:
        expected = check_backward_args(*args)
    except (TypeError, ValueError) as error:
        _same_error(_error(lambda: check_backward_args(*device_args, device=True)), error)
    else:
        got = check_backward_args(*device_args, device=True)
        assert isinstance(got[0], StrictDeviceArray)
        np.testing.assert_array_equal(got[0].get(), expected[0])
        assert got[2:] == expected[2:]


def test_unknown_or_missing_backend_is_rejected():
    """An unknown backend name, or one this machine lacks, raises a ValueError naming it."""
    with pytest.raises(ValueError, match="backend"):
        acc.ps_assemble(MAPS, ROI, **_kw(2, 2, 1.0), backend="tpu")
    missing = [b for b in ("numba-cuda", "cupy") if b not in available_backends()]
    for backend in missing:
        with pytest.raises(ValueError, match="not available"):
            acc.ps_assemble_backward(np.zeros((1, 1, 2, 2)), ROI, (1, 4, 3, 3), **_kw(2, 2, 1.0), backend=backend)


def test_default_backend_returns_numpy():
    """backend=None runs the fastest available backend and returns NumPy for NumPy input."""
    x = _grid()
    out = acc.ps_assemble(x, [[0, 0, 0, 4, 4]], **_kw(1, 2, 1.0))
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, [[[[2.5, 4.5], [10.5, 12.5]]]])


# ------------------------------------------------------------------------------------- real GPU, FCIS-COCO size


@pytest.fixture(scope="module")
def fcis_coco():
    """One FCIS-COCO assembly pass: (1, 2*81*7*7, 38, 63) maps, 300 ROIs (some outside or degenerate), k 7, P 21."""
    rng = np.random.default_rng(2017)
    x = rng.standard_normal((1, 2 * 81 * 49, 38, 63)).astype(np.float32)
    H, W = 38 * 16, 63 * 16  # image pixels
    lo = rng.uniform(-64, [W, H], (300, 2))
    hi = lo + rng.uniform(0, 500, (300, 2))
    hi[:10] = lo[:10]  # zero size
    rois = np.column_stack([np.zeros(300), lo, hi]).astype(np.float32)
    grad = rng.standard_normal((300, 2 * 81, 21, 21)).astype(np.float32)
    return x, rois, _kw(7, 21, 1 / 16), grad


GPU_BACKENDS = ["numba-cuda", "cupy"]


def _real_gpu(backend):
    if backend not in available_backends() or (backend == "numba-cuda" and cuda_simulated()):
        pytest.skip(f"{backend} has no real GPU here")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_gpu_forward_at_fcis_coco_size(fcis_coco, backend):
    """Both GPU backends assemble an FCIS-COCO pass bit for bit as Numba-CPU (itself the loop template's result)."""
    _real_gpu(backend)
    x, rois, kw, _ = fcis_coco
    expected = acc.ps_assemble(x, rois, **kw, backend="numba-cpu")
    out = acc.ps_assemble(x, rois, **kw, backend=backend)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, expected)
    within_tolerance(out, ps_assemble(x, rois, **kw), summation_error_bound(x, rois, **kw))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_gpu_backward_at_fcis_coco_size(fcis_coco, backend):
    """Both GPU backends' atomic backward passes agree with Numba-CPU up to the order of the float32 additions."""
    _real_gpu(backend)
    x, rois, kw, grad = fcis_coco
    expected = acc.ps_assemble_backward(grad, rois, x.shape, **kw, backend="numba-cpu")
    out = acc.ps_assemble_backward(grad, rois, x.shape, **kw, backend=backend)
    assert type(out) is np.ndarray
    m = rois.shape[0] * kw["output_size"] ** 2
    spread_abs = ps_assemble_backward(np.abs(grad), rois, x.shape, **kw).astype(np.float64)
    within_tolerance(out, expected, 2 * m * U32 * (spread_abs * (1 + U32) + diff_error(grad, x.shape)))
    tol = (m + 2) * U32 * spread_abs + diff_error(grad, x.shape) + (m + 1) * ETA32
    within_tolerance(out, ps_assemble_backward(grad, rois, x.shape, **kw), tol)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_gpu_cupy_arrays_in_and_out(fcis_coco, backend):
    """CuPy inputs stay on the device and give CuPy results, equal to those for NumPy inputs."""
    _real_gpu(backend)
    cupy = pytest.importorskip("cupy")
    x, rois, kw, grad = fcis_coco
    out = acc.ps_assemble(cupy.asarray(x), cupy.asarray(rois), **kw, backend=backend)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_array_equal(out.get(), acc.ps_assemble(x, rois, **kw, backend="numba-cpu"))
    g = acc.ps_assemble_backward(cupy.asarray(grad), cupy.asarray(rois), x.shape, **kw, backend=backend)
    assert isinstance(g, cupy.ndarray) and g.shape == x.shape and g.dtype == cupy.float32


@pytest.mark.gpu
@small_grids
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_gpu_cupy_bad_input_as_the_reference(backend):
    """Non-finite or misshapen CuPy arrays raise the reference's errors, checked on the device."""
    _real_gpu(backend)
    cupy = pytest.importorskip("cupy")
    for maps, rois, kw in BAD_FORWARD[:4]:
        expected = _error(functools.partial(ps_assemble, maps, rois, **kw))
        _same_error(_error(functools.partial(acc.ps_assemble, cupy.asarray(maps), rois, **kw, backend=backend)),
                    expected)
    kw = _kw(2, 2, 1.0)
    for grad, rois, shape in BAD_BACKWARD[:6]:
        expected = _error(functools.partial(ps_assemble_backward, grad, rois, shape, **kw))
        call = functools.partial(acc.ps_assemble_backward, cupy.asarray(grad), rois, shape, **kw, backend=backend)
        _same_error(_error(call), expected)
