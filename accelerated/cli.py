"""The ``fcis`` command line.

Subcommands:

``fcis demo [--seed N] [--out fcis_demo.png]``
    Generate a synthetic scene, run the full FCIS inference on oracle network outputs, print the detections and
    write a figure of every stage.
"""

import argparse
import sys


def _demo(args):
    from reference.demo import run_demo

    result = run_demo(seed=args.seed, out=args.out)
    print(result.table)
    print(f"\nfigure written to {args.out}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="fcis", description="FCIS: a readable NumPy reference and its GPU twin.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run FCIS on a synthetic scene with oracle network outputs, draw every stage")
    demo.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    demo.add_argument("--out", default="fcis_demo.png", help="figure path (default fcis_demo.png)")
    demo.set_defaults(func=_demo)
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
