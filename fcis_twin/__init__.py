"""FCIS, a readable NumPy reference with a GPU-accelerated twin.

:mod:`fcis_twin.reference` is the readable NumPy implementation of every FCIS stage; :mod:`fcis_twin.accelerated`
holds the same stages as Numba-CPU, Numba-CUDA and CuPy kernels.  This top package holds what joins the two: the
``fcis`` command line (:mod:`fcis_twin.cli`, also ``python -m fcis_twin``), the benchmark (:mod:`fcis_twin.bench`),
the demo and its figure (:mod:`fcis_twin.demo`), the training driver (:mod:`fcis_twin.training`, with its worker
processes in :mod:`fcis_twin.workers`) and the bundled model (``models/``), the exercises
(:mod:`fcis_twin.exercises`), the hypothesis strategies of the tests and exercises (:mod:`fcis_twin.strategies`) and
the figures of the demo and the notebooks (:mod:`fcis_twin.viz`).

In a source checkout the two halves are the top-level folders ``reference/`` and ``accelerated/``;
``pyproject.toml`` maps them to ``fcis_twin.reference`` and ``fcis_twin.accelerated`` on installation, editable or
not.  Nothing is installed under the bare names ``reference`` or ``accelerated``.
"""

__version__ = "0.1.0"


def _checkout_root():
    """The source checkout this package is imported from, or None for an installed copy.

    Installed, ``fcis_twin/`` holds ``reference/`` and ``accelerated/``.  Imported straight from a checkout (its root
    on ``sys.path``: ``python -m fcis_twin`` or ``python -m pytest`` in the root, or ``PYTHONPATH=.``) it does not:
    they are its siblings, and the checkout's own halves must serve, never an installed copy of another version.
    """
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if os.path.isdir(os.path.join(here, "reference")):
        return None
    halves = ("reference", "accelerated")
    if all(os.path.isfile(os.path.join(root, half, "__init__.py")) for half in halves):
        return root
    return None


if (_root := _checkout_root()) is not None:
    __path__.append(_root)  # fcis_twin.reference -> <checkout>/reference, fcis_twin.accelerated likewise
del _root
