"""Drawing helpers shared by ``fcis demo`` and the notebooks.

Functions draw onto a matplotlib ``Axes`` (or a ``Figure``) they are given, or create a ``Figure`` without pyplot,
and return it; none of them opens a window, so they work headless.  The helpers every figure uses live in
:mod:`fcis_twin.viz.common`; each notebook's figures live in a module named for its stage, and every public name
is importable from ``fcis_twin.viz`` itself.
"""

from .assembly import *  # noqa: F403
from .common import *  # noqa: F403
from .evaluation import *  # noqa: F403
from .joint import *  # noqa: F403
from .nms import *  # noqa: F403
from .pipeline import *  # noqa: F403
from .proposals import *  # noqa: F403
from .regression import *  # noqa: F403
from .score_maps import *  # noqa: F403
from .timing import *  # noqa: F403
from .training import *  # noqa: F403
from .voting import *  # noqa: F403
