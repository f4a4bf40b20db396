"""``fcis train``: train the small FCIS of :mod:`fcis_twin.reference.network` and draw its loss curves.

The training images are synthetic scenes drawn on the fly (:func:`fcis_twin.reference.shapes.make_dataset`, the
images of ``fcis data make``) with seed ``TRAIN_SEED_OFFSET + seed``, so that no set written by ``fcis data make
--seed S`` with ``S < TRAIN_SEED_OFFSET`` shares a scene with training; or the images of a COCO-format folder.
"""

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from .reference._checks import MAX_INT, as_int
from .reference._files import check_folder_target, read_json, writable_folder
from .reference.network import DEFAULT_NETWORK
from .reference.pretrain import DEFAULT_PRETRAINING, PRETRAIN_SEED_OFFSET, pretraining_images
from .reference.shapes import MAX_DATASET_IMAGES
from .reference.train import DEFAULT_TRAIN, train, with_iterations
from .reference.train_step import DEFAULT_LOSSES
from .viz.training import loss_figure
from .workers import Workers

#: Added to ``--seed`` to draw the training scenes: evaluation sets use small seeds.
TRAIN_SEED_OFFSET = 1_000_000
#: The largest ``--seed``: the scenes' seed ``TRAIN_SEED_OFFSET + seed`` and the pretraining images'
#: ``PRETRAIN_SEED_OFFSET + seed`` must stay within int64.
MAX_SEED = MAX_INT - max(TRAIN_SEED_OFFSET, PRETRAIN_SEED_OFFSET)
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


def training_scenes(n, seed, data=None, *, class_names=None):
    """The training set: ``n`` synthetic 128 x 128 scenes, or the images of the COCO-format folder ``data``.

    A folder's categories are matched by name to ``class_names``, the classes of the model to train (background
    first; default :data:`fcis_twin.reference.shapes.CLASS_NAMES`, the scenes'), before any training
    (:meth:`CocoSet.relabeled <fcis_twin.reference.coco.CocoSet.relabeled>`): the scenes carry the model's labels,
    whatever the set's category ids, and a set that lacks one of the classes, names another or names one twice is
    a ValueError naming ``--data`` and both lists.
    """
    from .reference.shapes import CLASS_NAMES, make_dataset

    if data is None:
        return make_dataset(n, seed=TRAIN_SEED_OFFSET + seed, image_size=(128, 128))
    from .reference.coco import ANNOTATION_FILE, IMAGE_FOLDER, load_coco

    coco_set = load_coco(os.path.join(data, ANNOTATION_FILE), os.path.join(data, IMAGE_FOLDER))
    return _Scenes(coco_set.relabeled(CLASS_NAMES if class_names is None else class_names, name="--data"))


class _Scenes:
    """A COCO set, its labels those of the model to train (:meth:`CocoSet.relabeled`), seen as a sequence of
    scenes."""

    def __init__(self, coco_set):
        self.coco_set = coco_set

    def __len__(self):
        return len(self.coco_set)

    def __getitem__(self, i):
        return self.coco_set[i].to_scene()


