r"""Training the small FCIS: SGD with momentum and weight decay, a warm-up schedule, model files, and the loop.

A run is deterministic: the weights are initialised from ``seed``; iteration ``t`` trains on images
``t * B .. t * B + B - 1`` of the training set (``B = images_per_step``), image ``i`` of them with an anchor sample
drawn from the generator seeded with ``(seed, 1, t, i)``, and their gradients are averaged in that order.  So a run
interrupted after a checkpoint and resumed ends with the same weights as one that was not, and a run whose images
are worked on by several processes (:func:`fcis_twin.training.run_training`) ends with the weights of one that
worked on them in turn.  Model files are ``.npz`` archives holding the weights and a JSON record of what they are
(:func:`save_model`, :func:`load_model`), written atomically.
"""

import json
import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import numpy as np

from ._checks import as_int
from ._files import replace_file
from .network import DEFAULT_NETWORK, NetworkConfig, init_params, param_shapes
from .train_step import DEFAULT_LOSSES, REFERENCE_TRAINING_KERNELS, check_inference, training_step

#: What a model file says it is.
MODEL_FORMAT = "fcis-twin-model"
MODEL_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """The optimiser and its schedule.

    The learning rate rises linearly from ``warmup_factor * learning_rate`` to ``learning_rate`` over the first
    ``warmup_iterations`` (the official warm-up instead holds ``warmup_lr`` for ``warmup_step`` updates, then jumps),
    then is multiplied by 0.1 at each fraction of ``iterations`` in ``decay_at``.  Weight decay applies to
    convolution weights, not to biases (nor to the normalisations' scales and shifts).  Each iteration averages the
    gradients of ``images_per_step`` images (the official code trains on one image per GPU and sums their
    gradients).  ``docs/training.md`` lists these departures from the official recipe with their reasons.
    """

    iterations: int = 4000
    images_per_step: int = 2
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iterations: int = 100
    warmup_factor: float = 0.1
    decay_at: tuple = (0.7, 0.9)
    checkpoint_every: int = 250


#: The default schedule, ``fcis train``'s; the bundled model's is the same with ``iterations=12000``.
DEFAULT_TRAIN = TrainConfig()


def learning_rate(iteration, config):
    """The learning rate of iteration ``iteration`` (0-based) under ``config``'s schedule."""
    rate = config.learning_rate
    if iteration < config.warmup_iterations:
        alpha = iteration / config.warmup_iterations
        rate *= config.warmup_factor + (1 - config.warmup_factor) * alpha
    for fraction in config.decay_at:
        if iteration >= fraction * config.iterations:
            rate *= 0.1
    return rate


def sgd_step(params, grads, velocity, rate, config):
    """One SGD step with momentum and weight decay, in place: ``v = m v + g + wd w``, ``w -= rate v``."""
    for name, value in params.items():
        g = grads[name]
        if name.endswith(".weight"):
            g = g + np.float32(config.weight_decay) * value
        velocity[name] *= np.float32(config.momentum)
        velocity[name] += g
        value -= np.float32(rate) * velocity[name]


# --- model files ----------------------------------------------------------------------------------------------


def save_model(path, params, network, *, extra=None, arrays=None):
    """Write ``params`` and what they are to ``path`` (an ``.npz``), atomically.

    Parameters
    ----------
    path : str or path
    params : dict of str to ndarray
    network : NetworkConfig
    extra : dict, optional
        More JSON-able facts for the record (training configuration, iteration, losses).
    arrays : dict of str to ndarray, optional
        More arrays (a checkpoint's momentum), stored under ``"state/<name>"``.
    """
    meta = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "network": network.to_dict(), **(extra or {})}
    contents = {f"params/{k}": v for k, v in params.items()}
    contents.update({f"state/{k}": v for k, v in (arrays or {}).items()})
    contents["meta"] = np.array(json.dumps(meta))
    with replace_file("path", path) as temp, open(temp, "wb") as f:
        np.savez(f, **contents)


