"""COCO-format input and output: round trip, hand-made polygon and RLE inputs, category mapping, bad input."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from pycocotools import mask as mask_utils

from fcis_twin.reference.coco import (
    ANNOTATION_FILE,
    IMAGE_FOLDER,
    POLYGON_LIMIT,
    CocoSet,
    _rle_string_counts,
    load_coco,
    make_data,
    write_coco,
)
from fcis_twin.reference.shapes import CLASS_NAMES, Scene, make_dataset


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """200 synthetic scenes of 128 x 128 written as a COCO set, and the scenes themselves."""
    out = tmp_path_factory.mktemp("synthetic")
    scenes = list(make_dataset(200, seed=11))
    return write_coco(scenes, out), scenes


def write_json(folder, data, name="instances.json"):
    path = Path(folder) / name
    path.write_text(json.dumps(data))
    return path


def tiny_set(annotations, categories=None, height=3, width=4):
    """A COCO dict with one image (id 7) of height x width and the given annotations."""
    return dict(images=[dict(id=7, file_name="a.png", height=height, width=width)],
                categories=categories or [dict(id=1, name="thing")], annotations=annotations)


def load_dict(tmp_path, data, **kwargs):
    return load_coco(write_json(tmp_path, data), tmp_path, with_images=False, **kwargs)


def run_lengths(mask):
    """Column-major run lengths of a 2-d mask, background first: the uncompressed COCO RLE, by hand."""
    flat = mask.ravel(order="F").astype(int)
    counts, value, start = [], 0, 0
    for i in range(flat.size + 1):
        if i == flat.size or flat[i] != value:
            counts.append(i - start)
            value, start = 1 - value, i
    return counts


# ---- round trip of the synthetic set -------------------------------------------------------------------------


def test_round_trip_200_images_identical(synthetic):
    """200 scenes through instances.json and PNG come back with identical images, masks, boxes and labels."""
    path, scenes = synthetic
    coco_set = load_coco(path, path.parent / IMAGE_FOLDER)
    assert isinstance(coco_set, CocoSet) and len(coco_set) == 200
    np.testing.assert_array_equal(coco_set.image_ids, np.arange(1, 201))
    assert coco_set.class_names == CLASS_NAMES
    np.testing.assert_array_equal(coco_set.category_ids, [-1, 1, 2, 3, 4])  # category id = label
    assert sum(len(s.labels) for s in scenes) > 400  # about 3 instances per image
    for scene, record in zip(scenes, coco_set, strict=True):
        np.testing.assert_array_equal(record.image, scene.image)
        np.testing.assert_array_equal(record.masks, scene.masks)
        np.testing.assert_array_equal(record.boxes, scene.boxes)
        np.testing.assert_array_equal(record.labels, scene.labels)
        assert record.image.dtype == np.uint8 and record.boxes.dtype == np.float32 and record.labels.dtype == np.int64
        assert record.crowd_masks.shape == (0, 128, 128) and record.crowd_labels.shape == (0,)
        assert record.crowd_boxes.shape == (0, 4) and record.image_shape == (128, 128)


def test_written_json_fields(synthetic):
    """Every annotation has the area (pixel count), bbox (tight, xywh) and RLE that pycocotools reads back."""
    path, scenes = synthetic
    data = json.loads(path.read_text())
    assert data["images"][0] == dict(id=1, file_name="000001.png", height=128, width=128)
    assert [c["id"] for c in data["categories"]] == [1, 2, 3, 4]
    assert [c["name"] for c in data["categories"]] == list(CLASS_NAMES[1:])
    anns = data["annotations"]
    assert [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    masks = np.concatenate([s.masks for s in scenes])  # (total, H, W) in annotation order
    boxes = np.concatenate([s.boxes for s in scenes])
    for ann, mask, (x1, y1, x2, y2) in zip(anns, masks, boxes, strict=True):
        assert ann["iscrowd"] == 0 and ann["area"] == mask.sum()
        assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        rle = dict(size=ann["segmentation"]["size"], counts=ann["segmentation"]["counts"].encode())
        assert mask_utils.area(rle) == mask.sum()
        np.testing.assert_array_equal(mask_utils.toBbox(rle), ann["bbox"])
    # pycocotools' own IoU of the stored RLE with a fresh encoding of the same masks is 1 on the diagonal
    first = [dict(size=a["segmentation"]["size"], counts=a["segmentation"]["counts"].encode()) for a in anns[:5]]
    fresh = mask_utils.encode(np.asfortranarray(masks[:5].transpose(1, 2, 0), dtype=np.uint8))
    np.testing.assert_array_equal(np.diag(mask_utils.iou(first, fresh, [0] * 5)), np.ones(5))


def test_coco_api_is_quiet_and_complete(synthetic, capsys):
    """CocoSet.coco() builds pycocotools' COCO object with every annotation, printing nothing."""
    path, scenes = synthetic
    api = load_coco(path, None, with_images=False).coco()
    assert len(api.getAnnIds()) == sum(len(s.labels) for s in scenes)
    assert api.getCatIds() == [1, 2, 3, 4] and len(api.getImgIds()) == 200
    assert capsys.readouterr().out == ""


