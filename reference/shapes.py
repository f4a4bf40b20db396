r"""Synthetic scenes: flat-coloured shapes on a textured background, with exact instance masks.

A scene is drawn from one ``np.random.default_rng(seed)`` in a fixed order (background, object count, every
object's geometry, every object's colour candidates), so it is a pure function of its seed and its keyword
arguments.  ``seed`` may be an ``np.random.SeedSequence``: :func:`make_dataset` draws scene ``i`` of a data set
from child ``i`` of ``np.random.SeedSequence(seed).spawn(n)``, so it does not depend on ``n``.

Masks are analytic: pixel ``(x, y)`` belongs to a shape when its centre ``(x + 0.5, y + 0.5)`` is strictly
inside it (a crossing-number test for polygons).  Later objects occlude earlier ones.
"""

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._checks import as_array, as_boxes, as_float, as_image_shape, as_int
from .boxes import tight_boxes

#: Class names; index 0 is background, so ``C = len(CLASS_NAMES) = 5``.
CLASS_NAMES = ("background", "circle", "square", "triangle", "star")

#: Smallest accepted image side: below it most objects would be mostly cut by the border.
MIN_IMAGE_SIDE = 16
#: Largest scene, height x width in pixels (2048 x 2048: about 1 s and 250 MiB of memory to draw).
MAX_SCENE_PIXELS = 2**22
#: Most scenes one :func:`make_dataset` holds (each gets its own seed, spawned at once).
MAX_DATASET_IMAGES = 100_000
#: Random colours tried per object; the one farthest from its surroundings wins.
COLOUR_CANDIDATES = 16
#: Inner radius of the star as a fraction of its outer radius.
STAR_INNER = 0.45
#: Smallest object diameter of :func:`make_dataset`'s default ``size_range``, in pixels.
DATASET_MIN_SIZE = 12
#: :func:`make_dataset`'s default ``min_visible_area``: a 4 x 4 block of pixels.
DATASET_MIN_VISIBLE_AREA = 16


