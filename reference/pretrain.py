r"""Pretraining the backbone to classify the shapes: this project's counterpart of the ImageNet initialisation.

The official FCIS starts from a ResNet-v1-101 trained to classify ImageNet's images (the official ``README.md``):
its features tell objects apart before FCIS's losses see them.  Trained from random weights on two scenes an
iteration, this project's network learns to draw masks long before it learns which shape it is drawing
(``docs/training.md``), so :func:`pretrain` gives its backbone the same head start:

- **the images** (:func:`pretraining_images`) are small and hold one shape each, the ImageNet of the shapes:
  48 x 48 pixels, one object of 12 to 48 pixels (the scenes' smaller half), with the scenes' colours and
  backgrounds (:func:`fcis_twin.reference.shapes.make_dataset`);
- **the classifier** is a 1 x 1 convolution on the backbone's output (``classifier``, ``C`` scores per feature
  pixel), and an object's class scores are the mean of the per-pixel scores over its visible mask
  (:func:`object_weights`): the global average pooling of an ImageNet network, over the object only, as FCIS's own
  class score averages over its ROI;
- **the loss** is the softmax cross-entropy of those scores against the object's class, averaged over the objects
  (:func:`pretrain_step`).

The loop is :func:`fcis_twin.reference.train.train`'s: SGD with momentum and weight decay under a
:class:`~fcis_twin.reference.optim.TrainConfig` schedule, the gradients of an iteration's images averaged in order,
so that a run is reproducible bit for bit whatever process works on which image.  FCIS's training then starts from
the pretrained backbone and new heads; the classifier is dropped, as the official code drops ResNet's ``fc1000``.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._checks import as_int
from .layers import ConvGeometry
from .network import Layer, NetworkConfig, backward, forward, init_params, param_shapes, preprocess, wiring
from .optim import TrainConfig, learning_rate, sgd_step

#: ``fcis train``'s pretraining: 8000 iterations of four images, FCIS's rate and schedule.
DEFAULT_PRETRAINING = TrainConfig(iterations=8000, images_per_step=4)
#: The pretraining images: their side, and the range of their objects' sizes (a circle's diameter, a square's
#: diagonal), in pixels.
IMAGE_SIDE = 48
OBJECT_SIZES = (12, 48)
#: Added to ``fcis train``'s ``--seed`` to draw the pretraining images (the scenes use 1 000 000 + the seed).
PRETRAIN_SEED_OFFSET = 2_000_000
#: The name of the pretraining head.
CLASSIFIER = "classifier"


def pretraining_record(config):
    """The schedule and the images of a pretraining, as JSON values: what a model file and a checkpoint record."""
    from dataclasses import asdict

    return {**{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
            "image_side": IMAGE_SIDE, "object_sizes": list(OBJECT_SIZES)}


def pretrain_wiring(config):
    """The graph that pretraining runs: the backbone rows of :func:`~fcis_twin.reference.network.wiring`, then the
    ``classifier``, a 1 x 1 convolution to ``C`` scores."""
    backbone = wiring(config)[: len(config.backbone)]  # the wiring starts with the backbone's rows
    last = backbone[-1]
    return (*backbone, Layer(CLASSIFIER, last.name, last.out_channels, config.num_classes, 1, ConvGeometry(1, 0, 1),
                             False))


def backbone_names(config):
    """The names of the backbone's parameters: what :func:`pretrain` hands on to FCIS's training."""
    return [name for name in param_shapes(config, pretrain_wiring(config)) if not name.startswith(f"{CLASSIFIER}.")]


def init_pretrain_params(config, rng):
    """The parameters of :func:`pretrain_wiring`, drawn as the network's
    (:func:`~fcis_twin.reference.network.init_params`): He-initialised backbone, a classifier of std 0.01, zero
    biases and shifts, unit scales; float32."""
    return init_params(config, rng, pretrain_wiring(config))


def pretraining_images(n, seed):
    """``n`` images of one shape each (:data:`IMAGE_SIDE`, :data:`OBJECT_SIZES`): a
    :class:`~fcis_twin.reference.shapes.SceneSet`, drawn when accessed."""
    from .shapes import make_dataset

    return make_dataset(as_int("n", n, low=0), seed=seed, image_size=(IMAGE_SIDE, IMAGE_SIDE), min_objects=1,
                        max_objects=1, size_range=OBJECT_SIZES)


def object_weights(masks, stride, feature_shape):
    """Each object's visible mask at the feature map's resolution, as weights that sum to 1.

    Parameters
    ----------
    masks : (G, H, W) bool ndarray
    stride : int
        Image pixels per feature pixel along each axis.
    feature_shape : (Hf, Wf)
        Image pixels beyond ``Hf * stride`` or ``Wf * stride`` are not seen.

    Returns
    -------
    (G, Hf, Wf) float32 ndarray
        The share of each feature pixel's ``stride x stride`` image pixels that the object covers, divided by their
        sum over the map; all zeros for an object that covers none.
    """
    hf, wf = feature_shape
    masks = np.asarray(masks, bool)
    g, h, w = masks.shape
    padded = np.zeros((g, hf * stride, wf * stride), np.float32)
    padded[:, : min(h, hf * stride), : min(w, wf * stride)] = masks[:, : hf * stride, : wf * stride]
    share = padded.reshape(g, hf, stride, wf, stride).mean(axis=(2, 4))
    total = share.sum(axis=(1, 2), keepdims=True)
    return np.divide(share, total, out=np.zeros_like(share), where=total > 0)


def object_scores(scores, weights):
    """``(G, C)``: the per-pixel class scores ``(C, Hf, Wf)`` averaged over each object with :func:`object_weights`."""
    return np.einsum("ghw,chw->gc", weights.astype(scores.dtype), scores)


class PretrainResult(NamedTuple):
    """One image's pretraining step."""

    loss: float  #: the cross-entropy averaged over the image's objects
    grads: dict  #: d loss / d each parameter of :func:`pretrain_wiring`
    correct: int  #: objects whose largest class score is their class
    objects: int  #: objects seen (those that cover some feature pixel)


