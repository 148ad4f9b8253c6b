"""RetrainStartFunction's configuration (environment variables), validated once at cold start."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from streamscore.core.settings import FunctionSettings, Name

# the waiting rule's days (models/lifecycle/retrain.py RetrainPolicy has the same defaults)
WaitDays = Annotated[float, Field(ge=0.0, le=180.0)]


class RetrainStartSettings(FunctionSettings):
    state_machine_arn: Name
    retrain_post_trigger_days: WaitDays = 14.0
    retrain_maturity_days: WaitDays = 35.0
