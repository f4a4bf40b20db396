r"""The layers of the small FCIS network, forward and backward, in NumPy.

Each layer is a pair of functions: ``*_forward`` returns its output and a *cache* (what the backward pass needs),
``*_backward`` takes the gradient of the loss with respect to the output and the cache and returns the gradients
with respect to the input and to the parameters (:func:`conv_norm_relu_forward` chains three such pairs, and
:func:`conv_norm_relu_backward` calls their backward passes in reverse).  The functions compute in the dtype they
are given: float32 for training, float64 for the finite-difference checks of ``tests/test_layers.py``.

Convolution is written as a matrix product over *columns* (im2col): every output position gathers the
``C * kh * kw`` input values its filter reads into one row, and one ``matmul`` applies all filters to all rows.
The backward pass is the same product transposed, and scatters the column gradients back onto the input (col2im)
with one strided addition per filter tap.

Shapes: ``N`` images, ``C`` input channels, ``O`` output channels, ``H x W`` input, ``Ho x Wo`` output.
"""

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import as_array, as_int


class ConvGeometry(NamedTuple):
    """How a convolution slides over its input (square kernels; the same stride, padding and dilation on both axes)."""

    stride: int
    padding: int
    dilation: int

    def output_size(self, size, kernel_size):
        """Output length along an axis of input length ``size``."""
        span = self.dilation * (kernel_size - 1) + 1
        return (size + 2 * self.padding - span) // self.stride + 1


def conv_geometry(stride=1, padding=0, dilation=1):
    """A checked :class:`ConvGeometry`: ``stride`` and ``dilation`` >= 1, ``padding`` >= 0."""
    return ConvGeometry(as_int("stride", stride, low=1), as_int("padding", padding, low=0),
                        as_int("dilation", dilation, low=1))


#: Stride 1, no padding, no dilation.
PLAIN = ConvGeometry(1, 0, 1)


def conv2d_forward(x, weight, bias, geometry=PLAIN):
    r"""2-D convolution (cross-correlation, as in every deep-learning framework).

    Parameters
    ----------
    x : (N, C, H, W) float ndarray
    weight : (O, C, kh, kw) float ndarray, ``kh == kw``
    bias : (O,) float ndarray, or None
        None: no bias (a layer followed by a normalisation, whose shift takes its place).
    geometry : ConvGeometry
        Stride, zero padding on every side, and dilation (the spacing of the filter taps).

    Returns
    -------
    y : (N, O, Ho, Wo) ndarray
        :math:`y[n, o, i, j] = b_o + \sum_{c, u, v} w[o, c, u, v]\, x_p[n, c, s i + d u, s j + d v]`, ``x_p`` the
        padded input, ``s`` the stride, ``d`` the dilation.
    cache : tuple
        For :func:`conv2d_backward`.

    Examples
    --------
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> y, _ = conv2d_forward(x, np.ones((1, 1, 2, 2)), np.zeros(1))  # sums of 2 x 2 windows
    >>> y
    array([[[[ 8., 12.],
             [20., 24.]]]])
    """
    x, weight = _as_float("x", x, 4), _as_float("weight", weight, 4)
    num_out, channels, kh, kw = weight.shape
    bias = None if bias is None else _as_float("bias", bias, 1)
    if kh != kw:
        raise ValueError(f"weight must hold square kernels, got {kh} x {kw}")
    if x.shape[1] != channels or (bias is not None and bias.shape[0] != num_out):
        raise ValueError(f"x (N, C, H, W) {x.shape}, weight (O, C, k, k) {weight.shape} and bias (O,) "
                         f"{None if bias is None else bias.shape} must agree on C and O")
    cols, (n, ho, wo) = _im2col(x, kh, geometry)  # (N*Ho*Wo, C*k*k)
    y = cols @ weight.reshape(num_out, -1).T  # (N*Ho*Wo, O)
    if bias is not None:
        y += bias
    y = y.reshape(n, ho, wo, num_out).transpose(0, 3, 1, 2)  # (N, O, Ho, Wo)
    return np.ascontiguousarray(y), (cols, x.shape, weight, geometry)


