r"""Oracle network outputs: an idealised stand-in for a trained FCIS's outputs, made by hand from the ground truth.

It is not a trained network, nor what a perfect one would output: its box maps correct translation only, its class
maps fall to nothing one part cell outside an object, and it is exact where a network is noisy
(``docs/conventions.md``, "What the oracle is").  :func:`oracle_outputs` builds the four tensors that
:func:`fcis_twin.reference.detect.detect` consumes (RPN probabilities and deltas, inside/outside score maps,
box-regression maps) so that every inference stage can be run and drawn on meaningful data before any network is
trained.

The default feature stride is 2, not FCIS's 16: synthetic scenes are 240 x 320 pixels with objects from 24
pixels across, and at stride 16 such an object would cover one or two feature pixels, too few to hold a
``7 x 7`` grid of parts.  At stride 2 the map is 120 x 160 and the smallest object spans twelve feature pixels;
at stride 4 the masks of the smallest objects already lose enough detail to fall below a mask IoU of 0.8.

Geometry follows ``docs/conventions.md``: feature pixel ``(Y, X)`` covers image pixels
``[Y*stride, (Y+1)*stride) x [X*stride, (X+1)*stride)``; the image is padded with background to a multiple of the
stride.  Part cell ``(gh, gw)`` of a box ``(x1, y1, x2, y2)`` is, in cell units ``u = (px - x1) * k / w`` of a
pixel centre ``px = x + 0.5``, the interval ``gw <= u < gw + 1`` (likewise for ``y``).  Cell membership is soft:
1 inside the cell, falling linearly to 0 one cell beyond it (:func:`cell_membership`), as the smooth maps of a trained
network are; with hard cell borders an ROI shifted by a fraction of a cell would already lose its mask.
"""

from dataclasses import dataclass

import numpy as np

from ._checks import as_boxes, as_float, as_int
from .boxes import HEAD_STDS, box_iou, encode_boxes
from .shapes import Scene

#: An anchor's foreground probability ramps linearly from 0 at IoU ``RPN_IOU_LOW`` to 1 at
#: ``RPN_IOU_LOW + RPN_IOU_RAMP`` (0.3 and 0.7 are Faster R-CNN's negative and positive RPN thresholds).
RPN_IOU_LOW = 0.3
RPN_IOU_RAMP = 0.4

_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, eq=False)
class OracleOutputs:
    """Network outputs for one image (``N = 1``), all float32, ``Hf x Wf`` the feature map.

    Attributes
    ----------
    rpn_prob : (1, 2*A, Hf, Wf) float32 ndarray
        Channels ``[0, A)`` background, ``[A, 2A)`` foreground probability of anchor ``a``.
    rpn_deltas : (1, 4*A, Hf, Wf) float32 ndarray
        Channel ``a*4 + coord``, ``(dx, dy, dw, dh)`` with RPN stds ``(1, 1, 1, 1)``.
    seg_maps : (1, 2*C*k*k, Hf, Wf) float32 ndarray
        Inside/outside scores, channel ``((cls*2 + j)*k + gh)*k + gw``, ``j = 0`` outside, ``j = 1`` inside.
    bbox_maps : (1, 8*k*k, Hf, Wf) float32 ndarray
        Box deltas normalised by ``HEAD_STDS``, channel ``((reg*4 + coord)*k + gh)*k + gw``; ``reg = 0`` is 0.
    stride : int
        Feature stride in image pixels (``spatial_scale = 1 / stride``).
    group_size : int
        ``k``.
    """

    rpn_prob: np.ndarray
    rpn_deltas: np.ndarray
    seg_maps: np.ndarray
    bbox_maps: np.ndarray
    stride: int
    group_size: int


