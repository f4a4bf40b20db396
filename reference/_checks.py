"""Input validation shared by every stage, reference and accelerated alike.

Each checker names the offending argument in its message, converts to the dtype the stage computes in, and
returns the converted array, so that a stage body can start from clean inputs.  The accelerated side calls the
same functions so that the same bad input gets the same error on every backend.

The array checkers take ``device=True`` from the accelerated wrappers and from the array code of the inference graph
(:func:`fcis_twin.reference.detect.detect`): an array on a GPU that NumPy's functions dispatch to (one with a
``__cuda_array_interface__``, an ``__array_function__`` and a NumPy dtype, as CuPy's) is then checked where it is,
through its own methods and NumPy's dispatch to its library, and returned there; nothing is copied to the host.  This
module imports nothing GPU.
"""

import math
import numbers

import numpy as np

#: Largest magnitude of a box coordinate and largest image side any stage accepts (8,388,608 pixels).  Up to it,
#: float32 holds every integer pixel position exactly, a box's area (at most :math:`2^{48}`) and every float32
#: intermediate of IoU, sampling and pasting stay finite, and an image side is far from any index overflow.
MAX_COORDINATE = 2.0**23
#: Largest integer a scalar argument may be: what an int64 kernel argument holds.
MAX_INT = int(np.iinfo(np.int64).max)


def is_device_array(x):
    """True for an array that lives on a GPU, speaks NumPy's dtypes and takes NumPy's dispatch (a CuPy array); never
    imports a GPU library.

    A Numba device array is not one (it has no ``__array_function__``): NumPy copies it to the host.
    """
    return (hasattr(x, "__cuda_array_interface__") and hasattr(x, "__array_function__")
            and isinstance(getattr(x, "dtype", None), np.dtype))


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
    finite : bool or "converted"
        ``True`` rejects NaN and infinity; ``"converted"`` rejects only finite values that the conversion to
        ``dtype`` turns into infinity (a float64 ``1e39`` given for float32), and costs nothing when ``x`` already
        has ``dtype``: for a caller that checks finiteness itself, where it reads (``ps_assemble``).
    device : bool
        Keep a GPU array (:func:`is_device_array`) where it is; anything else becomes an ndarray.
    """
    if device and is_device_array(x):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # e.g. ragged nested lists, or a CuPy array, which refuses an implicit copy
            if is_device_array(x):
                raise TypeError(f"{name} is a GPU array ({type(x).__module__}.{type(x).__name__}) where this function "
                                "takes host arrays: copy it to the host (.get()), or call the function's "
                                "fcis_twin.accelerated twin") from exc
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):  # its imaginary part would be dropped without a word
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {tuple(arr.shape)}")
    if last is not None and (arr.ndim == 0 or arr.shape[-1] != last):
        raise ValueError(f"{name} must have last axis of length {last}, got shape {tuple(arr.shape)}")
    if np.dtype(dtype) == np.bool_:
        return _as_bool(name, arr)
    with np.errstate(over="ignore"):  # reported below, naming the argument
        converted = arr.astype(dtype, copy=False)
    if finite == "converted":
        if converted is not arr and np.issubdtype(converted.dtype, np.floating) and arr.size:
            overflowed = ~np.isfinite(converted)
            if np.issubdtype(arr.dtype, np.floating):
                overflowed &= np.isfinite(arr)
            if bool(overflowed.any()):
                _raise_out_of_range(name, dtype)
        return converted
    if finite and np.issubdtype(converted.dtype, np.floating) and arr.size and not bool(np.isfinite(converted).all()):
        if np.issubdtype(arr.dtype, np.floating) and not bool(np.isfinite(arr).all()):
            raise ValueError(f"{name} must be finite (no NaN or infinity)")
        _raise_out_of_range(name, dtype)
    return converted


def _raise_out_of_range(name, dtype):
    raise ValueError(f"{name} must lie within the range of {np.dtype(dtype).name} (largest magnitude "
                     f"{float(np.finfo(dtype).max):.4g}): a value overflows to infinity")


def _as_bool(name, arr):
    """A boolean array from booleans, or from numbers that are each exactly 0 or 1; anything else is an error.

    A cast alone would turn NaN, and a probability such as 0.01, into True.
    """
    if arr.dtype == np.bool_:
        return arr
    if arr.size and not bool(((arr == 0) | (arr == 1)).all()):
        if np.issubdtype(arr.dtype, np.floating) and bool(np.isnan(arr).any()):
            raise ValueError(f"{name} must be a binary mask: it holds NaN")
        raise ValueError(f"{name} must be a binary mask (bool, or numbers that are each 0 or 1); binarize "
                         "probabilities first")
    return arr.astype(np.bool_)


def as_boxes(name, boxes, *, device=False):
    """``(R, 4)`` float32 boxes ``(x1, y1, x2, y2)``, finite, within ``[-MAX_COORDINATE, MAX_COORDINATE]``;
    ``x2 < x1`` is rejected (``device``: as :func:`as_array`)."""
    boxes = as_coordinates(name, as_array(name, boxes, ndim=2, last=4, device=device))
    if boxes.size and ((boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
        raise ValueError(f"{name} must satisfy x1 <= x2 and y1 <= y2 (half-open boxes)")
    return boxes


def as_coordinates(name, coordinates):
    """``coordinates`` (an array of pixel positions) unchanged, after checking each against :data:`MAX_COORDINATE`."""
    if coordinates.size and bool((abs(coordinates) > MAX_COORDINATE).any()):
        limit = f"{MAX_COORDINATE:.0f}"
        raise ValueError(f"{name} must hold coordinates in [-{limit}, {limit}] (MAX_COORDINATE)")
    return coordinates


def as_rois(name, rois, num_images):
    """``(R, 5)`` float32 ROIs ``(batch_index, x1, y1, x2, y2)`` with a valid integer batch index and coordinates
    within ``[-MAX_COORDINATE, MAX_COORDINATE]``."""
    rois = as_array(name, rois, ndim=2, last=5)
    if rois.size:
        b = rois[:, 0]
        if (b != np.floor(b)).any() or (b < 0).any() or (b >= num_images).any():
            raise ValueError(f"{name}[:, 0] must hold integer batch indices in [0, {num_images})")
        as_coordinates(f"{name}[:, 1:5]", rois[:, 1:])
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
    if arr.dtype == np.uint64 and arr.size and arr.max() > MAX_INT:  # would wrap round to a negative int64
        raise ValueError(f"{name} must be <= {MAX_INT}")
    return arr.astype(np.int64, copy=False)


def as_class_labels(name, labels, length):
    """``(length,)`` int64 foreground class labels (each >= 1; 0 is background); an empty list such as ``[]``
    (float64 to NumPy) is an empty label array."""
    arr = np.asarray(labels)
    if arr.size == 0 and arr.dtype == np.float64:
        labels = arr.astype(np.int64)
    labels = as_labels(name, labels, length)
    if (labels < 1).any():
        raise ValueError(f"{name} must be >= 1 (0 is background)")
    return labels


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


def as_probability(name, value):
    """A float threshold in ``[0, 1]``."""
    return as_float(name, value, low=0.0, high=1.0)


def as_binary_threshold(name, value):
    """A binarization threshold in ``(0, 1]`` as a positive float32, so that ``prob >= threshold`` is False wherever
    the probability is 0."""
    threshold = np.float32(as_float(name, value, low=0.0, high=1.0, low_open=True))
    if threshold == 0:
        raise ValueError(f"{name} must be in (0, 1] and positive in float32, got {value} (it rounds to 0)")
    return threshold


def as_float(name, value, *, low=-math.inf, high=math.inf, low_open=False):
    """A finite real scalar in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int such as 10**400
        raise ValueError(f"{name} must be finite, got an integer too large for a float") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    below = value <= low if low_open else value < low
    if below or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value}")
    return value