def test_make_data_is_deterministic(tmp_path):
    """make_data writes n images, an info record, and the same bytes for the same seed."""
    a = make_data(tmp_path / "a", 3, 5, image_size=(32, 48))
    b = make_data(tmp_path / "b", 3, 5, image_size=(32, 48))
    assert a.name == ANNOTATION_FILE and a.read_bytes() == b.read_bytes()
    data = json.loads(a.read_text())
    assert data["info"]["seed"] == 5 and data["info"]["n_images"] == 3 and data["info"]["image_size"] == [32, 48]
    assert sorted(p.name for p in (tmp_path / "a" / IMAGE_FOLDER).iterdir()) == ["000001.png", "000002.png",
                                                                                "000003.png"]
    first = load_coco(a, tmp_path / "a" / IMAGE_FOLDER)[0]
    np.testing.assert_array_equal(first.masks, make_dataset(3, seed=5, image_size=(32, 48))[0].masks)


def test_write_hand_worked_rle(tmp_path):
    """A 3 x 4 mask is written as runs 2, 3, 1, 6 (column-major) and read back exactly."""
    mask = np.array([[[0, 1, 1, 1],
                      [0, 1, 1, 1],
                      [1, 0, 1, 1]]], bool)
    # column 0 top-down: 0 0 1, column 1: 1 1 0, then 6 ones: runs 2 background, 3 fg, 1 background, 6 fg;
    # compressed, the 4th run is stored as 6 - 3 = 3: characters '2', '3', '1', '3'
    scene = Scene(np.full((3, 4, 3), 9, np.uint8), mask, mask, [2], [[0, 0, 4, 3]])
    path = write_coco([scene], tmp_path, file_pattern="img_{}.png")
    ann = json.loads(path.read_text())["annotations"][0]
    assert ann["segmentation"] == dict(size=[3, 4], counts="2313")
    assert ann["area"] == 9 and ann["bbox"] == [0, 0, 4, 3] and ann["category_id"] == 2
    assert run_lengths(mask[0]) == [2, 3, 1, 6] and _rle_string_counts("2313", "x") == [2, 3, 1, 6]
    record = load_coco(path, tmp_path / IMAGE_FOLDER)[0]
    assert record.file_name == "img_1.png"
    np.testing.assert_array_equal(record.masks, mask)
    np.testing.assert_array_equal(record.image, scene.image)


def test_empty_scene_and_empty_sequence(tmp_path):
    """A scene without instances is an image without annotations; no scenes at all is an empty set."""
    empty = Scene(np.zeros((16, 16, 3), np.uint8), np.zeros((0, 16, 16), bool), np.zeros((0, 16, 16), bool),
                  np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    record = load_coco(write_coco([empty], tmp_path / "one"), tmp_path / "one" / IMAGE_FOLDER)[0]
    assert record.masks.shape == (0, 16, 16) and record.labels.shape == (0,) and record.boxes.shape == (0, 4)
    nothing = load_coco(write_coco([], tmp_path / "none"), tmp_path / "none" / IMAGE_FOLDER)
    assert len(nothing) == 0 and list(nothing) == []


@given(hnp.arrays(bool, st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))))
def test_any_masks_round_trip(masks):
    """Any non-empty masks, compressed by pycocotools and decoded here, come back unchanged."""
    masks[:, 0, 0] = True  # write_coco needs every instance to have a pixel
    n, h, w = masks.shape
    scene = Scene(np.zeros((h, w, 3), np.uint8), masks, masks, np.ones(n, np.int64), np.zeros((n, 4), np.float32))
    with tempfile.TemporaryDirectory() as out:
        record = load_coco(write_coco([scene], out), Path(out) / IMAGE_FOLDER, with_images=False)[0]
    np.testing.assert_array_equal(record.masks, masks)


