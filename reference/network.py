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
    conv_norm_relu_backward,
    conv_norm_relu_forward,
    he_normal,
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

    #: Limits of a configuration, checked on construction (so on every model file's record before its weights are
    #: read): they bound the network's size and the memory of inference, whose assembled maps hold ``2 C P^2``
    #: values per ROI (``MAX_ROI_VALUES``; the official COCO network has 71,442, this default 4,410).
    MAX_CLASSES = 1024
    MAX_OUTPUT_SIZE = 64
    MAX_ROI_VALUES = 2**18
    MAX_LAYERS = 64
    MAX_WIDTH = 4096
    MAX_FEATURE_STRIDE = 64
    MAX_DILATION = 64
    MAX_ANCHORS = 64

    def __post_init__(self):
        """Check every field against its type, its range and the limits above; lists become tuples.

        Raises ``TypeError`` for a value of another type (a float or bool where an int belongs, a stride of 2.7)
        and ``ValueError`` for one out of range (a stride of 0, an output size that is no multiple of the group
        size, a network beyond the limits), naming the field.
        """
        from .anchors import anchor_base

        def show(value):
            text = repr(value)
            return text if len(text) <= 60 else text[:57] + "..."

        def integer(field, value, low, high):
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{field} must be an int, got {show(value)}")
            if not low <= value <= high:
                raise ValueError(f"{field} must be in [{low}, {high}], got {value}")
            return int(value)

        def sequence(field, value, length=None):
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{field} must be a tuple or list, got {show(value)}")
            if not value or (length is not None and len(value) != length):
                raise ValueError(f"{field} must hold {length or 'at least one'} value(s), got {show(value)}")
            return value

        def positive(field, value):
            if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{field} must be a real number, got {show(value)}")
            try:
                ok = 0 < float(value) < float("inf")
            except OverflowError:
                ok = False
            if not ok:
                raise ValueError(f"{field} must be positive and finite, got {show(value)}")
            return value.item() if isinstance(value, np.generic) else value

        fields = {"num_classes": integer("num_classes", self.num_classes, 2, self.MAX_CLASSES),
                  "output_size": integer("output_size", self.output_size, 1, self.MAX_OUTPUT_SIZE)}
        P = fields["output_size"]
        fields["group_size"] = k = integer("group_size", self.group_size, 1, P)
        if P % k:
            raise ValueError(f"output_size ({P}) must be a multiple of group_size ({k})")
        if 2 * fields["num_classes"] * P * P > self.MAX_ROI_VALUES:
            raise ValueError(f"num_classes ({fields['num_classes']}) and output_size ({P}) give 2 C P^2 = "
                             f"{2 * fields['num_classes'] * P * P} assembled values per ROI, more than "
                             f"{self.MAX_ROI_VALUES} (MAX_ROI_VALUES)")
        layers = sequence("backbone", self.backbone)
        if len(layers) > self.MAX_LAYERS:
            raise ValueError(f"backbone must have at most {self.MAX_LAYERS} layers, got {len(layers)}")
        backbone = []
        for i, layer in enumerate(layers):
            out, step, dilation = sequence(f"backbone[{i}]", layer, 3)
            backbone.append((integer(f"backbone[{i}] out_channels", out, 1, self.MAX_WIDTH),
                             integer(f"backbone[{i}] stride", step, 1, self.MAX_FEATURE_STRIDE),
                             integer(f"backbone[{i}] dilation", dilation, 1, self.MAX_DILATION)))
        fields["backbone"] = tuple(backbone)
        stride = int(np.prod([s for _, s, _ in fields["backbone"]]))
        if stride > self.MAX_FEATURE_STRIDE:
            raise ValueError(f"backbone's strides multiply to {stride}, more than {self.MAX_FEATURE_STRIDE} "
                             "(MAX_FEATURE_STRIDE)")
        for field in ("rpn_channels", "head_channels"):
            fields[field] = integer(field, getattr(self, field), 1, self.MAX_WIDTH)
        for field in ("anchor_scales", "anchor_ratios"):
            values = sequence(field, getattr(self, field))
            fields[field] = tuple(positive(f"{field}[{i}]", v) for i, v in enumerate(values))
        if len(fields["anchor_scales"]) * len(fields["anchor_ratios"]) > self.MAX_ANCHORS:
            raise ValueError(f"anchor_scales and anchor_ratios give more than {self.MAX_ANCHORS} anchors per "
                             "position (MAX_ANCHORS)")
        try:
            anchor_base(stride, fields["anchor_ratios"], fields["anchor_scales"])
        except ValueError as exc:
            raise ValueError(f"anchor_scales and anchor_ratios at the feature stride {stride}: {exc}") from None
        fields["input_channels"] = integer("input_channels", self.input_channels, 1, self.MAX_WIDTH)
        if fields["input_channels"] != 3:
            raise ValueError(f"input_channels must be 3 (the network reads RGB images), got {self.input_channels}")
        fields["norm_groups"] = groups = integer("norm_groups", self.norm_groups, 0, self.MAX_WIDTH)
        widths = [layer[0] for layer in fields["backbone"]] + [fields["rpn_channels"], fields["head_channels"]]
        if groups and any(w % groups for w in widths):
            raise ValueError(f"norm_groups ({groups}) must divide the width of every normalised layer, got {widths}")
        for field, value in fields.items():
            object.__setattr__(self, field, value)

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
        """The inverse of :meth:`to_dict`: a dict of exactly the fields, checked as the constructor checks them.

        Raises
        ------
        TypeError
            ``values`` is not a dict, or a field has the wrong type (a float where an int belongs: nothing is
            rounded).
        ValueError
            A field is missing, unknown or out of range.
        """
        if not isinstance(values, dict):
            raise TypeError(f"a network record must be a dict (a JSON object), got {type(values).__name__}")
        fields = cls.__dataclass_fields__
        missing = [key for key in fields if key not in values]
        unknown = [key for key in values if key not in fields]
        if missing:
            raise ValueError(f"a network record needs every field of {list(fields)}; it misses {missing}")
        if unknown:
            raise ValueError(f"a network record has only the fields {list(fields)}; it has the unknown "
                             f"{[str(key)[:40] for key in unknown[:3]]}")
        return cls(**values)


