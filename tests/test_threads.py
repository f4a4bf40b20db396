"""numba-cpu kernels called from forked children and from several threads at once.

Each case runs in a fresh interpreter: a threading layer that is not safe kills or hangs its process, and the
layer is chosen once per process, at the first parallel launch.
"""

import os
import subprocess
import sys
import textwrap

import pytest

#: Calls of three parallel kernels (NMS, assembly, paste) on fixed inputs; ``work()`` returns a comparable digest.
WORK = """
import numpy as np
from fcis_twin.accelerated.assemble import ps_assemble
from fcis_twin.accelerated.nms import nms
from fcis_twin.accelerated.paste import paste_masks

rng = np.random.default_rng(0)
corners = rng.uniform(0, 200, (400, 2)).astype(np.float32)
boxes = np.concatenate([corners, corners + rng.uniform(4, 60, (400, 2)).astype(np.float32)], axis=1)
scores = rng.random(400).astype(np.float32)
maps = rng.standard_normal((1, 2 * 3 * 9, 16, 16)).astype(np.float32)
rois = np.concatenate([np.zeros((50, 1), np.float32), boxes[:50] / 4], axis=1)
masks = rng.random((20, 7, 7)).astype(np.float32)

def work(_=None):
    kept = nms(boxes, scores, 0.5, backend="numba-cpu")
    assembled = ps_assemble(maps, rois, group_size=3, output_size=6, spatial_scale=0.25, backend="numba-cpu")
    pasted = paste_masks(masks, boxes[:20], (64, 64), threshold=0.5, backend="numba-cpu")
    return kept.tolist(), float(assembled.sum()), int(pasted.sum())
"""


def run_python(code, env_extra=None, timeout=240):
    """Run ``code`` in a fresh interpreter; (return code, stdout + stderr).  A hang counts as a failure."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update(env_extra or {})
    try:
        done = subprocess.run([sys.executable, "-c", WORK + textwrap.dedent(code)], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return None, f"timed out after {timeout} s: {exc.stdout!s} {exc.stderr!s}"
    return done.returncode, done.stdout + done.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_children_after_the_parent_ran_a_kernel():
    """After the parent has run parallel kernels, children started with fork run them too, with the same results.

    With GNU OpenMP as the layer (Numba's default on Linux wheels) each child dies and the pool never finishes.
    """
    code, out = run_python("""
        import multiprocessing, numba
        expected = work()
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map_async(work, range(4)).get(timeout=120)
        assert results == [expected] * 4, results
        print("layer", numba.threading_layer())
    """)
    assert code == 0, out
    assert "layer gnu" not in out.lower()


@pytest.mark.parametrize("layer", [None, "workqueue"])
def test_four_threads_at_once(layer):
    """Four threads calling kernels at the same time get the serial results; with the workqueue layer, which
    aborts the process on concurrent use, too."""
    code, out = run_python("""
        import threading
        expected = work()
        results, errors = [], []
        def loop():
            try:
                results.extend(work() for _ in range(5))
            except Exception as exc:
                errors.append(exc)
        threads = [threading.Thread(target=loop) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert results == [expected] * 20
        print("ok")
    """, None if layer is None else {"NUMBA_THREADING_LAYER": layer})
    assert code == 0 and "ok" in out, out


def test_a_layer_chosen_by_the_user_is_kept():
    """NUMBA_THREADING_LAYER set by the user is respected; without it a fork-safe layer is asked for."""
    code, out = run_python("""
        import numba
        work()
        print("layer", numba.config.THREADING_LAYER, numba.threading_layer())
    """, {"NUMBA_THREADING_LAYER": "workqueue"})
    assert code == 0 and "layer workqueue workqueue" in out, out
    code, out = run_python("""
        import numba
        work()
        print("layer", numba.config.THREADING_LAYER, numba.threading_layer())
    """)
    assert code == 0, out
    assert "layer forksafe " in out and out.split()[-1] in ("tbb", "workqueue", "omp"), out
