"""The promotion check: judge the registry's challenger (promotion/policy.py), act once, tell once.

Run on a schedule (DriftCheckFunction, event `{"check": "promotion"}`). Every step can fail
and be retried; the pointer item is the one record of a decision:

1. Read the pointer (consistent). A decision on it whose events are not yet out (`events_sent`
   false) is finished first: its events are put again (same `decision_id`) and the flag set.
2. No challenger: nothing to do. Else sum the challenger's SHAD and paired QUAL count items
   since it was named and judge them. `wait`: nothing is written.
3. `promote` or `reject`: one compare-and-set of the pointer (on the revision read) changes the
   champion or drops the challenger (Automatic mode; in Manual mode both stay) and records the
   decision with `events_sent` false, in the same write. A lost race (the pointer changed
   since it was read) writes nothing; the next run judges the new pointer.
4. Put the decision's event (ModelPromoted or ChallengerRejected; in Manual mode
   PromotionRecommended or RejectionRecommended), its detail the decision with its stable
   `decision_id` (`<challenger>@<champion>/r<revision judged>`), then set `events_sent`.

So the pointer changes at most once per decision, and an event is put until EventBridge
accepted it: a run that dies between PutEvents and step 4's flag puts it again, with the same
id, which is what consumers de-duplicate on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from streamscore.core.errors import RetryableError
from streamscore.core.monitoring import MONITORING_SOURCE, window_key
from streamscore.core.registry import Pointer, RegistryError
from streamscore.core.times import utc_iso_ms
from streamscore.promotion.policy import (
    PROMOTE,
    WAIT,
    Judgement,
    PromotionPolicy,
    hours_between,
    judge,
    sum_shadow_items,
)

PROMOTION = "promotion"
_HOUR = timedelta(hours=1)
Mode = Literal["Automatic", "Manual"]
EVENTS = {
    ("Automatic", "promote"): "ModelPromoted",
    ("Automatic", "reject"): "ChallengerRejected",
    ("Manual", "promote"): "PromotionRecommended",
    ("Manual", "reject"): "RejectionRecommended",
}


class PointerStore(Protocol):
    def read(self, consistent: bool = False) -> Pointer: ...

    def write(self, pointer: Pointer, expected_revision: int) -> None:
        """Store `pointer` if the stored one is at `expected_revision`; RegistryError if not."""
        ...


class ItemReader(Protocol):
    def read(
        self, window_keys: Sequence[str], start: str, end: str
    ) -> Iterable[dict[str, Any]]: ...


class EventSink(Protocol):
    def put_events(self, entries: Sequence[dict[str, str]]) -> list[int]:
        """Indexes of the entries that failed after retries."""
        ...


class CardRates(Protocol):
    def decline_share(self, version: str) -> float | None:
        """The share of transactions `version`'s card expects it to decline; None if unknown."""
        ...


@dataclass(frozen=True)
class PromotionPorts:
    pointer: PointerStore
    reader: ItemReader
    events: EventSink
    cards: CardRates | None = None  # None: the decline guard compares with the champion only


@dataclass(frozen=True)
class PromotionOutcome:
    # no_challenger | wait | decided | decided_before | lost_race | resumed
    status: str
    decision: dict[str, Any] | None = None
    judgement: Judgement | None = None
    events_sent: tuple[str, ...] = ()
    items_read: int = 0


