"""The training step's heavy stages on a backend: the twin of :mod:`fcis_twin.reference.train_step`.

The step is written once, in :func:`fcis_twin.reference.train_step.training_step`; it calls the RPN's NMS and
position-sensitive assembly, forward and backward, through a
:class:`~fcis_twin.reference.train_step.TrainingKernels` record.  Here that record holds a backend's kernels; the
losses and gradients they give equal the reference's to float32 rounding (``tests/test_train_step.py``).
"""

import functools

from ..reference.train_step import TrainingKernels
from ._backend import resolve_backend


def training_kernels(backend=None):
    """The :class:`~fcis_twin.reference.train_step.TrainingKernels` of ``backend`` (None: the fastest available):
    the RPN's NMS and assembly, forward and backward, for :func:`fcis_twin.reference.train.train`.

    Raises
    ------
    ValueError
        An unknown or unavailable backend.
    """
    from .assemble import ps_assemble, ps_assemble_backward
    from .nms import nms

    backend = resolve_backend(backend)
    return TrainingKernels(
        nms=functools.partial(nms, backend=backend),
        ps_assemble=functools.partial(ps_assemble, backend=backend),
        ps_assemble_backward=functools.partial(ps_assemble_backward, backend=backend),
    )
