"""The bundled model: it ships inside the installed package, is the default configuration, was trained by the command
``docs/training.md`` gives, and still segments a held-out synthetic set, with a floor well below the figures of
``docs/training.md`` so that a broken pipeline fails."""

from pathlib import Path

import numpy as np

from fcis_twin.demo import evaluate_model
from fcis_twin.reference.coco import ANNOTATION_FILE, IMAGE_FOLDER, load_coco, make_data
from fcis_twin.reference.network import DEFAULT_NETWORK, inference_config
from fcis_twin.reference.pretrain import DEFAULT_PRETRAINING
from fcis_twin.reference.train import DEFAULT_TRAIN, load_model, run_record, with_iterations
from fcis_twin.reference.train_step import DEFAULT_LOSSES
from fcis_twin.training import BUNDLED_MODEL, bundled_model

TRAINING_DOC = Path(__file__).resolve().parent.parent / "docs" / "training.md"
#: Images of the held-out set the floor is measured on (``fcis data make --seed 1``, never used in training).
HELD_OUT_IMAGES = 16
#: Mask AP50 and mAP^r@0.5 floors: half of what the bundled model reaches on these images (0.73 and
#: 0.73; docs/training.md gives its figures on 200 images); a model of random weights reaches about 0.
AP50_FLOOR = 0.36
MAPR_FLOOR = 0.36


def test_bundled_model_is_installed_small_and_the_default_configuration():
    """The file is inside the installed package, under 2 MB, and holds finite weights of DEFAULT_NETWORK."""
    path = bundled_model()
    assert path == BUNDLED_MODEL and path.is_file()
    assert path.stat().st_size < 2 * 2**20
    params, network, meta, state = load_model(path, DEFAULT_NETWORK)
    assert network == DEFAULT_NETWORK and not state
    assert all(np.isfinite(v).all() for v in params.values())
    assert meta["iteration"] == meta["train"]["iterations"] > 0


def test_bundled_model_was_trained_by_the_documented_command():
    """The run the file records (seed 0, the default losses, proposals and schedules but for their lengths) is the
    one of the ``fcis train --out bundled ...`` line in docs/training.md, so that line gives the same weights."""
    meta = load_model(bundled_model())[2]
    iterations, pretrain_iterations = meta["train"]["iterations"], meta["pretraining"]["iterations"]
    command = f"fcis train --out bundled --iterations {iterations} --pretrain-iterations {pretrain_iterations}"
    assert command in TRAINING_DOC.read_text(), f"docs/training.md does not give the bundled model's `{command}`"
    recipe = run_record(with_iterations(DEFAULT_TRAIN, iterations), DEFAULT_LOSSES, inference_config(DEFAULT_NETWORK),
                        0, with_iterations(DEFAULT_PRETRAINING, pretrain_iterations))
    assert {key: meta[key] for key in recipe} == recipe


def test_bundled_model_segments_a_held_out_set(tmp_path):
    """COCO mask AP50 and SBD mAP^r@0.5 on 16 held-out images stay above their floors."""
    make_data(tmp_path / "set", HELD_OUT_IMAGES, seed=1)
    coco_set = load_coco(tmp_path / "set" / ANNOTATION_FILE, tmp_path / "set" / IMAGE_FOLDER)
    params, network, _, _ = load_model(bundled_model())
    metrics = evaluate_model(coco_set, params, network, backend="numba-cpu")
    assert metrics["images"] == HELD_OUT_IMAGES
    assert metrics["coco"]["segm"]["AP50"] >= AP50_FLOOR, metrics["coco"]["segm"]
    assert metrics["sds"]["mAP@0.5"] >= MAPR_FLOOR, metrics["sds"]
