"""Each function's configuration as a pydantic model, validated once at cold start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from streamscore.errors import SystemicError

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


class PreprocessSettings(FunctionSettings):
    entity_state_table: Name
    features_table: Name
    quarantine_table: Name
    monitoring_table: Name
    features_stream_name: Name
    features_ttl_days: Days = 7
    stream_retention_hours: Retention = 24
    quarantine_ttl_days: Days = 30
    monitoring_ttl_days: Days = 90
    state_ttl_days: Days = 400  # a card unseen this long starts afresh
    io_threads: Annotated[int, Field(ge=1, le=32)] = 4

    @model_validator(mode="after")
    def _facts_outlive_the_stream(self) -> PreprocessSettings:
        for name in ("features_ttl_days", "quarantine_ttl_days"):
            days = replay_safe_days(getattr(self, name), self.stream_retention_hours)
            object.__setattr__(self, name, days)
        return self


Threshold = Annotated[float, Field(ge=0.0, le=1.0)]


class ScoreSettings(FunctionSettings):
    predictions_table: Name
    quarantine_table: Name
    monitoring_table: Name
    event_bus_name: Name
    model_dir: Name = "/opt/model"
    review_threshold: Threshold | None = None  # None (empty): the model card's recommendation
    decline_threshold: Threshold | None = None
    alert_on_review: bool = False
    predictions_ttl_days: Days = 90
    quarantine_ttl_days: Days = 30
    monitoring_ttl_days: Days = 90
    stream_retention_hours: Retention = 24
    io_threads: Annotated[int, Field(ge=1, le=32)] = 4
    # ONNX Runtime threads: one. At batch 500 a run takes 0.3-0.5 ms (< 1 us a record) with one
    # or two threads (bench/results/latest.json, ort_threads_batch_500): a second thread buys
    # nothing that matters, and Lambda at 2048 MB has ~1.2 vCPU to share with the I/O threads.
    ort_intra_op_threads: Annotated[int, Field(ge=1, le=16)] = 1
    ort_inter_op_threads: Annotated[int, Field(ge=1, le=16)] = 1

    @field_validator("review_threshold", "decline_threshold", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _facts_outlive_the_stream(self) -> ScoreSettings:
        for name in ("predictions_ttl_days", "quarantine_ttl_days"):
            days = replay_safe_days(getattr(self, name), self.stream_retention_hours)
            object.__setattr__(self, name, days)
        return self


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


class DriftCheckSettings(FunctionSettings):
    monitoring_table: Name
    artifacts_bucket: Name
    event_bus_name: Name
    model_dir: Name = "/opt/model"
    drift_window_minutes: Annotated[int, Field(ge=5, le=10080)] = 1440
    psi_warn_threshold: Annotated[float, Field(ge=0.0)] = 0.1
    psi_drift_threshold: Annotated[float, Field(ge=0.0)] = 0.25
    js_drift_threshold: Threshold = 0.1
    min_sample_size: Annotated[int, Field(ge=1)] = 500
    retrain_cooldown_hours: Annotated[float, Field(ge=0.0, le=8760.0)] = 24.0
    monitoring_ttl_days: Days = 90
    io_threads: Annotated[int, Field(ge=1, le=32)] = 8

    @field_validator("psi_drift_threshold")
    @classmethod
    def _drift_not_below_warn(cls, value: float, info: ValidationInfo) -> float:
        warn = info.data.get("psi_warn_threshold")
        if warn is not None and value < warn:
            raise ValueError(f"must not be below PSI_WARN_THRESHOLD ({warn})")
        return value
