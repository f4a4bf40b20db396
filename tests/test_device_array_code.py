"""The NumPy code that CuPy runs on the GPU, held to CuPy's rules on the CPU.

Several stages are written once as NumPy calls and run on the GPU for CuPy arrays, through NumPy's dispatch: the
joint formulation of the CuPy backend, the CSR voter lists of CuPy voting, the checkers of device arrays, and the
array code of the inference graph (``tests/test_detect_agreement.py`` runs the whole graph).  Each is called here
with ``tests/fakes.py``'s ``StrictDeviceArray``, which refuses, as CuPy does, an implicit copy to the host and a
NumPy array beside a device array: the result must be device arrays, equal to the host result.
"""

import numpy as np
import pytest

from fcis_twin.reference._checks import as_array, as_boxes, as_mask_probs
from fcis_twin.reference.boxes import clip_boxes, decode_boxes
from fcis_twin.reference.joint import check_joint_args, class_softmax, joint_forward_arrays
from fcis_twin.reference.nms import nms
from fcis_twin.reference.proposals import propose, rpn_outputs_to_anchor_order
from fcis_twin.reference.voting import voter_lists

from .fakes import StrictDeviceArray, strictly_on_device, through_the_host


def assert_same_on_the_device(got, want):
    """``got`` (a device array, or a tuple of them) holds ``want``'s values, dtypes and shapes."""
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, StrictDeviceArray), type(g)
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g.get(), w)


@pytest.mark.parametrize("seed", range(3))
def test_the_joint_formulation_of_the_cupy_backend(seed):
    x = np.random.default_rng(seed).normal(0, 4, (5, 6, 3, 3)).astype(np.float32)
    assert_same_on_the_device(check_joint_args(strictly_on_device(x), device=True), x)
    assert_same_on_the_device(joint_forward_arrays(strictly_on_device(x)), joint_forward_arrays(x))


@pytest.mark.parametrize("seed", range(3))
def test_the_class_softmax_of_numba_cuda_joint_runs_on_the_device(seed):
    """accelerated.joint_forward on numba-cuda hands CuPy inputs' scores to class_softmax on the device."""
    score = np.random.default_rng(seed).normal(0, 30, (6, 5)).astype(np.float32)
    assert_same_on_the_device(class_softmax(strictly_on_device(score)), class_softmax(score))


@pytest.mark.parametrize("shape", [(4, 7), (0, 3), (3, 0)])
def test_the_voter_lists_of_cupy_voting(shape):
    flags = np.random.default_rng(0).random(shape) < 0.4
    assert_same_on_the_device(voter_lists(strictly_on_device(flags)), voter_lists(flags))


def test_the_checkers_keep_device_arrays_and_refuse_the_same_input():
    maps = np.random.default_rng(1).random((2, 3, 4, 4))
    assert_same_on_the_device(as_array("maps", strictly_on_device(maps), ndim=4, finite="converted", device=True),
                              maps.astype(np.float32))
    masks = maps[0].astype(np.float32)
    assert_same_on_the_device(as_mask_probs("masks", strictly_on_device(masks), ndim=3, device=True), masks)
    boxes = np.float32([[0, 0, 4, 3], [1, 1, 2, 2]])
    assert_same_on_the_device(as_boxes("boxes", strictly_on_device(boxes), device=True), boxes)
    with pytest.raises(ValueError, match=r"^boxes must satisfy x1 <= x2"):
        as_boxes("boxes", strictly_on_device(boxes[:, [2, 1, 0, 3]]), device=True)
    with pytest.raises(ValueError, match=r"^masks must hold probabilities in \[0, 1\]"):
        as_mask_probs("masks", strictly_on_device(masks + 1), ndim=3, device=True)
    with pytest.raises(ValueError, match=r"^maps must lie within the range of float32"):
        as_array("maps", strictly_on_device(np.full((1, 1, 1, 1), 1e39)), ndim=4, finite="converted", device=True)


@pytest.mark.parametrize("seed", range(3))
def test_proposals_from_device_rpn_outputs(seed):
    """The RPN's part of the graph: reordering, decoding, clipping, filtering, ranking and NMS on device arrays."""
    rng = np.random.default_rng(seed)
    a, h, w, image_shape = 3, 4, 5, (64, 80)
    fg = rng.random((1, a, h, w), np.float32)
    rpn_prob = np.concatenate([1 - fg, fg], axis=1)
    rpn_deltas = rng.normal(0, 0.3, (1, 4 * a, h, w)).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(h) * 16.0, np.arange(w) * 16.0, indexing="ij")
    anchors = np.stack([xs, ys, xs + 24, ys + 20], axis=-1).repeat(a, axis=1).reshape(-1, 4).astype(np.float32)

    host = rpn_outputs_to_anchor_order(rpn_prob, rpn_deltas)
    device = rpn_outputs_to_anchor_order(strictly_on_device(rpn_prob), strictly_on_device(rpn_deltas))
    assert_same_on_the_device(device, host)
    decoded = decode_boxes(anchors, host[1])
    assert_same_on_the_device(decode_boxes(strictly_on_device(anchors), device[1]), decoded)
    assert_same_on_the_device(clip_boxes(strictly_on_device(decoded), image_shape), clip_boxes(decoded, image_shape))
    kw = dict(pre_nms_top_n=40, post_nms_top_n=10, min_size=4)
    want = propose(*host, anchors, image_shape, **kw)
    got = propose(*device, strictly_on_device(anchors), image_shape, nms_kernel=through_the_host(nms), **kw)
    assert_same_on_the_device(tuple(got), tuple(want))
    assert len(want.boxes) > 1
