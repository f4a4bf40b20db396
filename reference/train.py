r"""Training the small FCIS: SGD with momentum and weight decay, a warm-up schedule, model files, and the loop.

A run is deterministic: the weights are initialised from ``seed``; iteration ``t`` trains on images
``t * B .. t * B + B - 1`` of the training set (``B = images_per_step``), image ``i`` of them with an anchor sample
drawn from the generator seeded with ``(seed, 1, t, i)``, and their gradients are averaged in that order.  So a run
interrupted after a checkpoint and resumed ends with the same weights as one that was not, and a run whose images
are worked on by several processes (:func:`fcis_twin.training.run_training`) ends with the weights of one that
worked on them in turn.  Model files are ``.npz`` archives holding the weights and a JSON record of what they are
(:func:`save_model`, :func:`load_model`, from :mod:`fcis_twin.reference.model_files`), written atomically; a
checkpoint is one with the optimiser's state and the log so far, checked whole by :func:`load_checkpoint` before a
resumed run trains.
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import numpy as np

from ._checks import as_int
from ._files import replace_file
from .model_files import (  # noqa: F401  (MODEL_*, load_model and save_model re-exported here)
    MODEL_FORMAT,
    MODEL_VERSION,
    load_model,
    read_model_file,
    save_model,
)
from .network import DEFAULT_NETWORK, NetworkConfig, init_params
from .optim import DEFAULT_TRAIN, TrainConfig, learning_rate, sgd_step  # noqa: F401  (re-exported here)
from .pretrain import backbone_names, pretrain, pretraining_record
from .train_step import DEFAULT_LOSSES, REFERENCE_TRAINING_KERNELS, check_inference, training_step

#: The fields of one record of a run's log, in the order :func:`train` writes them (the loss parts are those of
#: :func:`~fcis_twin.reference.train_step.training_step`).
LOG_FIELDS = ("iteration", "lr", "seconds", "rpn_cls", "rpn_box", "cls", "seg", "box", "total", "foreground", "kept",
              "kept_foreground")


# --- checkpoints -----------------------------------------------------------------------------------------------


def run_record(config, losses, inference, seed, pretraining=None):
    """What a run writes into its checkpoints and model, and what a resumed run must find in its checkpoint: the
    training, loss and proposal settings, the backbone's pretraining schedule (None: none) and the seed, as JSON
    values."""
    return {"train": _plain(asdict(config)), "losses": _plain(asdict(losses)),
            "proposals": _plain(inference.proposal_settings),
            "pretraining": None if pretraining is None else pretraining_record(pretraining), "seed": seed}


def load_checkpoint(path, network, config, record, *, name="checkpoint"):
    """Read a checkpoint of :func:`train` and check all of it before a resumed run trains from it.

    Parameters
    ----------
    path : str or path
    network : NetworkConfig
        The run's network; a checkpoint of another one is refused.
    config : TrainConfig
        The run's schedule.
    record : dict
        The run's :func:`run_record`; the checkpoint's must be the same.
    name : str
        What to call ``path`` in messages.

    Returns
    -------
    params, velocity : dict of str to float32 ndarray
        The weights and the optimiser's state: one entry of each per parameter.
    iteration : int
        The iterations done, in ``[0, config.iterations]``.
    log : list of dict
        Their log, ``iteration`` records of :data:`LOG_FIELDS`.

    Raises
    ------
    ValueError
        Naming ``name`` and the path: what :func:`~fcis_twin.reference.model_files.read_model_file` refuses; a
        checkpoint of another configuration or seed; an ``iteration`` that is no int in ``[0, config.iterations]``;
        a ``log`` that is not a list of that many records, each with the fields of :data:`LOG_FIELDS`, its own
        iteration, finite numbers and counts >= 0; a parameter without its optimiser state, or with a state of
        another dtype than its own.
    """
    model = read_model_file(path, network, name=name)
    where, meta = f"{name} {os.fsdecode(path)!r}", model.meta
    if {k: meta.get(k) for k in record} != record:
        raise ValueError(f"{where} was written by a run of another configuration or seed")
    iteration = meta.get("iteration")
    if type(iteration) is not int or not 0 <= iteration <= config.iterations:
        raise ValueError(f"{where} is not a checkpoint of this run: its iteration must be an int in "
                         f"[0, {config.iterations}], got {str(iteration)[:40]}")
    log = meta.get("log")
    if not isinstance(log, list) or len(log) != iteration:
        got = f"a list of {len(log)}" if isinstance(log, list) else type(log).__name__
        raise ValueError(f"{where} is not a checkpoint of this run: its log must be a list of {iteration} records "
                         f"(one per iteration done), got {got}")
    for t, entry in enumerate(log):
        _check_log_record(entry, t, where)
    missing = [k for k in model.params if k not in model.state]
    if missing:
        raise ValueError(f"{where} is not a checkpoint: it holds no optimiser state of parameters {missing[:3]} "
                         "(a model file is no checkpoint)")
    other = [k for k in model.params if model.dtypes[f"state/{k}"] != model.dtypes[f"params/{k}"]]
    if other:
        k = other[0]
        raise ValueError(f"{where} is not a checkpoint of this run: the optimiser state of {k!r} is stored as "
                         f"{model.dtypes[f'state/{k}']}, its parameter as {model.dtypes[f'params/{k}']}")
    return model.params, model.state, iteration, log


def _check_log_record(entry, t, where):
    """A record of a checkpoint's log: the fields :func:`train` writes, its iteration ``t``, finite numbers."""
    if not isinstance(entry, dict) or set(entry) != set(LOG_FIELDS):
        fields = sorted(map(str, entry))[:20] if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(f"{where} is not a checkpoint of this run: log record {t} must have the fields "
                         f"{list(LOG_FIELDS)}, got {fields}")
    for field, value in entry.items():
        counted = field in ("iteration", "foreground", "kept", "kept_foreground")
        if counted:
            ok = type(value) is int and value >= 0 and (field != "iteration" or value == t)
        else:
            ok = type(value) in (int, float) and math.isfinite(value)
        if not ok:
            expected = (f"{t}" if field == "iteration" else "an int >= 0") if counted else "a finite number"
            raise ValueError(f"{where} is not a checkpoint of this run: log record {t}'s {field!r} must be "
                             f"{expected}, got {str(value)[:40]}")


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
          kernels=REFERENCE_TRAINING_KERNELS, resume=False, on_iteration=None, map_images=map, inference=None,
          pretraining=None, pretrain_images=None, on_pretrain_iteration=None):
    """Train on ``scenes``; write checkpoints, the final model and a JSON log to ``out_dir``.

    Parameters
    ----------
    scenes : sequence of Scene-like
        Iteration ``t`` trains on ``scenes[(t * B + i) % len(scenes)]``, ``i < B = config.images_per_step``.
    out_dir : str or path
        An existing folder.  Gets ``checkpoint.npz`` (after the pretraining, then every ``config.checkpoint_every``
        iterations), ``model.npz`` (the final weights, without the optimiser's state), ``log.json`` (the losses of
        every iteration) and, with ``pretraining``, ``pretrain_log.json`` (the log of
        :func:`fcis_twin.reference.pretrain.pretrain`).
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
    pretraining : TrainConfig, optional
        The schedule of the backbone's pretraining (:func:`fcis_twin.reference.pretrain.pretrain`, with the same
        ``map_images`` and ``seed``), run before FCIS's first iteration; FCIS then starts from the pretrained
        backbone and new heads.  None: from random weights.  A resumed run continues from its checkpoint, which
        holds the pretrained weights.
    pretrain_images : sequence of Scene-like, optional
        The pretraining's images (with ``pretraining``), e.g.
        :func:`~fcis_twin.reference.pretrain.pretraining_images`.
    on_pretrain_iteration : callable, optional
        Called after every pretraining iteration with ``(iteration, record)``, a record of its log.

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
    record = run_record(config, losses, inference, seed, pretraining)
    if resume:  # every part of the checkpoint checked before the first iteration
        params, velocity, start, log = load_checkpoint(checkpoint, network, config, record,
                                                       name="resume checkpoint")
    else:
        params = init_params(network, np.random.default_rng([seed, 0]))
        if pretraining is not None:  # the backbone pretrained, the heads as drawn
            if pretrain_images is None:
                raise ValueError("pretraining needs its pretrain_images")
            pretrained, pretrain_log = pretrain(pretrain_images, network=network, config=pretraining, seed=seed,
                                                map_images=map_images, on_iteration=on_pretrain_iteration)
            params.update({name: pretrained[name] for name in backbone_names(network)})
            with replace_file("out_dir", os.path.join(out_dir, "pretrain_log.json")) as temp, open(temp, "w") as f:
                json.dump(pretrain_log, f)
        velocity = {k: np.zeros_like(v) for k, v in params.items()}
        start, log = 0, []
        if pretraining is not None:  # a resumed run need not pretrain again
            save_model(checkpoint, params, network, extra={**record, "iteration": 0, "log": log}, arrays=velocity)
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
