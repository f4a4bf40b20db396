"""The whole inference graph on a backend (``fcis_twin.accelerated.detect``) against the reference's.

Tolerances: proposals (NMS), the ROIs that reach voting and the detections are compared **exactly**.  The assembled
maps of the first pass (the same proposals on both sides) are compared with the bound of ``tests/test_assemble.py``
between the loop template, which every kernel follows exactly, and the vectorised reference.
"""

import numpy as np
import pytest

from fcis_twin.accelerated._backend import available_backends
from fcis_twin.accelerated.detect import arrays_converted, detect, kernels
from fcis_twin.demo import SCENE_CONFIG, run_oracle_pipeline
from fcis_twin.reference.assemble import ps_assemble
from fcis_twin.reference.detect import FCISConfig, Kernels
from fcis_twin.reference.shapes import make_scene

from .fakes import DeviceArray, on_device
from .test_assemble import ETA32, U32, _sat_error, _within

#: The oracle scenes of ``conftest.oracle_runs``.
SEEDS = range(12)
#: A configuration small enough for Numba's CUDA simulator (a few thousand threads per launch).
SMALL = FCISConfig(stride=4, group_size=3, output_size=5, pre_nms_top_n=60, post_nms_top_n=8)


def network_outputs(outputs):
    return outputs.rpn_prob, outputs.rpn_deltas, outputs.seg_maps, outputs.bbox_maps


def assert_same_detections(got, want):
    np.testing.assert_array_equal(got.proposals, want.proposals)
    np.testing.assert_array_equal(got.proposal_scores, want.proposal_scores)
    np.testing.assert_array_equal(got.voting_rois, want.voting_rois)
    for field in ("boxes", "scores", "labels", "masks", "rois"):
        a, b = getattr(got.detections, field), getattr(want.detections, field)
        assert type(a) is np.ndarray and a.dtype == b.dtype, field
        np.testing.assert_array_equal(a, b, err_msg=field)


@pytest.mark.parametrize("seed", SEEDS)
def test_numba_cpu_equals_the_reference_on_oracle_scenes(oracle_runs, seed):
    """numba-cpu: the same proposals, voting ROIs and detections; first-pass maps within the loop-template bound."""
    scene, outputs, want = oracle_runs[seed]
    got = detect(*network_outputs(outputs), scene.image.shape[:2], SCENE_CONFIG, backend="numba-cpu")
    assert_same_detections(got, want)
    cfg = SCENE_CONFIG
    kw = dict(group_size=cfg.group_size, output_size=cfg.output_size, spatial_scale=1 / cfg.stride)
    x = outputs.seg_maps
    rois = np.concatenate([np.zeros((len(want.proposals), 1), np.float32), want.proposals], axis=1)
    tol = (x.shape[2] * x.shape[3] + 2) * U32 * ps_assemble(np.abs(x), rois, **kw) + _sat_error(x) + ETA32
    _within(got.first.assembled, want.first.assembled.astype(np.float64), tol)


@pytest.mark.skipif("numba-cuda" not in available_backends(), reason="numba-cuda is not available")
@pytest.mark.parametrize("seed", [0])
def test_numba_cuda_equals_the_reference_on_a_small_configuration(seed):
    """numba-cuda (the simulator without a GPU): a small scene and configuration, the same detections."""
    scene = make_scene(seed, image_shape=(48, 64), size_range=(12, 40))
    outputs, want = run_oracle_pipeline(scene, SMALL)
    got = detect(*network_outputs(outputs), scene.image.shape[:2], SMALL, backend="numba-cuda")
    assert_same_detections(got, want)
    assert len(want.detections) > 0


def _leaves(record, path="stages"):
    """``(path, value)`` of every field of a Stages record, through its PassOutput and Detections parts."""
    for name in getattr(record, "__dataclass_fields__", {}):
        value = getattr(record, name)
        if hasattr(value, "__dataclass_fields__") and name != "config":
            yield from _leaves(value, f"{path}.{name}")
        else:
            yield f"{path}.{name}", value


def test_every_array_of_the_record_is_converted(oracle_runs):
    """What CuPy inputs get: every array of the Stages record on the device (here the stand-in), equal to the host
    array; the configuration untouched.  The real CuPy path is test_gpu_cupy_inputs_give_cupy_stages."""
    _, _, stages = oracle_runs[0]
    moved = arrays_converted(stages, on_device)
    assert moved.config is stages.config
    leaves = dict(_leaves(moved))
    arrays = {path: value for path, value in _leaves(stages) if isinstance(value, np.ndarray)}
    assert len(arrays) == 22  # anchors to proposal scores 4, each pass 5, deltas, regressed, voting ROIs, detections 5
    for path, value in arrays.items():
        assert isinstance(leaves[path], DeviceArray), path
        np.testing.assert_array_equal(leaves[path], value, err_msg=path)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "numba-cuda"])
def test_gpu_cupy_inputs_give_cupy_stages(oracle_runs, backend):
    """CuPy network outputs: a record of CuPy arrays, equal to the one for NumPy inputs."""
    cupy = pytest.importorskip("cupy")
    if backend not in available_backends():
        pytest.skip(f"{backend} is not available")
    scene, outputs, want = oracle_runs[0]
    got = detect(*(cupy.asarray(a) for a in network_outputs(outputs)), scene.image.shape[:2], SCENE_CONFIG,
                 backend=backend)
    host = dict(_leaves(detect(*network_outputs(outputs), scene.image.shape[:2], SCENE_CONFIG, backend=backend)))
    for path, value in _leaves(got):
        if isinstance(host[path], np.ndarray):
            assert isinstance(value, cupy.ndarray), path
            np.testing.assert_array_equal(value.get(), host[path], err_msg=path)
    assert_same_detections(arrays_converted(got, cupy.asnumpy), want)


def test_kernels_bind_the_backend():
    """kernels(backend) holds the backend's stage functions; an unknown backend is a ValueError."""
    bound = kernels("numba-cpu")
    assert isinstance(bound, Kernels)
    assert all(k.keywords == {"backend": "numba-cpu"} for k in (bound.nms, bound.joint_forward, bound.mask_voting))
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(bound.ps_assemble(x, [[0, 0, 0, 4, 4]], group_size=1, output_size=2,
                                                    spatial_scale=1.0), [[[[2.5, 4.5], [10.5, 12.5]]]])
    with pytest.raises(ValueError, match="backend"):
        kernels("tpu")


def test_bad_input_gets_the_reference_error(oracle_runs):
    """Validation is the reference's: the same message on every backend."""
    scene, outputs, _ = oracle_runs[0]
    rpn_prob, rpn_deltas, seg_maps, bbox_maps = network_outputs(outputs)
    with pytest.raises(ValueError, match="seg_maps"):
        detect(rpn_prob, rpn_deltas, seg_maps[:, :-1], bbox_maps, scene.image.shape[:2], SCENE_CONFIG,
               backend="numba-cpu")
    with pytest.raises(TypeError, match="config"):
        detect(rpn_prob, rpn_deltas, seg_maps, bbox_maps, scene.image.shape[:2], {}, backend="numba-cpu")