@given(hnp.arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_uncompressed_and_compressed_rle_agree(mask):
    """A mask given as uncompressed RLE (encoded by hand) and as pycocotools' compressed RLE decodes to itself."""
    h, w = mask.shape
    compressed = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))["counts"].decode()
    assert _rle_string_counts(compressed, "x") == run_lengths(mask)
    anns = [dict(id=1, image_id=7, category_id=1, segmentation=dict(size=[h, w], counts=run_lengths(mask))),
            dict(id=2, image_id=7, category_id=1, segmentation=dict(size=[h, w], counts=compressed))]
    with tempfile.TemporaryDirectory() as folder:
        record = load_dict(Path(folder), tiny_set(anns, height=h, width=w))[0]
    np.testing.assert_array_equal(record.masks, [mask, mask])


# ---- hand-made inputs ----------------------------------------------------------------------------------------


def test_polygons_hand_worked(tmp_path):
    """Polygons: a pixel is in when its centre is inside; several polygons are united; degenerate ones skipped."""
    square = [1, 1, 3, 1, 3, 3, 1, 3]  # [1, 3) x [1, 3): pixels (x, y) in {1, 2} x {1, 2}
    triangle = [0, 0, 4.5, 0, 0, 4.5]  # centres (x + .5) + (y + .5) < 4.5, i.e. x + y <= 3: 1 + 2 + 3 + 4 = 10 px
    anns = [dict(id=1, image_id=7, category_id=1, segmentation=[square]),
            dict(id=2, image_id=7, category_id=1, segmentation=[triangle]),
            dict(id=3, image_id=7, category_id=1, segmentation=[[4, 4, 5, 4, 5, 5, 4, 5], triangle]),
            dict(id=4, image_id=7, category_id=1, segmentation=[[0, 0, 5, 5], []]),  # two points, no points
            dict(id=5, image_id=7, category_id=1, segmentation=[])]
    record = load_dict(tmp_path, tiny_set(anns, height=6, width=6))[0]
    expected = np.zeros((5, 6, 6), bool)
    expected[0, 1:3, 1:3] = True
    y, x = np.mgrid[:6, :6]
    expected[1] = x + y <= 3
    expected[2] = expected[1]
    expected[2, 4, 4] = True  # the unit square [4, 5) x [4, 5) holds the centre of pixel (4, 4)
    np.testing.assert_array_equal(record.masks, expected)
    assert record.masks[1].sum() == 10
    # no bbox given: the tight box of each mask, (0, 0, 0, 0) when empty
    np.testing.assert_array_equal(record.boxes, [[1, 1, 3, 3], [0, 0, 4, 4], [0, 0, 5, 5], [0, 0, 0, 0],
                                                 [0, 0, 0, 0]])


