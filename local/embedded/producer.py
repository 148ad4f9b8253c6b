"""What the local run streams, and the producer that puts it on TransactionsStream.

Traffic is simulated card transactions (with their fraud labels, and invalid records mixed in
at a rate) or a file of payloads, one per line. The producer sends PutRecords of at most 500
records and 5 MiB, partition key = card_id, and resends the entries a call hands back as failed.

With `aggregate` above 1 it packs user records into KPL aggregated records as the Kinesis
Producer Library does: the records bound for one shard (each partition key's shard from the
stream's open shards, read once per `send`), whatever their keys, in their order, up to
`aggregate` per Kinesis record and within its 1 MiB, put with the first one's partition key,
so they land on that shard and each card keeps its order. A record with no neighbour for its
shard in the window packed at a time (one PutRecords' worth) is sent plain, as the KPL sends
a lone record. `ProducerResult` keeps, per payload, the Kinesis record it went in and its
index there (`sub_sequence`): each user record's own record id.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from embedded.aggregation import pack
from simulator import Label, SimulationConfig, encode_transaction, inject_invalid, simulate
from streamscore.core.aggregation import UserRecord

PUT_RECORDS_MAX_RECORDS = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # Kinesis refuses a larger record (data plus partition key)
RESEND_ATTEMPTS = 8
# The simulated period, and the share of it before the scenario's drift starts. The stack
# starts cold (no card state): the drift baseline's card-age strata compare each window with
# reference cards the pipeline had known as long, so a fresh stack is no drift
# (docs/ARCHITECTURE.md, "Drift on a fresh stack"). Three days of baseline traffic, then the
# scenario from day 4; the drift check looks at days 4 to 7.
SIMULATED_DAYS = 7.0
BASELINE_SHARE = 3.0 / 7.0
# Each scenario strong enough to cross the drift threshold over the checked days (at the
# simulator's defaults amount-inflation only reaches "warn" and new-fraud-pattern nothing).
SCENARIO_SETTINGS: dict[str, dict[str, float]] = {
    "baseline": {},
    "amount-inflation": {"inflation_factor": 2.5},
    "channel-shift": {"ecom_shift": 0.5},
    "new-fraud-pattern": {"new_pattern_rate": 0.25},
}


@dataclass(frozen=True)
class Traffic:
    """Payloads in sending order, their partition keys, and what is known about them."""

    payloads: list[bytes]
    partition_keys: list[str]
    labels: dict[str, Label] = field(default_factory=dict)  # by transaction_id (simulated only)
    invalid: int | None = None  # invalid records mixed in, when known
    repeats: int = 0  # payloads whose transaction_id was sent before (producer duplicates)
    monitored_from: int = 0  # payloads before this index precede the drift; the check looks after
    description: str = ""
    drift_from: datetime | None = None  # event time the scenario's drift starts (simulated only)
    event_end: datetime | None = None  # the simulated period's end (simulated only)

    def __len__(self) -> int:
        return len(self.payloads)

    def checked_window(self) -> tuple[datetime, datetime] | None:
        """The event-time span of the payloads from `monitored_from` on: what the drift check reads.

        Counts are bucketed by the transactions' own event hours, so the drift check looks at
        the days the checked traffic happened on, not at when this run processed it. At most
        the drift check's longest window (the last 7 days of it); None without event times.
        """
        times = [t for t in map(event_time, self.payloads[self.monitored_from :]) if t]
        if not times:
            return None
        end = max(times) + timedelta(seconds=1)
        # simulated traffic: the window opens with the first checked transaction (the invalid
        # records mixed in after it may carry any event time)
        first = event_time(self.payloads[self.monitored_from]) if self.monitored_from else None
        return max(first or min(times), end - timedelta(days=7)), end


def simulated_traffic(
    transactions: int,
    scenario: str = "baseline",
    invalid_rate: float = 0.0,
    seed: int = 2026,
    days: float = SIMULATED_DAYS,
    baseline_days: float | None = None,
) -> Traffic:
    """`transactions` simulated transactions over `days` of event time, invalid records mixed in.

    The cards are as many as the period needs for at least `transactions` transactions; the
    surplus is left out at the start (with `baseline_days` given: at the end, so the baseline
    days are whole). The scenario's drift starts after the baseline days (the first 3/7 of the
    period, or `baseline_days`).
    """
    if transactions < 1:
        raise ValueError("stream at least one transaction")
    if scenario not in SCENARIO_SETTINGS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIO_SETTINGS)}")
    share = BASELINE_SHARE if baseline_days is None else baseline_days / days
    if not 0 < share < 1:
        raise ValueError(f"the baseline days must be fewer than the {days:g} simulated days")
    # a new fraud pattern adds its rows after the drift: counted here, or the surplus left out
    # at the start would cut the baseline days (a closed loop's whole baseline week)
    extra = SCENARIO_SETTINGS[scenario].get("new_pattern_rate", 0.0) * (1 - share)
    per_card = days * SimulationConfig().mean_daily_txns * (1 + extra)
    cards = max(1, math.ceil(transactions / per_card))
    for _ in range(6):
        config = SimulationConfig(
            seed=seed,
            n_cards=cards,
            days=days,
            scenario=scenario,  # type: ignore[arg-type]
            drift_start=share,
            **SCENARIO_SETTINGS[scenario],  # type: ignore[arg-type]
        )
        batch = simulate(config)
        if len(batch) >= transactions:
            break
        cards = math.ceil(cards * transactions / max(len(batch), 1) * 1.02)
    # The surplus goes from the start of the baseline days, so the checked days (the last) stay
    # whole; with `baseline_days` given, from the end, so those days do.
    surplus = max(0, len(batch) - transactions)
    kept = slice(surplus, None) if baseline_days is None else slice(0, len(batch) - surplus)
    chosen = batch.transactions[kept]
    labels = {label.transaction_id: label for label in batch.labels[kept]}
    drift_from = config.start_epoch + share * days * 86_400
    before_drift = int(np.searchsorted(batch.timestamps[kept], drift_from))
    rng = np.random.default_rng(seed)
    mixed = inject_invalid([encode_transaction(t) for t in chosen], rng, invalid_rate)
    keys: list[str] = []
    monitored_from = len(mixed)
    valid_seen = 0
    upcoming = iter(str(t["card_id"]) for t in chosen)
    next_card = next(upcoming, "invalid")
    for index, (_, category) in enumerate(mixed):
        # an invalid record travels with the next valid one, as if from the same producer
        keys.append(next_card)
        if category is None:
            if valid_seen == before_drift:
                monitored_from = min(monitored_from, index)
            valid_seen += 1
            next_card = next(upcoming, next_card)
    invalid = sum(1 for _, category in mixed if category is not None)
    return Traffic(
        payloads=[payload for payload, _ in mixed],
        partition_keys=keys,
        labels=labels,
        invalid=invalid,
        monitored_from=monitored_from,
        description=(
            f"{len(chosen):,} simulated transactions ({scenario}, seed {seed}, {cards:,} cards, "
            f"{days:g} days from a cold stack, the drift check on the last "
            f"{min(7.0, (1 - share) * days):g}) + {invalid:,} invalid records"
        ),
        drift_from=None if scenario == "baseline" else datetime.fromtimestamp(drift_from, UTC),
        event_end=datetime.fromtimestamp(config.start_epoch + days * 86_400, UTC),
    )


def event_time(payload: bytes) -> datetime | None:
    try:
        doc = json.loads(payload)
        moment = datetime.fromisoformat(doc["event_time"]) if isinstance(doc, dict) else None
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return moment.astimezone(UTC) if moment is not None and moment.tzinfo else None


def file_traffic(path: Path) -> Traffic:
    """One payload per line, sent as the line's bytes (without its line break); blank lines skipped."""
    payloads: list[bytes] = []
    keys: list[str] = []
    seen: set[str] = set()
    repeats = 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            payload = line.rstrip(b"\r\n")
            if not payload.strip():
                continue
            card, transaction_id = _identity(payload)
            if transaction_id is not None:
                repeats += transaction_id in seen
                seen.add(transaction_id)
            payloads.append(payload)
            keys.append(card or f"line-{number}")
    return Traffic(
        payloads=payloads,
        partition_keys=keys,
        repeats=repeats,
        description=f"{len(payloads):,} records from {path}",
    )


