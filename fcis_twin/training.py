"""``fcis train``: train the small FCIS of :mod:`fcis_twin.reference.network` and draw its loss curves.

The training images are synthetic scenes drawn on the fly (:func:`fcis_twin.reference.shapes.make_dataset`, the
images of ``fcis data make``) with seed ``TRAIN_SEED_OFFSET + seed``, so that no set written by ``fcis data make
--seed S`` with ``S < TRAIN_SEED_OFFSET`` shares a scene with training; or the images of a COCO-format folder.
"""

import os
from pathlib import Path

import numpy as np

from .reference.network import DEFAULT_NETWORK
from .reference.train import DEFAULT_TRAIN, train, with_iterations

#: Added to ``--seed`` to draw the training scenes: evaluation sets use small seeds.
TRAIN_SEED_OFFSET = 1_000_000
#: Where the bundled model lives inside the package.
BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / "fcis_shapes.npz"
#: The loss parts, in the order of the progress bar and the figure.
LOSS_PARTS = ("rpn_cls", "rpn_box", "cls", "seg", "box")


def bundled_model():
    """The path of the model file shipped with the package; ValueError when this install has none."""
    if not BUNDLED_MODEL.is_file():
        raise ValueError("this install has no bundled model; train one with `fcis train --out DIR` and pass "
                         "--weights DIR/model.npz, or use --oracle")
    return BUNDLED_MODEL


def training_scenes(n, seed, data=None):
    """The training set: ``n`` synthetic 128 x 128 scenes, or the images of the COCO-format folder ``data``."""
    if data is None:
        from .reference.shapes import make_dataset

        return make_dataset(n, seed=TRAIN_SEED_OFFSET + seed, image_size=(128, 128))
    from .reference.coco import ANNOTATION_FILE, IMAGE_FOLDER, load_coco

    coco_set = load_coco(os.path.join(data, ANNOTATION_FILE), os.path.join(data, IMAGE_FOLDER))
    return _Scenes(coco_set)


class _Scenes:
    """A COCO set seen as a sequence of scenes."""

    def __init__(self, coco_set):
        self.coco_set = coco_set

    def __len__(self):
        return len(self.coco_set)

    def __getitem__(self, i):
        return self.coco_set[i].to_scene()


def run_training(out, *, iterations=None, seed=0, backend=None, resume=False, data=None, network=DEFAULT_NETWORK,
                 config=DEFAULT_TRAIN, progress=True, workers=None):
    """Train, then write ``model.npz``, ``log.json`` and ``loss.png`` to ``out`` (created if missing).

    ``workers`` processes work on the images of each iteration side by side (default: one per image of an
    iteration, at most one per CPU core; 1 works in this process).  Each runs its NumPy and Numba code on one
    thread; the weights are those of a run on one process, bit for bit.

    Returns
    -------
    params : dict of str to ndarray
    log : list of dict
    """
    from .accelerated.detect import training_kernels

    if iterations is not None:
        config = with_iterations(config, iterations)
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    os.makedirs(out, exist_ok=True)
    scenes = training_scenes(config.iterations * config.images_per_step, seed, data)
    kernels = training_kernels(backend) if backend != "reference" else None
    if workers is None:
        workers = min(config.images_per_step, os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.iterations, unit="it", desc="training")

    def report(t, losses):
        if bar is not None:
            bar.n = t + 1
            bar.set_postfix({k: f"{losses[k]:.3f}" for k in (*LOSS_PARTS, "total")}, refresh=True)

    extra = {} if kernels is None else {"kernels": kernels}
    pool = Workers(workers) if workers > 1 else None
    try:
        params, log = train(scenes, out, network=network, config=config, seed=seed, resume=resume, progress=report,
                            map_images=map if pool is None else pool.map, **extra)
    finally:
        if pool is not None:
            pool.close()
        if bar is not None:
            bar.close()
    loss_figure(log).savefig(os.path.join(out, "loss.png"), dpi=110)
    return params, log


#: What limits a worker to one thread: OpenBLAS (NumPy's matmul), OpenMP and Numba's parallel loops.
_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