@dataclass(frozen=True, eq=False)
class Scene:
    """One synthetic image and its ground-truth instances, ``n`` of them, in painting order.

    Attributes
    ----------
    image : (H, W, 3) uint8 ndarray
        RGB.
    masks : (n, H, W) bool ndarray
        Visible part of each instance: its full mask minus every later instance.
    full_masks : (n, H, W) bool ndarray
        Each instance before occlusion (the part inside the image).
    labels : (n,) int64 ndarray
        Class indices in ``1 .. C - 1`` (see :data:`CLASS_NAMES`).
    boxes : (n, 4) float32 ndarray
        ``(x1, y1, x2, y2)``, half-open; :func:`make_scene` makes them the tight boxes of ``masks``.

    Notes
    -----
    The constructor checks shapes, dtypes, labels >= 1 and ``masks <= full_masks``, not that the boxes are
    tight.  Equality is identity (``eq=False``): arrays do not compare to one bool.
    """

    image: np.ndarray
    masks: np.ndarray
    full_masks: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray

    def __post_init__(self):
        image = np.asarray(self.image)
        if image.dtype != np.uint8:
            raise TypeError(f"image must be uint8, got dtype {image.dtype}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
        h, w = image.shape[:2]
        masks = as_array("masks", self.masks, ndim=3, dtype=bool)
        full_masks = as_array("full_masks", self.full_masks, ndim=3, dtype=bool)
        n = masks.shape[0]
        for name, arr in (("masks", masks), ("full_masks", full_masks)):
            if arr.shape != (n, h, w):
                raise ValueError(f"{name} must have shape ({n}, {h}, {w}) to match image and masks, got {arr.shape}")
        labels = np.asarray(self.labels)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
        if labels.shape != (n,) or (labels < 1).any():
            raise ValueError(f"labels must have shape ({n},) and values >= 1 (0 is background), got {labels!r}")
        boxes = np.asarray(self.boxes)
        boxes = as_boxes("boxes", boxes.reshape(0, 4) if boxes.size == 0 else boxes)
        if boxes.shape != (n, 4):
            raise ValueError(f"boxes must have shape ({n}, 4), got {boxes.shape}")
        if (masks & ~full_masks).any():
            raise ValueError("masks must be subsets of full_masks")
        for name, value in dict(image=image, masks=masks, full_masks=full_masks, labels=labels.astype(np.int64),
                                boxes=boxes).items():
            object.__setattr__(self, name, value)

    @property
    def visible_fraction(self):
        """(n,) float32: visible area / full area per instance (0 where the full mask is empty)."""
        visible = self.masks.sum(axis=(1, 2))
        full = self.full_masks.sum(axis=(1, 2))
        return (visible / np.maximum(full, 1)).astype(np.float32)


def make_scene(seed, *, image_shape=(240, 320), min_objects=1, max_objects=6, size_range=(24, 120),
               min_visible_area=64):
    r"""Draw a synthetic scene of circles, squares, triangles and stars.

    Parameters
    ----------
    seed : int >= 0 or numpy.random.SeedSequence
        The only source of randomness.
    image_shape : (H, W)
        Each side at least ``MIN_IMAGE_SIDE`` (16), ``H * W`` at most ``MAX_SCENE_PIXELS`` (``2**22``).
    min_objects, max_objects : int
        The number of objects drawn is uniform in ``[min_objects, max_objects]`` (``0 <= min <= max``).
    size_range : (min, max) of positive reals
        Diameter of each object's circumscribed circle, log-uniform in ``[min, max]`` pixels.
    min_visible_area : int >= 1
        Objects whose visible area (after occlusion and the image border) is smaller are dropped.

    Returns
    -------
    scene : Scene
        ``n`` instances in painting order.  ``n`` is at most the number drawn and may be smaller, even 0, when
        objects are dropped; a dropped object stays painted (at most ``min_visible_area - 1`` pixels of it show)
        and still occludes earlier objects.

    Notes
    -----
    Background: a two-colour linear gradient (the second colour within 40 of the first per channel) plus
    smooth noise at two scales, bilinearly upsampled from 4 x 5 and 12 x 16 grids.  Objects: class uniform over
    1..4, centre uniform over the image (so objects may be cut by the border), rotation uniform in
    :math:`[0, 2\pi)` (drawn for circles too, unused, to keep the draw order fixed), one flat colour per object:
    of ``COLOUR_CANDIDATES`` random colours, the one whose smallest RGB distance to the mean background under
    the object and to the colours of earlier objects it may touch is largest.  Shapes, all inscribed in the
    circle of diameter ``size``: circle; square (diagonal = size); equilateral triangle; five-pointed star with
    inner radius ``STAR_INNER`` times the outer.

    Examples
    --------
    >>> scene = make_scene(0, image_shape=(32, 48), min_objects=2, max_objects=2, size_range=(12, 16),
    ...                    min_visible_area=1)
    >>> scene.image.shape, scene.masks.shape[1:], scene.boxes.dtype
    ((32, 48, 3), (32, 48), dtype('float32'))
    """
    rng = np.random.default_rng(seed if isinstance(seed, np.random.SeedSequence) else as_int("seed", seed, low=0))
    (h, w), min_objects, max_objects, (size_lo, size_hi), min_visible_area = _scene_parameters(
        image_shape, min_objects, max_objects, size_range, min_visible_area)

    background = _background(rng, h, w)  # (H, W, 3) float32
    objects = draw_objects(rng, h, w, min_objects, max_objects, size_lo, size_hi)
    candidates = rng.integers(0, 256, size=(len(objects), COLOUR_CANDIDATES, 3)).astype(np.float64)

    image = background.copy()
    full_masks = np.zeros((len(objects), h, w), bool)
    colours = np.zeros((len(objects), 3))
    for i, obj in enumerate(objects):
        full_masks[i] = rasterise(obj, h, w)
        refs = [background[full_masks[i]].mean(axis=0) if full_masks[i].any() else background.mean(axis=(0, 1))]
        refs += [colours[j] for j in range(i) if _may_touch(objects[i], objects[j])]
        dist = np.linalg.norm(candidates[i][:, None, :] - np.array(refs)[None, :, :], axis=2)  # (cand, refs)
        colours[i] = candidates[i][np.argmax(dist.min(axis=1))]
        image[full_masks[i]] = colours[i]

    # visible = full minus the union of every later object, built back to front
    masks = np.zeros_like(full_masks)
    covered = np.zeros((h, w), bool)
    for i in range(len(objects) - 1, -1, -1):
        masks[i] = full_masks[i] & ~covered
        covered |= full_masks[i]
    keep = masks.sum(axis=(1, 2)) >= min_visible_area
    labels = np.array([obj["label"] for obj in objects], np.int64)
    image = np.clip(np.floor(image + 0.5), 0, 255).astype(np.uint8)
    return Scene(image, masks[keep], full_masks[keep], labels[keep], tight_boxes(masks[keep]))


class SceneSet(Sequence):
    """A data set of synthetic scenes, drawn when accessed: item ``i`` is ``make_scene(seeds[i], **scene_kwargs)``.

    Nothing is cached: each access draws the scene again (the same one), in about 2 ms at 128 x 128, so a set
    of any size costs no memory until ``list(scene_set)``.  Slicing gives a smaller ``SceneSet``.

    Attributes
    ----------
    seeds : tuple of numpy.random.SeedSequence
    scene_kwargs : dict
        Keyword arguments of :func:`make_scene`, ``image_shape`` included.
    """

    def __init__(self, seeds, scene_kwargs):
        self.seeds = tuple(seeds)
        self.scene_kwargs = dict(scene_kwargs)

    def __len__(self):
        return len(self.seeds)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return SceneSet(self.seeds[index], self.scene_kwargs)
        return make_scene(self.seeds[operator.index(index)], **self.scene_kwargs)


def make_dataset(n_images, *, seed, image_size=(128, 128), min_objects=1, max_objects=6, size_range=None,
                 min_visible_area=DATASET_MIN_VISIBLE_AREA):
    r"""A deterministic data set of ``n_images`` synthetic scenes with small, medium and large objects.

    Parameters
    ----------
    n_images : int >= 0
    seed : int >= 0
        Scene ``i`` is drawn from child ``i`` of ``np.random.SeedSequence(seed).spawn(n_images)``: it depends on
        ``seed`` and ``i`` only, not on ``n_images``.
    image_size : (H, W)
        Each side at least ``MIN_IMAGE_SIDE`` (16).
    min_objects, max_objects, min_visible_area
        As in :func:`make_scene` (note the smaller default ``min_visible_area``, 16 pixels).
    size_range : (min, max) of positive reals, optional
        Object diameters, log-uniform.  Default ``(DATASET_MIN_SIZE, 2 * min(H, W))`` = ``(12, 256)`` at
        128 x 128.

    Returns
    -------
    scenes : SceneSet
        A sequence of :class:`Scene`, drawn on access.

    Notes
    -----
    COCO sorts objects by their area ``a`` in pixels: small :math:`a < 32^2`, medium, large :math:`a > 96^2`.
    A large object needs more than 56% of a 128 x 128 image, hence diameters up to twice the image side (such an
    object is cut by the border, as large objects in photographs are).  Over 1000 images of 128 x 128 (seed 0)
    the defaults give 3.0 instances per image, 52% of them small, 42% medium and 6% large (a large one in 19% of
    the images); at 64 x 64 no object can be large.

    Examples
    --------
    >>> scenes = make_dataset(3, seed=0, image_size=(32, 48))
    >>> len(scenes), scenes[2].image.shape, len(scenes[1:])
    (3, (32, 48, 3), 2)
    """
    n_images = as_int("n_images", n_images, low=0, high=MAX_DATASET_IMAGES)
    seed = as_int("seed", seed, low=0)
    if size_range is None:
        size_range = (DATASET_MIN_SIZE, 2 * min(as_image_shape("image_size", image_size)))
    values = _scene_parameters(image_size, min_objects, max_objects, size_range, min_visible_area, "image_size")
    names = ("image_shape", "min_objects", "max_objects", "size_range", "min_visible_area")
    kwargs = dict(zip(names, values, strict=True))
    return SceneSet(np.random.SeedSequence(seed).spawn(n_images), kwargs)  # validated now, not at first access


def _scene_parameters(image_shape, min_objects, max_objects, size_range, min_visible_area, shape_name="image_shape"):
    """The scene parameters of :func:`make_scene`, validated and converted, in its signature order."""
    h, w = as_image_shape(shape_name, image_shape)
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ValueError(f"{shape_name} must be at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE}, got {(h, w)}")
    if h * w > MAX_SCENE_PIXELS:
        raise ValueError(f"{shape_name} {h} x {w} is {h * w} pixels, more than MAX_SCENE_PIXELS = {MAX_SCENE_PIXELS} "
                         "(e.g. 2048 x 2048)")
    min_objects = as_int("min_objects", min_objects, low=0)
    max_objects = as_int("max_objects", max_objects, low=0)
    if min_objects > max_objects:
        raise ValueError(f"min_objects must be <= max_objects, got {min_objects} > {max_objects}")
    min_visible_area = as_int("min_visible_area", min_visible_area, low=1)
    return (h, w), min_objects, max_objects, _size_range(size_range), min_visible_area


def _size_range(size_range):
    """``(min, max)`` as two floats with ``0 < min <= max < inf``."""
    if not isinstance(size_range, (tuple, list)) or len(size_range) != 2:
        raise ValueError(f"size_range must be a pair (min, max), got {size_range!r}")
    lo, hi = (as_float("size_range", v, low=0.0, low_open=True) for v in size_range)
    if lo > hi or not math.isfinite(hi):
        raise ValueError(f"size_range must be (min, max) with 0 < min <= max < inf, got {size_range!r}")
    return lo, hi


def _background(rng, h, w):
    """(H, W, 3) float32 in [0, 255]: gradient between two colours plus smooth noise at two scales."""
    c0 = rng.uniform(50, 205, size=3)
    c1 = np.clip(c0 + rng.uniform(-40, 40, size=3), 0, 255)
    angle = rng.uniform(0, 2 * math.pi)
    coarse = rng.normal(0, 18, size=(4, 5, 3))
    fine = rng.normal(0, 7, size=(12, 16, 3))
    # built on the 12 x 16 nodes of the fine grid and upsampled once: bilinear interpolation of the nodes
    # reproduces the linear gradient exactly
    node_y, node_x = np.linspace(0, 1, fine.shape[0]), np.linspace(0, 1, fine.shape[1])
    t = (math.cos(angle) * node_x[None, :] + math.sin(angle) * node_y[:, None] + 1) / 2  # (12, 16) in [0, 1]
    nodes = c0 + t[:, :, None] * (c1 - c0) + fine + _upsample(coarse, node_y, node_x)  # (12, 16, 3)
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w  # pixel centres in [0, 1]
    img = _upsample(nodes.astype(np.float32), ys, xs)
    return np.clip(img, 0, 255, out=img)


def _upsample(grid, ys, xs):
    """(len(ys), len(xs), 3): bilinear interpolation of a (gh, gw, 3) grid whose nodes span [0, 1] x [0, 1]."""
    (i0, fy), (j0, fx) = (_lerp_index(t, g) for t, g in ((ys, grid.shape[0]), (xs, grid.shape[1])))
    fy, fx = fy.astype(grid.dtype), fx.astype(grid.dtype)
    cols = grid[:, j0] * (1 - fx)[None, :, None] + grid[:, j0 + 1] * fx[None, :, None]  # (gh, W, 3)
    return cols[i0] * (1 - fy)[:, None, None] + cols[i0 + 1] * fy[:, None, None]  # (H, W, 3)


def _lerp_index(t, g):
    """Left node and fraction towards the right node of positions t in [0, 1] on g evenly spread nodes."""
    i0 = np.minimum(np.floor(t * (g - 1)).astype(np.int64), g - 2)
    return i0, t * (g - 1) - i0


def draw_objects(rng, h, w, min_objects, max_objects, size_lo, size_hi):
    """The geometry of every object, drawn before any is painted: a list of dicts."""
    n = int(rng.integers(min_objects, max_objects + 1))
    labels = rng.integers(1, len(CLASS_NAMES), size=n)
    sizes = np.exp(rng.uniform(math.log(size_lo), math.log(size_hi), size=n))
    cx = rng.uniform(0, w, size=n)
    cy = rng.uniform(0, h, size=n)
    angles = rng.uniform(0, 2 * math.pi, size=n)
    return [dict(label=int(labels[i]), size=float(sizes[i]), cx=float(cx[i]), cy=float(cy[i]),
                 angle=float(angles[i])) for i in range(n)]


def _may_touch(a, b, margin=2.0):
    """Whether two objects' circumscribed circles, grown by ``margin`` pixels, intersect."""
    return math.hypot(a["cx"] - b["cx"], a["cy"] - b["cy"]) < (a["size"] + b["size"]) / 2 + margin


def rasterise(obj, h, w):
    """(H, W) bool: pixels whose centre lies strictly inside the object."""
    r = obj["size"] / 2
    x0, x1 = max(int(math.floor(obj["cx"] - r)), 0), min(int(math.ceil(obj["cx"] + r)) + 1, w)
    y0, y1 = max(int(math.floor(obj["cy"] - r)), 0), min(int(math.ceil(obj["cy"] + r)) + 1, h)
    mask = np.zeros((h, w), bool)
    if x0 >= x1 or y0 >= y1:
        return mask
    px = np.arange(x0, x1) + 0.5 - obj["cx"]  # (w_win,) pixel centres relative to the object centre
    py = np.arange(y0, y1) + 0.5 - obj["cy"]  # (h_win,)
    if CLASS_NAMES[obj["label"]] == "circle":
        mask[y0:y1, x0:x1] = px[None, :] ** 2 + py[:, None] ** 2 < r * r
    else:
        mask[y0:y1, x0:x1] = _inside_polygon(_polygon(obj["label"], r, obj["angle"]), px, py)
    return mask


#: Polygon classes: (vertex count, radius of odd vertices / radius of even ones, angle of vertex 0).
_POLYGONS = {"square": (4, 1.0, math.pi / 4), "triangle": (3, 1.0, 0.0), "star": (10, STAR_INNER, 0.0)}


def _polygon(label, r, angle):
    """(V, 2) vertices (x, y) around the origin of a shape inscribed in the circle of radius r."""
    count, odd_radius, start = _POLYGONS[CLASS_NAMES[label]]
    phi = angle + start + np.arange(count) * 2 * math.pi / count
    radii = np.where(np.arange(count) % 2 == 0, r, odd_radius * r)  # the star alternates outer and inner
    return np.stack([radii * np.cos(phi), radii * np.sin(phi)], axis=1)


def _inside_polygon(vertices, px, py):
    """(len(py), len(px)) bool, crossing-number test of the grid of points (px, py) against a simple polygon."""
    inside = np.zeros((py.size, px.size), bool)
    for (xa, ya), (xb, yb) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        crosses = (ya > py) != (yb > py)  # (h_win,) rows whose horizontal line crosses this edge
        if ya == yb:
            continue
        x_cross = xa + (py - ya) * (xb - xa) / (yb - ya)  # (h_win,)
        inside ^= crosses[:, None] & (px[None, :] < x_cross[:, None])
    return inside
