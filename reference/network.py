r"""A small FCIS network in NumPy: a convolutional backbone, the RPN head and the position-sensitive heads.

The network maps an image to the four tensors that :func:`fcis_twin.reference.detect.detect` consumes, exactly as
the official ResNet-101 FCIS does, only smaller:

- a backbone of 3 x 3 convolutions, each followed by a group normalisation and a ReLU, two of stride 2 (feature
  stride 4), the last ones dilated so that a feature pixel sees a whole object;
- the RPN head (Sec. 3.4; Ren et al. 2015): a 3 x 3 convolution, group normalisation and ReLU, then 1 x 1
  convolutions to ``2A`` objectness scores and ``4A`` deltas per position (``A`` anchors);
- the FCIS head (Sec. 3.1): a 1 x 1 convolution, group normalisation and ReLU (the official ``conv_new_1``), then
  1 x 1 convolutions to the ``2 C k^2`` inside/outside score maps and to the ``8 k^2`` position-sensitive box maps.

The official network normalises with the frozen batch statistics of its ImageNet-trained ResNet; this one is trained
from scratch on two images per step, where batch statistics mean nothing, so it normalises each image's own
channels in groups (:func:`fcis_twin.reference.layers.group_norm_forward`).

:func:`forward` returns every layer's output (for the notebooks) and the caches that :func:`backward` needs;
``docs/training.md`` gives the reasons for the sizes.
"""

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from .layers import (
    ConvGeometry,
    conv2d_backward,
    conv2d_forward,
    group_norm_backward,
    group_norm_forward,
    he_normal,
    relu_backward,
    relu_forward,
)


@dataclass(frozen=True)
class NetworkConfig:
    """The architecture; stored in every model file, so that a file says what it is.

    Attributes
    ----------
    num_classes : int
        ``C``, background included.
    group_size : int
        ``k``: the position-sensitive maps form a ``k x k`` grid of parts.
    output_size : int
        ``P``: an ROI is assembled into ``P x P`` bins (a multiple of ``k``).
    backbone : tuple of (out_channels, stride, dilation)
        One 3 x 3 convolution and ReLU each; the feature stride is the product of the strides.
    rpn_channels, head_channels : int
        Widths of the RPN's 3 x 3 convolution and of the FCIS head's 1 x 1 convolution.
    anchor_scales, anchor_ratios : tuple of float
        Anchors of side ``stride * scale`` (:func:`fcis_twin.reference.anchors.anchor_base`).
    input_channels : int
        Channels of the input image (3, RGB).
    norm_groups : int
        0: no normalisation.  Otherwise every convolution followed by a ReLU (the backbone, ``rpn_conv`` and
        ``head_conv``) is followed by a group normalisation with this many groups (it must divide their widths)
        and has no bias of its own.
    """

    num_classes: int = 5
    group_size: int = 3
    output_size: int = 21
    backbone: tuple = ((16, 2, 1), (32, 1, 1), (64, 2, 1), (64, 1, 1), (64, 1, 2), (64, 1, 4), (64, 1, 8))
    rpn_channels: int = 64
    head_channels: int = 128
    anchor_scales: tuple = (3, 6, 12, 24)
    anchor_ratios: tuple = (0.5, 1.0, 2.0)
    input_channels: int = 3
    norm_groups: int = 8

    def __post_init__(self):
        groups = self.norm_groups
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 0:
            raise ValueError(f"norm_groups must be an int >= 0, got {groups!r}")
        widths = [layer[0] for layer in self.backbone] + [self.rpn_channels, self.head_channels]
        if groups and any(w % groups for w in widths):
            raise ValueError(f"norm_groups ({groups}) must divide the width of every normalised layer, got {widths}")

    @property
    def stride(self):
        """The feature stride: image pixels per feature pixel."""
        return int(np.prod([s for _, s, _ in self.backbone]))

    @property
    def num_anchors(self):
        """``A``, anchors per feature position."""
        return len(self.anchor_scales) * len(self.anchor_ratios)

    def to_dict(self):
        """Plain values (lists for tuples), for a JSON record inside a model file."""
        return {k: [list(v) for v in val] if k == "backbone" else (list(val) if isinstance(val, tuple) else val)
                for k, val in asdict(self).items()}

    @classmethod
    def from_dict(cls, values):
        """The inverse of :meth:`to_dict`."""
        values = dict(values)
        values["backbone"] = tuple(tuple(int(x) for x in layer) for layer in values["backbone"])
        for key in ("anchor_scales", "anchor_ratios"):
            values[key] = tuple(values[key])
        return cls(**values)


#: The configuration of the bundled model.
DEFAULT_NETWORK = NetworkConfig()


