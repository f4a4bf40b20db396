"""The engine of the exercises: a learner's function against the reference on hypothesis-generated inputs.

:func:`run_check` draws inputs from the exercise's strategy, calls the reference and the learner's function on each,
and compares the two; on a difference hypothesis shrinks the input to the smallest one that still differs.  Every way
the learner's code can go wrong ends as a failed :class:`Result` naming the input: a wrong value, type, shape or
dtype, NaN, an exception, a changed input, a call past its time limit (:mod:`.limits`), a crashed kernel.  Then the
exercise's pitfalls, wrong versions of the reference that each break one convention, are run on that input: one
that gives what the learner's code gave names the convention that was probably missed.
"""

import contextlib
import os
import sysconfig
import time
import traceback
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky

from . import limits
from .comparing import Difference, describe
from .records import Case, Result, same

#: The search's time budget in seconds (generation and shrinking); a check also spends a little on its diagnosis.
TIME_BUDGET = 15.0
#: Seconds one call of the learner's function may take; the first call of Python code gets :data:`FIRST_CALL_LIMIT`
#: (imports, caches filled on first use).  A Numba CPU function is compiled before its first call, without a limit.
CALL_LIMIT = 2.0
FIRST_CALL_LIMIT = 5.0
#: The learner's outputs kept for the diagnosis: a pitfall is named only if it returns what the learner's function
#: returned on these inputs too (the counterexample alone often fits several).
SEEN_CALLS = 100
#: More inputs the learner's function is called on when several pitfalls explain its counterexample.
PROBE_CALLS = 40


# --- the search -------------------------------------------------------------------------------------------------


class _Found(Exception):  # a counterexample, raised so that hypothesis shrinks it
    def __init__(self, failure):
        super().__init__(failure.text)
        self.failure = failure


class _Stop(BaseException):  # ends the search at once (no shrinking): a timeout, a stub, the budget
    def __init__(self, failure):
        super().__init__()
        self.failure = failure


@dataclass
class _Failure:
    kind: str  # "differs", "raised", "timeout", "crashed", "not implemented", "changed input"
    case: Case
    expected: object
    got: object
    text: str
    difference: Difference | None = None
    warned: tuple = ()


class _Runner:
    """Calls of the reference and of the learner's function, one input at a time."""

    def __init__(self, exercise, fn, deadline, call_limit):
        self.exercise, self.fn, self.deadline, self.call_limit = exercise, fn, deadline, call_limit
        self.calls, self.last = 0, None
        self.seen = []  # (case, output) of the learner's calls that returned: the diagnosis's evidence

    def learner_call(self, case):
        """The learner's output on ``case``: an :class:`limits.Outcome`."""
        first = self.calls == 0
        self.calls += 1
        return call_learner(self.exercise, self.fn, case, self.call_limit, first=first)

    def attempt(self, case):
        if time.monotonic() > self.deadline:
            raise _Stop(self.last)  # the last failure found (None: none found, the check passes)
        expected = self.exercise.call(self.exercise.solution, case)
        first = self.calls == 0
        outcome = self.learner_call(case)
        if outcome.ok and len(self.seen) < SEEN_CALLS:
            self.seen.append((case, outcome.value))
        failure = _failure(self.exercise, case, expected, outcome, first)
        if failure is None:
            return
        self.last = failure
        if failure.kind in ("timeout", "not implemented"):
            raise _Stop(failure)
        raise _Found(failure)


def call_learner(exercise, fn, case, limit, *, first=False):
    """``exercise.call(fn, case)`` within ``limit`` seconds, an :class:`limits.Outcome` whatever ``fn`` does.

    A Numba CPU function is compiled here first (without a limit), then called in a forked child where the platform
    allows (:func:`limits.can_fork`); anything else is called in this process on a copy of the case (``first``: the
    function's first call, which may take :data:`FIRST_CALL_LIMIT`), and a change to the copy is reported as the
    exception :class:`_ChangedInput`.
    """
    if limits.is_cpu_compiled(fn) and limits.can_fork():
        outcome = limits.call_in_process(lambda: _compile_for(exercise, fn, case), 600.0)
        if not outcome.ok:  # it does not compile: the TypingError is the outcome
            return outcome
        return limits.call_in_child(lambda: exercise.call(fn, case), limit)
    if first:
        limit = max(limit, FIRST_CALL_LIMIT)
    given_case = case.copied()
    outcome = limits.call_in_process(lambda: exercise.call(fn, given_case), limit)
    if outcome.ok and not given_case.same_as(case):
        outcome.raised = _ChangedInput([n for n, (a, b) in _named_pairs(exercise, case, given_case) if not same(a, b)])
    return outcome


