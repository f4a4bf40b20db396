"""Finiteness where the ROIs read, on every backend: the contract of ``ps_assemble``.

Only the values that some bin reads must be finite, and every bin's float32 sum must stay within float32.  The
reference checks first (:func:`fcis_twin.reference.assemble.finite_where_read`); the loop template and the kernels
check only when an output comes out NaN or infinite, so that a call pays nothing for the check where all is well.
Every implementation must raise the same error, naming the same bin, or return the same result.
"""

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcis_twin.accelerated import assemble as acc
from fcis_twin.accelerated._backend import available_backends
from fcis_twin.reference.assemble import FLOAT32_MAX, ps_assemble, ps_assemble_loop
from fcis_twin.strategies import assembly_kwargs as _kw

from .test_assemble import problems

#: Every implementation of the forward pass; numba-cpu twice, once per kernel (:data:`acc.CHANNELS_LAST`).
IMPLEMENTATIONS = ["reference", "loop", "numba-cpu direct", "numba-cpu channels-last"] + (
    ["numba-cuda"] if "numba-cuda" in available_backends() else [])
#: Numba's CUDA simulator runs the kernels' float32 arithmetic in NumPy scalars, which warn where a GPU does not.
pytestmark = [pytest.mark.filterwarnings("ignore:.*overflow encountered in scalar add:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:.*invalid value encountered in scalar add:RuntimeWarning")]
#: Fewer examples: each runs every implementation, Numba-CUDA perhaps under the simulator.
EXAMPLES = 60


@contextlib.contextmanager
def numba_cpu_kernel(which):
    """Make numba-cpu run its ``"direct"`` or its ``"channels-last"`` kernel whatever the sizes."""
    saved = acc.CHANNELS_LAST
    acc.CHANNELS_LAST = 0.0 if which == "channels-last" else math.inf
    try:
        yield
    finally:
        acc.CHANNELS_LAST = saved


def assemble(implementation, x, rois, kw):
    """``(output, None)`` or ``(None, error)`` of one implementation."""
    try:
        if implementation == "reference":
            return ps_assemble(x, rois, **kw), None
        if implementation == "loop":
            return ps_assemble_loop(x, rois, **kw), None
        if implementation.startswith("numba-cpu"):
            with numba_cpu_kernel(implementation.split()[1]):
                return acc.ps_assemble(x, rois, **kw, backend="numba-cpu"), None
        return acc.ps_assemble(x, rois, **kw, backend=implementation), None
    except (TypeError, ValueError) as error:
        return None, error


def reads_non_finite(x, rois, kw):
    """Whether some bin reads NaN or infinity: a bin's mean of the 0/1 indicator of such values is positive."""
    return bool((ps_assemble_loop((~np.isfinite(x)).astype(np.float32), rois, **kw) > 0).any())


@st.composite
def poisoned_problems(draw):
    """A problem of :func:`tests.test_assemble.problems` with a few of its values NaN or infinite."""
    x, rois, kw = draw(problems())
    x = x.copy()
    if x.size:
        places = draw(st.lists(st.integers(0, x.size - 1), min_size=1, max_size=3))
        x.reshape(-1)[places] = draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), min_size=len(places),
                                              max_size=len(places)))
    return x, rois, kw


