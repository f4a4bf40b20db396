"""Exercises: write a stage of FCIS yourself, and let the project's own agreement checks judge it.

Every exercise mirrors one reference function (:func:`solution`): same name, same signature.  :func:`check` runs
your function against it on hundreds of generated inputs (the hypothesis strategies of the project's agreement tests,
:mod:`fcis_twin.strategies`) and, when the two differ, shrinks the input to the smallest one on which they still
differ and says what differs, where, and which convention was probably missed.  :func:`show` draws that input.
:func:`timeit` times your function beside the reference and the accelerated backends; :func:`agreement_test` makes
a test of it for your own ``test_*.py``.

>>> from fcis_twin import exercises
>>> exercises.names()[:3]
['box_iou', 'part_maps', 'ps_assemble']
>>> exercises.check("box_iou", exercises.solution("box_iou")).passed
True
"""

import inspect
import numbers
import textwrap

from ..viz import draw_message
from .checking import CALL_LIMIT, TIME_BUDGET, run_check
from .records import Case, Result
from .timing import Timings, time_exercise

__all__ = ["Case", "Result", "Timings", "agreement_test", "check", "names", "show", "solution", "solution_source",
           "timeit"]


def _registry():
    """``{name: Exercise}`` in course order: by the notebook that ends with each, 01 to 10."""
    from . import assembly, boxes, evaluation, kernel, losses, nms, ohem, paste, score_maps, voting

    modules = (boxes, score_maps, assembly, nms, paste, voting, evaluation, kernel, losses, ohem)
    exercises = sorted((e for m in modules for e in m.EXERCISES), key=lambda e: e.notebook)  # stable within one
    return {e.name: e for e in exercises}


_EXERCISES = None


def _exercises():
    global _EXERCISES
    if _EXERCISES is None:
        _EXERCISES = _registry()
    return _EXERCISES


def names():
    """The exercise names, in course order: the notebook order, 01 to 10.

    Returns
    -------
    list of str
    """
    return list(_exercises())


