r"""The FCIS inference graph on a backend: the twin of :mod:`fcis_twin.reference.detect`.

The graph is written once, in :func:`fcis_twin.reference.detect.detect`; it calls its heavy stages through a
:class:`~fcis_twin.reference.detect.Kernels` record.  Here that record holds a backend's kernels: the RPN's NMS,
both assembly passes and the box regression's assembly, the joint formulation, and mask voting with its paste.
The light array code between them (anchors, decoding, clipping, ranking, the box regression's average) is the
reference's NumPy code, which NumPy's dispatch runs on the GPU for CuPy network outputs: with them the graph stays on
the device and gives a record of CuPy arrays (:func:`detect`).

Agreement with the reference: NMS and voting give the reference's results exactly on every backend.  The assembly
kernels compute each bin as the reference's loop template does (a float32 sum in row-major order, one division),
where the vectorised reference reads a float64 summed-area table and rounds once, so assembled maps, and the
class probabilities, masks and box deltas made from them, may differ from the reference's in the last bits
(``tests/test_assemble.py`` bounds that difference); the joint kernels' ``exp`` adds a last-bit difference to the
mask probabilities (:mod:`fcis_twin.accelerated.joint`).  Such a difference changes a detection only where it
moves a score across a tie or a threshold, or a voted pixel across ``binary_threshold``; on the oracle scenes of
the test suite the detections are equal.
"""

import functools

from ..reference.detect import DEFAULT_CONFIG, Kernels
from ..reference.detect import detect as reference_detect
from ._backend import is_cupy, resolve_backend


def kernels(backend=None):
    """The :class:`~fcis_twin.reference.detect.Kernels` of ``backend`` (None: the fastest available), to pass to
    :func:`fcis_twin.reference.detect.detect` for as many images as the caller likes: each function keeps nothing
    between calls, so a caller may refill its buffers in place between images.

    Raises
    ------
    ValueError
        An unknown or unavailable backend.
    """
    from .assemble import ps_assemble
    from .joint import joint_forward
    from .nms import nms
    from .voting import mask_voting

    backend = resolve_backend(backend)
    return Kernels(
        nms=functools.partial(nms, backend=backend),
        ps_assemble=functools.partial(ps_assemble, backend=backend),
        joint_forward=functools.partial(joint_forward, backend=backend),
        mask_voting=functools.partial(mask_voting, backend=backend),
    )


def _one_image_kernels(backend):
    """:func:`kernels` for one call of :func:`detect`: its assembly keeps Numba-CPU's channels-last copy of the score
    maps between the graph's two passes over the same maps (:func:`fcis_twin.accelerated.assemble.reusing_layouts`),
    and the record is dropped when the call returns, so that no copy outlives the arrays it was made from."""
    from .assemble import reusing_layouts

    backend = resolve_backend(backend)
    return kernels(backend)._replace(ps_assemble=reusing_layouts(backend))


def detect(rpn_prob, rpn_deltas, seg_maps, bbox_maps, image_shape, config=DEFAULT_CONFIG, *, backend=None):
    """FCIS inference on one image's network outputs, its heavy stages on the chosen backend.

    The twin of :func:`fcis_twin.reference.detect.detect`: the same arguments, errors and
    :class:`~fcis_twin.reference.detect.Stages` record; the detections equal the reference's except where a
    last-bit difference of the assembled maps moves a score across a tie or threshold (module docstring).

    Parameters
    ----------
    rpn_prob, rpn_deltas, seg_maps, bbox_maps, image_shape, config
        As in the reference; NumPy or CuPy arrays.
    backend : {"numba-cpu", "numba-cuda", "cupy"} or None
        None: the fastest available (:func:`fcis_twin.accelerated.resolve_backend`).

    Returns
    -------
    stages : Stages
        NumPy arrays throughout, or CuPy arrays throughout when any of the four network outputs is a CuPy array.

    Notes
    -----
    Where the arrays are:

    - **CuPy outputs** (any of the four; the others are copied to the device first): the whole graph stays on the
      device.  The array code between the kernels is the reference's, run by CuPy through NumPy's dispatch, and the
      GPU kernels take and give CuPy arrays without a copy (``"numba-cuda"`` through Numba's zero-copy view).  What
      crosses to the host is small: boxes, scores and class probabilities (which the kernels check, and NMS and
      voting choose their candidates from), the ROIs of each pass, and single flags and counts (each check's
      verdict, the size of each selection).  With ``"numba-cpu"`` each kernel copies its operands to the host and
      its results back.
    - **NumPy outputs**: the graph runs on the host; a GPU backend's kernels copy their operands to the device and
      their results back, so the score maps cross once per assembly pass.
    """
    outputs = (rpn_prob, rpn_deltas, seg_maps, bbox_maps)
    if any(is_cupy(a) for a in outputs):
        import cupy

        outputs = tuple(cupy.asarray(a) for a in outputs)
    return reference_detect(*outputs, image_shape, config, kernels=_one_image_kernels(backend))

