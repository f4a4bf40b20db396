"""The ``fcis`` command line."""

import re

import numpy as np
import pytest

from fcis_twin.cli import main


def test_demo_writes_figure_and_prints_table(tmp_path, capsys):
    """``fcis demo`` prints a detection table and writes a PNG."""
    out = tmp_path / "demo.png"
    assert main(["demo", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mask IoU" in printed and "figure written" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_draws_one_detection_per_object_and_caps_its_table():
    """The last panel skips a mask that repeats a higher-scoring one (the same object under another class) and
    detections far below the top score, and draws at most DEMO_MAX_SHOWN; the printed table stops after
    DEMO_TABLE_ROWS rows and counts the rest."""
    from types import SimpleNamespace

    from fcis_twin.demo import DEMO_TABLE_ROWS, detection_table, distinct_detections

    masks = np.zeros((4, 8, 8), bool)
    masks[0, :4, :4] = masks[1, :4, :4] = True  # one object, two classes
    masks[1, 3, 4] = True  # IoU 16/17 with the first
    masks[2, 4:, 4:] = True
    masks[3, 4:, :3] = True
    det = SimpleNamespace(masks=masks, scores=np.array([0.9, 0.8, 0.5, 0.3]), labels=np.array([1, 2, 1, 3]),
                          boxes=np.zeros((4, 4)))
    assert distinct_detections(det).tolist() == [0, 2, 3]
    assert distinct_detections(det, limit=2).tolist() == [0, 2]
    assert distinct_detections(det, overlap=1.0).tolist() == [0, 1, 2, 3]
    assert distinct_detections(det, min_fraction=0.5).tolist() == [0, 2]  # 0.3 < 0.5 * 0.9
    many = SimpleNamespace(scores=np.linspace(1, 0.1, 30), labels=np.ones(30, int), boxes=np.zeros((30, 4)))
    table = detection_table(many, np.zeros(30), limit=DEMO_TABLE_ROWS).splitlines()
    assert len(table) == 1 + DEMO_TABLE_ROWS + 1 and table[-1].strip() == "... and 10 more, of lower scores"


def test_unknown_command_exits_with_usage():
    """An unknown subcommand is an argparse error (exit code 2), not a traceback."""
    with pytest.raises(SystemExit) as info:
        main(["nonsense"])
    assert info.value.code == 2


def test_bad_seed_is_a_usage_error(tmp_path, capsys):
    """A negative seed is reported as a usage error naming the argument, not a traceback."""
    with pytest.raises(SystemExit) as info:
        main(["demo", "--seed", "-1", "--out", str(tmp_path / "x.png")])
    assert info.value.code == 2
    assert "seed" in capsys.readouterr().err


def test_unwritable_output_is_a_usage_error(tmp_path, capsys):
    """An --out in a missing folder is reported cleanly."""
    with pytest.raises(SystemExit) as info:
        main(["demo", "--out", str(tmp_path / "missing" / "x.png")])
    assert info.value.code == 2


def test_data_make_then_evaluate_oracle(tmp_path, capsys):
    """``fcis data make`` writes a COCO set that ``fcis evaluate --oracle`` scores near 1 at AP50."""
    data = tmp_path / "set"
    assert main(["data", "make", "--out", str(data), "--n", "6", "--seed", "1"]) == 0
    assert (data / "instances.json").exists() and len(list((data / "images").glob("*.png"))) == 6
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--oracle"]) == 0
    out = capsys.readouterr().out
    assert "6 images" in out and "mAP@0.5" in out
    segm = next(line for line in out.splitlines() if line.startswith("segm"))
    ap50 = float(segm.split()[2])
    assert ap50 >= 0.8, out  # the oracle is a ceiling for post-processing; 200 images give 0.97 (docs/evaluation.md)


def test_evaluate_chooses_the_network_outputs(tmp_path, capsys, monkeypatch):
    """--weights FILE evaluates that model; without a bundled model, no flag is a usage error naming --weights and
    --oracle; a missing or damaged file, or both flags, are usage errors too."""
    from fcis_twin import training
    from fcis_twin.reference.network import NetworkConfig, init_params
    from fcis_twin.reference.train import save_model

    data = tmp_path / "set"
    main(["data", "make", "--out", str(data), "--n", "2"])
    small = NetworkConfig(group_size=2, output_size=6, backbone=((4, 2, 1), (4, 2, 1)), rpn_channels=4,
                          head_channels=4, norm_groups=2)
    save_model(tmp_path / "m.npz", init_params(small, np.random.default_rng(0)), small)
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--weights", str(tmp_path / "m.npz")]) == 0
    assert "(the model " in capsys.readouterr().out
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    monkeypatch.setattr(training, "BUNDLED_MODEL", tmp_path / "none.npz")
    cases = [([], "no bundled model.*--weights.*--oracle"), (["--weights", str(tmp_path / "no.npz")], "does not exist"),
             (["--weights", str(tmp_path / "bad.npz")], "not a readable model file"),
             (["--weights", str(tmp_path / "m.npz"), "--oracle"], "exclude each other")]
    for extra, match in cases:
        with pytest.raises(SystemExit) as info:
            main(["evaluate", "--data", str(data), *extra])
        assert info.value.code == 2
        assert re.search(match, capsys.readouterr().err), extra


def test_evaluate_missing_data_is_a_usage_error(tmp_path):
    """A folder without instances.json is reported cleanly."""
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--data", str(tmp_path / "nothing"), "--oracle"])
    assert info.value.code == 2


# ---- hardening -------------------------------------------------------------------------------------------------


@pytest.fixture
def quick_demo(monkeypatch):
    """The demo on a small scene with a one-inch figure: the same writing of files, in a fraction of the time."""
    from matplotlib.figure import Figure

    from fcis_twin import demo
    from fcis_twin.reference.shapes import make_scene

    monkeypatch.setattr(demo, "make_scene", lambda seed: make_scene(seed, image_shape=(48, 64), max_objects=2))
    monkeypatch.setattr(demo, "demo_figure", lambda result: Figure(figsize=(1, 1)))


def test_figure_path_rules(tmp_path):
    """A folder gets fcis_demo.png inside it, a path without a suffix gets .png, other suffixes are kept."""
    from fcis_twin.demo import figure_path

    assert figure_path(tmp_path) == tmp_path / "fcis_demo.png"
    assert figure_path(tmp_path / "fig") == tmp_path / "fig.png"
    assert figure_path(str(tmp_path / "fig.PDF")) == tmp_path / "fig.PDF"
    assert figure_path(tmp_path / ".hidden") == tmp_path / ".hidden.png"
    for bad, match in ((tmp_path / "fig.xyz", r"matplotlib cannot write a '.xyz' file; use one of .*png"),
                       (tmp_path / "missing" / "fig.png", "does not exist"),
                       (str(tmp_path / "missing") + "/", "ends in a separator but is not an existing folder"),
                       ("", "out must not be empty")):
        with pytest.raises(ValueError, match=match):
            figure_path(bad)


def test_demo_prints_the_path_it_wrote(tmp_path, capsys, monkeypatch, quick_demo):
    """``--out fig`` writes fig.png and says so; ``--out .`` writes ./fcis_demo.png, not a hidden '.png'."""
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", "fig"]) == 0
    assert capsys.readouterr().out.endswith("figure written to fig.png\n")
    assert main(["demo", "--out", "."]) == 0
    assert capsys.readouterr().out.endswith("figure written to fcis_demo.png\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fcis_demo.png", "fig.png"]
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_twice_replaces_the_figure(tmp_path, capsys, monkeypatch, quick_demo):
    """The README's ``fcis demo`` run twice in a row replaces fcis_demo.png whole and leaves nothing beside it."""
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    first = (tmp_path / "fcis_demo.png").stat().st_ino
    assert main(["demo", "--seed", "1"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["fcis_demo.png"]
    assert (tmp_path / "fcis_demo.png").stat().st_ino != first  # a new file renamed into place
    assert "figure written to fcis_demo.png" in capsys.readouterr().out


def test_demo_bad_out_fails_before_the_pipeline(tmp_path, capsys, monkeypatch):
    """An unwritable suffix is a usage error before anything is computed; a failing run leaves the old figure."""
    from fcis_twin import demo

    def no_pipeline(seed):
        raise AssertionError("the pipeline ran")

    monkeypatch.setattr(demo, "make_scene", no_pipeline)
    with pytest.raises(SystemExit) as info:
        main(["demo", "--out", str(tmp_path / "fig.xyz")])
    assert info.value.code == 2 and "'.xyz'" in capsys.readouterr().err

    def failing_pipeline(seed):
        raise ValueError("no scene today")

    monkeypatch.setattr(demo, "make_scene", failing_pipeline)
    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(SystemExit) as info:
        main(["demo", "--out", str(tmp_path / "old.png")])
    assert info.value.code == 2 and "no scene today" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"] and (tmp_path / "old.png").read_bytes() == b"old"


def test_data_make_refuses_a_full_folder_without_overwrite(tmp_path, capsys):
    """A second ``data make`` into the same folder is a usage error naming --overwrite; with it the set is replaced."""
    out = tmp_path / "set"
    assert main(["data", "make", "--out", str(out), "--n", "2", "--size", "16", "16"]) == 0
    before = sorted(p.name for p in (out / "images").iterdir())
    with pytest.raises(SystemExit) as info:
        main(["data", "make", "--out", str(out), "--n", "1", "--size", "16", "16"])
    assert info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "images").iterdir()) == before == ["000001.png", "000002.png"]
    assert main(["data", "make", "--out", str(out), "--n", "1", "--size", "16", "16", "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000001.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--n", "0"], "--n must be in"),
        (["--n", "-3"], "--n must be in"),
        (["--n", "100001"], r"--n must be in \[1, 100000\]"),
        (["--size", "100000", "100000"], "--size H W needs"),
        (["--size", "8", "16"], "--size H W needs"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ],
)
def test_data_make_bad_numbers_are_usage_errors(tmp_path, capsys, args, match):
    """Counts, sizes and seeds out of range are usage errors naming the option; nothing is written."""
    with pytest.raises(SystemExit) as info:
        main(["data", "make", "--out", str(tmp_path / "set"), *args])
    assert info.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("limit", ["0", "-2"])
def test_evaluate_limit_must_be_positive(tmp_path, capsys, limit):
    """``--limit`` below 1 is a usage error naming --limit."""
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--data", str(tmp_path), "--oracle", "--limit", limit])
    assert info.value.code == 2 and "--limit must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("error, code, message", [(MemoryError, 1, "not enough memory"),
                                                  (KeyboardInterrupt, 130, "interrupted")])
