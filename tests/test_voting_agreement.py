"""Mask voting: every backend against the reference.

Labels, ROI indices and scores must match exactly (scores are copied, never computed), and so must the masks and
their tight boxes on the CPU backends and the CUDA simulator: each voted pixel is the reference's float32 weighted
sum in ascending voter order, with every product rounded on its own, divided once.

Tolerance on a real GPU, bool masks: a pixel may differ only where the reference's voted average ``M`` lies within
``(n + 4) * 2**-23`` of ``binary_threshold``, ``n`` the detection's voter count.  Changing how the float32 operations
are contracted (a fused multiply-add the kernels are written to avoid) perturbs each of the ``n`` products and sums
and the three interpolation steps and the division by at most half an ulp, a relative ``2**-24`` each, on values at
most 1; the bound doubles that.  The kernels are meant to be exact: the test prints how many masks needed the rule.
"""

import functools
import shutil
import subprocess
from unittest import mock

import numba
import numpy as np
import pytest
from hypothesis import example, given, settings

from fcis_twin.accelerated import voting as accel
from fcis_twin.accelerated._backend import available_backends, cuda_simulated
from fcis_twin.accelerated._launch import CUDA_INCLUDE_DIR, NVRTC_OPTIONS, cuda_source
from fcis_twin.reference._checks import as_mask_probs
from fcis_twin.reference.boxes import box_iou
from fcis_twin.reference.nms import batched_nms as ref_batched_nms
from fcis_twin.reference.paste import paste_masks
from fcis_twin.reference.voting import Detections, detection_candidates
from fcis_twin.reference.voting import mask_voting as ref_mask_voting
from fcis_twin.strategies import voting_inputs as scenes
from fcis_twin.strategies import voting_settings as settings_strategy

from .fakes import StrictDeviceArray, strictly_on_device

BACKENDS = available_backends()
needs_cuda = pytest.mark.skipif("numba-cuda" not in BACKENDS, reason="numba-cuda is not available")



def assert_agrees(backend, scene, kwargs):
    expected = ref_mask_voting(*scene, **kwargs)
    det = accel.mask_voting(*scene, backend=backend, **kwargs)
    assert isinstance(det, Detections)
    for field in ("boxes", "scores", "labels", "masks", "rois"):
        got, want = getattr(det, field), getattr(expected, field)
        assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape, field
        np.testing.assert_array_equal(got, want, err_msg=field)


def scene(boxes, cls_masks, cls_probs, image_shape):
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(cls_masks, np.float32),
            np.asarray(cls_probs, np.float32), image_shape)


#: Hand-made scenes, each run on every backend: (scene, kwargs).
CASES = {
    "no ROI": (scene(np.zeros((0, 4)), np.zeros((0, 3, 2, 2)), np.zeros((0, 3)), (5, 6)), {}),
    "one ROI": (scene([[1.5, 2, 9, 6.5]], np.linspace(0, 1, 27).reshape(1, 3, 3, 3), [[0.1, 0.3, 0.6]], (8, 10)),
                {"binary_threshold": 0.5}),
    "all below score_threshold": (scene([[0, 0, 2, 2], [1, 1, 3, 3]], np.ones((2, 2, 2, 2)), [[1, 0], [0.5, 0.25]],
                                        (4, 4)), {"score_threshold": 0.5}),
    "background only": (scene([[0, 0, 2, 2]], np.ones((1, 1, 2, 2)), [[1.0]], (4, 4)), {}),
    "zero-size ROI votes for itself": (scene([[3, 1, 3, 1]], np.ones((1, 2, 2, 2)), [[0, 0.75]], (4, 5)), {}),
    "ROI outside the image": (scene([[10, 10, 12, 12], [-6, 0, -2, 3]], np.ones((2, 2, 2, 2)), [[0, 0.75], [0, 0.5]],
                                    (6, 6)), {}),
    "zero weight sum": (scene([[0, 0, 3, 3]], np.ones((1, 2, 2, 2)), [[1, 0]], (4, 4)), {"score_threshold": 0.0}),
    "the smallest binary_threshold": (scene([[1, 1, 2, 2], [9, 9, 11, 11]], np.full((2, 2, 2, 2), 1e-6),
                                            [[0, 0.75], [0, 0.5]], (3, 4)), {"binary_threshold": 1e-6}),
    "ties across classes and ROIs": (scene([[0, 0, 2, 2], [4, 0, 6, 2], [0, 4, 2, 6], [0, 0, 2, 2]],
                                           np.ones((4, 3, 2, 2)), [[0, .5, .5], [0, .5, .5], [0, .25, .5], [0, .5, .5]],
                                           (6, 6)), {"max_detections": 2, "nms_threshold": 0.5}),
    "average exactly at the threshold": (scene([[0, 0, 4, 2], [0, 0, 5, 3]], np.ones((2, 2, 2, 2)),
                                               [[0.25, 0.75], [0.75, 0.25]], (5, 6)), {"binary_threshold": 0.25}),
    "vote_threshold 0: every ROI votes": (scene([[0, 0, 2, 2], [5, 5, 7, 7], [3, 3, 3, 3]],
                                                np.linspace(0, 1, 24).reshape(3, 2, 2, 2), [[0, .5], [0, .25], [0, 1]],
                                                (8, 8)), {"vote_threshold": 0.0, "binary_threshold": 0.125}),
}


