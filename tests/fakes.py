"""Stand-ins for tests that run without a GPU."""

import numpy as np


class DeviceArray(np.ndarray):
    """A NumPy array that says it lives on a GPU (it has a ``__cuda_array_interface__``), as a CuPy array does.

    The shared checkers keep such an array where it is when called with ``device=True``; with it the tests follow that
    path on a machine without a GPU.
    """

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (0, False), "version": 3}


def on_device(x):
    """``x`` as a :class:`DeviceArray`."""
    return np.asarray(x).view(DeviceArray)
