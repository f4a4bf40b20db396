"""Figures of notebook ``09_kernels_cpu_vs_gpu``: how a kernel numbers its threads, where a backend's float32
results differ from the reference's, and timings of the reference against the backends.

Every function draws onto the ``Axes`` it is given and returns it.  Times are seconds; speed-ups are ratios of
median times measured in the same run (``fcis_twin.bench.speedup``), drawn on a log axis, where a ratio and its
inverse lie at the same distance from 1.
"""

import numpy as np
from matplotlib.colors import BoundaryNorm
from matplotlib.ticker import MaxNLocator

__all__ = ["draw_thread_indices", "draw_ulp_difference", "plot_first_calls", "plot_speedups"]

#: Colours of the implementations a timing figure compares, in order (the reference first when it is drawn).
IMPLEMENTATION_COLORS = ("0.35", "tab:blue", "tab:orange", "tab:green", "tab:purple")


def _grid(name, values, dtype):
    values = np.asarray(values, dtype)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-d array, got shape {values.shape}")
    return values


def draw_thread_indices(ax, indices, *, title="thread index"):
    """The flat thread index of each output element of one ``P x P`` block, as a colour, with the corners written.

    Parameters
    ----------
    ax : matplotlib Axes
    indices : (P, P) int array_like
        The flat index of the thread that computes each element of one ROI's map of one class: consecutive along a
        row (``pw`` fastest) when the kernel numbers its threads as the project's kernels do.
    title : str

    Returns
    -------
    ax
        One image (the indices, with a colour bar) and the index written on each of the four corner elements.

    Raises
    ------
    ValueError
        ``indices`` is not a non-empty 2-d array of integers.
    """
    raw = np.asarray(indices)
    if not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"indices must hold integers, got dtype {raw.dtype}")
    idx = _grid("indices", raw, np.int64)
    h, w = idx.shape
    image = ax.imshow(idx, cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="thread index")
    lo, hi = idx.min(), idx.max()
    for y, x in {(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)}:
        dark = idx[y, x] < (lo + hi) / 2  # white text on the dark end of viridis
        ax.text(x, y, f"{idx[y, x]}", ha="left" if x == 0 else "right", va="center", fontsize=9,
                color="white" if dark else "black")
    ax.set_xlabel("pw (fastest)")
    ax.set_ylabel("ph")
    ax.set_title(title, fontsize=10)
    return ax


def _ordered(values):
    """float32 values as int64 in the order of the reals, consecutive floats one apart (so +0 and -0 are 0)."""
    bits = values.view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def draw_ulp_difference(ax, got, want, *, title=None):
    """How many float32 steps (units in the last place, ulp) a backend's result lies from the reference's, per
    element of one ``H x W`` map: the count of float32 values from one to the other, across powers of two too.

    Parameters
    ----------
    ax : matplotlib Axes
    got, want : (H, W) float array_like
        The backend's and the reference's values, the same shape, compared as float32; finite.
    title : str, optional
        Default: how many elements differ, and by how many ulp at most.

    Returns
    -------
    ax
        One image of the integer ulp distances (0 where the bits are equal), one colour per distance, with a colour
        bar.

    Raises
    ------
    ValueError
        ``got`` or ``want`` is not a non-empty 2-d array, or their shapes differ.
    """
    got = _grid("got", got, np.float32)
    want = _grid("want", want, np.float32)
    if got.shape != want.shape:
        raise ValueError(f"got and want must have the same shape, got {got.shape} and {want.shape}")
    ulps = np.abs(_ordered(got) - _ordered(want))
    top = max(int(ulps.max()), 1)
    norm = BoundaryNorm(np.arange(-0.5, top + 1), 256)
    image = ax.imshow(ulps, cmap="magma", norm=norm, interpolation="nearest")
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="ulp")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    ax.set_xticks([])
    ax.set_yticks([])
    if title is None:
        title = f"{np.count_nonzero(ulps)} of {ulps.size} differ, {ulps.max()} ulp at most"
    ax.set_title(title, fontsize=10)
    return ax


def _timing_rows(name, values, stages):
    values = np.asarray(values, np.float64)
    values = values[None] if values.ndim == 1 else values
    if values.ndim != 2 or values.shape[1] != len(stages):
        raise ValueError(f"{name} must have shape (S,) or (B, S) with S = {len(stages)} stages, got {values.shape}")
    return values


def _labels(labels, count):
    labels = [f"implementation {i}" for i in range(count)] if labels is None else list(labels)
    if len(labels) != count:
        raise ValueError(f"labels must hold {count} names, got {len(labels)}")
    return labels


