"""The joint formulation on every backend (``fcis_twin.accelerated.joint``) against the reference's.

Tolerances: ``cls_score`` and ``cls_prob`` **exactly** (the float64 sums of float32 terms are exact here: the
drawn values lie within a factor ``2**29`` of one another or are 0); ``mask_prob`` within a relative ``2**-20``, the
room two float32 ``exp`` implementations of an ulp or two each leave after ``1 / (1 + e)`` or ``e / (1 + e)``.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings

from fcis_twin.accelerated import joint as accel
from fcis_twin.accelerated._backend import available_backends, cuda_simulated
from fcis_twin.reference.joint import JointOutput, joint_forward
from fcis_twin.strategies import assembled_maps

BACKENDS = available_backends()
#: Relative bound of ``mask_prob`` against the reference (module docstring).
MASK_RTOL = 2.0**-20


def assert_agrees(backend, x):
    got, want = accel.joint_forward(x, backend=backend), joint_forward(x)
    assert isinstance(got, JointOutput)
    for a, b in zip(got, want, strict=True):
        assert type(a) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(got.cls_score, want.cls_score)
    np.testing.assert_array_equal(got.cls_prob, want.cls_prob)
    np.testing.assert_allclose(got.mask_prob, want.mask_prob, rtol=MASK_RTOL, atol=0)


@settings(max_examples=100)
@given(x=assembled_maps())
def test_numba_cpu_agrees(x):
    assert_agrees("numba-cpu", x)


@pytest.mark.skipif("numba-cuda" not in BACKENDS, reason="numba-cuda is not available")
@settings(max_examples=15)
@given(x=assembled_maps(max_rois=3, max_classes=3, max_p=3))
def test_numba_cuda_agrees(x):
    assert_agrees("numba-cuda", x)


@pytest.mark.skipif("numba-cuda" not in BACKENDS, reason="numba-cuda is not available")
def test_numba_cuda_results_stay_on_the_device_until_the_wrapper(monkeypatch):
    """The kernel's outputs reach the wrapper as device arrays: the one copy to the host (none for CuPy inputs,
    which like() hands the device arrays zero-copy) is the wrapper's, and the class softmax runs where they are."""
    handed = []
    real_like = accel.like
    monkeypatch.setattr(accel, "like", lambda result, *inputs: handed.append(result) or real_like(result, *inputs))
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    got = accel.joint_forward(x, backend="numba-cuda")
    assert len(handed) == 2 and all(hasattr(a, "copy_to_host") for a in handed), [type(a) for a in handed]
    assert all(isinstance(a, np.ndarray) for a in got)
    np.testing.assert_array_equal(got.cls_prob, joint_forward(x).cls_prob)


@pytest.mark.gpu
@pytest.mark.skipif("numba-cuda" not in BACKENDS or "cupy" not in BACKENDS, reason="needs CuPy and numba-cuda")
def test_numba_cuda_keeps_cupy_inputs_on_the_device():
    """CuPy in, CuPy out on numba-cuda, with no trip through the host."""
    import cupy

    x = np.random.default_rng(1).standard_normal((4, 2 * 5, 7, 7)).astype(np.float32)
    got = accel.joint_forward(cupy.asarray(x), backend="numba-cuda")
    assert all(isinstance(a, cupy.ndarray) for a in got)
    np.testing.assert_array_equal(got.cls_score.get(), joint_forward(x).cls_score)


@pytest.mark.gpu
@pytest.mark.skipif("cupy" not in BACKENDS, reason="CuPy is not available")
def test_cupy_agrees_and_stays_on_the_device():
    import cupy

    x = np.random.default_rng(0).standard_normal((20, 2 * 81, 21, 21)).astype(np.float32)
    got = accel.joint_forward(cupy.asarray(x), backend="cupy")
    assert all(isinstance(a, cupy.ndarray) for a in got)
    want = joint_forward(x)
    np.testing.assert_array_equal(got.cls_score.get(), want.cls_score)
    np.testing.assert_allclose(got.mask_prob.get(), want.mask_prob, rtol=MASK_RTOL, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_pairs(backend):
    """Differences that overflow float32 give the limits 1 and 0, as in the reference; ties give one half."""
    top = np.finfo(np.float32).max
    x = np.array([[top, -top], [-top, top], [2.5, 2.5]], np.float32).reshape(1, 6, 1, 1)  # (outside, inside) pairs
    with warnings.catch_warnings():
        if backend == "numba-cuda" and cuda_simulated():  # the simulator's NumPy scalars warn where a GPU gives inf
            warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        got = accel.joint_forward(x, backend=backend)
    np.testing.assert_array_equal(got.mask_prob.ravel(), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(got.cls_score, joint_forward(x).cls_score)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_gets_the_reference_error(backend):
    with pytest.raises(ValueError, match="assembled must have an even"):
        accel.joint_forward(np.zeros((1, 3, 2, 2), np.float32), backend=backend)
    with pytest.raises(ValueError, match="assembled must be finite"):
        accel.joint_forward(np.full((1, 2, 2, 2), np.nan, np.float32), backend=backend)