@pytest.mark.filterwarnings("ignore:Grid size")
@settings(max_examples=EXAMPLES)
@given(poisoned_problems())
def test_every_implementation_raises_or_returns_alike(problem):
    """A bin that reads NaN or infinity is the same error everywhere; values that no bin reads change nothing."""
    x, rois, kw = problem
    results = {name: assemble(name, x, rois, kw) for name in IMPLEMENTATIONS}
    if reads_non_finite(x, rois, kw):
        messages = {name: str(error) for name, (_, error) in results.items()}
        assert all(isinstance(error, ValueError) for _, error in results.values()), messages
        assert len(set(messages.values())) == 1, messages
        assert "score_maps must be finite where the ROIs read it" in messages["reference"]
        return
    cleaned = np.where(np.isfinite(x), x, np.float32(0))
    loop = ps_assemble_loop(cleaned, rois, **kw)
    for name, (out, error) in results.items():
        assert error is None, (name, error)
        expected = ps_assemble(cleaned, rois, **kw) if name == "reference" else loop
        np.testing.assert_array_equal(out, expected, err_msg=name)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_the_first_bin_that_reads_one_is_named(implementation):
    """ROI 0 reads finite values only; ROI 1's bin (1, 0) reads the NaN, in channel 2 (part cell (1, 0), k = 2)."""
    x = np.zeros((1, 4, 4, 4), np.float32)
    x[0, 2, 3, 0] = np.nan
    x[0, 0, 3, 3] = np.inf  # read by no bin of either ROI: bin (1, 1) reads channel 3 there
    rois = np.float32([[0, 0, 0, 2, 2], [0, 0, 0, 4, 4]])
    _, error = assemble(implementation, x, rois, _kw(2, 2, 1.0))
    assert str(error) == ("score_maps must be finite where the ROIs read it (no NaN or infinity): bin (1, 0) of "
                          "ROI 1 (channel 2) reads one")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_unread_values_may_be_anything(implementation):
    """NaN and infinity outside every bin: no error, and the result of the map with 0 there."""
    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(1, 2, 8, 8)
    x[0, :, 5:, :] = np.nan
    x[0, 1, :, 6:] = -np.inf
    x[0, 0, 0, 0] = np.inf  # all three outside the ROI's rows and columns 1 to 4
    rois = np.float32([[0, 1, 1, 5, 5]])
    out, error = assemble(implementation, x, rois, _kw(1, 2, 1.0))
    assert error is None
    np.testing.assert_array_equal(out, ps_assemble_loop(np.where(np.isfinite(x), x, 0), rois, **_kw(1, 2, 1.0)))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_bin_sum_that_overflows_float32_is_an_error(implementation):
    """Two values of 2e38 in one bin: their float32 sum is infinite, though each value and their mean are not."""
    x = np.zeros((1, 1, 2, 2), np.float32)
    x[0, 0, 1, :] = 2e38
    out, error = assemble(implementation, x, np.float32([[0, 0, 0, 2, 2], [0, 0, 1, 2, 2]]), _kw(1, 1, 1.0))
    assert str(error) == ("score_maps is too large where the ROIs read it: the float32 sum over bin (0, 0) of ROI 0 "
                          f"(channel 0) overflows (largest float32 {FLOAT32_MAX:.4g}); scale the maps down")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_large_values_whose_running_sum_stays_finite_are_fine(implementation):
    """3e38, -3e38, 3e38, -3e38 row-major: every float32 partial sum is finite, and so is the mean (0)."""
    x = np.float32([[3e38, -3e38], [3e38, -3e38]]).reshape(1, 1, 2, 2)
    out, error = assemble(implementation, x, np.float32([[0, 0, 0, 2, 2]]), _kw(1, 1, 1.0))
    assert error is None
    np.testing.assert_array_equal(out, np.zeros((1, 1, 1, 1), np.float32))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_float64_maps_beyond_float32_are_named(implementation):
    """A float64 value that float32 cannot hold is named as such, read or not; a float64 NaN that no bin reads is
    not an error."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 3, 3] = 1e39
    _, error = assemble(implementation, x, np.float32([[0, 0, 0, 2, 2]]), _kw(1, 1, 1.0))
    assert str(error).startswith("score_maps must lie within the range of float32")
    x[0, 0, 3, 3] = np.nan
    out, error = assemble(implementation, x, np.float32([[0, 0, 0, 2, 2]]), _kw(1, 1, 1.0))
    assert error is None and out.dtype == np.float32


def test_both_numba_cpu_kernels_are_chosen_by_size():
    """One FCIS-COCO-like pass (many ROIs, P = 21) goes channels-last; a few ROIs at P = k stay direct."""
    assert 300 * 21 * 21 >= acc.CHANNELS_LAST * 49 * 38 * 63
    assert 300 * 7 * 7 < acc.CHANNELS_LAST * 49 * 38 * 63
