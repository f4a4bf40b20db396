"""The input contract every public function enforces through the shared checkers (``docs/conventions.md``).

Each test feeds one class of bad input to several public functions, reference and numba-cpu, and expects a
``ValueError`` or ``TypeError`` naming the argument, never a silently wrong answer or a Python-level crash.
"""

import re
from types import SimpleNamespace

import numpy as np
import pytest

from fcis_twin.accelerated import nms as accel_nms
from fcis_twin.accelerated import paste as accel_paste
from fcis_twin.accelerated import voting as accel_voting
from fcis_twin.reference import anchors, assemble, boxes, coco, detect, evaluate, nms, paste, voting
from fcis_twin.reference._checks import MAX_COORDINATE, as_array

#: Functions that take binary masks, each as ``(name of the mask argument, call with the masks)``.
MASK_TAKERS = {
    "mask_iou": ("masks_a", lambda m: evaluate.mask_iou(m, np.ones((1, 2, 3), bool))),
    "tight_boxes": ("masks", boxes.tight_boxes),
    "detections_to_coco": ("detections.masks", lambda m: evaluate.detections_to_coco(
        SimpleNamespace(boxes=[[0, 0, 3, 2]], scores=[0.5], labels=[1], masks=m), 1, [0, 1])),
    "evaluate_sds": ("detections[0].masks", lambda m: evaluate.evaluate_sds(
        [SimpleNamespace(masks=m, labels=[1], scores=[0.5])],
        [SimpleNamespace(masks=np.ones((1, 2, 3), bool), labels=[1])])),
    "write_coco": ("scenes[0].masks", lambda m: coco.write_coco(
        [SimpleNamespace(image=np.zeros((2, 3, 3), np.uint8), masks=m, labels=[1])], "unused-never-written")),
}


@pytest.mark.parametrize("name", list(MASK_TAKERS))
@pytest.mark.parametrize("value", [np.nan, 0.01, 0.5, 2.0, -1.0])
def test_masks_that_are_not_binary_are_refused(name, value):
    """NaN and probabilities are not masks: a cast would make them True (a 0.01 mask equal to an all-ones mask)."""
    arg, call = MASK_TAKERS[name]
    with pytest.raises(ValueError, match=re.escape(arg) + " must be a binary mask"):
        call(np.full((1, 2, 3), value))


def test_masks_of_zeros_and_ones_in_any_number_type_are_masks():
    """0/1 numbers are accepted and mean what the booleans mean."""
    a = np.array([[[0, 1, 1], [0, 0, 1]]])
    for dtype in (np.uint8, np.int64, np.float32, np.float64):
        np.testing.assert_array_equal(evaluate.mask_iou(a.astype(dtype), a.astype(bool)), [[1.0]])
        np.testing.assert_array_equal(boxes.tight_boxes(a.astype(dtype)), [[1, 0, 3, 2]])


@pytest.mark.parametrize("call", [
    lambda x: boxes.box_area(x),
    lambda x: nms.nms(x, [0.5], 0.5),
    lambda x: accel_nms.nms(x, [0.5], 0.5, backend="numba-cpu"),
    lambda x: paste.paste_masks(np.ones((1, 2, 2)), x, (4, 4)),
])
def test_complex_arrays_are_refused(call):
    """A complex array would lose its imaginary part in the float32 cast without a word."""
    with pytest.raises(TypeError, match="boxes must be real, got dtype complex128"):
        call(np.array([[0, 0, 2, 2 + 1j]]))


def test_complex_scores_and_maps_are_refused():
    with pytest.raises(TypeError, match="scores must be real"):
        nms.nms([[0, 0, 2, 2]], np.array([0.5 + 0j]), 0.5)
    with pytest.raises(TypeError, match="score_maps must be real"):
        assemble.ps_assemble(np.ones((1, 4, 4, 4), complex), [[0, 0, 0, 2, 2]], group_size=1, output_size=2,
                             spatial_scale=1.0)


