"""fcis_twin.accelerated.nms against fcis_twin.reference.nms on every backend: the keep indices must be identical.

NMS returns indices only, so nothing here has a tolerance: every backend repeats the float32 operations of
the reference's IoU in order (no fused multiply-add), so even boxes lying exactly at the threshold go the same
way.  Grid coordinates (tests/strategies.py) make exact ties and exact IoU values common; arbitrary float32
coordinates make the products inexact, which is where a fused multiply-add would show (on a GPU).

Without a GPU, "numba-cuda" runs under Numba's CUDA simulator (small inputs, fewer examples) and the CuPy kernels
are compiled with nvcc; the ``gpu`` tests repeat the agreement on real devices at FCIS-COCO size.
"""

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fcis_twin.accelerated import nms as acc
from fcis_twin.accelerated._backend import available_backends, cuda_simulated
from fcis_twin.accelerated._launch import CUDA_INCLUDE_DIR, cuda_source
from fcis_twin.reference import nms as ref
from fcis_twin.reference.boxes import box_iou
from fcis_twin.strategies import exact_pairs, nms_cases

HERE = [b for b in ("numba-cpu", "numba-cuda", "cupy") if b in available_backends()]
SIM = 25  # hypothesis examples per property under the CUDA simulator


def check(backend, b, s, t, labels=None):
    """The backend's keep equals the reference's: same indices, same order, int64, a NumPy array."""
    if labels is None:
        expected, got = ref.nms(b, s, t), acc.nms(b, s, t, backend=backend)
    else:
        expected, got = ref.batched_nms(b, s, labels, t), acc.batched_nms(b, s, labels, t, backend=backend)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def bench_like(rng, n, grid=True):
    """``n`` boxes clustered as proposals are (many overlaps), on the half-pixel grid or not, with tied scores."""
    centres = rng.uniform(0, 200, (max(n // 20, 1), 2))
    c = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 6, (n, 2))
    side = rng.uniform(0, 60, (n, 2))
    b = np.concatenate([c - side / 2, c + side / 2], axis=1)
    if grid:
        b = np.round(b * 2) / 2
    return b.astype(np.float32), (rng.integers(0, 64, n) / 64).astype(np.float32)


ZERO_AREA = np.float32([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 3, 3], [2, 0, 2, 5]])
SAME = np.float32([[0, 0, 4, 4]] * 5)


# --- numba-cpu: the full budget of examples ----------------------------------------------------------------------


@given(nms_cases())
@example((np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5, None))
@example((SAME, np.float32([0.5] * 5), 0.0, None))  # all tied: the lowest index survives
@example((SAME, np.float32([0.5] * 5), 1.0, None))  # IoU 1 is not > 1: all survive
@example((ZERO_AREA, np.float32([0.1, 0.2, 0.3, 0.4]), 0.0, None))  # zero-area boxes overlap nothing
@example((SAME[:2], np.float32([-0.0, 0.0]), 0.5, None))  # -0.0 and 0.0 tie: index order
@example((np.float32([[0, 0, 2, 1], [1, 0, 3, 1]]), np.float32([1, 1]), float(np.float32(1 / 3)), None))
def test_nms_numba_cpu(case):
    """numba-cpu keeps exactly the reference's boxes, ties and exact-threshold boxes included."""
    b, s, t, _ = case
    check("numba-cpu", b, s, t)


@given(nms_cases(coordinates="float"))
def test_nms_numba_cpu_float_coordinates(case):
    """numba-cpu agrees on arbitrary float32 coordinates, thresholds at a pair's exact IoU included."""
    b, s, t, _ = case
    check("numba-cpu", b, s, t)


@given(exact_pairs())
def test_nms_numba_cpu_exact_pairs(case):
    """numba-cpu rounds every IoU as the reference does: a pair at (or one step above) the threshold agrees."""
    check("numba-cpu", *case)


@given(nms_cases(labels=4))
@example((SAME, np.float32([0.5] * 5), 0.0, np.int64([1, 0, 1, 0, 2])))  # one survivor per label
def test_batched_nms_numba_cpu(case):
    """numba-cpu batched_nms keeps exactly the reference's boxes, label by label, merged by score then index."""
    b, s, t, lab = case
    check("numba-cpu", b, s, t, lab)


@given(nms_cases(max_size=20), st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=4, unique=True), st.data())
def test_batched_nms_numba_cpu_any_labels(case, values, data):
    """Labels are any int64 values, negative and huge included; only their equality matters."""
    b, s, t, _ = case
    lab = np.int64(data.draw(st.lists(st.sampled_from(values), min_size=len(b), max_size=len(b))))
    check("numba-cpu", b, s, t, lab)


