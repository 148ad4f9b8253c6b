"""The preprocess handler's integration tests share these: building batches, invoking, looking at the stack.

`Invoker` calls the wired handler and keeps what it printed; `assert_accounted` checks that
every record of a batch was forwarded, quarantined or failed, by the metrics and by what the
stack holds. The fixtures `app` and `invoke` are in tests/integration/preprocess_handler/conftest.py.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest

from embedded.lambda_events import KinesisEntry, kinesis_event
from streamscore.core.monitoring import QUARANTINE, Counts
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import replay_features
from support.aws_stack import LocalStack
from support.builders import (
    SHARD,
    entry,
    failures,
    raw_entry,
    sequences,
    transaction,
)
from support.handler_output import emitted_metrics, log_lines
from support.lambda_runtime import FakeLambdaContext
from support.wiring import Wired

EVENTS = Path(__file__).resolve().parents[2] / "events"
QUARANTINE_TTL_DAYS = 30  # template default of QuarantineTtlDays
MAX_TRANSACTION_BYTES = 16 * 1024  # a bigger payload is quarantined as oversized


# ----------------------------------------------------------------------------- building batches


def batch(
    stack: LocalStack, entries: Sequence[KinesisEntry], first_index: int = 0
) -> dict[str, Any]:
    return kinesis_event(entries, stack.streams["TransactionsStream"], SHARD, first_index)


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


def with_changes(**changes: Any) -> bytes:
    """A transaction of card_bad with `changes`, as JSON."""
    return json.dumps(transaction(900, "card_bad") | changes).encode()


def without_field(name: str) -> bytes:
    """A transaction of card_bad without the field `name`, as JSON."""
    txn = transaction(900, "card_bad")
    del txn[name]
    return json.dumps(txn).encode()


def raw_amount(text: str) -> bytes:
    """A transaction of card_bad whose amount is `text` as it stands in the JSON."""
    return with_changes(amount=123456.5).replace(b"123456.5", text.encode())


def mixed_batch(stack: LocalStack, n_cards: int = 8, per_card: int = 3) -> dict[str, Any]:
    entries = []
    index = 0
    for round_ in range(per_card):
        for card in range(n_cards):
            entries.append(entry(transaction(index, f"card_{card:03d}", minutes=round_ * 7 + card)))
            index += 1
    entries.insert(5, raw_entry(b"not json"))
    entries.insert(11, raw_entry(with_changes(currency="XXY")))
    entries.append(raw_entry(b"[]"))
    return batch(stack, entries)


def four_cards(stack: LocalStack) -> dict[str, Any]:
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


def seqs_of(event: Mapping[str, Any], card: str) -> list[str]:
    return [s for s, t in valid_transactions(event) if t.card_id == card]


# ----------------------------------------------------------------------------- the handler


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


def drain(app: Wired) -> None:
    """Wait until the handler's thread pools are idle, as if the crashed container had gone."""
    for pool in app.pools:
        if isinstance(pool, ThreadPoolExecutor):
            # every worker parked at one barrier: all the work submitted before has finished
            workers = pool._max_workers
            barrier = threading.Barrier(workers)
            wait([pool.submit(barrier.wait) for _ in range(workers)])


def use_clients(
    app: Wired, monkeypatch: pytest.MonkeyPatch, dynamodb: Any = None, kinesis: Any = None
) -> None:
    """The function rebuilt on these clients; `app.use()` goes back to the healthy ones."""
    swapped = {
        name: client
        for name, client in (("dynamodb", dynamodb), ("kinesis", kinesis))
        if client is not None
    }
    app.use(**swapped)


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
