"""Synthetic scenes: determinism, mask and box invariants, analytic shapes, colours and bad input."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fcis_twin.reference.shapes import (
    CLASS_NAMES,
    DATASET_MIN_SIZE,
    Scene,
    SceneSet,
    draw_objects,
    make_dataset,
    make_scene,
    rasterise,
    tight_boxes,
)

#: Small scenes keep every property test fast; objects still span several pixels and overlap often.
SMALL = dict(image_shape=(48, 64), size_range=(10, 40), max_objects=6, min_visible_area=16)
#: Four objects of 8..24 px on 32 x 48: most scenes have overlaps, and each is drawn in about a millisecond.
CROWDED = dict(image_shape=(32, 48), min_objects=4, max_objects=4, size_range=(8, 24))
seeds = st.integers(0, 2**32 - 1)


def reference_tight_box(mask):
    """Tight half-open box of one non-empty mask, from the row and column indices of its pixels."""
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_same_seed_same_scene():
    """A scene is a pure function of its seed."""
    a, b = make_scene(3), make_scene(3)
    for name in ("image", "masks", "full_masks", "labels", "boxes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_different_seeds_differ():
    """Different seeds give different images."""
    assert not np.array_equal(make_scene(1).image, make_scene(2).image)


def test_seed_sequence_children_are_independent_scenes():
    """A SeedSequence works as a seed, so a data set can spawn one child per scene."""
    children = np.random.SeedSequence(7).spawn(2)
    again = np.random.SeedSequence(7).spawn(2)
    np.testing.assert_array_equal(make_scene(children[0]).image, make_scene(again[0]).image)
    assert not np.array_equal(make_scene(children[0]).image, make_scene(children[1]).image)


def test_default_scene_shapes_and_dtypes():
    """The default scene is 240 x 320 RGB uint8 with 1..6 instances and consistent array shapes."""
    s = make_scene(0)
    n = s.labels.shape[0]
    assert 1 <= n <= 6
    assert s.image.shape == (240, 320, 3) and s.image.dtype == np.uint8
    assert s.masks.shape == s.full_masks.shape == (n, 240, 320)
    assert s.masks.dtype == s.full_masks.dtype == np.bool_
    assert s.labels.dtype == np.int64
    assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32
    assert s.visible_fraction.shape == (n,) and s.visible_fraction.dtype == np.float32


@given(seeds)
def test_scene_invariants(seed):
    """Tight boxes, visible subset of full, visible masks disjoint, labels in 1..4, area >= min_visible_area."""
    s = make_scene(seed, **SMALL)
    n = s.labels.shape[0]
    assert n <= SMALL["max_objects"]
    assert ((s.labels >= 1) & (s.labels < len(CLASS_NAMES))).all()
    assert not (s.masks & ~s.full_masks).any()
    assert (s.masks.sum(axis=0) <= 1).all()  # no pixel is visible in two instances
    assert (s.masks.sum(axis=(1, 2)) >= SMALL["min_visible_area"]).all()
    for i in range(n):
        np.testing.assert_array_equal(s.boxes[i], reference_tight_box(s.masks[i]))
        # a later kept instance hides its pixels: they are not visible in instance i
        later = s.full_masks[i + 1 :].any(axis=0)
        assert not (s.masks[i] & later).any()
    frac = s.visible_fraction
    assert ((frac > 0) & (frac <= 1)).all()


@given(seeds)
def test_objects_are_flat_and_stand_out(seed):
    """Each instance shows one flat colour, at RGB distance >= 60 from the background just around it."""
    s = make_scene(seed, **SMALL)
    any_full = s.full_masks.any(axis=0)
    for i in range(s.labels.shape[0]):
        colours = s.image[s.masks[i]].astype(float)  # (visible area, 3)
        np.testing.assert_array_equal(colours, np.broadcast_to(colours[0], colours.shape))
        ring = _dilate(s.full_masks[i], 2) & ~any_full  # background pixels within 2 px of the object
        if ring.any():
            background = np.median(s.image[ring].astype(float), axis=0)
            assert np.linalg.norm(colours[0] - background) >= 60


@given(seeds)
def test_hidden_pixels_show_another_colour(seed):
    """Pixels of a full mask that are not visible were painted over by something of another colour."""
    s = make_scene(seed, **SMALL)
    for i in range(s.labels.shape[0]):
        colour = s.image[s.masks[i]][0]
        hidden = s.full_masks[i] & ~s.masks[i]
        assert (s.image[hidden] != colour).any(axis=1).all()


@given(seeds, st.integers(0, 5), st.integers(0, 5))
def test_object_count_before_dropping(seed, a, b):
    """The number of objects drawn, before dropping, is in [min_objects, max_objects]."""
    lo, hi = min(a, b), max(a, b)
    objects = draw_objects(np.random.default_rng(seed), 48, 64, lo, hi, 10.0, 40.0)
    assert lo <= len(objects) <= hi


def test_count_may_drop_below_min_objects():
    """Dropping happens after the count is drawn: a large min_visible_area can leave fewer than min_objects."""
    s = make_scene(0, image_shape=(48, 64), min_objects=3, max_objects=3, size_range=(10, 12),
                   min_visible_area=10_000)  # no object of diameter <= 12 has 10,000 pixels
    assert s.labels.shape == (0,) and s.masks.shape == (0, 48, 64) and s.boxes.shape == (0, 4)


def _is_selection(scene, reference, keep):
    """Whether ``scene`` is ``reference`` with only the instances where ``keep`` holds, the image unchanged."""
    return np.array_equal(scene.image, reference.image) and all(
        np.array_equal(getattr(scene, name), getattr(reference, name)[keep])
        for name in ("masks", "full_masks", "labels", "boxes"))


def _crowded_scene_with(found, seeds=range(20)):
    """The first CROWDED scene at min_visible_area=1 (every instance with a visible pixel) for which
    ``found(scene, visible_areas, full_areas)`` is not None: (seed, scene, visible, full, what found returned)."""
    for seed in seeds:
        scene = make_scene(seed, **CROWDED, min_visible_area=1)
        visible, full = scene.masks.sum(axis=(1, 2)), scene.full_masks.sum(axis=(1, 2))
        hit = found(scene, visible, full)
        if hit is not None:
            return seed, scene, visible, full, hit
    raise AssertionError(f"no scene of the kind wanted among seeds {seeds}")


def test_min_visible_area_is_inclusive_and_counts_visible_pixels():
    """An instance with exactly min_visible_area visible pixels is kept; with min_visible_area one more, dropped.

    make_scene drops objects whose visible area is *smaller* than min_visible_area (a dropped one shows at most
    min_visible_area - 1 pixels), so the bound is inclusive.  The threshold only selects instances once the scene
    is drawn: every other instance and the image stay as they are.  The instance chosen is partly hidden, so its
    full area is at least its visible area + 1: the second threshold also tells the visible area from the full one.
    """
    # a partly hidden instance turns up within the first few seeds
    seed, ref, visible, full, i = _crowded_scene_with(
        lambda scene, visible, full: next((i for i in range(len(visible)) if visible[i] < full[i]), None))
    t = int(visible[i])
    at = make_scene(seed, **CROWDED, min_visible_area=t)  # instance i has exactly t visible pixels
    assert _is_selection(at, ref, visible >= t)
    assert any(np.array_equal(m, ref.masks[i]) for m in at.masks)  # the boundary case was reached, and kept
    above = make_scene(seed, **CROWDED, min_visible_area=t + 1)  # now it has min_visible_area - 1 visible pixels
    assert full[i] >= t + 1  # ... but enough pixels before occlusion
    assert _is_selection(above, ref, visible >= t + 1)
    assert not any(np.array_equal(m, ref.masks[i]) for m in above.masks)


def test_dropped_object_stays_painted_and_hides_earlier_ones():
    """A dropped object is still painted, and the pixels it covers stay hidden in the earlier instances it overlaps.

    Dropping selects instances after occlusion is resolved over every object drawn, so an earlier instance's
    visible mask does not grow back when the later object in front of it is dropped.
    """
    def overlap(scene, visible, full):  # (i, j): j painted after i, over part of it, with fewer visible pixels
        n = len(visible)
        return next(((i, j) for i in range(n) for j in range(i + 1, n)
                     if visible[j] < visible[i] and (scene.full_masks[i] & scene.full_masks[j]).any()), None)

    seed, ref, visible, full, (i, j) = _crowded_scene_with(overlap)
    t = int(visible[j]) + 1  # j shows t - 1 pixels, the most a dropped object may show; i shows at least t
    s = make_scene(seed, **CROWDED, min_visible_area=t)
    keep = visible >= t
    assert keep[i] and not keep[j]
    assert _is_selection(s, ref, keep)  # the image still shows j; i's visible mask is the one of the full scene
    k = keep[:i].sum()  # instance i in s
    assert (s.full_masks[k] & ~s.masks[k] & ref.full_masks[j]).any()  # pixels of i hidden by the dropped j


def test_empty_scene():
    """With no objects the image is pure background and every instance array is empty."""
    s = make_scene(5, image_shape=(20, 30), min_objects=0, max_objects=0)
    assert s.image.shape == (20, 30, 3)
    assert s.masks.shape == s.full_masks.shape == (0, 20, 30)
    assert s.boxes.shape == (0, 4) and s.labels.shape == (0,) and s.visible_fraction.shape == (0,)


def test_small_circle_pixel_centres():
    """A circle of diameter 4 centred on a pixel corner covers the 4 x 4 block minus its corners."""
    # centres at offsets +-0.5, +-1.5; radius^2 = 4: corners 1.5^2 + 1.5^2 = 4.5 > 4 out, 1.5^2 + 0.5^2 = 2.5 in
    m = rasterise(dict(label=1, size=4.0, cx=2.0, cy=2.0, angle=0.0), 5, 5)
    expected = np.zeros((5, 5), bool)
    expected[:4, :4] = True
    expected[[0, 0, 3, 3], [0, 3, 0, 3]] = False
    np.testing.assert_array_equal(m, expected)


def test_pixel_centres_on_the_circle_are_outside():
    """Masks keep pixels whose centre is strictly inside: the 12 centres exactly on a circle of radius 5 are out."""
    # centre (5.5, 5.5) is a pixel centre, so pixel centres sit at integer offsets (dx, dy) and r^2 = 25 is exact.
    # Lattice points with dx^2 + dy^2 <= 25: 11 + 2*9 + 2*9 + 2*9 + 2*7 + 2*1 = 81 (dx = 0, +-1, ..., +-5); 12 of
    # them lie on the circle, (+-5, 0), (0, +-5), (+-3, +-4), (+-4, +-3), leaving 69 strictly inside.
    m = rasterise(dict(label=1, size=10.0, cx=5.5, cy=5.5, angle=0.0), 11, 11)
    assert m.sum() == 69
    assert not m[5, 10] and not m[0, 5] and not m[9, 8] and not m[8, 9]  # offsets (5, 0), (0, -5), (3, 4), (4, 3)
    assert m[5, 9] and m[5, 1] and m[8, 8] and m[9, 7]  # (4, 0), (-4, 0), (3, 3), (2, 4): 16, 16, 18, 20 < 25


def test_axis_aligned_square():
    """A square with diagonal 4*sqrt(2) and angle 0 is exactly the 4 x 4 block of pixels around its centre."""
    # side = diagonal / sqrt(2) = 4, so |offset| < 2 holds for the centres +-0.5, +-1.5 only
    m = rasterise(dict(label=2, size=4 * math.sqrt(2), cx=3.0, cy=2.0, angle=0.0), 5, 6)
    expected = np.zeros((5, 6), bool)
    expected[0:4, 1:5] = True
    np.testing.assert_array_equal(m, expected)


@pytest.mark.parametrize(
    "label, area",
    [
        (1, math.pi * 50**2),  # circle of radius 50: 7854
        (2, 100**2 / 2),  # square with diagonal 100: side 70.7, area 5000
        (3, 3 * math.sqrt(3) / 4 * 50**2),  # equilateral triangle inscribed in radius 50: 3248
        (4, 5 * 50 * 0.45 * 50 * math.sin(math.pi / 5)),  # 10 triangles 1/2 * R * r * sin(36 deg): 3306
    ],
)
def test_shape_areas_match_geometry(label, area):
    """Rasterised areas of size-100 shapes, at an arbitrary angle, are within 2% of the analytic areas."""
    m = rasterise(dict(label=label, size=100.0, cx=60.3, cy=59.7, angle=0.7), 120, 120)
    assert abs(m.sum() - area) <= 0.02 * area


def test_tight_boxes_hand_worked():
    """Tight boxes are (min col, min row, max col + 1, max row + 1); an empty mask gives zeros."""
    m = np.zeros((2, 5, 6), bool)
    m[0, 1, 2] = m[0, 3, 4] = True  # rows 1..3, columns 2..4
    np.testing.assert_array_equal(tight_boxes(m), [[2, 1, 5, 4], [0, 0, 0, 0]])


def test_visible_fraction_hand_worked():
    """visible_fraction = visible / full: 6 of 8 pixels visible is 0.75; an empty full mask gives 0."""
    full = np.zeros((2, 4, 4), bool)
    full[0, :2, :] = True  # 8 pixels
    vis = full.copy()
    vis[0, 0, :2] = False  # 6 visible
    s = Scene(np.zeros((4, 4, 3), np.uint8), vis, full, np.array([1, 2]), np.zeros((2, 4), np.float32))
    np.testing.assert_array_equal(s.visible_fraction, np.float32([0.75, 0.0]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_shape=(8, 320)), "image_shape"),
        (dict(image_shape=(240,)), "image_shape"),
        (dict(size_range=(60, 20)), "size_range"),
        (dict(size_range=(0, 20)), "size_range"),
        (dict(size_range=(10, math.inf)), "size_range"),
        (dict(min_objects=4, max_objects=2), "min_objects"),
        (dict(min_objects=-1), "min_objects"),
        (dict(min_visible_area=0), "min_visible_area"),
    ],
)
def test_bad_arguments(kwargs, match):
    """Bad scene parameters raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        make_scene(0, **kwargs)


