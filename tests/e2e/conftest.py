"""The embedded run's fixtures: one moto server process for the module, stacks deployed into it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from embedded.server import MotoServer

_stack_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def stack_name() -> str:
    """A stack name of its own for each test (they share the module's moto)."""
    return f"e2e-{next(_stack_numbers)}"
