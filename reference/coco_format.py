"""The COCO format, checked: the structure of an instance set and of its records, and the contents of its masks.

:func:`load_coco <fcis_twin.reference.coco.load_coco>` and :func:`evaluate_coco
<fcis_twin.reference.evaluate.evaluate_coco>` both check what they read here, before anything is decoded and before
pycocotools sees it: pycocotools loops forever on RLE counts that do not add up to ``height * width``, stops the
interpreter on an RLE of size 0 x 0, crashes on polygons far outside the image and fails on an empty polygon list.
Every limit below is named in the messages that enforce it.
"""

import contextlib
import io
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PureWindowsPath

import numpy as np
from pycocotools import mask as mask_utils

from ._checks import MAX_INT

#: Largest accepted polygon coordinate: pycocotools walks each edge in steps of a fifth of a pixel, in int.
POLYGON_LIMIT = 2.0**16
#: Largest image a COCO set may describe, height x width in pixels (8192 x 8192): one mask of it is 64 MiB.
MAX_IMAGE_PIXELS = 2**26
#: Most groups of five bits in one number of a compressed RLE string: 60 bits, within pycocotools' 64-bit decoder.
RLE_MAX_GROUPS = 12
#: Largest finite float32, the dtype of the boxes.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, eq=False)
class CocoRecords:
    """The records of a COCO-format set, checked by :func:`check_dataset`.

    Attributes
    ----------
    images, categories, annotations : list of dict
        The set's own lists, in file order (not copied).
    per_image : list of list of dict
        The annotations of each image, in the order of ``images``.
    category_ids : list of int
        The category ids in ascending order: label ``l`` is ``category_ids[l - 1]``.
    """

    images: list
    categories: list
    annotations: list
    per_image: list
    category_ids: list


def check_dataset(name, dataset, *, file_names=True, segmentations=True, boxes=False, areas=False):
    """Check the structure of a COCO-format set (as :func:`.load_coco` reads it) and index its records.

    Parameters
    ----------
    name : str
        Argument name used in error messages (``"annotation_json"``, ``"coco_gt"``).
    dataset : dict
        ``"images"`` and ``"categories"`` (lists of objects), ``"annotations"`` (optional list of objects).
    file_names : bool
        Every image needs a str ``file_name``, a relative path that stays in the image folder
        (:func:`check_file_name`).
    segmentations, boxes, areas : bool
        Every annotation needs a ``segmentation``, ``bbox``, ``area``; each is checked wherever present anyway.

    Returns
    -------
    records : CocoRecords

    Raises
    ------
    ValueError
        Naming the record and what is wrong: a missing key, a value of the wrong type, an integer outside int64,
        a duplicate id, an image ``file_name`` that leaves the image folder (an absolute path or one with a ``..``
        part), an annotation of an unknown image or category, an image of fewer than 1 or more than
        ``MAX_IMAGE_PIXELS`` pixels, an ``iscrowd`` other than 0 and 1, a ``bbox`` that is not four finite
        numbers with ``w, h >= 0`` and ``x, y, x + w, y + h`` within float32, an ``area`` that is not a finite
        number ``>= 0``, a segmentation that is not a list of polygons (lists) or an RLE of the image's size
        with str or list counts.  The contents of polygons and RLE counts are :func:`check_segmentation`'s.
    """
    if not isinstance(dataset, Mapping):
        raise ValueError(f"{name} must hold a JSON object, got {type(dataset).__name__}")
    image_fields = dict(id=int, file_name=str, height=int, width=int) if file_names else dict(id=int, height=int,
                                                                                              width=int)
    annotation_fields = dict(id=int, image_id=int, category_id=int)
    if segmentations:
        annotation_fields["segmentation"] = (list, dict)
    images = _records(name, dataset, "images", image_fields)
    categories = _records(name, dataset, "categories", dict(id=int, name=str))
    annotations = _records(name, dataset, "annotations", annotation_fields, required=False)
    image_index = _unique_ids(images, "images")
    category_ids = sorted(_unique_ids(categories, "categories"))
    known_categories = set(category_ids)
    _unique_ids(annotations, "annotations")
    for i, img in enumerate(images):
        h, w = img["height"], img["width"]
        if h < 1 or w < 1:
            raise ValueError(f"images[{i}] (id {img['id']}): height and width must be >= 1")
        if h * w > MAX_IMAGE_PIXELS:
            raise ValueError(f"images[{i}] (id {img['id']}): height x width = {h} x {w} is more than "
                             f"MAX_IMAGE_PIXELS = {MAX_IMAGE_PIXELS} pixels")
        if file_names:
            check_file_name(f"images[{i}] (id {img['id']})", img["file_name"])
    per_image = [[] for _ in images]
    for ann in annotations:
        where = annotation_name(ann)
        if ann["image_id"] not in image_index:
            raise ValueError(f"{where}: image_id {ann['image_id']} is not in images")
        if ann["category_id"] not in known_categories:
            raise ValueError(f"{where}: category_id {ann['category_id']} is not in categories")
        img = images[image_index[ann["image_id"]]]
        for key, needed in (("bbox", boxes), ("area", areas)):
            if needed and key not in ann:
                raise ValueError(f"{where} has no {key!r}")
        _check_annotation(ann, img["height"], img["width"], where)
        per_image[image_index[ann["image_id"]]].append(ann)
    return CocoRecords(images, categories, annotations, per_image, category_ids)


