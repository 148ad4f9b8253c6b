"""In-memory fakes of the stages' ports, one per port, named after it, with the knobs tests need.

preprocess (streamscore.preprocess.ports): MemoryStateStore and MemoryFeatureStore (the
DynamoDB adapters over a MemoryTable, so items round-trip as DynamoDB gives them back),
MemoryForwarder; scoring (streamscore.scoring.ports): MemoryPredictionStore,
MemoryAlertPublisher; drift (streamscore.drift.ports): MemoryWindowReader, MemoryReportStore,
MemoryCooldown, MemoryEventSink; labels (streamscore.labels.ports): MemoryLabelStore (predictions
are read through a MemoryPredictionStore); every stage (streamscore.core.ports):
MemoryQuarantineStore, MemoryMonitoringStore. `memory_preprocess_ports`, `MemoryScorePorts` and `MemoryDriftPorts`
bundle a stage's fakes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from streamscore.aws.dynamodb import Key, deserialize, serialize
from streamscore.aws.preprocess_stores import DynamoFeatureStore, DynamoStateStore
from streamscore.core.errors import RetryableError
from streamscore.core.feature_record import FeatureRecord
from streamscore.core.ids import CardId, RecordId, TransactionId
from streamscore.core.monitoring import CountKey, Counts, Fact
from streamscore.drift.ports import DriftCheckPorts, TriggerClaim
from streamscore.preprocess.features import CardState
from streamscore.preprocess.ports import PreprocessPorts
from streamscore.scoring.ports import ScorePorts
from streamscore.scoring.shadow import creates_prediction

# ----------------------------------------------------------------------------- both stages


class MemoryQuarantineStore:
    """QuarantineStore: items by record id; `broken` raises RetryableError on every save."""

    def __init__(self, broken: bool = False) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.broken = broken

    def save(self, items: Sequence[dict[str, Any]]) -> set[RecordId]:
        if self.broken:
            raise RetryableError("DynamoDB TransactWriteItems on quarantine: ThrottlingException")
        for item in items:
            self.items[item["record_id"]] = item
        return set()


@dataclass
class MemoryMonitoringStore:
    """MonitoringStore: whole items by (pk, sk)."""

    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def put(self, item: dict[str, Any]) -> None:
        self.items[(item["pk"], item["sk"])] = item


# ----------------------------------------------------------------------------- preprocess


class MemoryTable:
    """A table in DynamoDB's wire format: what goes in comes back as DynamoDB gives it back.

    Keys in `unreadable` are handed back unread, items whose key is in `unwritable` unwritten
    (as a BatchTable does once its retries are spent); both can be changed between calls.
    """

    def __init__(
        self,
        key: str,
        unreadable: frozenset[str] = frozenset(),
        unwritable: frozenset[str] = frozenset(),
    ):
        self.key = key
        self.raw: dict[str, dict[str, Any]] = {}
        self.unreadable = unreadable
        self.unwritable = unwritable

    def get_many(self, keys: Any) -> tuple[dict[Key, dict[str, Any]], list[Key]]:
        wanted = [k[self.key] for k in keys]
        found = {
            (k,): deserialize(self.raw[k])
            for k in wanted
            if k in self.raw and k not in self.unreadable
        }
        return found, [(k,) for k in wanted if k in self.unreadable]

    def put_many(self, items: Any) -> list[Key]:
        failed = []
        for item in items:
            if item[self.key] in self.unwritable:
                failed.append((item[self.key],))
            else:
                self.raw[item[self.key]] = serialize(item)
        return failed


class MemoryStateStore(DynamoStateStore):
    """StateStore: EntityStateTable's adapter over a MemoryTable (states round-trip as in DynamoDB)."""

    def __init__(
        self, unreadable: frozenset[str] = frozenset(), unsaveable: frozenset[str] = frozenset()
    ):
        super().__init__(MemoryTable("card_id", unreadable, unsaveable), 400)  # type: ignore[arg-type]

    @property
    def memory(self) -> MemoryTable:
        return cast(MemoryTable, self.table)

    @property
    def items(self) -> dict[CardId, CardState]:
        found, _ = self.load([CardId(c) for c in self.memory.raw])
        return {c: card.state for c, card in found.items()}


