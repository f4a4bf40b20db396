"""The ``fcis`` command line."""

import pytest

from accelerated.cli import main


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
