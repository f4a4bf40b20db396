"""Box arithmetic: areas, IoU, delta encoding and clipping on half-open boxes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fcis_twin.reference.boxes import BBOX_XFORM_CLIP, box_area, box_iou, clip_boxes, decode_boxes, encode_boxes
from fcis_twin.strategies import boxes


def test_area_hand_worked():
    """Area is (x2 - x1) * (y2 - y1) with no +1, zero for a degenerate box."""
    # 4 * 2 = 8; a vertical line has width 0; [0.5, 2.5) x [1, 1.5) = 2 * 0.5 = 1
    got = box_area([[0, 0, 4, 2], [3, 3, 3, 7], [0.5, 1, 2.5, 1.5]])
    np.testing.assert_array_equal(got, np.array([8, 0, 1], np.float32))
    assert got.dtype == np.float32


def test_iou_hand_worked():
    """IoU of overlapping, touching, nested and identical boxes."""
    a = [[0, 0, 4, 4]]
    b = [
        [1, 1, 5, 5],  # inter 3*3 = 9, union 16 + 16 - 9 = 23
        [4, 0, 8, 4],  # touching edge, half-open: inter 0
        [1, 1, 3, 3],  # nested: inter 4, union 16
        [0, 0, 4, 4],  # identical: 1
    ]
    np.testing.assert_array_equal(box_iou(a, b), np.float32([[9 / 23, 0, 4 / 16, 1]]))


def test_iou_zero_area_is_zero_not_nan():
    """Zero-area boxes have IoU 0 with anything, themselves included."""
    z = [[2, 2, 2, 2], [1, 1, 1, 5]]
    iou = box_iou(z, z + [[0, 0, 4, 4]])
    assert not np.isnan(iou).any()
    np.testing.assert_array_equal(iou, np.zeros((2, 3), np.float32))


def test_iou_empty_shapes():
    """Empty inputs give empty (N, M) matrices."""
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou([[0, 0, 1, 1]], np.zeros((0, 4))).shape == (1, 0)


@given(boxes(), boxes())
def test_iou_bounds_and_symmetry(a, b):
    """IoU lies in [0, 1], is symmetric, and is 1 on the diagonal for boxes with area."""
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert ((iou >= 0) & (iou <= 1)).all()
    np.testing.assert_array_equal(iou, box_iou(b, a).T)
    self_iou = np.diag(box_iou(a, a))
    np.testing.assert_array_equal(self_iou, (box_area(a) > 0).astype(np.float32))


def test_encode_decode_hand_worked():
    """A box shifted by half its width and doubled in height encodes to (0.5, 0.5, 0, log 2)."""
    # src: w = h = 10, centre (5, 5); dst: w = 10, h = 20, centre (10, 10)
    d = encode_boxes([[0, 0, 10, 10]], [[5, 0, 15, 20]])
    np.testing.assert_allclose(d, [[0.5, 0.5, 0.0, np.log(2)]], rtol=1e-6)
    # head stds divide the deltas: 0.5 / 0.2 = 2.5, log 2 / 0.5
    d = encode_boxes([[0, 0, 10, 10]], [[5, 0, 15, 20]], stds=(0.2, 0.2, 0.5, 0.5))
    np.testing.assert_allclose(d, [[2.5, 2.5, 0.0, 2 * np.log(2)]], rtol=1e-6)


@given(boxes(max_size=20, allow_degenerate=False), boxes(max_size=20, allow_degenerate=False))
def test_decode_inverts_encode(src, dst):
    """decode(src, encode(src, dst)) == dst up to float32 rounding."""
    n = min(len(src), len(dst))
    src, dst = src[:n], dst[:n]
    stds = (0.2, 0.2, 0.5, 0.5)
    back = decode_boxes(src, encode_boxes(src, dst, stds), stds)
    # coordinates are at most ~40 in magnitude; a few float32 ulps of the centre and size
    np.testing.assert_allclose(back, dst, atol=1e-4)


def test_decode_clamps_log_scale():
    """dw and dh are clamped at log(1000/16) before exp, so huge deltas stay finite."""
    out = decode_boxes([[0, 0, 16, 16]], [[0, 0, 1e4, 1e4]])
    # width = 16 * 1000/16 = 1000, centred on 8
    np.testing.assert_allclose(out, [[8 - 500, 8 - 500, 8 + 500, 8 + 500]], rtol=1e-5)
    assert np.isclose(np.exp(BBOX_XFORM_CLIP), 1000 / 16)


def test_decode_empty():
    """Decoding no boxes gives (0, 4) float32."""
    out = decode_boxes(np.zeros((0, 4)), np.zeros((0, 4)))
    assert out.shape == (0, 4) and out.dtype == np.float32


def test_clip_half_open_limits():
    """Clipping keeps the right edge at W (not W - 1) and the bottom at H."""
    np.testing.assert_array_equal(
        clip_boxes([[-3, 2, 12, 40], [1, 1, 2, 2]], (20, 10)), np.float32([[0, 2, 10, 20], [1, 1, 2, 2]])
    )


@given(boxes(), st.integers(1, 40), st.integers(1, 40))
def test_clip_inside_image(b, h, w):
    """Clipped boxes lie in [0, W] x [0, H] and boxes already inside are unchanged."""
    c = clip_boxes(b, (h, w))
    assert (c[:, [0, 2]] >= 0).all() and (c[:, [0, 2]] <= w).all()
    assert (c[:, [1, 3]] >= 0).all() and (c[:, [1, 3]] <= h).all()
    inside = (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w) & (b[:, 3] <= h)
    np.testing.assert_array_equal(c[inside], b[inside])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: box_area([[0, 0, 1]]), "boxes"),
        (lambda: box_area([[2, 0, 1, 1]]), "boxes"),
        (lambda: box_iou([[0, 0, 1, np.nan]], [[0, 0, 1, 1]]), "a must be finite"),
        (lambda: box_iou([[0, 0, 1, 1]], [0, 0, 1, 1]), "b must be 2-d"),
        (lambda: encode_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1], [0, 0, 2, 2]]), "same shape"),
        (lambda: encode_boxes([[0, 0, 0, 1]], [[0, 0, 1, 1]]), "src boxes must have positive"),
        (lambda: encode_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], stds=(1, 1, 0, 1)), "stds"),
        (lambda: decode_boxes([[0, 0, 1, 1]], [[0, 0, 0, 0], [0, 0, 0, 0]]), "deltas"),
        (lambda: clip_boxes([[0, 0, 1, 1]], (0, 5)), "image_shape"),
        (lambda: clip_boxes([[0, 0, 1, 1]], (5,)), "image_shape"),
    ],
)
def test_bad_input_names_argument(call, match):
    """Bad input raises ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        call()


def test_non_numeric_is_type_error():
    """Strings are a TypeError naming the argument."""
    with pytest.raises(TypeError, match="boxes"):
        box_area([["a", "b", "c", "d"]])


def test_wild_delta_decodes_to_infinity_and_clips_into_the_image():
    """A huge but finite dx overflows quietly to infinity and clipping brings it back into the image."""
    out = decode_boxes([[0, 0, 16, 16]], [[1e38, 0, 0, 0]])
    assert np.isinf(out[0, 0])
    np.testing.assert_array_equal(clip_boxes(out, (20, 30)), np.float32([[30, 0, 30, 16]]))
    with pytest.raises(ValueError, match="boxes must not contain NaN"):
        clip_boxes([[0, 0, np.nan, 1]], (5, 5))
