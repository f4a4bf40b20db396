"""The accelerated twin of :mod:`reference`: the same stages as Numba-CPU, Numba-CUDA and CuPy kernels.

Each module mirrors its reference module, with the same public names and signatures plus ``backend=``:
``fcis_twin.accelerated.assemble`` (``ps_assemble``, ``ps_assemble_backward``), ``fcis_twin.accelerated.nms`` (``nms``,
``batched_nms``), ``fcis_twin.accelerated.paste`` (``paste_masks``) and ``fcis_twin.accelerated.voting`` (``mask_voting``).
``backend`` is one of ``"numba-cpu"``, ``"numba-cuda"``, ``"cupy"``, or ``None`` for the fastest available
(:func:`available_backends` says what this machine can run).  Inputs may be NumPy or CuPy arrays; results have the
type of the input.  The package also holds the ``fcis`` command line (``fcis_twin.accelerated.cli``), which drives both sides.

Importing this package imports neither numba nor CuPy; each stage module imports numba when it is imported, and
CuPy only when the CuPy backend runs.
"""

from ._backend import BACKENDS, available_backends

__all__ = ["BACKENDS", "available_backends"]