#: The configuration of the bundled model.
DEFAULT_NETWORK = NetworkConfig()


class Layer(NamedTuple):
    """One row of :func:`wiring`: a convolution, the layer whose output it reads, and what follows it."""

    name: str
    source: str  #: the layer whose output it reads; ``"image"``: the network's input
    in_channels: int
    out_channels: int
    kernel_size: int
    geometry: ConvGeometry
    relu: bool  #: followed by a group normalisation (``config.norm_groups > 0``) and a ReLU; else an output layer


def _features(config):
    """The name of the backbone's last layer, whose output the heads read."""
    return f"conv{len(config.backbone)}"


def wiring(config):
    """The network's graph, in forward order: the only place where its layers, their inputs and sizes are written.

    The backbone layers are ``conv1 .. convN``, each reading the one before; the heads branch from the backbone's
    output (``rpn_conv`` and ``head_conv``) and from their ReLUs (``rpn_cls``, ``rpn_bbox``; ``seg``, ``bbox``).

    Returns
    -------
    tuple of Layer
    """
    C, k, A = config.num_classes, config.group_size, config.num_anchors
    backbone, source, channels = [], "image", config.input_channels
    for i, (out, stride, dilation) in enumerate(config.backbone, start=1):
        backbone.append(Layer(f"conv{i}", source, channels, out, 3, ConvGeometry(stride, dilation, dilation), True))
        source, channels = f"conv{i}", out
    features, rpn, head, one = _features(config), config.rpn_channels, config.head_channels, ConvGeometry(1, 0, 1)
    return (*backbone,
            Layer("rpn_conv", features, channels, rpn, 3, ConvGeometry(1, 1, 1), True),
            Layer("rpn_cls", "rpn_conv", rpn, 2 * A, 1, one, False),
            Layer("rpn_bbox", "rpn_conv", rpn, 4 * A, 1, one, False),
            Layer("head_conv", features, channels, head, 1, one, True),
            Layer("seg", "head_conv", head, 2 * C * k * k, 1, one, False),
            Layer("bbox", "head_conv", head, 8 * k * k, 1, one, False))


def layer_specs(config):
    """``[(name, in_channels, out_channels, kernel_size, ConvGeometry, relu)]``: :func:`wiring` without sources."""
    return [(layer.name, layer.in_channels, layer.out_channels, layer.kernel_size, layer.geometry, layer.relu)
            for layer in wiring(config)]


def param_shapes(config, layers=None):
    """``{"<layer>.weight": (O, C, k, k), "<layer>.bias": (O,)}`` of every parameter of the network.

    A normalised layer (``config.norm_groups > 0``) has ``"<layer>.norm_scale"`` and ``"<layer>.norm_shift"``,
    both (O,), in place of its bias.  ``layers``: another graph than ``wiring(config)`` (as in :func:`forward`).
    """
    shapes = {}
    for layer in wiring(config) if layers is None else layers:
        cout, size = layer.out_channels, layer.kernel_size
        shapes[f"{layer.name}.weight"] = (cout, layer.in_channels, size, size)
        if layer.relu and config.norm_groups:
            shapes[f"{layer.name}.norm_scale"] = shapes[f"{layer.name}.norm_shift"] = (cout,)
        else:
            shapes[f"{layer.name}.bias"] = (cout,)
    return shapes


