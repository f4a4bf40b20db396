"""COCO-format input and output: round trip, hand-made polygon and RLE inputs, category mapping, bad input."""

import json
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from pycocotools import mask as mask_utils

from fcis_twin.reference._files import read_json
from fcis_twin.reference.coco import (
    ANNOTATION_FILE,
    IMAGE_FOLDER,
    CocoSet,
    load_coco,
    make_data,
    write_coco,
)
from fcis_twin.reference.coco_format import (
    MAX_IMAGE_PIXELS,
    POLYGON_LIMIT,
    RLE_MAX_GROUPS,
    rle_counts,
    rle_string_counts,
)
from fcis_twin.reference.shapes import CLASS_NAMES, MAX_DATASET_IMAGES, Scene, make_dataset


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
    assert run_lengths(mask[0]) == [2, 3, 1, 6] and rle_string_counts("2313", "x") == [2, 3, 1, 6]
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
    assert rle_string_counts(compressed, "x") == run_lengths(mask)
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


def png_header(width, height):
    """An 8-bit RGB PNG that says it is width x height but holds one compressed row: enough for Pillow to open."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1 + 3 * width)))


def test_image_far_larger_than_its_record_is_not_decoded(tmp_path):
    """A file whose size differs from the record's is refused before decoding; a decompression bomb is a ValueError."""
    (tmp_path / "a.png").write_bytes(png_header(5000, 5000))  # no pixel data: decoding it would fail differently
    coco_set = load_coco(write_json(tmp_path, tiny_set([])), tmp_path)
    with pytest.raises(ValueError, match=r"'a.png' is 5000 x 5000 \(W x H\), the annotations say 4 x 3"):
        coco_set[0]
    (tmp_path / "a.png").write_bytes(png_header(30000, 30000))  # 9e8 pixels: Pillow refuses to open it
    with pytest.raises(ValueError, match="'a.png' cannot be read"):
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
        # a set load_coco would refuse is not written (a zero-stride view: no memory is used)
        (dict(image=np.broadcast_to(np.uint8(0), (2**13 + 1, 2**13, 3))), r"scenes\[0\].image is 8193 x 8192, more"),
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


# ---- hardening: values that do not fit, files that cannot be read, writes that must not lose data ------------


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d["images"][0].update(id=2**63), r"images\[0\]\['id'\] = 9223372036854775808 is outside the int64"),
        (lambda d: d["categories"][0].update(id=-(2**63) - 1), r"categories\[0\]\['id'\] = .* is outside the int64"),
        (lambda d: d["annotations"].append(_ann(id=2**64)), r"annotations\[0\]\['id'\] = .* is outside the int64"),
        (lambda d: d["annotations"].append(_ann(category_id=2**63)), r"annotations\[0\]\['category_id'\] = .* int64"),
        (lambda d: d["images"][0].update(height=2**63), r"images\[0\]\['height'\] = .* is outside the int64"),
    ],
)
def test_ints_outside_int64_are_rejected_at_load(tmp_path, change, match):
    """Ids, sizes and references beyond int64 are a ValueError naming the record, not an OverflowError later."""
    data = tiny_set([])
    change(data)
    with pytest.raises(ValueError, match=match):
        load_dict(tmp_path, data)


@pytest.mark.parametrize(
    "bbox, match",
    [
        ([0, 0, 1e300, 5], r"annotation id 1: bbox .* does not fit float32"),  # finite, but x + w is inf in float32
        ([1e39, 0, 1, 1], r"annotation id 1: bbox .* does not fit float32"),
        ([-3e38, 0, 1, 1e38], None),  # x + w = -2.9e38 and y + h fit: accepted
        ([0, 0, 10**400, 5], r"annotation id 1: bbox must be \[x, y, w, h\], four finite"),  # no float64 either
    ],
)
def test_boxes_must_fit_float32(tmp_path, bbox, match):
    """A bbox whose x, y, x + w or y + h overflows float32 is rejected at load, naming the annotation."""
    data = tiny_set([_ann(bbox=bbox)])
    if match is None:
        assert np.isfinite(load_dict(tmp_path, data)[0].boxes).all()
        return
    with pytest.raises(ValueError, match=match):
        load_dict(tmp_path, data)


@pytest.mark.parametrize("area", [float("nan"), -1, "5", float("inf")])
def test_area_must_be_a_finite_non_negative_number(tmp_path, area):
    """An ``area`` (read by COCOeval for the area ranges) must be a finite number >= 0 when present."""
    with pytest.raises(ValueError, match="annotation id 1: area must be a finite number >= 0"):
        load_dict(tmp_path, tiny_set([_ann(area=area)]))