class _ChangedInput(Exception):
    def __init__(self, names):
        super().__init__(", ".join(names))
        self.names = names


def _named_pairs(exercise, a, b):
    na, nb = exercise.named(a), exercise.named(b)
    return [(n, (na[n], nb[n])) for n in na]


def _compile_for(exercise, fn, case):
    """Compile a Numba CPU function for the argument types of ``case`` without running it."""
    import numba

    arguments = getattr(exercise.call, "kernel_arguments", None)
    values = arguments(case) if arguments is not None else (*case.args, *case.kwargs.values())
    fn.compile(tuple(numba.typeof(v) for v in values))


def _failure(exercise, case, expected, outcome, first):
    """The :class:`_Failure` of one call, or None when its output is right."""
    warned = outcome.warned
    if outcome.timed_out:
        return _Failure("timeout", case, expected, None, "did not return within its time limit: a loop that never "
                        "ends? (a `while` whose condition never changes, an index that never moves)", warned=warned)
    if outcome.crashed:
        return _Failure("crashed", case, expected, None, f"crashed the process running it ({outcome.crashed}): a "
                        "compiled kernel that reads or writes outside an array?", warned=warned)
    if outcome.raised is not None:
        exc = outcome.raised
        if isinstance(exc, _ChangedInput):
            return _Failure("changed input", case, expected, None, f"changed its input in place ({exc}): work on a "
                            "copy, callers keep using their arrays", warned=warned)
        if first and (isinstance(exc, NotImplementedError) or getattr(exc, "type_name", None) == "NotImplementedError"):
            return _Failure("not implemented", case, expected, exc, "not implemented yet")
        return _Failure("raised", case, expected, exc, f"raised {_exception_text(exc)}", warned=warned)
    diff = exercise.compare(case, expected, outcome.value)
    if diff is None:
        return None
    return _Failure("differs", case, expected, outcome.value, diff.text, diff, warned)