def load_model(path, network=None):
    """Read a model file written by :func:`save_model`.

    Parameters
    ----------
    path : str or path
    network : NetworkConfig, optional
        The configuration the caller expects; a file of another one is refused.

    Returns
    -------
    params : dict of str to float32 ndarray
    network : NetworkConfig
    meta : dict
        The file's JSON record.
    state : dict of str to ndarray
        The extra arrays (empty for a plain model file).

    Raises
    ------
    ValueError
        The file is missing, is not a model file (truncated, damaged, another format), or holds another
        configuration than ``network``, or its weights do not fit its own configuration.
    """
    text = os.fsdecode(path)
    if not os.path.isfile(path):
        raise ValueError(f"weights file {text!r} does not exist")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            contents = {name: archive[name] for name in archive.files}
        meta = json.loads(str(contents.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"weights file {text!r} is not a readable model file (truncated or damaged?): {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"weights file {text!r} is not an FCIS model file of this project")
    stored = NetworkConfig.from_dict(meta["network"])
    if network is not None and stored != network:
        raise ValueError(f"weights file {text!r} holds another network configuration: {stored} (expected {network})")
    params = {k.split("/", 1)[1]: v for k, v in contents.items() if k.startswith("params/")}
    expected = param_shapes(stored)
    wrong = [k for k in expected if k not in params or params[k].shape != expected[k]]
    if wrong or params.keys() != expected.keys():
        raise ValueError(f"weights file {text!r} does not fit its configuration (parameters {wrong[:3]} missing or "
                         f"of another shape)")
    state = {k.split("/", 1)[1]: v for k, v in contents.items() if k.startswith("state/")}
    return {k: v.astype(np.float32) for k, v in params.items()}, stored, meta, state


# --- the loop ---------------------------------------------------------------------------------------------------


class ImageJob(NamedTuple):
    """One image of an iteration: the scene and the key of its anchor sample's generator."""

    scene: object
    rng_key: tuple


class ImageResult(NamedTuple):
    """What an iteration keeps of one image's :func:`fcis_twin.reference.train_step.training_step`."""

    losses: dict
    grads: dict
    foreground: int  #: foreground ROIs
    kept: int  #: ROIs OHEM kept
    kept_foreground: int  #: foreground ROIs OHEM kept


@dataclass(frozen=True)
class ImageGradients:
    """The losses and gradients of one image at fixed weights: ``ImageGradients(...)(job) -> ImageResult``.

    A plain picklable callable, so that :func:`train`'s ``map_images`` may hand the images of an iteration to other
    processes."""

    params: dict
    network: NetworkConfig
    losses: object
    kernels: object
    inference: object = None

    def __call__(self, job):
        step = training_step(self.params, job.scene, self.network, self.losses,
                             rng=np.random.default_rng(list(job.rng_key)), kernels=self.kernels,
                             inference=self.inference)
        foreground = step.roi_labels > 0
        return ImageResult(step.losses, step.grads, int(foreground.sum()), int(step.kept.sum()),
                           int((foreground & step.kept).sum()))


def train(scenes, out_dir, *, network=DEFAULT_NETWORK, config=DEFAULT_TRAIN, losses=DEFAULT_LOSSES, seed=0,
          kernels=REFERENCE_TRAINING_KERNELS, resume=False, on_iteration=None, map_images=map, inference=None):
    """Train on ``scenes``; write checkpoints, the final model and a JSON log to ``out_dir``.

    Parameters
    ----------
    scenes : sequence of Scene-like
        Iteration ``t`` trains on ``scenes[(t * B + i) % len(scenes)]``, ``i < B = config.images_per_step``.
    out_dir : str or path
        An existing folder.  Gets ``checkpoint.npz`` (every ``config.checkpoint_every`` iterations), ``model.npz``
        (the final weights, without the optimiser's state) and ``log.json`` (the losses of every iteration).
    network, config, losses : NetworkConfig, TrainConfig, LossConfig
    seed : int >= 0
    kernels : TrainingKernels
    resume : bool
        Continue from ``out_dir/checkpoint.npz``, which must be of the same configuration and seed.
    on_iteration : callable, optional
        Called after every iteration with ``(iteration, losses)`` (``fcis train`` draws its progress bar with it).
    map_images : callable
        ``map_images(fn, jobs)``: ``fn`` applied to every :class:`ImageJob` of an iteration, results in order.  The
        built-in ``map`` (one image after the other) or a process pool's ``map``; the weights do not depend on it.
    inference : FCISConfig, optional
        The inference settings the step shares (:func:`~fcis_twin.reference.train_step.training_step`), default the
        network's :func:`~fcis_twin.reference.network.inference_config`: the proposals that reach the head.

    Returns
    -------
    params : dict of str to ndarray
    log : list of dict
        One record per iteration: ``{"iteration", "lr", "seconds", <loss parts>, "foreground", "kept",
        "kept_foreground"}``, the loss parts averaged over the iteration's images, the last three the numbers of
        foreground ROIs, of ROIs OHEM kept and of foreground ROIs among them, summed over the images (``seg`` and
        ``box`` are averaged over the kept ROIs, background ones included, so they grow with the share of
        foreground; ``value * kept / kept_foreground`` is the loss per kept foreground ROI).
    """
    seed = as_int("seed", seed, low=0)
    batch = as_int("images_per_step", config.images_per_step, low=1)
    if len(scenes) == 0:
        raise ValueError("scenes must hold at least one image")
    checkpoint = os.path.join(out_dir, "checkpoint.npz")
    inference = check_inference(network, inference)
    record = {"train": _plain(asdict(config)), "losses": _plain(asdict(losses)),
              "proposals": _plain(inference.proposal_settings), "seed": seed}
    if resume:
        params, _, meta, velocity = load_model(checkpoint, network)
        if {k: meta.get(k) for k in record} != record:
            raise ValueError(f"{checkpoint!r} was written by a run of another configuration or seed")
        start, log = int(meta["iteration"]), list(meta["log"])
    else:
        params = init_params(network, np.random.default_rng([seed, 0]))
        velocity = {k: np.zeros_like(v) for k, v in params.items()}
        start, log = 0, []
    for t in range(start, config.iterations):
        began = time.perf_counter()
        rate = learning_rate(t, config)
        jobs = [ImageJob(scenes[(t * batch + i) % len(scenes)], (seed, 1, t, i)) for i in range(batch)]
        parts = list(map_images(ImageGradients(params, network, losses, kernels, inference), jobs))
        step_losses = {name: sum(p.losses[name] for p in parts) / batch for name in parts[0].losses}
        if not all(math.isfinite(v) for v in step_losses.values()):
            raise FloatingPointError(f"iteration {t}: a loss is not finite ({step_losses}); lower the learning rate")
        grads = {name: sum(p.grads[name] for p in parts) / np.float32(batch) for name in params}  # images in order
        sgd_step(params, grads, velocity, rate, config)
        log.append({"iteration": t, "lr": rate, "seconds": time.perf_counter() - began, **step_losses,
                    "foreground": sum(p.foreground for p in parts), "kept": sum(p.kept for p in parts),
                    "kept_foreground": sum(p.kept_foreground for p in parts)})
        if on_iteration is not None:
            on_iteration(t, step_losses)
        if (t + 1) % config.checkpoint_every == 0 and t + 1 < config.iterations:
            save_model(checkpoint, params, network, extra={**record, "iteration": t + 1, "log": log},
                       arrays=velocity)
    save_model(os.path.join(out_dir, "model.npz"), params, network, extra={**record, "iteration": config.iterations})
    with replace_file("out_dir", os.path.join(out_dir, "log.json")) as temp, open(temp, "w") as f:
        json.dump(log, f)
    return params, log


def _plain(values):
    """Tuples as lists, so that a record compares equal to its JSON round trip."""
    return json.loads(json.dumps(values))


def with_iterations(config, iterations):
    """``config`` with another iteration count (its schedule's fractions scale with it)."""
    return replace(config, iterations=as_int("iterations", iterations, low=1))
