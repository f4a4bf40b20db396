"""One training step: its gradient is the gradient of its loss, and training on one image lowers that loss."""

import numpy as np
import pytest

from fcis_twin.reference.assemble import ps_assemble
from fcis_twin.reference.network import NetworkConfig, inference_config, init_params, preprocess
from fcis_twin.reference.nms import nms
from fcis_twin.reference.proposals import propose
from fcis_twin.reference.shapes import Scene
from fcis_twin.reference.train_step import LossConfig, TrainingKernels, training_step
from tests.gradients import ATOL, RTOL, numerical_gradient

TINY = NetworkConfig(num_classes=3, group_size=2, output_size=4, backbone=((4, 1, 1), (6, 2, 1), (6, 1, 2)),
                     rpn_channels=4, head_channels=6, anchor_scales=(2, 4), anchor_ratios=(1.0,), norm_groups=2)


def two_object_scene():
    """A 12 x 14 image with a square (class 1) and a bar (class 2)."""
    masks = np.zeros((2, 12, 14), bool)
    masks[0, 1:6, 2:7] = True
    masks[1, 6:11, 5:13] = True
    image = np.zeros((12, 14, 3), np.uint8)
    image[masks[0]] = (200, 40, 40)
    image[masks[1]] = (40, 40, 200)
    boxes = np.array([[2, 1, 7, 6], [5, 6, 13, 11]], np.float32)
    return Scene(image, masks, masks, np.array([1, 2]), boxes)


def _float64_kernels(maps_shape, rois, geometry):
    """Assembly as a float64 matrix (built column by column with the reference), and its transpose: the linear
    map the step's gradient check differentiates through exactly."""
    size = int(np.prod(maps_shape))
    columns = [ps_assemble(np.eye(1, size, j, np.float32).reshape(maps_shape), rois, **geometry).ravel()
               for j in range(size)]
    matrix = np.array(columns, np.float64).T  # (R*C_out*P*P, N*C*H*W)
    out_shape = ps_assemble(np.zeros(maps_shape, np.float32), rois, **geometry).shape

    def forward(maps, rois_, **_):
        return (matrix @ np.asarray(maps, np.float64).ravel()).reshape(out_shape)

    def backward(grad, rois_, input_shape, **_):  # the step passes back the ROIs OHEM kept, a subset of rois
        rows = [int(np.flatnonzero((rois == roi).all(axis=1))[0]) for roi in rois_]
        block = matrix.reshape(len(rois), -1, size)[rows].reshape(-1, size)
        return (block.T @ np.asarray(grad, np.float64).ravel()).reshape(input_shape)

    return forward, backward


