"""Each function's configuration as a pydantic model, validated once at cold start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from streamscore.core.errors import SystemicError

Name = Annotated[str, Field(min_length=1)]
Days = Annotated[int, Field(ge=1, le=3650)]


class FunctionSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def replay_safe_days(ttl_days: int, stream_retention_hours: int) -> int:
    """`ttl_days`, but never less than a day past the stream's retention.

    Feature items, predictions and quarantine items are the facts a replay is checked
    against: while a record can still be read from its stream, its fact must exist,
    or the replay would apply, score, count or alert it again.
    """
    return max(ttl_days, -(-stream_retention_hours // 24) + 1)


Retention = Annotated[int, Field(ge=24, le=8760)]


Threshold = Annotated[float, Field(ge=0.0, le=1.0)]


def load_settings[S: FunctionSettings](model: type[S], environ: Mapping[str, str]) -> S:
    """`model` from environment variables (upper-case field names); SystemicError naming what is wrong."""
    try:
        return model.model_validate({k.lower(): v for k, v in environ.items()})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors(include_input=False, include_url=False)
        )
        raise SystemicError(f"invalid configuration of {model.__name__}: {problems}") from None
