"""Batch adapters over in-memory fake clients: call limits, partial-failure retries, backoff, error classes."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from streamscore.aws._batching import chunked, fan_out
from streamscore.aws.dynamodb import (
    BatchTable,
    deserialize,
    serialize,
)
from streamscore.aws.events import EventPublisher
from streamscore.aws.kinesis import MAX_REQUEST_BYTES, StreamWriter
from streamscore.aws.retry import Backoff, translate_error
from streamscore.core.errors import RetryableError, SystemicError
from support.fake_clients import MemoryDynamoDB, MemoryEventBridge, MemoryKinesis, client_error

TABLE = "cards"


class Sleeps:
    """An injected sleep that records its pauses instead of waiting."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def quiet_backoff(attempts: int = 6) -> tuple[Backoff, Sleeps]:
    sleeps = Sleeps()
    return Backoff(attempts=attempts, sleep=sleeps, rng=random.Random(1)), sleeps


def cards(n: int, prefix: str = "card") -> list[dict[str, Any]]:
    return [{"card_id": f"{prefix}{i:04d}", "txn_count": Decimal(i)} for i in range(n)]


# ----------------------------------------------------------------------------- DynamoDB


@pytest.mark.parametrize(
    ("n", "sizes"), [(1, [1]), (100, [100]), (101, [100, 1]), (250, [100, 100, 50])]
)
def test_get_many_asks_at_most_100_keys_a_call(n: int, sizes: list[int]) -> None:
    # given
    client = MemoryDynamoDB()
    table = BatchTable(client, TABLE, ["card_id"], backoff=quiet_backoff()[0])
    for item in cards(n):
        client.items[item["card_id"]] = serialize(item)

    # when
    found, failed = table.get_many({"card_id": c["card_id"]} for c in cards(n))

    # then
    assert sorted(len(c) for c in client.get_calls) == sorted(sizes)
    assert failed == []
    assert len(found) == n
    assert found[("card0000",)] == {"card_id": "card0000", "txn_count": Decimal(0)}


def test_get_many_asks_each_key_once_and_leaves_absent_items_out() -> None:
    # given
    client = MemoryDynamoDB()
    client.items["card0001"] = serialize({"card_id": "card0001"})
    table = BatchTable(client, TABLE, ["card_id"], backoff=quiet_backoff()[0])

    # when
    found, failed = table.get_many(
        [{"card_id": "card0001"}, {"card_id": "card0002"}, {"card_id": "card0001"}]
    )

    # then
    assert client.get_calls == [["card0001", "card0002"]]
    assert list(found) == [("card0001",)]
    assert failed == []


@pytest.mark.parametrize(("n", "sizes"), [(25, [25]), (26, [25, 1]), (60, [25, 25, 10])])
def test_put_many_writes_at_most_25_items_a_call(n: int, sizes: list[int]) -> None:
    # given
    client = MemoryDynamoDB()
    table = BatchTable(client, TABLE, ["card_id"], backoff=quiet_backoff()[0])

    # when
    failed = table.put_many(cards(n))

    # then
    assert [len(c) for c in client.write_calls] == sizes
    assert failed == []
    assert len(client.items) == n


def test_put_many_with_an_executor_writes_every_chunk_once() -> None:
    client = MemoryDynamoDB()
    with ThreadPoolExecutor(max_workers=4) as executor:
        table = BatchTable(
            client, TABLE, ["card_id"], backoff=quiet_backoff()[0], executor=executor
        )
        failed = table.put_many(cards(130))

    assert failed == []
    assert sorted(len(c) for c in client.write_calls) == [5, 25, 25, 25, 25, 25]
    assert sorted(k for c in client.write_calls for k in c) == sorted(
        c["card_id"] for c in cards(130)
    )


