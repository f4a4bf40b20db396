r"""COCO-format instance sets: write synthetic scenes as one, read any one back.

A set on disk is an annotation file (``instances.json`` when written here) and a folder of images.  Masks travel
as run-length encodings (RLE) through ``pycocotools.mask``: column-major runs that alternate background and
foreground, starting with background.  Boxes are COCO's ``[x, y, w, h]`` in continuous pixel coordinates, which
are our half-open boxes: ``(x1, y1, x2, y2) = (x, y, x + w, y + h)``.

Labels are contiguous: the categories sorted by COCO id get labels ``1 .. C - 1``, label 0 is background.  The
synthetic set writes category id = label, so the mapping is the identity there; for COCO's 80 categories (ids 1 to
90 with gaps) it is not.  ``CocoSet.category_ids[label]`` gives the COCO id and ``CocoSet.category_labels[id]``
the label.  A model has labels of its own: :func:`match_categories` matches a set's categories to them by name,
and :meth:`CocoSet.relabeled` gives the set those labels.
"""

import json
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ._checks import as_array, as_int
from ._files import check_folder_target, read_json, replace_folder
from .boxes import tight_boxes
from .coco_format import (
    MAX_IMAGE_PIXELS,
    annotation_name,
    check_dataset,
    coco_api,
    enclosing_polygons,
    pycocotools_dataset,
    rle_counts,
)
from .shapes import CLASS_NAMES, MAX_DATASET_IMAGES, Scene, make_dataset

#: File name of the annotations that :func:`write_coco` writes.
ANNOTATION_FILE = "instances.json"
#: Folder, beside the annotations, that :func:`write_coco` writes the images into.
IMAGE_FOLDER = "images"