def test_bad_seed():
    """The seed must be a non-negative integer or a SeedSequence."""
    with pytest.raises(ValueError, match="seed"):
        make_scene(-1)
    with pytest.raises(TypeError, match="seed"):
        make_scene(1.5)


def _same_scene(a, b):
    return all(np.array_equal(getattr(a, name), getattr(b, name))
               for name in ("image", "masks", "full_masks", "labels", "boxes"))


def test_dataset_is_deterministic_and_independent_of_its_length():
    """Scene i of a data set depends only on the seed and i: the same for 3 or 5 images, another for seed 8."""
    a, b = make_dataset(3, seed=7, image_size=(32, 48)), make_dataset(5, seed=7, image_size=(32, 48))
    assert len(a) == 3 and len(b) == 5
    for i in range(3):
        assert _same_scene(a[i], b[i])
        assert _same_scene(a[i], a[i])  # drawn again on each access, identically
    assert not np.array_equal(a[0].image, make_dataset(1, seed=8, image_size=(32, 48))[0].image)
    assert not np.array_equal(a[0].image, a[1].image)


def test_dataset_scene_is_make_scene_of_a_spawned_seed():
    """Item i is make_scene(SeedSequence(seed).spawn(n)[i]) with the data set's defaults."""
    child = np.random.SeedSequence(4).spawn(2)[1]
    expected = make_scene(child, image_shape=(128, 128), size_range=(DATASET_MIN_SIZE, 256), min_visible_area=16)
    assert _same_scene(make_dataset(2, seed=4)[1], expected)


