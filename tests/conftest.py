"""Shared test configuration: hypothesis profiles.

``ci`` (the default) runs enough examples to find real bugs while keeping the suite under ten minutes on two
cores; ``dev`` is quicker for editing loops (``HYPOTHESIS_PROFILE=dev pytest``).  Neither has a deadline: timing
belongs to ``fcis bench``, not to tests.
"""

import os

# Without a GPU, the Numba-CUDA kernels run under Numba's CUDA simulator; this must happen before numba is imported.
# A machine with an NVIDIA driver exposes /dev/nvidiactl; an explicit NUMBA_ENABLE_CUDASIM is respected either way.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not os.path.exists("/dev/nvidiactl"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def oracle_runs():
    """The oracle scenes of the detection tests (seeds 0-11 of ``make_scene``): per seed the scene, its oracle
    network outputs and the reference's stages, computed once for every module that asks."""
    from fcis_twin.demo import run_oracle_pipeline
    from fcis_twin.reference.shapes import make_scene

    runs = {}
    for seed in range(12):
        scene = make_scene(seed)
        runs[seed] = (scene, *run_oracle_pipeline(scene))
    return runs


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a real CUDA GPU: skip them, with the reason, where there is none."""
    from fcis_twin.accelerated._backend import available_backends, cuda_simulated

    real = [b for b in available_backends() if b == "cupy" or (b == "numba-cuda" and not cuda_simulated())]
    if real:
        return
    skip = pytest.mark.skip(reason="needs a real CUDA GPU (none found, or only the CUDA simulator)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