def _identity(payload: bytes) -> tuple[str | None, str | None]:
    """card_id (the partition key) and transaction_id of a payload, where it has them."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    card, transaction_id = document.get("card_id"), document.get("transaction_id")
    card = card if isinstance(card, str) and 0 < len(card) <= 256 else None
    return card, transaction_id if isinstance(transaction_id, str) else None


@dataclass
class ProducerResult:
    sent: int = 0  # payloads (user records) accepted
    refused: int = 0  # never accepted after every resend
    put_calls: int = 0
    resent: int = 0  # Kinesis records sent again
    started_at: float = 0.0
    finished_at: float = 0.0
    # payload -> shard, sequence number of the Kinesis record it went in
    positions: dict[int, tuple[str, str]] = field(default_factory=dict)
    # payload -> its index in the aggregate it went in (payloads sent plain have none)
    sub_sequence: dict[int, int] = field(default_factory=dict)
    kinesis_records: int = 0  # Kinesis records accepted (= sent without aggregation)
    aggregates: int = 0  # of them, KPL aggregated records


@dataclass(frozen=True)
class Entry:
    """One Kinesis record to put: the payloads it carries (one when plain), its key and data."""

    members: tuple[int, ...]  # payload indexes, in the aggregate's order
    partition_key: str
    data: bytes
    aggregated: bool = False

    @property
    def size(self) -> int:
        """What counts against Kinesis' limits: data plus partition key."""
        return len(self.data) + len(self.partition_key.encode())