def test_put_many_sends_one_item_per_key_the_last_one() -> None:
    # given
    # DynamoDB refuses a BatchWriteItem holding the same key twice (the fake raises like it)
    client = MemoryDynamoDB()
    table = BatchTable(client, TABLE, ["card_id"], backoff=quiet_backoff()[0])
    items = [*cards(30), {"card_id": "card0003", "txn_count": Decimal(99)}]

    # when
    failed = table.put_many(items)

    # then
    assert failed == []
    assert sum(len(c) for c in client.write_calls) == 30
    assert deserialize(client.items["card0003"])["txn_count"] == 99


def test_unprocessed_items_are_retried_with_backoff_until_written() -> None:
    # given
    # card0007 comes back unprocessed on the first three write calls of its chunk
    client = MemoryDynamoDB(unprocessed=lambda key, attempt: key == "card0007" and attempt <= 3)
    backoff, sleeps = quiet_backoff()
    table = BatchTable(client, TABLE, ["card_id"], backoff=backoff)

    # when
    failed = table.put_many(cards(10))

    # then
    assert failed == []
    assert [len(c) for c in client.write_calls] == [10, 1, 1, 1]
    assert client.write_calls[1] == ["card0007"]
    assert "card0007" in client.items
    assert backoff.pauses == 3
    assert len(sleeps.seconds) == 3


def test_unprocessed_items_that_never_land_are_returned_after_the_last_attempt() -> None:
    # given
    client = MemoryDynamoDB(unprocessed=lambda key, attempt: key in {"card0002", "card0005"})
    backoff, sleeps = quiet_backoff(attempts=4)
    table = BatchTable(client, TABLE, ["card_id"], backoff=backoff)

    # when
    failed = table.put_many(cards(8))

    # then
    assert sorted(failed) == [("card0002",), ("card0005",)]
    assert len(client.write_calls) == 4  # one call per attempt
    assert backoff.pauses == 3  # no pause after the last attempt
    assert len(sleeps.seconds) == 3
    assert set(client.items) == {c["card_id"] for c in cards(8)} - {"card0002", "card0005"}


def test_unprocessed_keys_are_retried_then_reported() -> None:
    # given
    client = MemoryDynamoDB(
        unprocessed=lambda key, attempt: key == "card0001" or (key == "card0003" and attempt == 1)
    )
    for item in cards(5):
        client.items[item["card_id"]] = serialize(item)
    backoff, _ = quiet_backoff(attempts=3)
    table = BatchTable(client, TABLE, ["card_id"], backoff=backoff)

    # when
    found, failed = table.get_many({"card_id": c["card_id"]} for c in cards(5))

    # then
    assert failed == [("card0001",)]
    assert set(found) == {("card0000",), ("card0002",), ("card0003",), ("card0004",)}
    assert client.get_calls[1:] == [["card0001", "card0003"], ["card0001"]]
    assert backoff.pauses == 2


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, RetryableError),
        ("ThrottlingException", 400, RetryableError),
        ("RequestLimitExceeded", 400, RetryableError),
        ("InternalServerError", 500, RetryableError),
        ("SomethingNew", 503, RetryableError),
        ("AccessDeniedException", 400, SystemicError),
        ("ResourceNotFoundException", 400, SystemicError),
        ("ValidationException", 400, SystemicError),
    ],
)
def test_batch_table_turns_client_errors_into_project_errors(
    code: str, status: int, expected: type[Exception]
) -> None:
    # given
    table = BatchTable(
        MemoryDynamoDB(error=client_error(code, status)),
        TABLE,
        ["card_id"],
        backoff=quiet_backoff()[0],
    )

    # when
    with pytest.raises(expected) as caught:
        table.put_many(cards(3))

    # then
    assert f"DynamoDB BatchWriteItem on {TABLE}" in str(caught.value)
    assert code in str(caught.value)
    with pytest.raises(expected, match="BatchGetItem"):
        table.get_many([{"card_id": "card0001"}])


def test_serialize_leaves_out_none_and_round_trips() -> None:
    # given
    item = {
        "card_id": "c1",
        "last_sequence_number": None,
        "n": Decimal("1.5"),
        "m": {"a": Decimal(2)},
    }

    # when
    raw = serialize(item)

    # then
    assert "last_sequence_number" not in raw
    assert deserialize(raw) == {"card_id": "c1", "n": Decimal("1.5"), "m": {"a": Decimal(2)}}