def exercise(name):
    """The :class:`~fcis_twin.exercises.checking.Exercise` called ``name``; a ValueError naming the exercises else."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {names()}, got {type(name).__name__}")
    found = _exercises().get(name)
    if found is None:
        raise ValueError(f"name must be one of {names()}, got {name!r}")
    return found


def check(name, fn, *, seed=0, max_examples=None, time_budget=TIME_BUDGET, call_limit=CALL_LIMIT):
    r"""Check ``fn`` against the reference of exercise ``name`` on generated inputs.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    fn : callable
        Your function, with the signature of :func:`solution` ``(name)``.  For ``ps_assemble_kernel``, a Numba
        kernel (see that exercise).
    seed : int >= 0
        The search's seed: the same seed gives the same inputs, hence the same counterexample, as long as the
        search ends within ``time_budget``.
    max_examples : int >= 1, optional
        Inputs generated before the check passes (the exercise's default, about 100-200, when None).  Shrinking a
        counterexample calls ``fn`` more.
    time_budget : float > 0
        Seconds the search may take; at the end of it the smallest counterexample found so far is reported, or the
        check passes on the inputs tried.
    call_limit : float > 0
        Seconds one call of ``fn`` may take (the first call at least 10 s); a call past it is a failure.

    Returns
    -------
    Result
        ``passed``, ``status`` (``"passed"``, ``"failed"`` or ``"not implemented"``), ``counterexample`` (the
        arguments of the smallest failing call, by name), ``expected``, ``got`` and ``message``.

    Raises
    ------
    TypeError, ValueError
        A bad argument of this function (never anything that ``fn`` does: that is a failed result).

    Notes
    -----
    Whatever ``fn`` does wrong ends as a failed result naming the input: a wrong value, type, shape or dtype, NaN,
    an exception, a change to its input arrays, a call that does not return within ``call_limit`` (an exception is
    raised inside it), a compiled kernel that crashes (on Linux, Numba CPU functions run in a child process).
    A kernel running on a real GPU cannot be interrupted.  The learner's code runs on copies of the inputs.
    """
    ex = exercise(name)
    if not callable(fn):
        raise TypeError(f"fn must be a function with the signature of the reference's {name}, got "
                        f"{type(fn).__name__}")
    seed = _count("seed", seed, 0)
    max_examples = ex.max_examples if max_examples is None else _count("max_examples", max_examples, 1)
    return run_check(ex, fn, seed=seed, max_examples=max_examples, time_budget=_seconds("time_budget", time_budget),
                     call_limit=_seconds("call_limit", call_limit))


def _count(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return int(value)


def _seconds(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds above 0, got {value}")
    return float(value)


def show(result):
    """Draw a failed result's counterexample.

    Parameters
    ----------
    result : Result
        From :func:`check`.

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure (a notebook shows it when it is a cell's last value); None for a result that passed or is not
        implemented yet (its message says so).
    """
    if not isinstance(result, Result):
        raise TypeError(f"result must be the Result of exercises.check, got {type(result).__name__}")
    ex = exercise(result.name)
    if result.status != "failed":
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    if ex.draw is None or result.case is None:
        draw_message(fig, result.message)
    else:
        ex.draw(fig, result)
    fig.suptitle(_headline(result, width=int(fig.get_figwidth() * 14)), fontsize=9)
    return fig


def _headline(result, width):
    """The figure's title: the message's first line, what differs, and the conventions named, wrapped at ``width``
    characters."""
    lines = result.message.splitlines()
    title = [lines[0]] + ([result.difference.text] if result.difference is not None else [])
    named = ("Probably missed", "- ", "On this input, your")
    title += [line.strip() for line in lines if line.strip().startswith(named)][:4]
    return "\n".join(textwrap.fill(line, width) for line in title)


def solution(name):
    """The reference function that exercise ``name`` mirrors: its signature is the exercise's, and
    ``inspect.getsource(solution(name))`` (or :func:`solution_source`) shows how it is done."""
    return exercise(name).solution


def solution_source(name):
    """The source of the solution of exercise ``name``, followed by the functions it is built on, as one text."""
    ex = exercise(name)
    parts = []
    for fn in (ex.solution, *ex.readings):
        fn = getattr(fn, "py_func", fn)
        parts.append(f"# {fn.__module__}.{fn.__qualname__}\n{inspect.getsource(fn)}")
    return "\n".join(parts)


def timeit(name, fn, *, size=None, repeats=3, seed=0):
    """Time ``fn`` beside the reference and every available backend on the stage's standard workload.

    Parameters
    ----------
    name : str
    fn : callable
        Your function (for ``ps_assemble_kernel``, your kernel).
    size : int >= 1, optional
        The workload's size parameter (ROIs, boxes, masks...); the exercise's default, the smallest point of
        ``fcis bench``'s sweep where the stage has one, when None.
    repeats : int >= 1
        Timed calls of each implementation; the median is kept.  The first call is timed on its own (it includes
        compilation).
    seed : int >= 0
        Seed of the generated workload.

    Returns
    -------
    Timings
        One row per implementation: median and first-call seconds, the speed-up over the reference (ratios of
        medians measured in the same call), and whether its output agrees with the reference's on the workload.
    """
    ex = exercise(name)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    size = ex.workload_size if size is None else _count("size", size, 1)
    return time_exercise(ex, fn, size=size, repeats=_count("repeats", repeats, 1), seed=_count("seed", seed, 0))


def agreement_test(name, fn, *, seed=0, max_examples=None):
    """A pytest test function that fails with :func:`check`'s message when ``fn`` disagrees with the reference.

    Put it in your own ``test_*.py``::

        from fcis_twin import exercises
        from mycode import nms

        test_nms = exercises.agreement_test("nms", nms)

    Returns
    -------
    callable
        A function of no arguments named ``test_<name>``; it raises AssertionError on a failed check.
    """
    exercise(name)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")

    def test():
        result = check(name, fn, seed=seed, max_examples=max_examples)
        assert result.passed, result.message

    test.__name__ = test.__qualname__ = f"test_{name}"
    test.__doc__ = f"{getattr(fn, '__name__', 'fn')} agrees with the reference's {name} on generated inputs."
    return test