def oracle_outputs(scene, anchors, *, stride=2, group_size=7, num_classes=5, logit_scale=6.0, outside_bias=2.0,
                   rpn_noise=0.05, map_noise=0.0, seed=0):
    r"""Idealised network outputs for ``scene``, made by hand from its ground truth (not a trained FCIS; see above).

    Parameters
    ----------
    scene : Scene
        Ground truth: ``boxes`` (n, 4), ``masks`` (n, H, W) visible masks, ``labels`` (n,).
    anchors : (Hf*Wf*A, 4) float32 array_like
        Half-open anchors ordered ``(y, x, anchor)``, as from
        ``shift_anchors(anchor_base(stride, ...), (Hf, Wf), stride)``; ``Hf = ceil(H / stride)``,
        ``Wf = ceil(W / stride)``, and ``A`` is the row count divided by ``Hf * Wf``.
    stride : int >= 1
    group_size : int >= 1
        ``k``, the part grid is ``k x k``.
    num_classes : int >= 2
        ``C``, background included; every label of the scene must be below it.
    logit_scale : positive float
        Inside score of a feature pixel wholly in the part cell and the mask.
    outside_bias : float >= 0
        Penalty of the inside score for the shortfall of a feature pixel's mean cell membership from 1.
    rpn_noise, map_noise : float >= 0
        Std of the Gaussian noise added to the RPN deltas (where they are not 0) and to the inside/outside scores.
    seed : int >= 0
        Seeds both noises, from independent streams (``SeedSequence(seed).spawn(2)``).

    Returns
    -------
    outputs : OracleOutputs

    Notes
    -----
    **RPN.** Per anchor, with :math:`u` the best IoU with a ground-truth box (first box on ties),
    :math:`p_{fg} = \mathrm{clip}((u - 0.3) / 0.4, 0, 1)`, :math:`p_{bg} = 1 - p_{fg}`, and the deltas encode
    the anchor onto that box (0 where :math:`u = 0`, which includes zero-area anchors).

    **Inside/outside maps** (Sec. 3.1 of Li et al. 2017: :math:`2k^2` maps per class).  For instance :math:`i`
    of class :math:`c`, per feature pixel and part cell, :math:`f_{cell}` is the mean over the feature pixel's
    image pixels of their soft membership in that cell of box :math:`i` (1 in the cell, falling linearly to 0 one
    cell beyond it), :math:`f_{in}` the mean of membership times the visible mask of :math:`i`.  With
    :math:`L` = ``logit_scale``, :math:`b` = ``outside_bias``:

    .. math:: s_{in} = L f_{in} - b (1 - f_{cell}), \qquad s_{out} = L (f_{cell} - f_{in})

    More than a cell away from the cell :math:`s_{in} = -b`, :math:`s_{out} = 0`, so an ROI misaligned with the
    instance assembles a low mask probability and a low class score (Sec. 3.2): this is what makes the maps
    position-sensitive; an ROI shifted by less than a cell still reads most of its mask.  Instances of one class
    are combined by a channel-wise maximum; a class with no instance has :math:`-b` and 0 everywhere.  Background
    (class 0): every inside and outside channel is :math:`L (1 - f_{any})`, :math:`f_{any}` the fraction of the
    feature pixel covered by any ground-truth box.

    **Box regression** (Sec. 3.3: position-sensitive, :math:`4k^2` maps; the official code's foreground slot
    ``reg = 1``).  A perfect regressor's output depends on the ROI, which a per-pixel map cannot know, so this is
    an approximation: at a feature pixel centre :math:`p` within box :math:`i` widened by half its size on every
    side, channel :math:`(g_h, g_w)` holds the delta of an ROI that has box :math:`i`'s size and its cell
    :math:`(g_h, g_w)` centred on :math:`p`:

    .. math:: c^{roi}_x = p_x - (g_w + 0.5 - k/2)\, w_i / k, \qquad
              d_x = \frac{c^{gt}_x - c^{roi}_x}{w_i} \Big/ 0.2

    (same for :math:`y`), :math:`d_w = d_h = 0`, and 0 elsewhere.  Averaged over the bins of an ROI of the right
    size this gives back the ROI's translation to the ground-truth box, up to the stride; the size is not
    corrected.  Where several instances claim a feature pixel, the front-most instance (the last painted) wins.

    Examples
    --------
    >>> m = np.zeros((1, 8, 8), bool)
    >>> m[0, :4, :4] = True  # one 4 x 4 square, the top-left feature pixel at stride 4
    >>> scene = Scene(np.zeros((8, 8, 3), np.uint8), m, m, np.array([1]), np.array([[0, 0, 4, 4]], np.float32))
    >>> anchors = np.array([[0, 0, 4, 4], [4, 0, 8, 4], [0, 4, 4, 8], [4, 4, 8, 8]], np.float32)  # A = 1
    >>> out = oracle_outputs(scene, anchors, stride=4, group_size=1, num_classes=2, rpn_noise=0.0)
    >>> out.rpn_prob[0, 1]  # foreground: IoU 1 at (0, 0), 0 elsewhere
    array([[1., 0.],
           [0., 0.]], dtype=float32)
    >>> # k = 1, the cell is the box: pixel centres 4.5 .. 7.5 are 1/8 .. 7/8 of a cell past it, membership
    >>> # 7/8, 5/8, 3/8, 1/8, mean 1/2; so f_cell = 1, 1/2, 1/2, 1/4 and f_in = 1, 0, 0, 0 row by row
    >>> out.seg_maps[0, 3]  # class 1 inside, 6 f_in - 2 (1 - f_cell): 6, -1, -1, -1.5
    array([[ 6. , -1. ],
           [-1. , -1.5]], dtype=float32)
    >>> out.seg_maps[0, 2]  # class 1 outside, 6 (f_cell - f_in): 0, 3, 3, 1.5
    array([[0. , 3. ],
           [3. , 1.5]], dtype=float32)
    >>> out.seg_maps[0, 1]  # background inside: 6 * (1 - f_any)
    array([[0., 6.],
           [6., 6.]], dtype=float32)
    >>> # at the default stride 2, centres 1, 3, 5 lie in the box widened by 2 px, [-2, 6); with k = 1 the ROI
    >>> # centre is the pixel centre p, and dx = (2 - p) / 4 / 0.2 (likewise dy by rows)
    >>> from fcis_twin.reference.anchors import shift_anchors
    >>> out = oracle_outputs(scene, shift_anchors([[0, 0, 4, 4]], (4, 4), 2), group_size=1, num_classes=2)
    >>> out.bbox_maps[0, 4]  # dx, channel ((1*4 + 0)*1 + 0)*1 + 0
    array([[ 1.25, -1.25, -3.75,  0.  ],
           [ 1.25, -1.25, -3.75,  0.  ],
           [ 1.25, -1.25, -3.75,  0.  ],
           [ 0.  ,  0.  ,  0.  ,  0.  ]], dtype=float32)
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a fcis_twin.reference.shapes.Scene, got {type(scene).__name__}")
    stride = as_int("stride", stride, low=1)
    k = as_int("group_size", group_size, low=1)
    num_classes = as_int("num_classes", num_classes, low=2)
    if scene.labels.size and scene.labels.max() >= num_classes:
        raise ValueError(f"num_classes must exceed every label of the scene (max {scene.labels.max()}), "
                         f"got {num_classes}")
    logit_scale = as_float("logit_scale", logit_scale, low=0.0, high=_FLOAT32_MAX, low_open=True)
    outside_bias = as_float("outside_bias", outside_bias, low=0.0, high=_FLOAT32_MAX)
    rpn_noise = as_float("rpn_noise", rpn_noise, low=0.0, high=_FLOAT32_MAX)
    map_noise = as_float("map_noise", map_noise, low=0.0, high=_FLOAT32_MAX)
    seed = as_int("seed", seed, low=0)
    anchors = as_boxes("anchors", anchors)
    h, w = scene.image.shape[:2]
    hf, wf = -(-h // stride), -(-w // stride)
    if anchors.shape[0] == 0 or anchors.shape[0] % (hf * wf):
        raise ValueError(f"anchors must hold A >= 1 boxes for each of the {hf} x {wf} feature positions, "
                         f"got {anchors.shape[0]} rows")
    num_anchors = anchors.shape[0] // (hf * wf)
    rpn_rng, map_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))

    rpn_prob, rpn_deltas = _rpn_oracle(anchors, scene.boxes, (hf, wf, num_anchors), rpn_noise, rpn_rng)
    seg_maps = _seg_oracle(scene, (hf, wf), stride, k, num_classes, logit_scale, outside_bias)
    if map_noise > 0:
        seg_maps += map_rng.standard_normal(seg_maps.shape, dtype=np.float32) * np.float32(map_noise)
    bbox_maps = _bbox_oracle(scene.boxes, (hf, wf), stride, k)
    return OracleOutputs(rpn_prob, rpn_deltas, seg_maps, bbox_maps, stride, k)


def _rpn_oracle(anchors, gt_boxes, shape, noise_std, rng):
    """(1, 2A, Hf, Wf) probabilities and (1, 4A, Hf, Wf) deltas from the anchors' best IoU."""
    hf, wf, a = shape
    r = anchors.shape[0]
    noise = rng.standard_normal((r, 4), dtype=np.float32) * np.float32(noise_std)  # drawn for every anchor
    if gt_boxes.shape[0]:
        iou = box_iou(anchors, gt_boxes)  # (R, n)
        best = iou.argmax(axis=1)  # (R,) first box on ties
        best_iou = iou[np.arange(r), best]  # (R,)
    else:
        best, best_iou = np.zeros(r, np.int64), np.zeros(r, np.float32)
    fg = np.clip((best_iou - np.float32(RPN_IOU_LOW)) / np.float32(RPN_IOU_RAMP), 0, 1).astype(np.float32)
    deltas = np.zeros((r, 4), np.float32)
    hit = best_iou > 0  # positive IoU implies both boxes have positive width and height
    deltas[hit] = encode_boxes(anchors[hit], gt_boxes[best[hit]]) + noise[hit]

    fg = fg.reshape(hf, wf, a).transpose(2, 0, 1)  # (A, Hf, Wf)
    prob = np.concatenate([np.float32(1) - fg, fg])[None]  # (1, 2A, Hf, Wf): background first
    deltas = deltas.reshape(hf, wf, a, 4).transpose(2, 3, 0, 1).reshape(1, 4 * a, hf, wf)  # channel a*4 + coord
    return prob, np.ascontiguousarray(deltas)