class Workers:
    """``n`` fresh processes, each on one thread, that apply a picklable function to jobs: the images of an
    iteration side by side.

    The processes are started with "spawn" (nothing inherited from this process's threads) and with the thread
    limits of ``_ONE_THREAD`` in their environment, so that ``n`` of them share ``n`` cores without oversubscribing
    them.  They ignore Ctrl-C: the parent stops them.  A worker that dies (killed, out of memory) is a
    RuntimeError, never a hang.  Use as a context manager.
    """

    def __init__(self, n):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        saved = {name: os.environ.get(name) for name in _ONE_THREAD}
        os.environ.update(_ONE_THREAD)  # read by each child as it starts
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
            for pipe, job in zip(self._pipes[: len(batch)], batch, strict=True):
                pipe.send((fn, job))
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
            process.join(timeout=5)
            raise RuntimeError(f"training worker {k} stopped (exit code {process.exitcode}); was it killed, or out "
                               f"of memory?") from None
        if status == "error":
            raise value
        return value

    def close(self):
        """Stop the workers (a second call does nothing)."""
        for pipe in self._pipes:
            try:
                pipe.send(None)
            except OSError:  # a dead worker's pipe
                pass
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()
        self._processes, self._pipes = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _serve(pipe):
    """A worker's loop: ``(fn, job)`` in, ``("ok", fn(job))`` or ``("error", exception)`` out; None stops it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            item = pipe.recv()
        except EOFError:  # the parent is gone
            return
        if item is None:
            return
        fn, job = item
        try:
            result = ("ok", fn(job))
        except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
            result = ("error", exc)
        pipe.send(result)


def loss_figure(log, window=50):
    """The loss parts against the iteration, each smoothed by a running mean over ``window`` iterations."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.subplots()
    t = np.array([r["iteration"] for r in log])
    for name in (*LOSS_PARTS, "total"):
        values = np.array([r[name] for r in log])
        w = max(1, min(window, len(values)))
        smooth = np.convolve(values, np.ones(w) / w, mode="valid")
        ax.plot(t[w - 1 :], smooth, label=name, linewidth=2.2 if name == "total" else 1.2)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"loss (running mean of {window})")
    ax.legend(ncols=3)
    ax.grid(alpha=0.3)
    return fig


def maps_figure(params, network, scene, class_index=None):
    """The network's learned inside and outside maps of one class beside the oracle's at the same settings.

    The oracle (:func:`fcis_twin.demo.scene_oracle_outputs`) is drawn at the network's own stride, ``k`` and anchors
    (:func:`fcis_twin.reference.network.inference_config`), so that the two sets of ``k x k`` maps compare tile for
    tile.

    Parameters
    ----------
    params : dict of str to ndarray
    network : NetworkConfig
    scene : Scene
    class_index : int, optional
        The class whose maps are drawn (default: that of the scene's largest instance).

    Returns
    -------
    matplotlib.figure.Figure
        Five panels: the image and its ground truth, then the learned inside and outside maps, then the oracle's,
        each a ``k x k`` mosaic (:func:`fcis_twin.viz.part_mosaic`) over the whole image.
    """
    from matplotlib.figure import Figure

    from .demo import scene_oracle_outputs
    from .reference.boxes import box_area
    from .reference.network import inference_config, inference_outputs
    from .reference.shapes import CLASS_NAMES
    from .viz import clean_axes, draw_instances, part_mosaic

    k = network.group_size
    if class_index is None:
        class_index = int(scene.labels[np.argmax(box_area(scene.boxes))])
    learned = inference_outputs(params, scene.image, network).seg_maps
    oracle = scene_oracle_outputs(scene, inference_config(network), num_classes=network.num_classes).seg_maps
    fig = Figure(figsize=(17, 3.6), layout="constrained")
    ax = fig.subplots(1, 5)
    draw_instances(ax[0], scene.image, scene.masks, scene.boxes, scene.labels, CLASS_NAMES)
    ax[0].set_title("image and ground truth")
    name = CLASS_NAMES[class_index]
    for col, (source, maps) in enumerate((("learned", learned), ("oracle", oracle))):
        for j, word in ((1, "inside"), (0, "outside")):  # channel (2 c + j) k^2 + part: j = 1 inside, 0 outside
            first = (2 * class_index + j) * k * k
            a = ax[1 + 2 * col + (1 - j)]
            image = a.imshow(part_mosaic(maps[0, first : first + k * k], k), cmap="magma")
            fig.colorbar(image, ax=a, shrink=0.8)
            a.set_title(f"{source}: '{name}' {word} maps")
            clean_axes(a)
    return fig