def test_absurd_image_size_is_a_limit_error(tmp_path):
    """An image of more than MAX_IMAGE_PIXELS pixels is refused at load, not a MemoryError on access."""
    assert MAX_IMAGE_PIXELS == 2**26
    with pytest.raises(ValueError, match=r"images\[0\] \(id 7\): height x width = 100000 x 100000 .*MAX_IMAGE_PIXELS"):
        load_dict(tmp_path, tiny_set([], height=10**5, width=10**5))
    side = 2**13  # exactly at the limit: accepted (nothing is allocated until an image is read)
    assert len(load_dict(tmp_path, tiny_set([], height=side, width=side))) == 1


def test_json_that_cannot_be_read(tmp_path):
    """Deep nesting, bytes that are not text, and a folder in place of the file are ValueErrors naming the path."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)
    with pytest.raises(ValueError, match=r"annotation_json '.*deep.json' is nested too deeply"):
        load_coco(path, tmp_path)
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match=r"annotation_json '.*deep.json' is not valid JSON"):
        load_coco(path, tmp_path)
    with pytest.raises(ValueError, match=r"annotation_json '.*' is not a file"):
        load_coco(tmp_path, tmp_path)
    with pytest.raises(TypeError, match="annotation_json must be a str or path"):
        load_coco(7, tmp_path)


def test_read_json_names_the_argument(tmp_path):
    """The one JSON reader says which argument and which path failed, and reads valid JSON as json does."""
    path = tmp_path / "x.json"
    with pytest.raises(ValueError, match=r"thing '.*x.json' is not a file"):
        read_json("thing", path)
    path.write_text('{"a": [1, 2.5, null]}')
    assert read_json("thing", path) == {"a": [1, 2.5, None]}
    path.write_text("[1,")
    with pytest.raises(ValueError, match=r"thing '.*x.json' is not valid JSON"):
        read_json("thing", path)


def test_rle_number_of_too_many_characters(tmp_path):
    """A compressed RLE number longer than RLE_MAX_GROUPS characters is refused: pycocotools would overflow."""
    assert RLE_MAX_GROUPS == 12
    counts = "P" * 12 + "<"  # 12 continuation groups of 0, then 12 in the 13th group: 12 << 60 in 64 bits
    coco_set = load_dict(tmp_path, tiny_set([_ann(segmentation=dict(size=[3, 4], counts=counts))]))
    with pytest.raises(ValueError, match="annotation id 1: compressed RLE counts hold a number longer than 12"):
        coco_set[0]
    assert rle_string_counts("P" * 11 + "<", "x") == [12 << 55]  # 12 groups: still read


def test_rle_size_must_be_ints(tmp_path):
    """An RLE size of floats or bools equal to [H, W] is still not [H, W]."""
    for size in ([3.0, 4.0], [True, 4]):
        data = tiny_set([_ann(segmentation=dict(size=size, counts=[12]))], height=1 if size[0] is True else 3)
        with pytest.raises(ValueError, match="RLE size"):
            load_dict(tmp_path, data)


def test_rle_counts_shared_check():
    """rle_counts, used by load_coco and evaluate_coco alike, checks size and counts in every form."""
    assert rle_counts(dict(size=[3, 4], counts="2313"), 3, 4, "x") == [2, 3, 1, 6]
    assert rle_counts(dict(size=[3, 4], counts=b"2313"), 3, 4, "x") == [2, 3, 1, 6]
    assert rle_counts(dict(size=(3, 4), counts=[2, 3, 1, 6]), 3, 4, "x") == [2, 3, 1, 6]
    with pytest.raises(ValueError, match=r"here: RLE counts sum to 1000001, not height \* width = 600"):
        rle_counts(dict(size=[20, 30], counts="1" * 2000), 20, 30, "here")
    with pytest.raises(ValueError, match=r"here: RLE size \[0, 0\] is not the image's"):
        rle_counts(dict(size=[0, 0], counts="02"), 20, 30, "here")
    with pytest.raises(ValueError, match="outside '0'..'o'"):
        rle_counts(dict(size=[3, 4], counts=b"23\xff3"), 3, 4, "here")
    with pytest.raises(ValueError, match="non-negative integers"):
        rle_counts(dict(size=[3, 4], counts=[12, -1, 1]), 3, 4, "here")
    wraps = list(np.array([2**62, 2**62, 2**62, 2**62 + 12], np.int64))  # their int64 sum wraps around to 12
    with pytest.raises(ValueError, match=r"sum to 18446744073709551628, not"):  # summed exactly, as Python ints
        rle_counts(dict(size=[3, 4], counts=wraps), 3, 4, "here")


def test_coco_object_is_a_copy(tmp_path):
    """COCOeval writes into the annotations of the COCO object it evaluates: the set's own records stay as read.

    Polygons that COCOeval turned into RLE with bytes counts once made the set's next access fail.
    """
    from fcis_twin.reference.evaluate import evaluate_coco

    square = [1, 1, 3, 1, 3, 3, 1, 3]
    data = tiny_set([_ann(segmentation=[square], area=4, bbox=[1, 1, 2, 2]),
                     _ann(id=2, segmentation=[], area=0, bbox=[0, 0, 0, 0])])
    coco_set = load_dict(tmp_path, data)
    before = json.dumps(coco_set.dataset)
    metrics = evaluate_coco([], coco_set.coco(), iou_types=["segm"])
    assert metrics["segm"]["AP"] == 0.0
    assert json.dumps(coco_set.dataset) == before
    assert coco_set[0].masks[0].sum() == 4


def listing(folder):
    """Every path under ``folder`` with the bytes of each file."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(Path(folder).rglob("*"))}


