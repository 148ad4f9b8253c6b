"""PreprocessFunction's handler against moto: quarantine, idempotent replays, crashes, batch limits, faults.

Every test imports `preprocess.app` afresh with the environment template.yaml gives the
function, so its module-scope clients talk to the moto stack built from the template.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import itertools
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import (
    CallCounter,
    FakeLambdaContext,
    LocalStack,
    emitted_metrics,
    log_lines,
)

from embedded.lambda_events import KinesisEntry, kinesis_event
from embedded.template import parameter_values
from streamscore.core.errors import SystemicError
from streamscore.core.monitoring import QUARANTINE, Counts, window_key
from streamscore.core.settings import load_settings
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import replay_features
from streamscore.preprocess.settings import PreprocessSettings
from support.wiring import Wired, moto_clients

EVENTS = Path(__file__).resolve().parents[2] / "events"
SHARD = "shardId-000000000000"
CET = timezone(timedelta(hours=1))
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=CET)
ARRIVAL = 1_772_442_000.25
QUARANTINE_TTL_DAYS = 30  # template default of QuarantineTtlDays
MAX_TRANSACTION_BYTES = 16 * 1024  # a bigger payload is quarantined as oversized


# ----------------------------------------------------------------------------- building batches


def transaction(index: int, card: str, minutes: float = 0.0, **overrides: Any) -> dict[str, Any]:
    """A valid transaction; `minutes` after T0."""
    return {
        "transaction_id": f"txn-{index:05d}",
        "card_id": card,
        "merchant_id": f"m_{index % 7}",
        "amount": round(5.0 + (index * 37) % 400 + 0.25, 2),
        "currency": "EUR",
        "country": "DE" if index % 5 else "FR",
        "mcc": "5411" if index % 3 else "7995",
        "channel": ("pos", "ecom", "atm", "moto")[index % 4],
        "event_time": (T0 + timedelta(minutes=minutes)).isoformat(timespec="seconds"),
    } | overrides


def entry(txn: Mapping[str, Any]) -> KinesisEntry:
    return KinesisEntry(str(txn["card_id"]), json.dumps(txn).encode(), arrival=ARRIVAL)


def raw_entry(data: bytes, key: str = "card_bad") -> KinesisEntry:
    return KinesisEntry(key, data, arrival=ARRIVAL)


def batch(
    stack: LocalStack, entries: Sequence[KinesisEntry], first_index: int = 0
) -> dict[str, Any]:
    return kinesis_event(entries, stack.streams["TransactionsStream"], SHARD, first_index)


def from_sequence(event: Mapping[str, Any], sequence: str) -> dict[str, Any]:
    """The batch Kinesis delivers next after a partial failure: from `sequence` on, same positions."""
    records = event["Records"]
    start = next(i for i, r in enumerate(records) if r["kinesis"]["sequenceNumber"] == sequence)
    return {"Records": records[start:]}


def sequences(event: Mapping[str, Any]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


def record_id(stack: LocalStack, sequence: str) -> str:
    return f"{stack.streams['TransactionsStream']}#{SHARD}#{sequence}"


def payload_of(record: Mapping[str, Any]) -> bytes:
    return base64.b64decode(record["kinesis"]["data"])


def valid_transactions(event: Mapping[str, Any]) -> list[tuple[str, Transaction]]:
    """(sequence number, Transaction) of the records the contract accepts, in sequence order."""
    valid = []
    for record in event["Records"]:
        try:
            payload = payload_of(record)
            txn = Transaction.model_validate_json(payload)
        except ValueError:
            continue
        if len(payload) > MAX_TRANSACTION_BYTES:
            continue
        valid.append((record["kinesis"]["sequenceNumber"], txn))
    return valid


def expected_features(transactions: Sequence[Transaction]) -> dict[str, dict[str, float]]:
    """Features from the training path (in-memory state), the reference every stored feature must equal."""
    return {
        t.transaction_id: f
        for t, f in zip(transactions, replay_features(transactions), strict=True)
    }


def failures(result: Mapping[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


# ----------------------------------------------------------------------------- the handler


@pytest.fixture
def app(
    load_handler: Any,
    local_stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> ModuleType:
    environment = local_stack.function_environment("PreprocessFunction")
    module = load_handler("streamscore.handlers.preprocess", environment)
    return Wired(
        module,
        load_settings(PreprocessSettings, environment),
        moto_clients("dynamodb", "kinesis"),
        io_executor=ThreadPoolExecutor(8, thread_name_prefix="io"),
        step_executor=ThreadPoolExecutor(3, thread_name_prefix="step"),
    )


class Invoker:
    """Calls the handler and keeps what it printed (EMF metrics, log lines) per invocation."""

    def __init__(self, app: Wired, capsys: pytest.CaptureFixture[str]):
        self.app = app
        self.capsys = capsys
        self.metrics: dict[str, float] = {}
        self.logs: list[dict[str, Any]] = []
        self.stdout = ""

    def __call__(self, event: Mapping[str, Any]) -> dict[str, Any]:
        self.capsys.readouterr()
        try:
            return self.app.lambda_handler(dict(event), FakeLambdaContext())
        finally:
            self.stdout = self.capsys.readouterr().out
            self.metrics = emitted_metrics(self.stdout)
            self.logs = log_lines(self.stdout)


@pytest.fixture
def invoke(app: Wired, capsys: pytest.CaptureFixture[str]) -> Invoker:
    return Invoker(app, capsys)


def drain(app: Wired) -> None:
    """Wait until the handler's thread pools are idle, as if the crashed container had gone."""
    for pool in app.pools:
        if isinstance(pool, ThreadPoolExecutor):
            # every worker parked at one barrier: all the work submitted before has finished
            workers = pool._max_workers
            barrier = threading.Barrier(workers)
            wait([pool.submit(barrier.wait) for _ in range(workers)])


# ----------------------------------------------------------------------------- looking at the stack