def _exception_text(exc):
    """``Type: message``, then the last line of the learner's code in its traceback."""
    if isinstance(exc, limits.ChildError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    theirs = [f for f in frames if not f.filename.startswith(_LIBRARY_FOLDERS)]
    line = f" (at {theirs[-1].name}, line {theirs[-1].lineno}: {theirs[-1].line})" if theirs else ""
    return f"{type(exc).__name__}: {exc}{line}"


#: Folders of code that is not the learner's: this package, Python's own library and the installed packages.
_LIBRARY_FOLDERS = tuple({os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib"))})


@contextlib.contextmanager
def _without_local_constants():
    """Hypothesis mixes into its draws literals it finds in the source of the modules loaded in the process that are
    not installed packages (a checkout, a test folder, the learner's own files), so the same seed would draw other
    inputs in another session.  Within this context that pool is empty: the inputs depend on the seed alone.  A
    hypothesis without the pool (older, or reorganised) is left as it is."""
    try:
        from hypothesis.internal.conjecture import providers

        original, cache = providers._get_local_constants, providers.CONSTANTS_CACHE.cache
        empty = type(providers._local_constants)()
    except (ImportError, AttributeError, TypeError):
        yield
        return
    cache.clear()  # constants already chosen per kind of draw
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()


def run_check(exercise, fn, *, seed, max_examples, time_budget=TIME_BUDGET, call_limit=CALL_LIMIT):
    """Search for an input on which ``fn`` and the reference differ; a :class:`Result`."""
    with _without_local_constants():
        return _search(exercise, fn, seed=seed, max_examples=max_examples, time_budget=time_budget,
                       call_limit=call_limit)


def _search(exercise, fn, *, seed, max_examples, time_budget, call_limit):
    start = time.monotonic()
    runner = _Runner(exercise, fn, start + time_budget, call_limit)

    @hypothesis_seed(seed)
    @settings(database=None, max_examples=max_examples, deadline=None, derandomize=False, print_blob=False,
              phases=(Phase.explicit, Phase.generate, Phase.shrink), report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @given(exercise.cases)
    def agreement(case):
        runner.attempt(case)

    failure, flaky = None, False
    try:
        agreement()
    except _Found as found:
        failure = found.failure
    except _Stop as stop:
        failure = stop.failure
    except Flaky:  # the shrunk input passed when it was run again: the learner's function is not deterministic
        failure, flaky = runner.last, True
    except BaseExceptionGroup as group:  # hypothesis's FlakyFailure, an exception group, on some versions
        if not group.subgroup(Flaky):
            raise
        failure, flaky = runner.last, True
    seconds = time.monotonic() - start
    return _result(exercise, fn, failure, runner.calls, seconds, seed, flaky, runner.seen)


def _probe(exercise, fn, seed, count=PROBE_CALLS):
    """``(case, output)`` of ``fn`` on ``count`` more generated inputs (those where it returned): evidence to tell
    apart pitfalls that all explain a counterexample."""
    found = []

    @hypothesis_seed(seed)
    @settings(database=None, max_examples=count, deadline=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @given(exercise.cases)
    def probe(case):
        outcome = call_learner(exercise, fn, case, CALL_LIMIT)
        if outcome.ok:
            found.append((case, outcome.value))

    probe()
    return found


def _result(exercise, fn, failure, calls, seconds, seed, flaky, seen):
    name = exercise.name
    if failure is None:
        text = f"{name}: passed: your function agrees with the reference on {calls} generated inputs ({seconds:.1f} s)."
        return Result(name, True, "passed", None, None, None, text, examples=calls, seconds=seconds, seed=seed)
    named = exercise.named(failure.case)
    if failure.kind == "not implemented":
        text = f"{name}: not implemented yet (the function raises NotImplementedError)."
        return Result(name, False, "not implemented", None, None, failure.got, text, examples=calls,
                      seconds=seconds, seed=seed)
    lines = [f"{name}: {failure.text}" if failure.kind != "differs" else f"{name}: differs from the reference.",
             f"On this input (the smallest found, after {_calls(calls)} in {seconds:.1f} s, seed {seed}):"]
    lines += [f"    {k} = {_indent(describe(v), len(k) + 7)}" for k, v in named.items()]
    lines.append(f"  the reference returns: {_indent(describe(failure.expected), 25)}")
    if failure.kind == "differs":
        lines.append(f"  yours returns:         {_indent(describe(failure.got), 25)}")
        lines.append(f"  {failure.difference.text}.")
    if failure.warned:
        lines.append("  warnings of your call: " + "; ".join(dict.fromkeys(failure.warned)))
    if flaky:
        lines.append("  Run again on this input, your function gave another answer: does it use randomness, or keep "
                     "state between calls?")
    if failure.kind == "differs":
        lines += _diagnosis(exercise, fn, failure, seed, seen)
    return Result(name, False, "failed", named, failure.expected, failure.got, "\n".join(lines), failure.difference,
                  calls, seconds, seed, failure.case)


def _calls(n):
    return "1 call" if n == 1 else f"{n} calls"


def _indent(text, width):
    return text.replace("\n", "\n" + " " * width)


def _returns(exercise, pitfall, case, got):
    """True when the pitfall's wrong version returns ``got`` on ``case``."""
    outcome = limits.call_in_process(lambda: exercise.call(pitfall.fn, case.copied()), CALL_LIMIT)
    return outcome.ok and exercise.compare(case, outcome.value, got) is None


def diagnose(exercise, case, expected, got, seen=()):
    """The pitfalls that explain ``got``, and whether they explain everything seen.

    Returns ``(pitfalls, consistent)``: the pitfalls whose wrong versions return ``got`` on ``case`` (where the
    reference does not) and also what the learner's function returned on every input of ``seen`` (pairs
    ``(case, output)``), with ``consistent`` True; or, when none does (the code may hold another mistake), those
    that explain ``case`` alone, with ``consistent`` False.
    """
    found = [p for p in exercise.pitfalls if _returns(exercise, p, case, got)]
    found = [p for p in found if exercise.compare(case, expected, exercise.call(p.fn, case.copied())) is not None]
    consistent = [p for p in found if all(_returns(exercise, p, c, out) for c, out in seen)]
    return (consistent, True) if consistent else (found, False)


def _diagnosis(exercise, fn, failure, seed, seen):
    """The message's lines on the conventions probably missed."""
    matches, consistent = diagnose(exercise, failure.case, failure.expected, failure.got, seen)
    if len(matches) > 1 or (matches and not consistent):  # more inputs may tell them apart
        more = diagnose(exercise, failure.case, failure.expected, failure.got, seen + _probe(exercise, fn, seed + 1))
        matches, consistent = more if more[0] else (matches, consistent)
    if not matches:
        return []
    if not consistent:
        return ["  On this input, your output is what code returns that "
                + " or that ".join(p.mistake for p in matches) + "; but on other inputs yours differs from such "
                "code, so the cause may be another.  The conventions at stake: "
                + "; ".join(p.convention for p in matches) + "."]
    if len(matches) == 1:
        return [f"  Probably missed: {matches[0].convention}",
                f"  (your output is what code that {matches[0].mistake} returns on this input)."]
    return ["  Probably missed one of these conventions (code breaking any of them returns what yours returns):",
            *(f"  - {p.convention} (code that {p.mistake})" for p in matches)]
