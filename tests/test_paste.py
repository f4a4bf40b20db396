"""Pasting masks into the image: hand-worked samples, rounding, clipping at the image border, bad input."""

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fcis_twin.reference._checks import MAX_COORDINATE
from fcis_twin.reference.paste import (
    REGION_BOTTOM,
    REGION_FIELDS,
    REGION_LEFT,
    REGION_RIGHT,
    REGION_TOP,
    box_regions,
    paste_mask_region,
    paste_masks,
    paste_masks_loop,
)

#: Box coordinates on a half-pixel grid around a small image, so that .5 cases and partly-outside boxes are common.
half_coordinate = st.integers(-12, 30).map(lambda v: np.float32(v / 2))


def c_round(v):
    """Round half away from zero, written independently of the module under test (decimal's ROUND_HALF_UP)."""
    return int(Decimal(float(v)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@st.composite
def half_open_box(draw):
    a, b, c, d = (draw(half_coordinate) for _ in range(4))
    return np.array([min(a, c), min(b, d), max(a, c), max(b, d)], np.float32)


def sample_loop(mask, box, image_shape):
    """Per-pixel oracle: the documented float32 formulas, one output pixel at a time, rows interpolated first."""
    ph, pw = mask.shape
    height, width = image_shape
    x1, y1, x2, y2 = (c_round(v) for v in box)
    w, h = max(x2 - x1, 1), max(y2 - y1, 1)
    out = np.zeros((height, width), np.float32)
    f = np.float32

    def coord(offset, p, size):
        u = (f(offset) + f(0.5)) * f(p) / f(size) - f(0.5)
        u = min(max(u, f(0)), f(p - 1))
        u0 = int(np.floor(u))
        return u0, min(u0 + 1, p - 1), u - f(u0)

    for y in range(max(y1, 0), min(y1 + h, height)):
        v0, v1, ay = coord(y - y1, ph, h)
        row = (f(1) - ay) * mask[v0] + ay * mask[v1]  # (Pw,) rows first
        for x in range(max(x1, 0), min(x1 + w, width)):
            u0, u1, ax = coord(x - x1, pw, w)
            out[y, x] = (f(1) - ax) * row[u0] + ax * row[u1]
    return out


def test_two_by_two_mask_in_four_pixel_box():
    """A 2 x 2 mask pasted into a 4 x 4 box gives the hand-computed bilinear samples."""
    # u = (x + 0.5) * 2 / 4 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1: the weight of cell 1 is
    # s = 0, 0.25, 0.75, 1 for x = 0..3, and the same for rows.  The mask m[p, q] = (p + q) / 2 is linear, so the
    # paste is (s[y] + s[x]) / 2.
    mask = np.array([[0.0, 0.5], [0.5, 1.0]], np.float32)
    expected = np.array(
        [
            [0.0, 0.125, 0.375, 0.5],
            [0.125, 0.25, 0.5, 0.625],
            [0.375, 0.5, 0.75, 0.875],
            [0.5, 0.625, 0.875, 1.0],
        ],
        np.float32,
    )
    pasted = paste_masks(mask[None], [[1, 2, 5, 6]], (7, 6))  # box columns 1..4, rows 2..5
    assert pasted.dtype == np.float32 and pasted.shape == (1, 7, 6)
    np.testing.assert_array_equal(pasted[0, 2:6, 1:5], expected)
    pasted[0, 2:6, 1:5] = 0
    assert not pasted.any()
    y0, x0, values = paste_mask_region(mask, [1, 2, 5, 6], (7, 6))
    assert (y0, x0) == (2, 1)
    np.testing.assert_array_equal(values, expected)


def test_non_square_mask_resamples_rows_and_columns_separately():
    """A (1, 3) mask into a 2 x 3 box repeats its one row and keeps its three columns."""
    # rows: Ph = 1, so every row samples u = 0; columns: w = Pw = 3, so u = x exactly.
    pasted = paste_masks(np.array([[[0.25, 0.5, 1.0]]]), [[0, 0, 3, 2]], (2, 4))
    np.testing.assert_array_equal(pasted[0], [[0.25, 0.5, 1.0, 0], [0.25, 0.5, 1.0, 0]])


def constant_paste(box, const, image_shape):
    """The expected paste of a constant mask: ``const`` on the rounded box's in-image pixels, 0 elsewhere."""
    height, width = image_shape
    x1, y1, x2, y2 = (c_round(v) for v in box)
    expected = np.zeros((height, width), np.float32)
    rows = slice(max(y1, 0), max(min(y1 + max(y2 - y1, 1), height), 0))
    cols = slice(max(x1, 0), max(min(x1 + max(x2 - x1, 1), width), 0))
    expected[rows, cols] = const
    return expected


@given(box=half_open_box(), const=st.sampled_from([0.0, 0.25, 0.5, 1.0]), p=st.integers(1, 5))
def test_constant_mask_pastes_as_constant_inside_rounded_box(box, const, p):
    """Pasting a constant mask gives that constant inside the rounded box and 0 outside (exact for dyadic values)."""
    # a power of two times weights that sum to exactly 1 in float32 stays exact
    pasted = paste_masks(np.full((1, p, p), const, np.float32), box[None], (9, 11))
    np.testing.assert_array_equal(pasted[0], constant_paste(box, const, (9, 11)))


@given(box=half_open_box(), const=st.floats(0, 1, width=32, allow_subnormal=False), p=st.integers(1, 5))
def test_constant_mask_pastes_as_constant_within_rounding(box, const, p):
    """Any constant mask pastes as that constant up to float32 rounding of the two weight products per axis."""
    pasted = paste_masks(np.full((1, p, p), const, np.float32), box[None], (9, 11))[0]
    # c * (1 - a) + c * a: two roundings per axis, so a few ulp of c at most
    np.testing.assert_allclose(pasted, constant_paste(box, const, (9, 11)), rtol=4 * 2.0**-24, atol=0)


@given(
    mask=st.integers(1, 5).flatmap(lambda p: hnp.arrays(np.float32, (p, p), elements=st.floats(0, 1, width=32))),
    x1=st.integers(-7, 10),
    y1=st.integers(-7, 10),
)
def test_box_of_mask_size_at_integer_position_reproduces_mask(mask, x1, y1):
    """A box of exactly P x P pixels at an integer position copies the mask, cut where it leaves the image."""
    # w = P gives u = (x - X1 + 0.5) * P / P - 0.5 = x - X1: weight 1 on one cell, 0 elsewhere
    p = mask.shape[0]
    height, width = 6, 8
    pasted = paste_masks(mask[None], [[x1, y1, x1 + p, y1 + p]], (height, width))[0]
    margin = 7 + 5  # covers x1 >= -7 on the left and x1 + P <= 10 + 5 on the right
    canvas = np.zeros((height + 2 * margin, width + 2 * margin), np.float32)  # the image with a margin around it
    canvas[y1 + margin : y1 + margin + p, x1 + margin : x1 + margin + p] = mask
    np.testing.assert_array_equal(pasted, canvas[margin : margin + height, margin : margin + width])


@settings(max_examples=100)
@given(
    mask=st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(
        lambda shape: hnp.arrays(np.float32, shape, elements=st.floats(0, 1, width=32))
    ),
    box=half_open_box(),
)
def test_paste_agrees_with_per_pixel_loop(mask, box):
    """The separable weight-matrix form equals, bit for bit, a per-pixel loop of the documented formulas."""
    pasted = paste_masks(mask[None], box[None], (9, 11))[0]
    # both round each product and each two-tap sum in float32, without fused multiply-adds
    np.testing.assert_array_equal(pasted, sample_loop(mask, box, (9, 11)))


@settings(max_examples=100)
@given(
    boxes=st.lists(half_open_box(), max_size=3),
    p=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
    threshold=st.sampled_from([None, 1e-6, 0.25, 0.5, 1.0]),
)
def test_loop_template_equals_the_vectorised_paste(boxes, p, seed, threshold):
    """The kernels' template, one pixel at a time, gives the vectorised paste's values bit for bit."""
    masks = np.random.default_rng(seed).random((len(boxes), *p), dtype=np.float32)
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    expected = paste_masks(masks, boxes, (7, 9), threshold=threshold)
    looped = paste_masks_loop(masks, boxes, (7, 9), threshold=threshold)
    assert looped.dtype == expected.dtype
    np.testing.assert_array_equal(looped.view(np.uint8), expected.view(np.uint8))  # bits, not values


def test_box_regions_hand_worked():
    """Regions hold the rounded box and its in-image part, in the REGION_* columns."""
    # x: round(-2.5) = -3, round(3.0) = 3, w = 6, columns [-3, 3) meet the image in [0, 3)
    # y: round(1.4) = 1, round(9.0) = 9, h = 8, rows [1, 9) meet a 5-row image in [1, 5)
    # a zero-size box still spans one pixel; a box beyond the image meets it nowhere (bottom == top)
    regions = box_regions(np.float32([[-2.5, 1.4, 3.0, 9.0], [2, 2, 2, 2], [0, 7, 4, 8]]), 5, 6)
    assert regions.shape == (3, REGION_FIELDS) and regions.dtype == np.int64
    np.testing.assert_array_equal(regions, [[1, -3, 8, 6, 1, 0, 5, 3], [2, 2, 1, 1, 2, 2, 3, 3],
                                            [7, 0, 1, 4, 5, 0, 5, 4]])
    assert (regions[:, REGION_BOTTOM] >= regions[:, REGION_TOP]).all()
    assert (regions[:, REGION_RIGHT] >= regions[:, REGION_LEFT]).all()


@given(
    box=half_open_box(),
    shift=st.tuples(st.integers(0, 8), st.integers(0, 8)),
    p=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_in_image_part_is_the_shifted_sample(box, shift, p, seed):
    """The part of a box inside the image equals the same box pasted into a larger image where it fits, shifted."""
    mask = np.random.default_rng(seed).random((p, p), dtype=np.float32)
    dx, dy = shift
    box = np.floor(box)  # integer coordinates: rounding commutes with the shift
    # the big image has dx more columns on the left and dy more rows on top; the small image is its corner
    big = paste_masks(mask[None], (box + np.float32([dx, dy, dx, dy]))[None], (9 + dy, 11 + dx))[0]
    small = paste_masks(mask[None], box[None], (9, 11))[0]
    np.testing.assert_array_equal(small, big[dy:, dx:])


@given(boxes=st.lists(half_open_box(), max_size=4), p=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_paste_masks_is_paste_mask_region_per_detection(boxes, p, seed):
    """paste_masks writes exactly the region paste_mask_region returns, and zeros elsewhere."""
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    masks = np.random.default_rng(seed).random((boxes.shape[0], p, p), dtype=np.float32)
    pasted = paste_masks(masks, boxes, (9, 11))
    for d in range(boxes.shape[0]):
        y0, x0, values = paste_mask_region(masks[d], boxes[d], (9, 11))
        assert 0 <= y0 <= 9 and 0 <= x0 <= 11
        assert values.dtype == np.float32 and (values.size > 0 or values.shape == (0, 0))
        expected = np.zeros((9, 11), np.float32)
        expected[y0 : y0 + values.shape[0], x0 : x0 + values.shape[1]] = values
        np.testing.assert_array_equal(pasted[d], expected)


def test_box_partly_outside_keeps_the_shifted_samples():
    """A box hanging over the left edge keeps its right part, sampled as if the whole box were there."""
    # box columns [-2, 2) of width 4 with mask row (0, 1): u = (x + 2 + 0.5) * 2 / 4 - 0.5 = 0.75, 1.25 -> 0.75, 1
    y0, x0, values = paste_mask_region(np.array([[0.0, 1.0]]), [-2, 0, 2, 1], (2, 3))
    assert (y0, x0) == (0, 0)
    np.testing.assert_array_equal(values, [[0.75, 1.0]])


def test_box_wholly_outside_pastes_nothing():
    """A box wholly outside the image gives a 0 x 0 region and an all-zero paste."""
    for box in ([5, 0, 9, 1], [-4, 0, -1, 1], [0, 3, 2, 5], [0, -6, 2, -1]):
        y0, x0, values = paste_mask_region(np.ones((2, 2)), box, (3, 3))
        assert values.shape == (0, 0) and 0 <= y0 <= 3 and 0 <= x0 <= 3
        assert not paste_masks(np.ones((1, 2, 2)), [box], (3, 3)).any()


def test_rounding_is_half_away_from_zero():
    """x1 = 0.5 starts at column 1 and x2 = 2.5 ends after column 2 (half-to-even would give columns 0, 1)."""
    # round(0.5) = 1, round(2.5) = 3: columns [1, 3); round(-0.5) = -1, round(1.5) = 2: rows [-1, 2) -> [0, 2)
    pasted = paste_masks(np.ones((1, 2, 2)), [[0.5, -0.5, 2.5, 1.5]], (3, 5))[0]
    np.testing.assert_array_equal(pasted, [[0, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]])


def test_zero_size_box_becomes_one_pixel():
    """A zero-size (or sub-pixel) box pastes one pixel, sampling the mask centre."""
    # w = h = 1: u = 0.5 * 3 / 1 - 0.5 = 1, the centre cell of a 3 x 3 mask
    mask = np.arange(9, dtype=np.float32).reshape(1, 3, 3) / 8
    for box in ([2, 1, 2, 1], [1.6, 0.6, 2.4, 1.4]):  # both round to X1 = X2 = 2, Y1 = Y2 = 1
        pasted = paste_masks(mask, [box], (3, 4))[0]
        expected = np.zeros((3, 4), np.float32)
        expected[1, 2] = 4 / 8
        np.testing.assert_array_equal(pasted, expected)


def test_threshold_gives_bool_with_greater_or_equal():
    """With a threshold the paste is bool and a probability equal to the threshold is in the mask."""
    mask = np.array([[[0.25, 0.5]]], np.float32)
    binary = paste_masks(mask, [[0, 0, 2, 1]], (1, 3), threshold=0.25)
    assert binary.dtype == np.bool_
    np.testing.assert_array_equal(binary, [[[True, True, False]]])
    np.testing.assert_array_equal(paste_masks(mask, [[0, 0, 2, 1]], (1, 3), threshold=0.2500001), [[[0, 1, 0]]])
    np.testing.assert_array_equal(paste_masks(mask, [[0, 0, 2, 1]], (1, 3), threshold=1e-6), [[[1, 1, 0]]])


@pytest.mark.parametrize("threshold", [0, 0.0, -0.1, 1e-50])
def test_threshold_must_be_positive(threshold):
    """A threshold of 0 (or one that rounds to 0 in float32) would make every pixel outside the boxes True, against
    the docstring: it is refused."""
    with pytest.raises(ValueError, match=r"threshold must be in \(0(\.0)?, 1(\.0)?\]"):
        paste_masks(np.ones((1, 2, 2)), [[0, 0, 1, 1]], (3, 4), threshold=threshold)


def test_no_detections():
    """D = 0 gives an empty (0, H, W) paste of the right dtype."""
    empty = paste_masks(np.zeros((0, 21, 21)), np.zeros((0, 4)), (5, 7))
    assert empty.shape == (0, 5, 7) and empty.dtype == np.float32
    empty = paste_masks(np.zeros((0, 21, 21)), np.zeros((0, 4)), (5, 7), threshold=0.5)
    assert empty.shape == (0, 5, 7) and empty.dtype == np.bool_


@pytest.mark.parametrize(
    ("masks", "boxes", "kwargs", "match"),
    [
        (np.ones((2, 2)), [[0, 0, 1, 1]], {}, "masks must be 3-d"),
        (np.ones((2, 2, 2)), [[0, 0, 1, 1]], {}, "boxes must have shape"),
        (np.ones((1, 2, 2)), [0, 0, 1, 1], {}, "boxes must be 2-d"),
        (np.ones((1, 2, 2)), [[0, 0, 1, 1]], {"threshold": 1.5}, "threshold"),
        (np.full((1, 2, 2), np.nan), [[0, 0, 1, 1]], {}, "masks must be finite"),
        (np.full((1, 2, 2), 1.5), [[0, 0, 1, 1]], {}, "masks must hold probabilities"),
        (np.full((1, 2, 2), -0.5), [[0, 0, 1, 1]], {}, "masks must hold probabilities"),
        (np.ones((1, 0, 2)), [[0, 0, 1, 1]], {}, "masks must have a non-empty mask grid"),
        (np.ones((1, 2, 2)), [[2, 0, 1, 1]], {}, "boxes must satisfy"),
        (np.ones((1, 2, 2)), [[0, 0, 1, np.inf]], {}, "boxes must be finite"),
        (np.ones((1, 2, 2)), [[0, 0, 2 * MAX_COORDINATE, 1]], {}, "boxes must hold coordinates in"),
    ],
)
def test_bad_input_names_the_argument(masks, boxes, kwargs, match):
    """Malformed masks, boxes or threshold raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        paste_masks(masks, boxes, (4, 4), **kwargs)


def test_bad_types_and_image_shape():
    """A non-numeric threshold is a TypeError; a bad image_shape is named."""
    with pytest.raises(TypeError, match="threshold"):
        paste_masks(np.ones((1, 2, 2)), [[0, 0, 1, 1]], (4, 4), threshold="0.5")
    with pytest.raises(ValueError, match="image_shape"):
        paste_masks(np.ones((1, 2, 2)), [[0, 0, 1, 1]], (0, 4))


@pytest.mark.parametrize(
    ("mask", "box", "match"),
    [
        (np.ones((1, 2, 2)), [0, 0, 1, 1], "mask must be 2-d"),
        (np.ones((2, 2)), [0, 0, 1], "box must have shape"),
        (np.ones((2, 2)), [[0, 0, 1, 1]], "box must be 1-d"),
        (np.ones((2, 2)), [0, 1, 1, 0], "box must satisfy"),
        (np.full((2, 2), np.nan), [0, 0, 1, 1], "mask must be finite"),
    ],
)
def test_region_bad_input_names_the_argument(mask, box, match):
    """paste_mask_region rejects a malformed mask or box, naming it."""
    with pytest.raises(ValueError, match=match):
        paste_mask_region(mask, box, (4, 4))