def quarantine(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return stack.items_by("QuarantineTable", "record_id")


def features_table(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return stack.items_by("FeaturesTable", "transaction_id")


def states(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return stack.items_by("EntityStateTable", "card_id")


def forwarded(stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    """FeaturesStream's records by transaction id (a record forwarded twice appears twice)."""
    by_txn: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in stack.read_stream("FeaturesStream"):
        body = record.json()
        assert record.partition_key == body["card_id"]
        by_txn[body["transaction_id"]].append(body)
    return dict(by_txn)


def count_items(stack: LocalStack, kind: str = QUARANTINE) -> list[dict[str, Any]]:
    return [i for i in stack.scan("MonitoringTable") if i["sk"] == "COUNT" and i["kind"] == kind]


def quarantine_counted(stack: LocalStack) -> Counts:
    """What the count items say was quarantined, summed."""
    total = Counts()
    for item in count_items(stack):
        total.add(Counts.from_item(item))
    return total


def assert_accounted(
    stack: LocalStack,
    event: Mapping[str, Any],
    result: Mapping[str, Any],
    metrics: Mapping[str, float],
) -> None:
    """records in = forwarded + quarantined + failures, by the metrics and by what the stack holds."""
    seqs = set(sequences(event))
    failed = set(failures(result))
    quarantined = {i["sequence_number"] for i in quarantine(stack).values()} & seqs
    on_stream = {
        b["source_sequence_number"] for copies in forwarded(stack).values() for b in copies
    } & seqs

    assert metrics["RecordsIn"] == len(seqs)
    assert metrics["RecordsForwarded"] + metrics["RecordsRepeated"] + metrics[
        "RecordsQuarantined"
    ] + metrics["RecordsFailed"] == len(seqs)
    assert metrics["RecordsFailed"] == len(failed)
    assert quarantined | on_stream | failed == seqs, (
        "a record was neither forwarded, quarantined nor failed"
    )
    assert not quarantined & on_stream


# ----------------------------------------------------------------------------- sample events


def test_sample_events_in_events_folder_are_preprocessed(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # the KPL aggregated sample is checked user record by user record in test_preprocess_aggregated.py
    samples = sorted(
        p for p in EVENTS.glob("preprocess_*.json") if p.name != "preprocess_aggregated.json"
    )
    assert samples, f"no preprocess_*.json sample event in {EVENTS}"

    for path in samples:
        # given
        event = json.loads(path.read_text())
        valid = valid_transactions(event)
        invalid = sorted(set(sequences(event)) - {s for s, _ in valid})
        assert valid and invalid, f"{path.name} should mix valid and invalid transactions"

        # when
        result = invoke(event)

        # then
        assert result == {"batchItemFailures": []}
        assert_accounted(local_stack, event, result, invoke.metrics)
        stream_name = event["Records"][0]["eventSourceARN"].rsplit("/", 1)[1]
        stored = quarantine(local_stack)
        for sequence in invalid:
            assert f"{stream_name}#{SHARD}#{sequence}" in stored
        table = features_table(local_stack)
        on_stream = forwarded(local_stack)
        for _, txn in valid:
            assert table[txn.transaction_id]["feature_schema"] == "card-v1"
            assert txn.transaction_id in on_stream
        # no raw card data in the logs: neither the card ids nor the PAN-like one of the bad record
        for record in event["Records"]:
            body = payload_of(record)
            try:
                card = json.loads(body).get("card_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(card, str):
                assert card not in invoke.stdout


# ----------------------------------------------------------------------------- invalid records


def _with(**changes: Any) -> bytes:
    return json.dumps(transaction(900, "card_bad") | changes).encode()


def _without(name: str) -> bytes:
    txn = transaction(900, "card_bad")
    del txn[name]
    return json.dumps(txn).encode()


def _raw_amount(text: str) -> bytes:
    return _with(amount=123456.5).replace(b"123456.5", text.encode())


INVALID_CASES: list[tuple[str, KinesisEntry, str, str | None]] = [
    # (name, record, reason, field the details must name)
    (
        "bad base64",
        KinesisEntry("card_bad", data_b64="not base64!!", arrival=ARRIVAL),
        "invalid_base64",
        None,
    ),
    ("not utf-8", raw_entry(b'{"transaction_id": "\xff\xfe"}'), "not_utf8", None),
    ("not json", raw_entry(b"{transaction_id: t1}"), "invalid_json", None),
    ("truncated json", raw_entry(_with()[:40]), "invalid_json", None),
    ("json list", raw_entry(b"[1, 2, 3]"), "not_an_object", None),
    ("json number", raw_entry(b"42"), "not_an_object", None),
    ("json string", raw_entry(b'"a transaction"'), "not_an_object", None),
    ("json null", raw_entry(b"null"), "not_an_object", None),
    ("missing amount", raw_entry(_without("amount")), "missing_field", "amount"),
    ("missing event_time", raw_entry(_without("event_time")), "missing_field", "event_time"),
    (
        "malformed transaction_id",
        raw_entry(_with(transaction_id="has space")),
        "invalid_field",
        "transaction_id",
    ),
    ("malformed mcc", raw_entry(_with(mcc="54a1")), "invalid_field", "mcc"),
    ("unknown country", raw_entry(_with(country="QX")), "invalid_field", "country"),
    ("amount as string", raw_entry(_with(amount="12.50")), "invalid_field", "amount"),
    ("mcc as int", raw_entry(_with(mcc=5411)), "invalid_field", "mcc"),
    ("card_id as int", raw_entry(_with(card_id=4111)), "invalid_field", "card_id"),
    ("NaN amount", raw_entry(_raw_amount("NaN")), "invalid_field", "amount"),
    ("Infinity amount", raw_entry(_raw_amount("Infinity")), "invalid_field", "amount"),
    ("-Infinity amount", raw_entry(_raw_amount("-Infinity")), "invalid_field", "amount"),
    ("amount overflowing to inf", raw_entry(_raw_amount("1e400")), "invalid_field", "amount"),
    ("zero amount", raw_entry(_with(amount=0)), "invalid_field", "amount"),
    ("negative amount", raw_entry(_with(amount=-5.0)), "invalid_field", "amount"),
    ("amount over 1,000,000", raw_entry(_with(amount=1_000_000.01)), "invalid_field", "amount"),
    ("unknown currency", raw_entry(_with(currency="QQQ")), "invalid_field", "currency"),
    ("lower-case currency", raw_entry(_with(currency="eur")), "invalid_field", "currency"),
    ("unknown channel", raw_entry(_with(channel="web")), "invalid_field", "channel"),
    (
        "bad timestamp",
        raw_entry(_with(event_time="yesterday at noon")),
        "invalid_field",
        "event_time",
    ),
    (
        "timestamp without offset",
        raw_entry(_with(event_time="2026-03-02T10:00:00")),
        "invalid_field",
        "event_time",
    ),
    ("oversized payload", raw_entry(_with(padding="p" * 17_000)), "oversized", None),
]


def _interleaved(
    stack: LocalStack,
) -> tuple[dict[str, Any], dict[str, tuple[str, str, str | None]]]:
    """A batch alternating valid records and every invalid case; expectations by sequence number."""
    entries: list[KinesisEntry] = []
    names: list[str | None] = []
    for index, (name, record, _, _) in enumerate(INVALID_CASES):
        entries += [entry(transaction(index, f"card_{index % 4}", minutes=index)), record]
        names += [None, name]
    entries.append(
        entry(transaction(999, "card_edge", amount=1_000_000))
    )  # the upper bound is valid
    names.append(None)
    event = batch(stack, entries)
    by_name = {name: (reason, field) for name, _, reason, field in INVALID_CASES}
    expected = {
        seq: (name, *by_name[name])
        for seq, name in zip(sequences(event), names, strict=True)
        if name is not None
    }
    return event, expected


def test_every_invalid_class_is_quarantined_with_its_reason_and_the_batch_goes_on(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given
    event, expected = _interleaved(local_stack)
    valid = valid_transactions(event)
    assert len(valid) == len(INVALID_CASES) + 1

    # when
    before = datetime.now(UTC)
    result = invoke(event)
    after = datetime.now(UTC)

    # then
    assert result == {"batchItemFailures": []}
    assert_accounted(local_stack, event, result, invoke.metrics)
    stored = quarantine(local_stack)
    assert set(stored) == {record_id(local_stack, s) for s in expected}
    raw_by_seq = {r["kinesis"]["sequenceNumber"]: r["kinesis"]["data"] for r in event["Records"]}
    for sequence, (name, reason, field) in expected.items():
        item = stored[record_id(local_stack, sequence)]
        assert item["reason"] == reason, name
        assert item["stage"] == "preprocess"
        assert item["sequence_number"] == sequence and item["shard_id"] == SHARD
        assert item["stream_name"] == local_stack.streams["TransactionsStream"]
        if field is not None:
            assert field in {d["field"] for d in item["details"]}, name
        raw = raw_by_seq[sequence]
        kept = base64.b64decode(item["payload_b64"])
        if reason == "invalid_base64":
            assert kept == raw.encode()
        else:
            assert kept == base64.b64decode(raw), name
        assert item["payload_bytes"] == len(kept) and item["payload_truncated"] is False
        assert item["arrived_at"] == datetime.fromtimestamp(ARRIVAL, UTC).isoformat(
            timespec="milliseconds"
        )
        ttl = QUARANTINE_TTL_DAYS * 86400
        assert int(before.timestamp()) + ttl <= item["expires_at"] <= int(after.timestamp()) + ttl
    # every valid record, interleaved with the bad ones, went through
    table = features_table(local_stack)
    assert set(table) == {t.transaction_id for _, t in valid}
    reasons = Counter(reason for _, reason, _ in expected.values())
    for reason, count in reasons.items():
        assert invoke.metrics[f"Quarantined_{reason}"] == count
    assert invoke.metrics["RecordsQuarantined"] == len(expected)


def test_quarantine_details_never_carry_the_raw_input_values(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: field errors whose offending values are recognisable
    sentinels = {
        "transaction_id": "sentinel tx",
        "card_id": "4111 1111 1111 1111",
        "currency": "QQQ",
        "country": "QX",
        "mcc": "12ab",
        "channel": "sentinel-channel",
        "event_time": "sentinel-time",
    }
    entries = [raw_entry(_with(**{name: value})) for name, value in sentinels.items()]
    event = batch(local_stack, entries)

    # when
    invoke(event)

    # then
    stored = quarantine(local_stack)
    leaks = []
    for sequence, (name, value) in zip(sequences(event), sentinels.items(), strict=True):
        item = stored[record_id(local_stack, sequence)]
        assert name in {d["field"] for d in item["details"]}
        if value in json.dumps(item["details"]) or value in item["message"]:
            leaks.append(name)
    assert leaks == [], f"raw input values in the quarantine details of: {leaks}"


def test_a_huge_payload_is_kept_truncated_with_its_full_length(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: 100 KiB of base64 data and 70,000 characters that are not base64
    huge = _with(padding="p" * 100_000)
    not_base64 = "!" * 70_000
    event = batch(
        local_stack,
        [raw_entry(huge), KinesisEntry("card_bad", data_b64=not_base64, arrival=ARRIVAL)],
    )

    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    first, second = (quarantine(local_stack)[record_id(local_stack, s)] for s in sequences(event))
    assert first["reason"] == "oversized"
    assert first["payload_bytes"] == len(huge) and first["payload_truncated"] is True
    assert base64.b64decode(first["payload_b64"]) == huge[: 64 * 1024]
    assert second["reason"] == "invalid_base64"
    assert second["payload_bytes"] == 70_000 and second["payload_truncated"] is True
    assert base64.b64decode(second["payload_b64"]) == b"!" * (64 * 1024)


def test_a_number_too_long_for_python_is_quarantined_not_raised(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: JSON numbers past Python's 4,300-digit int conversion limit, under 16 KiB
    long_number = "7" * 5000
    event = batch(
        local_stack,
        [
            raw_entry(long_number.encode()),
            raw_entry(_raw_amount(long_number)),
            entry(transaction(1, "card_1")),
        ],
    )

    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    reasons = [
        quarantine(local_stack)[record_id(local_stack, s)]["reason"] for s in sequences(event)[:2]
    ]
    assert reasons[0] in {"invalid_json", "not_an_object"}
    assert reasons[1] in {"invalid_json", "invalid_field"}
    assert "txn-00001" in features_table(local_stack)


def test_a_valid_tiny_amount_followed_by_a_large_one_does_not_block_the_shard(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: amounts the contract accepts (finite, > 0, <= 1,000,000) on one card
    first = transaction(1, "card_tiny", minutes=0, amount=1e-310)
    second = transaction(2, "card_tiny", minutes=5, amount=1_000_000)
    event = batch(local_stack, [entry(first), entry(second)])

    # when
    result = invoke(event)

    # then: both processed (their features are finite and stored), nothing raised or failed
    assert result == {"batchItemFailures": []}
    table = features_table(local_stack)
    assert set(table) == {"txn-00001", "txn-00002"}


# ----------------------------------------------------------------------------- replays


def _mixed_batch(stack: LocalStack, n_cards: int = 8, per_card: int = 3) -> dict[str, Any]:
    entries = []
    index = 0
    for round_ in range(per_card):
        for card in range(n_cards):
            entries.append(entry(transaction(index, f"card_{card:03d}", minutes=round_ * 7 + card)))
            index += 1
    entries.insert(5, raw_entry(b"not json"))
    entries.insert(11, raw_entry(_with(currency="XXY")))
    entries.append(raw_entry(b"[]"))
    return batch(stack, entries)


def test_the_same_batch_delivered_twice_changes_nothing_but_the_stream(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given
    event = _mixed_batch(local_stack)
    valid = valid_transactions(event)

    # when
    first = invoke(event)
    table_once, states_once, quarantine_once = (
        features_table(local_stack),
        states(local_stack),
        quarantine(local_stack),
    )
    second = invoke(event)

    # then
    assert first == second == {"batchItemFailures": []}
    assert invoke.metrics["RecordsReplayed"] == len(valid)
    assert features_table(local_stack) == table_once
    assert states(local_stack) == states_once
    per_card = Counter(t.card_id for _, t in valid)
    last_txn = {t.card_id: t.transaction_id for _, t in valid}
    for card, count in per_card.items():
        assert states_once[card]["txn_count"] == count
        assert table_once[last_txn[card]]["state_version"] == count
    assert set(quarantine(local_stack)) == set(quarantine_once)
    assert len(quarantine_once) == 3
    on_stream = forwarded(local_stack)
    assert set(on_stream) == {t.transaction_id for _, t in valid}
    for txn_id, copies in on_stream.items():
        assert len(copies) == 2
        assert copies[0] == copies[1], f"{txn_id} forwarded with different content on replay"
        assert copies[0]["features"] == table_once[txn_id]["features"]
    assert quarantine_counted(local_stack).n == 3  # counted once, though quarantined twice


def test_a_replay_finds_its_transactions_applied_even_without_their_feature_items(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: a batch applied once, then its FeaturesTable items deleted (they outlive the
    # stream's retention, so only an operator can do this)
    event = _mixed_batch(local_stack, n_cards=2, per_card=2)
    invoke(event)
    table_once = features_table(local_stack)
    for txn_id in table_once:
        local_stack.dynamodb.delete_item(
            TableName=local_stack.tables["FeaturesTable"], Key={"transaction_id": {"S": txn_id}}
        )
    states_once = states(local_stack)

    # when
    result = invoke(event)

    # then: the cards still hold them pending: nothing applied twice, nothing quarantined,
    # the same feature records stored and forwarded again
    assert result == {"batchItemFailures": []}
    assert invoke.metrics["RecordsReplayed"] == len(valid_transactions(event))
    assert states(local_stack) == states_once

    def without_expiry(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {k: {n: v for n, v in i.items() if n != "expires_at"} for k, i in table.items()}

    assert without_expiry(features_table(local_stack)) == without_expiry(table_once)
    assert "replay_features_missing" not in {i["reason"] for i in quarantine(local_stack).values()}


def test_feature_items_outlive_the_streams_retention(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # a replayable record must find its ledger entry: FeaturesTable's TTL is at least the
    # stream's retention plus a day, whatever FeaturesTtlDays says
    event = _mixed_batch(local_stack, n_cards=1, per_card=1)
    before = datetime.now(UTC).timestamp()
    invoke(event)

    (item,) = features_table(local_stack).values()
    retention_hours = int(parameter_values(local_stack.template)["StreamRetentionHours"])
    assert item["expires_at"] >= before + retention_hours * 3600 + 86400


# ----------------------------------------------------------------------------- crashes


class LambdaDied(Exception):  # noqa: N818 - it is not an error of the code under test
    """The function died mid-batch (timeout, out of memory): an exception nobody handles."""


class CrashAfter:
    """A port that does its write, then dies."""

    def __init__(self, port: Any, method: str):
        self._port = port
        self._method = method

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        if name != self._method:
            return attribute

        def write_then_die(*args: Any, **kwargs: Any) -> Any:
            attribute(*args, **kwargs)
            raise LambdaDied(f"died after {type(self._port).__name__}.{name}")

        return write_then_die


@pytest.mark.parametrize(
    ("port", "method"),
    [
        ("quarantine", "save"),
        ("features", "save"),
        ("forwarder", "forward"),
        ("states", "save"),
    ],
)
def test_a_crash_after_a_write_then_the_same_batch_again_loses_and_doubles_nothing(
    local_stack: LocalStack,
    app: Wired,
    invoke: Invoker,
    monkeypatch: pytest.MonkeyPatch,
    port: str,
    method: str,
) -> None:
    # given
    event = _mixed_batch(local_stack)
    valid = valid_transactions(event)
    healthy = app.ports
    monkeypatch.setattr(
        app,
        "ports",
        dataclasses.replace(healthy, **{port: CrashAfter(getattr(healthy, port), method)}),
    )

    # when: the function dies, then Kinesis retries the same batch on a healthy function
    with pytest.raises(LambdaDied):
        invoke(event)
    drain(app)
    monkeypatch.setattr(app, "ports", healthy)
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    assert_accounted(local_stack, event, result, invoke.metrics)
    expected = expected_features([t for _, t in valid])
    table = features_table(local_stack)
    assert {k: v["features"] for k, v in table.items()} == expected
    on_stream = forwarded(local_stack)
    assert set(on_stream) == set(expected)
    for txn_id, copies in on_stream.items():
        assert all(c["features"] == expected[txn_id] for c in copies)
    per_card = Counter(t.card_id for _, t in valid)
    assert {c: s["txn_count"] for c, s in states(local_stack).items()} == dict(per_card)
    bad = set(sequences(event)) - {s for s, _ in valid}
    assert set(quarantine(local_stack)) == {record_id(local_stack, s) for s in bad}
    assert quarantine_counted(local_stack).n == len(bad)


# ----------------------------------------------------------------------------- batch limits


@pytest.mark.parametrize("n_cards", [30, 130])
def test_many_distinct_cards_are_read_and_written_within_the_batch_limits(
    local_stack: LocalStack, app: Wired, invoke: Invoker, n_cards: int
) -> None:
    # given: n_cards cards, the first 20 of them twice
    entries = [entry(transaction(i, f"card_{i:04d}", minutes=i % 50)) for i in range(n_cards)]
    entries += [entry(transaction(1000 + i, f"card_{i:04d}", minutes=60 + i)) for i in range(20)]
    event = batch(local_stack, entries)
    counter = CallCounter().attach(app.dynamodb, app.kinesis)

    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    state_table = local_stack.tables["EntityStateTable"]
    gets = [
        r for r in counter.requests("dynamodb.BatchGetItem") if state_table in r["RequestItems"]
    ]
    assert all(len(r["RequestItems"][state_table]["Keys"]) <= 100 for r in gets)
    assert sum(len(r["RequestItems"][state_table]["Keys"]) for r in gets) == n_cards
    # the replay guard must see the previous batch's state write
    assert all(r["RequestItems"][state_table].get("ConsistentRead") is True for r in gets)
    assert len(gets) == -(-n_cards // 100)
    writes = counter.requests("dynamodb.BatchWriteItem")
    assert all(len(items) <= 25 for r in writes for items in r["RequestItems"].values())
    written: Counter[str] = Counter()
    for request in writes:
        for table, items in request["RequestItems"].items():
            written[table] += len(items)
            keys = [json.dumps(i["PutRequest"]["Item"], sort_keys=True, default=str) for i in items]
            assert len(set(keys)) == len(keys)
    assert written[state_table] == n_cards
    assert written[local_stack.tables["FeaturesTable"]] == len(entries)
    assert counter.calls["dynamodb.BatchWriteItem"] == -(-n_cards // 25) + -(-len(entries) // 25)
    assert counter.calls["kinesis.PutRecords"] == 1
    # nothing was quarantined: no transaction, and no per-batch item any more
    assert counter.calls["dynamodb.TransactWriteItems"] == counter.calls["dynamodb.PutItem"] == 0
    assert len(states(local_stack)) == n_cards
    assert sum(s["txn_count"] for s in states(local_stack).values()) == len(entries)


# ----------------------------------------------------------------------------- partial failures


class FlakyDynamoDB:
    """A DynamoDB client that hands chosen keys back unprocessed (a number of times, or always).

    `unprocessed_writes` / `unprocessed_reads`: key value -> times (None: every time);
    `raise_on`: operation name -> ClientError raised instead of calling.
    """

    def __init__(
        self,
        real: Any,
        key_names: Mapping[str, str],
        unprocessed_writes: Mapping[str, int | None] | None = None,
        unprocessed_reads: Mapping[str, int | None] | None = None,
        raise_on: Mapping[str, tuple[str, ClientError]] | None = None,
    ):
        self.real = real
        self.key_names = key_names  # table name -> hash key
        self.writes = dict(unprocessed_writes or {})
        self.reads = dict(unprocessed_reads or {})
        self.raise_on = dict(raise_on or {})  # operation -> (table name, error)
        self.seen: Counter[tuple[str, str]] = Counter()
        self.get_requests: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _hold(self, kind: str, rules: Mapping[str, int | None], key: str) -> bool:
        if key not in rules:
            return False
        self.seen[kind, key] += 1
        times = rules[key]
        return times is None or self.seen[kind, key] <= times

    def _maybe_raise(self, operation: str, tables: Any) -> None:
        if operation in self.raise_on and self.raise_on[operation][0] in tables:
            raise self.raise_on[operation][1]

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self._maybe_raise("BatchWriteItem", RequestItems)
        passed: dict[str, list[Any]] = {}
        held: dict[str, list[Any]] = {}
        for table, requests in RequestItems.items():
            key_name = self.key_names[table]
            for request in requests:
                key = request["PutRequest"]["Item"][key_name]["S"]
                target = held if self._hold("write", self.writes, key) else passed
                target.setdefault(table, []).append(request)
        response = self.real.batch_write_item(RequestItems=passed) if passed else {}
        unprocessed = response.get("UnprocessedItems") or {}
        for table, requests in held.items():
            unprocessed.setdefault(table, []).extend(requests)
        return {"UnprocessedItems": unprocessed}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self._maybe_raise("BatchGetItem", RequestItems)
        self.get_requests.append(copy.deepcopy(RequestItems))
        passed: dict[str, Any] = {}
        held: dict[str, Any] = {}
        for table, request in RequestItems.items():
            key_name = self.key_names[table]
            for key in request["Keys"]:
                target = held if self._hold("read", self.reads, key[key_name]["S"]) else passed
                # like the service: unprocessed keys come back with the request's other settings
                target.setdefault(table, {**request, "Keys": []})["Keys"].append(key)
        response = self.real.batch_get_item(RequestItems=passed) if passed else {"Responses": {}}
        unprocessed = response.get("UnprocessedKeys") or {}
        for table, request in held.items():
            unprocessed.setdefault(table, {**request, "Keys": []})["Keys"].extend(request["Keys"])
        return {"Responses": response.get("Responses", {}), "UnprocessedKeys": unprocessed}


class FlakyKinesis:
    """A Kinesis client whose PutRecords fails chosen transactions' entries (a number of times, or always)."""

    def __init__(self, real: Any, failing: Mapping[str, int | None]):
        self.real = real
        self.failing = dict(failing)  # transaction id -> times (None: every time)
        self.seen: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        fail = []
        for record in Records:
            txn_id = json.loads(record["Data"])["transaction_id"]
            self.seen[txn_id] += 1
            times = self.failing.get(txn_id, 0)
            fail.append(txn_id in self.failing and (times is None or self.seen[txn_id] <= times))
        sent = [r for r, f in zip(Records, fail, strict=True) if not f]
        landed = iter(
            self.real.put_records(StreamName=StreamName, Records=sent)["Records"] if sent else []
        )
        results = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}
            if f
            else next(landed)
            for f in fail
        ]
        return {"FailedRecordCount": sum(fail), "Records": results}


def _hash_keys(stack: LocalStack) -> dict[str, str]:
    keys = {}
    for logical_id, name in stack.tables.items():
        schema = stack.template["Resources"][logical_id]["Properties"]["KeySchema"]
        keys[name] = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
    return keys


def _use_clients(
    app: Wired, monkeypatch: pytest.MonkeyPatch, dynamodb: Any = None, kinesis: Any = None
) -> None:
    """The function rebuilt on these clients; `app.use()` goes back to the healthy ones."""
    swapped = {
        name: client
        for name, client in (("dynamodb", dynamodb), ("kinesis", kinesis))
        if client is not None
    }
    app.use(**swapped)


def _four_cards(stack: LocalStack) -> dict[str, Any]:
    """Cards W, X, Y, Z with four transactions each, interleaved, and a bad record in the middle."""
    entries = []
    for round_ in range(4):
        for card_index, card in enumerate("WXYZ"):
            index = round_ * 4 + card_index
            entries.append(
                entry(transaction(index, f"card_{card}", minutes=round_ * 10 + card_index))
            )
    entries.insert(9, raw_entry(b"{not json"))
    return batch(stack, entries)


def _seqs_of(event: Mapping[str, Any], card: str) -> list[str]:
    return [s for s, t in valid_transactions(event) if t.card_id == card]


def test_unprocessed_items_keys_and_failed_records_are_retried_until_everything_lands(
    local_stack: LocalStack, app: Wired, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: each kind of partial failure a few times, then success
    event = _four_cards(local_stack)
    txn_of = {s: t.transaction_id for s, t in valid_transactions(event)}
    dynamodb = FlakyDynamoDB(
        app.dynamodb,
        _hash_keys(local_stack),
        unprocessed_reads={"card_W": 2},
        unprocessed_writes={"card_X": 3, txn_of[_seqs_of(event, "card_Y")[1]]: 1},
    )
    kinesis = FlakyKinesis(app.kinesis, {txn_of[_seqs_of(event, "card_Z")[2]]: 2})
    _use_clients(app, monkeypatch, dynamodb, kinesis)
    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    assert invoke.metrics["Retries"] == 2 + 3 + 1 + 2
    state_table = local_stack.tables["EntityStateTable"]
    reads = [r[state_table] for r in dynamodb.get_requests if state_table in r]
    assert [len(r["Keys"]) for r in reads] == [4, 1, 1]  # the batch's read, then card_W twice
    assert all(r["ConsistentRead"] is True for r in reads)
    assert set(features_table(local_stack)) == set(txn_of.values())
    assert set(forwarded(local_stack)) == set(txn_of.values())
    assert {c: s["txn_count"] for c, s in states(local_stack).items()} == {
        f"card_{c}": 4 for c in "WXYZ"
    }
    assert_accounted(local_stack, event, result, invoke.metrics)


def test_faults_that_outlast_the_retries_are_reported_then_redelivery_applies_each_once(
    local_stack: LocalStack, app: Wired, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: X's second feature item never lands, Y's features never reach the stream,
    # Z's state can never be read; W is healthy
    event = _four_cards(local_stack)
    valid = valid_transactions(event)
    txn_of = {s: t.transaction_id for s, t in valid}
    x, y, z = (_seqs_of(event, f"card_{c}") for c in "XYZ")
    dynamodb = FlakyDynamoDB(
        app.dynamodb,
        _hash_keys(local_stack),
        unprocessed_reads={"card_Z": None},
        unprocessed_writes={txn_of[x[1]]: None},
    )
    kinesis = FlakyKinesis(app.kinesis, {txn_of[s]: None for s in y})
    _use_clients(app, monkeypatch, dynamodb, kinesis)

    # when
    result = invoke(event)

    # then: exactly those records are reported, in sequence order
    failed = failures(result)
    assert failed == [s for s in sequences(event) if s in {x[1], *y, *z}]
    assert_accounted(local_stack, event, result, invoke.metrics)
    # the states commit first: X and Y are applied whole, X's second record waits in its
    # card's pending entries for its feature item, Y's are stored but not yet on the stream
    after_failure = states(local_stack)
    assert {c: s["txn_count"] for c, s in after_failure.items()} == {
        "card_W": 4,
        "card_X": 4,
        "card_Y": 4,
    }
    assert txn_of[x[1]] in after_failure["card_X"]["pending"]
    assert txn_of[x[1]] not in features_table(local_stack)
    assert not set(forwarded(local_stack)) & {txn_of[s] for s in y}

    # when: Kinesis delivers again from the lowest failed record, on a healthy function
    app.use()
    retry = from_sequence(event, min(failed, key=int))
    result = invoke(retry)

    # then: every record forwarded, every state applied exactly once per transaction
    assert result == {"batchItemFailures": []}
    assert_accounted(local_stack, retry, result, invoke.metrics)
    expected = expected_features([t for _, t in valid])
    assert {k: v["features"] for k, v in features_table(local_stack).items()} == expected
    on_stream = forwarded(local_stack)
    assert set(on_stream) == set(expected)
    for txn_id, copies in on_stream.items():
        assert all(c["features"] == expected[txn_id] for c in copies)
    final = states(local_stack)
    assert {c: s["txn_count"] for c, s in final.items()} == {f"card_{c}": 4 for c in "WXYZ"}
    assert quarantine_counted(local_stack).n == 1


def test_throttling_that_outlasts_the_retries_fails_records_not_the_invocation(
    local_stack: LocalStack, app: Wired, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: FeaturesTable throttles every write
    event = _four_cards(local_stack)
    valid = valid_transactions(event)
    throttled = ClientError(
        {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "BatchWriteItem",
    )
    dynamodb = FlakyDynamoDB(
        app.dynamodb,
        _hash_keys(local_stack),
        raise_on={"BatchWriteItem": (local_stack.tables["FeaturesTable"], throttled)},
    )
    _use_clients(app, monkeypatch, dynamodb)

    # when
    result = invoke(event)

    # then: every valid record is reported; the bad one is quarantined, not failed; the
    # states committed, each with its records pending until their feature items land
    assert failures(result) == [s for s, _ in valid]
    assert_accounted(local_stack, event, result, invoke.metrics)
    assert features_table(local_stack) == {}
    pending = {t for card in states(local_stack).values() for t in card["pending"]}
    assert pending == {t.transaction_id for _, t in valid}
    assert len(quarantine(local_stack)) == 1


@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException"])
def test_access_denied_fails_the_invocation_with_a_clear_message(
    local_stack: LocalStack,
    app: Wired,
    invoke: Invoker,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
) -> None:
    denied = ClientError(
        {
            "Error": {"Code": code, "Message": "not authorized"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "BatchGetItem",
    )
    state_table = local_stack.tables["EntityStateTable"]
    dynamodb = FlakyDynamoDB(
        app.dynamodb, _hash_keys(local_stack), raise_on={"BatchGetItem": (state_table, denied)}
    )
    _use_clients(app, monkeypatch, dynamodb)

    with pytest.raises(SystemicError) as caught:
        invoke(_four_cards(local_stack))

    assert code in str(caught.value)
    assert f"BatchGetItem on {state_table}" in str(caught.value)


@pytest.mark.parametrize(
    "resource",
    ["EntityStateTable", "FeaturesTable", "QuarantineTable", "MonitoringTable", "FeaturesStream"],
)
def test_a_missing_resource_fails_the_invocation_naming_it(
    local_stack: LocalStack, app: Wired, invoke: Invoker, resource: str
) -> None:
    # given
    name = local_stack.resource_name(resource)
    if resource in local_stack.tables:
        local_stack.dynamodb.delete_table(TableName=name)
    else:
        local_stack.kinesis.delete_stream(StreamName=name)

    # when / then
    with pytest.raises(SystemicError, match=r"ResourceNotFoundException") as caught:
        invoke(_four_cards(local_stack))
    assert name in str(caught.value)


# ----------------------------------------------------------------------------- order and stats


def test_one_card_many_times_in_a_batch_is_applied_in_sequence_order(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: one busy card, 30 transactions a minute apart, interleaved with other cards
    entries = []
    for i in range(30):
        entries.append(entry(transaction(i, "card_busy", minutes=i)))
        entries.append(entry(transaction(100 + i, f"card_other_{i}", minutes=i)))
    event = batch(local_stack, entries)
    busy = [(s, t) for s, t in valid_transactions(event) if t.card_id == "card_busy"]

    # when
    result = invoke(event)

    # then
    assert result == {"batchItemFailures": []}
    state = states(local_stack)["card_busy"]
    assert state["txn_count"] == 30
    table = features_table(local_stack)
    versions = [table[t.transaction_id]["state_version"] for _, t in busy]
    assert versions == list(range(1, 31))
    counts = [table[t.transaction_id]["features"]["txn_count_1h"] for _, t in busy]
    assert counts[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(counts)), counts
    first_seen = [table[t.transaction_id]["features"]["is_first_seen"] for _, t in busy]
    assert first_seen == [1.0] + [0.0] * 29
    # on the stream, the card's records keep their order (one partition key, one shard)
    records = [
        r for r in local_stack.read_stream("FeaturesStream") if r.partition_key == "card_busy"
    ]
    assert [r.json()["transaction_id"] for r in records] == [t.transaction_id for _, t in busy]


def test_quarantined_records_are_counted_per_hour_and_reason_once(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    event = _mixed_batch(local_stack)

    invoke(event)
    invoke(event)  # a replay: the quarantine items exist, nothing is counted again

    items = count_items(local_stack)
    counted = quarantine_counted(local_stack)
    assert counted.n == 3
    assert counted.reasons == {
        "preprocess/invalid_json": 1,
        "preprocess/invalid_field": 1,
        "preprocess/not_an_object": 1,
    }
    # found per hour through WindowIndex
    for item in items:
        page = local_stack.dynamodb.query(
            TableName=local_stack.tables["MonitoringTable"],
            IndexName="WindowIndex",
            KeyConditionExpression="window_key = :w",
            ExpressionAttributeValues={":w": {"S": window_key(item["hour"])}},
        )
        assert item["pk"] in {i["pk"]["S"] for i in page["Items"]}


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENTITY_STATE_TABLE", None),
        ("FEATURES_STREAM_NAME", ""),
        ("FEATURES_TTL_DAYS", "0"),
        ("IO_THREADS", "many"),
    ],
)
def test_a_missing_or_malformed_setting_fails_the_import_naming_it(
    local_stack: LocalStack,
    load_handler: Any,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str | None,
) -> None:
    environment = local_stack.function_environment("PreprocessFunction")
    environment.pop(variable, None)
    monkeypatch.delenv(variable, raising=False)
    if value is not None:
        environment[variable] = value

    with pytest.raises(SystemicError, match=variable) as caught:
        load_handler("streamscore.handlers.preprocess", environment)

    assert "PreprocessSettings" in str(caught.value)


def test_a_card_testing_burst_in_one_batch_is_applied_in_slices_and_never_blocks_the_card(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # given: 700 transactions on one card in one batch (a card-testing attack), with another
    # card's before and after. Carried whole in the card's state item (its pending feature
    # records), they would make an item far past DynamoDB's 400 KB limit: a write that can
    # never succeed, retried until the records are discarded.
    burst = [transaction(i, "card_burst", minutes=i / 60) for i in range(700)]
    other = [transaction(2000 + i, "card_calm", minutes=i) for i in range(4)]
    event = batch(local_stack, [entry(t) for t in [*other[:2], *burst, *other[2:]]])

    # when: delivered as Lambda does, from the lowest reported failure each time
    rounds, result = 0, invoke(event)
    while failures(result):
        rounds += 1
        assert rounds < 20, "the card makes no progress"
        result = invoke(from_sequence(event, min(failures(result), key=int)))

    # then: every transaction applied once, in order; the calm card never waited
    state = states(local_stack)
    assert state["card_burst"]["txn_count"] == 700
    assert state["card_calm"]["txn_count"] == 4
    table = features_table(local_stack)
    assert [table[t["transaction_id"]]["state_version"] for t in burst] == list(range(1, 701))
    assert 1 <= rounds <= 10


@pytest.mark.parametrize("days_old", [3, 0], ids=["past-the-horizon", "young"])
def test_a_pending_record_whose_feature_item_expired_is_dropped_past_the_horizon_only(
    local_stack: LocalStack, invoke: Invoker, days_old: int
) -> None:
    # given: card_x applied txn A, then FeaturesTable's copy of A is gone (TTL), and the
    # card's state still carries A as pending, ingested `days_old` days ago
    first = [transaction(1, "card_x")]
    assert failures(invoke(batch(local_stack, [entry(t) for t in first]))) == []
    dynamodb = local_stack.dynamodb
    dynamodb.delete_item(
        TableName=local_stack.tables["FeaturesTable"], Key={"transaction_id": {"S": "txn-00001"}}
    )
    state = states(local_stack)["card_x"]
    pending = dict(state["pending"])
    assert set(pending) == {"txn-00001"}, "A's pending record must still be there"
    old = datetime.now(UTC) - timedelta(days=days_old, minutes=1)
    dynamodb.update_item(
        TableName=local_stack.tables["EntityStateTable"],
        Key={"card_id": {"S": "card_x"}},
        UpdateExpression="SET pending.#t.ingested_at = :at",
        ExpressionAttributeNames={"#t": "txn-00001"},
        ExpressionAttributeValues={":at": {"S": old.isoformat(timespec="milliseconds")}},
    )

    # when: the card's next transaction, B
    second = [transaction(2, "card_x", minutes=5)]
    assert failures(invoke(batch(local_stack, [entry(t) for t in second], first_index=1))) == []

    # then: past the stream's retention and a day (24 h + 1 day here) A is dropped; a young
    # one is kept, since a retry may still need it
    pending_after = set(states(local_stack)["card_x"]["pending"])
    expected = {"txn-00002"} if days_old >= 3 else {"txn-00001", "txn-00002"}
    assert pending_after == expected
    assert states(local_stack)["card_x"]["txn_count"] == 2


def test_limit_an_id_reused_on_another_card_inside_the_failure_window_counts_on_both_cards(
    local_stack: LocalStack, invoke: Invoker
) -> None:
    # The documented limit (README, "Effectively once"), pinned so a change of it is seen.
    # given: card_a's X was committed to its state (pending) but FeaturesTable never got it
    # (a lost response, then its range discarded to FailureQueue)
    x_on_a = transaction(1, "card_a")
    assert failures(invoke(batch(local_stack, [entry(x_on_a)]))) == []
    local_stack.dynamodb.delete_item(
        TableName=local_stack.tables["FeaturesTable"], Key={"transaction_id": {"S": "txn-00001"}}
    )

    # when: the same id on card_b comes first to the ledger, then card_a's X is re-driven
    x_on_b = transaction(1, "card_b", amount=77.0)
    assert failures(invoke(batch(local_stack, [entry(x_on_b)], first_index=1))) == []
    assert failures(invoke(batch(local_stack, [entry(x_on_a)], first_index=2))) == []

    # then: card_b's version owns the ledger; card_a's record is quarantined as a conflicting
    # duplicate, and card_a's state still counts the X it committed before the failure
    assert features_table(local_stack)["txn-00001"]["card_id"] == "card_b"
    reasons = [q["reason"] for q in quarantine(local_stack).values()]
    assert reasons == ["conflicting_duplicate"]
    assert states(local_stack)["card_a"]["txn_count"] == 1
    assert states(local_stack)["card_b"]["txn_count"] == 1
