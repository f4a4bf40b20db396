"""Shared test configuration: hypothesis profiles.

``ci`` (the default) runs enough examples to find real bugs while keeping the suite under ten minutes on two
cores; ``dev`` is quicker for editing loops (``HYPOTHESIS_PROFILE=dev pytest``).  Neither has a deadline: timing
belongs to ``fcis bench``, not to tests.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
