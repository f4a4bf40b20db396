"""Tests for position-sensitive assembling (``fcis_twin.reference.assemble``): loop templates and vectorized
versions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fcis_twin.reference.assemble import (
    ps_assemble,
    ps_assemble_backward,
    ps_assemble_backward_loop,
    ps_assemble_loop,
    summation_error_bound,
)
from fcis_twin.strategies import assembly_kwargs as _kw
from fcis_twin.strategies import assembly_problems as problems
from fcis_twin.strategies import map_values as values

FORWARD = [ps_assemble_loop, ps_assemble]
BACKWARD = [ps_assemble_backward_loop, ps_assemble_backward]

#: float32 and float64 unit roundoff; ETA32, the smallest float32 subnormal, bounds twice the absolute error of a
#: float32 division or rounding whose result underflows (sums of float32 values never err by underflow).
U32 = 2.0**-24
U64 = 2.0**-53
ETA32 = 2.0**-149

# x[h, w] = 4h + w:
#  0  1  2  3
#  4  5  6  7
#  8  9 10 11
# 12 13 14 15
GRID = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
K1P2 = dict(group_size=1, output_size=2, spatial_scale=1.0)




# ----------------------------------------------------------------------------------------------- hand-worked cases


@pytest.mark.parametrize("assemble", FORWARD)
def test_whole_map_roi_k1_p2(assemble):
    """A 4 x 4 ROI in 2 x 2 bins averages each 2 x 2 quadrant."""
    # width 4, bin 2: bins [0, 2) and [2, 4); top-left (0 + 1 + 4 + 5) / 4 = 2.5, top-right (2 + 3 + 6 + 7) / 4 = 4.5
    out = assemble(GRID, [[0, 0, 0, 4, 4]], **K1P2)
    np.testing.assert_array_equal(out, [[[[2.5, 4.5], [10.5, 12.5]]]])
    assert out.dtype == np.float32


@pytest.mark.parametrize("assemble", FORWARD)
def test_overlapping_bins(assemble):
    """Bins of a 3 x 3 ROI in P = 2 share the middle row and column (floor start, ceil end)."""
    # width 3, bin 1.5: bin 0 = [floor(0), ceil(1.5)) = [0, 2), bin 1 = [floor(1.5), ceil(3)) = [1, 3)
    # top-right: x[0:2, 1:3] = (1 + 2 + 5 + 6) / 4 = 3.5; bottom-left: x[1:3, 0:2] = (4 + 5 + 8 + 9) / 4 = 6.5
    out = assemble(GRID, [[0, 0, 0, 3, 3]], **K1P2)
    np.testing.assert_array_equal(out, [[[[2.5, 3.5], [6.5, 7.5]]]])


@pytest.mark.parametrize("assemble", FORWARD)
def test_channel_layout(assemble):
    """Bin (ph, pw) reads channel (c_out*k + gh)*k + gw with gw = pw*k // P, also when P is not a multiple of k."""
    x = np.broadcast_to(np.arange(8, dtype=np.float32)[None, :, None, None], (1, 8, 4, 4))  # channel c is constant c
    out = assemble(x, [[0, 0, 0, 4, 4]], **_kw(2, 2, 1.0))
    np.testing.assert_array_equal(out, [[[[0, 1], [2, 3]], [[4, 5], [6, 7]]]])
    # P = 3, k = 2: g = (0 * 2) // 3, (1 * 2) // 3, (2 * 2) // 3 = 0, 0, 1
    out = assemble(x, [[0, 0, 0, 4, 4]], **_kw(2, 3, 1.0))
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 1], [0, 0, 1], [2, 2, 3]])
    np.testing.assert_array_equal(out[0, 1], 4 + out[0, 0])


@pytest.mark.parametrize("assemble", FORWARD)
def test_spatial_scale(assemble):
    """Image coordinates are rounded, then scaled; fractional feature starts are floored."""
    # s = 1/2: (0, 0, 8, 8) covers the whole 4 x 4 map
    np.testing.assert_array_equal(assemble(GRID, [[0, 0, 0, 8, 8]], **_kw(1, 2, 0.5)), [[[[2.5, 4.5], [10.5, 12.5]]]])
    # s = 1/4: start 2 * 0.25 = 0.5, end 10 * 0.25 = 2.5, bin 1: bins [floor(0.5), ceil(1.5)) = [0, 2) and [1, 3)
    out = assemble(GRID, [[0, 2, 2, 10, 10]], **_kw(1, 2, 0.25))
    np.testing.assert_array_equal(out, [[[[2.5, 3.5], [6.5, 7.5]]]])