def _seg_oracle(scene, feature_shape, stride, k, num_classes, logit_scale, outside_bias):
    """(1, 2*C*k*k, Hf, Wf) inside/outside scores."""
    hf, wf = feature_shape
    scale, bias, one = np.float32(logit_scale), np.float32(outside_bias), np.float32(1)
    seg = np.empty((num_classes, 2, k, k, hf, wf), np.float32)  # (C, outside/inside, gh, gw, Hf, Wf)
    seg[:, 0] = 0  # outside score away from every cell
    seg[:, 1] = -bias  # inside score away from every cell
    for box, label, mask in zip(scene.boxes, scene.labels, scene.masks, strict=True):
        x1, y1, x2, y2 = box
        # feature window [fy0, fy1) x [fx0, fx1) that covers the box widened by one cell, inside the map
        cell_w, cell_h = (x2 - x1) / k, (y2 - y1) / k
        fy0, fy1 = _window(y1 - cell_h, y2 + cell_h, stride, hf)
        fx0, fx1 = _window(x1 - cell_w, x2 + cell_w, stride, wf)
        if fy0 >= fy1 or fx0 >= fx1 or x2 <= x1 or y2 <= y1:
            continue
        f_cell, f_in = _part_fractions(box, mask, (fy0, fy1, fx0, fx1), stride, k)  # (k, k, nY, nX) each
        inside = scale * f_in - bias * (one - f_cell)
        outside = scale * (f_cell - f_in)
        view = seg[label, :, :, :, fy0:fy1, fx0:fx1]  # (outside/inside, k, k, nY, nX)
        np.maximum(view[0], outside, out=view[0])  # several instances of a class: channel-wise maximum
        np.maximum(view[1], inside, out=view[1])

    # background: fraction of each feature pixel covered by any ground-truth box
    ys = np.arange(hf * stride, dtype=np.float32) + np.float32(0.5)  # (Hf*stride,) pixel centres, padded image
    xs = np.arange(wf * stride, dtype=np.float32) + np.float32(0.5)
    covered = np.zeros((ys.size, xs.size), bool)
    for x1, y1, x2, y2 in scene.boxes:
        covered |= ((y1 <= ys) & (ys < y2))[:, None] & ((x1 <= xs) & (xs < x2))[None, :]
    counts = covered.reshape(hf, stride, wf, stride).sum(axis=(1, 3))  # (Hf, Wf)
    f_any = counts.astype(np.float32) / np.float32(stride * stride)
    seg[0] = scale * (one - f_any)  # every cell, inside and outside alike
    return seg.reshape(1, 2 * num_classes * k * k, hf, wf)


