"""Hypothesis strategies for the inputs of every FCIS stage, shared by the agreement tests and the exercises.

The tests hold every backend to the reference on these inputs; :mod:`fcis_twin.exercises` holds a learner's code to
it on the same ones.  They are built to make the conventions matter: coordinates on a half-pixel grid (exact ties,
touching edges, exact IoU values, ``.5`` rounding cases), thresholds equal to an IoU that occurs, boxes partly or
wholly outside the image, zero-size boxes, and probabilities on a dyadic grid (ties and exact averages).
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .reference.boxes import box_iou

#: Coordinates on a small integer-and-half grid make exact ties, touching edges and exact IoU values common.
coordinate = st.integers(-8, 72).map(lambda v: np.float32(v / 2))
#: Probabilities on a coarse dyadic grid (exact sums, equal scores, averages exactly at a threshold).
grid_prob = st.integers(0, 8).map(lambda v: np.float32(v / 8))
#: A grid probability or any float32 in [0, 1].
prob = st.one_of(grid_prob, st.floats(0, 1, width=32))
#: Score-map values of the assembly problems.
map_values = st.floats(-100, 100, width=32)


def _ordered(corners):
    """``(n, 4)`` corners as half-open boxes ``(x1, y1, x2, y2)``: ``x1 <= x2``, ``y1 <= y2``."""
    return np.stack([np.minimum(corners[:, 0], corners[:, 2]), np.minimum(corners[:, 1], corners[:, 3]),
                     np.maximum(corners[:, 0], corners[:, 2]), np.maximum(corners[:, 1], corners[:, 3])],
                    axis=1).astype(np.float32)


@st.composite
def boxes(draw, min_size=0, max_size=30, allow_degenerate=True):
    """``(R, 4)`` float32 half-open boxes with ``x1 <= x2``, ``y1 <= y2``; zero-area boxes included."""
    n = draw(st.integers(min_size, max_size))
    b = _ordered(draw(hnp.arrays(np.float32, (n, 4), elements=coordinate)))
    if not allow_degenerate:
        b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 1)
        b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 1)
    return b


@st.composite
def float_boxes(draw, min_size=0, max_size=30):
    """Boxes with arbitrary float32 coordinates in [-50, 700): inexact products, rare exact ties."""
    n = draw(st.integers(min_size, max_size))
    elements = st.floats(-50, 700, width=32, exclude_max=True)
    return _ordered(draw(hnp.arrays(np.float32, (n, 4), elements=elements)))


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


@st.composite
def thresholds(draw, b):
    """A fixed threshold, any in [0, 1], or exactly the IoU of two drawn boxes (or the float32 just below it)."""
    kinds = ["fixed", "any"] + (["pair", "below"] if len(b) >= 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "fixed":
        return draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
    if kind == "any":
        return draw(st.floats(0, 1))
    i, j = draw(st.lists(st.integers(0, len(b) - 1), min_size=2, max_size=2, unique=True))
    iou = box_iou(b[i : i + 1], b[j : j + 1])[0, 0]
    return float(iou if kind == "pair" else np.nextafter(iou, np.float32(0)))


@st.composite
def nms_cases(draw, max_size=30, labels=0, coordinates="grid"):
    """``(boxes, scores, threshold, labels)``: scores on a coarse grid (ties), labels in ``[0, labels)`` or None."""
    b = draw(boxes(max_size=max_size) if coordinates == "grid" else float_boxes(max_size=max_size))
    s = draw(scores(len(b)))
    t = draw(thresholds(b))
    lab = draw(hnp.arrays(np.int64, len(b), elements=st.integers(0, labels - 1))) if labels else None
    return b, s, t, lab


@st.composite
def exact_pairs(draw, max_size=8):
    """Float boxes whose threshold is the IoU of the two best-ranked boxes, or the float32 just below it.

    The second box is always compared with the first, kept one, so an IoU off by one unit in the last place
    (another operation order, a fused multiply-add) flips the result one way or the other.
    """
    b = draw(float_boxes(min_size=2, max_size=max_size))
    s = draw(scores(len(b)))
    i, j = np.argsort(-s, kind="stable")[:2]
    iou = box_iou(b[i : i + 1], b[j : j + 1])[0, 0]
    return b, s, float(iou if draw(st.booleans()) else np.nextafter(iou, np.float32(0)))


def assembly_kwargs(k, P, s):
    """The keyword arguments of an assembly: ``group_size``, ``output_size``, ``spatial_scale``."""
    return dict(group_size=k, output_size=P, spatial_scale=s)


@st.composite
def assembly_problems(draw, max_rois=4):
    """``(score_maps, rois, kwargs)``: small maps with ROIs partly or wholly outside, zero-size and huge; P a multiple
    of k or not; spatial scales that are powers of two and that are not (0.3, where float32 and float64 bin edges
    part)."""
    k = draw(st.integers(1, 3))
    P = draw(st.one_of(st.integers(1, 2).map(lambda m: m * k), st.integers(1, 5)))
    N, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H, W = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    s = draw(st.sampled_from([1.0, 0.5, 0.3, 1 / 16]))
    x = draw(hnp.arrays(np.float32, (N, c_out * k * k, H, W), elements=map_values))
    # feature-space edges on a half grid around the map, sometimes anywhere, sometimes huge; then to image pixels
    edge = st.one_of(
        st.integers(-6, 2 * max(H, W) + 6).map(lambda v: v / 2), st.floats(-20, 20), st.sampled_from([-1e5, 1e5])
    )
    rois = []
    for _ in range(draw(st.integers(0, max_rois))):
        a, b, c, d = (draw(edge) for _ in range(4))
        if draw(st.booleans()):
            b, d = a, c  # zero size
        rois.append([draw(st.integers(0, N - 1)), min(a, b) / s, min(c, d) / s, max(a, b) / s, max(c, d) / s])
    return x, np.array(rois, np.float32).reshape(-1, 5), assembly_kwargs(k, P, s)


def small_maps(shape):
    """float32 arrays of ``shape``, cheap to draw however large: mostly 0 with a few drawn values (which shrink to
    the fewest that matter), or :func:`dense_maps`."""
    sparse = hnp.arrays(np.float32, shape, elements=st.one_of(st.integers(-9, 9).map(np.float32), map_values),
                        fill=st.just(np.float32(0)))
    return st.one_of(sparse, dense_maps(shape))


def dense_maps(shape):
    """float32 arrays of ``shape`` from a drawn seed: small integers (exact sums) or normal floats (inexact sums,
    where the precision and the order of a sum show)."""
    def values(seed_and_kind):
        seed, normal = seed_and_kind
        rng = np.random.default_rng(seed)
        return (rng.standard_normal(shape) if normal else rng.integers(-9, 10, shape)).astype(np.float32)

    return st.tuples(st.integers(0, 2**16), st.booleans()).map(values)


@st.composite
def pixel_assembly_problems(draw, max_rois=3, min_side=0, max_side=7, scales=(1.0, 0.5, 0.3, 0.6, 0.25), dense=False,
                            output_sizes=None):
    """``(score_maps, rois, kwargs)`` whose ROIs lie on the half-pixel grid of the *image*: coordinates ``x.5``
    (where rounding half away from zero and half to even part), before, inside and past the map, now and then a
    huge one or a zero-size one.  Among the scales, 0.3 and 0.6 make float32 and float64 bin edges land on either
    side of an integer (where float32 arithmetic matters: about one ROI in five at P = 3).  Maps from
    :func:`small_maps`, ``min_side`` to ``max_side`` on a side; ``P`` among ``output_sizes`` when given.  ``dense``:
    maps from :func:`dense_maps` and ROIs from a drawn seed, spread evenly over the half-pixel grid."""
    k = draw(st.integers(1, 3))
    if output_sizes is None:
        P = draw(st.one_of(st.integers(1, 2).map(lambda m: m * k), st.integers(1, 5)))
    else:
        P = draw(st.sampled_from(output_sizes))
    N, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H, W = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    s = draw(st.sampled_from(scales))
    shape = (N, c_out * k * k, H, W)
    x = draw(small_maps(shape) if not dense else dense_maps(shape))
    reach = int(2 * max(H, W, 1) / s) + 4  # half-pixels: a little past the far side of the map
    count = draw(st.integers(1, max_rois))
    if dense:  # spread evenly over the grid (hypothesis's own integers favour 0 and the bounds)
        seed = draw(st.integers(0, 2**16))
        rng = np.random.default_rng(seed)
        corners = rng.integers(-reach // 2, reach + 1, (count, 4)) / 2
        corners[:, 2:] = np.where(rng.random((count, 1)) < 0.25, corners[:, :2], corners[:, 2:])  # zero size
        batch = rng.integers(0, N, (count, 1))
        rois = np.concatenate([batch, np.minimum(corners[:, :2], corners[:, 2:]),
                               np.maximum(corners[:, :2], corners[:, 2:])], axis=1)
        return x, rois.astype(np.float32), assembly_kwargs(k, P, s)
    coordinate = st.one_of(st.integers(-reach // 2, reach).map(lambda v: v / 2), st.sampled_from([-1e5, 1e5]))
    rois = []
    for _ in range(count):
        a, b, c, d = (draw(coordinate) for _ in range(4))
        if draw(st.booleans()):
            b, d = a, c  # zero size
        rois.append([draw(st.integers(0, N - 1)), min(a, b), min(c, d), max(a, b), max(c, d)])
    return x, np.array(rois, np.float32), assembly_kwargs(k, P, s)


@st.composite
def assembled_maps(draw, max_rois=4, max_classes=4, max_p=5, values=None):
    """``(R, 2*C, P, P)`` float32 assembled inside/outside maps (the input of the joint formulation)."""
    r, c, p = draw(st.integers(0, max_rois)), draw(st.integers(1, max_classes)), draw(st.integers(1, max_p))
    if values is None:
        values = st.one_of(st.floats(-30, 30, width=32), st.sampled_from([0.0, 1.0, -1.0, 17.5]))
    return draw(hnp.arrays(np.float32, (r, 2 * c, p, p), elements=values))


@st.composite
def paste_inputs(draw, max_masks, max_height, max_width, max_mask_side=5):
    """``(masks, boxes, image_shape, threshold)``: boxes on a half-pixel grid reaching past every image side."""
    height, width = draw(st.integers(1, max_height)), draw(st.integers(1, max_width))
    num = draw(st.integers(0, max_masks))
    mask_h, mask_w = draw(st.integers(1, max_mask_side)), draw(st.integers(1, max_mask_side))
    masks = draw(hnp.arrays(np.float32, (num, mask_h, mask_w), elements=prob))
    limit = 2 * max(height, width) + 12  # half-pixels: up to 6 pixels beyond the far side
    corners = draw(hnp.arrays(np.float32, (num, 4), elements=st.integers(-12, limit).map(lambda v: v / 2)))
    threshold = draw(st.one_of(st.none(), st.sampled_from([1e-6, 0.25, 0.4, 0.5, 1.0]),
                               st.floats(0, 1, exclude_min=True, width=32)))
    return masks, _ordered(corners), (height, width), threshold


@st.composite
def voting_inputs(draw, max_rois, max_classes, max_height, max_width):
    """``(boxes, cls_masks, cls_probs, image_shape)``: boxes on a half-pixel grid, partly outside, zero-size."""
    height, width = draw(st.integers(1, max_height)), draw(st.integers(1, max_width))
    num_rois, num_classes = draw(st.integers(0, max_rois)), draw(st.integers(1, max_classes))
    p = draw(st.integers(1, 4))
    limit = 2 * max(height, width) + 8
    corners = draw(hnp.arrays(np.float32, (num_rois, 4), elements=st.integers(-8, limit).map(lambda v: v / 2)))
    cls_masks = draw(hnp.arrays(np.float32, (num_rois, num_classes, p, p), elements=prob))
    cls_probs = draw(hnp.arrays(np.float32, (num_rois, num_classes), elements=draw(st.sampled_from([grid_prob, prob]))))
    return _ordered(corners), cls_masks, cls_probs, (height, width)


#: The keyword settings of a mask voting, each drawn among values that make its boundary cases common.
voting_settings = st.fixed_dictionaries({
    "nms_threshold": st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    "vote_threshold": st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    "binary_threshold": st.sampled_from([1e-6, 0.125, 0.4, 0.5, 1.0]),
    "max_detections": st.integers(1, 6),
    "score_threshold": st.sampled_from([0.0, 0.001, 0.25, 0.5]),
})