def test_dataset_sequence_protocol():
    """A SceneSet has a length, negative indices, slices that are SceneSets, IndexError past the end."""
    scenes = make_dataset(4, seed=0, image_size=(24, 24))
    assert isinstance(scenes, SceneSet) and len(scenes) == 4
    assert _same_scene(scenes[-1], scenes[3])
    tail = scenes[2:]
    assert isinstance(tail, SceneSet) and len(tail) == 2 and _same_scene(tail[0], scenes[2])
    assert len(list(scenes)) == 4 and len(make_dataset(0, seed=0)) == 0
    with pytest.raises(IndexError):
        scenes[4]
    with pytest.raises(TypeError):
        scenes[1.0]


def test_dataset_default_size_range_follows_the_image():
    """The default diameters run from DATASET_MIN_SIZE (12) to twice the shorter image side."""
    assert make_dataset(1, seed=0, image_size=(96, 160)).scene_kwargs["size_range"] == (12, 192)
    assert make_dataset(1, seed=0, size_range=(5, 9)).scene_kwargs["size_range"] == (5, 9)


def test_dataset_has_every_coco_size_class():
    """Over 200 images of 128 x 128: 1-6 instances each, all four classes, small, medium and large objects."""
    scenes = list(make_dataset(200, seed=0))
    counts = np.array([len(s.labels) for s in scenes])
    assert counts.max() <= 6 and counts.mean() > 2.5
    assert set(np.concatenate([s.labels for s in scenes])) == {1, 2, 3, 4}
    areas = np.concatenate([s.masks.sum(axis=(1, 2)) for s in scenes])
    small, large = (areas < 32**2).sum(), (areas > 96**2).sum()  # COCO: small < 1024 px, large > 9216 px
    medium = areas.size - small - large
    # about 52%, 42% and 6% (see make_dataset); each class well represented, not just present
    assert small > 0.3 * areas.size and medium > 0.3 * areas.size and large > 0.02 * areas.size
    assert areas.min() >= 16