@pytest.mark.parametrize("grid", [True, False])
def test_numba_cpu_large_counts(grid):
    """3000 clustered boxes with tied scores, alone and as 7 labels, agree with the reference."""
    rng = np.random.default_rng(3000)
    b, s = bench_like(rng, 3000, grid)
    for t in (0.5, float(box_iou(b[:1], b[1:2])[0, 0])):
        check("numba-cpu", b, s, t)
    check("numba-cpu", b, s, 0.3, rng.integers(0, 7, 3000))


# --- numba-cuda under the simulator (or a GPU): fewer, smaller examples -----------------------------------------


@pytest.mark.skipif("numba-cuda" not in HERE, reason="numba-cuda is not installed")
@settings(max_examples=SIM)
@given(nms_cases())
@example((SAME, np.float32([0.5] * 5), 0.0, None))
@example((ZERO_AREA, np.float32([0.1, 0.2, 0.3, 0.4]), 0.0, None))
@example((np.float32([[0, 0, 2, 1], [1, 0, 3, 1]]), np.float32([1, 1]), float(np.float32(1 / 3)), None))
def test_nms_numba_cuda(case):
    """The bitmask kernels keep exactly the reference's boxes."""
    b, s, t, _ = case
    check("numba-cuda", b, s, t)


@pytest.mark.skipif("numba-cuda" not in HERE, reason="numba-cuda is not installed")
@settings(max_examples=SIM)
@given(exact_pairs())
def test_nms_numba_cuda_exact_pairs(case):
    """The mask kernel rounds every IoU as the reference does (on a GPU: no fused multiply-add)."""
    check("numba-cuda", *case)


@pytest.mark.skipif("numba-cuda" not in HERE, reason="numba-cuda is not installed")
@settings(max_examples=SIM)
@given(nms_cases(max_size=24, labels=3))
@example((SAME, np.float32([0.5] * 5), 0.0, np.int64([1, 0, 1, 0, 2])))
def test_batched_nms_numba_cuda(case):
    """The segmented bitmask launch keeps exactly the reference's boxes: labels never suppress each other."""
    b, s, t, lab = case
    check("numba-cuda", b, s, t, lab)


@pytest.mark.skipif("numba-cuda" not in HERE, reason="numba-cuda is not installed")
@pytest.mark.parametrize("n, labels", [(70, None), (200, None), (150, 3)])
def test_numba_cuda_several_mask_words(n, labels):
    """More than 64 boxes (per label): several mask words per row, several row blocks, a padded label layout."""
    rng = np.random.default_rng(n)
    b, s = bench_like(rng, n)
    lab = None if labels is None else np.minimum(rng.integers(0, 2 * labels, n), labels - 1)  # one big label
    for t in (0.3, float(box_iou(b[:1], b[1:2])[0, 0])):
        check("numba-cuda", b, s, t, lab)


# --- every backend here: empty, degenerate and bad inputs ---------------------------------------------------------


@pytest.mark.parametrize("backend", HERE)
def test_empty(backend):
    """No boxes give an empty int64 keep on every backend."""
    for keep in (acc.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5, backend=backend),
                 acc.batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int32), 0.5, backend=backend)):
        assert keep.shape == (0,) and keep.dtype == np.int64


@pytest.mark.parametrize("backend", HERE)
@pytest.mark.parametrize("t", [0.0, 0.5, 1.0])
def test_degenerate(backend, t):
    """Zero-area boxes, identical boxes and one box agree with the reference at the extreme thresholds."""
    check(backend, ZERO_AREA, np.float32([0.1, 0.2, 0.3, 0.4]), t)
    check(backend, SAME, np.float32([0.5, 0.9, 0.5, 0.9, 0.5]), t)
    check(backend, SAME, np.float32([0.5] * 5), t, np.int64([3, 3, -1, 3, -1]))
    check(backend, SAME[:1], np.float32([2.0]), t)