def test_memory_error_and_interrupt_are_messages(tmp_path, capsys, monkeypatch, error, code, message):
    """A MemoryError or Ctrl-C inside a command ends with a message and an exit code, not a traceback."""
    from fcis_twin.reference import coco

    def fail(*args, **kwargs):
        raise error()

    monkeypatch.setattr(coco, "make_data", fail)
    with pytest.raises(SystemExit) as info:
        main(["data", "make", "--out", str(tmp_path / "set"), "--n", "1"])
    assert info.value.code == code and message in capsys.readouterr().err


def test_evaluate_on_numba_cpu_gives_the_reference_metrics(tmp_path):
    """The metrics of `fcis evaluate --backend numba-cpu` equal the reference path's to the last digit."""
    from fcis_twin.demo import evaluate_oracle
    from fcis_twin.reference.coco import load_coco, make_data

    path = make_data(tmp_path / "set", 6, 2)
    coco_set = load_coco(path, tmp_path / "set" / "images")
    reference = evaluate_oracle(coco_set, backend="reference")
    numba = evaluate_oracle(coco_set, backend="numba-cpu")
    for key in ("images", "detections", "coco"):
        assert numba[key] == reference[key]
    assert {k: v for k, v in numba["sds"].items() if k != "curves"} == \
        {k: v for k, v in reference["sds"].items() if k != "curves"}
    assert reference["detections"] > 0
    for ours, theirs in zip(numba["predictions"], reference["predictions"], strict=True):
        for field in ("boxes", "labels", "scores", "masks"):
            np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field))


