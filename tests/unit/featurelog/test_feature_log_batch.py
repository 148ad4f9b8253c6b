"""The feature-log stage on fakes: INSERTs only, one object per scored date, written once,
retried from the first failure, rows logged without features when FeaturesTable had none."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from streamscore.core.errors import RetryableError
from streamscore.core.ids import TransactionId
from streamscore.featurelog.batch import Change, log_batch
from streamscore.featurelog.ports import FeatureLogPorts
from streamscore.featurelog.rows import NO_FEATURES, decode, encode, first_rows, object_key


def prediction(n: int, scored_at: str = "2026-03-07T10:00:00.000Z") -> dict[str, Any]:
    return {
        "transaction_id": f"t-{n}",
        "event_time": "2026-03-07T09:59:59+01:00",
        "scored_at": scored_at,
        "decision": "approve",
        "score": 0.01 * n,
        "model_version": "v1",
        "features_record_id": f"FeaturesStream#shard#{n}",
    }


def change(n: int, name: str = "INSERT", **fields: Any) -> Change:
    return Change(f"{1000 + n}", f"event-{n}", name, prediction(n, **fields))


class Features:
    def __init__(self, missing: Sequence[str] = (), unread: Sequence[str] = ()):
        self.missing, self.unread = set(missing), set(unread)
        self.calls = 0

    def load(
        self, ids: Sequence[TransactionId]
    ) -> tuple[dict[TransactionId, dict[str, Any]], set[TransactionId]]:
        self.calls += 1
        found = {
            t: {"features": {"amount_log": 1.5, "is_night": 0}, "feature_schema": "card-v1"}
            for t in ids
            if t not in self.missing | self.unread
        }
        return found, {t for t in ids if t in self.unread}


class Bucket:
    def __init__(self, failing: Sequence[str] = ()):
        self.objects: dict[str, bytes] = {}
        self.failing = set(failing)

    def put(self, key: str, body: bytes) -> bool:
        if any(f in key for f in self.failing):
            raise RetryableError(f"S3 said 503 for {key}")
        if key in self.objects:
            return False
        self.objects[key] = body
        return True

    def rows(self) -> list[dict[str, Any]]:
        return [row for body in self.objects.values() for row in decode(body)]


def test_inserts_are_logged_once_with_their_features_and_a_retry_finds_them_written() -> None:
    bucket = Bucket()
    ports = FeatureLogPorts(Features(), bucket)
    changes = [change(1), change(2, "MODIFY"), change(3), change(4, "REMOVE")]

    first = log_batch(changes, ports)
    again = log_batch(changes, ports)

    assert (first.rows_logged, first.objects_written, first.failed_from) == (2, 1, None)
    assert (again.rows_logged, again.rows_already_logged) == (0, 2)
    rows = bucket.rows()
    assert [r["transaction_id"] for r in rows] == ["t-1", "t-3"]
    assert rows[0]["features"] == {"amount_log": 1.5, "is_night": 0.0}
    assert rows[0]["model_version"] == "v1" and "features_record_id" not in rows[0]
    (key,) = bucket.objects
    assert key.startswith("feature-log/date=2026-03-07/1001-")


def test_rows_go_to_the_object_of_their_scored_date() -> None:
    bucket = Bucket()
    changes = [change(1), change(2, scored_at="2026-03-08T00:00:00.001Z")]

    log_batch(changes, FeatureLogPorts(Features(), bucket))

    assert sorted(k.split("/")[1] for k in bucket.objects) == ["date=2026-03-07", "date=2026-03-08"]


def test_a_transaction_without_features_is_logged_and_counted_not_dropped() -> None:
    bucket = Bucket()

    outcome = log_batch([change(1), change(2)], FeatureLogPorts(Features(missing=["t-2"]), bucket))

    assert outcome.features_missing == 1
    assert {r["transaction_id"]: r.get("missing") for r in bucket.rows()} == {
        "t-1": None,
        "t-2": NO_FEATURES,
    }


def test_an_unread_feature_record_fails_the_batch_from_its_record_and_logs_what_came_before() -> (
    None
):
    bucket = Bucket()

    outcome = log_batch(
        [change(1), change(2), change(3)], FeatureLogPorts(Features(unread=["t-2"]), bucket)
    )

    assert outcome.failed_from == "1002" and outcome.failed_records == 2
    assert [r["transaction_id"] for r in bucket.rows()] == ["t-1"]


def test_a_failed_write_reports_its_first_record_failed() -> None:
    bucket = Bucket(failing=["date=2026-03-08"])
    changes = [change(1), change(2, scored_at="2026-03-08T01:00:00.000Z"), change(3)]

    outcome = log_batch(changes, FeatureLogPorts(Features(), bucket))

    assert outcome.failed_from == "1002"
    assert outcome.problems and "503" in outcome.problems[0]


def test_other_batch_boundaries_name_other_objects_and_the_reader_keeps_one_row_each() -> None:
    bucket = Bucket()
    ports = FeatureLogPorts(Features(), bucket)

    log_batch([change(1), change(2)], ports)
    log_batch([change(2), change(3)], ports)  # a retry after a bisection, say

    assert len(bucket.objects) == 2
    rows = bucket.rows()
    assert len(rows) == 4
    assert sorted(first_rows(rows)) == ["t-1", "t-2", "t-3"]


def test_objects_are_the_same_bytes_for_the_same_rows() -> None:
    rows = [prediction(1), prediction(2)]

    assert encode(rows) == encode(rows)
    assert decode(encode(rows)) == rows
    assert object_key("2026-03-07", "5", ["a", "b"]) != object_key("2026-03-07", "5", ["a", "c"])


@pytest.mark.parametrize("name", ["MODIFY", "REMOVE"])
def test_a_batch_without_inserts_reads_and_writes_nothing(name: str) -> None:
    features, bucket = Features(), Bucket()

    outcome = log_batch([change(1, name)], FeatureLogPorts(features, bucket))

    assert (features.calls, bucket.objects, outcome.failed_from) == (0, {}, None)
