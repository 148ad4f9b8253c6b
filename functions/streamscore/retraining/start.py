"""From a RetrainingRequested to the one retraining run it starts, and when that run may train.

The waiting rule (models/lifecycle/retrain.py `plan` refuses earlier): a retrain answering a
change found at `trigger_time` trains on data reaching `post_trigger_days` past it, with labels
`maturity_days` old, so it runs at `trigger_time + post_trigger_days + maturity_days` at the
earliest. The trigger time is the end of the window the check judged (drift: the window's end,
which a scheduled check places at its run's hour; quality: the matured window's end).

The run's name is made from the trigger id alone and its input from the event's detail alone,
so every delivery of the same RetrainingRequested (EventBridge retries, a re-sent event, a
re-run drift check) asks Step Functions for the same execution: "For a STANDARD workflow, if you
call StartExecution with the same name and input as a running execution, the call succeeds and
return the same response as the original request. If the execution is closed or if the input is
different, it returns a 400 ExecutionAlreadyExists error. You can reuse names after 90 days."
(Step Functions API Reference, StartExecution; the 90 days count from the execution's close:
Developer Guide, "Execution guarantees"). A name has at most 80 characters and "To enable
logging with CloudWatch Logs, the name should only contain 0-9, A-Z, a-z, - and _" (same API
reference, `name`): the trigger id is kept readable where it fits, and a digest of the whole id
makes the name unique.

One run waits per model version: the drift found at 10:00 is usually still there at 11:00 and
the next day, and each day's trigger (after RetrainCooldownHours) would otherwise start a run
that retrains on nearly the same data and replaces the challenger the previous one named. A
trigger whose model version has a running execution joins it (`run_prefix`: the names of a
version's runs begin with it) and starts none; once that run has ended, the next trigger starts
one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streamscore.core.errors import SystemicError

NAME_LIMIT = 80
_NOT_ALLOWED = re.compile(r"[^0-9A-Za-z_-]+")
_DIGEST = 16


class InvalidTriggerError(SystemicError):
    """A RetrainingRequested detail without what a run needs (trigger id, window end)."""


def ready_at(trigger_time: datetime, post_trigger_days: float, maturity_days: float) -> datetime:
    """The earliest moment a retrain answering a change found at `trigger_time` may train."""
    return trigger_time + timedelta(days=post_trigger_days + maturity_days)


def execution_name(trigger_id: str) -> str:
    """A Step Functions execution name for `trigger_id`: the same id, the same name."""
    digest = hashlib.sha256(trigger_id.encode()).hexdigest()[:_DIGEST]
    readable = _NOT_ALLOWED.sub("-", trigger_id).strip("-")
    return f"{readable[: NAME_LIMIT - _DIGEST - 1]}-{digest}"


def run_prefix(model_version: str) -> str | None:
    """The beginning of every execution name of a trigger of `model_version` (trigger ids are
    `<model version>/...`); None when the version has nothing readable to begin them with."""
    readable = _NOT_ALLOWED.sub("-", model_version).strip("-")
    return f"{readable[: NAME_LIMIT - _DIGEST - 1]}-" if readable else None


@dataclass(frozen=True)
class RetrainRun:
    name: str
    input: dict[str, Any]

    def input_json(self) -> str:
        """The input as Step Functions receives it: the same detail, the same bytes."""
        return json.dumps(self.input, sort_keys=True, separators=(",", ":"))


def retrain_run(
    detail: Mapping[str, Any], post_trigger_days: float, maturity_days: float
) -> RetrainRun:
    """The run a RetrainingRequested detail starts (see the module docstring)."""
    trigger_id = detail.get("trigger_id")
    window = detail.get("window")
    if not isinstance(trigger_id, str) or not trigger_id:
        raise InvalidTriggerError("the detail has no trigger_id")
    if not isinstance(window, Mapping) or not isinstance(window.get("end"), str):
        raise InvalidTriggerError(f"{trigger_id}: the detail has no window end")
    try:
        found = datetime.fromisoformat(window["end"])
    except ValueError as error:
        raise InvalidTriggerError(f"{trigger_id}: window end {window['end']!r}: {error}") from error
    if found.utcoffset() is None:
        raise InvalidTriggerError(f"{trigger_id}: window end {window['end']!r} has no offset")
    ready = ready_at(found, post_trigger_days, maturity_days).astimezone(UTC)
    return RetrainRun(
        name=execution_name(trigger_id),
        input={
            "trigger_id": trigger_id,
            "reason": str(detail.get("reason", "drift")),
            "model_version": str(detail.get("model_version", "")),
            "trigger_time": found.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            # a Wait state's Timestamp: RFC 3339 with an uppercase T and Z (Step Functions
            # Developer Guide, "Wait workflow state")
            "retrain_at": ready.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