def check_file_name(where, file_name):
    """An image's ``file_name``: a non-empty relative path that stays in the image folder.

    Refused: an absolute path (``/x.png``, ``\\x.png``, a drive such as ``C:x.png``), any ``..`` part (split at
    ``/`` and at ``\\``: a ``..`` after a link inside the folder could leave it too), a NUL character.  Folders
    below the image folder (``train/x.png``) are accepted.

    Raises
    ------
    ValueError
        Naming ``where`` and the name.
    """
    parts = re.split(r"[/\\]", file_name)
    if (not file_name or "\0" in file_name or file_name.startswith(("/", "\\")) or PureWindowsPath(file_name).drive
            or ".." in parts):
        raise ValueError(f"{where}: file_name {file_name!r} must stay in the image folder: a relative path without "
                         "'..' parts")


def pycocotools_dataset(images, categories, annotations):
    """A copy of checked records in the form pycocotools reads: ``{"images", "categories", "annotations"}``.

    Each record is copied one level deep, so that ``COCOeval`` (which writes ``"ignore"`` and the RLE of each
    polygon into the annotations it evaluates) leaves the originals alone; other top-level keys (``"info"``,
    ``"licenses"``) are left out.  A polygon segmentation loses its polygons of fewer than three points, as in
    :func:`.load_coco`, and becomes an empty RLE when none is left: pycocotools fails on an empty polygon list and
    reads a first polygon of four numbers as a box.  A missing ``iscrowd`` is 0, as in :func:`.load_coco`
    (``COCOeval`` needs the key).
    """
    sizes = {img["id"]: (img["height"], img["width"]) for img in images}
    copies = []
    for ann in annotations:
        ann = dict(ann)
        ann.setdefault("iscrowd", 0)
        seg = ann.get("segmentation")
        if isinstance(seg, list):
            polygons = [poly for poly in seg if len(poly) >= 6]
            ann["segmentation"] = polygons if polygons else _empty_rle(*sizes[ann["image_id"]])
        copies.append(ann)
    return dict(images=[dict(img) for img in images], categories=[dict(cat) for cat in categories],
                annotations=copies)


def coco_api(dataset):
    """A ``pycocotools.coco.COCO`` object over ``dataset`` (used as it is), its index built quietly."""
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints its progress
        api.createIndex()
    return api


def _empty_rle(h, w):
    """Compressed RLE of an empty h x w mask."""
    rle = mask_utils.frPyObjects(dict(size=[h, w], counts=[h * w]), h, w)
    return dict(size=[h, w], counts=rle["counts"].decode("ascii"))


