"""Calls of a learner's function that end, whatever the function does: a time limit, and a separate process for
compiled code.

- Python code (a NumPy function, a kernel under Numba's CUDA simulator) runs in this process.  When it passes its
  time limit, an exception is raised inside it, in the calling thread and in every thread the call started (the
  simulator's), so that a ``while True`` of a half-written loop ends where it is.
- A Numba CPU function (``@numba.njit``, a ``prange`` kernel) cannot be interrupted: compiled code never returns to
  the interpreter.  On Linux it is compiled here, then called in a child process made by ``fork``, which is killed
  at the limit; an out-of-bounds write that crashes the child is reported as such, never a crash of the caller.
  Elsewhere it runs in this process, without a limit.
- A kernel on a real GPU runs in this process without a limit: nothing short of ending the process stops a running
  kernel, and CUDA does not survive a ``fork``.
"""

import ctypes
import faulthandler
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass


class TimeLimitReached(BaseException):
    """Raised inside a call that passed its time limit.  A BaseException, so that ``except Exception`` in the learner's
    code does not swallow it."""


class _StopThread(Exception):
    """Raised in the threads a timed-out call started; an Exception, which the CUDA simulator's threads catch and
    keep, so that none of them dies with an unhandled exception."""


@dataclass
class Outcome:
    """What one call gave: its ``value``, or the exception it ``raised``, or ``timed_out``, or ``crashed`` (a child
    process that died: the signal's name).  ``printed``: the warnings the call gave, one line each."""

    value: object = None
    raised: BaseException | None = None
    timed_out: bool = False
    crashed: str | None = None
    warned: tuple = ()

    @property
    def ok(self):
        return self.raised is None and not self.timed_out and self.crashed is None


def _raise_in_thread(ident, exc_type):
    """Schedule ``exc_type`` to be raised in thread ``ident`` at its next Python instruction (None cancels)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type)
                                               if exc_type is not None else ctypes.c_void_p(0))


def _recorded_warnings(caught):
    return tuple(f"{w.category.__name__}: {w.message}" for w in caught)


def call_in_process(call, seconds):
    """``call()`` in this thread, interrupted after ``seconds``; an :class:`Outcome`.

    Warnings the call gives are recorded (a test run that turns warnings into errors would otherwise see the
    learner's ``RuntimeWarning`` as an exception).  ``KeyboardInterrupt`` and ``SystemExit`` are not the call's
    outcome: they propagate.
    """
    caller = threading.get_ident()
    before = set(threading.enumerate())
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def expire():
        with lock:
            if state["done"]:
                return
            state["fired"] = True
            _raise_in_thread(caller, TimeLimitReached)
            for thread in threading.enumerate():  # the threads the call started (the CUDA simulator's)
                if thread not in before and thread is not timer and thread.ident is not None:
                    _raise_in_thread(thread.ident, _StopThread)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    caught = []
    try:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                timer.start()
                value = call()
        finally:
            with lock:
                state["done"] = True
            timer.cancel()
    except TimeLimitReached:
        return Outcome(timed_out=True, warned=_recorded_warnings(caught))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the learner's code raised: the outcome of the call
        if state["fired"]:
            return Outcome(timed_out=True, warned=_recorded_warnings(caught))
        return Outcome(raised=exc, warned=_recorded_warnings(caught))
    if state["fired"]:  # expired as the call returned: the exception may still be pending; cancel it
        _raise_in_thread(caller, None)
        return Outcome(timed_out=True)
    return Outcome(value=value, warned=_recorded_warnings(caught))


def is_cpu_compiled(fn):
    """True for a Numba CPU function (``@numba.njit``): compiled code that this process cannot interrupt."""
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    return isinstance(fn, CPUDispatcher)


def is_cuda_kernel(fn):
    """True for a Numba CUDA kernel (``@cuda.jit``, on a GPU or under the simulator): it is launched, not called."""
    return hasattr(fn, "forall") and hasattr(fn, "__getitem__")


def can_fork():
    """True where compiled calls run in a forked child: Linux (``fork`` elsewhere is missing or unsafe)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class ChildError(Exception):
    """An exception raised in the child process, with its type's name and the child's traceback as text."""

    def __init__(self, type_name, message, trace):
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.trace = type_name, message, trace


def call_in_child(call, seconds):
    """``call()`` in a forked child, killed after ``seconds``; an :class:`Outcome` whose ``value`` came back pickled.

    An exception in the child comes back as a :class:`ChildError` carrying its type name, message and traceback.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # the child only runs the call and exits: the fork-with-threads warning is moot
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: run, send the outcome, exit without running the parent's exit handlers
        code = 0
        try:
            faulthandler.disable()  # a crash is reported by the parent, in words, not as the child's stack dump
            os.close(read_end)
            try:
                payload = ("value", call())
            except BaseException as exc:
                payload = ("raised", (type(exc).__name__, str(exc), traceback.format_exc()))
            try:
                data = pickle.dumps(payload)
            except Exception as exc:
                data = pickle.dumps(("raised", (type(exc).__name__, f"the result could not be sent back: {exc}", "")))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks, deadline, timed_out = [], time.monotonic() + seconds, False
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                timed_out = True
                break
            chunk = pipe.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return Outcome(timed_out=True)
    if os.WIFSIGNALED(status):
        return Outcome(crashed=signal.Signals(os.WTERMSIG(status)).name)
    if not chunks:
        return Outcome(crashed=f"exit status {os.WEXITSTATUS(status)}")
    kind, payload = pickle.loads(b"".join(chunks))
    if kind == "raised":
        return Outcome(raised=ChildError(*payload))
    return Outcome(value=payload)
