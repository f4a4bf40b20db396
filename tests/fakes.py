"""Stand-ins for tests that run without a GPU."""

import numpy as np

from fcis_twin.accelerated import arrays_converted

#: NumPy functions (not ufuncs: CuPy has every one this project calls) that CuPy implements under the same name, so
#: that NumPy's dispatch (``__array_function__``) finds them for a CuPy array: those that the code CuPy runs through
#: NumPy calls, each one in CuPy's API reference.  :class:`StrictDeviceArray` refuses any other, so that new code
#: cannot lean on one CuPy lacks without a look at that reference.
CUPY_FUNCTIONS = frozenset({
    "all", "any", "arange", "argsort", "array", "asarray", "ascontiguousarray", "clip", "concatenate", "cumsum",
    "empty", "flatnonzero", "full", "mean", "nonzero", "ones", "reshape", "searchsorted", "shape", "stack", "sum",
    "transpose", "where", "zeros", "zeros_like",
})
#: The creation functions: they take host data (``np.asarray(x, like=device_array)`` is an explicit copy to the
#: device).  Every other function given a NumPy array beside a device array refuses it, as CuPy does.
CREATION_FUNCTIONS = frozenset({"arange", "array", "asarray", "ascontiguousarray", "empty", "full", "ones", "zeros"})


class StrictDeviceArray(np.lib.mixins.NDArrayOperatorsMixin):
    """A host array that behaves towards NumPy as a CuPy array does, for tests of code that must keep its arrays
    on the device.

    NumPy's functions and ufuncs dispatch to it and return it; ``np.asarray(x)`` (an implicit copy to the host) is a
    ``TypeError``, and so is a NumPy array beside it in one call or as an index, as CuPy refuses them; ``.get()`` is the
    explicit copy to the host.  Reductions return 0-d arrays, as CuPy's do.  Only the functions in
    :data:`CUPY_FUNCTIONS` dispatch.  It cannot tell whether CuPy computes each function the same way (dtype rules,
    keyword arguments); the GPU tests do.
    """

    __slots__ = ("_data",)

    def __init__(self, data):
        self._data = np.asarray(data)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (0, False), "version": 3}

    def __array__(self, dtype=None, copy=None):
        raise TypeError("implicit conversion of a device array to a NumPy array (call .get())")

    def get(self):
        """A NumPy copy: the explicit move to the host."""
        return self._data.copy()

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    T = property(lambda self: _wrap(self._data.T))

    def __len__(self):
        return len(self._data)

    def __bool__(self):
        return bool(self._data)

    def __int__(self):
        return int(self._data)

    def __float__(self):
        return float(self._data)

    def __index__(self):
        return self._data.__index__()

    def __repr__(self):
        return f"StrictDeviceArray({self._data!r})"

    def __getitem__(self, key):
        return _wrap(self._data[_unwrap(key, "an index")])

    def __setitem__(self, key, value):
        self._data[_unwrap(key, "an index")] = _unwrap(value, "a value")

    def __getattr__(self, name):  # the array methods: astype, reshape, mean, any, ...
        method = getattr(self._data, name)
        if not callable(method):
            raise AttributeError(name)
        return lambda *args, **kwargs: _wrap(method(*_unwrap(args, "an argument"), **_unwrap(kwargs, "an argument")))

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs, kwargs = _unwrap((inputs, kwargs), f"an operand of {ufunc.__name__}")
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        name = func.__name__
        if name not in CUPY_FUNCTIONS:
            raise TypeError(f"numpy.{name} has no CuPy counterpart listed in tests/fakes.py")
        allow_host = name in CREATION_FUNCTIONS
        args, kwargs = _unwrap((args, kwargs), f"an argument of numpy.{name}", allow_host)
        return _wrap(func(*args, **kwargs))


def _unwrap(value, what, allow_host=False):
    """``value`` with every StrictDeviceArray in it replaced by its data; a NumPy array (not 0-d) is a TypeError unless
    ``allow_host``."""
    if isinstance(value, StrictDeviceArray):
        return value._data
    if isinstance(value, np.ndarray):
        if not allow_host and value.ndim:  # a 0-d array is how NumPy passes on a scalar operand
            raise TypeError(f"a NumPy array as {what}, beside a device array")
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrap(v, what, allow_host) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, what, allow_host) for k, v in value.items()}
    return value


def _wrap(value):
    """NumPy results as device arrays (scalars as 0-d arrays, as CuPy's reductions give); tuples item by item."""
    if isinstance(value, (np.ndarray, np.generic)):
        return StrictDeviceArray(value)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def strictly_on_device(x):
    """``x`` (a NumPy array) as a :class:`StrictDeviceArray`."""
    return StrictDeviceArray(np.array(x))


def through_the_host(kernel):
    """``kernel`` (a host stage function) behind explicit copies: it takes device stand-ins and gives them, as a GPU
    kernel does, so that what a test holds to the device is the code around it."""
    def call(*args, **kwargs):
        host = [a.get() if isinstance(a, StrictDeviceArray) else a for a in args]
        return arrays_converted(kernel(*host, **kwargs), strictly_on_device)
    return call
