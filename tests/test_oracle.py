"""Oracle network outputs: channel layouts on hand-made scenes, soft part cells, RPN targets, box-regression maps
read through shifted ROIs, noise and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fcis_twin.reference.assemble import ps_assemble
from fcis_twin.reference.boxes import HEAD_STDS, box_iou, decode_boxes, tight_boxes
from fcis_twin.reference.oracle import OracleOutputs, cell_membership, oracle_outputs
from fcis_twin.reference.shapes import Scene, make_scene

#: Anchor sides (w, h): squares of three sizes and 2:1 / 1:2 boxes.
ANCHOR_SIDES = np.float32([[8, 8], [16, 16], [32, 32], [16, 8], [8, 16], [32, 16], [16, 32]])
A = len(ANCHOR_SIDES)
#: 64 x 80 is a multiple of every stride drawn below (2, 4, 8): no padded feature pixels.
SCENE = dict(image_shape=(64, 80), size_range=(16, 48), max_objects=4, min_visible_area=32)
seeds = st.integers(0, 2**32 - 1)
#: The oracle's defaults, L = logit_scale and b = outside_bias.
L, B = 6.0, 2.0


def grid_anchors(hf, wf, stride, sides=ANCHOR_SIDES):
    """(Hf*Wf*A, 4) anchors in (y, x, anchor) order, centred on (x*stride + stride/2, y*stride + stride/2)."""
    cx = np.arange(wf, dtype=np.float32) * stride + stride / 2  # (Wf,)
    cy = np.arange(hf, dtype=np.float32) * stride + stride / 2  # (Hf,)
    half_w, half_h = sides[:, 0] / 2, sides[:, 1] / 2  # (A,)
    x1 = np.broadcast_to(cx[None, :, None] - half_w, (hf, wf, len(sides)))
    y1 = np.broadcast_to(cy[:, None, None] - half_h[None, None, :], (hf, wf, len(sides)))
    x2 = np.broadcast_to(cx[None, :, None] + half_w, (hf, wf, len(sides)))
    y2 = np.broadcast_to(cy[:, None, None] + half_h[None, None, :], (hf, wf, len(sides)))
    return np.stack([x1, y1, x2, y2], axis=-1).reshape(-1, 4).astype(np.float32)


def hand_scene(masks, labels, h=32, w=32):
    """A Scene built from (n, H, W) visible masks (no occlusion) with their tight boxes."""
    masks = np.asarray(masks, bool)
    return Scene(np.zeros((h, w, 3), np.uint8), masks, masks.copy(), np.asarray(labels, np.int64),
                 tight_boxes(masks))


def alone(scene, i):
    """Instance ``i`` of ``scene`` as a scene of its own (no other instance's maximum or overwrite)."""
    keep = slice(i, i + 1)
    return Scene(scene.image, scene.masks[keep], scene.full_masks[keep], scene.labels[keep], scene.boxes[keep])


def square_with_notches():
    """Square [8, 24) x [8, 24), class 2, minus the 4 x 4 block at (8, 8) and columns 16, 17 of rows 20..23."""
    m = np.zeros((1, 32, 32), bool)
    m[0, 8:24, 8:24] = True
    m[0, 8:12, 8:12] = False  # feature pixel (2, 2) entirely outside the mask
    m[0, 20:24, 16:18] = False  # feature pixel (5, 4) half outside
    return hand_scene(m, [2])


def seg_channel(cls, j, gh, gw, k):
    return ((cls * 2 + j) * k + gh) * k + gw


def run(scene, *, stride=4, **kwargs):
    """The oracle with matching grid anchors; stride 4 unless told (not the oracle's default, 2) so that the
    hand-made 32 x 32 scenes give 8 x 8 maps."""
    h, w = scene.image.shape[:2]
    hf, wf = -(-h // stride), -(-w // stride)
    return oracle_outputs(scene, grid_anchors(hf, wf, stride), stride=stride, **kwargs)


def widened_region(box, hf, wf, stride):
    """(Hf, Wf) bool: feature pixels whose centre lies in ``box`` widened by half its size on each side."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    w, h = x2 - x1, y2 - y1
    px, py = (np.arange(wf) + 0.5) * stride, (np.arange(hf) + 0.5) * stride  # feature-pixel centres
    near_x = (px >= x1 - w / 2) & (px < x2 + w / 2)
    near_y = (py >= y1 - h / 2) & (py < y2 + h / 2)
    return near_y[:, None] & near_x[None, :]


def test_shapes_and_dtypes():
    """Four float32 tensors of the documented shapes; Hf, Wf round up when the stride does not divide."""
    scene = make_scene(0, image_shape=(30, 42), size_range=(10, 20))
    out = run(scene, stride=4, group_size=3)  # Hf = ceil(30 / 4) = 8, Wf = ceil(42 / 4) = 11
    assert isinstance(out, OracleOutputs) and out.stride == 4 and out.group_size == 3
    assert out.rpn_prob.shape == (1, 2 * A, 8, 11)
    assert out.rpn_deltas.shape == (1, 4 * A, 8, 11)
    assert out.seg_maps.shape == (1, 2 * 5 * 9, 8, 11)
    assert out.bbox_maps.shape == (1, 8 * 9, 8, 11)
    for arr in (out.rpn_prob, out.rpn_deltas, out.seg_maps, out.bbox_maps):
        assert arr.dtype == np.float32


def test_default_stride_is_2():
    """Without ``stride`` the feature map is the image halved (rounded up), with k = 7 by default."""
    scene = make_scene(0, image_shape=(30, 42), size_range=(10, 20))
    out = oracle_outputs(scene, grid_anchors(15, 21, 2))  # Hf = ceil(30 / 2) = 15, Wf = 42 / 2 = 21
    assert out.stride == 2 and out.group_size == 7
    assert out.seg_maps.shape == (1, 2 * 5 * 49, 15, 21) and out.bbox_maps.shape == (1, 8 * 49, 15, 21)
    with pytest.raises(ValueError, match="anchors"):
        oracle_outputs(scene, grid_anchors(8, 11, 4))  # anchors for stride 4: 8 * 11 * 7 rows, not 15 * 21 * A


def test_membership_hand_worked():
    """Soft membership on [0, 8) with k = 2 (cells [0, 4) and [4, 8)): 1 in the cell, linear to 0 a cell beyond."""
    p = np.float32([-2, 1, 4, 6, 8, 9, 11])
    # cell units u = p * 2 / 8 = -0.5, 0.25, 1, 1.5, 2, 2.25, 2.75; membership clip(1.5 - |u - centre|, 0, 1)
    m = cell_membership(p, np.float32(0), np.float32(8), 2)
    assert m.shape == (2, 7) and m.dtype == np.float32
    # cell 0, centre 0.5: 1.5 - |u - 0.5| = 0.5, 1.25, 1, 0.5, 0, -0.25, -0.75
    np.testing.assert_array_equal(m[0], [0.5, 1, 1, 0.5, 0, 0, 0])
    # cell 1, centre 1.5: 1.5 - |u - 1.5| = -0.5, 0.25, 1, 1.5, 1, 0.75, 0.25 (p = 4 and 8 close the cell)
    np.testing.assert_array_equal(m[1], [0, 0.25, 1, 1, 1, 0.75, 0.25])


@given(st.integers(-20, 20), st.integers(1, 40), st.integers(1, 7),
       hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(-80, 80)))
def test_membership_is_one_in_its_cell_and_zero_a_cell_beyond(lo, width, k, p2):
    """Membership is exactly 1 inside its own cell, exactly 0 more than one cell away, linear in between."""
    p = p2.astype(np.float32) / 2  # a half-integer grid hits the cell borders exactly
    m = cell_membership(p, np.float32(lo), np.float32(lo + width), k)
    assert m.shape == (k, p.size) and m.dtype == np.float32
    u = (p.astype(np.float64) - lo) * k / width  # (n,) cell units, in float64
    dist = np.abs(u[None, :] - (np.arange(k)[:, None] + 0.5))  # (k, n) from each cell's centre, in cells
    # float32 u is within ~1e-6 cells of u; a margin of 1e-3 cells keeps the float32 side of each border
    assert (m[dist <= 0.5 - 1e-3] == 1).all()
    assert (m[dist >= 1.5 + 1e-3] == 0).all()
    np.testing.assert_allclose(m, np.clip(1.5 - dist, 0, 1), atol=1e-5)


def test_seg_layout_hand_worked():
    """Inside/outside channels of class 2, k = 2, stride 4: soft cells, notches in the mask, empty classes."""
    out = run(square_with_notches(), group_size=2, rpn_noise=0.0)
    seg = out.seg_maps[0]  # (2*5*2*2, 8, 8)
    # box [8, 24), w = 16: cells of 8 px, u = (x + 0.5 - 8) / 8.  Cell 0 has membership 1 + u left of it
    # (u < 0) and 2 - u right of it (u > 1).  Block means over the 4 pixel columns of each feature column:
    #   col 0, x = 0..3: u = -7.5/8 .. -4.5/8, m = (0.5 + 1.5 + 2.5 + 3.5) / 8 / 4 = 0.25
    #   col 1, x = 4..7: m = (4.5 + 5.5 + 6.5 + 7.5) / 8 / 4 = 0.75;  cols 2, 3: in the cell, 1
    #   col 4, x = 16..19: u = 8.5/8 .. 11.5/8, m = (7.5 + 6.5 + 5.5 + 4.5) / 8 / 4 = 0.75;  col 5: 0.25
    #   cols 6, 7: u >= 16.5/8 > 2, 0
    a0 = np.float32([0.25, 0.75, 1, 1, 0.75, 0.25, 0, 0])
    a1 = a0[::-1].copy()  # cell 1, [16, 24), mirrors cell 0 about x = 16
    f_cell = np.outer(a0, a0)  # cell (0, 0); membership is separable, so the block mean is too
    in_mask = np.zeros((8, 8), bool)  # feature pixels wholly in the mask, where f_in = f_cell
    in_mask[2:6, 2:6] = True
    in_mask[2, 2] = in_mask[5, 4] = False
    # wholly in the mask: 6 f - 2 (1 - f) = 8 f - 2;  out of it: 0 - 2 (1 - f) = 2 f - 2 (at (2, 2), f = 1: 0)
    inside = np.where(in_mask, 8 * f_cell - 2, 2 * f_cell - 2)
    outside = np.where(in_mask, 0, 6 * f_cell)  # 6 (f_cell - f_in)
    # (5, 4): rows 20..23 have cell-0 membership 3.5/8, 2.5/8, 1.5/8, 0.5/8 (sum 1), the mask columns 18, 19
    # have 5.5/8, 4.5/8 (sum 10/8): f_in = 1 * 10/8 / 16 = 0.078125, f_cell = 0.25 * 0.75 = 0.1875
    inside[5, 4] = 6 * 0.078125 - 2 * (1 - 0.1875)  # 0.46875 - 1.625 = -1.15625
    outside[5, 4] = 6 * (0.1875 - 0.078125)  # 0.65625
    # a few entries spelt out: (3, 3) in cell and mask, 6;  (4, 4): 8 * 0.75^2 - 2 = 2.5;
    # (1, 1), pixels 4..7, past the box: -2 * (1 - 0.5625) = -0.875, outside 6 * 0.5625 = 3.375;  (6, 3): -2
    assert (inside[3, 3], inside[4, 4], inside[1, 1], outside[1, 1], inside[6, 3]) == (6, 2.5, -0.875, 3.375, -2)
    # every value is a sum of multiples of 1/64, exact in float32
    np.testing.assert_array_equal(seg[seg_channel(2, 1, 0, 0, 2)], inside)  # channel ((2*2+1)*2+0)*2+0 = 20
    np.testing.assert_array_equal(seg[seg_channel(2, 0, 0, 0, 2)], outside)  # channel 16
    # cell (0, 1): f_cell = a0[Y] * a1[X], e.g. 1 at (2, 4), all in the mask: 6 inside, 0 outside
    f_cell = np.outer(a0, a1)
    inside = np.where(in_mask, 8 * f_cell - 2, 2 * f_cell - 2)
    outside = np.where(in_mask, 0, 6 * f_cell)
    # (5, 4): the mask columns 18, 19 are in cell 1 (membership 1 each), rows 20..23 sum 1 as above:
    # f_in = 2 / 16 = 0.125, f_cell = 0.25 * 1: inside 6 * 0.125 - 2 * 0.75 = -0.75, outside 6 * 0.125 = 0.75
    inside[5, 4], outside[5, 4] = -0.75, 0.75
    assert (inside[2, 4], outside[2, 4], inside[2, 7], outside[2, 7]) == (6, 0, -1.5, 1.5)  # (2, 7): f_cell 0.25
    np.testing.assert_array_equal(seg[seg_channel(2, 1, 0, 1, 2)], inside)
    np.testing.assert_array_equal(seg[seg_channel(2, 0, 0, 1, 2)], outside)
    # (5, 4) in cell (1, 1): f_cell = a1[5] * a1[4] = 1, 8 of its 16 pixels in the mask: 6*0.5 - 0 = 3 inside,
    # 6 * (1 - 0.5) = 3 outside
    assert seg[seg_channel(2, 1, 1, 1, 2), 5, 4] == 3.0 and seg[seg_channel(2, 0, 1, 1, 2), 5, 4] == 3.0
    # other classes have no instance: inside -2, outside 0 everywhere
    for cls in (1, 3, 4):
        for g in range(4):
            assert (seg[seg_channel(cls, 1, g // 2, g % 2, 2)] == -2.0).all()
            assert (seg[seg_channel(cls, 0, g // 2, g % 2, 2)] == 0.0).all()
    # background, channels 0..7 all alike: 6 * (1 - f_any), with the hard box [8, 24) = feature pixels 2..5
    background = np.full((8, 8), 6.0, np.float32)
    background[2:6, 2:6] = 0.0
    for c in range(8):
        np.testing.assert_array_equal(seg[c], background)


@pytest.mark.parametrize("transpose", [False, True], ids=["x", "y"])
def test_seg_window_keeps_feature_pixels_partly_within_a_cell_of_the_box(transpose):
    """Feature pixels only partly within one cell of the box get the instance's scores, at both ends of the window.

    The scores of an instance are written over the feature window [floor(lo / s), ceil(hi / s)) of its box widened
    by one cell, [lo, hi).  Off the stride grid, the first and last feature pixels of that window are only partly
    within reach of the soft cells; rounding the far end down (or the near end up) would skip them and leave the
    "no instance" scores -b / 0 where the maps should fall off smoothly.  Tight boxes of masks on the stride grid
    never show this: here box columns [7, 11) at stride 2 widen to [3, 15), window ends 1.5 and 7.5.  Run along x,
    then transposed along y.
    """
    m = np.zeros((16, 20), bool)
    m[4:12, 7:11] = True  # box (7, 4, 11, 12): w = 4, h = 8
    # k = 1: the one cell is the box.  In x, u = (p - 7) / 4 for a pixel centre p; membership is 1 for
    # 0 <= u <= 1, 1 + u left of it and 2 - u right of it, clipped at 0 (p outside (3, 15)).  Feature column X
    # holds pixels 2X, 2X + 1 (centres 2X + 0.5, 2X + 1.5):
    #   X = 1: p = 2.5, 3.5: u = -1.125, -0.875: membership 0, 0.125, f_cell = 0.0625 (the near end, 3 / 2 = 1.5)
    #   X = 2: p = 4.5, 5.5: u = -0.625, -0.375: 0.375, 0.625, f_cell = 0.5
    #   X = 3: p = 6.5, 7.5: 0.875, 1, f_cell = 0.9375;  X = 4: p = 8.5, 9.5 in the cell, 1
    #   X = 5, 6, 7 mirror X = 3, 2, 1 about x = 9 (p -> 18 - p): X = 7 is the far end, 15 / 2 = 7.5
    #   X = 0, 8, 9: no pixel centre within a cell of the box, 0
    f_cell = np.float32([0, 0.0625, 0.5, 0.9375, 1, 0.9375, 0.5, 0.0625, 0, 0])
    # mask columns 7..10: pixel 7 of X = 3 and pixel 10 of X = 5 (membership 1), both pixels of X = 4
    f_in = np.float32([0, 0, 0, 0.5, 1, 0.5, 0, 0, 0, 0])
    # rows 4..11 are in the cell (membership 1) and the mask, so feature rows 2..5 read the x profile as it is:
    # inside 6 f_in - 2 (1 - f_cell), outside 6 (f_cell - f_in)
    inside = np.float32([-2, -1.875, -1, 2.875, 6, 2.875, -1, -1.875, -2, -2])
    outside = np.float32([0, 0.375, 3, 2.625, 0, 2.625, 3, 0.375, 0, 0])
    np.testing.assert_array_equal(inside, L * f_in - B * (1 - f_cell))  # the two lines above agree
    np.testing.assert_array_equal(outside, L * (f_cell - f_in))
    scene = hand_scene((m.T if transpose else m)[None], [1], *((20, 16) if transpose else (16, 20)))
    seg = run(scene, stride=2, group_size=1, rpn_noise=0.0).seg_maps[0]
    got_in, got_out = seg[seg_channel(1, 1, 0, 0, 1)], seg[seg_channel(1, 0, 0, 0, 1)]
    if transpose:
        got_in, got_out = got_in.T, got_out.T
    # multiples of 1/64, exact in float32
    np.testing.assert_array_equal(got_in[2:6], np.tile(inside, (4, 1)))
    np.testing.assert_array_equal(got_out[2:6], np.tile(outside, (4, 1)))


def test_roi_shifted_by_half_a_cell_still_assembles_the_mask():
    """A gt-sized ROI shifted by half a cell reads inside > outside on the object and outside > inside off it."""
    m = np.zeros((1, 48, 48), bool)
    m[0, 8:40, 8:40] = True  # box (8, 8, 40, 40), class 1; k = 2: cells [8, 24) and [24, 40), 16 px
    out = run(hand_scene(m, [1], 48, 48), stride=2, group_size=2, rpn_noise=0.0)
    roi = np.float32([[0, 16, 8, 48, 40]])  # shifted right by 8 px
    assembled = ps_assemble(out.seg_maps, roi, group_size=2, output_size=4, spatial_scale=0.5)  # (1, 10, 4, 4)
    # bins of 8 px: columns [16, 24), [24, 32), [32, 40), [40, 48) read cells gw = 0, 0, 1, 1; rows are aligned
    # with the cells (membership 1 in y).  Bin 1 lies in the box but in gt cell 1: pixel centres 24.5 .. 31.5
    # are 0.5 .. 7.5 px past cell 0, membership 1 - d/16, mean 1 - 4/16 = 0.75: inside 8 * 0.75 - 2 = 4,
    # outside 0.  Bin 3 lies past the box, 0.5 .. 7.5 px past cell 1: f_cell = 0.75, f_in = 0,
    # inside -2 * (1 - 0.75) = -0.5, outside 6 * 0.75 = 4.5.  Bins 0, 2 are in their own cell and the mask.
    np.testing.assert_allclose(assembled[0, 3], np.tile([6, 4, 6, -0.5], (4, 1)), atol=1e-6)  # class 1 inside
    np.testing.assert_allclose(assembled[0, 2], np.tile([0, 0, 0, 4.5], (4, 1)), atol=1e-6)  # class 1 outside


def test_bbox_layout_hand_worked():
    """Box-regression channels of the notched square, k = 2: every cell's dx, dy at every pixel near the box."""
    out = run(square_with_notches(), group_size=2)
    bbox = out.bbox_maps[0].reshape(2, 4, 2, 2, 8, 8)  # (reg, coord, gh, gw, Hf, Wf)
    # box (8, 8, 24, 24), w = 16, centre 16, widened by 8 each side to [0, 32): the whole 8 x 8 map.
    # feature-pixel centres p = 2, 6, ..., 30; cell gw centred on p puts the ROI centre at
    # roi_cx = p - (gw + 0.5 - 1) * 16 / 2 = p + 4 (gw = 0) or p - 4 (gw = 1); dx = (16 - roi_cx) / 16 / 0.2
    dx0 = [3.125, 1.875, 0.625, -0.625, -1.875, -3.125, -4.375, -5.625]  # (10, 6, 2, ..., -18) / 3.2
    dx1 = [5.625, 4.375, 3.125, 1.875, 0.625, -0.625, -1.875, -3.125]  # (18, 14, 10, ..., -10) / 3.2
    for g in range(2):
        np.testing.assert_allclose(bbox[1, 0, g, 0], np.tile(dx0, (8, 1)), rtol=1e-6)  # same in every row
        np.testing.assert_allclose(bbox[1, 0, g, 1], np.tile(dx1, (8, 1)), rtol=1e-6)
        np.testing.assert_allclose(bbox[1, 1, 0, g], np.tile(dx0, (8, 1)).T, rtol=1e-6)  # the square: dy alike
        np.testing.assert_allclose(bbox[1, 1, 1, g], np.tile(dx1, (8, 1)).T, rtol=1e-6)
    # (2, 4): centre (10, 18) lies in cell (0, 1), yet channel (0, 0) holds its own delta: dx = -1.875
    assert bbox[1, :, 0, 0, 2, 4].tolist() == pytest.approx([-1.875, 0.625, 0, 0])
    assert (bbox[0] == 0).all() and (bbox[1, 2:] == 0).all()  # reg 0 unused; dw = dh = 0


def test_bbox_widened_region_is_half_open_on_feature_centres():
    """The box maps are written where the feature-pixel centre p satisfies x1 - w/2 <= p < x2 + w/2 (likewise y).

    Both ends of the widened box fall exactly on feature-pixel centres here, so this pins the comparisons: a
    centre on the near edge is written, one on the far edge is not (the hypothesis tests reach such ties only by
    chance).
    """
    m = np.zeros((1, 16, 16), bool)
    m[0, 5:9, 5:9] = True  # box (5, 5, 9, 9): w = h = 4, centre 7, widened by 2 to [3, 11)
    out = run(hand_scene(m, [1], 16, 16), stride=2, group_size=1)
    # feature centres p = 2X + 1 = 1, 3, ..., 15: X = 1 (p = 3, on the near edge) .. 4 (p = 9); X = 5 (p = 11)
    # is on the far edge, outside.  k = 1: the ROI centre is p, dx = (7 - p) / 4 / 0.2 = 1.25 (7 - p)
    expected_dx = np.zeros((8, 8), np.float32)
    expected_dx[1:5, 1:5] = [5, 2.5, 0, -2.5]  # p = 3, 5, 7, 9 in every row of the widened box, Y = 1..4
    np.testing.assert_array_equal(out.bbox_maps[0, 4], expected_dx)  # channel ((1*4 + 0)*1 + 0)*1 + 0
    np.testing.assert_array_equal(out.bbox_maps[0, 5], expected_dx.T)  # dy: the same by rows


def test_bbox_front_instance_wins_where_widened_boxes_overlap():
    """Boxes 4 px apart, widened regions overlapping: the later (front) instance's delta is kept there."""
    m = np.zeros((2, 16, 32), bool)
    m[0, :8, :8] = True  # box (0, 0, 8, 8), widened x [-4, 12): feature columns 0..2 (centres 2, 6, 10)
    m[1, :8, 12:20] = True  # box (12, 0, 20, 8), widened x [8, 24): columns 2..5 (centres 10, 14, 18, 22)
    # k = 1: the ROI centre is the pixel centre p, dx = (cx - p) / 8 / 0.2 = (cx - p) * 0.625
    left = [1.25, -1.25, -3.75]  # cx = 4, p = 2, 6, 10
    right = [3.75, 1.25, -1.25, -3.75]  # cx = 16, p = 10, 14, 18, 22
    for order, col2 in (((0, 1), right[0]), ((1, 0), left[2])):  # column 2: the instance painted last
        out = run(hand_scene(m[list(order)], [1, 1], 16, 32), group_size=1)
        dx, dy = out.bbox_maps[0, 4], out.bbox_maps[0, 5]  # channels ((1*4 + coord)*1 + 0)*1 + 0
        expected = np.zeros((4, 8), np.float32)
        expected[:3] = left[:2] + [col2] + right[1:] + [0, 0]  # rows 0..2: y widened to [-4, 12)
        np.testing.assert_allclose(dx, expected, rtol=1e-6)
        # both boxes span y [0, 8): dy = (4 - py) * 0.625 = 1.25, -1.25, -3.75 at py = 2, 6, 10, in columns 0..5
        expected_dy = np.zeros((4, 8), np.float32)
        expected_dy[:3, :6] = np.float32([[1.25], [-1.25], [-3.75]])
        np.testing.assert_allclose(dy, expected_dy, rtol=1e-6)


def test_bbox_front_instance_wins_over_an_enclosing_box():
    """A small box in front of a large one: its delta wins in its own widened region, the large box's outside."""
    m = np.zeros((2, 16, 16), bool)
    m[0] = True  # box (0, 0, 16, 16)
    m[1, :8, :8] = True  # box (0, 0, 8, 8), painted later, widened to [-4, 12)
    out = run(hand_scene([m[0] & ~m[1], m[1]], [1, 1], 16, 16), group_size=1)
    dx = out.bbox_maps[0, 4]  # channel ((1*4 + 0)*1 + 0)*1 + 0 = 4
    # pixel (0, 0), centre 2, k = 1: roi_cx = 2; front box: dx = (4 - 2) / 8 / 0.2 = 1.25 (back box: 1.875)
    assert dx[0, 0] == pytest.approx(1.25)
    # pixel (0, 2), centre 10, past the front box but in its widened region: (4 - 10) / 8 / 0.2 = -3.75
    # (back box: -0.625)
    assert dx[0, 2] == pytest.approx(-3.75)
    # pixel (0, 3), centre 14, only the back box: dx = (8 - 14) / 16 / 0.2 = -1.875; row 3 likewise
    assert dx[0, 3] == pytest.approx(-1.875) and dx[3, 0] == pytest.approx((8 - 2) / 16 / 0.2)


@pytest.mark.parametrize("tx, ty", [(0, 0), (2, -4), (-10, 6), (10, -8)])
def test_bbox_read_at_roi_cell_centres_gives_the_shift_back(tx, ty):
    """Read at the cell centres of a gt-sized ROI shifted by (tx, ty), every channel gives (-tx / w, -ty / h)."""
    m = np.zeros((1, 40, 40), bool)
    m[0, 9:25, 9:33] = True  # box (9, 9, 33, 25): w = 24, h = 16, centre (21, 17)
    out = run(hand_scene(m, [1], 40, 40), stride=2, group_size=2)  # feature-pixel centres 1, 3, 5, ...
    bbox = out.bbox_maps[0].reshape(2, 4, 2, 2, 20, 20)
    # k = 2: cells of 12 x 8 px centred at x = 15, 27 and y = 13, 21; shifted: 15 + 12 gw + tx, 13 + 8 gh + ty,
    # odd for even shifts, so a feature-pixel centre.  Shifts of 8 and 10 px leave the cell the pixel lies in:
    # every channel must be written there.  All stay in the widened box [-3, 45) x [1, 33).
    for gh in range(2):
        for gw in range(2):
            y, x = (13 + 8 * gh + ty) // 2, (15 + 12 * gw + tx) // 2
            # roi_cx = (15 + 12 gw + tx) - (gw - 0.5) * 12 = 21 + tx: dx = (21 - 21 - tx) / 24 / 0.2
            assert bbox[1, 0, gh, gw, y, x] == pytest.approx(-tx / 24 / 0.2, abs=1e-6)
            # roi_cy = (13 + 8 gh + ty) - (gh - 0.5) * 8 = 17 + ty: dy = -ty / 16 / 0.2
            assert bbox[1, 1, gh, gw, y, x] == pytest.approx(-ty / 16 / 0.2, abs=1e-6)
    # rows 16..19 (centres 33..39) are past y2 + h/2 = 33: nothing written
    assert (bbox[1, :, :, :, 16:] == 0).all()
    # row 15 (centre 31) is still in: dy = (17 - 31 - (gh - 0.5) * 8) / 16 / 0.2 = -5.625 (gh = 0), -3.125
    expected = np.broadcast_to(np.float32([-5.625, -3.125])[:, None, None], (2, 2, 20))  # (gh, gw, X)
    np.testing.assert_allclose(bbox[1, 1, :, :, 15], expected, rtol=1e-6)


@given(st.integers(12, 40), st.integers(12, 40), st.integers(16, 40), st.integers(16, 40),
       st.sampled_from([1, 2, 4]), st.integers(1, 7), st.data())
def test_bbox_pooled_over_a_shifted_roi_decodes_to_the_gt_box(x1, y1, w, h, stride, k, data):
    """Assembled over a gt-sized ROI shifted by (tx, ty), averaged and decoded, the maps give the gt box back."""
    tx = data.draw(st.integers(-(w // 4), w // 4), label="tx")
    ty = data.draw(st.integers(-(h // 4), h // 4), label="ty")
    m = np.zeros((1, 96, 96), bool)
    m[0, y1 : y1 + h, x1 : x1 + w] = True
    gt = np.float32([[x1, y1, x1 + w, y1 + h]])
    out = run(hand_scene(m, [1], 96, 96), stride=stride, group_size=k)
    roi = gt + np.float32([tx, ty, tx, ty])  # integer corners: no rounding in the assembly
    rois = np.concatenate([np.zeros((1, 1), np.float32), roi], axis=1)  # (1, 5), image 0
    pooled = ps_assemble(out.bbox_maps, rois, group_size=k, output_size=k,
                         spatial_scale=1 / stride)  # (1, 8, k, k), as the detector's regression does
    deltas = pooled.mean(axis=(2, 3)).reshape(1, 2, 4)[:, 1]  # (1, 4), the foreground slot
    decoded = decode_boxes(roi, deltas, HEAD_STDS)
    # Each bin covers feature pixels floor(a) .. ceil(b) - 1 of its continuous span [a, b): the mean of their
    # centres is off the bin centre by (floor(a) - a + ceil(b) - b) / 2, strictly within half a feature pixel,
    # stride / 2 image px.  The deltas are linear in the pixel centre, so the decoded centre is off by the
    # mean of these offsets; the size is the ROI's = the gt's.  The ROI's pixels stay in the widened box
    # (|t| <= w/4 and stride / 2 <= 2 < w/4), and 1e-3 px covers float32 rounding of values below 100.
    assert np.abs(decoded - gt).max() <= stride / 2 + 1e-3
    np.testing.assert_allclose(decoded[:, 2:] - decoded[:, :2], [[w, h]], atol=1e-3)


def test_rpn_hand_worked():
    """fg = 1 on the anchor equal to the box, ramps with IoU, is 0 on a far anchor, whose deltas are 0."""
    m = np.zeros((1, 32, 32), bool)
    m[0, 10:26, 10:26] = True  # box (10, 10, 26, 26), centre 18 = 4*4 + 2: anchor 1 (16 x 16) at y = x = 4
    out = run(hand_scene(m, [1]), rpn_noise=0.05)
    fg, bg = out.rpn_prob[0, A:], out.rpn_prob[0, :A]  # (A, 8, 8)
    deltas = out.rpn_deltas[0].reshape(A, 4, 8, 8)  # channel a*4 + coord
    assert fg[1, 4, 4] == 1.0 and bg[1, 4, 4] == 0.0
    # anchor 5 (32 x 16) at (4, 4) is (2, 10, 34, 26): IoU = 256 / 512 = 0.5, fg = (0.5 - 0.3) / 0.4 = 0.5
    assert fg[5, 4, 4] == pytest.approx(0.5, abs=1e-6)
    # anchor 0 (8 x 8) at (0, 0) is (-2, -2, 6, 6): no overlap
    assert fg[0, 0, 0] == 0.0 and bg[0, 0, 0] == 1.0
    assert (deltas[0, :, 0, 0] == 0).all()
    # the matched anchor's deltas are 0 plus noise of std 0.05
    assert 0 < np.abs(deltas[1, :, 4, 4]).max() < 0.3
    np.testing.assert_allclose(fg + bg, 1.0, atol=1e-7)


def test_zero_area_anchors_are_skipped():
    """Anchors of zero width or height get fg = 0 and deltas 0 instead of crashing the encoder."""
    m = np.zeros((1, 8, 8), bool)
    m[0, :4, :4] = True
    anchors = np.float32([[0, 0, 4, 4], [4, 0, 4, 4], [0, 2, 4, 2], [4, 4, 8, 8]])  # two degenerate, A = 1
    out = oracle_outputs(hand_scene(m, [1], 8, 8), anchors, stride=4, group_size=1, rpn_noise=0.1)
    np.testing.assert_array_equal(out.rpn_prob[0, 1], [[1, 0], [0, 0]])
    assert (out.rpn_deltas[0, :, 0, 1] == 0).all() and (out.rpn_deltas[0, :, 1, 0] == 0).all()


def test_empty_scene():
    """Without instances: fg 0, deltas 0, class channels -b / 0, background L everywhere, no regression."""
    out = run(make_scene(0, image_shape=(20, 24), min_objects=0, max_objects=0), group_size=2)
    assert (out.rpn_prob[0, A:] == 0).all() and (out.rpn_deltas == 0).all()
    seg = out.seg_maps[0].reshape(5, 2, 4, 5, 6)  # (C, outside/inside, k*k, Hf, Wf)
    assert (seg[0] == 6.0).all()
    assert (seg[1:, 0] == 0.0).all() and (seg[1:, 1] == -2.0).all()
    assert (out.bbox_maps == 0).all()


@given(seeds)
def test_decoded_rpn_deltas_give_the_best_box(seed):
    """Without noise, decoding the deltas of any anchor with fg > 0 gives a ground-truth box of maximal IoU."""
    scene = make_scene(seed, **SCENE)
    anchors = grid_anchors(16, 20, 4)
    out = oracle_outputs(scene, anchors, stride=4, group_size=3, rpn_noise=0.0)
    fg = out.rpn_prob[0, A:].transpose(1, 2, 0).reshape(-1)  # back to (y, x, anchor) order
    deltas = out.rpn_deltas[0].reshape(A, 4, 16, 20).transpose(2, 3, 0, 1).reshape(-1, 4)
    pos = np.flatnonzero(fg > 0)
    decoded = decode_boxes(anchors[pos], deltas[pos])  # (P, 4)
    # float32 encode then decode of coordinates below 128: a few roundings of 6e-8 relative, ~1e-4 px at worst
    match = np.abs(decoded[:, None, :] - scene.boxes[None, :, :]).max(axis=2) <= 1e-3  # (P, n)
    assert match.any(axis=1).all()
    iou = box_iou(anchors[pos], scene.boxes)  # (P, n)
    assert (np.where(match, iou, -1).max(axis=1) == iou.max(axis=1)).all()
    # fg follows the IoU ramp, and anchors overlapping nothing have zero deltas
    best = box_iou(anchors, scene.boxes).max(axis=1, initial=0)
    np.testing.assert_allclose(fg, np.clip((best - 0.3) / 0.4, 0, 1), atol=1e-6)
    assert (deltas[best == 0] == 0).all()


@given(seeds, st.sampled_from([2, 4, 8]), st.integers(1, 4))
def test_inside_beats_outside_on_masked_parts(seed, stride, k):
    """Over a part cell of a gt box, read in that cell's channel, inside > outside where the cell is in the mask."""
    scene = make_scene(seed, **SCENE)
    rows, cols = np.arange(64), np.arange(80)  # image pixels; feature pixel of (y, x) is (y // s, x // s)
    cy, cx = rows + 0.5, cols + 0.5  # pixel centres
    n = stride * stride  # image pixels per feature pixel
    for i, (box, c, mask) in enumerate(zip(scene.boxes, scene.labels, scene.masks, strict=True)):
        x1, y1, x2, y2 = box.astype(np.float64)
        seg = run(alone(scene, i), stride=stride, group_size=k).seg_maps[0]  # no other instance's maximum
        for gh in range(k):
            for gw in range(k):
                # the cell's pixels: centres in [x1 + gw*w/k, x1 + (gw+1)*w/k), likewise in y (float64 here)
                in_y = (cy >= y1 + gh * (y2 - y1) / k) & (cy < y1 + (gh + 1) * (y2 - y1) / k)
                in_x = (cx >= x1 + gw * (x2 - x1) / k) & (cx < x1 + (gw + 1) * (x2 - x1) / k)
                ys, xs = rows[in_y], cols[in_x]
                if ys.size == 0 or xs.size == 0:
                    continue
                fy, fx = np.ix_(ys // stride, xs // stride)
                diff = seg[seg_channel(c, 1, gh, gw, k)][fy, fx] - seg[seg_channel(c, 0, gh, gw, k)][fy, fx]
                # a_in, a_out: pixels of each feature pixel in the cell and in / not in the mask
                cell = np.zeros((64, 80), bool)
                cell[np.ix_(ys, xs)] = True
                a_in = (cell & mask).reshape(64 // stride, stride, 80 // stride, stride).sum(axis=(1, 3))
                a_out = (cell & ~mask).reshape(64 // stride, stride, 80 // stride, stride).sum(axis=(1, 3))
                e_in, e_out = a_in[fy, fx].mean() / n, a_out[fy, fx].mean() / n  # as read by the cell's pixels
                # diff = s_in - s_out = 2L f_in - (L - b) f_cell - b.  In-cell pixels have membership 1, the
                # others m in [0, 1]: f_in >= a_in / n and f_cell <= 1 give diff >= 2L a_in / n - L; and
                # 2L f_in - (L - b) f_cell <= (2L a_in - (L - b) a + (L + b) (n - a)) / n, a = a_in + a_out,
                # gives diff <= L - 2L a_out / n.  1e-5: float32 scores below 8, a few roundings each.
                assert diff.mean() >= L * (2 * e_in - 1) - 1e-5
                assert diff.mean() <= L * (1 - 2 * e_out) + 1e-5
                # so a cell read mostly through its own masked pixels has inside > outside, and the converse
                if e_in >= 0.6:
                    assert diff.mean() > 0
                if e_out >= 0.6:
                    assert diff.mean() < 0


@given(seeds, st.sampled_from([2, 4, 8]), st.integers(1, 4))
def test_scores_far_from_a_cell_and_wholly_in_it(seed, stride, k):
    """A cell away from a feature pixel: s_in = -b, s_out = 0; a feature pixel wholly in the cell: L times the
    mask fraction and its complement."""
    scene = make_scene(seed, **SCENE)
    hf, wf = 64 // stride, 80 // stride
    for i, (box, c, mask) in enumerate(zip(scene.boxes, scene.labels, scene.masks, strict=True)):
        x1, y1, x2, y2 = box.astype(np.float64)
        seg = run(alone(scene, i), stride=stride, group_size=k).seg_maps[0].reshape(5, 2, k, k, hf, wf)
        sides = []  # per axis: (k, Hf or Wf) "every pixel centre a cell away", "every pixel centre in the cell"
        for lo, hi, size, f in ((y1, y2, 64, hf), (x1, x2, 80, wf)):
            u = (np.arange(size) + 0.5 - lo) * k / (hi - lo)  # cell units, float64
            dist = np.abs(u[None, :] - (np.arange(k)[:, None] + 0.5)).reshape(k, f, stride)  # (k, f, s)
            # margins of 1e-3 cells against float32 rounding, as in the membership property
            sides.append((dist.min(axis=2) >= 1.5 + 1e-3, dist.max(axis=2) <= 0.5 - 1e-3))
        (far_y, in_y), (far_x, in_x) = sides
        far = far_y[:, None, :, None] | far_x[None, :, None, :]  # (k, k, Hf, Wf): membership 0 throughout
        inside = in_y[:, None, :, None] & in_x[None, :, None, :]  # membership 1 throughout
        assert (seg[c, 1][far] == -B).all() and (seg[c, 0][far] == 0).all()
        frac = mask.reshape(hf, stride, wf, stride).mean(axis=(1, 3))  # (Hf, Wf) of the feature pixel in the mask
        frac = np.broadcast_to(frac, (k, k, hf, wf))
        np.testing.assert_allclose(seg[c, 1][inside], L * frac[inside], atol=1e-5)  # f_cell = 1: L f_in - 0
        np.testing.assert_allclose(seg[c, 0][inside], L * (1 - frac[inside]), atol=1e-5)  # L (1 - f_in)


@given(seeds, st.sampled_from([2, 4, 8]), st.integers(1, 4))
def test_map_value_ranges(seed, stride, k):
    """inside in [-b, L], outside and background in [0, L]; box deltas bounded, spaced by a cell, 0 far away."""
    scene = make_scene(seed, **SCENE)
    hf, wf = 64 // stride, 80 // stride
    out = run(scene, stride=stride, group_size=k, logit_scale=5.0, outside_bias=1.5)
    seg = out.seg_maps[0].reshape(5, 2, k * k, hf, wf)
    # f_cell, f_in are means of soft memberships in [0, 1] with 0 <= f_in <= f_cell <= 1, so
    # s_in = 5 f_in - 1.5 (1 - f_cell) is in [-1.5, 5] and s_out = 5 (f_cell - f_in) in [0, 5]
    assert (seg[1:, 1] >= -1.5).all() and (seg[1:, 1] <= 5.0).all()
    assert (seg[1:, 0] >= 0).all() and (seg[1:, 0] <= 5.0).all()
    assert (seg[0] >= 0).all() and (seg[0] <= 5.0).all()
    bbox = out.bbox_maps[0].reshape(2, 4, k, k, hf, wf) * 0.2  # (reg, coord, gh, gw, Hf, Wf), std undone
    assert (bbox[0] == 0).all() and (bbox[1, 2:] == 0).all()
    # dx = (cx - p) / w + (gw + 0.5 - k/2) / k with p in [x1 - w/2, x2 + w/2): |dx| <= 1 + (k - 1) / (2k)
    assert (np.abs(bbox[1, :2]) <= 1.5 - 0.5 / k + 1e-6).all()
    # written exactly on the union of the widened boxes; there, neighbouring cells differ by 1/k, dx does not
    # depend on gh nor dy on gw (float32 values below 8: 1e-5)
    near = np.zeros((hf, wf), bool)
    for box in scene.boxes:
        near |= widened_region(box, hf, wf, stride)
    assert (bbox[1, :, :, :, ~near] == 0).all()
    dx, dy = bbox[1, 0][..., near], bbox[1, 1][..., near]  # (k, k, n_near) each
    np.testing.assert_allclose(np.diff(dx, axis=1), 1 / k, atol=1e-5)
    np.testing.assert_allclose(np.diff(dy, axis=0), 1 / k, atol=1e-5)
    np.testing.assert_array_equal(dx, np.broadcast_to(dx[:1], dx.shape))
    np.testing.assert_array_equal(dy, np.broadcast_to(dy[:, :1], dy.shape))


@given(seeds, st.sampled_from([2, 4]))
def test_bbox_maps_are_the_front_instance_per_pixel(seed, stride):
    """Each feature pixel holds the box maps of the last-painted instance whose widened box covers it, else 0."""
    scene = make_scene(seed, **SCENE)
    hf, wf = 64 // stride, 80 // stride
    full = run(scene, stride=stride, group_size=2).bbox_maps[0]
    expected = np.zeros_like(full)
    for i, box in enumerate(scene.boxes):  # painting order
        region = widened_region(box, hf, wf, stride)
        expected[:, region] = run(alone(scene, i), stride=stride, group_size=2).bbox_maps[0][:, region]
    np.testing.assert_array_equal(full, expected)


@given(seeds)
def test_same_class_instances_combine_by_maximum(seed):
    """The class channels of a scene are the channel-wise maximum of those of its instances taken alone."""
    scene = make_scene(seed, **SCENE)
    full = run(scene, group_size=2).seg_maps[0].reshape(5, 8, 16, 20)
    expected = np.full((5, 8, 16, 20), -np.inf, np.float32)
    for i in range(len(scene.labels)):
        expected = np.maximum(expected, run(alone(scene, i), group_size=2).seg_maps[0].reshape(5, 8, 16, 20))
    if len(scene.labels):
        np.testing.assert_array_equal(full[1:], expected[1:])


def test_determinism_and_independent_noise_streams():
    """Same seed, same outputs; the seed changes the noise; map noise leaves RPN and regression untouched."""
    scene = make_scene(4, **SCENE)
    a = run(scene, seed=1, map_noise=0.1)
    b = run(scene, seed=1, map_noise=0.1)
    c = run(scene, seed=2, map_noise=0.1)
    quiet = run(scene, seed=1)
    for name in ("rpn_prob", "rpn_deltas", "seg_maps", "bbox_maps"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.rpn_deltas, c.rpn_deltas)
    assert not np.array_equal(a.seg_maps, c.seg_maps)
    np.testing.assert_array_equal(a.rpn_deltas, quiet.rpn_deltas)
    np.testing.assert_array_equal(a.bbox_maps, quiet.bbox_maps)
    noise = a.seg_maps - quiet.seg_maps
    assert 0.05 < noise.std() < 0.15  # std 0.1 over 2*5*49*16*20 samples


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stride=0), "stride"),
        (dict(group_size=0), "group_size"),
        (dict(num_classes=3), "num_classes"),  # the scene has label 3
        (dict(logit_scale=0.0), "logit_scale"),
        (dict(outside_bias=-1.0), "outside_bias"),
        (dict(rpn_noise=-0.1), "rpn_noise"),
        (dict(map_noise=float("inf")), "map_noise"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_parameters(kwargs, match):
    """Bad parameters raise ValueError naming the argument."""
    m = np.zeros((1, 16, 16), bool)
    m[0, 2:9, 3:7] = True
    scene = hand_scene(m, [3], 16, 16)
    anchors = grid_anchors(8, 8, 2)  # right for the default stride 2
    oracle_outputs(scene, anchors)  # fine as it is
    with pytest.raises(ValueError, match=match):
        oracle_outputs(scene, anchors, **kwargs)


def test_bad_anchors():
    """Anchors must be (Hf*Wf*A, 4) valid boxes; the row count must be a multiple of Hf*Wf."""
    scene = make_scene(0, image_shape=(16, 16), size_range=(8, 8))
    anchors = grid_anchors(8, 8, 2)  # default stride 2: 8 * 8 * 7 = 448 rows
    oracle_outputs(scene, anchors)  # fine as they are
    with pytest.raises(ValueError, match="anchors must hold"):
        oracle_outputs(scene, anchors[:-1])  # 447 rows: not a multiple of 64
    with pytest.raises(ValueError, match="anchors must hold"):
        oracle_outputs(scene, anchors[:0])
    with pytest.raises(ValueError, match="anchors"):
        oracle_outputs(scene, anchors[:, :3])
    with pytest.raises(ValueError, match="x1 <= x2"):
        oracle_outputs(scene, anchors[:, [2, 1, 0, 3]])  # x2 < x1
    with pytest.raises(TypeError, match="scene"):
        oracle_outputs(scene.masks, anchors)
