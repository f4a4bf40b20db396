"""Tests for the joint mask and class formulation (``fcis_twin.reference.joint``)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fcis_twin.reference import joint
from fcis_twin.reference.joint import JointOutput, joint_backward, joint_forward

#: float32 unit roundoff.
U32 = 2.0**-24


def _pack(outside, inside):
    """(R, 2*C, P, P) assembled maps, channel cls*2 + j, from (R, C, P, P) outside and inside maps."""
    R, C, P, _ = np.shape(outside)
    return np.stack([outside, inside], axis=2).reshape(R, 2 * C, P, P)  # (R, C, outside/inside, P, P) flattened


# ----------------------------------------------------------------------------------------------- hand-worked cases


def test_one_pixel_two_classes():
    """A 1 x 1 case: mask_prob = sigmoid(inside - outside), cls_prob = softmax of the per-class max."""
    # class 0: outside 0, inside ln 3 -> mask_prob 3 / (1 + 3) = 0.75, cls_score max(0, ln 3) = ln 3
    # class 1: outside ln 3, inside 0 -> mask_prob 1 / (3 + 1) = 0.25, cls_score ln 3
    # class 2: outside 0, inside 0 -> mask_prob 0.5, cls_score 0; cls_prob = (3, 3, 1) / 7
    ln3 = np.log(3.0)
    out = joint_forward(np.array([0, ln3, ln3, 0, 0, 0], np.float32).reshape(1, 6, 1, 1))
    assert isinstance(out, JointOutput)
    np.testing.assert_allclose(out.mask_prob.ravel(), [0.75, 0.25, 0.5], rtol=2 * U32)
    np.testing.assert_allclose(out.cls_score, [[ln3, ln3, 0]], rtol=U32)
    np.testing.assert_allclose(out.cls_prob, [[3 / 7, 3 / 7, 1 / 7]], rtol=4 * U32)
    assert all(a.dtype == np.float32 for a in out)


def test_class_score_is_mean_of_pixel_max():
    """cls_score averages max(outside, inside) over the P x P bins."""
    outside = [[[[1, 0], [0, 0]]]]
    inside = [[[[0, 2], [0, -1]]]]
    out = joint_forward(_pack(outside, inside))
    # max = [[1, 2], [0, 0]], mean 3 / 4; a single class has probability 1
    np.testing.assert_array_equal(out.cls_score, [[0.75]])
    np.testing.assert_array_equal(out.cls_prob, [[1.0]])
    # d = inside - outside = [[-1, 2], [0, -1]]; sigmoid(-1) = 0.26894142, sigmoid(2) = 0.88079708
    np.testing.assert_allclose(out.mask_prob[0, 0], [[0.26894142, 0.88079708], [0.5, 0.26894142]], rtol=2e-7)


@given(st.floats(-1e4, 1e4, width=32))
def test_equal_pair_gives_one_half(v):
    """inside == outside gives mask_prob exactly 0.5, whatever the common value."""
    out = joint_forward(np.full((1, 2, 1, 1), v, np.float32))
    assert out.mask_prob[0, 0, 0, 0] == 0.5
    assert out.cls_score[0, 0] == np.float32(v)


def test_huge_logits_stay_finite():
    """Logits of +-1e4, and up to the float32 limit, give exact 0/1 probabilities, never NaN or a warning."""
    big = np.float32(1e4)
    out = joint_forward(_pack([[[[-big]], [[big]], [[-big]]]], [[[[big]], [[-big]], [[-big]]]]))
    np.testing.assert_array_equal(out.mask_prob.ravel(), [1, 0, 0.5])  # the third pair is a tie
    np.testing.assert_array_equal(out.cls_prob, [[0.5, 0.5, 0]])  # scores (1e4, 1e4, -1e4), exp(-2e4) = 0
    top = np.finfo(np.float32).max
    out = joint_forward(_pack([[[[-top]], [[top]]]], [[[[top]], [[-top]]]]))  # inside - outside overflows to +-inf
    np.testing.assert_array_equal(out.mask_prob.ravel(), [1, 0])
    grad = joint_backward(_pack([[[[-top]]], [[[top]]]], [[[[top]]], [[[-top]]]]), grad_mask_prob=np.ones((2, 1, 1, 1)))
    np.testing.assert_array_equal(grad, np.zeros((2, 2, 1, 1)))


def test_empty_rois():
    """No ROIs give empty outputs of the right shapes."""
    out = joint_forward(np.zeros((0, 6, 3, 3), np.float32))
    assert out.mask_prob.shape == (0, 3, 3, 3) and out.cls_score.shape == (0, 3) and out.cls_prob.shape == (0, 3)
    assert joint_backward(np.zeros((0, 6, 3, 3)), grad_cls_prob=np.zeros((0, 3))).shape == (0, 6, 3, 3)


def test_backward_hand_worked_and_tie_to_outside():
    """The class-score gradient goes to the larger of each pair, to the outside channel on a tie."""
    # pixels (outside, inside): (0, 0) tie, (1, 0) outside wins, (0, 1) inside wins, (2, 2) tie; P = 2, so each
    # pixel gets grad_cls_score / 4 = 1; grad_mask_prob = 0, so nothing else
    outside = [[[[0, 1], [0, 2]]]]
    inside = [[[[0, 0], [1, 2]]]]
    g = joint_backward(_pack(outside, inside), grad_cls_score=[[4.0]])
    np.testing.assert_array_equal(g[0, 0], [[1, 1], [0, 1]])  # outside channel
    np.testing.assert_array_equal(g[0, 1], [[0, 0], [1, 0]])  # inside channel
    # mask gradient alone at a tie: slope mask_prob (1 - mask_prob) = 1/4, +1/4 inside, -1/4 outside
    g = joint_backward(np.zeros((1, 2, 1, 1)), grad_mask_prob=np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(g.ravel(), [-0.25, 0.25])


def test_backward_without_gradients_is_zero():
    """All three gradients None give a float32 zero gradient."""
    g = joint_backward(np.ones((2, 4, 3, 3)))
    assert g.shape == (2, 4, 3, 3) and g.dtype == np.float32 and not g.any()


# ----------------------------------------------------------------------------------------------- properties

logits = st.floats(-1e3, 1e3, width=32)


@st.composite
def assembled(draw, elements=logits):
    R, C, P = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return draw(hnp.arrays(np.float32, (R, 2 * C, P, P), elements=elements))


@given(assembled())
def test_probabilities_are_probabilities(x):
    """mask_prob and cls_prob lie in [0, 1] and cls_prob sums to 1 over classes."""
    out = joint_forward(x)
    assert ((out.mask_prob >= 0) & (out.mask_prob <= 1)).all()
    assert ((out.cls_prob >= 0) & (out.cls_prob <= 1)).all()
    # each exp and the division round once (2u), the float32 sum over C terms adds (C - 1) u
    C = out.cls_prob.shape[1]
    np.testing.assert_allclose(out.cls_prob.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=(C + 2) * U32)


@given(assembled())
def test_swapping_inside_and_outside_complements_mask(x):
    """Swapping each pair's inside and outside maps turns mask_prob into 1 - mask_prob and keeps the scores."""
    R, C2, P, _ = x.shape
    swapped = x.reshape(R, C2 // 2, 2, P, P)[:, :, ::-1].reshape(x.shape)  # (R, C, inside/outside, P, P)
    a, b = joint_forward(x), joint_forward(swapped)
    # 1/(1 + e) + e/(1 + e) = (1 + e) / fl(1 + e): within u of 1 before the two divisions round (2u)
    np.testing.assert_allclose(a.mask_prob.astype(np.float64) + b.mask_prob, 1.0, rtol=0, atol=3 * U32)
    np.testing.assert_array_equal(a.cls_score, b.cls_score)


@given(assembled())
def test_uniform_class_gradient_vanishes(x):
    """A uniform grad_cls_prob has zero effect, since cls_prob always sums to 1."""
    R, C = x.shape[0], x.shape[1] // 2
    g = joint_backward(x, grad_cls_prob=np.ones((R, C)))
    # q_c (1 - sum q) in float32: |1 - sum q| <= (C + 2) u as in test_probabilities_are_probabilities
    np.testing.assert_allclose(g, 0, atol=(C + 2) * U32)


@st.composite
def untied(draw):
    """float64 assembled maps with every pair at least 0.01 apart, and the three output gradients."""
    R, C, P = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (R, C, P, P)
    outside = draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3)))
    gap = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.01, 3)))
    sign = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))
    grads = [draw(hnp.arrays(np.float64, s, elements=st.floats(-1, 1))) for s in (shape, (R, C), (R, C))]
    return _pack(outside, outside + sign * gap), grads