@given(st.integers(-3, 10), st.integers(-3, 10), st.integers(1, 12), st.integers(1, 12))
def test_integer_rectangle_polygon_is_its_pixel_block(x0, y0, width, height):
    """An axis-aligned polygon with integer corners covers exactly the pixels of its half-open box, clipped."""
    x1, y1 = x0 + width, y0 + height
    ann = dict(id=1, image_id=7, category_id=1, segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]])
    with tempfile.TemporaryDirectory() as folder:
        record = load_dict(Path(folder), tiny_set([ann], height=8, width=9))[0]
    expected = np.zeros((8, 9), bool)
    expected[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    np.testing.assert_array_equal(record.masks[0], expected)


def test_uncompressed_rle_and_crowd(tmp_path):
    """An iscrowd uncompressed RLE goes to the crowd arrays; the ordinary instances keep their own."""
    # runs 2, 3, 1, 6 over a 3 x 4 image, column-major: column 0 = 0 0 1, column 1 = 1 1 0, columns 2, 3 = 1
    crowd = dict(id=1, image_id=7, category_id=3, iscrowd=1, bbox=[0, 0, 4, 3],
                 segmentation=dict(size=[3, 4], counts=[2, 3, 1, 6]))
    plain = dict(id=2, image_id=7, category_id=1, iscrowd=0, bbox=[0.5, 1.25, 2, 1.5],
                 segmentation=dict(size=[3, 4], counts=[12]))  # all background
    record = load_dict(tmp_path, tiny_set([crowd, plain], [dict(id=1, name="a"), dict(id=3, name="b")]))[0]
    np.testing.assert_array_equal(record.crowd_masks[0], [[0, 1, 1, 1], [0, 1, 1, 1], [1, 0, 1, 1]])
    np.testing.assert_array_equal(record.crowd_labels, [2])  # category 3 is the second category: label 2
    np.testing.assert_array_equal(record.crowd_boxes, [[0, 0, 4, 3]])
    assert record.masks.shape == (1, 3, 4) and not record.masks.any()
    np.testing.assert_array_equal(record.labels, [1])
    # x2 = 0.5 + 2 = 2.5, y2 = 1.25 + 1.5 = 2.75: half-open, no +1
    np.testing.assert_array_equal(record.boxes, np.float32([[0.5, 1.25, 2.5, 2.75]]))


def test_real_coco_box_to_float32(tmp_path):
    """A fractional COCO box converts as (x, y, x + w, y + h) in float64, rounded once to float32."""
    ann = dict(id=1, image_id=7, category_id=1, bbox=[473.07, 395.93, 38.65, 28.67], segmentation=[])
    record = load_dict(tmp_path, tiny_set([ann], height=480, width=640))[0]
    np.testing.assert_array_equal(record.boxes, np.float32([[473.07, 395.93, 473.07 + 38.65, 395.93 + 28.67]]))


def test_category_mapping_both_ways(tmp_path):
    """Non-contiguous COCO ids 90, 1, 3 (in any order) map to labels 3, 1, 2 and back."""
    cats = [dict(id=90, name="toothbrush"), dict(id=1, name="person"), dict(id=3, name="car")]
    anns = [dict(id=10 + i, image_id=7, category_id=c, segmentation=[]) for i, c in enumerate([3, 90, 1, 90])]
    coco_set = load_dict(tmp_path, tiny_set(anns, cats))
    assert coco_set.class_names == ("background", "person", "car", "toothbrush")  # by ascending id
    np.testing.assert_array_equal(coco_set.category_ids, [-1, 1, 3, 90])
    assert coco_set.category_labels == {1: 1, 3: 2, 90: 3}
    record = coco_set[0]
    np.testing.assert_array_equal(record.labels, [2, 3, 1, 3])
    np.testing.assert_array_equal(coco_set.category_ids[record.labels], [3, 90, 1, 90])


@given(st.sets(st.integers(0, 10**6), min_size=1, max_size=20), st.randoms(use_true_random=False))
def test_category_mapping_is_a_bijection(ids, rnd):
    """For any distinct category ids in any order, labels are 1..C-1 by ascending id and the maps invert."""
    ids = list(ids)
    rnd.shuffle(ids)
    data = tiny_set([], [dict(id=i, name=f"c{i}") for i in ids])
    with tempfile.TemporaryDirectory() as folder:
        coco_set = load_dict(Path(folder), data)
    assert list(coco_set.category_ids[1:]) == sorted(ids)
    for cat_id in ids:
        label = coco_set.category_labels[cat_id]
        assert coco_set.category_ids[label] == cat_id and coco_set.class_names[label] == f"c{cat_id}"


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_images_become_rgb(tmp_path, mode):
    """Grayscale, RGBA and palette images load as (H, W, 3) uint8; a gray value fills all three channels."""
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, mode="L").convert(mode).save(tmp_path / "a.png")
    image = load_coco(write_json(tmp_path, tiny_set([])), tmp_path)[0].image
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.repeat(gray[:, :, None], 3, axis=2))