def test_make_data_refuses_a_folder_that_holds_something(tmp_path):
    """A target that exists and is not empty is refused unless overwrite=True, and is left untouched."""
    out = tmp_path / "set"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"out_dir '.*set' exists and is not empty; use overwrite=True"):
        make_data(out, 1, 0, image_size=(16, 16))
    assert listing(out) == {"notes.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary folder left
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        make_data(tmp_path / "file", 1, 0, image_size=(16, 16))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert make_data(empty, 1, 0, image_size=(16, 16)) == empty / ANNOTATION_FILE  # an empty folder is fine


def test_overwrite_replaces_the_whole_set(tmp_path):
    """overwrite=True replaces the old folder as a whole: no image of the old set survives beside the new one."""
    out = tmp_path / "set"
    make_data(out, 3, 0, image_size=(16, 16))
    (out / "notes.txt").write_text("old")
    path = make_data(out, 1, 1, image_size=(16, 24), overwrite=True)
    assert sorted(listing(out)) == sorted([ANNOTATION_FILE, IMAGE_FOLDER, f"{IMAGE_FOLDER}/000001.png"])
    assert json.loads(path.read_text())["info"]["n_images"] == 1
    assert load_coco(path, out / IMAGE_FOLDER)[0].image.shape == (16, 24, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_overwrite_never_replaces_the_current_folder(tmp_path, monkeypatch):
    """Replacing the folder the process runs in (or one above it) is refused, overwrite or not."""
    out = tmp_path / "set"
    (out / "sub").mkdir(parents=True)
    for here in (out, out / "sub"):
        monkeypatch.chdir(here)
        with pytest.raises(ValueError, match="holds the current folder"):
            make_data(out, 1, 0, image_size=(16, 16), overwrite=True)
    assert listing(out) == {"sub": None}


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_a_failed_write_leaves_the_target_untouched(tmp_path, error):
    """An exception part way (Ctrl-C included) removes the temporary folder; the old set is as it was."""
    out = tmp_path / "set"
    make_data(out, 2, 0, image_size=(16, 16))
    before = listing(out)

    def scenes():
        yield from make_dataset(2, seed=5, image_size=(16, 16))
        raise error("stop")

    with pytest.raises(error, match="stop"):
        write_coco(scenes(), out, overwrite=True)
    assert listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    with pytest.raises(error, match="stop"):  # a fresh target is not created at all
        write_coco(scenes(), tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=MAX_DATASET_IMAGES + 1), r"n must be <= 100000"),
        (dict(n=-1), "n must be >= 0"),
        (dict(image_size=(10**5, 10**5)), r"image_size 100000 x 100000 .* more than MAX_SCENE_PIXELS"),
        (dict(image_size=(2**11, 2**11 + 1)), "MAX_SCENE_PIXELS"),
        (dict(image_size=(8, 16)), "at least 16 x 16"),
    ],
)
def test_make_data_limits_are_checked_first(tmp_path, kwargs, match):
    """Too many or too large images are refused before anything is drawn or written."""
    args = {**dict(n=1, image_size=(16, 16)), **kwargs}
    with pytest.raises(ValueError, match=match):
        make_data(tmp_path / "set", args["n"], 0, image_size=args["image_size"])
    assert list(tmp_path.iterdir()) == []


def test_write_checks_info_first(tmp_path):
    """An info that JSON cannot hold (or only as the non-standard NaN) is refused before anything is written."""
    for info in (dict(x=float("nan")), dict(x={1, 2})):
        with pytest.raises(ValueError, match="info must be JSON-serialisable"):
            write_coco([], tmp_path / "set", info=info)
    assert list(tmp_path.iterdir()) == []
