"""LabelsFunction's configuration (environment variables), validated once at cold start."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from streamscore.core.settings import Days, FunctionSettings, Name, Retention, replay_safe_days


class LabelSettings(FunctionSettings):
    labels_table: Name
    predictions_table: Name
    quarantine_table: Name
    monitoring_table: Name
    labels_ttl_days: Days = 400  # retraining reads a year of labels back
    stream_retention_hours: Retention = 24
    quarantine_ttl_days: Days = 30
    monitoring_ttl_days: Days = 90
    io_threads: Annotated[int, Field(ge=1, le=32)] = 4
    # the mapping's ParallelizationFactor: batches of one shard in flight at once, each writing
    # its count items in a lane of its own (streamscore.aws.facts)
    parallelization_factor: Annotated[int, Field(ge=1, le=10)] = 1

    @model_validator(mode="after")
    def _facts_outlive_the_stream(self) -> LabelSettings:
        for name in ("labels_ttl_days", "quarantine_ttl_days"):
            days = replay_safe_days(getattr(self, name), self.stream_retention_hours)
            object.__setattr__(self, name, days)
        return self