def run_training(out, *, iterations=None, seed=0, backend=None, resume=False, overwrite=False, data=None,
                 network=DEFAULT_NETWORK, config=DEFAULT_TRAIN, progress=True, workers=None,
                 pretrain_iterations=None):
    """Pretrain the backbone, train FCIS, then write ``model.npz``, ``log.json``, ``pretrain_log.json`` and
    ``loss.png`` to ``out``.

    ``out`` must be missing or an empty folder, as for ``fcis data make`` (the one policy of both,
    ``check_folder_target`` in ``reference/_files.py``), unless ``resume`` (continue the run it holds from its
    ``checkpoint.npz``) or ``overwrite`` (replace what it holds).  Before the first iteration it is created and
    checked writable.  A run that fails before writing anything (no checkpoint, no model) leaves the file system as
    it found it: a folder it created is removed again, and what ``overwrite`` moved aside (to a hidden sibling
    ``.NAME.old-*``) is put back; otherwise that is deleted when the run ends.

    ``workers`` processes work on the images of each iteration side by side (default: one per image of an
    iteration, at most one per CPU core; never more than the images of an iteration, ``config.images_per_step``).
    Every image is worked on in a worker process, with ``workers=1`` too, and each worker runs its NumPy and Numba
    code on one thread; this process only sums the gradients and takes the SGD step, element by element.  So the
    weights are the same bit for bit for every ``workers``, whatever the number of cores.

    Parameters
    ----------
    out : str or path
    iterations : int >= 1, optional
        FCIS's iterations, default ``config.iterations``; on synthetic scenes at most
        ``MAX_DATASET_IMAGES / images_per_step`` (50,000).
    pretrain_iterations : int >= 0, optional
        The backbone's pretraining iterations (:mod:`fcis_twin.reference.pretrain`), on images of one shape each
        drawn from seed ``PRETRAIN_SEED_OFFSET + seed``; default ``DEFAULT_PRETRAINING.iterations``; 0: none, FCIS
        starts from random weights.
    seed : int in [0, MAX_SEED]
    backend : str, optional
    resume, overwrite : bool
        Exclude each other.
    data : str or path, optional
        A COCO-format folder to train on instead of synthetic scenes.
    network : NetworkConfig
    config : TrainConfig
    progress : bool
        Draw a progress bar.
    workers : int >= 1, optional

    Returns
    -------
    params : dict of str to ndarray
    log : list of dict

    Raises
    ------
    ValueError
        Named after the command's options (``--out``, ``--seed``, ``--iterations``, ``--workers``): a bad value, an
        ``out`` that holds something without ``resume`` or ``overwrite``, or that cannot be written.
    fcis_twin.workers.WorkerStopped
        A worker process died (killed, out of memory).
    """
    from .accelerated.train_step import training_kernels

    if iterations is not None:
        config = with_iterations(config, iterations)
    pretrain_iterations = as_int("--pretrain-iterations", DEFAULT_PRETRAINING.iterations if pretrain_iterations is None
                                 else pretrain_iterations, low=0)
    pretraining = with_iterations(DEFAULT_PRETRAINING, pretrain_iterations) if pretrain_iterations else None
    seed = as_int("--seed", seed, low=0)
    if seed > MAX_SEED:
        raise ValueError(f"--seed must be <= {MAX_SEED} (the seeds of the training scenes, {TRAIN_SEED_OFFSET} + "
                         f"--seed, and of the pretraining images, {PRETRAIN_SEED_OFFSET} + --seed, must fit in "
                         f"int64), got {seed}")
    batch = config.images_per_step
    if pretraining is not None and pretraining.iterations * pretraining.images_per_step > MAX_DATASET_IMAGES:
        raise ValueError(f"--pretrain-iterations must be <= {MAX_DATASET_IMAGES // pretraining.images_per_step} "
                         f"({pretraining.images_per_step} new images an iteration, at most {MAX_DATASET_IMAGES} in "
                         f"all), got {pretraining.iterations}")
    if data is None and config.iterations * batch > MAX_DATASET_IMAGES:
        raise ValueError(f"--iterations must be <= {MAX_DATASET_IMAGES // batch} on synthetic scenes ({batch} new "
                         f"scenes an iteration, at most {MAX_DATASET_IMAGES} in all; or train on a set with --data), "
                         f"got {config.iterations}")
    workers = min(as_int("--workers", (os.cpu_count() or 1) if workers is None else workers, low=1), batch)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run in --out, or replace it")
    if not resume:  # before anything is loaded or created
        check_folder_target("--out", out, overwrite=overwrite, overwrite_hint=_OVERWRITE_HINT)
    class_names, extra = None, {}
    if data is not None:  # a set is matched to the model's classes by name; a model of other classes is refused
        from .demo import model_class_names

        class_names = model_class_names(network)
    scenes = training_scenes(config.iterations * config.images_per_step, seed, data, class_names=class_names)
    if pretraining is not None:
        extra["pretrain_images"] = pretraining_images(pretraining.iterations * pretraining.images_per_step,
                                                      PRETRAIN_SEED_OFFSET + seed)
    kernels = training_kernels(backend) if backend != "reference" else None
    extra.update({} if kernels is None else {"kernels": kernels})
    bars = {}
    with _run_folder(out, resume=resume, overwrite=overwrite), Workers(workers) as pool:

        def bar(phase, total, t, values):
            if not progress:
                return
            if phase not in bars:
                from tqdm import tqdm

                for other in bars.values():
                    other.close()
                bars[phase] = tqdm(total=total, unit="it", desc=phase)
            bars[phase].n = t + 1
            bars[phase].set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=True)

        def report(t, losses):
            bar("training", config.iterations, t, {k: losses[k] for k in (*LOSS_PARTS, "total")})

        def report_pretraining(t, record):
            bar("pretraining", pretraining.iterations, t, {k: record[k] for k in ("loss", "accuracy")})

        try:
            params, log = train(scenes, out, network=network, config=config, seed=seed, resume=resume,
                                on_iteration=report, map_images=pool.map, pretraining=pretraining,
                                on_pretrain_iteration=report_pretraining, **extra)
        finally:
            for b in bars.values():
                b.close()
        head_weights = dict(zip(("cls", "seg", "box"), DEFAULT_LOSSES.loss_weights, strict=True))
        pretrain_log = _read_pretrain_log(out) if pretraining is not None else None
        loss_figure(log, LOSS_PARTS, head_weights=head_weights, pretrain_log=pretrain_log).savefig(
            os.path.join(out, "loss.png"), dpi=110)
    return params, log


def _read_pretrain_log(out):
    """The pretraining log that :func:`~fcis_twin.reference.train.train` wrote into ``out``; None if it has none
    (a resumed run whose folder lost it) or cannot be read."""
    try:
        return read_json("pretrain_log.json", os.path.join(out, "pretrain_log.json"))
    except (OSError, ValueError):
        return None


#: How ``fcis train`` lets a user train into a folder that holds something.
_OVERWRITE_HINT = "--resume to continue its run, or --overwrite"


@contextlib.contextmanager
def _run_folder(out, *, resume, overwrite):
    """``out`` ready for a run: created, moved aside (``overwrite``), checked writable; undone when the run fails
    before writing anything (see :func:`run_training`)."""
    if resume:  # the run's own folder, kept whatever happens; a missing one is the checkpoint loader's to report
        if os.path.isdir(out):
            writable_folder("--out", out)
        yield
        return
    target = check_folder_target("--out", out, overwrite=overwrite, overwrite_hint=_OVERWRITE_HINT)
    missing, folder = [], target  # the folders this run creates, deepest first
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    aside = None
    if target.is_dir() and any(target.iterdir()):  # overwrite: the old contents wait beside it until the run ends
        aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        try:
            os.rename(target, aside)
        except OSError as exc:
            raise ValueError(f"--out {os.fsdecode(out)!r} cannot be moved aside to be replaced: "
                             f"{exc.strerror or exc}") from None
    try:
        writable_folder("--out", target)
        yield
    except BaseException:
        if not (target.is_dir() and any(target.iterdir())):  # nothing written: put things back as they were
            for folder in [target] if aside is not None else missing:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty
            if aside is not None:
                with contextlib.suppress(OSError):  # should this fail, the old contents stay in the hidden folder
                    os.rename(aside, target)
        elif aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