#: Found by hypothesis: ROI 1's region has columns but no rows in the image, and numba-cpu wrote its column samples
#: outside the window buffer (a heap corruption that crashed the process later).
EMPTY_ROW_VOTER = (scene([[0, 0, 2, 2], [1, -10, 7, -5]], np.ones((2, 2, 2, 2)), [[0, 0.5], [0, 0.5]], (4, 8)),
                   {"nms_threshold": 0.3, "vote_threshold": 0.0, "binary_threshold": 0.4, "max_detections": 6,
                    "score_threshold": 0.001})
CASES["voter region with columns but no rows"] = EMPTY_ROW_VOTER

#: An untrained network's output: every class equally likely on six separate ROIs, so 6 x 3 candidates tie.
EQUAL_PROBABILITIES = (scene([[x, y, x + 2, y + 2] for x in (0, 4, 8) for y in (0, 4)], np.ones((6, 4, 2, 2)),
                             np.full((6, 4), 0.25), (6, 10)), {"max_detections": 5})
CASES["equal probabilities, more ties than max_detections"] = EQUAL_PROBABILITIES


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_detections_is_a_hard_bound(backend):
    """Of 18 tied candidates exactly max_detections come out on every backend: class 1's ROIs 0-4, in order."""
    det = accel.mask_voting(*EQUAL_PROBABILITIES[0], backend=backend, **EQUAL_PROBABILITIES[1])
    np.testing.assert_array_equal(det.labels, [1] * 5)
    np.testing.assert_array_equal(det.rois, range(5))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_hand_made_scenes(backend, name):
    """Empty, single, degenerate, outside, tied and at-threshold scenes agree with the reference on every backend."""
    scene_, kwargs = CASES[name]
    assert_agrees(backend, scene_, kwargs)


@given(scene_=scenes(max_rois=8, max_classes=4, max_height=12, max_width=16), kwargs=settings_strategy)
@example(scene_=EMPTY_ROW_VOTER[0], kwargs=EMPTY_ROW_VOTER[1])
def test_numba_cpu_agrees(scene_, kwargs):
    """numba-cpu: detections, scores, labels, ROIs, masks and boxes equal the reference's."""
    assert_agrees("numba-cpu", scene_, kwargs)


@functools.cache
def bounds_checked():
    """The numba-cpu loops of the accelerated voting recompiled serially with bounds checking (IndexError when out)."""
    names = ("_voter_flags_cpu", "_voter_windows_cpu", "_vote_cpu")
    return {name: numba.njit(boundscheck=True)(getattr(accel, name).py_func) for name in names}


@settings(max_examples=50)
@given(scene_=scenes(max_rois=8, max_classes=4, max_height=12, max_width=16), kwargs=settings_strategy)
@example(scene_=EMPTY_ROW_VOTER[0], kwargs=EMPTY_ROW_VOTER[1])
def test_numba_cpu_stays_in_bounds(scene_, kwargs):
    """With bounds checking on, the numba-cpu loops never index outside their arrays (and still agree)."""
    with mock.patch.multiple(accel, **bounds_checked()):
        assert_agrees("numba-cpu", scene_, kwargs)


@needs_cuda
@settings(max_examples=25)
@given(scene_=scenes(max_rois=5, max_classes=3, max_height=24, max_width=32), kwargs=settings_strategy)
def test_numba_cuda_agrees(scene_, kwargs):
    """numba-cuda (the CUDA simulator without a GPU): everything equals the reference's."""
    assert_agrees("numba-cuda", scene_, kwargs)


