"""Data sets against a model: categories matched by name before any work, image file names kept in their folder."""

import json
import shutil

import numpy as np
import pytest

from fcis_twin import demo
from fcis_twin.cli import main
from fcis_twin.reference.coco import ANNOTATION_FILE, IMAGE_FOLDER, load_coco, write_coco
from fcis_twin.reference.network import DEFAULT_NETWORK
from fcis_twin.reference.shapes import CLASS_NAMES, make_dataset
from fcis_twin.training import training_scenes

#: A permutation of the synthetic set's category ids (names kept): circle 1 -> 3, square 2 -> 1, ...
PERMUTATION = {1: 3, 2: 1, 3: 4, 4: 2}


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """Four small synthetic scenes written as a COCO set (ids = the model's labels)."""
    out = tmp_path_factory.mktemp("original")
    write_coco(make_dataset(4, seed=3, image_size=(48, 48), max_objects=3, size_range=(12, 30)), out / "set")
    return out / "set"


def variant(original, folder, change):
    """A copy of ``original`` in ``folder`` whose annotation dict ``change`` edits in place."""
    shutil.copytree(original, folder)
    data = json.loads((folder / ANNOTATION_FILE).read_text())
    change(data)
    (folder / ANNOTATION_FILE).write_text(json.dumps(data))
    return folder


def permute(data):
    for cat in data["categories"]:
        cat["id"] = PERMUTATION[cat["id"]]
    for ann in data["annotations"]:
        ann["category_id"] = PERMUTATION[ann["category_id"]]


def drop_star(data):
    data["categories"] = [c for c in data["categories"] if c["name"] != "star"]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] != 4]


def coco_names(data):
    for cat, name in zip(data["categories"], ("person", "bicycle", "car", "motorcycle"), strict=True):
        cat["name"] = name


def many(data):
    data["categories"] += [dict(id=100 + i, name=f"thing{i}") for i in range(200)]  # 204 categories


def hexagon(data):
    data["categories"].append(dict(id=99, name="hexagon"))
    data["annotations"][0]["category_id"] = 99


def twice(data):
    data["categories"][3]["name"] = "circle"  # circle twice, no star


def load(folder):
    return load_coco(folder / ANNOTATION_FILE, folder / IMAGE_FOLDER)


def test_match_categories_maps_a_permutation_by_name():
    """match_categories gives each set label the model's label of the same name, background to background."""
    from fcis_twin.reference.coco import match_categories

    names = ("background", "square", "star", "circle", "triangle")
    assert match_categories("s", names, CLASS_NAMES).tolist() == [0, 2, 4, 1, 3]
    assert match_categories("s", CLASS_NAMES, CLASS_NAMES).tolist() == [0, 1, 2, 3, 4]


def test_relabeled_set_in_the_models_order_is_unchanged(original):
    """A set already in the model's order keeps its labels and category ids when matched."""
    coco_set = load(original)
    same = coco_set.relabeled(CLASS_NAMES)
    assert same.category_ids.tolist() == coco_set.category_ids.tolist() == [-1, 1, 2, 3, 4]
    for i in range(len(coco_set)):
        assert same[i].labels.tolist() == coco_set[i].labels.tolist()


def test_evaluate_model_scores_a_permuted_set_by_name(original, tmp_path, monkeypatch):
    """A set whose category ids are permuted (names kept) scores as the original: labels are matched by name."""
    stages = [demo.run_oracle_pipeline(record.to_scene())[1] for record in load(original)]  # in the model's labels
    calls = []

    def model_pipeline(scene, params, network, *, backend):  # a perfect model: the oracle of the original set
        calls.append(scene)
        return None, stages[(len(calls) - 1) % len(stages)]

    monkeypatch.setattr(demo, "run_model_pipeline", model_pipeline)
    expected = demo.evaluate_model(load(original), None, DEFAULT_NETWORK)
    permuted = load(variant(original, tmp_path / "permuted", permute))
    got = demo.evaluate_model(permuted, None, DEFAULT_NETWORK)
    assert got["coco"] == expected["coco"]
    assert [got["sds"][k] for k in ("mAP@0.5", "mAP@0.7")] == [expected["sds"][k] for k in ("mAP@0.5", "mAP@0.7")]
    assert expected["coco"]["segm"]["AP"] > 0.5


