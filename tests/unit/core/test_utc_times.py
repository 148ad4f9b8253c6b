"""Stored times have one format, UTC to the millisecond, whatever offset the clock handed us.

The drift check selects count items by their UTC hour and compares `recorded_at`
strings with bounds in that format, so a time stored with another offset would be
counted in the wrong window (or in none).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from streamscore.aws.monitoring_stores import DynamoQuarantineStore
from streamscore.core.errors import InvalidRecordError
from streamscore.core.monitoring import hour_of, quarantine_hour, window_key
from streamscore.core.records import StreamRecord, quarantine_item
from streamscore.core.times import iso_time, utc_iso_ms
from streamscore.drift.window import DriftWindow

PLUS_TWO = timezone(timedelta(hours=2))
# one instant: 10:15:30.123456 UTC
INSTANT_UTC = datetime(2026, 3, 4, 10, 15, 30, 123456, tzinfo=UTC)
INSTANT_PLUS_TWO = INSTANT_UTC.astimezone(PLUS_TWO)  # 12:15:30.123456+02:00
EXPECTED = "2026-03-04T10:15:30.123+00:00"

RECORD = StreamRecord(
    stream_name="transactions",
    shard_id="shardId-000000000000",
    sequence_number="49650000000000000000000000000000000000000000000000000001",
    partition_key="card0001",
    data_b64="bm90IGpzb24=",
    arrived_at=INSTANT_UTC.timestamp(),
)


def test_utc_iso_ms_converts_to_utc_and_keeps_milliseconds() -> None:
    assert INSTANT_PLUS_TWO.isoformat(timespec="milliseconds") == "2026-03-04T12:15:30.123+02:00"

    assert utc_iso_ms(INSTANT_PLUS_TWO) == EXPECTED
    assert utc_iso_ms(INSTANT_UTC) == EXPECTED


@pytest.mark.parametrize(
    "offset",
    [timedelta(0), timedelta(hours=2), timedelta(hours=-5, minutes=-30), timedelta(hours=14)],
)
def test_the_same_instant_at_any_offset_gives_the_same_string(offset: timedelta) -> None:
    moment = INSTANT_UTC.astimezone(timezone(offset))

    assert utc_iso_ms(moment) == EXPECTED
    assert utc_iso_ms(moment) == utc_iso_ms(INSTANT_PLUS_TWO)


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: Python counts its datetimes as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.mark.parametrize(
    "moment",
    [datetime(2026, 3, 4, 12, 15, 30), datetime(2026, 3, 4, 12, 15, 30, tzinfo=NoOffset())],
    ids=["no-tzinfo", "tzinfo-without-offset"],
)
def test_a_naive_datetime_is_refused(moment: datetime) -> None:
    with pytest.raises(ValueError, match="naive"):
        utc_iso_ms(moment)


def test_iso_time_of_an_epoch_is_in_the_same_format() -> None:
    assert iso_time(INSTANT_UTC.timestamp()) == EXPECTED


# real offsets are whole minutes, under a day either way
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.builds(
    lambda naive, zone: naive.replace(tzinfo=UTC).astimezone(zone),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    offsets,
)


@given(moments, moments)
def test_strings_compare_as_the_instants_they_name(a: datetime, b: datetime) -> None:
    def to_ms(moment: datetime) -> datetime:
        utc = moment.astimezone(UTC)
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000)

    assert (utc_iso_ms(a) == utc_iso_ms(b)) == (to_ms(a) == to_ms(b))
    assert (utc_iso_ms(a) < utc_iso_ms(b)) == (to_ms(a) < to_ms(b))
    assert datetime.fromisoformat(utc_iso_ms(a)) == to_ms(a)


# ----------------------------------------------------------------- stored items


def test_a_count_hour_is_the_utc_hour_of_a_time_at_any_offset() -> None:
    assert hour_of(INSTANT_PLUS_TWO.isoformat()) == hour_of(INSTANT_UTC.isoformat())
    assert hour_of(INSTANT_PLUS_TWO.isoformat()) == "2026-03-04T10"
    # a quarantined record counts in the hour of the event time it carries
    payload = base64.b64encode(b'{"event_time": "2026-03-04T12:15:30+02:00"}').decode()
    assert quarantine_hour({"payload_b64": payload, "arrived_at": EXPECTED}) == "2026-03-04T10"


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9000, 1, 1), timezones=st.timezones()
    )
)
def test_a_count_hour_is_what_astimezone_and_strftime_give(moment: datetime) -> None:
    assert hour_of(moment.isoformat()) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def test_a_count_item_of_a_non_utc_time_is_in_its_drift_window() -> None:
    window = DriftWindow(
        datetime(2026, 3, 4, 10, 0, tzinfo=UTC), datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
    )
    hour = hour_of(INSTANT_PLUS_TWO.isoformat())

    assert hour in window.count_hours()
    assert window_key(hour) in window.count_keys()
    start, end = window.count_bounds
    assert start <= f"{hour}:00:00.000+00:00" <= end


def test_a_quarantine_item_records_a_non_utc_now_in_utc() -> None:
    # given
    error = InvalidRecordError("invalid_json", "payload is not JSON")

    # when
    item = quarantine_item(RECORD, error, "preprocess", INSTANT_PLUS_TWO)

    # then
    assert item["quarantined_at"] == EXPECTED
    assert item["arrived_at"] == EXPECTED


def test_the_quarantine_store_gives_an_item_its_expiry_from_the_time_it_was_quarantined() -> None:
    # given: an item quarantined at a non-UTC now, and a store keeping items 14 days
    class Facts:
        created: list[Any]

        def create(self, facts: list[Any], counts_expire_at: int) -> tuple[set[str], set[str]]:
            self.created = facts
            return {f.key for f in facts}, set()

    facts = Facts()
    item = quarantine_item(RECORD, InvalidRecordError("r", "m"), "preprocess", INSTANT_PLUS_TWO)

    # when
    DynamoQuarantineStore(facts, ttl_days=14, counts_ttl_days=90).save([item])  # type: ignore[arg-type]

    # then: the TTL is set on the adapter side, from the item's own time
    assert "expires_at" not in item
    assert facts.created[0].item["expires_at"] == int(INSTANT_UTC.timestamp()) + 14 * 86400


@pytest.mark.parametrize(
    "write",
    [
        lambda now: quarantine_item(RECORD, InvalidRecordError("r", "m"), "preprocess", now),
        utc_iso_ms,
    ],
    ids=["quarantine_item", "utc_iso_ms"],
)
def test_stored_items_refuse_a_naive_now(write: object) -> None:
    assert callable(write)
    with pytest.raises(ValueError, match="naive"):
        write(datetime(2026, 3, 4, 12, 15, 30))


def test_a_count_hour_refuses_a_time_without_offset() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        hour_of("2026-03-04T12:15:30")
