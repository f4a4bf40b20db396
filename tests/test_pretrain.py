"""The backbone's pretraining: its images, its object weights, and its gradients against central differences."""

from dataclasses import replace

import numpy as np
import pytest

from fcis_twin.reference.network import NetworkConfig, preprocess, wiring
from fcis_twin.reference.optim import TrainConfig
from fcis_twin.reference.pretrain import (
    CLASSIFIER,
    IMAGE_SIDE,
    backbone_names,
    init_pretrain_params,
    object_weights,
    pretrain,
    pretrain_step,
    pretrain_wiring,
    pretraining_images,
)
from tests.gradients import ATOL, RTOL, numerical_gradient
from tests.test_train_step import two_object_scene

TINY = NetworkConfig(num_classes=3, group_size=2, output_size=4, backbone=((4, 1, 1), (4, 2, 1), (4, 1, 2)),
                     rpn_channels=4, head_channels=4, anchor_scales=(2,), anchor_ratios=(1.0, 2.0), norm_groups=2)


def test_object_weights_are_the_mask_at_the_feature_resolution_summing_to_one():
    """An object covering one whole 2 x 2 block and half of another: weights 2/3 and 1/3; pixels past the feature
    map are not seen; an object that covers nothing gets zeros."""
    masks = np.zeros((3, 5, 5), bool)
    masks[0, 0:2, 0:2] = True
    masks[0, 2:4, 0] = True
    masks[1, 4, 4] = True  # beyond the 2 x 2 feature map of stride 2
    weights = object_weights(masks, 2, (2, 2))
    assert weights.shape == (3, 2, 2) and weights.dtype == np.float32
    np.testing.assert_allclose(weights[0], [[2 / 3, 0], [1 / 3, 0]], rtol=1e-6)
    np.testing.assert_array_equal(weights[1:], 0)


def test_the_pretraining_graph_is_the_backbone_and_a_classifier():
    layers = pretrain_wiring(TINY)
    assert layers[:-1] == wiring(TINY)[:3]
    assert layers[-1].name == CLASSIFIER and layers[-1].out_channels == TINY.num_classes
    names = backbone_names(TINY)
    assert names and all(name.startswith("conv") for name in names)
    assert set(init_pretrain_params(TINY, np.random.default_rng(0))) == {*names, f"{CLASSIFIER}.weight",
                                                                          f"{CLASSIFIER}.bias"}


def test_pretraining_images_hold_one_shape_each():
    images = pretraining_images(6, seed=3)
    assert len(images) == 6
    for scene in images:
        assert scene.image.shape == (IMAGE_SIDE, IMAGE_SIDE, 3) and len(scene.labels) == 1


@pytest.mark.parametrize("groups", [0, 2], ids=["plain", "group-norm"])
def test_step_gradient_matches_finite_differences(groups):
    """d loss / d every parameter of the backbone and the classifier equals central differences (float64)."""
    cfg = replace(TINY, norm_groups=groups)
    scene = two_object_scene()
    rng = np.random.default_rng(0)
    params = {k: v.astype(np.float64) + 0.1 * rng.standard_normal(v.shape)
              for k, v in init_pretrain_params(cfg, rng).items()}
    x = preprocess(scene.image).astype(np.float64)
    step = pretrain_step(params, scene, cfg, x=x)
    assert step.grads.keys() == params.keys() and step.loss > 0 and step.objects == 2

    def loss(name, value):
        return pretrain_step({**params, name: value}, scene, cfg, x=x).loss

    for name, value in params.items():
        np.testing.assert_allclose(step.grads[name], numerical_gradient(lambda v, n=name: loss(n, v), value),
                                   rtol=RTOL, atol=ATOL, err_msg=name)


def test_a_label_beyond_the_network_classes_is_refused():
    scene = two_object_scene()
    params = init_pretrain_params(replace(TINY, num_classes=2), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"scene.labels must be classes in \[1, 1\]"):
        pretrain_step(params, scene, replace(TINY, num_classes=2))


def test_pretraining_learns_to_name_a_few_images_and_is_reproducible():
    """Six iterations on the same two images lower the loss; the run is the same bit for bit, and the same when its
    images are worked on in another order of processes (a map that reverses and restores the order)."""
    images = [two_object_scene()] * 2
    config = TrainConfig(iterations=6, images_per_step=2, warmup_iterations=1)
    params, log = pretrain(images, network=TINY, config=config, seed=1)
    assert log[-1]["loss"] < log[0]["loss"]
    again, _ = pretrain(images, network=TINY, config=config, seed=1,
                        map_images=lambda fn, jobs: list(map(fn, jobs[::-1]))[::-1])
    for name in params:
        np.testing.assert_array_equal(params[name], again[name])
    with pytest.raises(ValueError, match="images must hold at least one image"):
        pretrain([], network=TINY, config=config)