class MemoryFeatureStore(DynamoFeatureStore):
    """FeatureStore: FeaturesTable's adapter over a MemoryTable; `unwritable` transaction ids fail."""

    def __init__(
        self, unwritable: frozenset[str] = frozenset(), unreadable: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(MemoryTable("transaction_id", unreadable, unwritable), 7)  # type: ignore[arg-type]

    @property
    def memory(self) -> MemoryTable:
        return cast(MemoryTable, self.table)

    @property
    def items(self) -> dict[TransactionId, FeatureRecord]:
        return self.load([TransactionId(t) for t in self.memory.raw])[0]


class MemoryForwarder:
    """FeatureForwarder: the records as a consumer of FeaturesStream reads them (JSON text)."""

    def __init__(self, failing: frozenset[str] = frozenset()) -> None:
        self.records: list[dict[str, Any]] = []
        self.failing = failing

    def forward(self, feature_records: Sequence[FeatureRecord]) -> set[TransactionId]:
        for record in feature_records:
            if record["transaction_id"] not in self.failing:
                self.records.append(json.loads(json.dumps(record, allow_nan=False)))
        return {r["transaction_id"] for r in feature_records if r["transaction_id"] in self.failing}


def memory_preprocess_ports(**overrides: Any) -> PreprocessPorts:
    """PreprocessPorts of fresh in-memory fakes, with `overrides` (states=..., quarantine=...)."""
    ports: dict[str, Any] = {
        "states": MemoryStateStore(),
        "features": MemoryFeatureStore(),
        "forwarder": MemoryForwarder(),
        "quarantine": MemoryQuarantineStore(),
    }
    return PreprocessPorts(**(ports | overrides))


# ----------------------------------------------------------------------------- scoring


class MemoryPredictionStore:
    """PredictionStore: predictions by transaction id, and the counts they added by count key.

    Knobs: `fail_saving` (ids whose create or save fails), `fail_loading` (load raises
    RetryableError), `lose_responses` (that many creates take effect, then raise).
    `saves` counts the create and save calls.
    """

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.fail_saving: set[str] = set()
        self.fail_loading = False
        self.saves = 0
        self.counts: dict[CountKey, Counts] = {}
        self.lose_responses = 0  # creates that take effect and then raise

    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        if self.fail_loading:
            raise RetryableError("DynamoDB BatchGetItem: ThrottlingException")
        return {i: dict(self.items[i]) for i in transaction_ids if i in self.items}, set()

    def create(
        self, facts: Sequence[Fact], now: datetime
    ) -> tuple[set[TransactionId], set[TransactionId]]:
        """As DynamoFactWriter does it: a new prediction and its counts together, or neither."""
        self.saves += 1
        done: set[TransactionId] = set()
        failed: set[TransactionId] = set()
        for fact in facts:
            key = TransactionId(fact.key)
            if key in self.fail_saving:
                failed.add(key)
                continue
            if creates_prediction(self.items.get(key), fact.item, bool(fact.also)):
                self.items[key] = dict(fact.item)
                for count_key, counts in fact.adds():
                    self.counts.setdefault(count_key, Counts()).add(counts)
            done.add(key)
        if self.lose_responses:
            self.lose_responses -= 1
            raise RetryableError("DynamoDB TransactWriteItems: ReadTimeoutError")
        return done, failed

    def save(self, predictions: Sequence[dict[str, Any]], now: datetime) -> set[TransactionId]:
        self.saves += 1
        failed = {p["transaction_id"] for p in predictions} & self.fail_saving
        for p in predictions:
            if p["transaction_id"] not in failed:
                self.items[p["transaction_id"]] = dict(p)
        return {TransactionId(t) for t in failed}

    def total(self) -> Counts:
        total = Counts()
        for counts in self.counts.values():
            total.add(counts)
        return total


class MemoryAlertPublisher:
    """AlertPublisher: the alerts sent; those of the ids in `fail` are refused."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail: set[str] = set()

    def publish(self, alerts: Sequence[dict[str, Any]]) -> set[TransactionId]:
        failed = {a["transaction_id"] for a in alerts} & self.fail
        self.sent += [a for a in alerts if a["transaction_id"] not in failed]
        return failed


class MemoryScorePorts:
    """The scoring stage's fakes and the ScorePorts over them (`ports`, replaceable)."""

    def __init__(self) -> None:
        self.predictions = MemoryPredictionStore()
        self.alerts = MemoryAlertPublisher()
        self.quarantine = MemoryQuarantineStore()
        self.ports = ScorePorts(self.predictions, self.alerts, self.quarantine)


# ----------------------------------------------------------------------------- drift


class MemoryWindowReader:
    """WindowReader (WindowIndex): the items of the asked buckets with start <= recorded_at <= end.

    `asked` keeps every window key asked for.
    """

    def __init__(self, items: Sequence[dict[str, Any]] = ()):
        self.items = list(items)
        self.asked: list[str] = []

    def read(self, window_keys: Sequence[str], start: str, end: str) -> list[dict[str, Any]]:
        self.asked += window_keys
        keys = set(window_keys)
        return [
            item
            for item in self.items
            if item["window_key"] in keys and start <= item["recorded_at"] <= end
        ]


@dataclass
class MemoryReportStore:
    """ReportWriter: objects by key, with their content type, under s3://artifacts/."""

    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def uri(self, key: str) -> str:
        return f"s3://artifacts/{key}"

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = (body, content_type)

    def json(self, key: str) -> dict[str, Any]:
        return dict(json.loads(self.objects[key][0]))


@dataclass
class MemoryCooldown:
    """RetrainingCooldown: DynamoRetrainingCooldown's state machine in memory, one item per model version.

    The detail types accepted are kept per trigger id until it completes (a takeover of a
    dead claim does not forget them); `commits` lists the completed triggers with their time.
    """

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepted: dict[str, frozenset[str]] = field(default_factory=dict)  # by trigger id
    commits: list[tuple[str, datetime]] = field(default_factory=list)  # (trigger id, when)

    def claim(
        self,
        model_version: str,
        trigger_id: str,
        now: datetime,
        cooldown_hours: float,
        lease_seconds: float,
    ) -> TriggerClaim:
        item = self.items.setdefault(model_version, {})
        if trigger_id in item.get("sent_triggers", []):
            return TriggerClaim(model_version, trigger_id, "sent")
        if item.get("trigger_id") != trigger_id or item.get("status") != "sending":
            if item.get("triggered_epoch", -math.inf) >= now.timestamp() - cooldown_hours * 3600:
                return TriggerClaim(model_version, trigger_id, "cooldown")
            if item.get("status") == "sending" and item["claimed_epoch"] >= (
                now.timestamp() - lease_seconds
            ):
                return TriggerClaim(model_version, trigger_id, "in_flight")
            item |= {"trigger_id": trigger_id, "status": "sending"}
        item["claimed_epoch"] = now.timestamp()
        accepted = self.accepted.get(trigger_id, frozenset())
        return TriggerClaim(model_version, trigger_id, "ours", accepted)

    def record(
        self, claim: TriggerClaim, accepted: frozenset[str], complete: bool, now: datetime
    ) -> bool:
        item = self.items.get(claim.model_version, {})
        if item.get("trigger_id") != claim.trigger_id or item.get("status") != "sending":
            return False
        self.accepted[claim.trigger_id] = frozenset(accepted)
        if complete:
            del self.accepted[claim.trigger_id]
            item |= {"status": "sent", "triggered_epoch": now.timestamp()}
            item["sent_triggers"] = [*item.get("sent_triggers", []), claim.trigger_id]
            self.commits.append((claim.trigger_id, now))
        return True


@dataclass
class MemoryEventSink:
    """EventSink (EventBridge): takes the entries, except those of a `refuse`d detail type.

    `fail` refuses every entry; `lose_responses`: that many calls take effect, then raise
    RetryableError (the response was lost); `calls` keeps the detail types of each call.
    """

    entries: list[Mapping[str, str]] = field(default_factory=list)
    fail: bool = False
    refuse: set[str] = field(default_factory=set)
    calls: list[list[str]] = field(default_factory=list)  # the detail types of each call
    lose_responses: int = 0  # calls that take effect and then raise

    def put_events(self, entries: Sequence[Mapping[str, str]]) -> list[int]:
        self.calls.append([e["DetailType"] for e in entries])
        if self.fail:
            return list(range(len(entries)))
        failed = [i for i, e in enumerate(entries) if e["DetailType"] in self.refuse]
        self.entries += [e for i, e in enumerate(entries) if i not in failed]
        if self.lose_responses:
            self.lose_responses -= 1
            raise RetryableError("EventBridge PutEvents: ReadTimeoutError")
        return failed

    @property
    def details(self) -> list[dict[str, Any]]:
        """The detail of every entry taken, whatever its type, in order."""
        return [json.loads(e["Detail"]) for e in self.entries]

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.entries if e["DetailType"] == detail_type]


