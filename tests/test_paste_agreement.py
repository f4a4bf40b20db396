"""Pasting: every backend against the reference, bit for bit.

Tolerance, float32 probabilities: **none**.  Every backend performs the reference's float32 operations in the
reference's order (``docs/conventions.md``, Paste): the sample position ``(x - X1 + 0.5) * P / w - 0.5`` and the
two-tap sums ``fl(fl(w0 * m0) + fl(w1 * m1))``, rows first.  Each is a correctly rounded IEEE operation, and no
product is fused into the following add (``_mul_rn`` in Numba-CUDA, ``--fmad=false`` for CuPy), so equal inputs give
equal bits.  Binarized masks are compared exactly too.
"""

import functools
import shutil
import subprocess
from unittest import mock

import numba
import numpy as np
import pytest
from hypothesis import example, given, settings

from fcis_twin.accelerated import paste as accel
from fcis_twin.accelerated._backend import available_backends, cuda_simulated
from fcis_twin.accelerated._launch import CUDA_INCLUDE_DIR, NVRTC_OPTIONS, cuda_source
from fcis_twin.reference._checks import MAX_COORDINATE, as_mask_probs
from fcis_twin.reference.paste import paste_masks as ref_paste_masks
from fcis_twin.strategies import paste_inputs

from .fakes import StrictDeviceArray, strictly_on_device

BACKENDS = available_backends()
needs_cuda = pytest.mark.skipif("numba-cuda" not in BACKENDS, reason="numba-cuda is not available")

def assert_agrees(backend, masks, boxes, image_shape, threshold):
    expected = ref_paste_masks(masks, boxes, image_shape, threshold=threshold)
    pasted = accel.paste_masks(masks, boxes, image_shape, threshold=threshold, backend=backend)
    assert type(pasted) is np.ndarray and pasted.dtype == expected.dtype and pasted.shape == expected.shape
    np.testing.assert_array_equal(pasted, expected)


#: A box of 2**24 pixels around the image (the coordinate limit) and boxes rounding at .5 and just below it.
HUGE = (np.full((1, 2, 3), 0.75, np.float32), np.float32([[-MAX_COORDINATE, -MAX_COORDINATE, MAX_COORDINATE,
                                                            MAX_COORDINATE]]), (5, 7), None)
ROUNDING = (np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 11,
            np.float32([[0.5, -0.5, 2.5, 1.5], [0.49999997, 1.4999999, 3.5000002, 4.5]]), (6, 7), 0.5)


@given(inputs=paste_inputs(max_masks=6, max_height=24, max_width=32))
@example(inputs=HUGE)
@example(inputs=ROUNDING)
def test_numba_cpu_agrees(inputs):
    """numba-cpu pastes exactly the reference's values, probabilities and binarized."""
    assert_agrees("numba-cpu", *inputs)


@functools.cache
def bounds_checked():
    """The numba-cpu loops of the accelerated paste recompiled serially with bounds checking (IndexError when out)."""
    return {name: numba.njit(boundscheck=True)(getattr(accel, name).py_func) for name in ("_paste_cpu",)}


@settings(max_examples=50)
@given(inputs=paste_inputs(max_masks=6, max_height=24, max_width=32))
@example(inputs=HUGE)
def test_numba_cpu_stays_in_bounds(inputs):
    """With bounds checking on, the numba-cpu loops never index outside their arrays (and still agree)."""
    with mock.patch.multiple(accel, **bounds_checked()):
        assert_agrees("numba-cpu", *inputs)


