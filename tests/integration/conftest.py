"""moto fixtures of the integration tests: the stack's tables and streams, built from template.yaml.

`local_stack` creates every DynamoDB table and Kinesis stream of the template with the
template's own key schemas, indexes and stream modes, inside `mock_aws`. `load_handler`
imports a function's handler module afresh with the environment the template gives that
function, so each test gets module-scope clients bound to the mock. The helpers behind
them live in tests/support (aws_stack, lambda_runtime).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from embedded.template import Template, load_template
from support.aws_stack import FAKE_CREDENTIALS, TEMPLATE_PATH, LocalStack, create_local_stack
from support.lambda_runtime import FakeLambdaContext, fresh_import


@pytest.fixture(scope="session")
def template() -> Template:
    return load_template(TEMPLATE_PATH)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def local_stack(aws_credentials: None, template: Template) -> Iterator[LocalStack]:
    """Every table and stream of template.yaml, created in moto from the template's definitions."""
    with mock_aws():
        yield create_local_stack(template)


@pytest.fixture
def load_handler(monkeypatch: pytest.MonkeyPatch, local_stack: LocalStack) -> Any:
    """`load(module, environment)`: import a handler module afresh inside the mock.

    The module and the observability singletons are imported again, so settings,
    clients and the Metrics namespace come from `environment`; the previous
    modules are put back after the test.
    """

    def load(module: str, environment: Mapping[str, str]) -> ModuleType:
        return fresh_import(monkeypatch, module, environment)

    return load


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
