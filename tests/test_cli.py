"""The ``fcis`` command line."""

import pytest

from fcis_twin.cli import main


def test_demo_writes_figure_and_prints_table(tmp_path, capsys):
    """``fcis demo`` prints a detection table and writes a PNG."""
    out = tmp_path / "demo.png"
    assert main(["demo", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mask IoU" in printed and "figure written" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_evaluate_needs_network_outputs(tmp_path, capsys):
    """Without --oracle, and with --weights (no trained model yet), evaluate is a usage error naming the option."""
    data = tmp_path / "set"
    main(["data", "make", "--out", str(data), "--n", "1"])
    for extra in ([], ["--weights", "model.npz"]):
        with pytest.raises(SystemExit) as info:
            main(["evaluate", "--data", str(data), *extra])
        assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--oracle" in err and "--weights" in err


def test_evaluate_missing_data_is_a_usage_error(tmp_path):
    """A folder without instances.json is reported cleanly."""
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--data", str(tmp_path / "nothing"), "--oracle"])
    assert info.value.code == 2