def _loss(x, grads):
    return sum(np.vdot(g, out) for g, out in zip(grads, joint.joint_forward_arrays(x), strict=True))


#: Finite-difference step: the gap of at least 0.01 keeps every pair untied within +-STEP.
STEP = 1e-4


@settings(max_examples=50)
@given(untied())
def test_backward_matches_finite_differences(problem):
    """The float64 gradient matches central finite differences of the float64 forward pass."""
    x, grads = problem
    analytic = joint.joint_backward_arrays(x, *grads)
    numeric = np.empty_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = STEP
        numeric[i] = (_loss(x + e, grads) - _loss(x - e, grads)) / (2 * STEP)
    # truncation: STEP**2 / 6 * |loss'''|, with |sigmoid'''| <= 1/8, softmax third derivatives <= 1 and the max
    # linear within the gap: <= 2e-9; rounding: the loss sums at most 66 terms of size <= 6 in float64, error
    # <= 66 * 2**-53 * 66 * 6 ~ 2.9e-12 per evaluation, / (2 * STEP): <= 1.5e-8; 1e-7 bounds the sum
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-7)

    # the public float32 gradient agrees with the float64 one: an entry is at most 3 in magnitude (slope <= 1/4,
    # grad_cls_score <= 1, softmax part <= 2) and passes fewer than 16 float32 roundings (the class sums
    # included), so it errs by less than 16 * 3 u < 64 u
    x32, grads32 = x.astype(np.float32), [g.astype(np.float32) for g in grads]
    g64 = joint.joint_backward_arrays(x32.astype(np.float64), *(g.astype(np.float64) for g in grads32))
    g32 = joint_backward(x32, *grads32)
    np.testing.assert_allclose(g32, g64, rtol=0, atol=64 * U32)


