"""Exercises on the losses of training (notebook 10): ``smooth_l1`` and ``softmax_cross_entropy``, a backward pass."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..reference.losses import IGNORE, smooth_l1, softmax_cross_entropy
from ..viz import draw_message
from .comparing import compare_array, compare_parts
from .records import Case, Exercise, Pitfall

# --- smooth_l1 ----------------------------------------------------------------------------------------------------

#: Relative tolerance of the loss and its gradient: 8 units in the last place of float32.  Each branch is a product
#: or a difference of a few float32 roundings (another order, or float64 rounded at the end, lands within 3 units),
#: and where another threshold test picks the other branch the two branches meet, in value and in slope.
SMOOTH_L1_RTOL = 2.0**-21
#: Absolute tolerance: float32's smallest normal number, below which a product keeps fewer digits.
SMOOTH_L1_ATOL = 2.0**-126

#: 1 is the detection head's sigma, 3 the RPN's; 2 and 0.5 put the edge of the quadratic zone elsewhere.
_sigmas = st.sampled_from([1.0, 3.0, 2.0, 0.5])


@st.composite
def _smooth_l1_cases(draw):
    """``(R, 4)`` float32 box-delta differences: anywhere in [-6, 6], small ones (the RPN's quadratic zone ends at
    1/9), eighths, and the zone's edge 1/sigma**2 itself."""
    sigma = draw(_sigmas)
    edge = np.float32(1 / sigma**2)
    values = st.one_of(st.floats(-6, 6, width=32), st.floats(-0.25, 0.25, width=32),
                       st.integers(-24, 24).map(lambda v: np.float32(v / 8)),
                       st.sampled_from([edge, -edge, np.nextafter(edge, np.float32(0))]))
    diff = draw(hnp.arrays(np.float32, (draw(st.integers(0, 5)), 4), elements=values))
    return Case((diff, sigma))


def _smooth_l1_with(diff, sigma=1.0, *, edge="1/sigma**2", grad_s2=True, loss_s2=True, dtype=np.float32):
    """Smooth L1 and its derivative with one convention changed: the pitfalls' common body."""
    x = np.asarray(diff).astype(dtype)
    s2 = dtype(sigma) * dtype(sigma)
    quadratic = np.abs(x) < (dtype(1) / s2 if edge == "1/sigma**2" else dtype(1))
    loss = np.where(quadratic, dtype(0.5) * (s2 if loss_s2 else dtype(1)) * x * x, np.abs(x) - dtype(0.5) / s2)
    grad = np.where(quadratic, (s2 if grad_s2 else dtype(1)) * x, np.sign(x))
    return loss.astype(dtype), grad.astype(dtype)


def _compare_smooth_l1(case, expected, got):
    def close(name, e, g):
        return compare_array(name, e, g, rtol=SMOOTH_L1_RTOL, atol=SMOOTH_L1_ATOL)

    return compare_parts(("loss", "grad"), expected, got, (close, close))


def _draw_smooth_l1(fig, result):
    diff, sigma = result.case.args
    edge = 1 / sigma**2
    x = diff.ravel()
    reach = max(1.5 * edge, 1.3 * float(np.abs(x).max(initial=0)))
    line = np.linspace(-reach, reach, 801)
    curves = smooth_l1(line, sigma)
    got = result.got if isinstance(result.got, tuple) and len(result.got) == 2 else (None, None)
    panels = fig.subplots(1, 2)
    for ax, curve, expected, yours, name in zip(panels, curves, result.expected, got, ("f(x)", "f'(x)"),
                                                strict=True):
        ax.plot(line, curve, color="0.6", linewidth=1, label=f"the reference's {name}")
        ax.axvspan(-edge, edge, color="tab:green", alpha=0.08, label="quadratic zone |x| < 1/sigma**2")
        ax.plot(x, np.asarray(expected).ravel(), "o", color="tab:green", markersize=8, markerfacecolor="none",
                label="the reference's values")
        if isinstance(yours, np.ndarray) and yours.size == x.size:
            ax.plot(x, np.asarray(yours, np.float64).ravel(), "x", color="red", markersize=8, label="yours")
        ax.set_xlabel("x = diff")
        ax.set_title(f"{name}, sigma = {sigma:g}", fontsize=9)
        ax.legend(fontsize=8)
    at = result.difference.index if result.difference is not None else None
    if at is not None and len(at) == 2:  # a value differs: name it
        part = ("loss", "grad").index(result.difference.part)
        fig.supxlabel(f"{result.difference.part} at diff[{at[0]}, {at[1]}] = {diff[at]!s}: the reference's "
                      f"{result.expected[part][at]!s}, yours {got[part][at]!s}", fontsize=9)
    elif result.difference is not None:  # a type, dtype or shape: no point to mark
        fig.supxlabel(result.difference.text, fontsize=9)