@needs_cuda
@settings(max_examples=25)
@given(inputs=paste_inputs(max_masks=4, max_height=24, max_width=32))
@example(inputs=HUGE)
@example(inputs=ROUNDING)
def test_numba_cuda_agrees(inputs):
    """numba-cuda (the CUDA simulator without a GPU) pastes exactly the reference's values."""
    assert_agrees("numba-cuda", *inputs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_no_masks(backend, threshold):
    """D = 0 gives an empty (0, H, W) paste of the reference's dtype."""
    assert_agrees(backend, np.zeros((0, 21, 21), np.float32), np.zeros((0, 4), np.float32), (5, 7), threshold)


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_boxes(backend):
    """Zero-size, sub-pixel, wholly outside and image-covering boxes, with the smallest thresholds too."""
    boxes = np.float32([[2, 1, 2, 1], [1.6, 0.6, 2.4, 1.4], [9, 0, 12, 3], [-5, -5, -1, -1], [-3, -2, 12, 9]])
    masks = np.random.default_rng(0).random((5, 3, 3), dtype=np.float32)
    for threshold in (None, 1e-6, 0.5, 1.0):
        assert_agrees(backend, masks, boxes, (6, 8), threshold)


def test_many_masks_numba_cpu():
    """A large count: 1500 masks of 21 x 21 into a 60 x 80 image."""
    rng = np.random.default_rng(1)
    xy = rng.uniform(-20, 90, (1500, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 40, (1500, 2))], axis=1).astype(np.float32)
    masks = rng.random((1500, 21, 21), dtype=np.float32)
    assert_agrees("numba-cpu", masks, boxes, (60, 80), None)
    assert_agrees("numba-cpu", masks, boxes, (60, 80), 0.4)


def raised(call):
    """``(type, message)`` of the exception ``call()`` raises."""
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


BAD_INPUTS = [
    (np.ones((2, 2)), [[0, 0, 1, 1]], (4, 4), {}),
    (np.ones((2, 2, 2)), [[0, 0, 1, 1]], (4, 4), {}),
    (np.ones((1, 2, 2)), [0, 0, 1, 1], (4, 4), {}),
    (np.ones((1, 2, 2)), [[0, 0, 1, 1]], (4, 4), {"threshold": 1.5}),
    (np.ones((1, 2, 2)), [[0, 0, 1, 1]], (4, 4), {"threshold": "0.5"}),
    (np.full((1, 2, 2), np.nan), [[0, 0, 1, 1]], (4, 4), {}),
    (np.full((1, 2, 2), np.inf), [[0, 0, 1, 1]], (4, 4), {}),
    (np.full((1, 2, 2), 1.5), [[0, 0, 1, 1]], (4, 4), {}),
    (np.full((1, 2, 2), -0.5), [[0, 0, 1, 1]], (4, 4), {}),
    (np.ones((1, 0, 2)), [[0, 0, 1, 1]], (4, 4), {}),
    (np.array([[["a"]]]), [[0, 0, 1, 1]], (4, 4), {}),
    (np.ones((1, 2, 2)), [[2, 0, 1, 1]], (4, 4), {}),
    (np.ones((1, 2, 2)), [[0, 0, 1, np.inf]], (4, 4), {}),
    (np.ones((1, 2, 2)), [[0, 0, 2 * MAX_COORDINATE, 1]], (4, 4), {}),
    (np.ones((1, 2, 2)), [[0, 0, 1, 1]], (0, 4), {}),
    (np.ones((1, 2, 2)), [[0, 0, 1, 1]], 4, {}),
    (np.full((1, 2, 2), np.nan), [[2, 0, 1, 1]], (0, 4), {"threshold": 2}),  # several faults: the first one wins
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("masks", "boxes", "image_shape", "kwargs"), BAD_INPUTS)
def test_bad_input_raises_as_the_reference(backend, masks, boxes, image_shape, kwargs):
    """Every backend raises the reference's exception, with the reference's message, for the same bad input."""
    expected = raised(lambda: ref_paste_masks(masks, boxes, image_shape, **kwargs))
    assert raised(lambda: accel.paste_masks(masks, boxes, image_shape, backend=backend, **kwargs)) == expected