# ----------------------------------------------------------------------------- Kinesis


@pytest.mark.parametrize(("n", "sizes"), [(500, [500]), (501, [500, 1]), (1200, [500, 500, 200])])
def test_put_records_sends_at_most_500_records_a_call(n: int, sizes: list[int]) -> None:
    # given
    client = MemoryKinesis()
    writer = StreamWriter(client, "features", quiet_backoff()[0])

    # when
    failed = writer.put_records([(f"card{i}", b"{}") for i in range(n)])

    # then
    assert failed == []
    assert [len(c) for c in client.calls] == sizes
    assert len(client.stored) == n


def test_put_records_splits_calls_at_5_mib_keeping_order() -> None:
    # given
    # 1 MiB is a record's own limit; 5 MiB counts partition keys and data of one call
    big = b"x" * (1024 * 1024 - 16)
    client = MemoryKinesis()
    writer = StreamWriter(client, "features", quiet_backoff()[0])
    entries = [(f"card{i:012d}", big) for i in range(12)]

    # when
    failed = writer.put_records(entries)

    # then
    assert failed == []
    assert [len(c) for c in client.calls] == [5, 5, 2]
    for call in client.calls:
        assert sum(len(r["PartitionKey"]) + len(r["Data"]) for r in call) <= MAX_REQUEST_BYTES
    assert [key for key, _ in client.stored] == [key for key, _ in entries]


def test_put_records_one_byte_over_5_mib_opens_a_second_call() -> None:
    # given
    data = b"y" * (
        MAX_REQUEST_BYTES // 5 - 1
    )  # with a 1-byte key, five of these fill 5 MiB exactly
    client = MemoryKinesis()
    writer = StreamWriter(client, "features", quiet_backoff()[0])

    # when
    writer.put_records([("k", data)] * 5)
    writer.put_records([("k", data)] * 4 + [("k", data + b"z")])

    # then
    assert [len(c) for c in client.calls] == [5, 4, 1]


def test_failed_records_are_retried_alone_until_they_land() -> None:
    # given
    client = MemoryKinesis(failing=lambda key, attempt: key == "card3" and attempt <= 2)
    backoff, sleeps = quiet_backoff()
    writer = StreamWriter(client, "features", backoff)

    # when
    failed = writer.put_records([(f"card{i}", f"{i}".encode()) for i in range(6)])

    # then
    assert failed == []
    assert [[r["PartitionKey"] for r in c] for c in client.calls][1:] == [["card3"], ["card3"]]
    assert sorted(key for key, _ in client.stored) == [f"card{i}" for i in range(6)]
    assert backoff.pauses == 2 and len(sleeps.seconds) == 2


def test_records_that_keep_failing_are_returned_by_index() -> None:
    # given
    client = MemoryKinesis(failing=lambda key, attempt: key in {"card1", "card4"})
    backoff, _ = quiet_backoff(attempts=3)
    writer = StreamWriter(client, "features", backoff)
    entries = [(f"card{i}", b"{}") for i in range(510)]

    # when
    failed = writer.put_records(entries)

    # then
    assert failed == [1, 4]
    assert backoff.pauses == 2
    assert len(client.calls) == 3 + 1  # three attempts for the first call, one for the second


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ProvisionedThroughputExceededException", RetryableError),
        ("AccessDeniedException", SystemicError),
    ],
)
def test_put_records_errors_are_classified(code: str, expected: type[Exception]) -> None:
    class Broken:
        def put_records(self, **_: Any) -> dict[str, Any]:
            raise client_error(code, operation="PutRecords")

    with pytest.raises(expected, match="Kinesis PutRecords on features"):
        StreamWriter(Broken(), "features", quiet_backoff()[0]).put_records([("k", b"{}")])


# ----------------------------------------------------------------------------- EventBridge


