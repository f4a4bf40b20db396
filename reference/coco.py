r"""COCO-format instance sets: write synthetic scenes as one, read any one back.

A set on disk is an annotation file (``instances.json`` when written here) and a folder of images.  Masks travel
as run-length encodings (RLE) through ``pycocotools.mask``: column-major runs that alternate background and
foreground, starting with background.  Boxes are COCO's ``[x, y, w, h]`` in continuous pixel coordinates, which
are our half-open boxes: ``(x1, y1, x2, y2) = (x, y, x + w, y + h)``.

Labels are contiguous: the categories sorted by COCO id get labels ``1 .. C - 1``, label 0 is background.  The
synthetic set writes category id = label, so the mapping is the identity there; for COCO's 80 categories (ids 1 to
90 with gaps) it is not.  ``CocoSet.category_ids[label]`` gives the COCO id and ``CocoSet.category_labels[id]``
the label.
"""

import contextlib
import io
import json
import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ._checks import as_array
from .boxes import tight_boxes
from .shapes import CLASS_NAMES, Scene, make_dataset

#: File name of the annotations that :func:`write_coco` writes.
ANNOTATION_FILE = "instances.json"
#: Folder, beside the annotations, that :func:`write_coco` writes the images into.
IMAGE_FOLDER = "images"
#: Largest accepted polygon coordinate: pycocotools walks each edge in steps of a fifth of a pixel, in int.
POLYGON_LIMIT = 2.0**16


def write_coco(scenes, out_dir, *, class_names=CLASS_NAMES, file_pattern="{:06d}.png", info=None):
    """Write scenes as a COCO-format instance set: ``out_dir/images/*.png`` and ``out_dir/instances.json``.

    Parameters
    ----------
    scenes : iterable of Scene
        Anything with ``image`` ((H, W, 3) uint8, RGB), ``masks`` ((n, H, W) bool, none empty) and ``labels``
        ((n,) ints in ``1 .. C - 1``), e.g. a :class:`fcis_twin.reference.shapes.SceneSet`.
    out_dir : str or path
        Created if missing; files of the same names are overwritten.
    class_names : sequence of C str
        ``class_names[0]`` is background and gets no category; label ``c`` becomes category id ``c``.
    file_pattern : str
        Image file name, formatted with the image id; must end in ``.png``.
    info : dict, optional
        Stored as the JSON's ``"info"`` (it must be JSON-serialisable).

    Returns
    -------
    path : pathlib.Path
        ``out_dir/instances.json``.

    Notes
    -----
    Image ids and annotation ids count from 1 in the order given (COCOeval treats id 0 as "no match").  Each
    annotation's ``segmentation`` is the compressed RLE of its visible mask, ``area`` its pixel count, ``bbox``
    its tight box as ``[x1, y1, x2 - x1, y2 - y1]`` and ``iscrowd`` 0.

    Examples
    --------
    >>> import json, tempfile
    >>> from fcis_twin.reference.shapes import Scene
    >>> mask = np.array([[[0, 1, 1, 1],
    ...                   [0, 1, 1, 1],
    ...                   [1, 0, 1, 1]]], bool)
    >>> scene = Scene(np.zeros((3, 4, 3), np.uint8), mask, mask, [1], [[0, 0, 4, 3]])
    >>> with tempfile.TemporaryDirectory() as out:
    ...     ann = json.loads(write_coco([scene], out).read_text())["annotations"][0]
    >>> # column-major runs 2, 3, 1, 6; from the fourth on a run is stored as the difference to the run two
    >>> # before (6 - 3 = 3), each as the character chr(48 + run)
    >>> ann["segmentation"]["counts"], ann["area"], ann["bbox"]
    ('2313', 9, [0.0, 0.0, 4.0, 3.0])
    """
    class_names = _class_names(class_names)
    _check_file_pattern(file_pattern)
    out_dir = Path(out_dir)
    (out_dir / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    categories = [dict(id=c, name=name, supercategory="shape") for c, name in enumerate(class_names) if c > 0]
    images, annotations = [], []
    for image_id, scene in enumerate(scenes, start=1):
        image, masks, labels = _scene_arrays(scene, image_id - 1, len(class_names))
        h, w = image.shape[:2]
        file_name = file_pattern.format(image_id)
        Image.fromarray(image).save(out_dir / IMAGE_FOLDER / file_name, format="PNG")
        images.append(dict(id=image_id, file_name=file_name, height=h, width=w))
        for mask, label, (x1, y1, x2, y2) in zip(masks, labels, tight_boxes(masks), strict=True):
            rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))  # RLE runs are column-major
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=int(label),
                segmentation=dict(size=[h, w], counts=rle["counts"].decode("ascii")),
                area=int(mask.sum()), bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)], iscrowd=0))
    dataset = dict(images=images, annotations=annotations, categories=categories)
    if info is not None:
        dataset = dict(info=info, **dataset)
    path = out_dir / ANNOTATION_FILE
    path.write_text(json.dumps(dataset))
    return path