def layer_specs(config):
    """``[(name, in_channels, out_channels, kernel_size, ConvGeometry, relu)]`` of every convolution, in order.

    The backbone layers are ``conv1 .. convN``; the heads branch from the backbone's output (``rpn_conv`` and
    ``head_conv``) and from their ReLUs (``rpn_cls``, ``rpn_bbox``; ``seg``, ``bbox``).
    """
    C, k, A = config.num_classes, config.group_size, config.num_anchors
    specs, channels = [], config.input_channels
    for i, (out, stride, dilation) in enumerate(config.backbone, start=1):
        specs.append((f"conv{i}", channels, out, 3, ConvGeometry(stride, dilation, dilation), True))
        channels = out
    one = ConvGeometry(1, 0, 1)
    specs += [
        ("rpn_conv", channels, config.rpn_channels, 3, ConvGeometry(1, 1, 1), True),
        ("rpn_cls", config.rpn_channels, 2 * A, 1, one, False),
        ("rpn_bbox", config.rpn_channels, 4 * A, 1, one, False),
        ("head_conv", channels, config.head_channels, 1, one, True),
        ("seg", config.head_channels, 2 * C * k * k, 1, one, False),
        ("bbox", config.head_channels, 8 * k * k, 1, one, False),
    ]
    return specs


def param_shapes(config):
    """``{"<layer>.weight": (O, C, k, k), "<layer>.bias": (O,)}`` of every parameter of the network.

    A normalised layer (``config.norm_groups > 0``) has ``"<layer>.norm_scale"`` and ``"<layer>.norm_shift"``,
    both (O,), in place of its bias.
    """
    shapes = {}
    for name, cin, cout, ksize, _, relu in layer_specs(config):
        shapes[f"{name}.weight"] = (cout, cin, ksize, ksize)
        if relu and config.norm_groups:
            shapes[f"{name}.norm_scale"] = shapes[f"{name}.norm_shift"] = (cout,)
        else:
            shapes[f"{name}.bias"] = (cout,)
    return shapes


def init_params(config, rng):
    """He-initialised weights, zero biases and shifts, unit scales: every entry of :func:`param_shapes`, float32.

    The output layers start small (std 0.01, as the official code's new layers), so that the first losses are
    those of uniform predictions.
    """
    params = {}
    for name, cin, cout, ksize, _, relu in layer_specs(config):
        shape = (cout, cin, ksize, ksize)
        params[f"{name}.weight"] = (he_normal(rng, shape) if relu
                                    else (rng.standard_normal(shape) * 0.01).astype(np.float32))
    for name, shape in param_shapes(config).items():  # biases and shifts 0, scales 1
        if not name.endswith(".weight"):
            params[name] = np.full(shape, 1 if name.endswith(".norm_scale") else 0, np.float32)
    return params


def preprocess(image):
    """(H, W, 3) uint8 image -> (1, 3, H, W) float32 in ``[-0.5, 0.5]``."""
    x = np.asarray(image, np.float32).transpose(2, 0, 1)[None] / np.float32(255)
    return x - np.float32(0.5)


def forward(params, x, config):
    """Run the network on a preprocessed image batch.

    Parameters
    ----------
    params : dict of str to ndarray
    x : (N, 3, H, W) float ndarray
        :func:`preprocess`'s output.
    config : NetworkConfig

    Returns
    -------
    outputs : dict of str to ndarray
        Every layer's output by layer name (after its ReLU, if any), and ``"features"`` (the backbone's output).
        The four that inference reads: ``rpn_cls`` (N, 2A, Hf, Wf) objectness scores (channel ``a`` background
        and ``A + a`` foreground of anchor ``a``), ``rpn_bbox`` (N, 4A, Hf, Wf), ``seg`` (N, 2 C k^2, Hf, Wf)
        and ``bbox`` (N, 8 k^2, Hf, Wf).
    cache : dict
        For :func:`backward`.
    """
    outputs, cache = {}, {}
    inputs = {"rpn_conv": "features", "rpn_cls": "rpn_conv", "rpn_bbox": "rpn_conv", "head_conv": "features",
              "seg": "head_conv", "bbox": "head_conv"}
    current = x
    for name, _, _, _, geometry, relu in layer_specs(config):
        source = current if name.startswith("conv") else outputs[inputs[name]]
        y, cache[name] = conv2d_forward(source, params[f"{name}.weight"], params.get(f"{name}.bias"), geometry)
        if f"{name}.norm_scale" in params:
            y, cache[f"{name}.norm"] = group_norm_forward(y, params[f"{name}.norm_scale"],
                                                          params[f"{name}.norm_shift"], config.norm_groups)
        if relu:
            y, cache[f"{name}.relu"] = relu_forward(y)
        outputs[name] = y
        if name.startswith("conv"):
            current = outputs["features"] = y
    return outputs, cache


