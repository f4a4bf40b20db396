"""Finite-difference gradient checks shared by the tests of the training stages (float64, small shapes)."""

import numpy as np

#: Central-difference step; with float64 and smooth functions of O(1) values the truncation and rounding errors
#: are about 1e-10, far below the tolerance.
STEP = 1e-6
#: Tolerance of an analytic gradient against the central differences (relative to the larger of the two, plus an
#: absolute floor for entries that are 0).
RTOL, ATOL = 1e-6, 1e-8


def numerical_gradient(f, x, step=STEP, entries=None):
    """Central differences of the scalar function ``f`` at every entry of the float64 array ``x`` (or only at the
    index tuples ``entries``; the others stay 0)."""
    x = np.array(x, np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape) if entries is None else entries:
        saved = x[i]
        x[i] = saved + step
        up = f(x)
        x[i] = saved - step
        down = f(x)
        x[i] = saved
        grad[i] = (up - down) / (2 * step)
    return grad


def assert_gradient(f, x, analytic, rtol=RTOL, atol=ATOL):
    """Assert that ``analytic`` is the gradient of ``f`` at ``x``."""
    np.testing.assert_allclose(analytic, numerical_gradient(f, x), rtol=rtol, atol=atol)
