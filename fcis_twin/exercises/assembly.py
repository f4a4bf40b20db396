"""The exercise ``ps_assemble`` (notebook 03): position-sensitive assembly; its mistakes serve the kernel exercise
too."""

import math

import numpy as np
from hypothesis import strategies as st
from matplotlib.patches import Rectangle

from ..reference._checks import round_half_away
from ..reference.assemble import MIN_ROI_SIZE, ps_assemble, ps_assemble_loop, roi_bins, summation_error_bound
from ..strategies import pixel_assembly_problems
from ..viz import annotate_cells, draw_message
from .comparing import compare_array
from .records import Case, Exercise, Pitfall
from .timing import bench_workload, twins


def _assembly_cases():
    """ROIs on the image's half-pixel grid, where rounding decides; outside, huge, zero-size; dense maps at the scales
    where float32 bin edges decide; and dense maps cut into a few large bins, where the float32 sum shows."""
    float32_edges = pixel_assembly_problems(min_side=4, scales=(0.3, 0.6), dense=True, output_sizes=(3, 4, 5))
    large_bins = pixel_assembly_problems(min_side=4, dense=True, output_sizes=(1, 2))
    return st.one_of(pixel_assembly_problems(), float32_edges, large_bins).map(lambda p: Case(p[:2], p[2]))


def _edges(x1, y1, x2, y2, ph, pw, height, width, P, s, *, real=np.float32, rounding=round_half_away,
           min_size=MIN_ROI_SIZE, clip=True):
    """Rows ``[hstart, hend)`` and columns ``[wstart, wend)`` of bin ``(ph, pw)`` with one convention changed (the
    arithmetic's type, the rounding, the ROI's least size, the clipping): ints."""
    s = real(s)
    start_w, start_h = real(rounding(x1)) * s, real(rounding(y1)) * s
    roi_w = max(real(rounding(x2)) * s - start_w, real(min_size))
    roi_h = max(real(rounding(y2)) * s - start_h, real(min_size))
    bin_w, bin_h = roi_w / real(P), roi_h / real(P)
    hstart, hend = math.floor(real(ph) * bin_h + start_h), math.ceil(real(ph + 1) * bin_h + start_h)
    wstart, wend = math.floor(real(pw) * bin_w + start_w), math.ceil(real(pw + 1) * bin_w + start_w)
    if clip:
        hstart, hend = min(max(hstart, 0), height), min(max(hend, 0), height)
        wstart, wend = min(max(wstart, 0), width), min(max(wend, 0), width)
    return hstart, hend, wstart, wend