def pretrain_step(params, scene, config, *, x=None):
    """The loss and gradients of one image: its objects' class scores against their classes.

    Parameters
    ----------
    params : dict of str to ndarray
        The parameters of :func:`pretrain_wiring` (float32 to train, float64 for gradient checks).
    scene : Scene-like
        ``image`` (H, W, 3) uint8, ``masks`` (G, H, W) bool (the visible masks), ``labels`` (G,) in ``1 .. C - 1``.
    config : NetworkConfig
    x : (1, 3, H, W) ndarray, optional
        The network input (default :func:`~fcis_twin.reference.network.preprocess` of the image).

    Returns
    -------
    PretrainResult
        Loss 0 and zero gradients for an image without objects.
    """
    x = preprocess(scene.image) if x is None else x
    outputs, cache = forward(params, x, config, pretrain_wiring(config))
    scores = outputs[CLASSIFIER][0]  # (C, Hf, Wf)
    weights = object_weights(scene.masks, config.stride, scores.shape[1:])
    seen = weights.sum(axis=(1, 2)) > 0
    weights, labels = weights[seen], np.asarray(scene.labels)[seen]
    if labels.size and not (labels.min() >= 1 and labels.max() < config.num_classes):
        raise ValueError(f"scene.labels must be classes in [1, {config.num_classes - 1}] (the network's "
                         f"num_classes is {config.num_classes}), got {labels.tolist()[:8]}")
    n, rows = len(labels), np.arange(len(labels))
    logits = object_scores(scores, weights)  # (G, C)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_prob[rows, labels].sum() / max(n, 1)
    grad_logits = np.exp(log_prob)
    grad_logits[rows, labels] -= 1
    grad_scores = np.einsum("ghw,gc->chw", weights.astype(scores.dtype), grad_logits / max(n, 1))
    grads = backward({CLASSIFIER: grad_scores[None]}, cache, config)
    return PretrainResult(float(loss), grads, int((logits.argmax(axis=1) == labels).sum()), n)


#: Images a worker takes at a time: a pretraining step is short (about 9 ms), so the weights travel to a worker once
#: for this many of them.
IMAGES_PER_JOB = 2


@dataclass(frozen=True)
class PretrainImages:
    """``PretrainImages(params, network)(scenes) -> [PretrainResult, ...]``: a picklable callable for a process
    pool, one job a few images."""

    params: dict
    network: NetworkConfig

    def __call__(self, scenes):
        return [pretrain_step(self.params, scene, self.network) for scene in scenes]


def pretrain(images, *, network, config=DEFAULT_PRETRAINING, seed=0, map_images=map, on_iteration=None):
    """Pretrain the backbone: iteration ``t`` averages the gradients of ``images[(t * B + i) % len(images)]``,
    ``i < B = config.images_per_step``.

    Parameters
    ----------
    images : sequence of Scene-like
        :func:`pretraining_images`, or any scenes whose objects are to be named.
    network : NetworkConfig
    config : TrainConfig
        The schedule.
    seed : int >= 0
        The classifier and backbone are drawn from the generator seeded with ``(seed, 2)``.
    map_images : callable
        ``map_images(fn, jobs)``, as in :func:`fcis_twin.reference.train.train`, each job a list of
        :data:`IMAGES_PER_JOB` images; the weights do not depend on it.
    on_iteration : callable, optional
        Called after every iteration with ``(iteration, record)``, its record of the log.

    Returns
    -------
    params : dict of str to float32 ndarray
        The parameters of :func:`pretrain_wiring`.
    log : list of dict
        ``{"iteration", "lr", "loss", "accuracy"}`` per iteration: the loss averaged over its images, the share of
        its objects classified right.
    """
    batch = as_int("images_per_step", config.images_per_step, low=1)
    if len(images) == 0:
        raise ValueError("images must hold at least one image")
    params = init_pretrain_params(network, np.random.default_rng([as_int("seed", seed, low=0), 2]))
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    log = []
    for t in range(config.iterations):
        rate = learning_rate(t, config)
        scenes = [images[(t * batch + i) % len(images)] for i in range(batch)]
        jobs = [scenes[i : i + IMAGES_PER_JOB] for i in range(0, batch, IMAGES_PER_JOB)]
        parts = [part for job in map_images(PretrainImages(params, network), jobs) for part in job]  # image order
        loss = sum(p.loss for p in parts) / batch
        if not math.isfinite(loss):
            raise FloatingPointError(f"pretraining iteration {t}: the loss is not finite; lower the learning rate")
        grads = {name: sum(p.grads[name] for p in parts) / np.float32(batch) for name in params}
        sgd_step(params, grads, velocity, rate, config)
        objects = sum(p.objects for p in parts)
        log.append({"iteration": t, "lr": rate, "loss": loss,
                    "accuracy": sum(p.correct for p in parts) / objects if objects else 0.0})
        if on_iteration is not None:
            on_iteration(t, log[-1])
    return params, log