def make_data(out_dir, n, seed, *, image_size=(128, 128)):
    """``fcis data make``: write :func:`fcis_twin.reference.shapes.make_dataset` ``(n, seed=seed)`` to ``out_dir``.

    Returns
    -------
    path : pathlib.Path
        ``out_dir/instances.json``; the images are in ``out_dir/images``.
    """
    scenes = make_dataset(n, seed=seed, image_size=image_size)
    info = dict(description="fcis-twin synthetic shapes (fcis_twin.reference.shapes.make_dataset)",
                n_images=len(scenes), seed=int(seed), image_size=list(scenes.scene_kwargs["image_shape"]))
    return write_coco(scenes, out_dir, info=info)


@dataclass(frozen=True, eq=False)
class CocoImage:
    """One image of a COCO-format set and its instances, ``n`` ordinary ones and ``m`` crowd regions.

    The attributes ``image``, ``masks``, ``labels`` and ``boxes`` are those of a
    :class:`fcis_twin.reference.shapes.Scene`, so the oracle and the evaluation take either.

    Attributes
    ----------
    image_id : int
    file_name : str
    image : (H, W, 3) uint8 ndarray or None
        RGB (grayscale expanded to three channels); None when the set was loaded without images.
    masks : (n, H, W) bool ndarray
        In the order of the annotation file.  May be empty (a polygon of no area).
    labels : (n,) int64 ndarray
        Contiguous labels in ``1 .. C - 1``.
    boxes : (n, 4) float32 ndarray
        ``(x1, y1, x2, y2)``, half-open, from COCO's ``bbox``: ``(x, y, x + w, y + h)``.
    crowd_masks, crowd_labels, crowd_boxes
        The same for the ``iscrowd`` annotations: (m, H, W), (m,), (m, 4).
    """

    image_id: int
    file_name: str
    image: np.ndarray | None
    masks: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    crowd_masks: np.ndarray
    crowd_labels: np.ndarray
    crowd_boxes: np.ndarray

    @property
    def image_shape(self):
        """(H, W)."""
        return self.masks.shape[1:]

    def to_scene(self):
        """The ordinary instances as a :class:`fcis_twin.reference.shapes.Scene` (for the oracle), crowds left out.

        COCO keeps no occluded parts, so the visible masks stand in for ``full_masks`` as well.
        """
        if self.image is None:
            raise ValueError("to_scene needs the image: load the set with with_images=True")
        return Scene(self.image, self.masks, self.masks, self.labels, self.boxes)


class CocoSet(Sequence):
    """A COCO-format instance set, read lazily: ``coco_set[i]`` decodes image ``i`` and its masks on each access.

    Made by :func:`load_coco`.  The annotation file is parsed and checked once; images and masks are never
    cached, so a set as large as COCO val2017 (5000 images) costs the memory of its JSON only.

    Attributes
    ----------
    image_ids : (N,) int64 ndarray
        COCO image ids in the order of the file's ``"images"``, which is the order of the sequence.
    class_names : tuple of C str
        ``"background"`` and then the category names by ascending COCO id.
    category_ids : (C,) int64 ndarray
        COCO category id of each label; ``category_ids[0] = -1`` (background has none).
    category_labels : dict of int to int
        The inverse: label of each COCO category id.
    dataset : dict
        The parsed annotation file.
    """

    def __init__(self, dataset, images, annotations, category_ids, class_names, image_dir, with_images):
        self.dataset = dataset
        self._images = images  # list of image dicts
        self._annotations = annotations  # one list of annotation dicts per image
        self.image_ids = np.array([img["id"] for img in images], np.int64)
        self.category_ids = np.array([-1, *category_ids], np.int64)
        self.category_labels = {cat_id: label for label, cat_id in enumerate(category_ids, start=1)}
        self.class_names = tuple(class_names)
        self.image_dir = None if image_dir is None else Path(image_dir)
        self.with_images = with_images

    def __len__(self):
        return len(self._images)

    def __getitem__(self, index):
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"image index {index} is out of range for {len(self)} images")
        img, anns = self._images[index], self._annotations[index]
        h, w = img["height"], img["width"]
        image = _read_image(self.image_dir / img["file_name"], h, w) if self.with_images else None
        parts = []
        for crowd in (False, True):
            chosen = [a for a in anns if bool(a.get("iscrowd", 0)) == crowd]
            masks = np.zeros((len(chosen), h, w), bool)
            for j, ann in enumerate(chosen):
                masks[j] = _decode_segmentation(ann["segmentation"], h, w, _where(ann))
            labels = np.array([self.category_labels[a["category_id"]] for a in chosen], np.int64)
            boxes = np.array([a["bbox"] if "bbox" in a else _coco_box(m)
                              for a, m in zip(chosen, masks, strict=True)], np.float64)
            boxes = boxes.reshape(-1, 4)  # (k, 4) as (x, y, w, h)
            boxes[:, 2:] += boxes[:, :2]  # (x, y, x + w, y + h)
            parts += [masks, labels, boxes.astype(np.float32)]
        return CocoImage(int(img["id"]), img["file_name"], image, *parts)

    def coco(self):
        """The same set as a ``pycocotools.coco.COCO`` object (ground truth for ``COCOeval``), built quietly."""
        from pycocotools.coco import COCO

        api = COCO()
        api.dataset = self.dataset
        with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints its progress
            api.createIndex()
        return api