def as_int(name, value, *, low=-MAX_INT - 1, high=MAX_INT):
    """An integer scalar in ``[low, high]`` (by default the int64 range, what a kernel argument holds)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def as_shape(name, shape, *, length, low=1, high=MAX_INT, form="(H, W)"):
    """A shape tuple of exactly ``length`` ints, each in ``[low, high]``; ``form`` describes it in errors."""
    try:
        items = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple {form}, got {type(shape).__name__}") from None
    if len(items) != length:
        raise ValueError(f"{name} must be {length} ints {form}, got {shape!r}")
    return tuple(as_int(name, v, low=low, high=high) for v in items)


def as_image_shape(name, image_shape):
    """``(H, W)`` as two ints in ``[1, MAX_COORDINATE]`` (a longer tuple such as ``(H, W, 3)`` is cut to its first
    two)."""
    try:
        items = tuple(image_shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple (H, W), got {type(image_shape).__name__}") from None
    return as_shape(name, items[:2], length=2, high=int(MAX_COORDINATE))


def round_half_away(x):
    """Round half away from zero, as C's ``round``; never NumPy's round-half-to-even.

    Works on float32 input exactly: the addition of 0.5 happens in float64, where it cannot round.

    >>> round_half_away(np.array([0.5, 1.5, 2.5, -0.5, 0.49999997], np.float32))
    array([ 1.,  2.,  3., -1.,  0.])
    """
    x = np.asarray(x, dtype=np.float64)
    return np.copysign(np.floor(np.abs(x) + 0.5), x)