def test_inputs_are_converted_and_default_backend():
    """Lists, float64 boxes and int32 labels are accepted as by the reference; backend=None picks one here."""
    b, s = [[0, 0, 4, 4], [1, 1, 5, 5], [1, 1, 5, 5]], [0.9, 0.8, 0.7]
    np.testing.assert_array_equal(acc.nms(b, s, 0.3), ref.nms(b, s, 0.3))
    lab = np.int32([7, 7, 8])
    np.testing.assert_array_equal(acc.batched_nms(np.float64(b), s, lab, 0.3), ref.batched_nms(b, s, lab, 0.3))


BOX = np.float32([[0, 0, 1, 1]])
BAD = [
    ((BOX, np.float32([np.nan]), 0.5), None),
    ((BOX, np.float32([np.inf]), 0.5), None),
    ((BOX, np.float32([0.5, 0.5]), 0.5), None),
    ((BOX, np.float32([0.5]), 1.5), None),
    ((BOX, np.float32([0.5]), -0.1), None),
    ((BOX, np.float32([0.5]), float("nan")), None),
    ((BOX, np.float32([0.5]), "0.5"), None),
    ((np.float32([[0, 0, 1]]), np.float32([0.5]), 0.5), None),
    ((np.float32([[2, 0, 1, 1]]), np.float32([0.5]), 0.5), None),
    ((np.float32([[0, 0, np.nan, 1]]), np.float32([0.5]), 0.5), None),
    ((np.zeros((1, 4), object), np.float32([0.5]), 0.5), None),
    ((BOX, np.float32([[0.5]]), 0.5), None),
    ((BOX, np.float32([0.5]), 0.5), np.float32([1.5])),
    ((BOX, np.float32([0.5]), 0.5), np.int64([1, 2])),
    ((BOX, np.float32([0.5]), 0.5), np.bool_([True])),
    ((BOX, np.float32([np.nan]), 0.5), np.float32([1.5])),  # the first bad argument wins
]


@pytest.mark.parametrize("backend", HERE)
@pytest.mark.parametrize("args, labels", BAD)
def test_bad_input_same_error(backend, args, labels):
    """Bad input raises the reference's exception, with the same message, on every backend."""
    b, s, t = args
    ref_call = (lambda: ref.nms(b, s, t)) if labels is None else (lambda: ref.batched_nms(b, s, labels, t))
    with pytest.raises((TypeError, ValueError)) as expected:
        ref_call()
    with pytest.raises(type(expected.value)) as got:
        if labels is None:
            acc.nms(b, s, t, backend=backend)
        else:
            acc.batched_nms(b, s, labels, t, backend=backend)
    assert str(got.value) == str(expected.value)


# --- the GPU layout and the CuPy kernels, without a GPU -----------------------------------------------------------