def write_coco(scenes, out_dir, *, class_names=CLASS_NAMES, file_pattern="{:06d}.png", info=None, overwrite=False):
    """Write scenes as a COCO-format instance set: ``out_dir/images/*.png`` and ``out_dir/instances.json``.

    Parameters
    ----------
    scenes : iterable of Scene
        Anything with ``image`` ((H, W, 3) uint8, RGB), ``masks`` ((n, H, W) bool, none empty) and ``labels``
        ((n,) ints in ``1 .. C - 1``), e.g. a :class:`fcis_twin.reference.shapes.SceneSet`.
    out_dir : str or path
        The folder of the set: missing (it is created, with its parents), empty, or replaced when ``overwrite``.
    class_names : sequence of C str
        ``class_names[0]`` is background and gets no category; label ``c`` becomes category id ``c``.
    file_pattern : str
        Image file name, formatted with the image id; must end in ``.png``.
    info : dict, optional
        Stored as the JSON's ``"info"`` (it must be JSON-serialisable, without NaN or infinity).
    overwrite : bool
        Replace an ``out_dir`` that holds something (anything: the old folder is deleted as a whole once the new
        set is complete).  Without it such a folder is a ``ValueError``.

    Returns
    -------
    path : pathlib.Path
        ``out_dir/instances.json``.

    Raises
    ------
    ValueError
        A bad argument or scene (naming it), an ``out_dir`` that is a file or not empty, or one that cannot be
        written.

    Notes
    -----
    The set is written into a hidden temporary folder beside ``out_dir`` and renamed to ``out_dir`` only when
    complete (:func:`fcis_twin.reference._files.replace_folder`): a failure at any point, ``KeyboardInterrupt``
    included, deletes the temporary folder and leaves ``out_dir`` as it was; images of an earlier set are never
    mixed with the new annotations.

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
    if info is not None:
        try:
            json.dumps(info, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"info must be JSON-serialisable without NaN or infinity: {exc}") from None
    categories = [dict(id=c, name=name, supercategory="shape") for c, name in enumerate(class_names) if c > 0]
    with replace_folder("out_dir", out_dir, overwrite=overwrite) as folder:
        (folder / IMAGE_FOLDER).mkdir()
        images, annotations = [], []
        for image_id, scene in enumerate(scenes, start=1):
            image, masks, labels = _scene_arrays(scene, image_id - 1, len(class_names))
            h, w = image.shape[:2]
            file_name = file_pattern.format(image_id)
            Image.fromarray(image).save(folder / IMAGE_FOLDER / file_name, format="PNG")
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
        (folder / ANNOTATION_FILE).write_text(json.dumps(dataset, allow_nan=False))
    return Path(out_dir) / ANNOTATION_FILE


def make_data(out_dir, n, seed, *, image_size=(128, 128), overwrite=False):
    """``fcis data make``: write :func:`fcis_twin.reference.shapes.make_dataset` ``(n, seed=seed)`` to ``out_dir``.

    Parameters
    ----------
    out_dir : str or path
        As in :func:`write_coco`: missing or empty, or replaced when ``overwrite``; written all at once.
    n : int
        Number of images, ``0 .. MAX_DATASET_IMAGES`` (100 000) of :mod:`fcis_twin.reference.shapes`.
    seed : int >= 0
    image_size : (H, W)
        Each side at least ``MIN_IMAGE_SIDE`` (16), ``H * W`` at most ``MAX_SCENE_PIXELS`` (``2**22``, e.g.
        2048 x 2048), both of :mod:`fcis_twin.reference.shapes`.
    overwrite : bool
        As in :func:`write_coco`.

    Returns
    -------
    path : pathlib.Path
        ``out_dir/instances.json``; the images are in ``out_dir/images``.

    Raises
    ------
    ValueError
        An argument out of its range (checked before anything is drawn or written), or an ``out_dir`` that
        :func:`write_coco` refuses.
    """
    n = as_int("n", n, low=0, high=MAX_DATASET_IMAGES)
    scenes = make_dataset(n, seed=seed, image_size=image_size)  # checks image_size; draws nothing yet
    check_folder_target("out_dir", out_dir, overwrite=overwrite)
    info = dict(description="fcis-twin synthetic shapes (fcis_twin.reference.shapes.make_dataset)",
                n_images=len(scenes), seed=int(seed), image_size=list(scenes.scene_kwargs["image_shape"]))
    return write_coco(scenes, out_dir, info=info, overwrite=overwrite)


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
                masks[j] = _decode_segmentation(ann["segmentation"], h, w, annotation_name(ann))
            labels = np.array([self.category_labels[a["category_id"]] for a in chosen], np.int64)
            boxes = np.array([a["bbox"] if "bbox" in a else _coco_box(m)
                              for a, m in zip(chosen, masks, strict=True)], np.float64)
            boxes = boxes.reshape(-1, 4)  # (k, 4) as (x, y, w, h)
            boxes[:, 2:] += boxes[:, :2]  # (x, y, x + w, y + h)
            parts += [masks, labels, boxes.astype(np.float32)]
        return CocoImage(int(img["id"]), img["file_name"], image, *parts)

    def relabeled(self, class_names, *, name="coco_set"):
        """The same set with the labels of ``class_names`` (a model's classes), its categories matched by name.

        Parameters
        ----------
        class_names : sequence of C str
            The model's classes, background first.
        name : str
            Names the set in error messages (``"--data"`` on the command line).

        Returns
        -------
        coco_set : CocoSet
            ``class_names`` as its ``class_names``; each category keeps its COCO id and gets the label of its name,
            in ``labels``, ``category_ids`` and ``category_labels``.  A set already in that order is unchanged.

        Raises
        ------
        ValueError
            As :func:`match_categories`: the set's category names are not the model's, each once.
        """
        labels = match_categories(name, self.class_names, class_names)
        ids = np.empty(len(labels) - 1, np.int64)
        ids[labels[1:] - 1] = self.category_ids[1:]
        return CocoSet(self.dataset, self._images, self._annotations, ids.tolist(), class_names, self.image_dir,
                       self.with_images)

    def coco(self):
        """The same set as a ``pycocotools.coco.COCO`` object (ground truth for ``COCOeval``), built quietly.

        The object holds its own copy of the records, in the form pycocotools reads (:func:`pycocotools_dataset`):
        ``COCOeval`` writes into the annotations it evaluates, and this set's ``dataset`` stays as it was read.
        """
        return coco_api(pycocotools_dataset(self._images, self.dataset["categories"],
                                            self.dataset.get("annotations", [])))


def load_coco(annotation_json, image_dir, *, with_images=True):
    """Read a COCO-format instance set: the synthetic one of :func:`write_coco` or a real one such as val2017.

    Parameters
    ----------
    annotation_json : str or path
        A COCO instances file: ``"images"`` (id, file_name, height, width), ``"categories"`` (id, name) and
        ``"annotations"`` (id, image_id, category_id, segmentation, optional bbox, area and iscrowd).
        Segmentations may be polygons, uncompressed RLE or compressed RLE.
    image_dir : str or path
        Folder holding every image's ``file_name`` (which may name a subfolder, never a path outside it); not read
        when ``with_images`` is False.
    with_images : bool
        Load the images (PNG, JPEG, anything Pillow reads) on access, or leave ``CocoImage.image`` None.

    Returns
    -------
    coco_set : CocoSet
        A sequence of :class:`CocoImage`, decoded on access.

    Raises
    ------
    ValueError
        A missing or unreadable file or folder, JSON that is not valid or nested too deeply, or a structure that
        is not COCO's (a missing key, a duplicate or unknown id, a value out of range, a segmentation of the
        wrong form or size), naming what is wrong and where.

    Notes
    -----
    The structure is checked here (:func:`check_dataset`): keys and types, unique ids and the references
    between them, every integer within int64, every image at most ``MAX_IMAGE_PIXELS`` (2**26) pixels, boxes
    finite with ``w, h >= 0`` and ``x, y, x + w, y + h`` within float32, areas finite and ``>= 0``, RLE sizes,
    every ``file_name`` a relative path that stays in ``image_dir`` (no ``..`` part, not absolute:
    :func:`check_file_name`, with or without images); and the presence of every image file.  The contents of
    polygons and RLE counts are checked when an image is accessed (:func:`check_segmentation`).  ``iscrowd``
    annotations go to the ``crowd_*`` arrays, apart from the instances.  Polygons with fewer than three points
    enclose nothing and are skipped; a missing ``bbox`` is the tight box of the mask.

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
    dataset = read_json("annotation_json", annotation_json)
    records = check_dataset("annotation_json", dataset)
    if with_images:
        if image_dir is None or not Path(image_dir).is_dir():
            raise ValueError(f"image_dir {str(image_dir)!r} is not a folder")
        for img in records.images:
            if not (Path(image_dir) / img["file_name"]).is_file():
                raise ValueError(f"image file {img['file_name']!r} (image id {img['id']}) is missing from image_dir")
    by_id = {cat["id"]: cat["name"] for cat in records.categories}
    class_names = ["background", *(by_id[c] for c in records.category_ids)]
    return CocoSet(dataset, records.images, records.per_image, records.category_ids, class_names, image_dir,
                   with_images)


