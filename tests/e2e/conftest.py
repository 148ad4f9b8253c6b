"""The embedded run's fixtures: one moto server process for the module, stacks deployed into it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from embedded.server import DUMMY_CREDENTIALS, MotoServer

_stack_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def stack_name() -> str:
    """A stack name of its own for each test (they share the module's moto)."""
    return f"e2e-{next(_stack_numbers)}"


@pytest.fixture
def moto_environment(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's usual configuration pointing at moto: the endpoint and credentials in the env."""
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", moto_server.region)
