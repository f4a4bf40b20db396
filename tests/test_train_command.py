"""`fcis train` and `run_training`: the output folder's policy, weights that do not depend on the workers, workers
capped and stopped cleanly, and messages that name the option."""

import _thread
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

from fcis_twin import training
from fcis_twin.cli import main
from fcis_twin.reference import _files
from fcis_twin.reference.network import NetworkConfig
from fcis_twin.reference.shapes import make_dataset
from fcis_twin.reference.train import load_model
from fcis_twin.workers import ONE_THREAD, Workers, WorkerStopped, _serve

TINY = NetworkConfig(group_size=2, output_size=6, backbone=((4, 2, 1), (4, 2, 1)), rpn_channels=4, head_channels=4,
                     norm_groups=2)


class _Figure:
    """Stands in for the loss figure: writes an empty file."""

    def savefig(self, path, **_):
        open(path, "wb").close()


@pytest.fixture
def quick(monkeypatch):
    """`run_training` on small scenes, without drawing its figure (a second of matplotlib)."""
    monkeypatch.setattr(training, "training_scenes", lambda n, seed, data=None, **_: make_dataset(
        n, seed=seed, image_size=(48, 48), max_objects=2, size_range=(12, 30)))
    monkeypatch.setattr(training, "loss_figure", lambda *args, **kwargs: _Figure())


def _run(out, **options):
    """A tiny run of `run_training` (two iterations, no pretraining, unless told)."""
    return training.run_training(out, network=TINY, backend="reference", progress=False,
                                 **{"iterations": 2, "pretrain_iterations": 0, **options})


def _fail(argv, capsys, code=2):
    """`fcis ARGV` fails with ``code``; its error output."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == code
    return capsys.readouterr().err


def test_a_folder_that_holds_a_run_is_refused_unless_resume_or_overwrite(tmp_path, capsys, quick):
    """A run into a folder that holds something is a usage error that names --resume and --overwrite, the folder
    untouched; --overwrite replaces the whole old run, its checkpoint too; --resume and --overwrite exclude each
    other."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.npz").write_bytes(b"old model")
    (out / "checkpoint.npz").write_bytes(b"old checkpoint")
    err = _fail(["train", "--out", str(out), "--iterations", "1"], capsys)
    assert f"--out '{out}' exists and is not empty; use --resume to continue its run, or --overwrite" in err
    assert (out / "model.npz").read_bytes() == b"old model"
    assert "exclude each other" in _fail(["train", "--out", str(out), "--resume", "--overwrite"], capsys)
    _run(out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing left aside
    assert sorted(p.name for p in out.iterdir()) == ["log.json", "loss.png", "model.npz"]
    assert load_model(out / "model.npz", TINY)[2]["iteration"] == 2


def test_the_weights_do_not_depend_on_the_workers(tmp_path, quick, monkeypatch):
    """A tiny two-iteration run ends bit for bit the same with 1 and 2 workers; with 1 too, the images are worked
    on in a process limited to one thread (this process's BLAS threads, whose number changes float sums, take no
    part)."""
    seen, real_train = [], training.train

    def spy(*args, map_images, **kwargs):
        seen.extend(map_images(os.getenv, list(ONE_THREAD)))  # the thread limits where the images are worked on
        return real_train(*args, map_images=map_images, **kwargs)

    for name in ONE_THREAD:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(training, "train", spy)
    one, _ = _run(tmp_path / "one", workers=1)
    two, _ = _run(tmp_path / "two", workers=2)
    assert seen == ["1"] * (2 * len(ONE_THREAD))
    assert all(np.array_equal(one[k], two[k]) for k in one)


def test_an_unwritable_folder_is_refused_before_the_first_iteration(tmp_path, quick, monkeypatch):
    """An --out this process cannot write into is a ValueError naming it before any iteration, not after the
    run."""
    out = tmp_path / "run"
    out.mkdir()
    iterations = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: iterations.append(1))
    os.chmod(out, 0o555)
    try:
        if os.access(out, os.W_OK):  # root writes anyway: refuse the probe file as a read-only file system would
            def refuse(path):
                raise PermissionError(13, "Permission denied", os.fspath(path))

            monkeypatch.setattr(_files, "_make_file", refuse)
        with pytest.raises(ValueError, match="--out .* cannot be written: Permission denied"):
            _run(out)
    finally:
        os.chmod(out, 0o755)
    assert iterations == [] and out.is_dir()


def test_workers_are_capped_at_the_images_of_an_iteration(tmp_path, quick, monkeypatch):
    """--workers 40 starts 2 processes, one per image of an iteration: more would only idle."""
    started = []

    class Counted(Workers):
        def __init__(self, n):
            started.append(n)
            raise KeyboardInterrupt  # enough seen: start nothing

    monkeypatch.setattr(training, "Workers", Counted)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "run", workers=40)
    assert started == [2]


