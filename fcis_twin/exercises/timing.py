"""Timing a learner's function beside the reference and the accelerated backends, as ``fcis bench`` times them."""

import functools
import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..accelerated._backend import cuda_simulated
from ..bench import speedup, time_one, timeable_backends
from .checking import call_learner
from .limits import is_cuda_kernel
from .records import Case, plain_call

#: Seconds one timed call of the learner's function may take before the timing gives up on it.
TIMING_CALL_LIMIT = 60.0


@dataclass(frozen=True)
class Timing:
    """One row of :class:`Timings`: seconds are None where the call failed or ran past its limit."""

    implementation: str
    median_s: float | None
    first_call_s: float | None
    speedup: float
    agrees: str


@dataclass(frozen=True)
class Timings:
    """The table of :func:`fcis_twin.exercises.timeit`: printed as text, shown as a table in a notebook."""

    name: str
    size: int
    repeats: int
    rows: tuple

    def _cells(self):
        for r in self.rows:
            median = "-" if r.median_s is None else f"{r.median_s * 1e3:.3f} ms"
            first = "-" if r.first_call_s is None else f"{r.first_call_s * 1e3:.1f} ms"
            ratio = "-" if not np.isfinite(r.speedup) else f"x{r.speedup:.2f}"
            yield r.implementation, median, first, ratio, r.agrees

    def __str__(self):
        head = ("implementation", "median", "first call", "vs reference", "agrees with the reference")
        rows = [head, *self._cells()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = [f"{self.name}, size {self.size}, median of {self.repeats} calls:"]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_markdown_(self):
        lines = [f"**{self.name}**, size {self.size}, median of {self.repeats} calls", "",
                 "| implementation | median | first call | vs reference | agrees with the reference |",
                 "|---|---:|---:|---:|---|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in self._cells()]
        return "\n".join(lines)


def _seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _agreement(exercise, case, expected, output):
    diff = exercise.compare(case, expected, output)
    return "yes" if diff is None else f"no: {diff.text}"


def time_exercise(exercise, fn, *, size, repeats, seed):
    """The :class:`Timings` of ``fn``, the reference and the exercise's backends on its workload of ``size``."""
    case = exercise.workload(size, np.random.default_rng(seed))
    expected = exercise.call(exercise.solution, case)
    # the solution and the learner's function are called as the exercise calls them (a kernel is launched); the
    # backends are the stage's public functions, called with its arguments
    calls = {"reference": functools.partial(exercise.call, exercise.solution, case)}
    available = timeable_backends()
    calls.update({k: functools.partial(plain_call, v, case) for k, v in exercise.backends().items() if k in available})
    calls["yours"] = functools.partial(exercise.call, fn, case)
    rows, reference_median = [], None
    for label, call in calls.items():
        if label != "yours":
            median, first = time_one(call, repeats)
            agrees = "yes" if label == "reference" else _agreement(exercise, case, expected, call())
        elif is_cuda_kernel(fn) and cuda_simulated():
            rows.append(Timing(label, None, None, float("nan"), "not timed: under Numba's CUDA simulator a kernel "
                               "runs as Python threads, not on a GPU"))
            continue
        else:  # a first call that cannot hang or crash this process, then the timed ones
            start = time.perf_counter()
            outcome = call_learner(exercise, fn, case, TIMING_CALL_LIMIT)
            first = time.perf_counter() - start
            if not outcome.ok:
                why = ("timed out" if outcome.timed_out else f"crashed ({outcome.crashed})" if outcome.crashed
                       else f"raised {type(outcome.raised).__name__}: {outcome.raised}")
                rows.append(Timing(label, None, None, float("nan"), f"no: {why}"))
                continue
            agrees = _agreement(exercise, case, expected, outcome.value)
            median = statistics.median(_seconds(call) for _ in range(repeats))
        if label == "reference":
            reference_median = median
        rows.append(Timing(label, median, first, speedup(reference_median, median), agrees))
    return Timings(exercise.name, size, repeats, tuple(rows))


def bench_workload(name):
    """The ``(size, rng) -> Case`` workload of :mod:`fcis_twin.bench` called ``name`` (``"nms_inputs"``, ...): the
    inputs ``fcis bench`` times, for an exercise's ``workload``."""
    def workload(size, rng):
        from .. import bench

        args, kwargs = getattr(bench, name)(size, rng)
        return Case(args, kwargs)

    return workload


def twins(module, function):
    """``() -> {backend: function}``: the accelerated twin ``fcis_twin.accelerated.<module>.<function>`` on each
    backend, for an exercise's ``backends``."""
    def backends():
        import importlib

        from ..accelerated import available_backends

        fn = getattr(importlib.import_module(f"fcis_twin.accelerated.{module}"), function)
        return {b: functools.partial(fn, backend=b) for b in available_backends()}

    return backends
