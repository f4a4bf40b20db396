r"""The position-sensitive score maps: where the inside and outside map of each class and part cell lies.

FCIS's head outputs, per class, :math:`k^2` inside and :math:`k^2` outside maps, one per cell :math:`(g_h, g_w)` of
a :math:`k \times k` grid of object parts (Li et al., CVPR 2017, Sec. 3).  The official MXNet code stacks them as
``(N, 2*C*k*k, H, W)`` with channel ``((cls*2 + j)*k + gh)*k + gw``, ``j = 0`` outside and ``j = 1`` inside
(``docs/conventions.md``, "Score-map channel layout"); :func:`part_maps` takes one class's maps out of the stack.
"""

import numpy as np  # noqa: F401  (the examples below use it, as the doctests run in this namespace)

from ._checks import as_array, as_int
from .assemble import check_channels


def part_maps(score_maps, cls, *, group_size):
    r"""The outside and inside maps of class ``cls``, each at the place of its part cell.

    Parameters
    ----------
    score_maps : (N, 2*C*k*k, H, W) float32 array_like
        Position-sensitive score maps; channel ``((cls*2 + j)*k + gh)*k + gw``, ``j = 0`` outside, ``j = 1`` inside.
    cls : int in [0, C)
        The class; 0 is background.
    group_size : int >= 1
        ``k``, the part grid is ``k x k``.

    Returns
    -------
    maps : (N, 2, k, k, H, W) float32 ndarray
        ``maps[n, j, gh, gw]`` is channel ``((cls*2 + j)*k + gh)*k + gw`` of image ``n``: the outside (``j = 0``)
        or inside (``j = 1``) map of part ``(gh, gw)``.  A view of ``score_maps`` where it is a float32 ndarray.

    Notes
    -----
    The stack reshapes to ``(N, C, 2, k, k, H, W)``: class, then outside/inside, then the part's row and column;
    ``maps`` is that array's class ``cls``.  The assembly (:func:`fcis_twin.reference.assemble.ps_assemble`) reads
    bin ``(ph, pw)`` of an ROI from part ``(gh, gw) = ((ph k) // P, (pw k) // P)`` of these maps.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1)  # C = 2 classes, k = 2: channel c holds c
    >>> part_maps(x, 1, group_size=2)[0, :, :, :, 0, 0]  # class 1: outside channels 8-11, inside 12-15
    array([[[ 8.,  9.],
            [10., 11.]],
    <BLANKLINE>
           [[12., 13.],
            [14., 15.]]], dtype=float32)
    """
    x = as_array("score_maps", score_maps, ndim=4)
    k = as_int("group_size", group_size, low=1)
    pairs = check_channels("score_maps", x.shape[1], k)  # 2*C outside/inside pairs of k*k maps
    if pairs % 2:
        raise ValueError(f"score_maps must have 2*C*k*k channels (an outside and an inside map per class and part), "
                         f"got {x.shape[1]} with k = {k}")
    C = pairs // 2
    cls = as_int("cls", cls, low=0, high=C - 1)
    N, _, H, W = x.shape
    return x.reshape(N, C, 2, k, k, H, W)[:, cls]  # (N, outside/inside, gh, gw, H, W)