def test_a_killed_worker_is_one_message_without_traceback(tmp_path, capsys, monkeypatch):
    """A worker that dies under `fcis train` ends the command with exit code 1 and one line that says which and
    how, no traceback; the folder the run created and never wrote to is gone."""
    def dying(*args, map_images, **kwargs):
        map_images(os._exit, [9, 9])

    monkeypatch.setattr(training, "train", dying)
    out = tmp_path / "run"
    err = _fail(["train", "--out", str(out), "--iterations", "1", "--workers", "2", "--backend", "reference"],
                capsys, code=1)
    assert "fcis: error: training worker 0 stopped (exit code 9); was it killed, or out of memory?" in err
    assert "Traceback" not in err and not out.exists()


def test_a_dead_workers_pipe_is_a_worker_stopped_error():
    """A job handed to a worker that was killed between jobs is a WorkerStopped error that names the signal, not a
    BrokenPipeError."""
    with Workers(1) as workers:
        process = workers._processes[0]
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        with pytest.raises(WorkerStopped, match=r"training worker 0 stopped \(killed by SIGKILL\)"):
            workers.map(abs, [-1])


def test_a_worker_whose_parent_is_gone_exits_quietly():
    """A worker that finishes a job after its parent is gone returns without an error (no BrokenPipeError
    traceback from orphaned workers)."""
    ours, theirs = multiprocessing.Pipe()
    ours.send((abs, -3))
    ours.close()
    previous = signal.getsignal(signal.SIGINT)  # the worker's loop ignores Ctrl-C: put this process's back
    try:
        assert _serve(theirs) is None
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_interrupt_stops_busy_workers_at_once():
    """Ctrl-C while both workers are busy: the pool is gone within a second or so, not after 5 s per worker."""
    timer = threading.Timer(0.3, _thread.interrupt_main)
    began = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt), Workers(2) as workers:
            processes = list(workers._processes)
            timer.start()
            workers.map(time.sleep, [30, 30])
    finally:
        timer.cancel()
    assert time.perf_counter() - began < 3 and not any(p.is_alive() for p in processes)


def test_train_messages_name_the_option_and_the_users_value(tmp_path, capsys):
    """--iterations beyond the synthetic scenes' limit and a --seed that the scenes' offset pushes beyond int64 are
    usage errors that name the option, its limit and the user's value; --resume without a run: no folder is
    created."""
    out = tmp_path / "run"
    biggest = 2**63 - 1
    for argv, message in ((["--iterations", "50001"], "--iterations must be <= 50000 on synthetic scenes"),
                          (["--pretrain-iterations", "25001"], "--pretrain-iterations must be <= 25000 "),
                          (["--pretrain-iterations", "-1"], "--pretrain-iterations must be >= 0"),
                          (["--seed", str(biggest)], f"--seed must be <= {training.MAX_SEED} "),
                          (["--resume"], "checkpoint.npz' does not exist")):
        err = _fail(["train", "--out", str(out), *argv], capsys)
        assert message in err and (argv[-1] in err or argv == ["--resume"])
        assert not out.exists()
    assert f"got {biggest}\n" in _fail(["train", "--out", str(out), "--seed", str(biggest)], capsys)


def test_a_run_that_fails_before_writing_leaves_things_as_they_were(tmp_path, quick, monkeypatch):
    """Stopped before its first file, a run removes the folders it created (parents too) and puts back what
    --overwrite moved aside; stopped after its first checkpoint, it keeps that and drops the old run."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "new" / "run")
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.npz").write_bytes(b"old model")
    with pytest.raises(KeyboardInterrupt):
        _run(old, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and (old / "model.npz").read_bytes() == b"old model"

    def interrupted_after_a_checkpoint(scenes, out, **kwargs):
        (out / "checkpoint.npz").write_bytes(b"new checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted_after_a_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        _run(old, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and [p.name for p in old.iterdir()] == ["checkpoint.npz"]


def test_a_run_pretrains_its_backbone_first(tmp_path, quick):
    """With --pretrain-iterations, the run writes the pretraining's log beside its own, a checkpoint of the
    pretrained weights before FCIS's first iteration, and records the pretraining in its model file; the backbone it
    starts from is not the one drawn without pretraining."""
    pretrained, _ = _run(tmp_path / "pre", pretrain_iterations=2)
    plain, _ = _run(tmp_path / "plain")
    out = tmp_path / "pre"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "log.json", "loss.png", "model.npz",
                                                     "pretrain_log.json"]
    assert load_model(out / "model.npz", TINY)[2]["pretraining"]["iterations"] == 2
    assert load_model(tmp_path / "plain" / "model.npz", TINY)[2]["pretraining"] is None
    assert not np.array_equal(pretrained["conv1.weight"], plain["conv1.weight"])
