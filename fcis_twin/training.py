"""``fcis train``: train the small FCIS of :mod:`fcis_twin.reference.network` and draw its loss curves.

The training images are synthetic scenes drawn on the fly (:func:`fcis_twin.reference.shapes.make_dataset`, the
images of ``fcis data make``) with seed ``TRAIN_SEED_OFFSET + seed``, so that no set written by ``fcis data make
--seed S`` with ``S < TRAIN_SEED_OFFSET`` shares a scene with training; or the images of a COCO-format folder.
"""

import os
from pathlib import Path

from .reference.network import DEFAULT_NETWORK
from .reference.train import DEFAULT_TRAIN, train, with_iterations
from .reference.train_step import DEFAULT_LOSSES
from .viz.training import loss_figure
from .workers import Workers

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
    from .accelerated.train_step import training_kernels

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
        params, log = train(scenes, out, network=network, config=config, seed=seed, resume=resume, on_iteration=report,
                            map_images=map if pool is None else pool.map, **extra)
    finally:
        if pool is not None:
            pool.close()
        if bar is not None:
            bar.close()
    head_weights = dict(zip(("cls", "seg", "box"), DEFAULT_LOSSES.loss_weights, strict=True))
    loss_figure(log, LOSS_PARTS, head_weights=head_weights).savefig(os.path.join(out, "loss.png"), dpi=110)
    return params, log