def _window(lo, hi, stride, size):
    """Feature indices [i0, i1) whose pixels cover image coordinates [lo, hi), clipped to [0, size)."""
    return max(int(np.floor(lo / stride)), 0), min(int(np.ceil(hi / stride)), size)


def cell_membership(p, lo, hi, k):
    """(k, n) soft membership of coordinates ``p`` (pixel centres) in the ``k`` part cells of the side [lo, hi).

    In cell units ``u = (p - lo) * k / (hi - lo)``, cell ``g`` has membership 1 for ``|u - (g + 0.5)| <= 0.5``
    (the cell itself), falling linearly to 0 at one cell beyond it.
    """
    u = (p - lo) * np.float32(k) / (hi - lo)  # (n,) float32
    centre = np.arange(k, dtype=np.float32)[:, None] + np.float32(0.5)  # (k, 1)
    return np.clip(np.float32(1.5) - np.abs(u[None, :] - centre), 0, 1).astype(np.float32)


def _part_fractions(box, mask, window, stride, k):
    """f_cell and f_in, (k, k, nY, nX) float32, over the feature window (fy0, fy1, fx0, fx1).

    ``f_cell`` is the block average of the soft cell membership, ``f_in`` that of membership times the mask.
    """
    x1, y1, x2, y2 = box
    fy0, fy1, fx0, fx1 = window
    n_y, n_x = fy1 - fy0, fx1 - fx0
    rows = np.arange(fy0 * stride, fy1 * stride)  # (hw,) image rows of the window, possibly past the image
    cols = np.arange(fx0 * stride, fx1 * stride)  # (ww,)
    m_y = cell_membership(rows.astype(np.float32) + np.float32(0.5), y1, y2, k).reshape(k, n_y, stride)  # (k, nY, s)
    m_x = cell_membership(cols.astype(np.float32) + np.float32(0.5), x1, x2, k).reshape(k, n_x, stride)  # (k, nX, s)
    win_mask = np.zeros((rows.size, cols.size), np.float32)  # the visible mask over the window, 0 in the padding
    part = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    win_mask[: part.shape[0], : part.shape[1]] = part
    win_mask = win_mask.reshape(n_y, stride, n_x, stride)  # (nY, s, nX, s)
    area = np.float32(stride * stride)
    # the membership is separable: f_cell is the outer product of the row and column block sums
    f_cell = m_y.sum(axis=2)[:, None, :, None] * m_x.sum(axis=2)[None, :, None, :] / area  # (k, k, nY, nX)
    # f_in in two contractions (each a small sum): over each feature column's pixels b, then each row's pixels a
    in_cols = np.einsum("hxb,yaxb->hyax", m_x, win_mask)  # (k, nY, s, nX)
    f_in = np.einsum("gya,hyax->ghyx", m_y, in_cols) / area  # (k, k, nY, nX)
    return f_cell.astype(np.float32), f_in.astype(np.float32)


