"""EventBridge's asynchronous invocations of the stack's functions, run in-process.

moto keeps each event a rule delivers to a Lambda target on a queue (embedded/moto_process.py
ASYNC_INVOCATIONS_QUEUE). `deliver` invokes the target function with it as Lambda's
asynchronous invocation would: "If the function returns an error, by default Lambda attempts to
run it two more times" (Lambda Developer Guide, "Asynchronous invocation"), then the event goes to
the function's dead-letter queue (template.yaml: FailureQueue). Delivered messages are deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from embedded.containers import FunctionContainer, Invocation
from embedded.moto_process import ASYNC_INVOCATIONS_QUEUE

ATTEMPTS = 3  # the first run and Lambda's two retries


def deliver(
    sqs: Any, functions: Mapping[str, FunctionContainer], dead_letter_url: str | None
) -> list[dict[str, Any]]:
    """Invoke each waiting event's function (`functions` by logical id); what each delivery
    did, in order, each naming its function by logical id."""
    try:
        url = sqs.get_queue_url(QueueName=ASYNC_INVOCATIONS_QUEUE)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return []  # no rule has delivered to a function
    by_arn = {c.config.arn: c for c in functions.values()}
    names = {c.config.arn: name for name, c in functions.items()}
    delivered = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        for message in messages:
            body = json.loads(message["Body"])
            delivered.append(_invoke(body, by_arn, sqs, dead_letter_url, names))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return delivered


def _invoke(
    body: Mapping[str, Any],
    by_arn: Mapping[str, FunctionContainer],
    sqs: Any,
    dead_letter_url: str | None,
    names: Mapping[str, str],
) -> dict[str, Any]:
    arn, event = str(body["function_arn"]), body["event"]
    outcome: dict[str, Any] = {
        "function": names.get(arn, arn),
        "detail_type": event.get("detail-type"),
    }
    container = by_arn.get(arn)
    if container is None:
        return outcome | {"error": f"no function {arn} in the stack"}
    invocation, attempts = invoke_async(container, event)
    if invocation.error is None:
        return outcome | {"attempts": attempts, "response": invocation.response}
    if dead_letter_url is not None:
        sqs.send_message(QueueUrl=dead_letter_url, MessageBody=json.dumps(event, default=str))
    return outcome | {"attempts": attempts, "error": str(invocation.error)}


def invoke_async(container: FunctionContainer, event: Mapping[str, Any]) -> tuple[Invocation, int]:
    """Invoke `container` with `event` as an asynchronous invocation runs it: again after an
    error, up to ATTEMPTS in all. The last invocation and the attempts it took. (A schedule's
    target is invoked asynchronously too: EventBridge rules invoke Lambda functions that way.)"""
    invocation = Invocation()
    for attempt in range(1, ATTEMPTS + 1):
        invocation = container.invoke(dict(event))
        if invocation.error is None:
            return invocation, attempt
    return invocation, ATTEMPTS
