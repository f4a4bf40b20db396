"""The training losses: hand-worked values, gradients against finite differences (float64), and OHEM's choice."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fcis_twin.reference.losses import IGNORE, mask_loss, ohem_keep, smooth_l1, softmax_cross_entropy
from tests.gradients import assert_gradient


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 5), k=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_softmax_cross_entropy_gradient(m, k, seed):
    """The gradient of the weighted sum of per-row losses is the weighted sum of the per-row gradients."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((m, k)) * 3
    labels = rng.integers(-1, k, m)  # some ignored
    weights = rng.standard_normal(m)
    loss, grad = softmax_cross_entropy(scores, labels)
    assert (loss[labels == IGNORE] == 0).all() and (loss >= 0).all()
    assert_gradient(lambda s: float(weights @ softmax_cross_entropy(s, labels)[0]), scores, weights[:, None] * grad)


def test_softmax_cross_entropy_is_stable_for_large_scores():
    """Scores of 1e4 give the exact loss, not inf or nan."""
    loss, grad = softmax_cross_entropy(np.array([[1e4, 0.0]]), np.array([1]))
    np.testing.assert_allclose(loss, [1e4])
    np.testing.assert_allclose(grad, [[1.0, -1.0]])


def test_smooth_l1_gradient_and_zones():
    """Quadratic below 1/sigma^2, linear beyond, continuous at the border; the gradient is its derivative."""
    x = np.array([-2.0, -0.3, 0.05, 0.2, 1.5])
    for sigma in (1.0, 3.0):
        loss, grad = smooth_l1(x, sigma)
        border = 1 / sigma**2
        np.testing.assert_allclose(smooth_l1(np.array([border - 1e-12, border + 1e-12]), sigma)[0],
                                   [0.5 / sigma**2] * 2, atol=1e-9)
        assert_gradient(lambda v, s=sigma: float(smooth_l1(v, s)[0].sum()), x, grad)


@settings(max_examples=20, deadline=None)
@given(r=st.integers(1, 4), c=st.integers(2, 4), p=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_mask_loss_gradient(r, c, p, seed):
    """The mask loss's gradient matches finite differences, and touches only the pair of each ROI's class."""
    rng = np.random.default_rng(seed)
    assembled = rng.standard_normal((r, 2 * c, p, p)) * 2
    labels = rng.integers(-1, c, r)
    targets = rng.random((r, p, p)) < 0.5
    weights = rng.standard_normal(r)
    loss, grad = mask_loss(assembled, labels, targets)
    assert (loss[labels <= 0] == 0).all()
    for i in range(r):
        untouched = np.ones(2 * c, bool)
        if labels[i] > 0:
            untouched[2 * labels[i] : 2 * labels[i] + 2] = False
        assert (grad[i, untouched] == 0).all()
    assert_gradient(lambda a: float(weights @ mask_loss(a, labels, targets)[0]), assembled,
                    weights[:, None, None, None] * grad)


def test_mask_loss_is_the_binary_cross_entropy_of_the_mask_probability():
    """-log of the softmax of the pair is the binary cross-entropy of sigmoid(inside - outside)."""
    rng = np.random.default_rng(1)
    assembled = rng.standard_normal((1, 6, 3, 3))
    targets = rng.random((1, 3, 3)) < 0.5
    prob = 1 / (1 + np.exp(assembled[0, 4] - assembled[0, 5]))  # class 2: outside channel 4, inside 5
    expected = -np.mean(np.where(targets[0], np.log(prob), np.log(1 - prob)))
    np.testing.assert_allclose(mask_loss(assembled, np.array([2]), targets)[0], [expected], rtol=1e-12)


def test_ohem_keeps_the_hardest_rois():
    """The batch_size highest losses keep their labels; ties keep the lower index; the others are ignored."""
    losses = np.array([0.3, 1.0, 0.3, 5.0, 0.0])
    labels = np.array([1, 0, 2, 0, 3])
    np.testing.assert_array_equal(ohem_keep(losses, labels, 3), [1, 0, IGNORE, 0, IGNORE])
    np.testing.assert_array_equal(ohem_keep(losses, labels, 10), labels)