def match_categories(name, class_names, expected):
    """The label a model gives each category of a set: the one of the same name.

    The one place where a set's categories meet a model's classes: evaluating a model on a set
    (:func:`fcis_twin.demo.evaluate_model`) and training on one (:func:`fcis_twin.training.training_scenes`) both
    go through it (via :meth:`CocoSet.relabeled`).

    Parameters
    ----------
    name : str
        Names the set in error messages (``"--data"``, ``"coco_set"``).
    class_names : sequence of str
        The set's, background first: ``CocoSet.class_names`` (the categories by ascending id).
    expected : sequence of C str
        The model's classes, background first (``fcis_twin.reference.shapes.CLASS_NAMES`` for this project's
        models).

    Returns
    -------
    labels : (C,) int64 ndarray
        ``labels[l]`` is the model's label of the set's label ``l``; ``labels[0] = 0``, background.

    Raises
    ------
    ValueError
        Unless the set names each of the model's classes once, and nothing else (in any order of ids; names
        compare exactly, case included).  The message gives both lists and what differs: the classes missing from
        the set, the set's names the model lacks, the names the set repeats.

    Examples
    --------
    >>> match_categories("coco_set", ["background", "square", "circle"], ["background", "circle", "square"])
    array([0, 2, 1])
    """
    expected = _class_names(expected)
    if len(set(expected)) != len(expected):
        raise ValueError(f"expected must name each class once, got {list(expected)!r}")
    ours, theirs = list(expected[1:]), list(class_names[1:])
    if sorted(theirs) != sorted(ours):
        missing = [n for n in ours if n not in theirs]
        unknown = [n for n in theirs if n not in ours]
        repeated = [n for n, count in Counter(theirs).items() if count > 1]
        differs = "; ".join(f"{what} {_name_list(names)}" for what, names in
                            (("missing", missing), ("not the model's", unknown), ("named twice", repeated)) if names)
        raise ValueError(f"{name}: the set's categories must be the model's {len(ours)} classes, each once, matched by "
                         f"name (in any order of ids): the model's are {_name_list(ours)}, the set's (by ascending id) "
                         f"are {_name_list(theirs)}; {differs}")
    return np.array([0, *(ours.index(n) + 1 for n in theirs)], np.int64)