class Producer:
    """PutRecords to one stream, in order, with optional pacing, backpressure and KPL aggregation."""

    def __init__(
        self,
        kinesis: Any,
        stream_name: str,
        rate_per_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        aggregate: int = 1,
    ):
        if aggregate < 1:
            raise ValueError("aggregate: at least 1 user record per Kinesis record")
        self.kinesis = kinesis
        self.stream_name = stream_name
        self.rate_per_s = rate_per_s
        self.sleep = sleep
        self.aggregate = aggregate

    def send(
        self,
        traffic: Traffic,
        start: int = 0,
        stop: int | None = None,
        result: ProducerResult | None = None,
        progress: Callable[[int], None] | None = None,
        backlog: Callable[[int], None] | None = None,
    ) -> ProducerResult:
        """Send payloads [start, stop); `progress(sent)` after each call (payloads accepted so
        far), `backlog(kinesis_records)` before it (Kinesis records accepted so far) may wait."""
        result = result or ProducerResult()
        if not result.started_at:
            result.started_at = time.time()
        stop = len(traffic) if stop is None else stop
        entries = (
            _plain(traffic.payloads, traffic.partition_keys, start, stop)
            if self.aggregate == 1
            else _aggregated(
                traffic.payloads,
                traffic.partition_keys,
                start,
                stop,
                self._shard_of(),
                self.aggregate,
            )
        )
        for chunk in _chunks(entries):
            if backlog is not None:
                backlog(result.kinesis_records)
            if self.rate_per_s:
                due = result.started_at + result.sent / self.rate_per_s
                self.sleep(max(0.0, due - time.time()))
            accepted = self._put(chunk, result)
            result.sent += accepted
            result.refused += _payloads(chunk) - accepted
            if progress is not None:
                progress(result.sent)
        result.finished_at = time.time()
        return result

    def _shard_of(self) -> Callable[[str], str]:
        """Each partition key's shard among the stream's open shards (MD5 in a hash key range)."""
        shards: list[tuple[int, int, str]] = []
        page = self.kinesis.list_shards(StreamName=self.stream_name)
        while True:
            shards += [
                (
                    int(s["HashKeyRange"]["StartingHashKey"]),
                    int(s["HashKeyRange"]["EndingHashKey"]),
                    s["ShardId"],
                )
                for s in page["Shards"]
                if "EndingSequenceNumber" not in s["SequenceNumberRange"]
            ]
            if not page.get("NextToken"):
                break
            page = self.kinesis.list_shards(NextToken=page["NextToken"])

        def shard_of(key: str) -> str:
            point = int.from_bytes(hashlib.md5(key.encode(), usedforsecurity=False).digest())
            return next((shard for low, high, shard in shards if low <= point <= high), "")

        return shard_of

    def _put(self, entries: list[Entry], result: ProducerResult) -> int:
        """PutRecords `entries`, resending failed ones; the payloads accepted."""
        pending = entries
        for attempt in range(RESEND_ATTEMPTS):
            response = self.kinesis.put_records(
                StreamName=self.stream_name,
                Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in pending],
            )
            result.put_calls += 1
            failed = []
            for entry, outcome in zip(pending, response["Records"], strict=True):
                if "ErrorCode" in outcome:
                    failed.append(entry)
                    continue
                result.kinesis_records += 1
                result.aggregates += entry.aggregated
                for sub, index in enumerate(entry.members):
                    result.positions[index] = (outcome["ShardId"], outcome["SequenceNumber"])
                    if entry.aggregated:
                        result.sub_sequence[index] = sub
            if not failed:
                break
            pending = failed
            result.resent += len(pending)
            self.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
        else:
            return _payloads(entries) - _payloads(pending)
        return _payloads(entries)