def backward(grads, cache, config):
    """Gradients of the parameters from the gradients of the four head outputs.

    Parameters
    ----------
    grads : dict
        ``{"rpn_cls", "rpn_bbox", "seg", "bbox"}``: the loss's gradient with respect to each output of
        :func:`forward` (a missing one counts as 0).
    cache : dict
        :func:`forward`'s.
    config : NetworkConfig

    Returns
    -------
    param_grads : dict of str to ndarray
        One entry per parameter, shaped like it.
    """
    param_grads = {}
    upstream = {name: g for name, g in grads.items() if g is not None}  # layer name -> d loss / d its output
    sources = {"rpn_cls": "rpn_conv", "rpn_bbox": "rpn_conv", "seg": "head_conv", "bbox": "head_conv",
               "rpn_conv": "features", "head_conv": "features"}
    for name in ("rpn_cls", "rpn_bbox", "seg", "bbox", "rpn_conv", "head_conv"):  # the heads, outputs first
        g = _through_layer(name, upstream.get(name), cache, param_grads)
        source = sources[name]
        upstream[source] = g if source not in upstream else upstream[source] + g
    g = upstream["features"]
    for name, *_ in reversed([s for s in layer_specs(config) if s[0].startswith("conv")]):
        g = _through_layer(name, g, cache, param_grads, grad_x=name != "conv1")  # nothing learns the image
    return param_grads


def _through_layer(name, grad_y, cache, param_grads, grad_x=True):
    """Back through one convolution (and its ReLU), recording its parameter gradients; returns d input.

    ``grad_y`` None: no gradient reached the layer's output (zeros)."""
    if grad_y is None:
        cols, x_shape, weight, geometry = cache[name]
        n, _, h, w = x_shape
        k = weight.shape[2]
        grad_y = np.zeros((n, weight.shape[0], geometry.output_size(h, k), geometry.output_size(w, k)), cols.dtype)
    if f"{name}.relu" in cache:
        grad_y = relu_backward(grad_y, cache[f"{name}.relu"])
    if f"{name}.norm" in cache:
        grad_y, param_grads[f"{name}.norm_scale"], param_grads[f"{name}.norm_shift"] = group_norm_backward(
            grad_y, cache[f"{name}.norm"])
    grad_input, param_grads[f"{name}.weight"], grad_bias = conv2d_backward(grad_y, cache[name], grad_x=grad_x)
    if f"{name}.norm" not in cache:
        param_grads[f"{name}.bias"] = grad_bias
    return grad_input


class NetworkOutputs(NamedTuple):
    """The four tensors :func:`fcis_twin.reference.detect.detect` reads, named as in
    :class:`fcis_twin.reference.oracle.OracleOutputs`."""

    rpn_prob: np.ndarray  #: (1, 2A, Hf, Wf) float32, channels ``a`` background and ``A + a`` foreground
    rpn_deltas: np.ndarray  #: (1, 4A, Hf, Wf) float32
    seg_maps: np.ndarray  #: (1, 2 C k^2, Hf, Wf) float32
    bbox_maps: np.ndarray  #: (1, 8 k^2, Hf, Wf) float32


def inference_outputs(params, image, config):
    """The four tensors :func:`fcis_twin.reference.detect.detect` reads, for one image.

    Parameters
    ----------
    params : dict of str to ndarray
    image : (H, W, 3) uint8 ndarray
    config : NetworkConfig

    Returns
    -------
    NetworkOutputs
        ``rpn_prob`` is the softmax of each anchor's (background, foreground) score pair.
    """
    outputs, _ = forward(params, preprocess(image), config)
    _, two_a, hf, wf = outputs["rpn_cls"].shape
    pair = outputs["rpn_cls"].reshape(1, 2, two_a // 2, hf, wf).astype(np.float64)  # (1, bg/fg, A, Hf, Wf)
    pair = np.exp(pair - pair.max(axis=1, keepdims=True))
    rpn_prob = (pair / pair.sum(axis=1, keepdims=True)).reshape(1, two_a, hf, wf).astype(np.float32)
    return NetworkOutputs(rpn_prob, outputs["rpn_bbox"], outputs["seg"], outputs["bbox"])


def inference_config(config, **overrides):
    """The :class:`fcis_twin.reference.detect.FCISConfig` that matches the network: its stride, ``k``, ``P`` and
    anchors; the official test settings otherwise (``overrides`` replace any of them)."""
    from .detect import FCISConfig

    return FCISConfig(**{"stride": config.stride, "group_size": config.group_size, "output_size": config.output_size,
                         "anchor_scales": tuple(config.anchor_scales), "anchor_ratios": tuple(config.anchor_ratios),
                         **overrides})
