"""A pool of worker processes, each on one thread, for the images of a training iteration side by side.

:class:`Workers` starts "spawn" processes with the thread limits in their environment (OpenBLAS, OpenMP and Numba
read them as a process starts), hands each worker one job at a time, and turns a worker that dies into a
:class:`WorkerStopped` error, where ``multiprocessing.Pool`` would wait for its lost job forever.  On an exception
(Ctrl-C included) the workers are terminated at once; a worker whose parent is gone exits quietly.
"""

import os
import signal

#: What limits a worker to one thread: OpenBLAS (NumPy's matmul), OpenMP and Numba's parallel loops.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


class WorkerStopped(RuntimeError):
    """A worker process stopped while it had a job (killed, out of memory): the job's result is lost."""


class Workers:
    """``n`` fresh processes, each on one thread, that apply a picklable function to jobs: the images of an
    iteration side by side.

    The processes are started with "spawn" (nothing inherited from this process's threads) and with the thread
    limits of ``ONE_THREAD`` in their environment, so that ``n`` of them share ``n`` cores without oversubscribing
    them.  They ignore Ctrl-C: the parent stops them.  A worker that dies (killed, out of memory) is a
    :class:`WorkerStopped` error, never a hang.  Use as a context manager: leaving it normally stops the idle
    workers, leaving it on an exception terminates them at once, without waiting for the jobs they are on.
    """

    def __init__(self, n):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        saved = {name: os.environ.get(name) for name in ONE_THREAD}
        os.environ.update(ONE_THREAD)  # read by each child as it starts
        self._processes, self._pipes = [], []
        try:
            for _ in range(n):
                ours, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(theirs,), daemon=True)
                process.start()
                theirs.close()
                self._processes.append(process)
                self._pipes.append(ours)
        finally:
            for name, value in saved.items():
                if value is None:
                    del os.environ[name]
                else:
                    os.environ[name] = value

    def map(self, fn, jobs):
        """``[fn(job) for job in jobs]``, the jobs shared out among the workers; an exception in ``fn`` is raised
        here."""
        jobs, results = list(jobs), []
        n = len(self._processes)
        for first in range(0, len(jobs), n):  # one job per worker at a time: no pipe fills up both ways
            batch = jobs[first : first + n]
            for k, job in enumerate(batch):
                try:
                    self._pipes[k].send((fn, job))
                except OSError:  # a dead worker's pipe (BrokenPipeError)
                    raise self._stopped(k) from None
            for k in range(len(batch)):
                results.append(self._receive(k))
        return results

    def _receive(self, k):
        pipe, process = self._pipes[k], self._processes[k]
        try:
            while not pipe.poll(0.5):  # True also once the worker's end is closed: recv then raises EOFError
                if not process.is_alive():
                    raise EOFError
            status, value = pipe.recv()
        except (EOFError, OSError):
            raise self._stopped(k) from None
        if status == "error":
            raise value
        return value

    def _stopped(self, k):
        """The :class:`WorkerStopped` error of worker ``k``, which has stopped or is stopping."""
        process = self._processes[k]
        process.join(timeout=5)
        code = process.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        return WorkerStopped(f"training worker {k} stopped ({how}); was it killed, or out of memory?")

    def close(self, *, terminate=False):
        """Stop the workers (a second call does nothing).

        Parameters
        ----------
        terminate : bool
            Terminate them at once (on an error or an interruption, when they may be in the middle of a job)
            rather than ask them to finish; each worker that has not stopped 5 s after being asked is terminated.
        """
        if not terminate:
            for pipe in self._pipes:
                try:
                    pipe.send(None)
                except OSError:  # a dead worker's pipe
                    pass
            for process in self._processes:
                process.join(timeout=5)
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join()
        for pipe in self._pipes:
            pipe.close()
        self._processes, self._pipes = [], []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.close(terminate=exc_type is not None)


def _serve(pipe):
    """A worker's loop: ``(fn, job)`` in, ``("ok", fn(job))`` or ``("error", exception)`` out; None stops it.

    When the parent is gone (its end of the pipe closed), the worker returns quietly: no traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            item = pipe.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if item is None:
            return
        fn, job = item
        try:
            result = ("ok", fn(job))
        except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
            result = ("error", exc)
        try:
            pipe.send(result)
        except OSError:  # the parent is gone (BrokenPipeError): nobody to hand the result to
            return
