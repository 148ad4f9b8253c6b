"""The drift check's unit tests: the shipped baseline."""

from __future__ import annotations

import pytest

from streamscore.drift.baseline import DriftBaseline, load_baseline
from support.drift_check import ARTIFACTS


@pytest.fixture(scope="module")
def baseline() -> DriftBaseline:
    return load_baseline(ARTIFACTS)
