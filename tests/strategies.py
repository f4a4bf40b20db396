"""Hypothesis strategies shared by the test modules: boxes, scores, score maps, ROIs."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

#: Coordinates on a small integer-and-half grid make exact ties, touching edges and exact IoU values common.
coordinate = st.integers(-8, 72).map(lambda v: np.float32(v / 2))


@st.composite
def boxes(draw, min_size=0, max_size=30, allow_degenerate=True):
    """``(R, 4)`` float32 half-open boxes with ``x1 <= x2``, ``y1 <= y2``; zero-area boxes included."""
    n = draw(st.integers(min_size, max_size))
    a = draw(hnp.arrays(np.float32, (n, 4), elements=coordinate))
    x1, x2 = np.minimum(a[:, 0], a[:, 2]), np.maximum(a[:, 0], a[:, 2])
    y1, y2 = np.minimum(a[:, 1], a[:, 3]), np.maximum(a[:, 1], a[:, 3])
    if not allow_degenerate:
        x2 = np.maximum(x2, x1 + 1)
        y2 = np.maximum(y2, y1 + 1)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


def scores(n, *, ties=True):
    """``(n,)`` float32 scores in [0, 1]; with ``ties`` drawn from a coarse grid so that equal scores are common."""
    if ties:
        elements = st.integers(0, 8).map(lambda v: np.float32(v / 8))
    else:
        elements = st.floats(0, 1, width=32)
    return hnp.arrays(np.float32, (n,), elements=elements)


@st.composite
def boxes_and_scores(draw, max_size=30, ties=True):
    b = draw(boxes(max_size=max_size))
    return b, draw(scores(b.shape[0], ties=ties))