SMOOTH_L1 = Exercise(
    name="smooth_l1",
    notebook="10_training",
    summary="the smooth L1 loss of box deltas and its derivative, with the official code's sigma, in float32",
    solution=smooth_l1,
    cases=_smooth_l1_cases(),
    compare=_compare_smooth_l1,
    pitfalls=(
        Pitfall("ends the quadratic zone at |x| = 1", "the quadratic zone is |x| < 1 / sigma**2 (1/9 for the RPN's "
                "sigma = 3), where 0.5 (sigma x)**2 meets |x| - 0.5 / sigma**2",
                lambda d, s=1.0: _smooth_l1_with(d, s, edge="1")),
        Pitfall("leaves sigma**2 out of the gradient", "in the quadratic zone f'(x) = sigma**2 * x, the derivative "
                "of 0.5 * sigma**2 * x**2", lambda d, s=1.0: _smooth_l1_with(d, s, grad_s2=False)),
        Pitfall("computes 0.5 * x**2 in the quadratic zone", "in the quadratic zone f(x) = 0.5 * (sigma * x)**2: "
                "sigma scales x before the square", lambda d, s=1.0: _smooth_l1_with(d, s, loss_s2=False)),
        Pitfall("returns float64", "the loss and gradient have the dtype of diff: float32 in, float32 out",
                lambda d, s=1.0: _smooth_l1_with(d, s, dtype=np.float64)),
    ),
    draw=_draw_smooth_l1,
    workload=lambda size, rng: Case(((0.5 * rng.standard_normal((size, 4))).astype(np.float32), 1.0)),
    workload_size=300,
)


# --- softmax_cross_entropy ------------------------------------------------------------------------------------------

#: Loss tolerance, relative to ``1 + log K + 2 max|s|`` of the row (a bound on every term a log-sum-exp adds or
#: subtracts, max(s) + log(sum) - s_y among them): 16 units in the last place of float32, for a few roundings.
CE_LOSS_RTOL = 2.0**-20
#: Gradient tolerance, absolute: softmax - onehot lies in [-1, 1] and its roundings are a few units of 1 in float32.
CE_GRAD_ATOL = 2.0**-20

#: Logits: moderate ones, small integers (ties, exact shifts), and some past float32's exp range (exp(89) is inf).
_logits = st.one_of(st.floats(-10, 10, width=32), st.integers(-3, 3).map(np.float32),
                    st.sampled_from([100.0, -100.0, 90.0, 200.0]).map(np.float32))


@st.composite
def _cross_entropy_cases(draw):
    """``(M, K)`` float32 logits and ``(M,)`` labels in ``[0, K)`` or IGNORE."""
    m, k = draw(st.integers(0, 4)), draw(st.integers(1, 5))
    scores = draw(hnp.arrays(np.float32, (m, k), elements=_logits))
    labels = draw(hnp.arrays(np.int64, (m,), elements=st.integers(IGNORE, k - 1)))
    return Case((scores, labels))


def _cross_entropy_with(scores, labels, *, shift=True, sign=1, zero_ignored=True, mean=False):
    """Softmax cross-entropy and its gradient with one convention changed: the pitfalls' common body."""
    s, labels = np.asarray(scores, np.float32), np.asarray(labels)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(s - s.max(axis=1, keepdims=True) if shift else s)
        prob = e / e.sum(axis=1, keepdims=True)
        rows = np.arange(len(s)) if not zero_ignored else np.flatnonzero(labels != IGNORE)
        loss = np.zeros(len(s), np.float32)
        loss[rows] = -np.log(prob[rows, labels[rows]])  # an ignored label, -1, reads the last class
        onehot = np.zeros_like(prob)
        onehot[rows, labels[rows]] = 1
        grad = sign * (prob - onehot)
        if zero_ignored:
            grad[labels == IGNORE] = 0
        if mean:  # the mean over the used rows, and the gradient of that mean
            loss, grad = loss[rows].sum() / np.float32(len(rows)), grad / max(len(rows), 1)
    return loss, grad.astype(np.float32)


def _compare_cross_entropy(case, expected, got):
    scores = case.args[0]
    magnitude = np.abs(scores.astype(np.float64)).max(axis=1, initial=0)
    scale = 1 + np.log(max(scores.shape[1], 1)) + 2 * magnitude
    # a bare NumPy scalar (what loss.mean() returns) compares as a 0-d array: its shape tells what went wrong
    expected, got = (tuple(np.asarray(p) if isinstance(p, np.generic) else p for p in out) if isinstance(out, tuple)
                     else out for out in (expected, got))
    loss_tol = CE_LOSS_RTOL * scale if np.shape(expected[0]) == scale.shape else 0.0
    comparators = (lambda name, e, g: compare_array(name, e, g, atol=loss_tol),
                   lambda name, e, g: compare_array(name, e, g, atol=CE_GRAD_ATOL))
    return compare_parts(("loss", "grad"), expected, got, comparators)


