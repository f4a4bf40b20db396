"""The installed package: one top-level name, every half and every kernel source in it."""

import os
import subprocess
import sys
from pathlib import Path

CHECK = """
import importlib.util
assert importlib.util.find_spec("reference") is None, "a top-level 'reference' is installed"
assert importlib.util.find_spec("accelerated") is None, "a top-level 'accelerated' is installed"
import fcis_twin.reference.nms, fcis_twin.accelerated.nms, fcis_twin.cli, fcis_twin.bench
from fcis_twin.accelerated._launch import cuda_source, CUDA_INCLUDE_DIR
import os
for stage in ("nms", "assemble", "paste", "voting"):
    assert "__global__" in cuda_source(stage), stage
assert os.path.isfile(os.path.join(CUDA_INCLUDE_DIR, "common.cuh"))
from fcis_twin.training import bundled_model
assert bundled_model().is_file()
print(fcis_twin.reference.nms.__name__)
"""


def test_installed_names_from_outside_the_checkout(tmp_path):
    """Run from another folder, only fcis_twin is importable, with both halves, the CUDA C sources and the bundled
    model."""
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fcis_twin.reference.nms"


def test_python_dash_m_runs_the_command_line(tmp_path):
    """``python -m fcis_twin`` is the ``fcis`` command line."""
    done = subprocess.run([sys.executable, "-m", "fcis_twin", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout and "bench" in done.stdout


def test_the_gpu_tests_and_the_benchmark_need_no_pycocotools(tmp_path):
    """A GPU machine may lack pycocotools, which only data and evaluation need: there the checkout runs from its root
    (``.ci/gpu``), and the GPU tests must still be collected and the benchmark's modules imported."""
    blocked = tmp_path / "pycocotools"
    blocked.mkdir()
    (blocked / "__init__.py").write_text('raise ImportError("no pycocotools on this machine")\n')
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    agreement = sorted(str(p.relative_to(root)) for p in root.glob("tests/test_*_agreement.py"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                           "-m", "gpu", *agreement], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error" not in done.stdout.lower()
    imports = "import fcis_twin.bench, fcis_twin.demo, fcis_twin.accelerated.detect"
    done = subprocess.run([sys.executable, "-c", imports], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