@given(nms_cases(max_size=100, labels=5))
def test_layout_with_numpy(case):
    """The segmented layout (the CuPy path's array code, run with xp=numpy) puts every label on whole blocks."""
    b, s, _, lab = case
    if len(b) == 0:
        return
    layout = acc.segmented_layout(np, b, s, lab)
    np.testing.assert_array_equal(layout.order, np.argsort(-s, kind="stable"))
    # the box of rank r sits at its padded position
    np.testing.assert_array_equal(layout.boxes[layout.rank_pos], b[layout.order])
    block = layout.rank_pos // acc.THREADS
    first, end = layout.block_first[block], layout.block_end[block]
    assert (first * acc.THREADS <= layout.rank_pos).all() and (layout.rank_pos < end).all()
    # one label per block run, in rank order within it
    for label in np.unique(lab):
        pos = layout.rank_pos[lab[layout.order] == label]
        assert (np.diff(pos) == 1).all() and pos[0] % acc.THREADS == 0
        assert len(np.unique(first[lab[layout.order] == label])) == 1
    assert layout.width == max(-(-np.sum(lab == v) // acc.THREADS) for v in np.unique(lab))


def test_gpu_capacity_is_checked():
    """More label blocks than the pass's shared memory holds raise ValueError before any launch."""
    n = (acc.SHARED_BYTES - acc.PASS_STATIC_BYTES) // 8 + 1  # one box per label: one block each
    layout = acc.segmented_layout(np, np.zeros((n, 4), np.float32), np.zeros(n, np.float32), np.arange(n))
    with pytest.raises(ValueError, match="GPU backends take at most 385024 boxes"):
        acc.launch_geometry(layout)
    assert acc.launch_geometry(layout._replace(block_first=layout.block_first[:-1]))[1] == n - 1


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cupy_source_compiles_without_fma(tmp_path):
    """The CuPy kernels compile; with --fmad=false the PTX has no fused multiply-add, without it the IoU fuses."""
    source = tmp_path / "nms.cu"
    source.write_text(cuda_source("nms"))
    ptx = {}
    for fmad in ("false", "true"):
        out = tmp_path / f"nms_{fmad}.ptx"
        subprocess.run(["nvcc", "--ptx", "-arch=sm_80", f"-I{CUDA_INCLUDE_DIR}", f"-fmad={fmad}", "-o", str(out),
                        str(source)], check=True, capture_output=True)
        ptx[fmad] = out.read_text()
    assert ".entry nms_mask" in ptx["false"] and ".entry nms_pass" in ptx["false"]
    assert "fma.rn.f32" not in ptx["false"]
    assert "fma.rn.f32" in ptx["true"]  # so the option is what keeps the products rounded


# --- real GPUs ---------------------------------------------------------------------------------------------------

GPU = ["numba-cuda", "cupy"]


def _need(backend):
    if backend not in available_backends() or (backend == "numba-cuda" and cuda_simulated()):
        pytest.skip(f"{backend} is not available on a real GPU here")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU)
@pytest.mark.parametrize("grid", [True, False])
def test_gpu_fcis_coco_nms(backend, grid):
    """6000 clustered boxes (the RPN's NMS) agree exactly, at 0.7 and at exact pair IoUs."""
    _need(backend)
    rng = np.random.default_rng(6000)
    b, s = bench_like(rng, 6000, grid)
    for t in (0.7, *(float(box_iou(b[i : i + 1], b[i + 1 : i + 2])[0, 0]) for i in range(3))):
        check(backend, b, s, t)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU)
@pytest.mark.parametrize("grid", [True, False])
def test_gpu_fcis_coco_batched_nms(backend, grid):
    """600 boxes x 80 classes (mask voting's per-class NMS) agree exactly."""
    _need(backend)
    rng = np.random.default_rng(600)
    b, _ = bench_like(rng, 600, grid)
    s = (rng.integers(0, 64, 600 * 80) / 64).astype(np.float32)
    check(backend, np.repeat(b, 80, axis=0), s, 0.3, np.tile(np.arange(1, 81), 600))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU)
@settings(max_examples=50)
@given(nms_cases(max_size=300, labels=3, coordinates="float"))
def test_gpu_agrees(backend, case):
    """The GPU kernels agree on arbitrary float32 coordinates, where a fused multiply-add would flip a bit."""
    _need(backend)
    b, s, t, lab = case
    check(backend, b, s, t)
    check(backend, b, s, t, lab)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU)
@settings(max_examples=200)
@given(exact_pairs(max_size=64))
def test_gpu_exact_pairs(backend, case):
    """On a GPU, every IoU is rounded as the reference does: no product is fused into the sums that follow."""
    _need(backend)
    check(backend, *case)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", GPU)
def test_gpu_cupy_in_cupy_out(backend):
    """CuPy inputs give a CuPy int64 keep equal to the reference's."""
    _need(backend)
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(1)
    b, s = bench_like(rng, 500, grid=False)
    lab = rng.integers(0, 4, 500)
    keep = acc.batched_nms(cupy.asarray(b), cupy.asarray(s), cupy.asarray(lab), 0.5, backend=backend)
    assert isinstance(keep, cupy.ndarray) and keep.dtype == cupy.int64
    np.testing.assert_array_equal(keep.get(), ref.batched_nms(b, s, lab, 0.5))
    keep = acc.nms(cupy.asarray(b), cupy.asarray(s), 0.5, backend=backend)
    np.testing.assert_array_equal(cupy.asnumpy(keep), ref.nms(b, s, 0.5))
