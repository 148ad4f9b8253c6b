"""FeatureLogFunction's configuration (environment variables), validated once at cold start."""

from __future__ import annotations

from streamscore.core.settings import FunctionSettings, Name


class FeatureLogSettings(FunctionSettings):
    features_table: Name
    artifacts_bucket: Name
