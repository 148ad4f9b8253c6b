"""PreprocessFunction's handler: a missing or malformed setting fails the import, naming it."""

from __future__ import annotations

from typing import Any

import pytest

from streamscore.core.errors import SystemicError
from support.aws_stack import LocalStack

# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENTITY_STATE_TABLE", None),
        ("FEATURES_STREAM_NAME", ""),
        ("FEATURES_TTL_DAYS", "0"),
        ("IO_THREADS", "many"),
    ],
)
def test_a_missing_or_malformed_setting_fails_the_import_naming_it(
    local_stack: LocalStack,
    load_handler: Any,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str | None,
) -> None:
    # given
    environment = local_stack.function_environment("PreprocessFunction")
    environment.pop(variable, None)
    monkeypatch.delenv(variable, raising=False)
    if value is not None:
        environment[variable] = value

    # when
    with pytest.raises(SystemicError, match=variable) as caught:
        load_handler("streamscore.handlers.preprocess", environment)

    # then
    assert "PreprocessSettings" in str(caught.value)
