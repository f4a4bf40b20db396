"""The ``fcis`` command line.

Subcommands:

``fcis demo [--seed N] [--out fcis_demo.png] [--weights FILE | --oracle] [--backend B]``
    Generate a synthetic scene, run the full FCIS inference on network outputs (the bundled model's where the
    install has one, a model file's, or the oracle's), print the detections and
    write a figure of every stage (into ``fcis_demo.png`` inside ``--out`` when it is a folder; ``.png`` added
    when it has no suffix; replaced whole when it exists).

``fcis bench [--out DIR] [--quick] [--repeats N] [--backend B ...] [--workload W ...]``
    Time the reference against every available backend (and torchvision's NMS and ps_roi_pool where importable) on the
    FCIS-COCO workload and a sweep of sizes; write bench.json, bench.md and bench.png to DIR.  A ``--backend``
    this machine cannot time is a usage error.

``fcis data make --out DIR [--n N] [--seed S] [--size H W] [--overwrite]``
    Write a synthetic instance-segmentation set in COCO format: ``DIR/instances.json`` and ``DIR/images/*.png``.  DIR
    must be missing or empty unless ``--overwrite``; the set appears in DIR only when complete.

``fcis evaluate --data DIR [--weights FILE | --oracle] [--limit N] [--backend B]``
    Run FCIS over a COCO-format set and print COCO mask/box AP and SBD mAP^r: the bundled model's (default), a
    model file's (``--weights``), or the oracle network outputs' (``--oracle``).

``fcis train --out DIR [--iterations N] [--pretrain-iterations N] [--seed S] [--resume | --overwrite] ...``
    Pretrain the backbone to classify the shapes (``--pretrain-iterations``, default 8000; 0: none), then train
    the small FCIS in NumPy on synthetic scenes drawn on the fly (or a COCO-format folder, ``--data DIR``); write
    ``model.npz``, ``log.json``, ``pretrain_log.json``, ``loss.png`` and, along the way, ``checkpoint.npz`` to
    DIR (``--backend B`` and ``--workers N`` as below).  DIR must be missing
    or empty (as for ``fcis data make``) unless ``--resume``, which continues from the checkpoint and ends with the
    weights an uninterrupted run would have, or ``--overwrite``, which replaces what DIR holds; it is checked
    writable before the first iteration, and a run that fails before writing anything leaves no folder behind.
    ``--workers`` processes (default: one per image of an iteration, at most one per core; never more than the
    images of an iteration) work on each iteration's images side by side; the weights do not depend on how many.

``--backend`` of ``demo``, ``evaluate`` and ``train`` is ``reference`` or a backend of ``fcis_twin.accelerated``
(default: the fastest available); every backend gives the reference's detections on the oracle outputs, and the
reference's training steps to float32 rounding.

Bad arguments, unreadable or unwritable paths and bad input files are usage errors (exit code 2, a message and
no traceback); running out of memory, or a training worker that dies, exits with code 1 and a message, an
interruption with code 130.
"""

import argparse
import sys


def _demo(args):
    from .demo import run_demo

    model = _model(args)
    result = run_demo(seed=args.seed, out=args.out, backend=_backend(args.backend), model=model)
    print("network outputs: " + ("the oracle's" if model is None else model[2]))
    print(result.table)
    print(f"\nfigure written to {result.figure_path}")
    return 0


def _bench(args):
    from .bench import run

    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    run(args.out, quick=args.quick, repeats=args.repeats, backends=args.backend, workloads=args.workload)
    print(f"\nresults written to {args.out}/bench.json, bench.md, bench.png")
    return 0