def test_values_beyond_float32_name_the_range():
    """1e300 is finite in float64 but not in float32: the error says so rather than calling it infinite."""
    with pytest.raises(ValueError, match="boxes must lie within the range of float32"):
        boxes.box_area(np.array([[0, 0, 1e300, 1]]))
    with pytest.raises(ValueError, match=r"boxes must be finite \(no NaN or infinity\)"):
        boxes.box_area(np.array([[0, 0, np.inf, 1]]))


@pytest.mark.parametrize("nms_fn", [nms.nms, lambda *a: accel_nms.nms(*a, backend="numba-cpu")])
def test_huge_boxes_are_refused_not_overflowed(nms_fn):
    """Two identical boxes of side 1e20 had IoU 0 (the area overflowed float32) and both survived NMS."""
    huge = np.float32([[0, 0, 1e20, 1e20]] * 2)
    with pytest.raises(ValueError, match=r"boxes must hold coordinates in \[-8388608, 8388608\]"):
        nms_fn(huge, [0.9, 0.8], 0.5)
    with pytest.raises(ValueError, match="a must hold coordinates"):
        boxes.box_iou(huge, huge)


@pytest.mark.parametrize("nms_fn", [nms.nms, lambda *a: accel_nms.nms(*a, backend="numba-cpu")])
def test_boxes_at_the_coordinate_limit_still_compute(nms_fn):
    """At MAX_COORDINATE every float32 intermediate stays finite: identical boxes have IoU 1 and one survives."""
    big = np.float32([[-MAX_COORDINATE, -MAX_COORDINATE, MAX_COORDINATE, MAX_COORDINATE]] * 2)
    assert boxes.box_iou(big, big)[0, 1] == 1
    assert list(nms_fn(big, [0.9, 0.8], 0.5)) == [0]


@pytest.mark.parametrize(("call", "arg"), [
    (lambda: anchors.anchor_base(1e30), "base_size"),
    (lambda: anchors.anchor_base(16, scales=(1e35,)), "base_size 16.0 and scales"),
    (lambda: anchors.shift_anchors([[0, 0, 16, 16]], (10**7, 10**7), 16), "feature_shape"),
    (lambda: anchors.shift_anchors([[0, 0, 16, 16]], (4, 4), 1e300), "stride"),
])
def test_anchors_never_come_out_infinite(call, arg):
    """A huge scale or base size used to give infinite anchors; a huge map or stride anchors beyond the bound."""
    with pytest.raises(ValueError, match=arg):
        call()


@pytest.mark.parametrize(("call", "arg"), [
    (lambda v: nms.nms([[0, 0, 1, 1]], [0.5], v), "iou_threshold"),
    (lambda v: anchors.anchor_base(v), "base_size"),
    (lambda v: assemble.ps_assemble(np.ones((1, 4, 4, 4)), [[0, 0, 0, 2, 2]], group_size=1, output_size=2,
                                    spatial_scale=v), "spatial_scale"),
    (lambda v: voting.mask_voting(np.zeros((0, 4)), np.zeros((0, 2, 2, 2)), np.zeros((0, 2)), (4, 4),
                                  score_threshold=v), "score_threshold"),
])
def test_integers_too_large_for_a_float_name_the_argument(call, arg):
    """10**400 as a float argument raised Python's OverflowError."""
    with pytest.raises(ValueError, match=f"{arg} must be finite"):
        call(10**400)


@pytest.mark.parametrize(("call", "arg"), [
    (lambda v: voting.mask_voting(np.zeros((0, 4)), np.zeros((0, 2, 2, 2)), np.zeros((0, 2)), (4, 4),
                                  max_detections=v), "max_detections"),
    (lambda v: assemble.ps_assemble(np.ones((1, 4, 4, 4)), [[0, 0, 0, 2, 2]], group_size=v, output_size=2,
                                    spatial_scale=1.0), "group_size"),
    (lambda v: accel_voting.mask_voting(np.zeros((0, 4)), np.zeros((0, 2, 2, 2)), np.zeros((0, 2)), (4, 4),
                                        max_detections=v, backend="numba-cpu"), "max_detections"),
])
def test_integers_beyond_int64_name_the_argument(call, arg):
    """An int no kernel argument can hold is refused by name, not met by an OverflowError in the kernel."""
    with pytest.raises(ValueError, match=f"{arg} must be <= 9223372036854775807"):
        call(2**63)