def _name_list(names, most=12):
    """``['a', 'b']``, cut after ``most`` names with a count of the rest."""
    shown = ", ".join(repr(n) for n in names[:most])
    return f"[{shown}]" if len(names) <= most else f"[{shown}, ... {len(names) - most} more, {len(names)} in all]"


def _decode_segmentation(seg, h, w, where):
    """(H, W) bool mask of a polygon, uncompressed-RLE or compressed-RLE segmentation, checked."""
    if isinstance(seg, list):  # polygons [[x0, y0, x1, y1, ...], ...], their union
        polygons = enclosing_polygons(seg, where)
        if not polygons:
            return np.zeros((h, w), bool)
        seg = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))  # pycocotools rasterises polygons
    return _rle_to_mask(rle_counts(seg, h, w, where), h, w)


def _rle_to_mask(counts, h, w):
    """(H, W) bool from column-major run lengths that alternate background and foreground, background first.

    The NumPy twin of ``pycocotools.mask.decode``, which NumPy 2 warns about.
    """
    values = np.arange(len(counts)) % 2 == 1  # runs 0, 2, 4, ... are background
    flat = np.repeat(values, counts)  # (H*W,) in column-major order
    return np.ascontiguousarray(flat.reshape(w, h).T)  # (W, H) -> (H, W)


def _coco_box(mask):
    """COCO ``[x, y, w, h]`` of the tight box of one mask."""
    x1, y1, x2, y2 = tight_boxes(mask[None])[0]
    return [x1, y1, x2 - x1, y2 - y1]


def _read_image(path, h, w):
    """(H, W, 3) uint8 RGB; grayscale and palette images are expanded, an alpha channel dropped.

    The size is compared with the annotations' before the pixels are decoded, so that a file far larger than
    its record says is refused without being decoded.
    """
    try:
        with Image.open(path) as im:
            if im.size != (w, h):
                raise ValueError(f"image file {path.name!r} is {im.size[0]} x {im.size[1]} (W x H), "
                                 f"the annotations say {w} x {h}")
            image = np.array(im.convert("RGB"))
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # Pillow's ways of saying "broken"
        raise ValueError(f"image file {str(path.name)!r} cannot be read: {exc}") from None
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
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:  # load_coco would refuse the set
        raise ValueError(f"scenes[{index}].image is {image.shape[0]} x {image.shape[1]}, more than MAX_IMAGE_PIXELS = "
                         f"{MAX_IMAGE_PIXELS} pixels")
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