def _bbox_oracle(gt_boxes, feature_shape, stride, k):
    """(1, 8*k*k, Hf, Wf) box deltas normalised by HEAD_STDS; only reg = 1, coords dx and dy are non-zero.

    Every part channel ``(gh, gw)`` is written at every feature pixel of the box widened by half its size on each
    side (a shifted ROI still reads values there): the delta that would bring a gt-sized ROI whose cell
    ``(gh, gw)`` is centred on that pixel onto the gt box.
    """
    hf, wf = feature_shape
    bbox = np.zeros((2, 4, k, k, hf, wf), np.float32)  # (reg, coord, gh, gw, Hf, Wf)
    half, kf = np.float32(0.5), np.float32(k)
    py = (np.arange(hf, dtype=np.float32) + half) * np.float32(stride)  # (Hf,) feature-pixel centres, image px
    px = (np.arange(wf, dtype=np.float32) + half) * np.float32(stride)  # (Wf,)
    offset = np.arange(k, dtype=np.float32) + half - kf / 2  # (k,) cell centre minus ROI centre, in cells
    std_x, std_y = np.float32(HEAD_STDS[0]), np.float32(HEAD_STDS[1])
    for x1, y1, x2, y2 in gt_boxes:  # painting order: a later (front) instance overwrites
        bw, bh = x2 - x1, y2 - y1
        if bw <= 0 or bh <= 0:
            continue
        near_x = (px >= x1 - half * bw) & (px < x2 + half * bw)  # (Wf,)
        near_y = (py >= y1 - half * bh) & (py < y2 + half * bh)  # (Hf,)
        roi_cx = px[None, :] - offset[:, None] * bw / kf  # (k, Wf): ROI centre if cell gw sits on px
        roi_cy = py[None, :] - offset[:, None] * bh / kf  # (k, Hf)
        dx = (x1 + half * bw - roi_cx) / bw / std_x  # (k, Wf)
        dy = (y1 + half * bh - roi_cy) / bh / std_y  # (k, Hf)
        region = near_y[:, None] & near_x[None, :]  # (Hf, Wf)
        bbox[1, 0] = np.where(region, dx[None, :, None, :], bbox[1, 0])  # (gh, gw, Hf, Wf)
        bbox[1, 1] = np.where(region, dy[:, None, :, None], bbox[1, 1])
    return bbox.reshape(1, 8 * k * k, hf, wf)