def _records(name, dataset, key, fields, required=True):
    """``dataset[key]``: a list of dicts, each with ``fields`` (name -> type) of those types, ints within int64."""
    if key not in dataset:
        if required:
            raise ValueError(f"{name} has no {key!r} list")
        return []
    records = dataset[key]
    if not isinstance(records, list):
        raise ValueError(f"{name}'s {key!r} must be a list, got {type(records).__name__}")
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ValueError(f"{key}[{i}] must be an object, got {type(rec).__name__}")
        for field, kind in fields.items():
            if field not in rec:
                raise ValueError(f"{key}[{i}] has no {field!r}")
            value = rec[field]
            right = is_int(value) if kind is int else isinstance(value, kind) and not isinstance(value, bool)
            if not right:
                raise ValueError(f"{key}[{i}][{field!r}] has the wrong type: {type(value).__name__}")
            if kind is int and not -MAX_INT - 1 <= value <= MAX_INT:
                raise ValueError(f"{key}[{i}][{field!r}] = {value} is outside the int64 range [-2**63, 2**63 - 1]")
    return records


def _unique_ids(records, key):
    """{id: position}; duplicate ids are an error."""
    index = {}
    for i, rec in enumerate(records):
        if rec["id"] in index:
            raise ValueError(f"{key}[{i}]: id {rec['id']} is used twice")
        index[rec["id"]] = i
    return index


def annotation_name(ann):
    """How messages name an annotation: ``"annotation id 7"``."""
    return f"annotation id {ann['id']}"


def _check_annotation(ann, h, w, where):
    """Structure of one annotation: iscrowd, bbox, area, and the form (not the contents) of its segmentation."""
    if ann.get("iscrowd", 0) not in (0, 1):
        raise ValueError(f"{where}: iscrowd must be 0 or 1, got {ann['iscrowd']!r}")
    if "bbox" in ann:
        check_box(ann["bbox"], where)
    if "area" in ann:
        area = finite_float(ann["area"])
        if area is None or area < 0:
            raise ValueError(f"{where}: area must be a finite number >= 0, got {ann['area']!r}")
    if "segmentation" not in ann:
        return
    seg = ann["segmentation"]
    if isinstance(seg, list):
        if not all(isinstance(p, list) for p in seg):
            raise ValueError(f"{where}: a polygon segmentation must be a list of lists of coordinates")
        return
    if not isinstance(seg, Mapping):
        raise ValueError(f"{where}: segmentation must be a list of polygons or an RLE dict, got "
                         f"{type(seg).__name__}")
    _check_rle_form(seg, h, w, where)


def check_box(box, where):
    """A COCO ``[x, y, w, h]``: four finite numbers, ``w, h >= 0``, and ``x, y, x + w, y + h`` within float32.

    The last condition keeps the box finite when it becomes ``(x, y, x + w, y + h)`` in float32.
    """
    values = [finite_float(v) for v in box] if isinstance(box, (list, tuple)) else []
    if len(values) != 4 or None in values or values[2] < 0 or values[3] < 0:
        raise ValueError(f"{where}: bbox must be [x, y, w, h], four finite numbers with w, h >= 0, got {box!r}")
    x, y, bw, bh = values
    if max(abs(x), abs(y), abs(x + bw), abs(y + bh)) > FLOAT32_MAX:
        raise ValueError(f"{where}: bbox {box!r} does not fit float32: x, y, x + w and y + h must be at most "
                         f"{FLOAT32_MAX:.4g} in magnitude")


def is_real(v):
    """A real number of JSON or Python, not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_int(v):
    """An integer of JSON or Python, not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def finite_float(v):
    """``v`` as a finite float, or None when it is not a real number or not finite (or beyond float64)."""
    if not is_real(v):
        return None
    try:
        v = float(v)
    except OverflowError:  # an int beyond float64
        return None
    return v if math.isfinite(v) else None


def check_segmentation(seg, h, w, where):
    """Check the contents of a segmentation whose form :func:`check_dataset` accepted, for an h x w image.

    Polygons: an even number of real coordinates, each within ``POLYGON_LIMIT``.  RLE: as :func:`rle_counts`.

    Raises
    ------
    ValueError
        Naming ``where`` and what is wrong.
    """
    if isinstance(seg, list):
        enclosing_polygons(seg, where)
    else:
        rle_counts(seg, h, w, where)


