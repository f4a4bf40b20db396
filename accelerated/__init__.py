"""The accelerated twin of :mod:`fcis_twin.reference`: the same stages as Numba-CPU, Numba-CUDA and CuPy kernels.

Each module mirrors its reference module, with the same public names and signatures plus ``backend=``:
``assemble`` (``ps_assemble``, ``ps_assemble_backward``), ``nms`` (``nms``, ``batched_nms``), ``paste``
(``paste_masks``), ``voting`` (``mask_voting``), ``joint`` (``joint_forward``) and ``detect`` (``detect``, the
whole inference graph with those kernels).  ``backend`` is one of ``"numba-cpu"``, ``"numba-cuda"``,
``"cupy"``, or ``None`` for the fastest available (:func:`resolve_backend`; :func:`available_backends` says what this
machine can run).  Inputs may be NumPy or CuPy arrays; results have the type of the input
(:func:`arrays_converted` moves a whole record, e.g. to the host).  ``train_step`` (``training_kernels``) binds a
backend's NMS and assembly for the training step.

Each kernel follows its reference module's loop template (``ps_assemble_loop``, ``paste_masks_loop``,
``mask_voting_loop``, the greedy loop of ``nms``) with the same names and named fields.  Shared plumbing lives in
``_launch`` (block sizes, launches, the guarded ``numba.cuda`` import, the CUDA C sources ``*.cu`` and
``common.cuh`` compiled once per device) and ``_float32`` (scalar float32 helpers, never fused into multiply-adds).

Importing this package imports neither numba nor CuPy; each stage module imports numba when it is imported, and
CuPy only when the CuPy backend runs.
"""

from ._backend import BACKENDS, arrays_converted, available_backends, resolve_backend

__all__ = ["BACKENDS", "arrays_converted", "available_backends", "resolve_backend"]