@pytest.mark.parametrize("assemble", FORWARD)
def test_round_half_away_from_zero(assemble):
    """ROI edges round half away from zero: x1 = 2.5 starts at column 3, x1 = -0.5 at column -1."""
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 1, 6)  # one row: 0 1 2 3 4 5
    # round(2.5) = 3, round(4.5) = 5: columns [3, 5), mean (3 + 4) / 2 = 3.5 (half-to-even would give 2.5)
    np.testing.assert_array_equal(assemble(x, [[0, 2.5, 0, 4.5, 1]], **_kw(1, 1, 1.0)), [[[[3.5]]]])
    # round(-0.5) = -1, round(1.5) = 2: width 3, bins [-1, 0) (empty after clipping, so 0), [0, 1), [1, 2)
    # (half-to-even would start at 0 with bins of 2/3 and give 0, 0.5, 1)
    out = assemble(x, [[0, -0.5, 0, 1.5, 1]], **_kw(1, 3, 1.0))
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 1]] * 3)


@pytest.mark.parametrize("assemble", FORWARD)
def test_degenerate_rois(assemble):
    """Zero-size, outside, partly outside and huge ROIs follow the clipped-bin rules."""
    # zero size at (1, 2): width 0.1, bin 0.05: bins [floor(1), ceil(1.05)) = [1, 2) and [floor(1.05), ceil(1.1))
    # = [1, 2); every bin reads x[2, 1] = 9
    np.testing.assert_array_equal(assemble(GRID, [[0, 1, 2, 1, 2]], **K1P2), np.full((1, 1, 2, 2), 9))
    # wholly outside: all edges clip to 4, every bin is empty
    np.testing.assert_array_equal(assemble(GRID, [[0, 10, 10, 14, 14]], **K1P2), np.zeros((1, 1, 2, 2)))
    # partly outside: [-2, 2) clips to [0, 2), mean (0 + 1 + 4 + 5) / 4
    np.testing.assert_array_equal(assemble(GRID, [[0, -2, -2, 2, 2]], **_kw(1, 1, 1.0)), [[[[2.5]]]])
    # huge: bin 1e6, bins [-1e6, 0) (empty) and [0, 1e6) (the whole map, mean 7.5)
    out = assemble(GRID, [[0, -1e6, -1e6, 1e6, 1e6]], **K1P2)
    np.testing.assert_array_equal(out, [[[[0, 0], [0, 7.5]]]])


@pytest.mark.parametrize("assemble", FORWARD)
def test_batch_index_selects_image(assemble):
    """An ROI reads the image its batch index names."""
    x = np.concatenate([GRID, GRID + 100])  # (2, 1, 4, 4)
    out = assemble(x, [[1, 0, 0, 4, 4], [0, 0, 0, 4, 4]], **_kw(1, 1, 1.0))
    np.testing.assert_array_equal(out.ravel(), [107.5, 7.5])  # mean of 0..15 is 7.5


@pytest.mark.parametrize("assemble", FORWARD)
def test_empty_rois(assemble):
    """No ROIs give a (0, C_out, P, P) float32 array."""
    out = assemble(np.zeros((1, 18, 3, 3), np.float32), np.zeros((0, 5), np.float32), **_kw(3, 4, 1.0))
    assert out.shape == (0, 2, 4, 4) and out.dtype == np.float32


@pytest.mark.parametrize("backward", BACKWARD)
def test_backward_hand_worked(backward):
    """Each bin's gradient spreads evenly over its pixels; overlapping bins add up."""
    # 3 x 3 ROI, P = 2: bins [0, 2) and [1, 3) per axis, area 4, gradient 4 each, so 1 per pixel per bin;
    # pixel (1, 1) lies in all four bins, (0, 1) in two, row and column 3 in none
    g = backward(np.full((1, 1, 2, 2), 4, np.float32), [[0, 0, 0, 3, 3]], (1, 1, 4, 4), **K1P2)
    np.testing.assert_array_equal(g[0, 0], [[1, 2, 1, 0], [2, 4, 2, 0], [1, 2, 1, 0], [0, 0, 0, 0]])
    assert g.dtype == np.float32