def enclosing_polygons(seg, where):
    """The polygons of a polygon segmentation that enclose something (three points or more), as float lists."""
    polygons = []
    for poly in seg:
        if len(poly) % 2 or not all(is_real(v) and abs(v) <= POLYGON_LIMIT for v in poly):
            raise ValueError(f"{where}: a polygon must be an even number of coordinates in "
                             f"[-{POLYGON_LIMIT:g}, {POLYGON_LIMIT:g}]")
        if len(poly) >= 6:  # pycocotools would take 4 numbers for a box; fewer than 3 points enclose nothing
            polygons.append([float(v) for v in poly])
    return polygons


def rle_counts(seg, h, w, where):
    """The run lengths of an RLE segmentation of an h x w image, checked.

    Parameters
    ----------
    seg : dict
        ``{"size": [h, w], "counts": counts}``; ``counts`` is compressed (pycocotools' string form, as a str or
        as the bytes ``pycocotools.mask.encode`` returns) or uncompressed (a list of ints).
    h, w : int
        The image's height and width.
    where : str
        Names the record in error messages (``"annotation id 7"``, ``"results[3]"``).

    Returns
    -------
    counts : list of int
        Column-major run lengths, background first: non-negative, summing to ``h * w``.

    Raises
    ------
    ValueError
        ``seg`` lacks ``size`` or ``counts``; ``size`` is not ``[h, w]``; a compressed string holds a character
        outside ``'0'..'o'``, a number of more than ``RLE_MAX_GROUPS`` characters, a negative run or ends in the
        middle of a number; uncompressed counts are not non-negative ints; the runs do not sum to ``h * w``.
        Input that fails here can make pycocotools loop forever or stop the interpreter, so nothing is passed
        to pycocotools before this check.
    """
    _check_rle_form(seg, h, w, where)
    counts = seg["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("latin-1")  # any byte outside '0'..'o' is refused below
    if isinstance(counts, str):
        runs = rle_string_counts(counts, where)
    else:
        if not all(is_int(c) and c >= 0 for c in counts):
            raise ValueError(f"{where}: uncompressed RLE counts must be non-negative integers")
        runs = [int(c) for c in counts]
    total = sum(runs)
    if total != h * w:
        raise ValueError(f"{where}: RLE counts sum to {total}, not height * width = {h * w}")
    return runs


def _check_rle_form(seg, h, w, where):
    """An RLE dict with ``size == [h, w]`` and counts of a str, bytes or list."""
    if "counts" not in seg or "size" not in seg:
        raise ValueError(f"{where}: an RLE segmentation needs 'counts' and 'size'")
    size = seg["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(is_int(v) for v in size)
            and list(size) == [h, w]):
        raise ValueError(f"{where}: RLE size {size!r} is not the image's [height, width] = {[h, w]}")
    if not isinstance(seg["counts"], (str, bytes, list)):
        raise ValueError(f"{where}: RLE counts must be a str (compressed) or a list (uncompressed)")


def rle_string_counts(text, where):
    """Run lengths of pycocotools' compressed RLE string, decoded as its ``rleFrString`` does, checked.

    Each run is a little-endian number in 5-bit groups, one character ``chr(48 + group)`` per group, bit 0x20 of
    a group meaning "more groups follow" and bit 0x10 of the last the sign; from the fourth run on, each number
    is the difference to the run two before.  A number may have at most ``RLE_MAX_GROUPS`` groups: pycocotools
    decodes into 64 bits, so that beyond it the two decoders would disagree.
    """
    counts, value, shift = [], 0, 0
    for char in text:
        c = ord(char) - 48
        if not 0 <= c < 64:
            raise ValueError(f"{where}: compressed RLE counts hold a character outside '0'..'o': {char!r}")
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:
            if shift >= 5 * RLE_MAX_GROUPS:
                raise ValueError(f"{where}: compressed RLE counts hold a number longer than {RLE_MAX_GROUPS} "
                                 "characters")
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