def test_jpeg_grayscale(tmp_path):
    """A grayscale JPEG, as some of COCO's are, loads with three equal channels."""
    Image.fromarray(np.full((3, 4), 128, np.uint8)).save(tmp_path / "a.jpg")
    data = tiny_set([])
    data["images"][0]["file_name"] = "a.jpg"
    image = load_coco(write_json(tmp_path, data), tmp_path)[0].image
    assert image.shape == (3, 4, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_lazy_sequence_indexing(synthetic):
    """CocoSet indexes like a sequence: negative indices work, out of range is IndexError, slices are refused."""
    path, scenes = synthetic
    coco_set = load_coco(path, path.parent / IMAGE_FOLDER)
    assert coco_set[-1].image_id == 200 and coco_set[-200].image_id == 1
    with pytest.raises(IndexError):
        coco_set[200]
    with pytest.raises(TypeError):
        coco_set[0:2]
    assert coco_set[-1].image is not coco_set[-1].image  # decoded again on each access, never cached


def test_to_scene(synthetic):
    """A record becomes a Scene for the oracle: same arrays, visible masks standing in for the full ones."""
    path, scenes = synthetic
    scene = load_coco(path, path.parent / IMAGE_FOLDER)[3].to_scene()
    assert isinstance(scene, Scene)
    for name in ("image", "masks", "labels", "boxes"):
        np.testing.assert_array_equal(getattr(scene, name), getattr(scenes[3], name))
    np.testing.assert_array_equal(scene.full_masks, scene.masks)
    with pytest.raises(ValueError, match="with_images=True"):
        load_coco(path, None, with_images=False)[3].to_scene()


def test_images_without_annotations_and_missing_annotations_key(tmp_path):
    """An image-info file without 'annotations' loads; its images have no instances."""
    data = tiny_set([])
    del data["annotations"]
    record = load_dict(tmp_path, data)[0]
    assert record.masks.shape == (0, 3, 4) and record.image is None and record.image_id == 7


# ---- bad input -----------------------------------------------------------------------------------------------


def test_missing_files(tmp_path):
    """A missing annotation file, image folder or image file is a ValueError naming it."""
    with pytest.raises(ValueError, match="annotation_json"):
        load_coco(tmp_path / "nope.json", tmp_path)
    path = write_json(tmp_path, tiny_set([]))
    with pytest.raises(ValueError, match="image_dir"):
        load_coco(path, tmp_path / "no_folder")
    with pytest.raises(ValueError, match="image_dir"):
        load_coco(path, None)
    with pytest.raises(ValueError, match="'a.png'.*missing"):
        load_coco(path, tmp_path)


def test_unreadable_or_wrong_size_image(tmp_path):
    """An image that Pillow cannot read, or of another size than the annotations say, fails on access."""
    path = write_json(tmp_path, tiny_set([]))
    (tmp_path / "a.png").write_bytes(b"not a png")
    coco_set = load_coco(path, tmp_path)
    with pytest.raises(ValueError, match="cannot be read"):
        coco_set[0]
    Image.fromarray(np.zeros((4, 3, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="3 x 4 .W x H., the annotations say 4 x 3"):
        coco_set[0]


def test_not_json(tmp_path):
    """Text that is not JSON, and JSON that is not an object, are rejected."""
    (tmp_path / "bad.json").write_text("{'images': ")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_coco(tmp_path / "bad.json", tmp_path)
    with pytest.raises(ValueError, match="JSON object"):
        load_dict(tmp_path, [1, 2])


def _ann(**change):
    return {**dict(id=1, image_id=7, category_id=1, segmentation=[]), **change}


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.pop("images"), "no 'images'"),
        (lambda d: d.pop("categories"), "no 'categories'"),
        (lambda d: d.update(annotations={}), "'annotations' must be a list"),
        (lambda d: d["images"].append(3), r"images\[1\] must be an object"),
        (lambda d: d["images"][0].pop("height"), r"images\[0\] has no 'height'"),
        (lambda d: d["images"][0].update(width="4"), r"images\[0\]\['width'\] has the wrong type"),
        (lambda d: d["images"][0].update(id=True), r"images\[0\]\['id'\] has the wrong type"),
        (lambda d: d["images"][0].update(height=0), "height and width must be >= 1"),
        (lambda d: d["images"].append(dict(d["images"][0])), "id 7 is used twice"),
        (lambda d: d["categories"].append(dict(id=1, name="again")), "id 1 is used twice"),
        (lambda d: d["annotations"].extend([_ann(), _ann()]), "id 1 is used twice"),
        (lambda d: d["annotations"].append(_ann(image_id=8)), "image_id 8 is not in images"),
        (lambda d: d["annotations"].append(_ann(category_id=2)), "category_id 2 is not in categories"),
        (lambda d: d["annotations"].append(_ann(segmentation="x")), r"\['segmentation'\] has the wrong type"),
        (lambda d: d["annotations"].append(_ann(iscrowd=2)), "iscrowd must be 0 or 1"),
        (lambda d: d["annotations"].append(_ann(bbox=[0, 0, -1, 2])), "bbox must be"),
        (lambda d: d["annotations"].append(_ann(bbox=[0, 0, 1])), "bbox must be"),
        (lambda d: d["annotations"].append(_ann(segmentation=[[1, 2, 3, 4, 5, 6], 7])), "list of lists"),
        (lambda d: d["annotations"].append(_ann(segmentation=dict(size=[3, 4]))), "needs 'counts' and 'size'"),
        (lambda d: d["annotations"].append(_ann(segmentation=dict(size=[4, 3], counts=[12]))), "RLE size"),
        (lambda d: d["annotations"].append(_ann(segmentation=dict(size=[3, 4], counts=12))), "RLE counts must be"),
    ],
)
def test_malformed_structure(tmp_path, change, match):
    """Each structural defect of the annotation file is a ValueError saying what and where, at load time."""
    data = tiny_set([])
    change(data)
    with pytest.raises(ValueError, match=match):
        load_dict(tmp_path, data)