def test_backend_option(tmp_path, capsys):
    """--backend names where the inference runs; an unknown one is a usage error before anything runs."""
    out = tmp_path / "demo.png"
    assert main(["demo", "--seed", "2", "--out", str(out), "--backend", "numba-cpu"]) == 0
    numba_table = capsys.readouterr().out
    assert main(["demo", "--seed", "2", "--out", str(out), "--backend", "reference"]) == 0
    assert capsys.readouterr().out == numba_table
    with pytest.raises(SystemExit) as info:
        main(["demo", "--backend", "tpu", "--out", str(out)])
    assert info.value.code == 2 and "--backend" in capsys.readouterr().err


def test_train_writes_a_model_its_log_and_its_curve(tmp_path, capsys):
    """`fcis train` for two pretraining and two FCIS iterations writes model.npz (loadable), log.json,
    pretrain_log.json, loss.png and the checkpoint after the pretraining; bad flags are usage errors; --resume
    without a checkpoint says so."""
    from fcis_twin.reference.network import DEFAULT_NETWORK
    from fcis_twin.reference.train import load_model

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--iterations", "2", "--pretrain-iterations", "2",
                 "--backend", "numba-cpu"]) == 0
    assert "2 iterations" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"model.npz", "log.json", "pretrain_log.json", "loss.png",
                                               "checkpoint.npz"}
    meta = load_model(out / "model.npz", DEFAULT_NETWORK)[2]
    assert meta["iteration"] == 2 and meta["pretraining"]["iterations"] == 2
    for argv, match in ((["--iterations", "0"], "--iterations must be >= 1"), (["--seed", "-3"], "--seed must be"),
                        (["--resume"], "checkpoint.npz' does not exist")):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--out", str(tmp_path / "other"), *argv])
        assert exit_info.value.code == 2
        assert re.search(match, capsys.readouterr().err)


