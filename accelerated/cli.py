"""The ``fcis`` command line.

Subcommands:

``fcis demo [--seed N] [--out fcis_demo.png]``
    Generate a synthetic scene, run the full FCIS inference on oracle network outputs, print the detections and
    write a figure of every stage.

``fcis bench [--out DIR] [--quick] [--repeats N] [--backend B ...] [--workload W ...]``
    Time the reference against every available backend (and torchvision's NMS when it is importable) on the
    FCIS-COCO workload and a sweep of sizes; write bench.json, bench.md and bench.png to DIR.
"""

import argparse
import sys


def _demo(args):
    from reference.demo import run_demo

    result = run_demo(seed=args.seed, out=args.out)
    print(result.table)
    print(f"\nfigure written to {args.out}")
    return 0


def _bench(args):
    from .bench import run

    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    run(args.out, quick=args.quick, repeats=args.repeats, backends=args.backend, workloads=args.workload)
    print(f"\nresults written to {args.out}/bench.json, bench.md, bench.png")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="fcis", description="FCIS: a readable NumPy reference and its GPU twin.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run FCIS on a synthetic scene with oracle network outputs, draw every stage")
    demo.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    demo.add_argument("--out", default="fcis_demo.png", help="figure path (default fcis_demo.png)")
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
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:  # bad arguments or an unwritable --out: a message, no traceback
        parser.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())