def test_step_gradient_matches_finite_differences(monkeypatch):
    """d total loss / d every parameter, from the step's backward pass, equals central differences (float64).

    The proposals are constants of the step (no gradient flows through them, as in the official graph), so the
    differences are taken with the first step's proposals held fixed; otherwise a weight's change would move them,
    and the box targets with them."""
    from fcis_twin.reference import train_step as step_module

    held = {}

    def recording(*args, **kwargs):
        held["proposals"] = propose(*args, **kwargs)
        return held["proposals"]

    monkeypatch.setattr(step_module, "propose", recording)
    scene = two_object_scene()
    rng = np.random.default_rng(3)
    params = {k: v.astype(np.float64) + 0.05 * rng.standard_normal(v.shape) for k, v in
              init_params(TINY, rng).items()}
    x = preprocess(scene.image).astype(np.float64)
    losses, few = LossConfig(rpn_batch=16, ohem_rois=4), inference_config(TINY, post_nms_top_n=6)
    first = training_step(params, scene, TINY, losses, rng=np.random.default_rng(0), x=x, inference=few)
    geometry = dict(group_size=TINY.group_size, output_size=TINY.output_size, spatial_scale=1.0 / TINY.stride)
    rois = np.concatenate([np.zeros((len(first.rois), 1), np.float32), first.rois], axis=1)
    monkeypatch.setattr(step_module, "propose", lambda *args, **kwargs: held["proposals"])
    kernels = {}
    n, _, h, w = first.outputs["bbox"].shape
    kernels["seg"] = _float64_kernels(first.outputs["seg"].shape, rois, geometry)
    kernels["bbox"] = _float64_kernels((n, 4 * TINY.group_size**2, h, w), rois, geometry)  # the foreground slot

    def assemble(maps, rois_, **kw):
        return kernels["seg" if maps.shape[1] == first.outputs["seg"].shape[1] else "bbox"][0](maps, rois_, **kw)

    def assemble_backward(grad, rois_, input_shape, **kw):
        head = "seg" if input_shape[1] == first.outputs["seg"].shape[1] else "bbox"
        return kernels[head][1](grad, rois_, input_shape, **kw)

    f64 = TrainingKernels(nms, assemble, assemble_backward)
    step = training_step(params, scene, TINY, losses, rng=np.random.default_rng(0), kernels=f64, x=x, inference=few)
    np.testing.assert_array_equal(step.rois, first.rois)  # the proposals do not depend on the kernels' dtype
    assert 0 < step.kept.sum() <= 4 and (step.roi_labels > 0).any()
    assert all(step.losses[name] > 0 for name in ("rpn_cls", "rpn_box", "cls", "seg", "box"))

    def total(name, value):
        return training_step({**params, name: value}, scene, TINY, losses, rng=np.random.default_rng(0),
                             kernels=f64, x=x, inference=few).losses["total"]

    pick = np.random.default_rng(1)
    for name, value in params.items():
        entries = [tuple(int(pick.integers(s)) for s in value.shape) for _ in range(4)]
        numeric = numerical_gradient(lambda v, n=name: total(n, v), value, entries=entries)
        analytic = np.zeros_like(value)
        for e in entries:
            analytic[e] = step.grads[name][e]
        np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=name)


def test_numba_cpu_kernels_give_the_reference_step():
    """With numba-cpu's NMS and assembly the step's losses and gradients are the reference's to float32 rounding."""
    from fcis_twin.accelerated.train_step import training_kernels

    cfg = NetworkConfig(group_size=2, output_size=6, backbone=((6, 1, 1), (8, 2, 1), (8, 1, 2)), rpn_channels=8,
                        head_channels=8, anchor_scales=(2, 4), norm_groups=2)
    params = init_params(cfg, np.random.default_rng(0))
    losses, few = LossConfig(rpn_batch=32, ohem_rois=12), inference_config(cfg, post_nms_top_n=20)
    reference = training_step(params, two_object_scene(), cfg, losses, rng=np.random.default_rng(0), inference=few)
    numba = training_step(params, two_object_scene(), cfg, losses, rng=np.random.default_rng(0),
                          kernels=training_kernels("numba-cpu"), inference=few)
    np.testing.assert_array_equal(numba.rois, reference.rois)
    np.testing.assert_array_equal(numba.kept, reference.kept)
    for name, value in reference.losses.items():
        assert numba.losses[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    # the kernels sum bins in float32 where the reference reads float64 tables: a relative difference of about
    # H W 2**-24 (summation_error_bound), carried linearly back through the layers, far below 1e-5 of the largest
    for name, g in reference.grads.items():
        scale = np.abs(g).max() + 1e-12
        np.testing.assert_allclose(numba.grads[name], g, rtol=0, atol=1e-5 * scale, err_msg=name)


def test_the_step_refuses_an_inference_config_of_another_network():
    """inference= must be an FCISConfig with the network's stride, k, P and anchors."""
    params = init_params(TINY, np.random.default_rng(0))
    with pytest.raises(ValueError, match="inference must have the network's group_size"):
        training_step(params, two_object_scene(), TINY, rng=np.random.default_rng(0),
                      inference=inference_config(TINY, group_size=TINY.group_size + 1))
    with pytest.raises(ValueError, match="anchor_scales"):
        training_step(params, two_object_scene(), TINY, rng=np.random.default_rng(0),
                      inference=inference_config(TINY, anchor_scales=(3, 5)))
    with pytest.raises(TypeError, match="inference must be an FCISConfig"):
        training_step(params, two_object_scene(), TINY, rng=np.random.default_rng(0), inference={"post_nms_top_n": 6})
