"""The exercises: every solution passes its own check, wrong versions of the kinds learners write fail with a shrunk
counterexample and a message naming the convention, and nothing the learner's code does crashes or hangs the check.

Each check here runs with the exercise's default settings unless it says otherwise: what a learner runs.
"""

import io
import math
import os
import sys
import time

import numba
import numpy as np
import pytest

from fcis_twin import exercises
from fcis_twin.accelerated._backend import available_backends
from fcis_twin.accelerated._launch import cuda
from fcis_twin.exercises.checking import FIRST_CALL_LIMIT

NAMES = exercises.names()
PITFALLS = [(name, i) for name in NAMES for i in range(len(exercises.exercise(name).pitfalls))]
#: A check's whole budget, as documented (at most 20 s on two cores); a failing one usually ends in a second or two.
CHECK_SECONDS = 20.0
NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")


def test_names_are_in_course_order():
    """names() follows the notebooks 01 to 10, and every exercise's notebook exists."""
    notebooks = [exercises.exercise(name).notebook for name in NAMES]
    assert notebooks == sorted(notebooks)
    assert {n[:2] for n in notebooks} == {f"{i:02d}" for i in range(1, 11)}
    for notebook in notebooks:
        assert os.path.isfile(os.path.join(NOTEBOOKS, notebook + ".ipynb")), notebook
    assert len(NAMES) == len(set(NAMES)) >= 13


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_passes(name):
    """The reference passes its own exercise's check, with the default settings, within the budget."""
    start = time.monotonic()
    result = exercises.check(name, exercises.solution(name))
    assert result.passed and result.status == "passed", result.message
    assert result.counterexample is None and result.examples >= 50
    assert time.monotonic() - start < CHECK_SECONDS


@pytest.mark.parametrize("name, index", PITFALLS, ids=[f"{n}-{i}" for n, i in PITFALLS])
def test_a_planted_mistake_fails_and_is_named(name, index):
    """Each pitfall, a wrong version breaking one convention, fails with a counterexample, a message naming that
    convention, and a figure."""
    pitfall = exercises.exercise(name).pitfalls[index]
    start = time.monotonic()
    result = exercises.check(name, pitfall.fn)
    assert time.monotonic() - start < CHECK_SECONDS
    assert not result.passed and result.status == "failed", result.message
    assert result.counterexample is not None and result.difference is not None
    assert pitfall.convention in result.message, result.message
    assert "the reference returns" in result.message and "yours returns" in result.message
    figure = exercises.show(result)
    assert figure is not None and figure.axes
    figure.savefig(io.BytesIO(), format="png")


# --- wrong versions written as a learner would: the diagnosis names the convention from the behaviour alone -----


def learner_nms_ge(boxes, scores, iou_threshold):
    """The classic loop, suppressing at IoU >= threshold."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = area[i] + area[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        order = rest[iou < np.float32(iou_threshold)]
    return np.array(keep, np.int64)


def learner_nms_unstable(boxes, scores, iou_threshold):
    """Right but for the order of equal scores: argsort ascending, reversed."""
    order = list(np.argsort(scores, kind="stable")[::-1])
    keep = []
    for i in order:
        if all(exercises.solution("box_iou")(boxes[i : i + 1], boxes[j : j + 1])[0, 0] <= np.float32(iou_threshold)
               for j in keep):
            keep.append(int(i))
    return np.array(keep, np.int64)


def learner_nms_classic(boxes, scores, iou_threshold):
    """The loop as it is often written: 0 / 0 for two boxes of zero area, a NaN that fails `iou <= t`."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        iou = iw * ih / (area[i] + area[rest] - iw * ih)
        order = rest[iou <= iou_threshold]
    return np.array(keep, np.int64)


def learner_nms_default_sort(boxes, scores, iou_threshold):
    """Right but for NumPy's default sort, which need not keep equal scores in index order."""
    iou = exercises.solution("box_iou")(boxes, boxes)
    keep = []
    for i in np.argsort(-scores):
        if all(iou[i, j] <= np.float32(iou_threshold) for j in keep):
            keep.append(int(i))
    return np.array(keep, np.int64)


def learner_iou_inclusive(a, b):
    """Widths with the +1 of inclusive pixel boxes."""
    a, b = a[:, None], b[None]
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0)
    inter = iw * ih
    union = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1) + (b[..., 2] - b[..., 0] + 1) * (
        b[..., 3] - b[..., 1] + 1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)