def _payloads(entries: Sequence[Entry]) -> int:
    return sum(len(entry.members) for entry in entries)


def _plain(payloads: Sequence[bytes], keys: Sequence[str], start: int, stop: int) -> list[Entry]:
    entries = [Entry((i,), keys[i], payloads[i]) for i in range(start, stop)]
    for entry in entries:
        if entry.size > MAX_RECORD_BYTES:
            raise ValueError(
                f"record {entry.members[0] + 1} has {entry.size:,} bytes, above Kinesis' 1 MiB "
                "per record"
            )
    return entries


def _aggregated(
    payloads: Sequence[bytes],
    keys: Sequence[str],
    start: int,
    stop: int,
    shard_of: Callable[[str], str],
    most: int,
) -> list[Entry]:
    """Payloads [start, stop) packed per shard, a PutRecords' worth of them at a time.

    Each window's payloads are grouped by shard in their order; a group of one is sent
    plain, a larger one in aggregates of up to `most` user records (`pack` keeps each within
    1 MiB). Entries come in the order of their first payload.
    """
    entries: list[Entry] = []
    window = PUT_RECORDS_MAX_RECORDS * most
    for low in range(start, stop, window):
        groups: dict[str, list[int]] = {}
        for index in range(low, min(low + window, stop)):
            groups.setdefault(shard_of(keys[index]), []).append(index)
        packed: list[Entry] = []
        for group in groups.values():
            if len(group) == 1:
                packed += _plain(payloads, keys, group[0], group[0] + 1)
                continue
            users = [UserRecord(keys[i], payloads[i]) for i in group]
            try:
                aggregates = pack(users, max_user_records=most)
            except ValueError:
                raise ValueError(
                    "a record is above Kinesis' 1 MiB per record, even in an aggregate of its own"
                ) from None
            taken = 0
            for aggregate in aggregates:
                members = tuple(group[taken : taken + aggregate.user_records])
                taken += aggregate.user_records
                packed.append(Entry(members, aggregate.partition_key, aggregate.data, True))
        entries += sorted(packed, key=lambda entry: entry.members[0])
    return entries


def _chunks(entries: Sequence[Entry]) -> list[list[Entry]]:
    """The entries in PutRecords calls of at most 500 records and 5 MiB, in order."""
    chunks: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        if current and (
            len(current) == PUT_RECORDS_MAX_RECORDS or size + entry.size > PUT_RECORDS_MAX_BYTES
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        chunks.append(current)
    return chunks