def plot_first_calls(ax, stages, first_s, later_s, labels=None, *, title="first call against later calls"):
    """Per stage and implementation, the first call's time against the median of the later calls, on a log axis.

    Parameters
    ----------
    ax : matplotlib Axes
    stages : sequence of str
        ``S`` stage names, along x.
    first_s, later_s : (B, S) or (S,) float array_like
        Seconds of the first call and median seconds of the later calls, per implementation and stage; positive.
    labels : sequence of str, optional
        ``B`` implementation names for the legend.
    title : str

    Returns
    -------
    ax
        Per implementation and stage a vertical segment from the later calls' median (open circle) to the first
        call (filled circle), side by side within a stage, one colour per implementation: the segment's length is
        what the first call costs on top of a call, its compilation or loading included.

    Raises
    ------
    ValueError
        Arrays of another shape, times that are not positive, or a wrong number of labels.
    """
    stages = list(stages)
    first = _timing_rows("first_s", first_s, stages)
    later = _timing_rows("later_s", later_s, stages)
    if first.shape != later.shape:
        raise ValueError(f"first_s and later_s must have the same shape, got {first.shape} and {later.shape}")
    if not (np.isfinite(first).all() and np.isfinite(later).all() and (first > 0).all() and (later > 0).all()):
        raise ValueError("first_s and later_s must hold positive, finite seconds")
    labels = _labels(labels, len(first))
    x = np.arange(len(stages), dtype=np.float64)
    step = 0.7 / len(first)
    for i, (f, m, label) in enumerate(zip(first, later, labels, strict=True)):
        color = IMPLEMENTATION_COLORS[i % len(IMPLEMENTATION_COLORS)]
        xi = x + (i - (len(first) - 1) / 2) * step
        ax.vlines(xi, m, f, color=color, linewidth=2)
        ax.plot(xi, f, "o", color=color, markersize=7, label=label)
        ax.plot(xi, m, "o", markerfacecolor="white", markeredgecolor=color, markersize=7)
    ax.set_yscale("log")
    ax.set_xticks(x, stages, fontsize=9, rotation=20)
    ax.set_ylabel("seconds (log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=9, title="filled: first call", title_fontsize=9, loc="best")
    return ax


def plot_speedups(ax, stages, speedups, labels=None, *, title="speed-up over the reference"):
    """Per stage, each backend's speed-up over the reference, as bars on a log axis with a line at 1.

    Parameters
    ----------
    ax : matplotlib Axes
    stages : sequence of str
        ``S`` stage names, along x.
    speedups : (B, S) or (S,) float array_like
        The reference's median time over the backend's, measured in the same run; positive.  NaN (a clock too
        coarse for the call, ``fcis_twin.bench.speedup``) leaves its bar out.
    labels : sequence of str, optional
        ``B`` backend names for the legend.
    title : str

    Returns
    -------
    ax
        ``B x S`` bars (one colour per backend, each labelled ``x<ratio>``) and a dashed line at 1, the reference's
        own speed.

    Raises
    ------
    ValueError
        An array of another shape, a ratio that is not positive, or a wrong number of labels.
    """
    stages = list(stages)
    ratios = _timing_rows("speedups", speedups, stages)
    if (ratios[~np.isnan(ratios)] <= 0).any() or np.isinf(ratios).any():
        raise ValueError("speedups must hold positive, finite ratios (NaN for a missing one)")
    labels = _labels(labels, len(ratios))
    x = np.arange(len(stages), dtype=np.float64)
    width = 0.8 / len(ratios)
    for i, (row, label) in enumerate(zip(ratios, labels, strict=True)):
        color = IMPLEMENTATION_COLORS[1 + i % (len(IMPLEMENTATION_COLORS) - 1)]
        shown = np.where(np.isnan(row), 0.0, row)  # a zero-height bar on a log axis is not drawn
        bars = ax.bar(x + (i - (len(ratios) - 1) / 2) * width, shown, width, color=color, label=label)
        ax.bar_label(bars, ["" if np.isnan(r) else f"x{r:.0f}" if r >= 10 else f"x{r:.1f}" for r in row],
                     fontsize=9, padding=2)
    ax.axhline(1, color="0.3", linestyle="--", linewidth=1, label="the reference (x1)")
    ax.set_yscale("log")
    ax.set_xticks(x, stages, fontsize=9, rotation=20)
    ax.set_ylabel("speed-up (log scale)")
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.15)
    ax.legend(fontsize=9, loc="best")
    return ax