def assemble_with(score_maps, rois, *, group_size, output_size, spatial_scale, swap_parts=False, part_major=False,
                  empty=0.0, float32_sum=False, **edge_options):
    """Assembly, one bin at a time, with one convention changed: the common body of the pitfalls of ``ps_assemble``
    and ``ps_assemble_kernel``.  ``float32_sum``: each bin summed row-major in float32 and divided by its float32
    area, as the loop template (else its float64 mean, rounded once)."""
    x, rois = np.asarray(score_maps, np.float32), np.asarray(rois, np.float32)
    N, channels, H, W = x.shape
    k, P = group_size, output_size
    C = channels // (k * k)
    out = np.zeros((len(rois), C, P, P), np.float32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for n, (b, x1, y1, x2, y2) in enumerate(rois):
            for ph in range(P):
                for pw in range(P):
                    hs, he, ws, we = _edges(x1, y1, x2, y2, ph, pw, H, W, P, spatial_scale, **edge_options)
                    gh, gw = (ph * k) // P, (pw * k) // P
                    if swap_parts:
                        gh, gw = gw, gh
                    for c in range(C):
                        channel = (gh * k + gw) * C + c if part_major else (c * k + gh) * k + gw
                        region = x[int(b), channel, hs:he, ws:we] if he > hs and we > ws else x[0, 0, :0, :0]
                        if not region.size:
                            out[n, c, ph, pw] = empty
                        elif float32_sum:
                            total = np.add.accumulate(region.ravel(), dtype=np.float32)[-1]  # row-major, float32
                            out[n, c, ph, pw] = total / np.float32(region.size)
                        else:
                            out[n, c, ph, pw] = region.mean(dtype=np.float64)
    return out


def _compare_assembled(case, expected, got):
    x, rois = case.args
    return compare_array("assembled", expected, got, atol=summation_error_bound(x, rois, **case.kwargs))


def guess_bin(score_maps, value, tolerance):
    """Rectangles ``(image, channel, hstart, hend, wstart, wend)`` of the score maps whose mean is ``value`` within
    ``tolerance``: where a wrong assembly may have read (a brute search, for the small maps of the checks)."""
    x = np.asarray(score_maps, np.float64)
    N, channels, H, W = x.shape
    sat = np.zeros((N, channels, H + 1, W + 1))
    sat[:, :, 1:, 1:] = x.cumsum(axis=2).cumsum(axis=3)
    found = []
    for hs in range(H):
        for he in range(hs + 1, H + 1):
            for ws in range(W):
                for we in range(ws + 1, W + 1):
                    total = sat[:, :, he, we] - sat[:, :, hs, we] - sat[:, :, he, ws] + sat[:, :, hs, ws]
                    mean = total / ((he - hs) * (we - ws))  # (N, channels)
                    for b, c in np.argwhere(np.abs(mean - value) <= tolerance):
                        found.append((int(b), int(c), hs, he, ws, we))
    return found


def _draw_assembled(fig, result):
    x, rois = result.case.args
    kw = result.case.kwargs
    k, P, s = kw["group_size"], kw["output_size"], np.float32(kw["spatial_scale"])
    diff = result.difference
    n, c_out, ph, pw = diff.index if diff and diff.index and len(diff.index) == 4 else (0, 0, 0, 0)
    if 0 in x.shape[2:] or not len(rois):
        draw_message(fig, f"The score maps are {x.shape[2]} x {x.shape[3]} and there are {len(rois)} ROIs: every bin "
                     f"is empty, and an empty bin is 0.\n\n{diff.text if diff else ''}")
        return
    b = int(rois[n, 0])
    edges = roi_bins(*rois[n, 1:], *x.shape[2:], P, s)
    hstart, hend, wstart, wend = (int(e[p]) for e, p in zip(edges, (ph, ph, pw, pw), strict=True))
    gh, gw = (ph * k) // P, (pw * k) // P
    channel = (c_out * k + gh) * k + gw
    shaped = isinstance(result.got, np.ndarray) and result.got.shape == result.expected.shape
    got = float(result.got[n, c_out, ph, pw]) if shaped else None
    guesses = [] if got is None or not np.isfinite(got) else guess_bin(x, got, 1e-6 * (1 + abs(got)))
    guess = min(guesses, key=lambda g: (g[:2] != (b, channel), abs(g[2] - hstart) + abs(g[3] - hend)
                                        + abs(g[4] - wstart) + abs(g[5] - wend)), default=None)
    maps = [(b, channel)] + ([] if guess is None or guess[:2] == (b, channel) else [guess[:2]])
    fig.set_size_inches(4 + 4.2 * len(maps), 4.6)
    text_ax, *panels = fig.subplots(1, 1 + len(maps), width_ratios=[1.1] + [1] * len(maps))
    rounded = round_half_away(rois[n, 1:]).astype(np.float32)
    x1, y1, x2, y2 = (float(v) for v in rounded * s)
    lines = [f"ROI {n}: {rois[n].tolist()}", f"rounded: {rounded.tolist()}", f"in feature cells (x s = {float(s):g}):",
             f"  [{x1:.6g}, {x2:.6g}) x [{y1:.6g}, {y2:.6g})", f"bin ({ph}, {pw}) of output channel {c_out}:",
             f"  part ({gh}, {gw}), channel {channel}", f"  rows [{hstart}, {hend}), columns [{wstart}, {wend})",
             f"the reference's mean: {float(result.expected[n, c_out, ph, pw]):.8g}",
             f"yours: {'-' if got is None else f'{got:.8g}'}"]
    if guess is not None:
        lines += ["a bin whose mean is yours (red):", f"  image {guess[0]}, channel {guess[1]},",
                  f"  rows [{guess[2]}, {guess[3]}), columns [{guess[4]}, {guess[5]})"]
    text_ax.axis("off")
    text_ax.text(0, 1, "\n".join(lines), family="monospace", fontsize=8, va="top")
    for ax, (image, ch) in zip(panels, maps, strict=True):
        values = x[image, ch]
        ax.imshow(values, cmap="coolwarm")
        annotate_cells(ax, values, fmt="{:.3g}", max_cells=49, fontsize=7)
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), max(x2 - x1, 0.1), max(y2 - y1, 0.1), fill=False, ec="black",
                               ls="--", lw=1.2))
        if (image, ch) == (b, channel) and hend > hstart and wend > wstart:
            ax.add_patch(Rectangle((wstart - 0.5, hstart - 0.5), wend - wstart, hend - hstart, fill=False,
                                   ec="tab:green", lw=3))
        if guess is not None and (image, ch) == guess[:2]:
            _, _, hs, he, ws, we = guess
            ax.add_patch(Rectangle((ws - 0.5, hs - 0.5), we - ws, he - hs, fill=False, ec="red", lw=1.8, ls=":"))
        ax.set_xlim(-1.5, x.shape[3] + 0.5)
        ax.set_ylim(x.shape[2] + 0.5, -1.5)
        role = "the channel the bin reads" if (image, ch) == (b, channel) else "a channel your value fits"
        ax.set_title(f"image {image}, channel {ch}: {role}\n(dashed: the ROI, green: the bin)", fontsize=9)


