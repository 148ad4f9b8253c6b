"""RetrainStartFunction: a RetrainingRequested (EventBridge) → one run of the retraining runner.

The run waits in the state machine until the waiting rule allows a retrain, then trains in
CodeBuild (template.yaml: RetrainingRunnerStateMachine, RetrainProject). Every delivery of the
same trigger asks for the same execution (retraining/start.py), so re-delivered events start
one run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from streamscore.aws.clients import Clients
from streamscore.aws.retraining_stores import Started, StepFunctionsRunner
from streamscore.aws.retry import Backoff
from streamscore.core.lambda_init import freeze_after_init
from streamscore.core.observability import logger, metrics, tracer
from streamscore.core.settings import load_settings
from streamscore.handlers.metrics import RetrainStartMetric as M
from streamscore.retraining.settings import RetrainStartSettings
from streamscore.retraining.start import RetrainRun, retrain_run, run_prefix

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@dataclass(frozen=True)
class RetrainStarter:
    """The start stage wired: one call per RetrainingRequested."""

    runner: StepFunctionsRunner
    post_trigger_days: float
    maturity_days: float

    def start(self, detail: dict[str, Any]) -> tuple[RetrainRun, Started, str | None]:
        """The trigger's run, what became of it, and the waiting run it joined (if any)."""
        run = retrain_run(detail, self.post_trigger_days, self.maturity_days)
        prefix = run_prefix(run.input["model_version"])
        waiting = self.runner.running(prefix) if prefix is not None else []
        if waiting and run.name not in waiting:
            return run, "joined", waiting[0]
        return run, self.runner.start(run), None


def build(settings: RetrainStartSettings, clients: Clients, backoff: Backoff) -> RetrainStarter:
    """The stage on `clients` (stepfunctions); botocore's retries cover throttling."""
    clients.require("stepfunctions")
    return RetrainStarter(
        StepFunctionsRunner(clients.stepfunctions, settings.state_machine_arn),
        settings.retrain_post_trigger_days,
        settings.retrain_maturity_days,
    )


def handler(stage: RetrainStarter) -> Handler:
    """The Lambda handler of a wired start stage. A detail without a trigger id or window end
    raises (InvalidTriggerError): the event is retried, then kept in FailureQueue."""

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        run, started, joined = stage.start(dict(event.get("detail") or {}))
        retrain_at = datetime.fromisoformat(run.input["retrain_at"])
        wait = (retrain_at - datetime.now(UTC)).total_seconds() / 86400
        metrics.add_metric(M.WAIT_DAYS, MetricUnit.Count, round(max(wait, 0.0), 3))
        logger.info(
            "retraining run",
            extra={"started": started, "execution": run.name, "joined": joined} | run.input,
        )
        response = {"execution": run.name, "started": started} | run.input
        return response | ({"joined": joined} if joined else {})

    return lambda_handler


# The container's wiring, once, at init.
settings = load_settings(RetrainStartSettings, os.environ)
clients = Clients.create("stepfunctions")
lambda_handler = handler(build(settings, clients, Backoff()))
freeze_after_init()  # init's objects out of every later collection (see its docstring)
