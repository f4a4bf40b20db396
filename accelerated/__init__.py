"""The accelerated twin of :mod:`reference`: the same stages as Numba-CPU, Numba-CUDA and CuPy kernels.

Each module mirrors its reference module (same public names and signatures, plus ``backend=``).  The kernels
arrive in step 2 of the roadmap; for now the package holds the ``fcis`` command line (``accelerated.cli``), which
sits here because it will drive both sides (``fcis bench`` times the kernels against the reference).  Importing this
package imports nothing heavy.
"""
