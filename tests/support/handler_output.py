"""What a handler printed: its EMF metrics and its structured log lines, and the AWS calls it made."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any


def emitted_metrics(stdout: str) -> dict[str, float]:
    """The EMF metrics a handler printed (summed per name when several blobs were flushed)."""
    totals: Counter[str] = Counter()
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        blob = json.loads(line)
        if "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
    return dict(totals)


def log_lines(stdout: str) -> list[dict[str, Any]]:
    """The structured log lines a handler printed (EMF blobs left out)."""
    lines = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            blob = json.loads(line)
            if "_aws" not in blob:
                lines.append(blob)
    return lines


class CallCounter:
    """Counts the AWS calls clients make, per "service.Operation", via botocore's before-call events.

    `params` keeps each call's API parameters (from before-parameter-build, the same call)
    for size checks.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.params: list[tuple[str, dict[str, Any]]] = []

    def attach(self, *clients: Any) -> CallCounter:
        for client in clients:
            client.meta.events.register("before-parameter-build.*.*", self._keep)
            client.meta.events.register("before-call.*.*", self._count)
        return self

    def detach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.unregister("before-parameter-build.*.*", self._keep)
            client.meta.events.unregister("before-call.*.*", self._count)

    @staticmethod
    def _name(model: Any) -> str:
        return f"{model.service_model.service_name}.{model.name}"

    def _keep(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.params.append((self._name(model), params))

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[self._name(model)] += 1

    def requests(self, operation: str) -> list[dict[str, Any]]:
        """API parameters of every `operation` call ("dynamodb.BatchWriteItem")."""
        return [params for name, params in self.params if name == operation]