def test_dataset_of_small_images_has_no_large_objects():
    """A 64 x 64 image (4096 pixels) cannot hold a large object (more than 9216 pixels)."""
    areas = np.concatenate([s.masks.sum(axis=(1, 2)) for s in make_dataset(20, seed=1, image_size=(64, 64))])
    assert areas.size and areas.max() <= 64 * 64


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_images=-1), ValueError, "n_images"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(image_size=(8, 128)), ValueError, "image_size"),
        (dict(image_size=128), TypeError, "image_size"),
        (dict(size_range=(50, 10)), ValueError, "size_range"),
        (dict(min_objects=3, max_objects=2), ValueError, "min_objects"),
        (dict(min_visible_area=0), ValueError, "min_visible_area"),
    ],
)
def test_dataset_bad_arguments(kwargs, error, match):
    """Bad data set parameters fail at once, not at the first access, naming the argument."""
    with pytest.raises(error, match=match):
        make_dataset(**{**dict(n_images=2, seed=0), **kwargs})


def _scene_parts(n=1, h=4, w=5):
    m = np.zeros((n, h, w), bool)
    m[:, 1, 1] = True
    return dict(image=np.zeros((h, w, 3), np.uint8), masks=m, full_masks=m.copy(), labels=np.ones(n, np.int64),
                boxes=np.tile(np.float32([1, 1, 2, 2]), (n, 1)))


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(image=np.zeros((4, 5, 3), np.float32)), TypeError, "image"),
        (dict(image=np.zeros((4, 5), np.uint8)), ValueError, "image"),
        (dict(full_masks=np.zeros((1, 4, 6), bool)), ValueError, "full_masks"),
        (dict(full_masks=np.zeros((1, 4, 5), bool)), ValueError, "masks must be subsets"),
        (dict(labels=np.array([0])), ValueError, "labels"),
        (dict(labels=np.array([1, 2])), ValueError, "labels"),
        (dict(labels=np.array([1.0])), TypeError, "labels"),
        (dict(boxes=np.float32([[2, 1, 1, 2]])), ValueError, "boxes"),
        (dict(boxes=np.zeros((2, 4), np.float32)), ValueError, "boxes"),
    ],
)
def test_scene_rejects_inconsistent_arrays(change, error, match):
    """The Scene constructor checks dtypes, shapes, label signs and masks <= full_masks."""
    with pytest.raises(error, match=match):
        Scene(**{**_scene_parts(), **change})