def _data_make(args):
    from .reference._files import check_folder_target
    from .reference.coco import make_data
    from .reference.shapes import MAX_DATASET_IMAGES, MAX_SCENE_PIXELS, MIN_IMAGE_SIDE

    if not 1 <= args.n <= MAX_DATASET_IMAGES:
        raise ValueError(f"--n must be in [1, {MAX_DATASET_IMAGES}], got {args.n}")
    h, w = args.size
    if min(h, w) < MIN_IMAGE_SIDE or h * w > MAX_SCENE_PIXELS:
        raise ValueError(f"--size H W needs both sides >= {MIN_IMAGE_SIDE} and H * W <= {MAX_SCENE_PIXELS} "
                         f"(e.g. 2048 2048), got {h} {w}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    check_folder_target("--out", args.out, overwrite=args.overwrite, overwrite_hint="--overwrite")
    path = make_data(args.out, args.n, args.seed, image_size=(h, w), overwrite=args.overwrite)
    print(f"wrote {args.n} images and {path}")
    return 0


def _model(args, *, without_bundled="oracle"):
    """``(params, network, name)`` of the model that ``--weights`` / ``--oracle`` choose, None for the oracle.

    Without either flag: the bundled model; where this install has none, the oracle (``without_bundled="oracle"``)
    or a ValueError that says what to pass (``"error"``)."""
    import os

    from .reference.train import load_model
    from .training import BUNDLED_MODEL, bundled_model

    if args.weights is not None and args.oracle:
        raise ValueError("--weights and --oracle exclude each other: a model or the oracle")
    if args.oracle or (args.weights is None and without_bundled == "oracle" and not BUNDLED_MODEL.is_file()):
        return None
    path = bundled_model() if args.weights is None else args.weights
    params, network, _, _ = load_model(path, name="the bundled model" if args.weights is None else "--weights")
    name = "the bundled model" if args.weights is None else f"the model {os.fspath(path)}"
    return params, network, name


def _evaluate(args):
    import os

    from tqdm import tqdm

    from .demo import evaluate_model, evaluate_oracle, model_class_names
    from .reference.coco import ANNOTATION_FILE, IMAGE_FOLDER, load_coco

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    model = _model(args, without_bundled="error")
    coco_set = load_coco(os.path.join(args.data, ANNOTATION_FILE), os.path.join(args.data, IMAGE_FOLDER))
    if model is not None:  # the set's categories against the model's classes, by name, before any inference
        coco_set = coco_set.relabeled(model_class_names(model[1]), name="--data")
    progress = lambda it: tqdm(it, desc="images", unit="img")  # noqa: E731
    if model is None:
        m = evaluate_oracle(coco_set, limit=args.limit, progress=progress, backend=_backend(args.backend))
        what = "oracle network outputs"
    else:
        m = evaluate_model(coco_set, model[0], model[1], limit=args.limit, progress=progress,
                           backend=_backend(args.backend))
        what = model[2]
    print(f"\n{m['images']} images, {m['detections']} detections ({what})\n")
    print(f"{'COCO':<6} " + " ".join(f"{k:>6}" for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")))
    for iou_type, stats in m["coco"].items():
        print(f"{iou_type:<6} " + " ".join(f"{v:6.3f}" for v in stats.values()))
    print("\nSBD " + "  ".join(f"{k} {v:.3f}" for k, v in m["sds"].items() if k.startswith("mAP")))
    c = m["classes"]
    share = c["named_right"] / max(c["covered"], 1)
    print(f"\nClasses: {c['covered']} of {c['instances']} instances covered by a detection of mask IoU >= 0.5; "
          f"the best-scoring one names {c['named_right']} of them right ({share:.0%})")
    return 0


def _backend(name):
    """``--backend``: the named one, or the fastest available when it is not given."""
    from .accelerated import resolve_backend

    return resolve_backend(None) if name is None else name


def _add_backend_option(parser):
    from .accelerated import BACKENDS

    parser.add_argument("--backend", choices=["reference", *BACKENDS],
                        help="where the inference runs (default: the fastest available backend; the detections "
                             "equal the reference's)")


def _train(args):
    from .training import run_training

    if args.iterations is not None and args.iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {args.iterations}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    _, log = run_training(args.out, iterations=args.iterations, seed=args.seed, backend=_backend(args.backend),
                          resume=args.resume, overwrite=args.overwrite, data=args.data, workers=args.workers,
                          pretrain_iterations=args.pretrain_iterations)
    last = log[-1]
    print(f"\n{len(log)} iterations; last total loss {last['total']:.3f}; model written to "
          f"{args.out}/model.npz (log.json, loss.png beside it)")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="fcis", description="FCIS: a readable NumPy reference and its GPU twin.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run FCIS on a synthetic scene (the bundled model by default), draw every stage")
    demo.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    demo.add_argument("--out", default="fcis_demo.png",
                      help="figure file, or a folder to put fcis_demo.png in (default fcis_demo.png)")
    demo.add_argument("--weights", help="a model file of `fcis train` (default: the bundled model)")
    demo.add_argument("--oracle", action="store_true", help="use oracle network outputs instead of a model")
    _add_backend_option(demo)
    demo.set_defaults(func=_demo)

    from . import bench as _bench_module  # light: the kernels are imported when they are timed

    bench = sub.add_parser("bench", help="time the reference against every available backend")
    bench.add_argument("--out", default="bench_out", help="output folder (default bench_out)")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    bench.add_argument("--repeats", type=int, default=None, help="timed calls per point (default 5, quick 1)")
    bench.add_argument("--backend", action="append", choices=["numba-cpu", "numba-cuda", "cupy"],
                       help="only these backends (repeatable; default: every available one)")
    bench.add_argument("--workload", action="append", choices=list(_bench_module.WORKLOADS),
                       help="only these workloads (repeatable; default: all)")
    bench.set_defaults(func=_bench)

    data = sub.add_parser("data", help="synthetic data sets").add_subparsers(dest="data_command", required=True,
                                                                             metavar="ACTION")
    make = data.add_parser("make", help="write a synthetic set in COCO format")
    make.add_argument("--out", required=True, help="output folder")
    make.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    make.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    make.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"),
                      help="image size (default 128 128)")
    make.add_argument("--overwrite", action="store_true", help="replace --out when it exists and is not empty")
    make.set_defaults(func=_data_make)

    evaluate = sub.add_parser("evaluate", help="COCO AP and SBD mAP^r of FCIS over a COCO-format set")
    evaluate.add_argument("--data", required=True, help="folder with instances.json and images/")
    evaluate.add_argument("--oracle", action="store_true", help="use oracle network outputs")
    evaluate.add_argument("--weights", help="a model file of `fcis train` (default: the bundled model)")
    evaluate.add_argument("--limit", type=int, help="only the first N images")
    _add_backend_option(evaluate)
    evaluate.set_defaults(func=_evaluate)

    train = sub.add_parser("train", help="train the small FCIS in NumPy")
    train.add_argument("--out", required=True,
                       help="output folder: missing or empty, unless --resume or --overwrite (created if missing)")
    train.add_argument("--iterations", type=int, help="FCIS training iterations, two images each (default 4000)")
    train.add_argument("--pretrain-iterations", type=int,
                       help="iterations of the backbone's pretraining to classify the shapes, four images each, "
                            "before FCIS's (default 8000; 0: none)")
    train.add_argument("--seed", type=int, default=0, help="seed of the weights and of the training scenes")
    train.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.npz")
    train.add_argument("--overwrite", action="store_true",
                       help="replace what --out holds (put back if the run fails before writing a file)")
    train.add_argument("--workers", type=int, help="processes that work on an iteration's images side by side "
                       "(default: one per image, at most one per CPU core; capped at the 2 images of an "
                       "iteration: more would idle; the weights do not depend on it)")
    train.add_argument("--data", help="a COCO-format folder to train on (default: synthetic scenes drawn on the fly)")
    _add_backend_option(train)
    train.set_defaults(func=_train)
    return parser


def main(argv=None):
    from .workers import WorkerStopped

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:  # bad arguments or an unwritable --out: a message, no traceback
        parser.error(str(exc))
    except WorkerStopped as exc:  # a training worker killed (out of memory?): a message, no traceback
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    except MemoryError as exc:  # a request too large for this machine: say so, without a traceback
        detail = f" ({exc})" if str(exc) else ""
        parser.exit(1, f"{parser.prog}: error: not enough memory{detail}; ask for less (fewer or smaller images)\n")
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog}: interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