@pytest.mark.parametrize("backward", BACKWARD)
def test_backward_routes_to_part_channels(backward):
    """With k = P on a k x k ROI, bin (ph, pw) sends its gradient only to channel ph*k + pw at pixel (ph, pw)."""
    grad = np.array([[[[1, 2], [3, 4]]]], np.float32)
    g = backward(grad, [[0, 0, 0, 2, 2]], (1, 4, 2, 2), **_kw(2, 2, 1.0))
    expected = np.zeros((1, 4, 2, 2), np.float32)
    for ph in range(2):
        for pw in range(2):
            expected[0, ph * 2 + pw, ph, pw] = grad[0, 0, ph, pw]
    np.testing.assert_array_equal(g, expected)


@pytest.mark.parametrize("backward", BACKWARD)
def test_backward_empty_and_outside(backward):
    """No ROIs, or ROIs whose bins are all empty, give a zero gradient of the input shape."""
    g = backward(np.zeros((0, 2, 3, 3), np.float32), np.zeros((0, 5), np.float32), (1, 8, 4, 4), **_kw(2, 3, 1.0))
    assert g.shape == (1, 8, 4, 4) and g.dtype == np.float32 and not g.any()
    g = backward(np.ones((1, 1, 2, 2), np.float32), [[0, 10, 10, 14, 14]], (1, 1, 4, 4), **K1P2)
    assert not g.any()


# ----------------------------------------------------------------------------------------------- properties



@st.composite
def cell_aligned(draw):
    """A map, and an ROI covering exactly k x k whole cells of ``ch x cw`` feature pixels (in image pixels)."""
    k, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    ch, cw, oy, ox = (draw(st.integers(lo, 3)) for lo in (1, 1, 0, 0))
    H, W = oy + k * ch + draw(st.integers(0, 2)), ox + k * cw + draw(st.integers(0, 2))
    s = draw(st.sampled_from([1.0, 0.5, 0.25]))  # powers of two: image coordinates map to features exactly
    x = draw(hnp.arrays(np.float32, (1, c_out * k * k, H, W), elements=values))
    roi = np.array([[0, ox / s, oy / s, (ox + k * cw) / s, (oy + k * ch) / s]], np.float32)
    return x, roi, k, s, (ch, cw, oy, ox)


@settings(max_examples=100)
@given(cell_aligned())
def test_cell_aligned_roi_gives_cell_means(problem):
    """A ROI covering exactly k x k whole cells with P = k returns the cell means."""
    x, roi, k, s, (ch, cw, oy, ox) = problem
    c_out = x.shape[1] // (k * k)
    expected = np.empty((1, c_out, k, k))
    mean_abs = np.empty_like(expected)
    for c in range(c_out):
        for gh in range(k):
            for gw in range(k):
                cell = x[0, (c * k + gh) * k + gw, oy + gh * ch : oy + (gh + 1) * ch, ox + gw * cw : ox + (gw + 1) * cw]
                expected[0, c, gh, gw] = cell.astype(np.float64).mean()
                mean_abs[0, c, gh, gw] = np.abs(cell).astype(np.float64).mean()
    # float32 running sum of n = ch*cw terms: (n - 1) u mean|x|; division and final rounding add 2u (and ETA32 if
    # they underflow); the float64 summed-area table adds at most 4(H + W + 1) u64 sum|x| (see sat_error)
    tol = (ch * cw + 1) * U32 * mean_abs + sat_error(x) + ETA32
    for assemble in FORWARD:
        out = assemble(x, roi, **_kw(k, k, s))
        assert np.all(np.abs(out - expected) <= tol), assemble.__name__


def sat_error(x):
    """Bound on a float64 summed-area-table bin sum's error: four prefix sums and three subtractions, each prefix
    a chain of at most H + W float64 additions of terms bounded by sum|x| in total."""
    H, W = x.shape[2:]
    return 4 * (H + W + 1) * U64 * np.abs(x.astype(np.float64)).sum()