def test_unknown_backend():
    """An unknown backend name is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="backend must be one of"):
        accel.paste_masks(np.ones((1, 2, 2)), [[0, 0, 1, 1]], (4, 4), backend="tpu")


@pytest.mark.parametrize(
    "masks",
    [np.ones((2, 2)), np.full((1, 2, 2), np.nan), np.full((1, 2, 2), -np.inf), np.full((1, 2, 2), 1.5),
     np.full((1, 2, 2), -0.5), np.ones((1, 2, 0)), np.array([[["a"]]]), np.ones((1, 2, 2), np.float16)],
)
def test_device_validation_matches_the_reference(masks):
    """Masks checked where they live (a stand-in GPU array) raise the reference's errors, or stay on the device."""
    try:
        expected = as_mask_probs("masks", masks, ndim=3)
    except (TypeError, ValueError):
        expected = raised(lambda: as_mask_probs("masks", masks, ndim=3))
        assert raised(lambda: as_mask_probs("masks", strictly_on_device(masks), ndim=3, device=True)) == expected
    else:  # valid: the same float32 values, still on the device
        checked = as_mask_probs("masks", strictly_on_device(masks), ndim=3, device=True)
        assert isinstance(checked, StrictDeviceArray)
        np.testing.assert_array_equal(checked.get(), expected)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_source_compiles_without_fma(tmp_path):
    """The CuPy kernels' CUDA C compiles with the module's NVRTC options, and no multiply-add is fused."""
    source = tmp_path / "paste.cu"
    source.write_text(cuda_source("paste"))
    ptx = tmp_path / "paste.ptx"
    subprocess.run(["nvcc", "--ptx", "-arch=sm_80", f"-I{CUDA_INCLUDE_DIR}",
                    *NVRTC_OPTIONS, "-o", str(ptx), str(source)], check=True)
    text = ptx.read_text()
    assert ".entry paste_masks_prob" in text and ".entry paste_masks_binary" in text
    assert "fma.rn.f32" not in text


# --- on a real GPU, at FCIS-COCO size (skipped elsewhere) ----------------------------------------------------------

#: numba-cuda warns about every launch of fewer than 128 blocks; the per-detection kernels are such launches by design.
LOW_OCCUPANCY = pytest.mark.filterwarnings("ignore:Grid size .* will likely result in GPU under-utilization")


def coco_paste_inputs(seed=0):
    """100 masks of 21 x 21 into a 600 x 1000 image, boxes clustered around a few centres, some over the border."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([-50, -50], [1050, 650], (20, 2))[rng.integers(0, 20, 100)]
    side = rng.uniform(8, 400, (100, 2))
    boxes = np.concatenate([centres - side / 2, centres + side / 2], axis=1).astype(np.float32)
    return rng.random((100, 21, 21), dtype=np.float32), boxes, (600, 1000)


@pytest.mark.gpu
@LOW_OCCUPANCY
@pytest.mark.parametrize("backend", ["cupy", "numba-cuda"])
@pytest.mark.parametrize("threshold", [None, 0.4])
def test_gpu_agrees_at_coco_size(backend, threshold):
    """On a GPU, NumPy and CuPy inputs paste exactly the reference's values, returned as the input's array type."""
    if backend not in BACKENDS or (backend == "numba-cuda" and cuda_simulated()):
        pytest.skip(f"{backend} is not available on a real GPU here")
    masks, boxes, image_shape = coco_paste_inputs()
    expected = ref_paste_masks(masks, boxes, image_shape, threshold=threshold)
    np.testing.assert_array_equal(accel.paste_masks(masks, boxes, image_shape, threshold=threshold,
                                                    backend=backend), expected)
    cupy = pytest.importorskip("cupy")
    pasted = accel.paste_masks(cupy.asarray(masks), cupy.asarray(boxes), image_shape, threshold=threshold,
                               backend=backend)
    assert isinstance(pasted, cupy.ndarray) and pasted.dtype == expected.dtype
    np.testing.assert_array_equal(pasted.get(), expected)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "numba-cuda", "numba-cpu"])
@pytest.mark.parametrize(("masks", "boxes", "image_shape", "kwargs"), BAD_INPUTS[:14])
def test_gpu_bad_cupy_input_raises_as_the_reference(backend, masks, boxes, image_shape, kwargs):
    """CuPy inputs, checked on the device, raise the reference's exceptions and messages."""
    cupy = pytest.importorskip("cupy")
    if backend not in BACKENDS:
        pytest.skip(f"{backend} is not available")
    if masks.dtype.kind not in "biuf":
        pytest.skip("CuPy has no such dtype")
    expected = raised(lambda: ref_paste_masks(masks, boxes, image_shape, **kwargs))
    device_masks, device_boxes = cupy.asarray(masks), cupy.asarray(np.asarray(boxes, np.float32))
    call = lambda: accel.paste_masks(device_masks, device_boxes, image_shape, backend=backend, **kwargs)  # noqa: E731
    assert raised(call) == expected
