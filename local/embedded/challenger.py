"""The model lifecycle in a local run: a challenger scored in shadow, promoted part-way through.

`python -m local run --challenger DIR [--promote-at 50%]` publishes the model in DIR (as `make
model` writes one) to the embedded stack's registry as the challenger before the first record is
sent, and, once that share of the records has been sent, promotes it, as `python -m models
promote` does against a deployed stack. The summary shows the predictions of each version, how
often the challenger agreed with the champion in shadow, and how long the promotion took to
reach the first prediction of the new champion.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lifecycle.registry import Registry
from streamscore.core.artifacts import CARD_FILE
from streamscore.core.registry import RegistryError


class LifecycleError(ValueError):
    """The challenger cannot be used: the message says why."""


@dataclass
class ModelLifecycle:
    """The challenger published in the embedded stack, and its promotion when the run gets there."""

    registry: Registry
    challenger: str
    shipped: str
    promote_after: int | None  # records sent; None: stays a challenger
    promoted_at: float | None = None  # wall clock of the promotion
    promoted_after: int | None = None  # records sent by then
    events: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        clients: Any,
        outputs: Mapping[str, str],
        directory: Path,
        shipped_version: str,
        promote_after: int | None,
    ) -> ModelLifecycle:
        """Publish the model in `directory` and name it the challenger."""
        version = challenger_version(directory, shipped_version)
        registry = Registry.of(
            clients("s3"),
            clients("dynamodb"),
            outputs["ArtifactsBucketName"],
            outputs["MonitoringTableName"],
        )
        try:
            registry.publish(directory, role="challenger")
        except RegistryError as error:
            raise LifecycleError(str(error)) from None
        lifecycle = cls(registry, version, shipped_version, promote_after)
        lifecycle.events.append(f"{version} published and named challenger")
        return lifecycle

    def on_sent(self, sent: int) -> str | None:
        """Promote the challenger once `promote_after` records were sent (once); what happened."""
        if self.promote_after is None or self.promoted_at is not None or sent < self.promote_after:
            return None
        self.registry.promote()
        self.promoted_at, self.promoted_after = time.time(), sent
        self.events.append(f"{self.challenger} promoted after {sent:,} records sent")
        return f"challenger {self.challenger} promoted after {sent:,} records sent"

    def summary(self, predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Predictions per version, the shadow's agreement, and the promotion's delay."""
        shadowed = [p for p in predictions.values() if "challenger_version" in p]
        agreed = sum(1 for p in shadowed if p["challenger_decision"] == p["decision"])
        pairs = Counter(
            f"{p['decision']}->{p['challenger_decision']}"
            for p in shadowed
            if p["challenger_decision"] != p["decision"]
        )
        result: dict[str, Any] = {
            "challenger": self.challenger,
            "champion_before": self.shipped,
            "events": list(self.events),
            "predictions_by_version": dict(
                sorted(Counter(str(p.get("model_version")) for p in predictions.values()).items())
            ),
            "shadow": {
                "predictions": len(shadowed),
                "agreement": round(agreed / len(shadowed), 6) if shadowed else None,
                "disagreements": dict(sorted(pairs.items())),
            },
        }
        if self.promoted_at is not None:
            result["promotion"] = self._promotion(predictions)
        return result

    def _promotion(self, predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """When the new champion's first prediction was written after the promotion."""
        assert self.promoted_at is not None
        by_new = [
            datetime.fromisoformat(str(p["scored_at"])).timestamp()
            for p in predictions.values()
            if p.get("model_version") == self.challenger
        ]
        first = min(by_new) if by_new else None
        return {
            "after_records_sent": self.promoted_after,
            "at": datetime.fromtimestamp(self.promoted_at, UTC).isoformat(timespec="milliseconds"),
            "first_prediction_after_s": None
            if first is None
            else round(max(0.0, first - self.promoted_at), 3),
        }


def challenger_version(directory: Path, shipped_version: str) -> str:
    """The version of the model in `directory`; LifecycleError when it is no model directory or
    the model the stack ships with."""
    card = directory / CARD_FILE
    try:
        version = str(json.loads(card.read_text())["model_version"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise LifecycleError(
            f"{directory} is not a model directory (as `make model` writes one): "
            f"{CARD_FILE}: {type(error).__name__}: {error}"
        ) from None
    if version == shipped_version:
        raise LifecycleError(
            f"{directory} holds the model the stack ships with ({version}): a challenger is "
            "another model, e.g. `make model MODEL_SEED=8 MODEL_ARTIFACTS=out/challenger`"
        )
    return version


def promote_after(share: float | None, records: int) -> int | None:
    """The records sent before the promotion, for a share of the run's records."""
    return None if share is None else max(1, round(share * records))