def _dilate(mask, r):
    """Square dilation by r pixels without wrap-around."""
    h, w = mask.shape
    padded = np.pad(mask, r)
    out = np.zeros_like(mask)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


@pytest.mark.parametrize("call", [
    lambda: make_scene(0, image_shape=(10**5, 10**5)),
    lambda: make_dataset(2, seed=0, image_size=(2**11, 2**11 + 1)),
])
def test_scenes_beyond_the_pixel_limit_are_refused_before_drawing(call):
    """A huge image used to end in a MemoryError while drawing; it is refused by name first."""
    with pytest.raises(ValueError, match=r"more than MAX_SCENE_PIXELS = 4194304"):
        call()


def test_image_size_limits_are_inclusive():
    """Sides of exactly MIN_IMAGE_SIDE (16) and exactly MAX_SCENE_PIXELS (2**22) pixels are accepted, one less
    (side 15) and one row more (16 more pixels) refused.  make_dataset validates without drawing, so the 2048 x 2048
    set costs nothing here."""
    assert make_scene(0, image_shape=(16, 16), min_objects=0, max_objects=0).image.shape == (16, 16, 3)
    for shape in ((15, 16), (16, 15)):
        with pytest.raises(ValueError, match="image_shape must be at least 16 x 16"):
            make_scene(0, image_shape=shape)
    assert make_dataset(1, seed=0, image_size=(2048, 2048)).scene_kwargs["image_shape"] == (2048, 2048)
    assert make_dataset(1, seed=0, image_size=(16, 2**18)).scene_kwargs["image_shape"] == (16, 2**18)  # 2**22 too
    with pytest.raises(ValueError, match="more than MAX_SCENE_PIXELS"):
        make_dataset(1, seed=0, image_size=(16, 2**18 + 1))  # 2**22 + 16


def test_datasets_beyond_the_image_limit_are_refused():
    """The seeds of every image are spawned at once: their number is bounded."""
    with pytest.raises(ValueError, match=r"n_images must be <= 100000"):
        make_dataset(100_001, seed=0)