@dataclass
class PromotionChecker:
    ports: PromotionPorts
    policy: PromotionPolicy
    mode: Mode
    shipped_version: str  # the champion when the pointer names none

    def check(self, now: datetime) -> PromotionOutcome:
        pointer = self.ports.pointer.read(consistent=True)
        pending = pointer.decision
        if pending is not None and not pending.get("events_sent"):
            return self._announce(pointer, pending, "resumed")
        challenger = pointer.challenger
        if challenger is None:
            return PromotionOutcome("no_challenger")
        champion = pointer.champion or self.shipped_version
        if (
            pending is not None
            and pending.get("challenger") == challenger
            and pending.get("champion") == champion
        ):  # judged before and left to a person (Manual mode): said once
            return PromotionOutcome("decided_before", decision=pending)
        judgement, since, read = self._judge(pointer, challenger, champion, now)
        if judgement.verdict == WAIT:
            return PromotionOutcome("wait", judgement=judgement, items_read=read)
        decision = {
            "decision_id": f"{challenger}@{champion}/r{pointer.revision}",
            "verdict": judgement.verdict,
            "why": judgement.why,
            "mode": self.mode,
            "applied": self.mode == "Automatic",
            "challenger": challenger,
            "champion": champion,
            "challenger_since": utc_iso_ms(since),
            "decided_at": utc_iso_ms(now),
            "figures": judgement.figures,
            "policy": dataclasses.asdict(self.policy),
            "events_sent": False,
        }
        changed = pointer
        if self.mode == "Automatic":
            changed = pointer.promoted() if judgement.verdict == PROMOTE else pointer.dropped()
        recorded = changed.recording(decision, revision=pointer.revision + 1)
        try:
            self.ports.pointer.write(recorded, pointer.revision)
        except RegistryError:
            return PromotionOutcome("lost_race", judgement=judgement, items_read=read)
        outcome = self._announce(recorded, decision, "decided")
        return dataclasses.replace(outcome, judgement=judgement, items_read=read)

    def _judge(
        self, pointer: Pointer, challenger: str, champion: str, now: datetime
    ) -> tuple[Judgement, datetime, int]:
        """The verdict on the challenger's shadow counts since it was named (the policy's
        max_days when the pointer does not say), when it was named, and the items read."""
        since = (
            datetime.fromisoformat(pointer.challenger_since) if pointer.challenger_since else None
        )
        first = _hour(since or now - timedelta(days=self.policy.max_days))
        last = _hour(now)
        hours = [first + timedelta(hours=h) for h in range(int((last - first) / _HOUR) + 1)]
        keys = [window_key(f"{hour:%Y-%m-%dT%H}") for hour in hours]
        items = self.ports.reader.read(keys, utc_iso_ms(first), utc_iso_ms(last + _HOUR))
        counts = sum_shadow_items(items, challenger, champion)
        if since is None:  # a pointer written before challengers had a start: the first hour
            since = _parse_hour(counts.first_hour) if counts.first_hour else now
        judgement = judge(
            counts, hours_between(since, now), self.policy, self._card_decline_share(challenger)
        )
        return judgement, since, counts.read

    def _card_decline_share(self, challenger: str) -> float | None:
        """What the challenger's card expects it to decline; None when there is no card port or
        the card cannot be read as it should (the guard then compares with the champion only,
        the stricter rule)."""
        if self.ports.cards is None:
            return None
        try:
            return self.ports.cards.decline_share(challenger)
        except RegistryError:
            return None

    def _announce(
        self, pointer: Pointer, decision: dict[str, Any], status: str
    ) -> PromotionOutcome:
        detail_type = EVENTS[(decision["mode"], decision["verdict"])]
        body = json.dumps(
            {k: v for k, v in decision.items() if k != "events_sent"},
            separators=(",", ":"),
            allow_nan=False,
        )
        entry = {"Source": MONITORING_SOURCE, "DetailType": detail_type, "Detail": body}
        if self.ports.events.put_events([entry]):
            raise RetryableError(
                f"EventBridge refused {detail_type} of {decision['decision_id']}; the next run "
                "puts it again"
            )
        sent = pointer.recording(decision | {"events_sent": True}, revision=pointer.revision + 1)
        # changed in between (a person, a publish): the event is out; a run that finds the
        # decision still pending puts it again with the same id
        with contextlib.suppress(RegistryError):
            self.ports.pointer.write(sent, pointer.revision)
        return PromotionOutcome(status, decision=decision, events_sent=(detail_type,))


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _parse_hour(hour: str) -> datetime:
    return datetime.fromisoformat(f"{hour}:00:00+00:00")
