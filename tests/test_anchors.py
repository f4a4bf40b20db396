"""Anchors: the classic Faster R-CNN numbers, rounding, the (y, x, anchor) order and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fcis_twin.reference.anchors import anchor_base, shift_anchors

#: The classic ``generate_anchors()`` output, inclusive boxes, ratio-major (ratios 0.5, 1, 2 x scales 8, 16, 32).
CLASSIC_INCLUSIVE = np.float32(
    [
        [-84, -40, 99, 55],
        [-176, -88, 191, 103],
        [-360, -184, 375, 199],
        [-56, -56, 71, 71],
        [-120, -120, 135, 135],
        [-248, -248, 263, 263],
        [-36, -80, 51, 95],
        [-80, -168, 95, 183],
        [-168, -344, 183, 359],
    ]
)

ratio_values = st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0, 1.5, 0.3])
scale_values = st.sampled_from([0.5, 1.0, 2.0, 3.0, 8.0, 16.0])


def classic_generate_anchors(base_size, ratios, scales, rnd):
    """Transcription of the classic ``generate_anchors`` (inclusive boxes) with a pluggable rounding."""

    def whctrs(anchor):
        w = anchor[2] - anchor[0] + 1
        h = anchor[3] - anchor[1] + 1
        return w, h, anchor[0] + 0.5 * (w - 1), anchor[1] + 0.5 * (h - 1)

    def mkanchors(ws, hs, x_ctr, y_ctr):
        ws, hs = ws[:, None], hs[:, None]
        half_w, half_h = 0.5 * (ws - 1), 0.5 * (hs - 1)
        return np.hstack((x_ctr - half_w, y_ctr - half_h, x_ctr + half_w, y_ctr + half_h))

    base = np.array([1, 1, base_size, base_size], np.float64) - 1
    w, h, x_ctr, y_ctr = whctrs(base)
    ws = rnd(np.sqrt(w * h / np.asarray(ratios, np.float64)))
    hs = rnd(ws * np.asarray(ratios, np.float64))
    ratio_anchors = mkanchors(ws, hs, x_ctr, y_ctr)
    out = []
    for anchor in ratio_anchors:
        w, h, x_ctr, y_ctr = whctrs(anchor)
        out.append(mkanchors(w * np.asarray(scales, np.float64), h * np.asarray(scales, np.float64), x_ctr, y_ctr))
    return np.vstack(out)


def test_default_anchors_are_the_classic_ones():
    """Default anchors are the classic inclusive anchors plus 1 on x2 and y2."""
    a = anchor_base()
    assert a.dtype == np.float32 and a.shape == (9, 4)
    np.testing.assert_array_equal(a, CLASSIC_INCLUSIVE + np.float32([0, 0, 1, 1]))
    # e.g. row 0: ratio 0.5, w = round(sqrt(256 / 0.5)) = round(22.63) = 23, h = round(11.5) = 12,
    # scale 8: 184 x 96 about the inclusive centre 7.5: x1 = 7.5 - 183/2 = -84, y2 = 7.5 + 95/2 = 55
    np.testing.assert_array_equal(a[0], [-84, -40, 100, 56])


def test_default_anchors_do_not_depend_on_the_rounding_rule():
    """For the defaults, np.round (half to even) and round half away from zero give the same anchors."""
    classic = classic_generate_anchors(16, (0.5, 1, 2), (8, 16, 32), np.round)
    np.testing.assert_array_equal(classic, CLASSIC_INCLUSIVE)


def test_half_rounds_away_from_zero():
    """A ratio side of exactly k + 0.5 rounds up, where np.round would round to even."""
    # base 5: area 25, ratio 4: w = round(sqrt(25 / 4)) = round(2.5) = 3 (np.round: 2), h = 3 * 4 = 12
    # inclusive centre 2: x = 2 -+ (3 - 1)/2 = [1, 3], y = 2 -+ (12 - 1)/2 = [-3.5, 7.5]; half-open +1
    np.testing.assert_array_equal(anchor_base(5, ratios=(4,), scales=(1,)), [[1, -3.5, 4, 8.5]])
    # np.round would give w = 2, h = 8: inclusive [1.5, -1.5, 2.5, 5.5]
    np.testing.assert_array_equal(classic_generate_anchors(5, (4,), (1,), np.round), [[1.5, -1.5, 2.5, 5.5]])


def test_single_anchor_is_the_base_box():
    """Ratio 1 and scale 1 give back the base box [0, base_size)."""
    np.testing.assert_array_equal(anchor_base(16, ratios=(1,), scales=(1,)), [[0, 0, 16, 16]])
    # non-integer base_size 2.5: w = round(2.5) = 3, inclusive centre 0.75: x = [0.75 - 1, 0.75 + 1]
    np.testing.assert_array_equal(anchor_base(2.5, ratios=(1,), scales=(1,)), [[-0.25, -0.25, 2.75, 2.75]])


@given(
    st.integers(1, 32),
    st.lists(ratio_values, min_size=1, max_size=3),
    st.lists(scale_values, min_size=1, max_size=3),
)
def test_anchor_base_matches_classic_structure(base_size, ratios, scales):
    """anchor_base is the classic enumeration (through inclusive coordinates) with half-away rounding, +1."""
    from fcis_twin.reference._checks import round_half_away

    a = anchor_base(base_size, ratios, scales)
    assert a.shape == (len(ratios) * len(scales), 4) and a.dtype == np.float32
    expected = classic_generate_anchors(base_size, ratios, scales, round_half_away) + [0, 0, 1, 1]
    np.testing.assert_array_equal(a, expected.astype(np.float32))


@given(
    st.integers(1, 32),
    st.lists(ratio_values, min_size=1, max_size=3),
    st.lists(scale_values, min_size=1, max_size=3),
)
def test_anchor_base_geometry(base_size, ratios, scales):
    """Anchors share the centre base_size/2, are ratio-major, and have sides scale times a rounded ratio side."""
    a = anchor_base(base_size, ratios, scales).astype(np.float64)
    w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    np.testing.assert_array_equal((a[:, 0] + a[:, 2]) / 2, base_size / 2)
    np.testing.assert_array_equal((a[:, 1] + a[:, 3]) / 2, base_size / 2)
    s = np.tile(scales, len(ratios))  # ratio-major: the scale cycles fastest
    r = np.repeat(ratios, len(scales))
    ws, hs = w / s, h / s  # the ratio anchor's sides, integers
    np.testing.assert_array_equal(ws, np.round(ws))
    np.testing.assert_array_equal(hs, np.round(hs))
    # each rounded side is within half a pixel of its exact value
    assert (np.abs(ws - np.sqrt(base_size**2 / r)) <= 0.5).all()
    assert (np.abs(hs - ws * r) <= 0.5).all()


def test_shift_order_is_y_then_x_then_anchor():
    """Row (y*W + x)*A + a is base[a] shifted by (x, y) * stride."""
    base = np.float32([[0, 0, 16, 16], [-8, -4, 24, 20]])  # A = 2
    a = shift_anchors(base, (2, 3), 16)  # H = 2, W = 3
    assert a.shape == (12, 4) and a.dtype == np.float32
    # row (1*3 + 2)*2 + 1 = 11: y = 1, x = 2, anchor 1: base[1] + (32, 16, 32, 16)
    np.testing.assert_array_equal(a[11], [24, 12, 56, 36])
    # row (0*3 + 1)*2 + 0 = 2: y = 0, x = 1, anchor 0: shifted right by 16
    np.testing.assert_array_equal(a[2], [16, 0, 32, 16])
    # row (1*3 + 0)*2 + 0 = 6: y = 1, x = 0, anchor 0: shifted down by 16
    np.testing.assert_array_equal(a[6], [0, 16, 16, 32])


@given(
    st.integers(0, 4),
    st.integers(1, 5),
    st.integers(1, 5),
    st.sampled_from([1, 4, 8, 16, 32, 2.5]),
)
def test_shift_anchors_property(n_base, h, w, stride):
    """Every row is its base anchor plus (x*stride, y*stride, x*stride, y*stride)."""
    base = anchor_base(16, (0.5, 1, 2), (8, 16, 32))[:n_base]
    out = shift_anchors(base, (h, w), stride)
    assert out.shape == (h * w * n_base, 4) and out.dtype == np.float32
    grid = out.reshape(h, w, n_base, 4)
    for y in range(h):
        for x in range(w):
            shift = np.float32([x * stride, y * stride, x * stride, y * stride])
            np.testing.assert_array_equal(grid[y, x], base + shift)


def test_empty_base_gives_no_anchors():
    """An empty base gives a (0, 4) float32 array."""
    out = shift_anchors(np.zeros((0, 4), np.float32), (3, 4), 16)
    assert out.shape == (0, 4) and out.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"base_size": 0}, "base_size"),
        ({"base_size": -16}, "base_size"),
        ({"base_size": float("nan")}, "base_size"),
        ({"base_size": float("inf")}, "base_size must be finite"),
        ({"ratios": ()}, "ratios must not be empty"),
        ({"ratios": (0.5, 0)}, "ratios must be positive"),
        ({"ratios": (-1,)}, "ratios must be positive"),
        ({"ratios": (np.inf,)}, "ratios must be finite"),
        ({"ratios": (np.nan,)}, "ratios must be finite"),
        ({"ratios": [[1, 2]]}, "ratios must be 1-d"),
        ({"base_size": 1, "ratios": (0.01,)}, "ratios .* too extreme"),  # w = 10, h = round(0.1) = 0
        ({"scales": ()}, "scales must not be empty"),
        ({"scales": (8, -16)}, "scales must be positive"),
        ({"scales": (np.inf,)}, "scales must be finite"),
    ],
)
def test_anchor_base_bad_input(kwargs, match):
    """Bad anchor_base input raises ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        anchor_base(**kwargs)