@pytest.mark.parametrize("call", [
    lambda shape: paste.paste_masks(np.ones((1, 2, 2)), [[0, 0, 1, 1]], shape),
    lambda shape: accel_paste.paste_masks(np.ones((1, 2, 2)), [[0, 0, 1, 1]], shape, backend="numba-cpu"),
    lambda shape: voting.mask_voting([[0, 0, 1, 1]], np.ones((1, 2, 2, 2)), [[0, 1]], shape),
    lambda shape: accel_voting.mask_voting([[0, 0, 1, 1]], np.ones((1, 2, 2, 2)), [[0, 1]], shape,
                                           backend="numba-cpu"),
    lambda shape: boxes.clip_boxes([[0, 0, 1, 1]], shape),
    lambda shape: detect.detect(np.zeros((1, 2, 1, 1)), np.zeros((1, 4, 1, 1)), np.zeros((1, 8, 1, 1)),
                                np.zeros((1, 8, 1, 1)), shape),
])
@pytest.mark.parametrize("shape", [(2**63, 4), (4, 2**31), (int(MAX_COORDINATE) + 1, 4)])
def test_image_shape_beyond_the_limit_names_it(call, shape):
    """``image_shape=(2**63, 4)`` gave a ValueError without the argument's name, or an OverflowError on numba-cpu."""
    with pytest.raises(ValueError, match=r"image_shape must be <= 8388608"):
        call(shape)


def test_integers_below_int64_name_the_argument():
    """An image id below the int64 range is refused by name as well."""
    with pytest.raises(ValueError, match="image_id must be >= -9223372036854775808"):
        evaluate.detections_to_coco(SimpleNamespace(boxes=np.zeros((0, 4)), scores=[], labels=[],
                                                    masks=np.zeros((0, 2, 2), bool)), -2**63 - 1, [0])


def test_unsigned_labels_beyond_int64_are_refused():
    """A uint64 label above the int64 range would wrap round to a negative class."""
    with pytest.raises(ValueError, match="labels must be <= 9223372036854775807"):
        nms.batched_nms([[0, 0, 1, 1], [0, 0, 1, 1]], [0.5, 0.4], np.array([2**64 - 1, 1], np.uint64), 0.5)


def test_as_array_converts_bool_without_a_copy():
    """A boolean input is returned as it is; 0/1 integers become a new boolean array."""
    masks = np.zeros((1, 2, 2), bool)
    assert as_array("m", masks, dtype=bool) is masks
    assert as_array("m", np.ones((2, 2), np.uint8), dtype=bool).dtype == np.bool_


def test_a_gpu_array_where_host_arrays_are_taken_says_so():
    """A CuPy array refuses NumPy's implicit copy; a function that takes host arrays names the argument and says it
    is on a GPU (the stand-in refuses the copy as CuPy does), not that it is not array-like."""
    from .fakes import strictly_on_device

    with pytest.raises(TypeError, match=r"boxes is a GPU array \(tests\.fakes\.StrictDeviceArray\).*\.get\(\)"):
        nms.nms(strictly_on_device(np.zeros((2, 4), np.float32)), np.ones(2, np.float32), 0.5)


def test_only_arrays_that_take_numpy_dispatch_stay_on_the_device():
    """An array with a ``__cuda_array_interface__`` but no ``__array_function__`` (a Numba device array) goes
    through NumPy's copy to the host; one with both (CuPy's, the stand-in) is kept where it is."""
    from fcis_twin.reference._checks import is_device_array

    from .fakes import strictly_on_device

    class NumbaLike:
        dtype = np.dtype(np.float32)
        __cuda_array_interface__ = {}

        def __array__(self, dtype=None, copy=None):
            return np.ones(3, np.float32)

    assert not is_device_array(NumbaLike())
    assert type(as_array("x", NumbaLike(), device=True)) is np.ndarray
    assert is_device_array(strictly_on_device([1.0]))
    assert not is_device_array(np.ones(3))