def diff_error(grad, input_shape):
    """Bound on the float64 difference-array gradient's error: every pixel is a chain of at most (number of
    corners + H + W + 2) float64 additions of the 4 * R * C_out * P * P corner values, each at most |grad|."""
    H, W = input_shape[2:]
    return (grad.size * 4 + H + W + 2) * U64 * 4 * np.abs(grad.astype(np.float64)).sum()


def within_tolerance(actual, expected, tol):
    """Elementwise ``|actual - expected| <= tol``, reporting the worst excess."""
    excess = np.abs(actual.astype(np.float64) - expected) - tol
    assert excess.size == 0 or excess.max() <= 0, f"exceeds tolerance by {excess.max()}"


def grads_of(problem):
    """A gradient strategy of the right shape, (R, C_out, P, P), for a drawn problem."""
    x, rois, kw = problem
    k, P = kw["group_size"], kw["output_size"]
    return hnp.arrays(np.float32, (rois.shape[0], x.shape[1] // (k * k), P, P), elements=values)


@settings(max_examples=150)
@given(problems(), st.data())
def test_loop_and_vectorized_agree(problem, data):
    """The loop templates and the vectorized versions agree within the float32 summation bound."""
    x, rois, kw = problem
    H, W = x.shape[2:]
    # the loop's float32 sum of n <= H*W terms errs by (n - 1) u mean|x|, its division by u |mean|; the vectorized
    # mean is rounded once (u |mean|) after the float64 table's own error
    within_tolerance(ps_assemble_loop(x, rois, **kw), ps_assemble(x, rois, **kw), summation_error_bound(x, rois, **kw))

    grad = data.draw(grads_of(problem))
    # a pixel of one channel receives at most m = R*P*P bin values g / area, each rounded (u) and summed in float32
    # ((m - 1) u); the vectorized sum is rounded once (u) after the float64 difference array's own error; each of
    # the m + 1 roundings may also underflow (ETA32 / 2)
    spread_abs = ps_assemble_backward(np.abs(grad), rois, x.shape, **kw).astype(np.float64)
    m = rois.shape[0] * kw["output_size"] ** 2
    tol = (m + 2) * U32 * spread_abs + diff_error(grad, x.shape) + (m + 1) * ETA32
    loop = ps_assemble_backward_loop(grad, rois, x.shape, **kw)
    within_tolerance(loop, ps_assemble_backward(grad, rois, x.shape, **kw), tol)


@settings(max_examples=150)
@given(problems(), st.data())
def test_backward_is_the_adjoint(problem, data):
    """<A x, g> == <x, A^T g> for the loop pair and the vectorized pair."""
    x, rois, kw = problem
    N, CKK, H, W = x.shape
    P = kw["output_size"]
    R = rois.shape[0]
    g = data.draw(grads_of(problem))
    # B = <A|x|, |g|> bounds every product's magnitude; the loop errors are (H*W + 1) u and (R*P*P + 1) u of it (see
    # test_loop_and_vectorized_agree), the float64 dot products add far less than 2u of it
    B = np.vdot(ps_assemble(np.abs(x), rois, **kw).astype(np.float64), np.abs(g).astype(np.float64))
    sum_g, sum_x = np.abs(g.astype(np.float64)).sum(), np.abs(x.astype(np.float64)).sum()
    tol = (H * W + R * P * P + 4) * U32 * B + sat_error(x) * sum_g + diff_error(g, x.shape) * sum_x
    tol += (R * P * P + 2) * ETA32 * (sum_g + sum_x)  # underflowing divisions and roundings
    for forward, backward in zip(FORWARD, BACKWARD, strict=True):
        lhs = np.vdot(forward(x, rois, **kw).astype(np.float64), g.astype(np.float64))
        rhs = np.vdot(x.astype(np.float64), backward(g, rois, x.shape, **kw).astype(np.float64))
        assert abs(lhs - rhs) <= tol, forward.__name__


# ----------------------------------------------------------------------------------------------- bad inputs

MAPS = np.zeros((1, 4, 3, 3), np.float32)
ROI = [[0, 0, 0, 2, 2]]


@pytest.mark.parametrize("assemble", FORWARD)
@pytest.mark.parametrize(
    "maps, rois, kw, match",
    [
        (np.zeros((4, 3, 3)), ROI, _kw(2, 2, 1.0), "score_maps"),
        (np.zeros((1, 5, 3, 3)), ROI, _kw(2, 2, 1.0), r"score_maps.*k\*k"),
        (np.full((1, 4, 3, 3), np.nan), ROI, _kw(2, 2, 1.0), "score_maps"),
        (MAPS, [[0, 0, 0, 2]], _kw(2, 2, 1.0), "rois"),
        (MAPS, [[1, 0, 0, 2, 2]], _kw(2, 2, 1.0), "rois"),
        (MAPS, [[0.5, 0, 0, 2, 2]], _kw(2, 2, 1.0), "rois"),
        (MAPS, [[-1, 0, 0, 2, 2]], _kw(2, 2, 1.0), "rois"),
        (MAPS, [[0, 3, 0, 2, 2]], _kw(2, 2, 1.0), "rois"),
        (MAPS, [[0, 0, 0, 2, np.inf]], _kw(2, 2, 1.0), "rois"),
        (MAPS, [[0, 0, 0, 2, 1e38]], _kw(2, 2, 1.0), "rois"),
        (MAPS, ROI, _kw(0, 2, 1.0), "group_size"),
        (MAPS, ROI, _kw(2, 0, 1.0), "output_size"),
        (MAPS, ROI, _kw(2, 2, 0.0), "spatial_scale"),
        (MAPS, ROI, _kw(2, 2, -0.5), "spatial_scale"),
        (MAPS, ROI, _kw(2, 2, float("inf")), "spatial_scale"),
    ],
)
def test_forward_rejects_bad_input(assemble, maps, rois, kw, match):
    """Bad score maps, ROIs and parameters raise a ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        assemble(maps, rois, **kw)


@pytest.mark.parametrize("assemble", FORWARD)
@pytest.mark.parametrize(
    "maps, kw, match",
    [
        ([["a"]], _kw(2, 2, 1.0), "score_maps"),
        (MAPS, _kw(2.0, 2, 1.0), "group_size"),
        (MAPS, _kw(2, True, 1.0), "output_size"),
        (MAPS, _kw(2, 2, "1"), "spatial_scale"),
    ],
)
def test_forward_rejects_wrong_types(assemble, maps, kw, match):
    """Wrong types raise a TypeError naming the argument."""
    with pytest.raises(TypeError, match=match):
        assemble(maps, ROI, **kw)


@pytest.mark.parametrize("backward", BACKWARD)
@pytest.mark.parametrize(
    "grad, rois, shape, error, match",
    [
        (np.zeros((1, 1, 3, 3)), ROI, (1, 4, 3, 3), ValueError, "grad"),
        (np.zeros((2, 1, 2, 2)), ROI, (1, 4, 3, 3), ValueError, "grad"),
        (np.full((1, 1, 2, 2), np.nan), ROI, (1, 4, 3, 3), ValueError, "grad"),
        (np.zeros((1, 1, 2, 2)), ROI, (1, 4, 3), ValueError, "input_shape"),
        (np.zeros((1, 1, 2, 2)), ROI, (1, 6, 3, 3), ValueError, r"input_shape.*k\*k"),
        (np.zeros((1, 1, 2, 2)), ROI, (1, 4, -3, 3), ValueError, "input_shape"),
        (np.zeros((1, 1, 2, 2)), ROI, 4, TypeError, "input_shape"),
        (np.zeros((1, 1, 2, 2)), ROI, (1, 4, 3.0, 3), TypeError, "input_shape"),
        (np.zeros((1, 1, 2, 2)), [[1, 0, 0, 2, 2]], (1, 4, 3, 3), ValueError, "rois"),
    ],
)
def test_backward_rejects_bad_input(backward, grad, rois, shape, error, match):
    """Bad gradients, ROIs and input shapes raise an error naming the argument."""
    with pytest.raises(error, match=match):
        backward(grad, rois, shape, **_kw(2, 2, 1.0))
