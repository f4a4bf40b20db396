"""The network's layers: hand-worked values, and every gradient against finite differences in float64."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcis_twin.reference.layers import (
    conv2d_backward,
    conv2d_forward,
    conv_geometry,
    conv_norm_relu_backward,
    conv_norm_relu_forward,
    group_norm_backward,
    group_norm_forward,
    relu_backward,
    relu_forward,
)
from tests.gradients import assert_gradient


def test_conv2d_hand_worked_stride_padding_dilation():
    """One 3 x 3 input, a single-tap-per-corner filter: the output reads the taps the geometry says."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)  # x[i, j] = 4 i + j
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 1, 1] = 1.0  # reads the bottom-right tap: x_p[s i + d, s j + d]
    y, _ = conv2d_forward(x, w, np.array([0.5]), conv_geometry(stride=2, padding=1, dilation=2))
    # padded 6 x 6; output 3 x 3 ((4 + 2 - 3) // 2 + 1 = 2: a 2 x 2 output); tap at padded (2 i + 2, 2 j + 2)
    # = x[2 i + 1, 2 j + 1] = 4 (2 i + 1) + 2 j + 1
    np.testing.assert_array_equal(y[0, 0], [[5.5, 7.5], [13.5, 15.5]])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), o=st.integers(1, 3), k=st.sampled_from([1, 2, 3]),
       size=st.integers(3, 6), stride=st.integers(1, 2), padding=st.integers(0, 2), dilation=st.integers(1, 2),
       seed=st.integers(0, 2**16))
def test_conv2d_gradients_match_finite_differences(n, c, o, k, size, stride, padding, dilation, seed):
    """d loss / d x, d weight, d bias of a convolution equal their central differences, for any geometry."""
    geometry = conv_geometry(stride, padding, dilation)
    if geometry.output_size(size, k) < 1:
        return
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, c, size, size)), rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    y, cache = conv2d_forward(x, w, b, geometry)
    upstream = rng.standard_normal(y.shape)  # the loss is sum(upstream * y)
    grad_x, grad_w, grad_b = conv2d_backward(upstream, cache)
    loss = lambda x_, w_, b_: float(np.sum(upstream * conv2d_forward(x_, w_, b_, geometry)[0]))  # noqa: E731
    assert_gradient(lambda v: loss(v, w, b), x, grad_x)
    assert_gradient(lambda v: loss(x, v, b), w, grad_w)
    assert_gradient(lambda v: loss(x, w, v), b, grad_b)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 2), groups=st.integers(1, 3), per_group=st.integers(1, 3), size=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_group_norm_gradients_match_finite_differences(n, groups, per_group, size, seed):
    """d loss / d x, d scale, d shift of a group normalisation equal their central differences."""
    rng = np.random.default_rng(seed)
    c = groups * per_group
    if per_group * size * size < 2:  # a group of one value normalises to 0 whatever it is: nothing to check
        return
    x = rng.standard_normal((n, c, size, size)) * 3 + 1
    scale, shift = rng.standard_normal(c), rng.standard_normal(c)
    y, cache = group_norm_forward(x, scale, shift, groups)
    upstream = rng.standard_normal(y.shape)
    grad_x, grad_scale, grad_shift = group_norm_backward(upstream, cache)
    loss = lambda x_, s_, b_: float(np.sum(upstream * group_norm_forward(x_, s_, b_, groups)[0]))  # noqa: E731
    assert_gradient(lambda v: loss(v, scale, shift), x, grad_x)
    assert_gradient(lambda v: loss(x, v, shift), scale, grad_scale)
    assert_gradient(lambda v: loss(x, scale, v), shift, grad_shift)


def test_group_norm_standardises_each_group_of_each_image():
    """With scale 1 and shift 0 every (image, group) has mean 0 and variance 1, whatever the input's scale."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 5)) * np.array([1, 1, 100, 100, 0.5, 0.5])[:, None, None] + 7
    y, _ = group_norm_forward(x, np.ones(6), np.zeros(6), groups=3)
    grouped = y.reshape(2, 3, -1)
    np.testing.assert_allclose(grouped.mean(axis=2), 0, atol=1e-12)
    np.testing.assert_allclose(grouped.var(axis=2), 1, rtol=1e-4)  # eps = 1e-5 against variances >= 0.25
    with pytest.raises(ValueError, match="groups \\(4\\) must divide the channels of x \\(6\\)"):
        group_norm_forward(x, np.ones(6), np.zeros(6), groups=4)


def test_relu_gradient_matches_finite_differences():
    """The ReLU passes the gradient where its input is positive (inputs kept away from the kink)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 4))
    x[np.abs(x) < 0.05] = 0.5
    upstream = rng.standard_normal(x.shape)
    y, positive = relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert_gradient(lambda v: float(np.sum(upstream * relu_forward(v)[0])), x, relu_backward(upstream, positive))


@pytest.mark.parametrize("groups", [0, 2], ids=["bias", "group-norm"])
def test_conv_norm_relu_is_its_three_layers_and_its_gradients_match(groups):
    """The pair equals conv, group norm and ReLU called in turn, and its gradients equal central differences."""
    rng = np.random.default_rng(groups)
    geometry = conv_geometry(stride=2, padding=1, dilation=1)
    x = rng.standard_normal((2, 3, 5, 5))
    params = {"weight": rng.standard_normal((4, 3, 3, 3))}
    params.update({"norm_scale": rng.standard_normal(4), "norm_shift": rng.standard_normal(4)} if groups
                  else {"bias": rng.standard_normal(4)})
    y, cache = conv_norm_relu_forward(x, params, geometry, groups)
    a, _ = conv2d_forward(x, params["weight"], params.get("bias"), geometry)
    if groups:
        a, _ = group_norm_forward(a, params["norm_scale"], params["norm_shift"], groups)
    np.testing.assert_array_equal(y, relu_forward(a)[0])
    upstream = rng.standard_normal(y.shape)
    grad_x, grads = conv_norm_relu_backward(upstream, cache)
    assert grads.keys() == params.keys()

    def loss(x_, name=None, value=None):
        return float(np.sum(upstream * conv_norm_relu_forward(x_, {**params, name: value} if name else params,
                                                              geometry, groups)[0]))

    assert_gradient(loss, x, grad_x)
    for name, value in params.items():
        assert_gradient(lambda v, n=name: loss(x, n, v), value, grads[name])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(x=np.zeros((1, 2, 4, 4)), weight=np.zeros((1, 3, 3, 3))), ValueError, "agree on C and O"),
    (dict(x=np.zeros((2, 4, 4)), weight=np.zeros((1, 2, 3, 3))), ValueError, "x must be 4-d"),
    (dict(x=np.zeros((1, 2, 4, 4)), weight=np.zeros((1, 2, 3, 2))), ValueError, "square kernels"),
    (dict(x=np.zeros((1, 2, 2, 2)), weight=np.zeros((1, 2, 3, 3))), ValueError, "smaller than the kernel"),
    (dict(x=np.full((1, 2, 4, 4), np.nan), weight=np.zeros((1, 2, 3, 3))), ValueError, "x"),
])
def test_conv2d_rejects_inputs_that_do_not_fit(kwargs, error, match):
    with pytest.raises(error, match=match):
        conv2d_forward(kwargs["x"], kwargs["weight"], np.zeros(kwargs["weight"].shape[0]))


@pytest.mark.parametrize(("kwargs", "match"), [(dict(stride=0), "stride"), (dict(padding=-1), "padding"),
                                               (dict(dilation=0), "dilation")])
def test_conv_geometry_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_geometry(**kwargs)
