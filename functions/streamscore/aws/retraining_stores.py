"""Step Functions StartExecution for the retraining runner (retraining/start.py names the run)."""

from __future__ import annotations

from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws.retry import translate_error
from streamscore.retraining.start import RetrainRun

# running: Step Functions accepted the start: a new run, or a repeat of the same request while
#   the trigger's run is running (it answers both alike, with the original response)
# exists: ExecutionAlreadyExists: the trigger's run ran before (closed), or runs with another input
# joined: another trigger's run for the same model version is waiting; this trigger starts none
Started = Literal["running", "exists", "joined"]


class StepFunctionsRunner:
    """Starts one execution of the retraining state machine per run name."""

    def __init__(self, client: Any, state_machine_arn: str):
        self.client = client
        self.state_machine_arn = state_machine_arn

    def running(self, prefix: str) -> list[str]:
        """Names of the state machine's running executions that start with `prefix`."""
        names: list[str] = []
        try:
            pages = self.client.get_paginator("list_executions").paginate(
                stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
            )
            for page in pages:
                names += [e["name"] for e in page["executions"] if e["name"].startswith(prefix)]
        except (ClientError, BotoCoreError) as error:
            raise translate_error(error, "Step Functions ListExecutions") from error
        return names

    def start(self, run: RetrainRun) -> Started:
        """`running` or `exists` (see Started): either way the trigger has its one run."""
        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=run.name, input=run.input_json()
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return "exists"
            raise translate_error(error, f"Step Functions StartExecution {run.name}") from error
        except BotoCoreError as error:
            raise translate_error(error, f"Step Functions StartExecution {run.name}") from error
        return "running"
