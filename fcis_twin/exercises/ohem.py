"""The exercise ``ohem_keep`` (notebook 10): online hard example mining keeps the ROIs of highest loss."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..reference.losses import IGNORE, ohem_keep
from .comparing import Difference, compare_array
from .records import Case, Exercise, Pitfall


@st.composite
def _ohem_cases(draw):
    """Losses on a coarse grid (equal losses common), now and then any float32; short lists and lists of more than
    16 (NumPy's default sort keeps ties in order below 17 elements on some machines, not above); labels 0 to 4."""
    n = draw(st.one_of(st.integers(0, 8), st.integers(17, 40)))
    grid = st.integers(0, 5).map(lambda v: np.float32(v / 4))
    losses = draw(hnp.arrays(np.float32, (n,), elements=st.one_of(grid, grid, st.floats(0, 4, width=32))))
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, 4)))
    ranked = losses[np.argsort(-losses, kind="stable")]
    splits = np.flatnonzero(ranked[1:] == ranked[:-1]) + 1  # batch sizes that keep part of a group of equal losses
    if len(splits) and draw(st.booleans()):
        return Case((losses, labels, int(splits[draw(st.integers(0, len(splits) - 1))])))
    return Case((losses, labels, draw(st.integers(1, n + 1))))


def _ohem_with(losses, labels, batch_size, *, order="stable", dropped=IGNORE):
    """OHEM with one convention changed: the pitfalls' common body."""
    losses = np.asarray(losses)
    if order == "reversed":  # ties: the higher index first
        ranked = np.argsort(losses, kind="stable")[::-1]
    elif order == "default":  # NumPy's default sort: ties in no defined order
        ranked = np.argsort(-losses)
    else:
        ranked = np.argsort(losses if order == "lowest" else -losses, kind="stable")
    out = np.full(len(losses), dropped, np.int64)
    kept = ranked[:batch_size]
    out[kept] = np.asarray(labels)[kept]
    return out


def _compare_ohem(case, expected, got):
    diff = compare_array("labels_ohem", expected, got)
    if diff is None or diff.index is None:
        return diff
    losses, _, batch_size = case.args
    (i,) = diff.index
    return Difference(f"{diff.text} (ROI {i}'s loss is {float(losses[i])!r}; batch_size {batch_size}: the "
                      f"{batch_size} highest losses keep their labels)", diff.part, diff.index)


def _draw_ohem(fig, result):
    losses, labels, batch_size = result.case.args
    got = result.got if isinstance(result.got, np.ndarray) and result.got.shape == losses.shape else None
    panels = np.atleast_1d(fig.subplots(2 if got is not None else 1, 1, sharex=True, sharey=True))
    index = np.arange(len(losses))
    differing = result.difference.index[0] if result.difference and result.difference.index else None
    top = max(float(losses.max(initial=0)), 1e-3)
    row = -0.15 * top  # where each ROI's output label is written, under its bar
    for ax, out, who in zip(panels, (result.expected, got), ("the reference", "yours"), strict=False):
        kept = out != IGNORE
        colors = np.where(kept, "tab:blue", "0.75")
        ax.bar(index, losses, color=colors)
        ax.scatter(index, np.full(len(index), row), marker="s", s=150, c=colors)
        for i in index:
            ax.text(i, row, str(int(out[i])), ha="center", va="center", fontsize=7,
                    color="white" if kept[i] else "black")
        if differing is not None:
            ax.plot(differing, row, "s", markersize=15, markerfacecolor="none", markeredgecolor="red", mew=2)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylim(2.2 * row, 1.15 * top)
        ax.set_ylabel("loss")
        ax.set_title(f"{who}: {int(kept.sum())} ROI(s) keep a label (blue); under each ROI, its output", fontsize=9)
    panels[-1].set_xlabel(f"ROI (batch_size {batch_size}; red square: the first ROI whose output differs)")
    if len(losses) <= 40:
        panels[-1].set_xticks(index)
        panels[-1].tick_params(axis="x", labelsize=7)


def _ohem_workload(size, rng):
    """``size`` ROIs' losses and labels (a quarter foreground); 128 kept, as in the official configuration."""
    losses = rng.gamma(1.0, 0.5, size).astype(np.float32)
    labels = np.where(rng.random(size) < 0.25, rng.integers(1, 81, size), 0)
    return Case((losses, labels, 128))


OHEM_KEEP = Exercise(
    name="ohem_keep",
    notebook="10_training",
    summary="online hard example mining: keep the labels of the batch_size highest losses, IGNORE the rest",
    solution=ohem_keep,
    cases=_ohem_cases(),
    compare=_compare_ohem,
    pitfalls=(
        Pitfall("ranks equal losses with the higher index first", "equal losses keep the lower index first: rank by "
                "a stable sort of -losses (np.argsort(-losses, kind='stable'))",
                lambda loss, y, b: _ohem_with(loss, y, b, order="reversed")),
        Pitfall("ranks with NumPy's default sort", "equal losses keep the lower index first: np.argsort's default "
                "sort is not stable (kind='stable' is), so equal losses come in no defined order",
                lambda loss, y, b: _ohem_with(loss, y, b, order="default")),
        Pitfall("gives the dropped ROIs label 0", "a ROI that OHEM leaves out is labelled IGNORE (-1): label 0 is "
                "background, which the classifier would still learn from",
                lambda loss, y, b: _ohem_with(loss, y, b, dropped=0)),
        Pitfall("keeps the lowest losses", "OHEM keeps the batch_size ROIs of highest loss, the hard examples",
                lambda loss, y, b: _ohem_with(loss, y, b, order="lowest")),
    ),
    draw=_draw_ohem,
    workload=_ohem_workload,
    workload_size=300,
)


EXERCISES = [OHEM_KEEP]
