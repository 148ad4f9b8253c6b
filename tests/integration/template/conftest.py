"""template.yaml as the template tests read it: loaded once per module (a test may change its copy)."""

from __future__ import annotations

from typing import Any

import pytest

from embedded.template import load_template
from support.template_checks import TEMPLATE_PATH


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)