def _paired_bars(ax, expected, yours, expected_label, your_label):
    """The reference's values (green) beside the learner's (red) per class; a value that is not finite is written."""
    classes = np.arange(len(expected))
    ax.bar(classes - 0.2, expected, 0.4, color="tab:green", label=expected_label)
    if yours is not None:
        finite = np.isfinite(yours)
        ax.bar(classes + 0.2, np.where(finite, yours, 0), 0.4, color="tab:red", label=your_label)
        for c in classes[~finite]:
            ax.text(c + 0.2, 0, f"{yours[c]}", color="tab:red", ha="center", va="bottom", fontsize=9)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlim(-0.7, len(classes) - 0.3)
    ax.legend(fontsize=8)


def _draw_cross_entropy(fig, result):
    scores, labels = result.case.args
    if not len(scores):  # no row to draw
        return draw_message(fig, result.message)
    r = result.difference.index[0] if result.difference is not None and result.difference.index else 0
    classes = np.arange(scores.shape[1])
    label = int(labels[r])
    shifted = scores[r].astype(np.float64) - scores[r].max()
    prob = np.exp(shifted) / np.exp(shifted).sum()
    got = result.got if isinstance(result.got, tuple) and len(result.got) == 2 else (None, None)
    your_grad = np.asarray(got[1], np.float64)[r] if np.shape(got[1]) == result.expected[1].shape else None
    panels = fig.subplots(1, 3)
    panels[0].bar(classes, scores[r], color="0.5")
    panels[0].axhline(0, color="black", linewidth=0.6)
    for c in classes[:12]:
        panels[0].text(c, scores[r, c], f"{scores[r, c]:g}", ha="center", va="bottom", fontsize=8)
    panels[0].set_title(f"row {r}: the logits; label {label}" + " (IGNORE)" * (label == IGNORE), fontsize=9)
    implied = your_grad + (classes == label) if your_grad is not None and label != IGNORE else None
    _paired_bars(panels[1], prob, implied, "softmax (the reference's)", "yours: grad + onehot")
    panels[1].set_title("probabilities", fontsize=9)
    _paired_bars(panels[2], result.expected[1][r], your_grad, "the reference's", "yours")
    panels[2].set_title("gradient of the row's loss (softmax - onehot)", fontsize=9)
    for ax in panels:
        ax.set_xticks(classes)
        ax.set_xlabel("class")
    your_loss = np.asarray(got[0]) if got[0] is not None else None
    shown = your_loss[r] if your_loss is not None and your_loss.shape == result.expected[0].shape else your_loss
    fig.supxlabel(f"loss of row {r}: the reference's {result.expected[0][r]!s}, yours {shown!s}", fontsize=9)


def _cross_entropy_workload(size, rng, num_classes=81):
    """``size`` ROIs' class scores and labels: a quarter foreground, half of them IGNORE (left out by OHEM)."""
    scores = (2 * rng.standard_normal((size, num_classes))).astype(np.float32)
    labels = np.where(rng.random(size) < 0.25, rng.integers(1, num_classes, size), 0)
    return Case((scores, np.where(rng.random(size) < 0.5, labels, IGNORE).astype(np.int64)))


SOFTMAX_CROSS_ENTROPY = Exercise(
    name="softmax_cross_entropy",
    notebook="10_training",
    summary="per-row softmax cross-entropy and its gradient with respect to the scores (the backward pass)",
    solution=softmax_cross_entropy,
    cases=_cross_entropy_cases(),
    compare=_compare_cross_entropy,
    pitfalls=(
        Pitfall("takes exp of the raw scores", "the softmax subtracts each row's max before exp (the same softmax): "
                "float32's exp overflows to inf past 88.7, and inf / inf is NaN",
                lambda s, y: _cross_entropy_with(s, y, shift=False)),
        Pitfall("returns onehot - softmax as the gradient", "the gradient of -log softmax(s)_y with respect to s is "
                "softmax(s) - onehot(y): it points uphill, the optimiser subtracts it",
                lambda s, y: _cross_entropy_with(s, y, sign=-1)),
        Pitfall("computes ignored rows with the label -1 as an index (the last class)", "a row labelled IGNORE (-1) "
                "has loss 0 and a zero gradient row", lambda s, y: _cross_entropy_with(s, y, zero_ignored=False)),
        Pitfall("averages the loss over the rows", "the loss is one value per row, (M,); the training step weights "
                "and averages them (OHEM ranks the per-row values)", lambda s, y: _cross_entropy_with(s, y, mean=True)),
    ),
    draw=_draw_cross_entropy,
    workload=_cross_entropy_workload,
    workload_size=300,
)


EXERCISES = [SMOOTH_L1, SOFTMAX_CROSS_ENTROPY]
