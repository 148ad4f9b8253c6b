"""The preprocess handler wired on the moto stack (`app`) and a way to invoke it (`invoke`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from streamscore.core.settings import load_settings
from streamscore.preprocess.settings import PreprocessSettings
from support.aws_stack import LocalStack
from support.preprocess_handler import Invoker
from support.wiring import Wired, moto_clients


@pytest.fixture
def app(
    load_handler: Any,
    local_stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Wired:
    environment = local_stack.function_environment("PreprocessFunction")
    module = load_handler("streamscore.handlers.preprocess", environment)
    return Wired(
        module,
        load_settings(PreprocessSettings, environment),
        moto_clients("dynamodb", "kinesis"),
        io_executor=ThreadPoolExecutor(8, thread_name_prefix="io"),
        step_executor=ThreadPoolExecutor(3, thread_name_prefix="step"),
    )


@pytest.fixture
def invoke(app: Wired, capsys: pytest.CaptureFixture[str]) -> Invoker:
    return Invoker(app, capsys)