def load_coco(annotation_json, image_dir, *, with_images=True):
    """Read a COCO-format instance set: the synthetic one of :func:`write_coco` or a real one such as val2017.

    Parameters
    ----------
    annotation_json : str or path
        A COCO instances file: ``"images"`` (id, file_name, height, width), ``"categories"`` (id, name) and
        ``"annotations"`` (id, image_id, category_id, segmentation, optional bbox and iscrowd).  Segmentations may
        be polygons, uncompressed RLE or compressed RLE.
    image_dir : str or path
        Folder holding every image's ``file_name``; not read when ``with_images`` is False.
    with_images : bool
        Load the images (PNG, JPEG, anything Pillow reads) on access, or leave ``CocoImage.image`` None.

    Returns
    -------
    coco_set : CocoSet
        A sequence of :class:`CocoImage`, decoded on access.

    Raises
    ------
    ValueError
        A missing file or folder, JSON that is not valid, or a structure that is not COCO's (a missing key, a
        duplicate or unknown id, a segmentation of the wrong form or size), naming what is wrong and where.

    Notes
    -----
    The structure (keys, types, ids, references, RLE sizes) and the presence of every image file are checked
    here; the contents of polygons and RLE counts when an image is accessed.  ``iscrowd`` annotations go to the
    ``crowd_*`` arrays, apart from the instances.  Polygons with fewer than three points enclose nothing and
    are skipped; a missing ``bbox`` is the tight box of the mask.

    Examples
    --------
    >>> import json, tempfile
    >>> data = dict(images=[dict(id=7, file_name="a.png", height=3, width=4)],
    ...             categories=[dict(id=90, name="toothbrush")],
    ...             annotations=[dict(id=1, image_id=7, category_id=90, bbox=[1, 0, 2, 2],
    ...                               segmentation=[[1, 0, 3, 0, 3, 2, 1, 2]])])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "instances.json"
    ...     _ = path.write_text(json.dumps(data))
    ...     coco_set = load_coco(path, None, with_images=False)
    >>> record = coco_set[0]
    >>> record.masks[0].astype(int)  # the rectangle [1, 3) x [0, 2): the pixels whose centre is inside it
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    >>> record.labels, record.boxes, coco_set.category_ids  # category 90 is label 1
    (array([1]), array([[1., 0., 3., 2.]], dtype=float32), array([-1, 90]))
    """
    annotation_json = Path(annotation_json)
    if not annotation_json.is_file():
        raise ValueError(f"annotation_json {str(annotation_json)!r} is not a file")
    try:
        dataset = json.loads(annotation_json.read_text())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"annotation_json {str(annotation_json)!r} is not valid JSON: {exc}") from None
    if not isinstance(dataset, dict):
        raise ValueError(f"annotation_json must hold a JSON object, got {type(dataset).__name__}")
    images = _records(dataset, "images", dict(id=int, file_name=str, height=int, width=int))
    categories = _records(dataset, "categories", dict(id=int, name=str))
    annotations = _records(dataset, "annotations", dict(id=int, image_id=int, category_id=int,
                                                        segmentation=(list, dict)), required=False)
    image_index = _unique_ids(images, "images")
    category_ids = sorted(_unique_ids(categories, "categories"))
    known_categories = set(category_ids)
    _unique_ids(annotations, "annotations")
    for i, img in enumerate(images):
        if img["height"] < 1 or img["width"] < 1:
            raise ValueError(f"images[{i}] (id {img['id']}): height and width must be >= 1")
    per_image = [[] for _ in images]
    for ann in annotations:
        where = _where(ann)
        if ann["image_id"] not in image_index:
            raise ValueError(f"{where}: image_id {ann['image_id']} is not in images")
        if ann["category_id"] not in known_categories:
            raise ValueError(f"{where}: category_id {ann['category_id']} is not in categories")
        img = images[image_index[ann["image_id"]]]
        _check_annotation(ann, img["height"], img["width"], where)
        per_image[image_index[ann["image_id"]]].append(ann)
    if with_images:
        if image_dir is None or not Path(image_dir).is_dir():
            raise ValueError(f"image_dir {str(image_dir)!r} is not a folder")
        for img in images:
            if not (Path(image_dir) / img["file_name"]).is_file():
                raise ValueError(f"image file {img['file_name']!r} (image id {img['id']}) is missing from image_dir")
    by_id = {cat["id"]: cat["name"] for cat in categories}
    class_names = ["background", *(by_id[c] for c in category_ids)]
    return CocoSet(dataset, images, per_image, category_ids, class_names, image_dir, with_images)


