"""The score-map layout (``fcis_twin.reference.score_maps.part_maps``): the official channel formula, and its
agreement with what the assembly reads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fcis_twin.reference.assemble import ps_assemble
from fcis_twin.reference.score_maps import part_maps


def test_hand_worked_channels():
    """Class 1 of C = 2, k = 2: outside maps are channels 8-11 in row-major part order, inside maps 12-15."""
    x = np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1)  # channel c holds the value c
    maps = part_maps(x, 1, group_size=2)
    assert maps.shape == (1, 2, 2, 2, 1, 1) and maps.dtype == np.float32
    np.testing.assert_array_equal(maps[0, 0, :, :, 0, 0], [[8, 9], [10, 11]])  # (gh, gw): channel 8 + gh*2 + gw
    np.testing.assert_array_equal(maps[0, 1, :, :, 0, 0], [[12, 13], [14, 15]])


@given(st.integers(1, 3), st.integers(1, 3), st.data())
def test_each_map_is_its_formula_channel(k, C, data):
    """maps[n, j, gh, gw] is channel ((cls*2 + j)*k + gh)*k + gw, for every class, pair and part."""
    cls = data.draw(st.integers(0, C - 1))
    x = np.random.default_rng(k * 10 + C).standard_normal((2, 2 * C * k * k, 3, 2)).astype(np.float32)
    maps = part_maps(x, cls, group_size=k)
    for j in range(2):
        for gh in range(k):
            for gw in range(k):
                np.testing.assert_array_equal(maps[:, j, gh, gw], x[:, ((cls * 2 + j) * k + gh) * k + gw])


def test_the_assembly_reads_the_same_maps():
    """An ROI covering the map with P = k assembles, in bin (gh, gw) of pair channel cls*2 + j, the mean of
    part_maps' map (j, gh, gw): the layout both read is one."""
    k, C, H = 3, 2, 6
    x = np.random.default_rng(0).standard_normal((1, 2 * C * k * k, H, H)).astype(np.float32)
    assembled = ps_assemble(x, [[0, 0, 0, H, H]], group_size=k, output_size=k, spatial_scale=1.0)
    for cls in range(C):
        maps = part_maps(x, cls, group_size=k)  # (1, 2, k, k, H, H)
        for j in range(2):
            cells = maps[0, j].reshape(k, k, k, 2, k, 2)  # each part's map cut into its own 2 x 2 cells
            own = np.array([[cells[gh, gw, gh, :, gw, :].mean() for gw in range(k)] for gh in range(k)])
            np.testing.assert_allclose(assembled[0, cls * 2 + j], own, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args, kw, error, words", [
    ((np.zeros((1, 12, 2, 2), np.float32), 0), {"group_size": 2}, ValueError, "2\\*C\\*k\\*k channels"),
    ((np.zeros((1, 16, 2, 2), np.float32), 2), {"group_size": 2}, ValueError, "cls must be <= 1"),
    ((np.zeros((1, 16, 2, 2), np.float32), -1), {"group_size": 2}, ValueError, "cls must be >= 0"),
    ((np.zeros((1, 16, 2, 2), np.float32), 1.0), {"group_size": 2}, TypeError, "cls must be an integer"),
    ((np.zeros((1, 16, 2, 2), np.float32), 0), {"group_size": 3}, ValueError, "divisible by k\\*k"),
    ((np.zeros((16, 2, 2), np.float32), 0), {"group_size": 2}, ValueError, "score_maps"),
])
def test_bad_input_is_named(args, kw, error, words):
    """Each bad argument is a TypeError or ValueError naming it."""
    with pytest.raises(error, match=words):
        part_maps(*args, **kw)
