"""The whole inference graph on a backend (``fcis_twin.accelerated.detect``) against the reference's.

Tolerances: proposals (NMS), the ROIs that reach voting and the detections are compared **exactly**.  The assembled
maps of the first pass (the same proposals on both sides) are compared with the bound of ``tests/test_assemble.py``
between the loop template, which every kernel follows exactly, and the vectorised reference.
"""

import numpy as np
import pytest

from fcis_twin.accelerated import arrays_converted
from fcis_twin.accelerated._backend import available_backends
from fcis_twin.accelerated.detect import detect, kernels
from fcis_twin.demo import SCENE_CONFIG, run_oracle_pipeline
from fcis_twin.reference.assemble import ps_assemble
from fcis_twin.reference.detect import FCISConfig, Kernels
from fcis_twin.reference.detect import detect as reference_detect
from fcis_twin.reference.shapes import make_scene

from .fakes import StrictDeviceArray, strictly_on_device, through_the_host
from .test_assemble import ETA32, U32, sat_error, within_tolerance

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
    tol = (x.shape[2] * x.shape[3] + 2) * U32 * ps_assemble(np.abs(x), rois, **kw) + sat_error(x) + ETA32
    within_tolerance(got.first.assembled, want.first.assembled.astype(np.float64), tol)


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
    """arrays_converted, the way to move a whole record (``cupy.asnumpy`` to the host): every array of the Stages
    record converted (here to a stand-in of a device array), equal to the host array; the configuration
    untouched."""
    _, _, stages = oracle_runs[0]
    moved = arrays_converted(stages, strictly_on_device)
    assert moved.config is stages.config
    leaves = dict(_leaves(moved))
    arrays = {path: value for path, value in _leaves(stages) if isinstance(value, np.ndarray)}
    assert len(arrays) == 22  # anchors to proposal scores 4, each pass 5, deltas, regressed, voting ROIs, detections 5
    for path, value in arrays.items():
        assert isinstance(leaves[path], StrictDeviceArray), path
        np.testing.assert_array_equal(leaves[path].get(), value, err_msg=path)


def test_the_graph_between_the_kernels_stays_on_the_device(oracle_runs):
    """Device network outputs stay on the device through the whole graph: anchors, decoding, clipping, ranking,
    the ROIs, the box regression's average, the voting ROIs.  The stand-in refuses, as CuPy does, any implicit copy
    to the host and any NumPy array beside a device array; the kernels are numba-cpu's behind a copy (the real
    device kernels are test_gpu_cupy_inputs_keep_the_graph_on_the_device).  The record equals the one for host
    inputs."""
    scene, outputs, _ = oracle_runs[0]
    bound = kernels("numba-cpu")
    on_host = reference_detect(*network_outputs(outputs), scene.image.shape[:2], SCENE_CONFIG, kernels=bound)
    strict = Kernels(*(through_the_host(k) for k in bound))
    got = reference_detect(*(strictly_on_device(a) for a in network_outputs(outputs)), scene.image.shape[:2],
                           SCENE_CONFIG, kernels=strict)
    host = dict(_leaves(on_host))
    for path, value in _leaves(got):
        if isinstance(host[path], np.ndarray):
            assert isinstance(value, StrictDeviceArray), path
            assert value.dtype == host[path].dtype, path
            np.testing.assert_array_equal(value.get(), host[path], err_msg=path)
    assert len(on_host.detections) > 0


def test_device_outputs_need_a_backend_and_one_side(oracle_runs):
    """GPU network outputs with the reference's kernels, or some outputs on a GPU and some on the host: a TypeError
    that says what to do, before any work."""
    scene, outputs, _ = oracle_runs[0]
    arrays = network_outputs(outputs)
    device = [strictly_on_device(a) for a in arrays]
    with pytest.raises(TypeError, match=r"reference's kernels take host arrays.*accelerated\.detect\.detect"):
        reference_detect(*device, scene.image.shape[:2], SCENE_CONFIG)
    with pytest.raises(TypeError, match=r"^seg_maps on a GPU and the other network outputs on the host"):
        reference_detect(*arrays[:2], device[2], arrays[3], scene.image.shape[:2], SCENE_CONFIG,
                         kernels=kernels("numba-cpu"))


