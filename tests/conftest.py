"""Suite-wide settings: property tests are derandomised on CI, exploratory everywhere else."""

from __future__ import annotations

import os

from hypothesis import settings

# CI must pass or fail on the code alone, not on the examples one run happens to draw;
# local runs keep drawing new examples (and keep failures in .hypothesis/).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