def learner_assemble_round(score_maps, rois, *, group_size, output_size, spatial_scale):
    """A loop over bins that rounds with Python's round (half to even)."""
    N, channels, H, W = score_maps.shape
    k, P, s = group_size, output_size, np.float32(spatial_scale)
    out = np.zeros((len(rois), channels // (k * k), P, P), np.float32)
    for n, (b, x1, y1, x2, y2) in enumerate(rois):
        sw, sh = np.float32(round(float(x1))) * s, np.float32(round(float(y1))) * s
        rw = max(np.float32(round(float(x2))) * s - sw, np.float32(0.1))
        rh = max(np.float32(round(float(y2))) * s - sh, np.float32(0.1))
        bw, bh = rw / np.float32(P), rh / np.float32(P)
        for ph in range(P):
            for pw in range(P):
                hs = min(max(math.floor(np.float32(ph) * bh + sh), 0), H)
                he = min(max(math.ceil(np.float32(ph + 1) * bh + sh), 0), H)
                ws = min(max(math.floor(np.float32(pw) * bw + sw), 0), W)
                we = min(max(math.ceil(np.float32(pw + 1) * bw + sw), 0), W)
                if he <= hs or we <= ws:
                    continue
                gh, gw = ph * k // P, pw * k // P
                for c in range(out.shape[1]):
                    out[n, c, ph, pw] = score_maps[int(b), (c * k + gh) * k + gw, hs:he, ws:we].mean()
    return out


def learner_decode_no_clamp(boxes, deltas, stds=(1.0, 1.0, 1.0, 1.0)):
    d = deltas * np.asarray(stds, np.float32)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h
    pcx, pcy, pw, ph = d[:, 0] * w + cx, d[:, 1] * h + cy, np.exp(d[:, 2]) * w, np.exp(d[:, 3]) * h
    return np.stack([pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2], axis=1).astype(np.float32)


def learner_part_maps_transposed(score_maps, cls, *, group_size):
    k = group_size
    N, channels, H, W = score_maps.shape
    maps = score_maps.reshape(N, channels // (2 * k * k), 2, k, k, H, W)[:, cls]
    return np.transpose(maps, (0, 1, 3, 2, 4, 5))


LEARNERS = [
    ("nms", learner_nms_ge, "IoU equal to the threshold must not suppress"),
    ("nms", learner_nms_unstable, "ties keep the lower index first"),
    ("nms", learner_nms_classic, "a box of zero area overlaps nothing"),
    ("nms", learner_nms_default_sort, "np.argsort's default sort may order equal scores any way"),
    ("box_iou", learner_iou_inclusive, "boxes are half-open"),
    ("ps_assemble", learner_assemble_round, "rounded half away from zero"),
    ("decode_boxes", learner_decode_no_clamp, "clamped at log(1000/16)"),
    ("part_maps", learner_part_maps_transposed, "part (gh, gw) is row gh, column gw"),
]


@pytest.mark.parametrize("name, fn, convention", LEARNERS, ids=[f.__name__ for _, f, _ in LEARNERS])
def test_a_learners_mistake_is_named(name, fn, convention):
    """Code written the way learners write it, with one mistake: the message names the convention it breaks."""
    result = exercises.check(name, fn)
    assert result.status == "failed" and convention in result.message, result.message


# --- whatever the learner's code does, the check returns a failed result naming the input ----------------------


def test_an_exception_is_a_failed_result():
    """An exception in the learner's code is a failure naming the exception, the line and the input."""
    def broken(a, b):
        return a[:, None] / b.shape[7]

    result = exercises.check("box_iou", broken)
    assert result.status == "failed" and isinstance(result.got, IndexError)
    assert "raised IndexError" in result.message and "b.shape[7]" in result.message
    assert set(result.counterexample) == {"a", "b"}


def test_a_call_that_never_returns_is_ended():
    """A `while True` of a half-written loop is interrupted at the call limit: a failed result, not a hang."""
    def spins(a, b):
        while True:
            pass

    start = time.monotonic()
    result = exercises.check("box_iou", spins, call_limit=0.2)
    assert time.monotonic() - start < FIRST_CALL_LIMIT + 2
    assert result.status == "failed" and "did not return within its time limit" in result.message


@pytest.mark.parametrize("returns, words", [
    (lambda a, b: np.zeros((len(a), len(b)), np.float32).tolist(), "must be a numpy.ndarray, got list"),
    (lambda a, b: np.zeros((len(a), len(b))), "has dtype float64; the reference's is float32"),
    (lambda a, b: np.zeros((len(b), len(a)), np.float32) if len(a) != len(b) else np.zeros((9, 9), np.float32),
     "has shape"),
    (lambda a, b: np.full((len(a), len(b)), np.nan, np.float32), "holds NaN"),
])
def test_wrong_type_dtype_shape_or_nan(returns, words):
    """A list, float64, a transposed shape or NaN: each a failure that says which."""
    result = exercises.check("box_iou", returns)
    assert result.status == "failed" and words in result.message, result.message


def test_changing_an_input_in_place_fails():
    """A function that clips its input boxes in place is told so: callers keep using their arrays."""
    def clips(a, b):
        np.clip(a, 0, None, out=a)
        return exercises.solution("box_iou")(a, b)

    result = exercises.check("box_iou", clips)
    assert result.status == "failed" and "changed its input in place (a)" in result.message


@numba.njit(parallel=True)
def _stub_kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data):
    for _ in numba.prange(top_data.size):
        raise NotImplementedError("write the kernel")


def test_a_compiled_stub_is_not_implemented_yet():
    """The kernel notebook's stub, a compiled kernel that raises NotImplementedError, is not implemented yet too."""
    assert exercises.check("ps_assemble_kernel", _stub_kernel).status == "not implemented"


def test_a_stub_is_not_implemented_yet():
    """The notebooks' untouched stub: 'not implemented yet', no figure, and the notebook runs on."""
    def stub(boxes, scores, iou_threshold):
        raise NotImplementedError

    result = exercises.check("nms", stub)
    assert result.status == "not implemented" and not result.passed
    assert "not implemented yet" in result.message and result.examples == 1
    assert exercises.show(result) is None


def test_the_same_seed_gives_the_same_counterexample():
    """Deterministic for a given seed: the same learner gets the same input and message."""
    fn = exercises.exercise("nms").pitfalls[0].fn
    first, again = exercises.check("nms", fn, seed=3), exercises.check("nms", fn, seed=3)
    strip = [line for line in first.message.splitlines() if "calls in" not in line]
    assert strip == [line for line in again.message.splitlines() if "calls in" not in line]
    for key, value in first.counterexample.items():
        np.testing.assert_array_equal(value, again.counterexample[key])


def test_the_inputs_do_not_depend_on_the_modules_loaded(tmp_path, monkeypatch):
    """The same seed draws the same inputs after the learner imports a module of their own full of literals (which
    hypothesis would otherwise mix into its draws)."""
    def inputs():
        seen = []

        def recording(boxes, scores, iou_threshold):
            seen.append((boxes.tobytes(), scores.tobytes(), iou_threshold))
            return exercises.solution("nms")(boxes, scores, iou_threshold)

        exercises.check("nms", recording, max_examples=100)
        return seen

    before = inputs()
    literals = [f"{v / 2!r}" for v in range(-16, 150)] + [str(v) for v in range(-20, 200)] + ["0.3", "0.7", "1e5"]
    (tmp_path / "learner_constants.py").write_text("VALUES = [" + ", ".join(literals) + "]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("learner_constants")
    after = inputs()
    monkeypatch.delitem(sys.modules, "learner_constants")
    assert after == before


# --- the kernel exercise: compiled code that hangs or crashes, a CUDA kernel under the simulator ----------------


@numba.njit
def _spinning_kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data):
    i = 0
    while i < 10:
        top_data.ravel()[0] = i


@numba.njit
def _wild_kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data):
    for i in range(10**8):
        top_data.ravel()[i * 1000003] = 1.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compiled code runs in a forked child on Linux")
@pytest.mark.parametrize("kernel, words", [(_spinning_kernel, "did not return within its time limit"),
                                           (_wild_kernel, "crashed the process running it")])
def test_a_compiled_kernel_that_hangs_or_crashes_is_a_failed_result(kernel, words):
    """A Numba CPU kernel runs in a child process: a loop that never ends is killed at the limit, an out-of-bounds
    write that kills the child is reported; the check returns either way."""
    start = time.monotonic()
    result = exercises.check("ps_assemble_kernel", kernel, call_limit=0.5)
    assert result.status == "failed" and words in result.message, result.message
    assert time.monotonic() - start < 30


@pytest.mark.skipif(cuda is None or "numba-cuda" not in available_backends(), reason="numba-cuda is not available")
def test_a_cuda_kernel_is_launched():
    """A CUDA kernel (here under the simulator, with few examples) is launched one thread per output element."""
    zeros = cuda.jit(_zeros_kernel)
    assert exercises.exercise("ps_assemble_kernel").call(zeros, _kernel_case()).shape == (1, 2, 2, 2)
    result = exercises.check("ps_assemble_kernel", zeros, max_examples=20)
    assert result.status == "failed" and "top_data differs" in result.message


def _zeros_kernel(bottom_data, rois, group_size, output_size, spatial_scale, top_data):
    """A CUDA kernel body that writes 0 everywhere: one thread per output element."""
    index = cuda.grid(1)
    if index < top_data.size:
        top_data.ravel()[index] = 0.0


def _kernel_case():
    from fcis_twin.exercises import Case

    x = np.arange(2 * 4 * 3 * 3, dtype=np.float32).reshape(1, 8, 3, 3)
    return Case((x, np.float32([[0, 0, 0, 3, 3]])), dict(group_size=2, output_size=2, spatial_scale=1.0))


# --- the rest of the interface -----------------------------------------------------------------------------------


def test_agreement_test_runs_under_pytest():
    """agreement_test makes a test named for the exercise: silent for the solution, the check's message otherwise."""
    good = exercises.agreement_test("nms", exercises.solution("nms"))
    assert good.__name__ == "test_nms"
    good()
    bad = exercises.agreement_test("nms", exercises.exercise("nms").pitfalls[0].fn)
    with pytest.raises(AssertionError, match="IoU equal to the threshold must not suppress"):
        bad()


def test_timeit_tables_the_learner_beside_the_reference_and_backends():
    """timeit times the learner's function beside the reference and numba-cpu on the bench workload."""
    table = exercises.timeit("nms", exercises.solution("nms"), size=50, repeats=1)
    rows = {r.implementation: r for r in table.rows}
    assert {"reference", "numba-cpu", "yours"} <= set(rows)
    assert rows["yours"].agrees == "yes" and rows["numba-cpu"].agrees == "yes"
    assert rows["yours"].median_s > 0 and math.isfinite(rows["yours"].speedup)
    assert "yours" in str(table) and "| yours |" in table._repr_markdown_()
    index_order = next(p for p in exercises.exercise("nms").pitfalls if "ascending index order" in p.mistake)
    wrong = exercises.timeit("nms", index_order.fn, size=50, repeats=1)
    assert wrong.rows[-1].agrees.startswith("no:")


def test_solution_source_shows_the_reference():
    """solution_source prints the solution and the functions it is built on."""
    assert "def nms(" in exercises.solution_source("nms")
    text = exercises.solution_source("ps_assemble_kernel")
    assert "def ps_assemble_kernel(" in text and "def _assemble_element(" in text and "def ps_assemble_loop(" in text


@pytest.mark.parametrize("call, error, words", [
    (lambda: exercises.check("nope", print), ValueError, "name must be one of"),
    (lambda: exercises.check(3, print), TypeError, "name must be a str"),
    (lambda: exercises.check("nms", 3), TypeError, "fn must be a function"),
    (lambda: exercises.check("nms", print, seed=-1), ValueError, "seed must be at least 0"),
    (lambda: exercises.check("nms", print, max_examples=0), ValueError, "max_examples must be at least 1"),
    (lambda: exercises.check("nms", print, call_limit=0), ValueError, "call_limit must be a finite number"),
    (lambda: exercises.check("nms", print, time_budget="1"), TypeError, "time_budget must be a number"),
    (lambda: exercises.show("result"), TypeError, "result must be the Result"),
    (lambda: exercises.timeit("nms", print, size=0), ValueError, "size must be at least 1"),
    (lambda: exercises.agreement_test("nms", None), TypeError, "fn must be callable"),
])
def test_bad_arguments_are_named(call, error, words):
    """A bad argument of the interface itself is a TypeError or ValueError naming it."""
    with pytest.raises(error, match=words):
        call()