@dataclass
class MemoryDriftPorts:
    """The drift check's fakes (a reader given, the others fresh) and the DriftCheckPorts over them."""

    reader: MemoryWindowReader
    reports: MemoryReportStore = field(default_factory=MemoryReportStore)
    monitoring: MemoryMonitoringStore = field(default_factory=MemoryMonitoringStore)
    cooldown: MemoryCooldown = field(default_factory=MemoryCooldown)
    events: MemoryEventSink = field(default_factory=MemoryEventSink)

    def wired(self) -> DriftCheckPorts:
        return DriftCheckPorts(
            self.reader, self.reports, self.monitoring, self.cooldown, self.events
        )


# ----------------------------------------------------------------------------- labels


class MemoryLabelStore:
    """LabelStore: labels by transaction id under aws/label_stores.py's condition (the stored
    label_key is the one the fact `replaces`, or none is stored), and the counts they moved.

    Knobs: `fail_writing` (ids whose write fails), `fail_loading` (load raises RetryableError),
    `lose_responses` (that many writes take effect, then raise), `before_write` (called with
    the store before each write: a concurrent writer).
    """

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.counts: dict[CountKey, Counts] = {}
        self.fail_writing: set[str] = set()
        self.fail_loading = False
        self.lose_responses = 0
        self.before_write: Callable[[MemoryLabelStore], None] | None = None

    def load(
        self, transaction_ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        if self.fail_loading:
            raise RetryableError("DynamoDB BatchGetItem: ThrottlingException")
        return {i: dict(self.items[i]) for i in transaction_ids if i in self.items}, set()

    def write(
        self, facts: Sequence[Fact], now: datetime
    ) -> tuple[set[TransactionId], set[TransactionId], set[TransactionId]]:
        if self.before_write is not None:
            self.before_write(self)
        written: set[TransactionId] = set()
        raced: set[TransactionId] = set()
        failed: set[TransactionId] = set()
        for fact in facts:
            key = TransactionId(fact.key)
            if key in self.fail_writing:
                failed.add(key)
                continue
            stored = self.items.get(key)
            if (stored["label_key"] if stored else None) != fact.item.get("replaces"):
                raced.add(key)
                continue
            self.items[key] = dict(fact.item)
            for count_key, tally in fact.adds():
                self.counts.setdefault(count_key, Counts()).add(tally)
            written.add(key)
        if self.lose_responses:
            self.lose_responses -= 1
            raise RetryableError("DynamoDB TransactWriteItems: ReadTimeoutError")
        return written, raced, failed

    def total(self) -> Counts:
        total = Counts()
        for counts in self.counts.values():
            total.add(counts)
        return total
