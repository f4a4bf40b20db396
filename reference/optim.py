"""The optimiser of FCIS's training and of the backbone's pretraining: SGD with momentum and weight decay, and the
learning rate's schedule (a linear warm-up, then drops by 10 at fractions of the run)."""

from dataclasses import dataclass

import numpy as np


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


#: The default schedule, ``fcis train``'s; the bundled model's is the same with ``iterations=24000`` (after a
#: pretraining of 10000 iterations, ``docs/training.md``).
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