def _records(dataset, key, fields, required=True):
    """``dataset[key]``: a list of dicts, each with ``fields`` (name -> type) of those types."""
    if key not in dataset:
        if required:
            raise ValueError(f"annotation_json has no {key!r} list")
        return []
    records = dataset[key]
    if not isinstance(records, list):
        raise ValueError(f"annotation_json's {key!r} must be a list, got {type(records).__name__}")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"{key}[{i}] must be an object, got {type(rec).__name__}")
        for name, kind in fields.items():
            if name not in rec:
                raise ValueError(f"{key}[{i}] has no {name!r}")
            value = rec[name]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"{key}[{i}][{name!r}] has the wrong type: {type(value).__name__}")
    return records


def _unique_ids(records, key):
    """{id: position}; duplicate ids are an error."""
    index = {}
    for i, rec in enumerate(records):
        if rec["id"] in index:
            raise ValueError(f"{key}[{i}]: id {rec['id']} is used twice")
        index[rec["id"]] = i
    return index


def _where(ann):
    return f"annotation id {ann['id']}"


def _check_annotation(ann, h, w, where):
    """Structure of one annotation: iscrowd, bbox, and the form (not the contents) of its segmentation."""
    if ann.get("iscrowd", 0) not in (0, 1):
        raise ValueError(f"{where}: iscrowd must be 0 or 1, got {ann['iscrowd']!r}")
    if "bbox" in ann:
        box = ann["bbox"]
        if (not isinstance(box, list) or len(box) != 4 or not all(_is_real(v) and math.isfinite(v) for v in box)
                or box[2] < 0 or box[3] < 0):
            raise ValueError(f"{where}: bbox must be [x, y, w, h], four finite numbers with w, h >= 0, got {box!r}")
    seg = ann["segmentation"]
    if isinstance(seg, list):
        if not all(isinstance(p, list) for p in seg):
            raise ValueError(f"{where}: a polygon segmentation must be a list of lists of coordinates")
        return
    if "counts" not in seg or "size" not in seg:
        raise ValueError(f"{where}: an RLE segmentation needs 'counts' and 'size'")
    if seg["size"] != [h, w]:
        raise ValueError(f"{where}: RLE size {seg['size']!r} is not the image's [height, width] = {[h, w]}")
    if not isinstance(seg["counts"], (str, list)):
        raise ValueError(f"{where}: RLE counts must be a str (compressed) or a list (uncompressed)")


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _decode_segmentation(seg, h, w, where):
    """(H, W) bool mask of a polygon, uncompressed-RLE or compressed-RLE segmentation."""
    if isinstance(seg, list):  # polygons [[x0, y0, x1, y1, ...], ...], their union
        polygons = []
        for poly in seg:
            if not all(_is_real(v) and abs(v) <= POLYGON_LIMIT for v in poly) or len(poly) % 2:
                raise ValueError(f"{where}: a polygon must be an even number of coordinates in "
                                 f"[-{POLYGON_LIMIT:g}, {POLYGON_LIMIT:g}]")
            if len(poly) >= 6:  # pycocotools would take 4 numbers for a box; fewer than 3 points enclose nothing
                polygons.append([float(v) for v in poly])
        if not polygons:
            return np.zeros((h, w), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))  # pycocotools rasterises polygons
        counts = _rle_string_counts(rle["counts"].decode("ascii"), where)
    elif isinstance(seg["counts"], list):  # uncompressed: the run lengths themselves
        counts = seg["counts"]
        if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError(f"{where}: uncompressed RLE counts must be non-negative integers")
    else:  # compressed: pycocotools' string form of the run lengths
        counts = _rle_string_counts(seg["counts"], where)
    if sum(counts) != h * w:
        raise ValueError(f"{where}: RLE counts sum to {sum(counts)}, not height * width = {h * w}")
    return _rle_to_mask(counts, h, w)