@given(scene_=scenes(max_rois=12, max_classes=5, max_height=4, max_width=4), kwargs=settings_strategy)
def test_candidates_agree(scene_, kwargs):
    """One batched NMS over all classes, capped and cut, chooses the reference's candidates in its order."""
    boxes, _, cls_probs, _ = scene_
    args = (boxes, cls_probs, kwargs["nms_threshold"], kwargs["max_detections"], np.float32(kwargs["score_threshold"]))
    rois, labels = accel.batched_candidates(*args, ref_batched_nms)
    expected_rois, expected_labels = detection_candidates(*args)
    np.testing.assert_array_equal(rois, expected_rois)
    np.testing.assert_array_equal(labels, expected_labels)


def large_scene(num_rois, num_classes, p, image_shape, seed=0, centres=30):
    """Boxes around a few dozen centres, a peaked softmax over classes, random masks (the FCIS-COCO shape)."""
    rng = np.random.default_rng(seed)
    height, width = image_shape
    centre = rng.uniform([0, 0], [width, height], (centres, 2))[rng.integers(0, centres, num_rois)]
    centre += rng.normal(0, min(image_shape) / 75, (num_rois, 2))
    side = rng.uniform(min(image_shape) / 40, min(image_shape) * 2 / 3, (num_rois, 2))
    boxes = np.clip(np.concatenate([centre - side / 2, centre + side / 2], axis=1), 0, [width, height] * 2)
    logits = rng.standard_normal((num_rois, num_classes))
    logits[np.arange(num_rois), rng.integers(1, num_classes, num_rois)] += 6  # one confident class per ROI
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    masks = rng.random((num_rois, num_classes, p, p), dtype=np.float32)
    return boxes.astype(np.float32), masks, probs.astype(np.float32), image_shape


def test_many_rois_numba_cpu():
    """A large count: 300 ROIs, 21 classes, 100 detections in a 120 x 200 image, exactly the reference's."""
    assert_agrees("numba-cpu", large_scene(300, 21, 21, (120, 200)), {})


def raised(call):
    """``(type, message)`` of the exception ``call()`` raises."""
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


BAD_INPUTS = [
    ([0, 0, 2, 2], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {}),
    ([[2, 0, 1, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2)), [[0, 1]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((2, 2, 2, 2)), [[0, 1]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 0, 2, 2)), np.zeros((1, 0)), (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 0, 0)), [[0, 1]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.full((1, 2, 2, 2), 2.0), [[0, 1]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.full((1, 2, 2, 2), np.nan), [[0, 1]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1, 0]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [0, 1], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, np.nan]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1.5]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[-0.5, 1]], (4, 4), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {"nms_threshold": 1.5}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {"vote_threshold": -0.1}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {"binary_threshold": 2}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {"score_threshold": 1.1}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {"max_detections": 0}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {"max_detections": 1.5}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4,), {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], None, {}),
    ([[0, 0, 2, 2]], np.ones((1, 2, 2, 2)), [[0, 1]], (4, 4), {"nms_threshold": "0.3"}),
    ([[0, 0, 2, 2]], np.full((1, 2, 2, 2), np.nan), [[0, 1.5]], (0, 4), {"max_detections": 0}),  # the first wins
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("boxes", "cls_masks", "cls_probs", "image_shape", "kwargs"), BAD_INPUTS)
def test_bad_input_raises_as_the_reference(backend, boxes, cls_masks, cls_probs, image_shape, kwargs):
    """Every backend raises the reference's exception, with the reference's message, for the same bad input."""
    expected = raised(lambda: ref_mask_voting(boxes, cls_masks, cls_probs, image_shape, **kwargs))
    call = lambda: accel.mask_voting(boxes, cls_masks, cls_probs, image_shape, backend=backend, **kwargs)  # noqa: E731
    assert raised(call) == expected


@pytest.mark.parametrize("cls_masks", [np.ones((1, 2, 2)), np.full((1, 1, 2, 2), np.nan), np.full((1, 1, 2, 2), 2.0),
                                       np.ones((1, 1, 0, 2)), np.ones((1, 1, 2, 2), np.int8)])
