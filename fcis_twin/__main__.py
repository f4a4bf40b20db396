"""``python -m fcis_twin``: the ``fcis`` command line."""

import sys

from .cli import main

sys.exit(main())