def test_put_events_sends_tens_and_retries_failed_entries() -> None:
    # given
    client = MemoryEventBridge(
        failing=lambda detail, attempt: detail == '{"i": 12}' and attempt <= 3
    )
    backoff, _ = quiet_backoff()
    publisher = EventPublisher(client, "bus", backoff)
    entries = [{"Source": "s", "DetailType": "d", "Detail": f'{{"i": {i}}}'} for i in range(25)]

    # when
    failed = publisher.put_events(entries)

    # then
    assert failed == []
    assert [len(c) for c in client.calls] == [10, 10, 1, 1, 5]
    assert all(e["EventBusName"] == "bus" for c in client.calls for e in c)
    assert sorted(client.delivered) == sorted(e["Detail"] for e in entries)
    assert backoff.pauses == 2


def test_put_events_reports_entries_that_keep_failing() -> None:
    client = MemoryEventBridge(failing=lambda detail, attempt: detail == '{"i": 13}')
    publisher = EventPublisher(client, "bus", quiet_backoff(attempts=2)[0])
    entries = [{"Source": "s", "DetailType": "d", "Detail": f'{{"i": {i}}}'} for i in range(15)]

    assert publisher.put_events(entries) == [13]


# ----------------------------------------------------------------------------- retry policy


def test_backoff_counts_pauses_and_sleeps_with_full_jitter_under_a_cap() -> None:
    # given
    sleeps = Sleeps()
    backoff = Backoff(
        attempts=10, base_seconds=0.05, cap_seconds=0.3, sleep=sleeps, rng=random.Random(3)
    )

    # when
    for attempt in range(1, 8):
        backoff.pause(attempt)

    # then
    assert backoff.pauses == 7
    assert len(sleeps.seconds) == 7
    for attempt, seconds in enumerate(sleeps.seconds, start=1):
        assert 0 <= seconds <= min(0.3, 0.05 * 2**attempt)
    assert len(set(sleeps.seconds)) == 7  # jittered, not a fixed schedule


def test_backoff_pause_count_is_exact_across_threads() -> None:
    backoff = Backoff(sleep=lambda _: None)
    with ThreadPoolExecutor(max_workers=8) as executor:
        list(executor.map(lambda _: backoff.pause(1), range(400)))

    assert backoff.pauses == 400


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("ProvisionedThroughputExceededException"), RetryableError),
        (client_error("ThrottlingException"), RetryableError),
        (client_error("ServiceUnavailable", 503), RetryableError),
        (client_error("UnknownButServerSide", 500), RetryableError),
        (client_error("AccessDeniedException"), SystemicError),
        (client_error("ResourceNotFoundException"), SystemicError),
        (client_error("UnrecognizedClientException"), SystemicError),
        (EndpointConnectionError(endpoint_url="https://dynamodb"), RetryableError),
        (ConnectTimeoutError(endpoint_url="https://dynamodb"), RetryableError),
        (ReadTimeoutError(endpoint_url="https://dynamodb"), RetryableError),
    ],
)
def test_translate_error_keeps_retryable_apart_from_systemic(
    error: Exception, expected: type[Exception]
) -> None:
    translated = translate_error(error, "DynamoDB BatchWriteItem on cards")

    assert type(translated) is expected
    assert str(translated).startswith("DynamoDB BatchWriteItem on cards: ")


def test_translate_error_passes_other_errors_through_unchanged() -> None:
    error = NoCredentialsError()

    assert translate_error(error, "anything") is error


# ----------------------------------------------------------------------------- batching


def test_chunked_covers_every_item_in_order() -> None:
    assert [list(c) for c in chunked(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


def test_fan_out_keeps_chunk_order_and_propagates_the_first_error() -> None:
    chunks = [list(range(i, i + 2)) for i in range(0, 10, 2)]
    with ThreadPoolExecutor(max_workers=3) as executor:
        assert fan_out(sum, chunks, executor) == [1, 5, 9, 13, 17]

        def boom(chunk: list[int]) -> int:
            if 4 in chunk:
                raise RetryableError("chunk failed")
            return sum(chunk)

        with pytest.raises(RetryableError, match="chunk failed"):
            fan_out(boom, chunks, executor)