# ----------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((1, 3, 2, 2)), "assembled.*even"),
        (np.zeros((1, 0, 2, 2)), "assembled"),
        (np.zeros((2, 2, 2)), "assembled"),
        (np.zeros((1, 2, 2, 3)), "assembled.*square"),
        (np.zeros((1, 2, 0, 0)), "assembled"),
        (np.full((1, 2, 2, 2), np.nan), "assembled"),
        (np.full((1, 2, 2, 2), np.inf), "assembled"),
    ],
)
def test_forward_rejects_bad_assembled(x, match):
    """Odd or empty channel counts, wrong ranks, non-square or empty maps and NaN raise a ValueError."""
    with pytest.raises(ValueError, match=match):
        joint_forward(x)
    with pytest.raises(ValueError, match=match):
        joint_backward(x)


@pytest.mark.parametrize(
    "grads, match",
    [
        (dict(grad_mask_prob=np.zeros((1, 2, 2, 2))), "grad_mask_prob"),
        (dict(grad_mask_prob=np.zeros((1, 2, 2))), "grad_mask_prob"),
        (dict(grad_cls_score=np.zeros((1, 1, 1))), "grad_cls_score"),
        (dict(grad_cls_score=np.zeros((2, 1))), "grad_cls_score"),
        (dict(grad_cls_prob=np.zeros((1, 2))), "grad_cls_prob"),
        (dict(grad_cls_prob=np.full((1, 1), np.nan)), "grad_cls_prob"),
    ],
)
def test_backward_rejects_bad_gradients(grads, match):
    """Gradients of the wrong shape, or NaN, raise a ValueError naming them."""
    with pytest.raises(ValueError, match=match):
        joint_backward(np.zeros((1, 2, 2, 2)), **grads)


def test_rejects_wrong_types():
    """Non-numeric input raises a TypeError naming the argument."""
    with pytest.raises(TypeError, match="assembled"):
        joint_forward([["a", "b"]])
    with pytest.raises(TypeError, match="grad_cls_score"):
        joint_backward(np.zeros((1, 2, 1, 1)), grad_cls_score=[["x"]])
