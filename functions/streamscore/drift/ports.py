"""What the drift check reads and writes through: the window's items, reports, the cooldown item, events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from streamscore.core.ports import MonitoringStore
from streamscore.drift.baseline import DriftBaseline

# The report item's `retraining`, for a drifted window:
#   sent       its trigger id was delivered (every detail type accepted by EventBridge),
#              by this run or by an earlier run of the window
#   cooldown   nothing sent: another trigger of the model version completed within the cooldown
#   in_flight  nothing sent: another trigger's claim is younger than the lease (its run may
#              still be sending; if it died, a run after the lease sends a trigger)
# and `not_drift` for a window that did not drift.
Trigger = Literal["sent", "cooldown", "in_flight", "not_drift"]
ClaimState = Literal["ours", "sent", "cooldown", "in_flight"]


# ---------------------------------------------------------------- the check, over ports


class WindowReader(Protocol):
    def read(self, window_keys: Sequence[str], start: str, end: str) -> Iterable[dict[str, Any]]:
        """Every item of the window keys with start <= recorded_at <= end, all pages; the
        caller sums them as they come (an adapter need not hold the window's items at once)."""
        ...


class ReportWriter(Protocol):
    def uri(self, key: str) -> str:
        """Where `key` is stored (an s3:// URI)."""
        ...

    def put(self, key: str, body: bytes, content_type: str) -> None: ...


@dataclass(frozen=True)
class TriggerClaim:
    """What claiming a trigger found: ours to send, or why not.

    `ours`: the claim is ours (new, resumed by a retry, or taken over from a dead run);
    `accepted` names the detail types EventBridge already accepted for this trigger id.
    `sent`: this trigger id was completed before (a re-run of its window).
    `cooldown`: another trigger of the model version completed within the cooldown.
    `in_flight`: another trigger's claim is younger than the lease: its run may be sending it.
    `history` is the store's own bookkeeping (the latest completed trigger ids), handed back
    to it by `record`.
    """

    model_version: str
    trigger_id: str
    state: ClaimState
    accepted: frozenset[str] = frozenset()
    history: tuple[str, ...] = ()


class RetrainingCooldown(Protocol):
    def claim(
        self,
        model_version: str,
        trigger_id: str,
        now: datetime,
        cooldown_hours: float,
        lease_seconds: float,
    ) -> TriggerClaim:
        """Claim `trigger_id` in one conditional write, or say why it is not ours (see TriggerClaim).

        Ours when it was never completed and either it is the claim in progress (a retry
        resumes it, whatever its age) or no other trigger completed within the cooldown
        and no other claim is younger than `lease_seconds`.
        """
        ...

    def record(
        self, claim: TriggerClaim, accepted: frozenset[str], complete: bool, now: datetime
    ) -> bool:
        """Store the detail types EventBridge accepted; with `complete`, commit the trigger at `now`.

        Conditional on the claim still being ours and in progress; False when it is not.
        """
        ...


class ModelBaselines(Protocol):
    """The model registry as the drift check reads it (aws/drift_stores.py RegistryBaselines)."""

    def champion(self) -> str | None:
        """The pointer's champion; None when it names none (the shipped model decides)."""
        ...

    def baseline(self, version: str) -> DriftBaseline | None:
        """The version's baseline, its files checked against the version's manifest; None when
        the registry has no such version. RegistryError when its files fail the check."""
        ...


class EventSink(Protocol):
    def put_events(self, entries: Sequence[Mapping[str, str]]) -> list[int]:
        """Indexes of the entries that still failed after retries."""
        ...


@dataclass(frozen=True)
class DriftCheckPorts:
    reader: WindowReader
    reports: ReportWriter
    monitoring: MonitoringStore
    cooldown: RetrainingCooldown
    events: EventSink
