"""``fcis bench --quick``: the smoke run CI executes, and the report writers."""

import json
import math
import re

import pytest

from fcis_twin import bench
from fcis_twin.cli import main


def test_quick_bench_writes_json_markdown_and_plot(tmp_path, capsys):
    """The quick run times the reference and numba-cpu on every workload and writes the three reports."""
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--out", str(out), "--backend", "numba-cpu"]) == 0
    data = json.loads((out / "bench.json").read_text())
    assert data["quick"] is True and data["machine"]["cpu_count"] >= 1
    seen = {(r["workload"], r["implementation"]) for r in data["records"]}
    for name in bench.WORKLOADS:
        assert (name, "reference") in seen and (name, "numba-cpu") in seen
    for r in data["records"]:
        assert r["median_s"] > 0 and r["first_call_s"] > 0
        if r["implementation"] == "reference":
            assert r["speedup"] == 1.0
    table = (out / "bench.md").read_text()
    assert "### nms" in table and "numba-cpu" in table
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "results written" in capsys.readouterr().out


def test_every_workload_builds_valid_inputs_for_the_reference():
    """Each workload's inputs at its smallest full-sweep size are accepted by the reference."""
    import numpy as np

    for name, (_, _, reference, inputs, sweep, quick, _) in bench.WORKLOADS.items():
        size = {"assemble": 2, "assemble_backward": 2, "evaluate": quick[0]}.get(name, sweep[0])
        args, kwargs = inputs(size, np.random.default_rng(0))
        reference(*args, **kwargs)


def test_bad_arguments_are_usage_errors(tmp_path):
    """An unknown workload or a repeat count below 1 is a usage error, not a traceback."""
    with pytest.raises(SystemExit):
        main(["bench", "--quick", "--workload", "nonsense", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        main(["bench", "--quick", "--repeats", "0", "--out", str(tmp_path)])
    assert info.value.code == 2


# ---- hardening: checked before timing, nothing dropped silently, reports written whole -------------------------


@pytest.fixture
def no_timing(monkeypatch):
    """Make any timing an error: what these tests check must fail before the benchmark starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("something was timed")

    monkeypatch.setattr(bench, "time_one", refuse)


def test_out_that_is_a_file_fails_before_timing(tmp_path, capsys, no_timing):
    """``--out`` naming a file is a usage error at once, not after the whole run; the file is untouched."""
    out = tmp_path / "results"
    out.write_text("mine")
    with pytest.raises(SystemExit) as info:
        main(["bench", "--quick", "--out", str(out), "--backend", "numba-cpu"])
    assert info.value.code == 2 and "exists and is not a folder" in capsys.readouterr().err
    assert out.read_text() == "mine"
    with pytest.raises(ValueError, match="out_dir .*below' cannot be created"):  # the library checks it too
        bench.run(out / "below", quick=True)


@pytest.mark.parametrize(
    "backend, match",
    [
        ("cupy", r"backend 'cupy' is not available on this machine; available for timing: numba-cpu"),
        ("numba-cuda", r"backend 'numba-cuda' runs only under Numba's CUDA simulator here, which is not timed"),
        ("opencl", r"'opencl' is not a backend"),
    ],
)
def test_a_backend_that_cannot_be_timed_is_an_error(tmp_path, capsys, monkeypatch, no_timing, backend, match):
    """A requested backend that is unavailable, or would be skipped, is refused by run() and by the command."""
    monkeypatch.setattr(bench, "available_backends", lambda: ("numba-cpu", "numba-cuda"))
    monkeypatch.setattr(bench, "cuda_simulated", lambda: True)
    with pytest.raises(ValueError, match=match):
        bench.run(tmp_path, quick=True, backends=[backend])
    if backend != "opencl":  # argparse's choices refuse unknown names already
        with pytest.raises(SystemExit) as info:
            main(["bench", "--quick", "--out", str(tmp_path), "--backend", backend])
        assert info.value.code == 2 and re.search(match, capsys.readouterr().err)
    assert bench.select_backends(None) == ["numba-cpu"]  # by default the simulator is left out, as before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(repeats=0), ValueError, "repeats must be >= 1"),
        (dict(repeats=2.5), TypeError, "repeats must be an integer"),
        (dict(workloads=[]), ValueError, "workloads must be among"),
        (dict(workloads="nope"), ValueError, r"workloads must be among .*got \['nope'\]"),
        (dict(seed=-1), ValueError, "seed must be >= 0"),
    ],
)
def test_run_checks_its_arguments_first(tmp_path, no_timing, kwargs, error, match):
    """run() refuses bad arguments before timing; repeats=0 once meant 5 and workloads=[] meant all of them."""
    with pytest.raises(error, match=match):
        bench.run(tmp_path, quick=True, backends=[], **kwargs)


def test_reports_are_replaced_whole(tmp_path, monkeypatch):
    """The three reports appear together: a failure while writing leaves the previous ones as they were."""
    records = [bench.Record("nms", 64, "reference", 1e-3, 2e-3, 1, 1.0)]
    bench.write(records, tmp_path, quick=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["bench.json", "bench.md", "bench.png"]

    def broken_plot(records, path):
        raise RuntimeError("no plot")

    monkeypatch.setattr(bench, "plot", broken_plot)
    with pytest.raises(RuntimeError, match="no plot"):
        bench.write(records + [bench.Record("nms", 128, "reference", 1e-3, 2e-3, 1, 1.0)], tmp_path, quick=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file left either


def test_undefined_speedups_are_null_in_strict_json(tmp_path):
    """A zero median gives a NaN speed-up, never a ZeroDivisionError after the run, and bench.json stays JSON."""
    assert math.isnan(bench.speedup(1e-3, 0.0)) and math.isnan(bench.speedup(None, 1e-3))
    assert bench.speedup(2e-3, 1e-3) == 2.0
    records = [bench.Record("nms", 64, "reference", 1e-3, 2e-3, 1, 1.0),
               bench.Record("nms", 64, "numba-cpu", 0.0, 2e-3, 1, bench.speedup(1e-3, 0.0))]
    bench.write(records, tmp_path, quick=True)

    def refuse(word):
        raise ValueError(f"{word} is not JSON")

    data = json.loads((tmp_path / "bench.json").read_text(), parse_constant=refuse)
    assert [r["speedup"] for r in data["records"]] == [1.0, None]