def test_device_validation_matches_the_reference(cls_masks):
    """cls_masks checked where they live (a stand-in GPU array) raise the reference's errors, or stay there."""
    try:
        expected = as_mask_probs("cls_masks", cls_masks, ndim=4)
    except (TypeError, ValueError):
        expected = raised(lambda: as_mask_probs("cls_masks", cls_masks, ndim=4))
        assert raised(lambda: as_mask_probs("cls_masks", strictly_on_device(cls_masks), ndim=4,
                                            device=True)) == expected
    else:
        checked = as_mask_probs("cls_masks", strictly_on_device(cls_masks), ndim=4, device=True)
        assert isinstance(checked, StrictDeviceArray)
        np.testing.assert_array_equal(checked.get(), expected)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_source_compiles_without_fma(tmp_path):
    """The CuPy kernels' CUDA C compiles with the module's NVRTC options, and no multiply-add is fused."""
    source = tmp_path / "voting.cu"
    source.write_text(cuda_source("voting"))
    ptx = tmp_path / "voting.ptx"
    subprocess.run(["nvcc", "--ptx", "-arch=sm_80", f"-I{CUDA_INCLUDE_DIR}",
                    *NVRTC_OPTIONS, "-o", str(ptx), str(source)], check=True)
    text = ptx.read_text()
    assert all(f".entry {name}(" in text for name in ("voter_flags", "voter_windows", "vote"))
    assert "fma.rn.f32" not in text


# --- on a real GPU, at FCIS-COCO size (skipped elsewhere) ----------------------------------------------------------

#: numba-cuda warns about every launch of fewer than 128 blocks; the per-detection kernels are such launches by design.
LOW_OCCUPANCY = pytest.mark.filterwarnings("ignore:Grid size .* will likely result in GPU under-utilization")


def voted_average(scene_, roi, label, vote_threshold):
    """The reference's float32 voted average ``M`` of one detection over the whole image, and its voter count."""
    boxes, cls_masks, cls_probs, image_shape = scene_
    iou = box_iou(boxes, boxes[roi : roi + 1])[:, 0]
    voters = [j for j in range(boxes.shape[0]) if iou[j] >= np.float32(vote_threshold) or j == roi]
    pasted = paste_masks(cls_masks[voters, label], boxes[voters], image_shape)
    acc, total = np.zeros(image_shape, np.float32), np.float32(0)
    for k, j in enumerate(voters):
        acc += cls_probs[j, label] * pasted[k]
        total += cls_probs[j, label]
    return acc / total, len(voters)


@pytest.mark.gpu
@LOW_OCCUPANCY
@pytest.mark.parametrize("backend", ["cupy", "numba-cuda"])
@pytest.mark.parametrize("array", ["numpy", "cupy"])
def test_gpu_agrees_at_coco_size(backend, array):
    """600 ROIs, 81 classes, P = 21, 600 x 1000, 100 detections: the reference's detections, as the input's type."""
    if backend not in BACKENDS or (backend == "numba-cuda" and cuda_simulated()):
        pytest.skip(f"{backend} is not available on a real GPU here")
    scene_ = large_scene(600, 81, 21, (600, 1000))
    kwargs = {"vote_threshold": 0.5, "binary_threshold": 0.4}
    expected = ref_mask_voting(*scene_, **kwargs)
    assert len(expected) >= 100
    inputs = scene_
    if array == "cupy":
        cupy = pytest.importorskip("cupy")
        inputs = (*(cupy.asarray(a) for a in scene_[:3]), scene_[3])
    det = accel.mask_voting(*inputs, backend=backend, **kwargs)
    if array == "cupy":
        assert all(isinstance(getattr(det, f), cupy.ndarray) for f in ("boxes", "scores", "labels", "masks", "rois"))
        det = Detections(*(getattr(det, f).get() for f in ("boxes", "scores", "labels", "masks", "rois")))
    np.testing.assert_array_equal(det.labels, expected.labels)
    np.testing.assert_array_equal(det.rois, expected.rois)
    np.testing.assert_array_equal(det.scores, expected.scores)
    # masks: equal, except pixels whose voted average is within (n + 4) * 2**-23 of the threshold (module docstring)
    differing = []
    for k in np.flatnonzero((det.masks != expected.masks).any(axis=(1, 2))):
        average, num_voters = voted_average(scene_, det.rois[k], det.labels[k], kwargs["vote_threshold"])
        pixels = det.masks[k] != expected.masks[k]
        epsilon = (num_voters + 4) * 2.0**-23
        assert (np.abs(average[pixels] - np.float32(kwargs["binary_threshold"])) <= epsilon).all()
        differing.append(int(pixels.sum()))
        rows, cols = np.nonzero(det.masks[k])
        np.testing.assert_array_equal(det.boxes[k], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    same = np.setdiff1d(np.arange(len(det)), np.flatnonzero((det.masks != expected.masks).any(axis=(1, 2))))
    np.testing.assert_array_equal(det.boxes[same], expected.boxes[same])
    print(f"{backend}: masks with pixels differing within epsilon of the threshold: {len(differing)}, {differing}")