def init_params(config, rng, layers=None):
    """He-initialised weights, zero biases and shifts, unit scales: every entry of :func:`param_shapes`, float32.

    The output layers start small (std 0.01, as the official code's new layers), so that the first losses are
    those of uniform predictions.  ``layers``: another graph than ``wiring(config)`` (as in :func:`forward`).
    """
    layers = wiring(config) if layers is None else layers
    shapes, params = param_shapes(config, layers), {}
    for layer in layers:  # the weights drawn in the layers' order
        shape = shapes[f"{layer.name}.weight"]
        params[f"{layer.name}.weight"] = (he_normal(rng, shape) if layer.relu
                                          else (rng.standard_normal(shape) * 0.01).astype(np.float32))
    for name, shape in shapes.items():  # biases and shifts 0, scales 1
        if not name.endswith(".weight"):
            params[name] = np.full(shape, 1 if name.endswith(".norm_scale") else 0, np.float32)
    return params


def preprocess(image):
    """(H, W, 3) uint8 image -> (1, 3, H, W) float32 in ``[-0.5, 0.5]``."""
    x = np.asarray(image, np.float32).transpose(2, 0, 1)[None] / np.float32(255)
    return x - np.float32(0.5)


def forward(params, x, config, layers=None):
    """Run the network on a preprocessed image batch: every layer of :func:`wiring` on the output it reads.

    Parameters
    ----------
    params : dict of str to ndarray
    x : (N, 3, H, W) float ndarray
        :func:`preprocess`'s output.
    config : NetworkConfig
    layers : sequence of Layer, optional
        The graph to run, default ``wiring(config)``; the backbone's pretraining
        (:func:`fcis_twin.reference.pretrain.pretrain_wiring`) runs the backbone and a head of its own.

    Returns
    -------
    outputs : dict of str to ndarray
        Every layer's output by layer name (after its ReLU, if any), and ``"features"`` (the backbone's output).
        The four that inference reads: ``rpn_cls`` (N, 2A, Hf, Wf) objectness scores (channel ``a`` background
        and ``A + a`` foreground of anchor ``a``), ``rpn_bbox`` (N, 4A, Hf, Wf), ``seg`` (N, 2 C k^2, Hf, Wf)
        and ``bbox`` (N, 8 k^2, Hf, Wf).
    cache : tuple
        For :func:`backward`: every layer's cache by layer name, and ``outputs``.
    """
    layers = wiring(config) if layers is None else tuple(layers)
    maps, caches = {"image": x}, {}
    for layer in layers:
        source, p = maps[layer.source], _layer_params(params, layer.name)
        if layer.relu:
            maps[layer.name], caches[layer.name] = conv_norm_relu_forward(source, p, layer.geometry, config.norm_groups)
        else:
            maps[layer.name], caches[layer.name] = conv2d_forward(source, p["weight"], p["bias"], layer.geometry)
    outputs = {name: y for name, y in maps.items() if name != "image"}
    outputs["features"] = outputs[_features(config)]
    return outputs, (caches, outputs, layers)


def backward(grads, cache, config):
    """Gradients of the parameters from the gradients of the four head outputs: :func:`wiring` in reverse.

    Each layer passes its output's gradient back to the output it read; where several layers read one (the two
    heads, the two outputs of each head), their gradients are summed.

    Parameters
    ----------
    grads : dict
        ``{"rpn_cls", "rpn_bbox", "seg", "bbox"}``: the loss's gradient with respect to each output of
        :func:`forward` (a missing one counts as 0).
    cache : tuple
        :func:`forward`'s.
    config : NetworkConfig

    Returns
    -------
    param_grads : dict of str to ndarray
        One entry per parameter, shaped like it.
    """
    caches, outputs, layers = cache
    upstream = {name: g for name, g in grads.items() if g is not None}  # layer name -> d loss / d its output
    param_grads = {}
    for layer in reversed(layers):  # every layer after all the layers that read its output
        grad_y = upstream[layer.name] if layer.name in upstream else np.zeros_like(outputs[layer.name])
        first = layer.source == "image"  # nothing learns the image
        if layer.relu:
            grad_x, layer_grads = conv_norm_relu_backward(grad_y, caches[layer.name], grad_x=not first)
        else:
            grad_x, weight, bias = conv2d_backward(grad_y, caches[layer.name], grad_x=not first)
            layer_grads = {"weight": weight, "bias": bias}
        param_grads.update({f"{layer.name}.{key}": g for key, g in layer_grads.items()})
        if not first:  # the gradients of an output's readers, summed in the table's order
            upstream[layer.source] = grad_x + upstream[layer.source] if layer.source in upstream else grad_x
    return param_grads


def _layer_params(params, name):
    """``{"weight": ..., ...}``: the parameters ``"<name>.<key>"`` of one layer, by key."""
    prefix = f"{name}."
    return {key[len(prefix):]: value for key, value in params.items() if key.startswith(prefix)}


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