def _rle_to_mask(counts, h, w):
    """(H, W) bool from column-major run lengths that alternate background and foreground, background first.

    The NumPy twin of ``pycocotools.mask.decode``, which NumPy 2 warns about.
    """
    values = np.arange(len(counts)) % 2 == 1  # runs 0, 2, 4, ... are background
    flat = np.repeat(values, counts)  # (H*W,) in column-major order
    return np.ascontiguousarray(flat.reshape(w, h).T)  # (W, H) -> (H, W)


def _rle_string_counts(text, where):
    """Run lengths of pycocotools' compressed RLE string, decoded as its ``rleFrString`` does, checked.

    Each run is a little-endian number in 5-bit groups, one character ``chr(48 + group)`` per group, bit 0x20 of
    a group meaning "more groups follow" and bit 0x10 of the last the sign; from the fourth run on, each number
    is the difference to the run two before.
    """
    counts, value, shift = [], 0, 0
    for char in text:
        c = ord(char) - 48
        if not 0 <= c < 64:
            raise ValueError(f"{where}: compressed RLE counts hold a character outside '0'..'o': {char!r}")
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:
            continue
        if c & 0x10:
            value -= 1 << shift  # sign-extend
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise ValueError(f"{where}: compressed RLE counts decode to a negative run")
        counts.append(value)
        value, shift = 0, 0
    if shift:
        raise ValueError(f"{where}: compressed RLE counts end in the middle of a number")
    return counts


def _coco_box(mask):
    """COCO ``[x, y, w, h]`` of the tight box of one mask."""
    x1, y1, x2, y2 = tight_boxes(mask[None])[0]
    return [x1, y1, x2 - x1, y2 - y1]


def _read_image(path, h, w):
    """(H, W, 3) uint8 RGB; grayscale and palette images are expanded, an alpha channel dropped."""
    try:
        with Image.open(path) as im:
            image = np.array(im.convert("RGB"))
    except OSError as exc:
        raise ValueError(f"image file {str(path.name)!r} cannot be read: {exc}") from None
    if image.shape[:2] != (h, w):
        raise ValueError(f"image file {path.name!r} is {image.shape[1]} x {image.shape[0]} (W x H), "
                         f"the annotations say {w} x {h}")
    return image


def _check_file_pattern(file_pattern):
    """A str.format pattern ending in .png that gives image ids 1 and 2 two file names in one folder."""
    if not isinstance(file_pattern, str) or not file_pattern.lower().endswith(".png"):
        raise ValueError(f"file_pattern must be a str ending in .png, got {file_pattern!r}")
    try:
        names = file_pattern.format(1), file_pattern.format(2)
    except (IndexError, KeyError, ValueError) as exc:
        raise ValueError(f"file_pattern {file_pattern!r} cannot be formatted with one image id: {exc!r}") from None
    if names[0] == names[1] or "/" in names[0] or "\\" in names[0]:
        raise ValueError(f"file_pattern must give each image id its own file name in one folder, got {file_pattern!r}")


def _class_names(class_names):
    names = tuple(class_names) if not isinstance(class_names, str) else ()
    if len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise ValueError(f"class_names must be at least two str (background first), got {class_names!r}")
    return names


def _scene_arrays(scene, index, num_classes):
    """image, masks, labels of one scene, checked."""
    image = np.asarray(scene.image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"scenes[{index}].image must be (H, W, 3) uint8, got {image.dtype} {image.shape}")
    masks = as_array(f"scenes[{index}].masks", scene.masks, ndim=3, dtype=bool)
    labels = np.asarray(scene.labels)
    if masks.shape[1:] != image.shape[:2] or labels.shape != masks.shape[:1]:
        raise ValueError(f"scenes[{index}]: masks {masks.shape} and labels {labels.shape} do not match the image "
                         f"{image.shape}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 1
                        or labels.max() >= num_classes):
        raise ValueError(f"scenes[{index}].labels must be integers in [1, {num_classes - 1}], got {labels!r}")
    if masks.shape[0] and not masks.any(axis=(1, 2)).all():
        raise ValueError(f"scenes[{index}].masks: every instance needs at least one pixel")
    return image, masks, labels