def conv2d_backward(grad_y, cache, *, grad_x=True):
    """Gradients of :func:`conv2d_forward` with respect to ``x``, ``weight`` and ``bias``.

    Parameters
    ----------
    grad_y : (N, O, Ho, Wo) float ndarray
    cache : tuple
        The second value :func:`conv2d_forward` returned.
    grad_x : bool
        Whether to compute the input's gradient (a network's first layer does not need it).

    Returns
    -------
    grad_x : (N, C, H, W) ndarray, or None
    grad_weight : (O, C, k, k) ndarray
    grad_bias : (O,) ndarray
        Also when the forward pass had no bias (then nothing uses it).
    """
    cols, x_shape, weight, geometry = cache
    num_out, channels, k, _ = weight.shape
    g = grad_y.transpose(0, 2, 3, 1).reshape(-1, num_out)  # (N*Ho*Wo, O), rows as the columns' rows
    grad_weight = (g.T @ cols).reshape(weight.shape)  # (O, C*k*k) -> (O, C, k, k)
    grad_bias = g.sum(axis=0)
    if not grad_x:
        return None, grad_weight, grad_bias
    grad_cols = g @ weight.reshape(num_out, -1)  # (N*Ho*Wo, C*k*k)
    return _col2im(grad_cols, x_shape, k, geometry), grad_weight, grad_bias


def _as_float(name, x, ndim):
    """A finite float array of rank ``ndim``, float64 kept as float64 and anything else made float32."""
    dtype = np.float64 if np.asarray(x).dtype == np.float64 else np.float32
    return as_array(name, x, ndim=ndim, dtype=dtype)


def _im2col(x, k, geometry):
    """(N*Ho*Wo, C*k*k) rows of the input values each output position reads, and (N, Ho, Wo)."""
    s, p, d = geometry
    n, c, h, w = x.shape
    ho, wo = geometry.output_size(h, k), geometry.output_size(w, k)
    if ho < 1 or wo < 1:
        raise ValueError(f"x of {h} x {w} pixels is smaller than the kernel's span {d * (k - 1) + 1} after "
                         f"padding {p}")
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    span = d * (k - 1) + 1
    windows = sliding_window_view(padded, (span, span), axis=(2, 3))  # (N, C, Hp-span+1, Wp-span+1, span, span)
    windows = windows[:, :, : s * (ho - 1) + 1 : s, : s * (wo - 1) + 1 : s, ::d, ::d]  # (N, C, Ho, Wo, k, k)
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)  # a copy, row (n, i, j)
    return cols, (n, ho, wo)


def _col2im(grad_cols, x_shape, k, geometry):
    """The adjoint of :func:`_im2col`: every column entry added back onto the input value it was read from."""
    s, p, d = geometry
    n, c, h, w = x_shape
    ho, wo = geometry.output_size(h, k), geometry.output_size(w, k)
    g = np.ascontiguousarray(grad_cols.reshape(n, ho, wo, c, k, k).transpose(0, 3, 4, 5, 1, 2))  # (N, C, k, k, Ho, Wo)
    padded = np.zeros((n, c, h + 2 * p, w + 2 * p), grad_cols.dtype)
    for u in range(k):  # one strided addition per filter tap (u, v)
        for v in range(k):
            padded[:, :, d * u : d * u + s * (ho - 1) + 1 : s, d * v : d * v + s * (wo - 1) + 1 : s] += g[:, :, u, v]
    return padded[:, :, p : p + h, p : p + w]


def group_norm_forward(x, scale, shift, groups, eps=1e-5):
    r"""Group normalisation (Wu and He, 2018): each image's channels in ``groups`` groups, each group standardised
    over its channels and pixels, then every channel scaled and shifted.

    It needs no batch (each image of a training step is its own) and makes every layer's output independent of the
    image's contrast and of the scale of the weights before it.

    Parameters
    ----------
    x : (N, C, H, W) float ndarray
    scale, shift : (C,) float ndarray
        :math:`\gamma` and :math:`\beta`.
    groups : int
        Divides ``C``.
    eps : float
        Added to the variance.

    Returns
    -------
    y : (N, C, H, W) ndarray
        :math:`y = \gamma_c\, \hat x + \beta_c`, :math:`\hat x = (x - \mu_{n,g}) / \sqrt{\sigma^2_{n,g} +
        \epsilon}` with the mean and (biased) variance of image ``n``'s group ``g``.
    cache : tuple
        For :func:`group_norm_backward`.

    Examples
    --------
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> y, _ = group_norm_forward(x, np.ones(2), np.zeros(2), groups=2)
    >>> y[0, 0].round(3)
    array([[-1.342, -0.447],
           [ 0.447,  1.342]])
    """
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"groups ({groups}) must divide the channels of x ({c})")
    grouped = x.reshape(n, groups, -1)  # (N, G, C/G * H * W)
    mean = grouped.mean(axis=2, keepdims=True)
    inv_std = 1 / np.sqrt(grouped.var(axis=2, keepdims=True) + np.asarray(eps, x.dtype))
    normalised = ((grouped - mean) * inv_std).reshape(x.shape)
    y = normalised * scale[:, None, None] + shift[:, None, None]
    return y.astype(x.dtype, copy=False), (normalised, inv_std, scale, groups)


