"""Input validation shared by every stage, reference and accelerated alike.

Each checker names the offending argument in its message, converts to the dtype the stage computes in, and
returns the converted array, so that a stage body can start from clean inputs.  The accelerated side calls the
same functions so that the same bad input gets the same error on every backend.

The array checkers take ``device=True`` from the accelerated wrappers: an array on a GPU (one with a
``__cuda_array_interface__`` and a NumPy dtype, as CuPy's) is then checked where it is, through its own methods and
NumPy's dispatch to its library, and returned there; nothing is copied to the host.  This module imports nothing GPU.
"""

import math
import numbers

import numpy as np

#: Largest box coordinate magnitude a paste accepts: keeps every float32 intermediate of the sampling finite.
MAX_COORDINATE = 2.0**23


def is_device_array(x):
    """True for an array that lives on a GPU and speaks NumPy's dtypes (a CuPy array); never imports a GPU library."""
    return hasattr(x, "__cuda_array_interface__") and isinstance(getattr(x, "dtype", None), np.dtype)


def as_array(name, x, *, ndim=None, last=None, dtype=np.float32, finite=True, device=False):
    """Convert ``x`` to an array of ``dtype`` and check its rank, last axis and finiteness.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    x : array_like
    ndim : int, optional
        Required number of dimensions.
    last : int, optional
        Required length of the last axis.
    dtype : numpy dtype
        The dtype to convert to.
    finite : bool
        Reject NaN and infinity.
    device : bool
        Keep a GPU array (:func:`is_device_array`) where it is; anything else becomes an ndarray.
    """
    if device and is_device_array(x):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # e.g. ragged nested lists
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {tuple(arr.shape)}")
    if last is not None and (arr.ndim == 0 or arr.shape[-1] != last):
        raise ValueError(f"{name} must have last axis of length {last}, got shape {tuple(arr.shape)}")
    arr = arr.astype(dtype, copy=False)
    if finite and np.issubdtype(arr.dtype, np.floating) and arr.size and not bool(np.isfinite(arr).all()):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return arr


def as_boxes(name, boxes):
    """``(R, 4)`` float32 boxes ``(x1, y1, x2, y2)``, finite; ``x2 < x1`` is rejected."""
    boxes = as_array(name, boxes, ndim=2, last=4)
    if boxes.size and ((boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
        raise ValueError(f"{name} must satisfy x1 <= x2 and y1 <= y2 (half-open boxes)")
    return boxes


def as_rois(name, rois, num_images):
    """``(R, 5)`` float32 ROIs ``(batch_index, x1, y1, x2, y2)`` with a valid integer batch index."""
    rois = as_array(name, rois, ndim=2, last=5)
    if rois.size:
        b = rois[:, 0]
        if (b != np.floor(b)).any() or (b < 0).any() or (b >= num_images).any():
            raise ValueError(f"{name}[:, 0] must hold integer batch indices in [0, {num_images})")
    return rois


def as_scores(name, scores, length):
    """``(length,)`` float32 scores, finite."""
    scores = as_array(name, scores, ndim=1)
    if scores.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},) to match the boxes, got {scores.shape}")
    return scores


def as_labels(name, labels, length):
    """``(length,)`` int64 class labels."""
    arr = np.asarray(labels)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},) to match the boxes, got {arr.shape}")
    return arr.astype(np.int64, copy=False)


def as_probabilities(name, x, *, ndim, device=False):
    """A float32 array of probabilities: finite and in ``[0, 1]`` (``device``: as :func:`as_array`)."""
    arr = as_array(name, x, ndim=ndim, device=device)
    if arr.size and bool(((arr < 0) | (arr > 1)).any()):
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return arr


def as_mask_probs(name, masks, *, ndim, device=False):
    """Float32 mask probabilities of rank ``ndim``: finite, in ``[0, 1]``, with a non-empty ``Ph x Pw`` grid."""
    masks = as_probabilities(name, masks, ndim=ndim, device=device)
    if masks.shape[-1] == 0 or masks.shape[-2] == 0:
        raise ValueError(f"{name} must have a non-empty mask grid (P >= 1), got shape {tuple(masks.shape)}")
    return masks


def as_paste_boxes(name, boxes):
    """``(R, 4)`` float32 boxes as :func:`as_boxes`, every coordinate within ``[-MAX_COORDINATE, MAX_COORDINATE]``."""
    boxes = as_boxes(name, boxes)
    if boxes.size and (np.abs(boxes) > MAX_COORDINATE).any():
        limit = f"{MAX_COORDINATE:.0f}"
        raise ValueError(f"{name} coordinates must lie in [-{limit}, {limit}] to be pasted")
    return boxes


def as_probability(name, value):
    """A float threshold in ``[0, 1]``."""
    return as_float(name, value, low=0.0, high=1.0)


def as_float(name, value, *, low=-math.inf, high=math.inf, low_open=False):
    """A finite real scalar in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    below = value <= low if low_open else value < low
    if below or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value}")
    return value


def as_int(name, value, *, low=None):
    """An integer scalar, at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def as_shape(name, shape, *, length, low=1, form="(H, W)"):
    """A shape tuple of exactly ``length`` ints, each at least ``low``; ``form`` describes it in errors."""
    try:
        items = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple {form}, got {type(shape).__name__}") from None
    if len(items) != length:
        raise ValueError(f"{name} must be {length} ints {form}, got {shape!r}")
    return tuple(as_int(name, v, low=low) for v in items)


def as_image_shape(name, image_shape):
    """``(H, W)`` as two positive ints (a longer tuple such as ``(H, W, 3)`` is cut to its first two)."""
    try:
        items = tuple(image_shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple (H, W), got {type(image_shape).__name__}") from None
    return as_shape(name, items[:2], length=2)


def round_half_away(x):
    """Round half away from zero, as C's ``round``; never NumPy's round-half-to-even.

    Works on float32 input exactly: the addition of 0.5 happens in float64, where it cannot round.

    >>> round_half_away(np.array([0.5, 1.5, 2.5, -0.5, 0.49999997], np.float32))
    array([ 1.,  2.,  3., -1.,  0.])
    """
    x = np.asarray(x, dtype=np.float64)
    return np.copysign(np.floor(np.abs(x) + 0.5), x)
