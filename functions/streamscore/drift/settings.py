"""DriftCheckFunction's configuration (environment variables), validated once at cold start."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from streamscore.core.settings import Days, FunctionSettings, Name, Threshold
from streamscore.drift.quality import QualityPolicy


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
    # the quality check (drift/quality.py): labels take this long to come back...
    label_maturity_days: Annotated[int, Field(ge=1, le=365)] = 60
    # ...so it reads this many days of event hours ending that long ago
    quality_window_days: Annotated[int, Field(ge=1, le=7)] = 7
    quality_recall_threshold: Threshold = 0.8
    quality_min_frauds: Annotated[int, Field(ge=1)] = 30
    # recall at decline also judged on the window ending this many days ago (0: not)
    quality_early_days: Annotated[int, Field(ge=0, le=365)] = 0
    # the promotion check (promotion/policy.py): Automatic acts, Manual only recommends
    promotion_mode: Literal["Automatic", "Manual"] = "Automatic"
    promotion_min_hours: Annotated[float, Field(ge=0.0, le=8760.0)] = 168.0
    promotion_min_labelled: Annotated[int, Field(ge=1)] = 1000
    promotion_min_frauds: Annotated[int, Field(ge=1)] = 50
    promotion_max_days: Annotated[float, Field(gt=0.0, le=365.0)] = 28.0
    promotion_recall_tolerance: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.02
    promotion_decline_rate_tolerance: Annotated[float, Field(ge=0.0)] = 0.25

    @model_validator(mode="after")
    def _quality_window_within_the_counts(self) -> DriftCheckSettings:
        oldest = self.label_maturity_days + self.quality_window_days
        if oldest >= self.monitoring_ttl_days:
            raise ValueError(
                f"LABEL_MATURITY_DAYS + QUALITY_WINDOW_DAYS ({oldest}) must be below "
                f"MONITORING_TTL_DAYS ({self.monitoring_ttl_days}): the quality check reads "
                "count items that old"
            )
        if self.promotion_max_days * 24 < self.promotion_min_hours:
            raise ValueError(
                f"PROMOTION_MIN_HOURS ({self.promotion_min_hours:g}) must be at most "
                f"PROMOTION_MAX_DAYS x 24 ({self.promotion_max_days * 24:g})"
            )
        if self.promotion_max_days >= self.monitoring_ttl_days:
            raise ValueError(
                f"PROMOTION_MAX_DAYS ({self.promotion_max_days:g}) must be below "
                f"MONITORING_TTL_DAYS ({self.monitoring_ttl_days}): the promotion check reads "
                "count items that old"
            )
        if self.quality_early_days >= self.label_maturity_days:
            raise ValueError(
                f"QUALITY_EARLY_DAYS ({self.quality_early_days}) must be below "
                f"LABEL_MATURITY_DAYS ({self.label_maturity_days}), or 0"
            )
        return self

    def quality_policy(self) -> QualityPolicy:
        return QualityPolicy(
            maturity_days=self.label_maturity_days,
            window_days=self.quality_window_days,
            recall_threshold=self.quality_recall_threshold,
            min_frauds=self.quality_min_frauds,
            early_days=self.quality_early_days,
        )

    @field_validator("psi_drift_threshold")
    @classmethod
    def _drift_not_below_warn(cls, value: float, info: ValidationInfo) -> float:
        warn = info.data.get("psi_warn_threshold")
        if warn is not None and value < warn:
            raise ValueError(f"must not be below PSI_WARN_THRESHOLD ({warn})")
        return value
