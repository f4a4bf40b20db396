"""Backends: which ones this machine can run, which one ``backend=None`` means, and moving arrays.

Every public function of :mod:`accelerated` takes ``backend=`` with one of :data:`BACKENDS` or ``None`` (the fastest
available: ``"cupy"``, then ``"numba-cuda"`` on a real GPU, then ``"numba-cpu"``).  Inputs may be NumPy or CuPy
arrays and the result has the type of the input; the conversions below are called only by the public wrappers.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is imported) ``"numba-cuda"`` runs the
kernels in Python threads on the CPU: it is available, and correct, but never chosen by ``backend=None``.
"""

import dataclasses
import functools
import sys

import numpy as np

BACKENDS = ("numba-cpu", "numba-cuda", "cupy")


def cuda_simulated():
    """True when Numba's CUDA simulator is on."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


@functools.cache
def available_backends():
    """The backends this machine can run, in :data:`BACKENDS` order; never raises.

    ``"numba-cuda"`` needs the ``numba-cuda`` package and a GPU, or the CUDA simulator; ``"cupy"`` needs CuPy and a
    GPU with a working driver.
    """
    from ._launch import cuda

    found = ["numba-cpu"]
    try:
        if cuda is not None and cuda.is_available():
            found.append("numba-cuda")
    except Exception:  # no driver, a broken toolkit: not available
        pass
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            found.append("cupy")
    except Exception:
        pass
    return tuple(found)


def resolve_backend(backend):
    """The backend to run: ``backend`` itself, checked, or the fastest available for ``None``."""
    if backend is None:
        available = available_backends()
        if "cupy" in available:
            return "cupy"
        if "numba-cuda" in available and not cuda_simulated():
            return "numba-cuda"
        return "numba-cpu"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if backend not in available_backends():
        raise ValueError(f"backend {backend!r} is not available on this machine (available: {available_backends()})")
    return backend


def is_cupy(x):
    """True for a CuPy array (without importing CuPy)."""
    return type(x).__module__.split(".")[0] == "cupy"


def to_host(x):
    """A NumPy view or copy of ``x`` (CuPy arrays are copied from the device; anything else goes to np.asarray)."""
    if is_cupy(x):
        return x.get()
    if hasattr(x, "copy_to_host"):  # a numba device array
        return x.copy_to_host()
    return x


def like(result, *inputs):
    """``result`` (NumPy, CuPy or a numba device array) as the array type of the first array among ``inputs``."""
    if any(is_cupy(x) for x in inputs):
        return sys.modules["cupy"].asarray(result)  # a numba device array converts zero-copy
    if is_cupy(result):
        return result.get()
    if hasattr(result, "copy_to_host"):
        return result.copy_to_host()
    return np.asarray(result)


def to_numba_device(x):
    """A Numba device view of a CuPy array (zero-copy) or a device copy of a host array; C-contiguous either way."""
    from ._launch import cuda

    if is_cupy(x):
        return cuda.as_cuda_array(sys.modules["cupy"].ascontiguousarray(x))
    return cuda.to_device(np.ascontiguousarray(x))


def cupy_array(x, dtype=None):
    """``x`` as a C-contiguous CuPy array (of ``dtype``, when given), copied to the device when it is a host array."""
    import cupy

    return cupy.ascontiguousarray(cupy.asarray(x, dtype=dtype))


def arrays_converted(record, convert):
    """``record`` (a :class:`~fcis_twin.reference.detect.Stages` or any part of one, or a stage's NamedTuple result
    such as :class:`~fcis_twin.reference.joint.JointOutput`) with every array in it, NumPy or CuPy, replaced by
    ``convert(array)``; the configuration and every other value unchanged.

    ``arrays_converted(stages, cupy.asnumpy)`` copies a record from the GPU to the host.
    """
    if isinstance(record, np.ndarray) or is_cupy(record):
        return convert(record)
    if isinstance(record, tuple) and hasattr(record, "_fields"):
        return type(record)(*(arrays_converted(value, convert) for value in record))
    from ..reference.detect import FCISConfig

    if dataclasses.is_dataclass(record) and not isinstance(record, (type, FCISConfig)):
        return dataclasses.replace(record, **{f.name: arrays_converted(getattr(record, f.name), convert)
                                              for f in dataclasses.fields(record)})
    return record