#: The mistakes of an assembly: (what the wrong code does, the convention, the options of :func:`assemble_with` that
#: make it), shared by ``ps_assemble`` and the kernel exercise.
ASSEMBLY_MISTAKES = (
    ("rounds coordinates half to even (np.round, Python's round)", "ROI coordinates are rounded half away from "
     "zero, as C's round: 0.5 -> 1, 2.5 -> 3, -0.5 -> -1", {"rounding": np.round}),
    ("computes the bin edges in float64", "bin edges in float32, as the GPU computes them: round(x1) * "
     "spatial_scale, the bin size and each product rounded to float32 before the add", {"real": np.float64}),
    ("lets an ROI of zero size have zero bins", "an ROI spans at least 0.1 feature cells on a side (MIN_ROI_SIZE, as "
     "in the official PSROIPooling)", {"min_size": 0.0}),
    ("reads part (gw, gh) for bin (ph, pw)", "bin (ph, pw) reads part (gh, gw) = ((ph*k) // P, (pw*k) // P), channel "
     "(c*k + gh)*k + gw", {"swap_parts": True}),
    ("makes the part the slower channel index", "bin (ph, pw) of output channel c reads channel (c*k + gh)*k + gw: "
     "the part is the faster index", {"part_major": True}),
    ("averages an empty bin to NaN", "a bin with no pixels (wholly outside the map) is 0", {"empty": np.nan}),
    ("does not clip the bins to the map", "bin edges are clipped to the map, [0, H] and [0, W], before the bin is "
     "read; negative indices would wrap around", {"clip": False}),
)


def _assembly_pitfall(mistake, convention, options):
    return Pitfall(mistake, convention, lambda score_maps, rois, **kw: assemble_with(score_maps, rois, **kw, **options))


PS_ASSEMBLE = Exercise(
    name="ps_assemble",
    notebook="03_assembling",
    summary="position-sensitive assembly: the mean of each bin in its part cell's channel",
    solution=ps_assemble,
    cases=_assembly_cases(),
    compare=_compare_assembled,
    pitfalls=tuple(_assembly_pitfall(*m) for m in ASSEMBLY_MISTAKES),
    draw=_draw_assembled,
    workload=bench_workload("assemble_inputs"),
    workload_size=10,
    backends=twins("assemble", "ps_assemble"),
    max_examples=150,
    readings=(ps_assemble_loop, roi_bins),
)



EXERCISES = [PS_ASSEMBLE]