def group_norm_backward(grad_y, cache):
    r"""Gradients of :func:`group_norm_forward` with respect to ``x``, ``scale`` and ``shift``.

    Within a group of ``m`` values, :math:`\partial L/\partial x = \frac{1}{\sigma} (g - \bar g - \hat x\,
    \overline{g \hat x})` with :math:`g = \gamma\, \partial L / \partial y` and bars the group means.

    Returns
    -------
    grad_x : (N, C, H, W) ndarray
    grad_scale, grad_shift : (C,) ndarray
    """
    normalised, inv_std, scale, groups = cache
    n = normalised.shape[0]
    grad_scale = np.sum(grad_y * normalised, axis=(0, 2, 3))
    grad_shift = grad_y.sum(axis=(0, 2, 3))
    g = (grad_y * scale[:, None, None]).reshape(n, groups, -1)
    xhat = normalised.reshape(n, groups, -1)
    grad_x = inv_std * (g - g.mean(axis=2, keepdims=True) - xhat * np.mean(g * xhat, axis=2, keepdims=True))
    return grad_x.reshape(normalised.shape).astype(grad_y.dtype, copy=False), grad_scale, grad_shift


def relu_forward(x):
    """``max(x, 0)``, and the cache (where ``x > 0``) for :func:`relu_backward`."""
    positive = x > 0
    return np.where(positive, x, 0).astype(x.dtype), positive


def relu_backward(grad_y, positive):
    """Gradient of :func:`relu_forward`: passed where the input was positive, 0 elsewhere (also at exactly 0)."""
    return np.where(positive, grad_y, 0).astype(grad_y.dtype)


def conv_norm_relu_forward(x, params, geometry, groups):
    """A convolution, a group normalisation and a ReLU: every hidden layer of the network.

    Parameters
    ----------
    x : (N, C, H, W) float ndarray
    params : dict of str to ndarray
        ``"weight"`` (O, C, k, k); with ``groups`` ``"norm_scale"`` and ``"norm_shift"`` (O,), without ``"bias"``
        (O,), the convolution's (no normalisation).
    geometry : ConvGeometry
    groups : int
        Of the group normalisation (it divides ``O``); 0: no normalisation.

    Returns
    -------
    y : (N, O, Ho, Wo) ndarray
        ``relu(group_norm(conv(x)))``.
    cache : tuple
        For :func:`conv_norm_relu_backward`.
    """
    a, conv_cache = conv2d_forward(x, params["weight"], None if groups else params["bias"], geometry)
    norm_cache = None
    if groups:
        a, norm_cache = group_norm_forward(a, params["norm_scale"], params["norm_shift"], groups)
    y, relu_cache = relu_forward(a)
    return y, (conv_cache, groups, norm_cache, relu_cache)


def conv_norm_relu_backward(grad_y, cache, *, grad_x=True):
    """Gradients of :func:`conv_norm_relu_forward`: the same three layers' backward passes, in reverse.

    Parameters
    ----------
    grad_y : (N, O, Ho, Wo) float ndarray
    cache : tuple
        The second value :func:`conv_norm_relu_forward` returned.
    grad_x : bool
        Whether to compute the input's gradient (as in :func:`conv2d_backward`).

    Returns
    -------
    grad_x : (N, C, H, W) ndarray, or None
    param_grads : dict of str to ndarray
        Keyed and shaped as the forward pass's ``params``.
    """
    conv_cache, groups, norm_cache, relu_cache = cache
    param_grads = {}
    g = relu_backward(grad_y, relu_cache)
    if groups:
        g, param_grads["norm_scale"], param_grads["norm_shift"] = group_norm_backward(g, norm_cache)
    grad_input, param_grads["weight"], grad_bias = conv2d_backward(g, conv_cache, grad_x=grad_x)
    if not groups:
        param_grads["bias"] = grad_bias
    return grad_input, param_grads


def he_normal(rng, shape, dtype=np.float32):
    r"""Kaiming He's initialisation for a layer followed by a ReLU: :math:`\mathcal{N}(0, 2 / \text{fan-in})`.

    ``shape`` is ``(O, C, kh, kw)``; the fan-in is ``C * kh * kw``.
    """
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