@pytest.mark.parametrize("change, shown", [(drop_star, "'triangle']; missing ['star']"), (coco_names, "'person'"),
                                           (many, "'thing0'"), (twice, "'circle', 'square', 'triangle', 'circle'")])
def test_evaluate_model_refuses_other_categories_before_inference(original, tmp_path, monkeypatch, change, shown):
    """Fewer, other, more or repeated category names are a ValueError naming both lists, before any inference."""
    def model_pipeline(*args, **kwargs):
        raise AssertionError("inference ran before the categories were checked")

    monkeypatch.setattr(demo, "run_model_pipeline", model_pipeline)
    coco_set = load(variant(original, tmp_path / "set", change))
    with pytest.raises(ValueError, match=r"coco_set: .*'circle', 'square', 'triangle', 'star'") as info:
        demo.evaluate_model(coco_set, None, DEFAULT_NETWORK)
    assert shown in str(info.value)


def test_cli_evaluate_refuses_other_categories(original, tmp_path, capsys):
    """``fcis evaluate --data`` of a set without the model's 'star' is a usage error naming --data, before inference."""
    few = variant(original, tmp_path / "few", drop_star)
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--data", str(few), "--limit", "1", "--backend", "reference"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--data: " in err and "'star'" in err and "images:" not in err


def test_training_scenes_refuse_other_categories(original, tmp_path):
    """``fcis train --data``: a category the model lacks (id 99), or 204 of them, is a ValueError naming --data."""
    for change in (hexagon, many):
        folder = variant(original, tmp_path / change.__name__, change)
        with pytest.raises(ValueError, match=r"--data: .*'circle', 'square', 'triangle', 'star'"):
            training_scenes(8, 0, str(folder))


def test_training_scenes_of_a_permuted_set_follow_the_models_labels(original, tmp_path):
    """A permuted set trains with the model's labels: each instance keeps its class, whatever the ids."""
    scenes = training_scenes(8, 0, str(variant(original, tmp_path / "permuted", permute)))
    originals = training_scenes(8, 0, str(original))
    assert len(scenes) == 4
    for i in range(4):
        assert scenes[i].labels.tolist() == originals[i].labels.tolist()
        np.testing.assert_array_equal(scenes[i].masks, originals[i].masks)


@pytest.mark.parametrize("kind", ["parent", "absolute", "inner-parent"])
def test_load_coco_refuses_file_names_that_leave_the_image_folder(original, tmp_path, kind):
    """An image file_name with a '..' part or an absolute path is refused, even where that file exists."""
    outside = tmp_path / "outside.png"
    shutil.copy(original / IMAGE_FOLDER / "000001.png", outside)
    names = {"parent": "../../outside.png", "absolute": str(outside), "inner-parent": "../images/../../outside.png"}
    name = names[kind]

    def rename(data):
        data["images"][0]["file_name"] = name

    folder = variant(original, tmp_path / "set", rename)
    assert (folder / IMAGE_FOLDER / name).resolve() == outside.resolve()  # the old loader read it
    for with_images in (True, False):
        with pytest.raises(ValueError, match=r"images\[0\] \(id 1\): file_name .*must stay in the image folder"):
            load_coco(folder / ANNOTATION_FILE, folder / IMAGE_FOLDER, with_images=with_images)


def test_load_coco_reads_file_names_in_subfolders(original, tmp_path):
    """A relative file_name in a subfolder of the image folder (``sub/a.png``) is still read."""
    def rename(data):
        data["images"][0]["file_name"] = "sub/a.png"

    folder = variant(original, tmp_path / "set", rename)
    (folder / IMAGE_FOLDER / "sub").mkdir()
    shutil.copy(folder / IMAGE_FOLDER / "000001.png", folder / IMAGE_FOLDER / "sub" / "a.png")
    np.testing.assert_array_equal(load(folder)[0].image, load(original)[0].image)