def test_demo_runs_a_model_file_and_says_which_outputs_it_shows(tmp_path, capsys, monkeypatch, quick_demo):
    """--weights FILE runs that model; --oracle the oracle; without either, the bundled model, or the oracle where
    the install has none; both flags together are a usage error."""
    from fcis_twin import training
    from fcis_twin.reference.network import NetworkConfig, init_params
    from fcis_twin.reference.train import save_model

    small = NetworkConfig(group_size=2, output_size=6, backbone=((4, 2, 1), (4, 2, 1)), rpn_channels=4,
                          head_channels=4, norm_groups=2)
    save_model(tmp_path / "m.npz", init_params(small, np.random.default_rng(0)), small)
    monkeypatch.setattr(training, "BUNDLED_MODEL", tmp_path / "none.npz")
    for argv, said in ((["--weights", str(tmp_path / "m.npz")], "the model "), (["--oracle"], "the oracle's"),
                       ([], "the oracle's")):
        assert main(["demo", "--out", str(tmp_path / "fig.png"), *argv]) == 0
        assert f"network outputs: {said}" in capsys.readouterr().out
    monkeypatch.setattr(training, "BUNDLED_MODEL", tmp_path / "m.npz")
    assert main(["demo", "--out", str(tmp_path / "fig.png")]) == 0
    assert "network outputs: the bundled model" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["demo", "--weights", str(tmp_path / "m.npz"), "--oracle"])
    assert info.value.code == 2 and "exclude each other" in capsys.readouterr().err


def test_train_help_gives_the_defaults_the_code_uses(capsys):
    """`fcis train --help` states the iteration defaults and images per iteration of DEFAULT_TRAIN and
    DEFAULT_PRETRAINING (the parser keeps its imports light, so the text is written out and checked here)."""
    from fcis_twin.reference.pretrain import DEFAULT_PRETRAINING
    from fcis_twin.reference.train import DEFAULT_TRAIN

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help at any space
    words = {2: "two", 4: "four"}
    assert (f"--iterations ITERATIONS FCIS training iterations, {words[DEFAULT_TRAIN.images_per_step]} images each "
            f"(default {DEFAULT_TRAIN.iterations})") in text
    assert (f"{words[DEFAULT_PRETRAINING.images_per_step]} images each, before FCIS's "
            f"(default {DEFAULT_PRETRAINING.iterations}; 0: none)") in text
