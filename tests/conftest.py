"""Suite-wide settings: property tests are derandomised on CI, exploratory everywhere else; each
test's garbage collections walk its own objects, not the whole session's."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

# CI must pass or fail on the code alone, not on the examples one run happens to draw;
# local runs keep drawing new examples (and keep failures in .hypothesis/).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _session_objects_frozen() -> Iterator[None]:
    """What earlier tests left alive (moto's state, modules imported many times, pools) is
    frozen for the test, so a full collection inside it (an in-process local run makes many)
    walks the test's own objects only; thawed after, so nothing stays alive because of it.
    The same idea as the handlers' freeze after init (streamscore.core.lambda_init)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
