"""Comparing a learner's output with the reference's: what differs, where, in words."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Difference:
    """Where the learner's output differs: the output ``part`` (None for the whole output), the ``index`` of the
    first differing element (None when the difference is not of one element), and the ``text`` that says it."""

    text: str
    part: str | None = None
    index: tuple | None = None



def describe(value, limit=400):
    """A short text of a value for the messages: arrays with their dtype, long ones cut."""
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=8, threshold=60, edgeitems=4, linewidth=96):
            text = repr(value)
    elif isinstance(value, (np.floating, float)):
        text = repr(float(value)) if isinstance(value, float) else f"np.{type(value).__name__}({value!r})"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scalar(value):
    """One element as the messages write it: ``0.39130434`` rather than ``np.float32(0.39130434)``."""
    if isinstance(value, (np.floating, float)):
        return "NaN" if value != value else f"{float(value):.9g}"
    if isinstance(value, (np.bool_, bool)):
        return str(bool(value))
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    return repr(value)


def _index(flat, shape):
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def compare_array(name, expected, got, *, atol=0.0, rtol=0.0):
    """A :class:`Difference` when ``got`` is not ``expected`` (an ndarray of the same dtype and shape, equal within
    ``atol + rtol * |expected|``, which may be arrays that broadcast), else None."""
    if not isinstance(got, np.ndarray):
        return Difference(f"{name} must be a numpy.ndarray, got {type(got).__name__}", name)
    if got.dtype != expected.dtype:
        return Difference(f"{name} has dtype {got.dtype}; the reference's is {expected.dtype}", name)
    if got.shape != expected.shape:
        return Difference(f"{name} has shape {got.shape}; the reference's is {expected.shape}", name)
    if expected.dtype.kind in "fc":
        nan = np.isnan(got) & ~np.isnan(expected)
        if nan.any():
            at = _index(np.flatnonzero(nan)[0], got.shape)
            return Difference(f"{name} holds NaN at {at} where the reference has {scalar(expected[at])} "
                              f"({int(nan.sum())} NaN in all)", name, at)
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(got.astype(np.float64) - expected.astype(np.float64))
            close = (err <= atol + rtol * np.abs(expected.astype(np.float64))) | (got == expected)
        close |= np.isnan(got) & np.isnan(expected)
    else:
        close = got == expected
    if close.all():
        return None
    bad = np.flatnonzero(~close)
    at = _index(bad[0], got.shape)
    where = f" at {at}" if got.ndim else ""
    tolerance = "" if not (np.any(atol) or np.any(rtol)) else " (beyond the tolerance)"
    return Difference(f"{name} differs{where}: the reference has {scalar(expected[at])}, yours {scalar(got[at])}"
                      f"{tolerance}; {len(bad)} of {got.size} elements differ", name, at)


def compare_parts(names, expected, got, comparators):
    """Compare a tuple-like output part by part: ``comparators[i](expected[i], got[i])`` for part ``names[i]``."""
    if not isinstance(got, tuple) or len(got) != len(names):
        kind = type(got).__name__
        return Difference(f"the output must be a tuple of {len(names)} arrays ({', '.join(names)}), got {kind}"
                          + (f" of length {len(got)}" if isinstance(got, tuple) else ""))
    for name, e, g, cmp in zip(names, expected, got, comparators, strict=True):
        diff = cmp(name, e, g)
        if diff is not None:
            return diff
    return None
