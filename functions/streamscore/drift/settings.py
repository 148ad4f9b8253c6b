"""DriftCheckFunction's configuration (environment variables), validated once at cold start."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from streamscore.core.settings import Days, FunctionSettings, Name, Threshold


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