def test_anchor_base_wrong_type():
    """A non-numeric base_size or ratios raises TypeError naming the argument."""
    with pytest.raises(TypeError, match="base_size"):
        anchor_base("16")
    with pytest.raises(TypeError, match="ratios"):
        anchor_base(ratios=("a", "b"))


@pytest.mark.parametrize(
    "args, match",
    [
        (([[0, 0, 16]], (2, 2), 16), "base"),
        (([[0, 0, -1, 16]], (2, 2), 16), "base must satisfy"),
        (([[0, 0, 16, 16]], (0, 2), 16), "feature_shape"),
        (([[0, 0, 16, 16]], (2,), 16), "feature_shape"),
        (([[0, 0, 16, 16]], (2, 2, 3), 16), "feature_shape"),
        (([[0, 0, 16, 16]], (2, 2), 0), "stride"),
        (([[0, 0, 16, 16]], (2, 2), -16), "stride"),
        (([[0, 0, 16, 16]], (2, 2), np.inf), "stride must be finite"),
    ],
)
def test_shift_anchors_bad_input(args, match):
    """Bad shift_anchors input raises ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        shift_anchors(*args)


def test_shift_anchors_wrong_type():
    """A non-integer feature size raises TypeError naming feature_shape."""
    with pytest.raises(TypeError, match="feature_shape"):
        shift_anchors([[0, 0, 16, 16]], (2.5, 2), 16)
    with pytest.raises(TypeError, match="feature_shape"):
        shift_anchors([[0, 0, 16, 16]], 2, 16)
