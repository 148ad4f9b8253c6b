"""ScoreFunction's configuration (environment variables), validated once at cold start."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from streamscore.core.settings import (
    Days,
    FunctionSettings,
    Name,
    Retention,
    Threshold,
    replay_safe_days,
)


class ScoreSettings(FunctionSettings):
    predictions_table: Name
    quarantine_table: Name
    monitoring_table: Name
    event_bus_name: Name
    model_dir: Name = "/opt/model"
    review_threshold: Threshold | None = None  # None (empty): the model card's recommendation
    decline_threshold: Threshold | None = None
    alert_on_review: bool = False
    # this share of would-be declines is reviewed instead (the decline sample; 0: none)
    decline_sample_share: Annotated[float, Field(ge=0.0, le=0.2)] = 0.0
    # reasons on each review and decline (scoring/reasons.py): the top contributions; 0: none
    reason_count: Annotated[int, Field(ge=0, le=10)] = 3
    # the version ReviewThreshold/DeclineThreshold are set for ("": the shipped model's)
    thresholds_model_version: str = ""
    # the model registry (streamscore.scoring.serving): "" turns following it off
    artifacts_bucket: str = ""
    model_refresh_seconds: Annotated[float, Field(ge=0, le=3600)] = 30  # 0: before every batch
    predictions_ttl_days: Days = 90
    quarantine_ttl_days: Days = 30
    monitoring_ttl_days: Days = 90
    stream_retention_hours: Retention = 24
    io_threads: Annotated[int, Field(ge=1, le=32)] = 4
    # the event-source mapping's ScoreParallelizationFactor: batches of one shard in flight at
    # once, each writing its count items in a lane of its own (streamscore.aws.facts)
    parallelization_factor: Annotated[int, Field(ge=1, le=10)] = 1
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
