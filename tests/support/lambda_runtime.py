"""Running a handler module as Lambda would: a fresh import with the function's environment, a context.

`fresh_import` imports a handler module again (and the observability singletons), so its
settings, clients and Metrics namespace come from the environment given; `FakeLambdaContext`
is the context object Powertools reads.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

import pytest

from support.aws_stack import REGION

# Powertools outside Lambda: no X-Ray daemon to talk to, metrics under a known namespace.
POWERTOOLS_TEST_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "StreamScoreTest",
}


@dataclass(frozen=True)
class FakeLambdaContext:
    function_name: str = "streamscore-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:streamscore-local"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/streamscore-local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def fresh_import(
    monkeypatch: pytest.MonkeyPatch, module: str, environment: Mapping[str, str]
) -> ModuleType:
    """Import `module` afresh with `environment` (plus POWERTOOLS_TEST_ENV) set.

    The module and the observability singletons are imported again; `monkeypatch` puts the
    previous modules and the environment back after the test.
    """
    merged = POWERTOOLS_TEST_ENV | dict(environment)
    for name, value in merged.items():
        monkeypatch.setenv(name, value)
    for name in (module, "streamscore.core.observability"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    # Powertools configures a service's logger once per process (the std logger is
    # global) and binds its handler to the sys.stdout of that moment: forget it, so the
    # fresh Logger writes to this test's stdout rather than to an earlier test's
    service = logging.getLogger(merged.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
    for handler in list(service.handlers):
        service.removeHandler(handler)
    for marker in [a for a in vars(service) if a == "init" or a.startswith("powertools_")]:
        monkeypatch.delattr(service, marker)
    return importlib.import_module(module)