@pytest.mark.parametrize(
    "segmentation, match",
    [
        ([[0, 0, 2, 0, 2]], "even number of coordinates"),
        ([[0, 0, 2, 0, 2, float("nan")]], "even number of coordinates"),
        ([[0, 0, POLYGON_LIMIT * 2, 0, 2, 2]], "even number of coordinates"),
        ([[0, 0, "2", 0, 2, 2]], "even number of coordinates"),
        (dict(size=[3, 4], counts=[2, 3, 1, 5]), "sum to 11, not height . width = 12"),
        (dict(size=[3, 4], counts=[2, -3, 13]), "non-negative integers"),
        (dict(size=[3, 4], counts=[2.0, 10]), "non-negative integers"),
        (dict(size=[3, 4], counts="2312"), "sum to 11"),  # runs 2, 3, 1 and 2 + 3 (the run two before) = 5
        (dict(size=[3, 4], counts="2 13"), "outside '0'..'o'"),
        (dict(size=[3, 4], counts="23P"), "middle of a number"),  # 'P' = 48 + 32: a continuation bit, then nothing
        (dict(size=[3, 4], counts="O"), "negative run"),  # 'O' = 48 + 31: sign bit 0x10 set, 15 - 32 = -17
    ],
)
def test_malformed_segmentation_on_access(tmp_path, segmentation, match):
    """Bad polygon coordinates and RLE counts are ValueErrors when the image is read, naming the annotation."""
    coco_set = load_dict(tmp_path, tiny_set([_ann(id=5, segmentation=segmentation)]))
    with pytest.raises(ValueError, match=f"annotation id 5: .*{match}"):
        coco_set[0]


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(image=np.zeros((3, 4, 3), np.float32)), r"scenes\[0\].image"),
        (dict(labels=np.array([5])), r"scenes\[0\].labels must be integers in \[1, 4\]"),
        (dict(masks=np.zeros((1, 3, 4), bool)), "at least one pixel"),
        (dict(masks=np.ones((1, 3, 5), bool)), "do not match the image"),
    ],
)
def test_write_rejects_bad_scenes(tmp_path, change, match):
    """write_coco checks each scene's image, masks and labels and names the scene."""
    m = np.ones((1, 3, 4), bool)
    scene = dict(image=np.zeros((3, 4, 3), np.uint8), masks=m, labels=np.array([1]))
    scene.update(change)
    with pytest.raises(ValueError, match=match):
        write_coco([type("S", (), scene)], tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(file_pattern="{:06d}.jpg"), "file_pattern must be a str ending in .png"),
        (dict(file_pattern="same.png"), "its own file name"),
        (dict(file_pattern="{}/{}.png"), "cannot be formatted"),
        (dict(file_pattern="{name}.png"), "cannot be formatted"),
        (dict(file_pattern="sub/{}.png"), "its own file name in one folder"),
        (dict(class_names=("background",)), "class_names"),
        (dict(class_names="background"), "class_names"),
    ],
)
def test_write_rejects_bad_arguments(tmp_path, kwargs, match):
    """Bad file patterns and class names raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        write_coco([], tmp_path, **kwargs)
