"""``fcis bench --quick``: the smoke run CI executes, and the report writers."""

import json

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

    for name, (_, _, reference, inputs, sweep, _, _) in bench.WORKLOADS.items():
        args, kwargs = inputs(sweep[0] if name not in ("assemble", "assemble_backward") else 2,
                              np.random.default_rng(0))
        reference(*args, **kwargs)


def test_bad_arguments_are_usage_errors(tmp_path):
    """An unknown workload or a repeat count below 1 is a usage error, not a traceback."""
    with pytest.raises(SystemExit):
        main(["bench", "--quick", "--workload", "nonsense", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        main(["bench", "--quick", "--repeats", "0", "--out", str(tmp_path)])
    assert info.value.code == 2
