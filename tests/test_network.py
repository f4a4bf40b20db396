"""The small FCIS network: output shapes, and the gradient of every parameter against finite differences."""

import numpy as np
import pytest

from fcis_twin.reference.network import NetworkConfig, backward, forward, init_params, layer_specs, preprocess
from tests.gradients import ATOL, RTOL, numerical_gradient

TINY = NetworkConfig(num_classes=3, group_size=2, output_size=4, backbone=((3, 1, 1), (4, 2, 1), (4, 1, 2)),
                     rpn_channels=3, head_channels=3, anchor_scales=(2,), anchor_ratios=(1.0, 2.0), norm_groups=0)
#: The same with group normalisation (two groups of two channels).
TINY_NORM = NetworkConfig(num_classes=3, group_size=2, output_size=4, backbone=((4, 1, 1), (4, 2, 1), (4, 1, 2)),
                          rpn_channels=4, head_channels=4, anchor_scales=(2,), anchor_ratios=(1.0, 2.0),
                          norm_groups=2)


def test_outputs_have_the_shapes_inference_reads():
    """rpn_cls 2A, rpn_bbox 4A, seg 2Ck^2, bbox 8k^2 channels at the feature stride."""
    cfg = NetworkConfig()
    params = init_params(cfg, np.random.default_rng(0))
    out, _ = forward(params, preprocess(np.zeros((32, 48, 3), np.uint8)), cfg)
    hf, wf = 32 // cfg.stride, 48 // cfg.stride
    A, C, k = cfg.num_anchors, cfg.num_classes, cfg.group_size
    assert cfg.stride == 4
    assert out["rpn_cls"].shape == (1, 2 * A, hf, wf) and out["rpn_bbox"].shape == (1, 4 * A, hf, wf)
    assert out["seg"].shape == (1, 2 * C * k * k, hf, wf) and out["bbox"].shape == (1, 8 * k * k, hf, wf)
    assert all(v.dtype == np.float32 for v in out.values())


@pytest.mark.parametrize("cfg", [TINY, TINY_NORM], ids=["plain", "group-norm"])
def test_every_parameter_gradient_matches_finite_differences(cfg):
    """A weighted sum of the four outputs: each parameter's gradient from backward equals its central differences."""
    rng = np.random.default_rng(0)
    params = {k: v.astype(np.float64) for k, v in init_params(cfg, rng).items()}
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}  # biases away from 0 too
    x = rng.standard_normal((1, 3, 7, 6))
    out, cache = forward(params, x, cfg)
    heads = ("rpn_cls", "rpn_bbox", "seg", "bbox")
    upstream = {name: rng.standard_normal(out[name].shape) for name in heads}
    grads = backward(upstream, cache, cfg)
    assert grads.keys() == params.keys()

    def loss(name, value):
        out_, _ = forward({**params, name: value}, x, cfg)
        return float(sum(np.sum(upstream[h] * out_[h]) for h in heads))

    for name, value in params.items():
        np.testing.assert_allclose(grads[name], numerical_gradient(lambda v, n=name: loss(n, v), value), rtol=RTOL,
                                   atol=ATOL, err_msg=name)


def test_config_round_trips_through_plain_values():
    """to_dict / from_dict give back an equal configuration (what a model file stores)."""
    for cfg in (NetworkConfig(), TINY, TINY_NORM):
        assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    assert [s[0] for s in layer_specs(TINY)] == ["conv1", "conv2", "conv3", "rpn_conv", "rpn_cls", "rpn_bbox",
                                                 "head_conv", "seg", "bbox"]


def test_inference_outputs_feed_detect():
    """The trained network's outputs have what detect needs: RPN probabilities that sum to 1 per anchor, and a
    matching inference configuration; detect runs on them."""
    from fcis_twin.reference.detect import detect
    from fcis_twin.reference.network import inference_config, inference_outputs

    cfg = NetworkConfig()
    params = init_params(cfg, np.random.default_rng(0))
    image = np.random.default_rng(1).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    outputs = inference_outputs(params, image, cfg)
    A = cfg.num_anchors
    np.testing.assert_allclose(outputs[0][0, :A] + outputs[0][0, A:], 1, rtol=1e-6)
    stages = detect(*outputs, image.shape[:2], inference_config(cfg))
    assert stages.detections.masks.shape[1:] == (32, 40)
