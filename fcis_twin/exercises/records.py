"""What an exercise is made of: its inputs (:class:`Case`), its known mistakes (:class:`Pitfall`), the exercise itself
(:class:`Exercise`) and the outcome of a check (:class:`Result`)."""

import copy
import inspect
from dataclasses import dataclass, field

import numpy as np

from .comparing import Difference


@dataclass(frozen=True)
class Case:
    """One input of a stage: the positional and keyword arguments of a call."""

    args: tuple
    kwargs: dict = field(default_factory=dict)

    def copied(self):
        """A deep copy: the learner's function gets its own arrays."""
        return Case(copy.deepcopy(self.args), copy.deepcopy(self.kwargs))

    def same_as(self, other):
        """True when every argument equals ``other``'s, array by array (NaN equal to NaN)."""
        return same(self.args, other.args) and same(self.kwargs, other.kwargs)


def same(a, b):
    """True when ``a`` and ``b`` are equal, arrays by value, dtype and shape (NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (a != a and b != b)


@dataclass(frozen=True)
class Pitfall:
    """A wrong version of the reference that breaks one convention.

    ``mistake`` says what the wrong code does ("suppresses a box whose IoU equals the threshold"), ``convention``
    what the reference does instead; ``fn`` has the reference's signature.
    """

    mistake: str
    convention: str
    fn: object


def plain_call(fn, case):
    """``fn(*args, **kwargs)``: how an exercise calls a function of the reference's signature."""
    return fn(*case.args, **case.kwargs)


@dataclass(frozen=True)
class Exercise:
    """One exercise: a stage's reference, the inputs it is checked on, how outputs compare, the known pitfalls.

    Attributes
    ----------
    name, notebook, summary : str
        The name in :func:`fcis_twin.exercises.names`, the notebook that ends with it, one line on what to write.
    solution : callable
        The reference function the learner's mirrors (its signature is the exercise's).
    cases : hypothesis strategy of Case
    compare : callable ``(case, expected, got) -> Difference or None``
        None when ``got`` is right for ``case``.
    pitfalls : tuple of Pitfall
    draw : callable ``(figure, result)``, optional
        Draws a failed result's counterexample.
    workload : callable ``(size, rng) -> Case``
        The standard input of :func:`fcis_twin.exercises.timeit`, with its default ``size``.
    backends : callable ``() -> {name: function}``
        The accelerated twins of the solution, for timing; empty where the stage has none.
    call : callable ``(fn, case) -> output``
        How the solution and the learner's function are called (:func:`plain_call`, or a kernel launch).
    max_examples : int
        Examples of the default check.
    readings : tuple of callables
        Functions whose source :func:`fcis_twin.exercises.solution_source` shows after the solution's.
    """

    name: str
    notebook: str
    summary: str
    solution: object
    cases: object
    compare: object
    pitfalls: tuple = ()
    draw: object = None
    workload: object = None
    workload_size: int = 0
    backends: object = dict
    call: object = plain_call
    max_examples: int = 200
    readings: tuple = ()

    def argument_names(self):
        """The solution's parameter names, in order."""
        fn = getattr(self.solution, "py_func", self.solution)
        return list(inspect.signature(fn).parameters)

    def named(self, case):
        """``{parameter name: value}`` of a case, in the solution's order."""
        names = self.argument_names()
        out = dict(zip(names, case.args, strict=False))
        out.update(case.kwargs)
        return out


@dataclass
class Result:
    """The outcome of :func:`fcis_twin.exercises.check`.

    Attributes
    ----------
    name : str
    passed : bool
    status : {"passed", "failed", "not implemented"}
    counterexample : dict or None
        The inputs of the smallest failing call found, by parameter name; None when none failed.
    expected, got
        The reference's output on the counterexample and what the learner's function gave (an exception it
        raised, or None when it timed out or crashed).
    message : str
        What differs and where, in plain words, and the convention probably missed.
    difference : Difference or None
    examples : int
        Inputs tried, shrinking included.
    seconds : float
    seed : int
    """

    name: str
    passed: bool
    status: str
    counterexample: dict | None
    expected: object
    got: object
    message: str
    difference: Difference | None = None
    examples: int = 0
    seconds: float = 0.0
    seed: int = 0
    case: Case | None = None

    def plot(self):
        """:func:`fcis_twin.exercises.show` of this result."""
        from . import show

        return show(self)

    def __repr__(self):
        return self.message

    def __str__(self):
        return self.message