def _spoiled(arrays, index, spoil):
    """The network outputs with ``arrays[index]`` replaced by ``spoil(arrays[index])``."""
    return tuple(spoil(a) if i == index else a for i, a in enumerate(arrays))


#: Bad network outputs: (which output, how it is spoiled, a configuration or None for the scenes').
BAD_OUTPUTS = [
    (2, lambda a: a[:, :-1], None),  # seg_maps: a channel short
    (3, lambda a: a[:, :-1], None),  # bbox_maps: a channel short
    (0, lambda a: a, FCISConfig(stride=2, anchor_scales=(8, 16))),  # rpn_prob: anchors of another configuration
    (0, lambda a: a + 1, None),  # rpn_prob: not probabilities
    (1, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a), None),  # rpn_deltas: a NaN
    (2, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.inf, a), None),  # seg_maps: an infinity
]


@pytest.mark.parametrize(("index", "spoil", "config"), BAD_OUTPUTS)
def test_bad_device_outputs_raise_as_host_ones(oracle_runs, index, spoil, config):
    """Bad network outputs on the device (the stand-in) raise the exception and message they raise on the host,
    before any kernel runs."""
    scene, outputs, _ = oracle_runs[0]
    arrays = _spoiled(network_outputs(outputs), index, spoil)
    cfg = config or SCENE_CONFIG
    bound = kernels("numba-cpu")
    with pytest.raises((TypeError, ValueError)) as on_host:
        reference_detect(*arrays, scene.image.shape[:2], cfg, kernels=bound)
    strict = Kernels(*(through_the_host(k) for k in bound))
    with pytest.raises(type(on_host.value)) as on_device:
        reference_detect(*(strictly_on_device(a) for a in arrays), scene.image.shape[:2], cfg, kernels=strict)
    assert str(on_device.value) == str(on_host.value)


#: Leaves of the record that CuPy inputs give exactly as NumPy ones: copies and selections, no arithmetic.
EXACT_ON_THE_DEVICE = {"stages.anchors", "stages.rpn_fg_prob", "stages.proposal_scores", "stages.voting_rois",
                       "stages.detections.labels", "stages.detections.masks", "stages.detections.rois"}


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "numba-cuda", "numba-cpu"])  # numba-cpu: each kernel copies over
def test_gpu_cupy_inputs_keep_the_graph_on_the_device(oracle_runs, backend):
    """CuPy network outputs (one of them given on the host, which is copied over with the rest): a record of CuPy
    arrays, the reference's detections.  The array code runs in CuPy, whose ``exp`` (decoding) and sums (the box
    regression's average) may differ from NumPy's in the last bits: the float intermediates are compared within
    ``2**-12`` of their scale, a thousand times a float32 rounding; copies, selections and the detections' labels,
    ROIs and masks exactly."""
    cupy = pytest.importorskip("cupy")
    if backend not in available_backends():
        pytest.skip(f"{backend} is not available")
    scene, outputs, want = oracle_runs[0]
    arrays = network_outputs(outputs)
    got = detect(arrays[0], *(cupy.asarray(a) for a in arrays[1:]), scene.image.shape[:2], SCENE_CONFIG,
                 backend=backend)
    host = dict(_leaves(detect(*arrays, scene.image.shape[:2], SCENE_CONFIG, backend=backend)))
    for path, value in _leaves(got):
        if not isinstance(host[path], np.ndarray):
            continue
        assert isinstance(value, cupy.ndarray), path
        assert value.dtype == host[path].dtype and value.shape == host[path].shape, path
        if path in EXACT_ON_THE_DEVICE:
            np.testing.assert_array_equal(value.get(), host[path], err_msg=path)
        else:
            scale = max(1.0, float(np.abs(host[path]).max(initial=0)))
            np.testing.assert_allclose(value.get(), host[path], rtol=2**-12, atol=2**-12 * scale, err_msg=path)
    moved = arrays_converted(got, cupy.asnumpy)
    for field in ("labels", "masks", "rois"):
        np.testing.assert_array_equal(getattr(moved.detections, field), getattr(want.detections, field))


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
