"""The drift check's domain with in-memory ports: window, baseline, sums, statuses, report, trigger, cooldown."""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from streamscore.core.artifacts import SCORE
from streamscore.core.errors import RetryableError, SystemicError
from streamscore.core.monitoring import (
    MISSING,
    NO_VERSION,
    OUT_OF_RANGE,
    PREDICTIONS,
    QUARANTINE,
    CountKey,
    Counts,
    window_key,
)
from streamscore.drift.baseline import DriftBaseline, load_baseline
from streamscore.drift.check import DriftCheckOutcome, DriftCheckPolicy, check_drift
from streamscore.drift.ports import DriftCheckPorts, TriggerClaim
from streamscore.drift.report import (
    DRIFT_DETECTED,
    MONITORING_SOURCE,
    RETRAINING_REQUESTED,
    TRIGGER_EVENTS,
    report_keys,
)
from streamscore.drift.stats import DriftThresholds, psi
from streamscore.drift.totals import sum_items
from streamscore.drift.window import DriftWindow, InvalidWindowError, resolve_window

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
EVENTS = ROOT / "events"
END = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
DAY_WINDOW = DriftWindow(END - timedelta(days=1), END)
THRESHOLDS = DriftThresholds()
POLICY = DriftCheckPolicy(thresholds=THRESHOLDS, cooldown_hours=24)


@pytest.fixture(scope="module")
def baseline() -> DriftBaseline:
    return load_baseline(ARTIFACTS)


# ---------------------------------------------------------------- builders and fakes


def expected_counts(proportions: Sequence[float], n: int) -> list[int]:
    """`n` observations spread exactly as `proportions` (largest remainders)."""
    raw = [p * n for p in proportions]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def baseline_histograms(
    baseline: DriftBaseline, n: int, shifted: Mapping[str, list[int]] | None = None
) -> dict[str, dict[str, Any]]:
    """Histograms of `n` rows looking exactly like the baseline, except the `shifted` counts."""
    shifted = shifted or {}
    return {
        name: {
            "counts": shifted.get(name) or expected_counts(reference.proportions, n),
            "missing": 0,
            "out_of_range": 0,
        }
        for name, reference in baseline.variables.items()
    }


def _count_item(
    kind: str, version: str, moment: datetime, shard: str, counts: Counts
) -> dict[str, Any]:
    """A MonitoringTable count item as DynamoFactWriter leaves it (its ADDs summed)."""
    key = CountKey(kind, version, moment.astimezone(UTC).strftime("%Y-%m-%dT%H"), shard)
    return {
        "pk": key.pk,
        "sk": "COUNT",
        "kind": kind,
        "model_version": version,
        "hour": key.hour,
        "shard_id": shard,
        "window_key": window_key(key.hour),
        "recorded_at": f"{key.hour}:00:00.000+00:00",
    } | counts.attributes()


def hist_item(
    version: str,
    recorded_at: datetime,
    histograms: Mapping[str, Any],
    n: int,
    shard: str = "1",
) -> dict[str, Any]:
    """The prediction count item of `n` predictions with these histograms (event hour of `recorded_at`)."""
    names = [*load_baseline(ARTIFACTS).features, SCORE]
    counts = Counts(n=n, decisions=Counter({"approve": n}))
    for index, name in enumerate(names):
        histogram = histograms.get(name)
        if histogram is None:
            continue
        for b, count in enumerate(histogram["counts"]):
            counts.bins[index, b] += count
        counts.bins[index, MISSING] += histogram.get("missing", 0)
        counts.bins[index, OUT_OF_RANGE] += histogram.get("out_of_range", 0)
    return _count_item(PREDICTIONS, version, recorded_at, f"shard-{shard}", counts)


def stats_item(
    recorded_at: datetime,
    quarantined: Mapping[str, int],
    shard: str = "1",
    stage: str = "preprocess",
) -> dict[str, Any]:
    """The quarantine count item of these reasons."""
    counts = Counts(
        n=sum(quarantined.values()),
        reasons=Counter({f"{stage}/{r}": c for r, c in quarantined.items()}),
    )
    return _count_item(QUARANTINE, NO_VERSION, recorded_at, f"shard-{shard}", counts)


class FakeReader:
    """WindowIndex: the items of the asked buckets with start <= recorded_at <= end (BETWEEN)."""

    def __init__(self, items: Sequence[dict[str, Any]]):
        self.items = list(items)
        self.asked: list[str] = []

    def read(self, window_keys: Sequence[str], start: str, end: str) -> list[dict[str, Any]]:
        self.asked += window_keys
        return [
            item
            for item in self.items
            if item["window_key"] in window_keys and start <= item["recorded_at"] <= end
        ]


@dataclass
class FakeReports:
    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def uri(self, key: str) -> str:
        return f"s3://artifacts/{key}"

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = (body, content_type)

    def json(self, key: str) -> dict[str, Any]:
        return dict(json.loads(self.objects[key][0]))


@dataclass
class FakeMonitoring:
    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def put(self, item: dict[str, Any]) -> None:
        self.items[(item["pk"], item["sk"])] = item


@dataclass
class FakeCooldown:
    """DynamoRetrainingCooldown's state machine in memory: one item per model version.

    The detail types accepted are kept per trigger id until it completes (a takeover of a
    dead claim does not forget them).
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
class FakeEvents:
    """EventBridge: takes the entries, except those of a `refuse`d detail type (an ErrorCode)."""

    entries: list[Mapping[str, str]] = field(default_factory=list)
    fail: bool = False
    refuse: set[str] = field(default_factory=set)
    calls: list[list[str]] = field(default_factory=list)  # the detail types of each call

    def put_events(self, entries: Sequence[Mapping[str, str]]) -> list[int]:
        self.calls.append([e["DetailType"] for e in entries])
        if self.fail:
            return list(range(len(entries)))
        failed = [i for i, e in enumerate(entries) if e["DetailType"] in self.refuse]
        self.entries += [e for i, e in enumerate(entries) if i not in failed]
        return failed

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [json.loads(e["Detail"]) for e in self.entries if e["DetailType"] == detail_type]


class Crash(BaseException):
    """The run dies (a timeout, the sandbox killed): no handler of the run's code runs."""


# Port calls a fault can hit, in the order a drifted run makes them (without a picture).
PORT_CALLS = (
    "reader.read",
    "reports.put",
    "cooldown.claim",
    "events.put_events",
    "cooldown.record",
    "monitoring.put",
)
Fault = Literal["fail", "lost", "crash"]  # before the call | after it took effect | the run dies


class FaultyPorts:
    """The ports with one fault: at the `at`-th port call of the run, or the first call of `at`.

    fail: the call raises RetryableError without effect. lost: the call takes effect and its
    response is lost (RetryableError). crash: the call takes effect and the run dies before
    its next call (Crash, which no `except Exception` catches).
    """

    def __init__(self, ports: DriftCheckPorts, at: int | str | None, fault: Fault):
        self.at, self.fault = at, fault
        self.made: list[tuple[str, Fault | None]] = []  # every call made, with its fault
        wrapped = {f.name: _Proxy(getattr(ports, f.name), f.name, self) for f in fields(ports)}
        self.ports = DriftCheckPorts(**wrapped)

    def call(self, name: str, method: Any, *args: Any) -> Any:
        hit = self.at == len(self.made) or (
            self.at == name and all(made != name for made, _ in self.made)
        )
        fault = self.fault if hit else None
        self.made.append((name, fault))
        if fault == "fail":
            raise RetryableError(f"{name} failed")
        result = method(*args)
        if fault == "lost":
            raise RetryableError(f"{name}: the response was lost")
        if fault == "crash":
            raise Crash(f"the run died after {name}")
        return result


class _Proxy:
    def __init__(self, target: Any, port: str, faults: FaultyPorts):
        self.target, self.port, self.faults = target, port, faults

    def __getattr__(self, method: str) -> Any:
        bound = getattr(self.target, method)
        name = f"{self.port}.{method}"
        if name not in PORT_CALLS:
            return bound
        return lambda *args: self.faults.call(name, bound, *args)


@dataclass
class Ports:
    reader: FakeReader
    reports: FakeReports = field(default_factory=FakeReports)
    monitoring: FakeMonitoring = field(default_factory=FakeMonitoring)
    cooldown: FakeCooldown = field(default_factory=FakeCooldown)
    events: FakeEvents = field(default_factory=FakeEvents)

    def wired(self) -> DriftCheckPorts:
        return DriftCheckPorts(
            self.reader, self.reports, self.monitoring, self.cooldown, self.events
        )


def drifted_amount(baseline: DriftBaseline, n: int) -> list[int]:
    """amount_log with its mass moved into the top three bins."""
    bins = len(baseline.variables["amount_log"].proportions)
    counts = [n // (2 * bins)] * bins
    for i in range(bins - 3, bins):
        counts[i] += (n - sum(counts)) // (bins - i)
    counts[-1] += n - sum(counts)
    return counts


# ---------------------------------------------------------------- the window


def test_scheduled_event_checks_the_minutes_before_its_time() -> None:
    event = json.loads((EVENTS / "drift_check_scheduled.json").read_text())

    window = resolve_window(event, now=datetime(2030, 1, 1, tzinfo=UTC), minutes=90)

    assert window.end == datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    assert window.start == datetime(2026, 3, 4, 10, 30, tzinfo=UTC)
    assert window.count_keys() == ["COUNT#2026-03-04T10", "COUNT#2026-03-04T11"]


def test_a_scheduled_window_ends_at_the_whole_hour_of_its_time() -> None:
    # counts are hourly: a schedule that fires late still checks the same whole hours
    late = {"time": "2026-03-04T12:00:41Z"}

    window = resolve_window(late, now=datetime(2030, 1, 1, tzinfo=UTC), minutes=1440)

    assert (window.start, window.end) == (END - timedelta(days=1), END)
    assert window.whole_hours and len(window.count_keys()) == 24


def test_on_demand_event_names_its_window() -> None:
    event = json.loads((EVENTS / "drift_check_window.json").read_text())

    window = resolve_window(event, now=datetime(2030, 1, 1, tzinfo=UTC), minutes=60)

    assert (window.start, window.end) == (END - timedelta(days=1), END)
    assert len(window.hours()) == 24
    assert window.window_id == "20260303T120000Z--20260304T120000Z"


def test_without_a_time_the_window_ends_now_and_offsets_become_utc() -> None:
    now = datetime(2026, 3, 4, 12, 5, 30, tzinfo=UTC)
    hour = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

    assert resolve_window({}, now, 60) == DriftWindow(hour - timedelta(hours=1), hour)
    window = resolve_window(
        {"window": {"start": "2026-03-04T13:00:00+01:00", "end": "2026-03-04T13:30:00+01:00"}},
        now,
        60,
    )
    assert window.start == datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    assert window.recorded_bounds == (
        "2026-03-04T12:00:00.000+00:00",
        "2026-03-04T12:30:00.000+00:00",
    )
    assert window.count_keys() == ["COUNT#2026-03-04T12"]
    assert not window.whole_hours


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"start": "2026-03-04T12:00:00", "end": "2026-03-04T13:00:00+00:00"}, "UTC offset"),
        ({"start": "2026-03-04T12:00:00Z", "end": "2026-03-04T12:00:00Z"}, "not after its start"),
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-03-09T00:00:00Z"}, "longer than 7 days"),
        ({"start": "yesterday", "end": "2026-03-04T12:00:00Z"}, "not an ISO 8601 time"),
        ({"start": 1700000000, "end": "2026-03-04T12:00:00Z"}, "ISO 8601 time string"),
        ("last week", "must be an object"),
    ],
)
def test_bad_windows_are_refused_with_a_reason(window: Any, message: str) -> None:
    with pytest.raises(InvalidWindowError, match=message):
        resolve_window({"window": window}, END, 60)


# ---------------------------------------------------------------- the baseline


def test_shipped_baseline_has_every_feature_of_the_card_and_the_score(
    baseline: DriftBaseline,
) -> None:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())

    assert baseline.model_version == card["model_version"]
    assert baseline.features == tuple(card["feature_names"])
    assert set(baseline.variables) == {*card["feature_names"], SCORE}
    for reference in baseline.variables.values():
        assert len(reference.edges) == len(reference.proportions) + 1
        assert sum(reference.proportions) == pytest.approx(1.0)


def test_baseline_of_another_model_or_without_a_feature_fails_the_cold_start(
    tmp_path: Path,
) -> None:
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    reference = json.loads((ARTIFACTS / "baseline.json").read_text())
    (tmp_path / "model_card.json").write_text(json.dumps(card | {"model_version": "other"}))
    (tmp_path / "baseline.json").write_text(json.dumps(reference))

    with pytest.raises(SystemicError, match=r"baseline\.json is of model"):
        load_baseline(tmp_path)

    del reference["features"]["amount_log"]
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    (tmp_path / "baseline.json").write_text(json.dumps(reference))
    with pytest.raises(SystemicError, match="no reference for 'amount_log'"):
        load_baseline(tmp_path)

    with pytest.raises(SystemicError, match="cannot load the drift baseline from"):
        load_baseline(tmp_path / "missing")


# ---------------------------------------------------------------- summing the window


def test_items_are_summed_once_per_key_within_the_window_per_model_version(
    baseline: DriftBaseline,
) -> None:
    version = baseline.model_version
    hour = END - timedelta(hours=2)
    histograms = baseline_histograms(baseline, 100)
    items = [
        hist_item(version, hour, histograms, 100, "1"),
        hist_item(version, hour, histograms, 100, "1"),  # the same item, read twice
        hist_item(version, hour + timedelta(minutes=5), histograms, 100, "2"),  # its shard's
        hist_item(version, END, histograms, 100, "3"),  # the end's hour is not in the window
        hist_item(version, DAY_WINDOW.start, histograms, 100, "4"),  # the start's is
        hist_item("older-model", hour, {"amount_log": {"counts": [1, 2]}}, 40, "5"),
        stats_item(hour, {"invalid_amount": 3}, "1"),
        stats_item(hour, {"missing_feature": 2}, "2", stage="score"),
    ]

    totals = sum_items(items, DAY_WINDOW, baseline)

    compared = totals.versions[version]
    assert (compared.batches, compared.n, compared.scored) == (3, 300, 300)
    assert compared.histograms["amount_log"].counts == [
        3 * c for c in histograms["amount_log"]["counts"]
    ]
    assert totals.versions["older-model"].n == 40
    assert totals.versions["older-model"].histograms == {}  # counted, not compared
    # records seen: every prediction and every quarantined record, once
    assert (totals.preprocess.records, totals.preprocess.quarantined) == (345, 3)
    assert (totals.score.records, totals.score.quarantined_by_reason) == (
        342,
        {"missing_feature": 2},
    )
    assert totals.ignored_items == 1
    assert totals.per_hour["2026-03-04T10"] == {"scored": 240, "quarantined": 5}


def test_bins_beyond_the_baselines_count_as_out_of_range(baseline: DriftBaseline) -> None:
    # a count item written under other edges (more bins) cannot put rows in bins that do not exist
    histograms = baseline_histograms(baseline, 100)
    reference = len(baseline.variables["amount_log"].proportions)
    histograms["amount_log"] = {"counts": [0] * reference + [100], "missing": 0, "out_of_range": 0}
    item = hist_item(baseline.model_version, END - timedelta(hours=1), histograms, 100)

    totals = sum_items([item], DAY_WINDOW, baseline)

    amount = totals.versions[baseline.model_version].histograms["amount_log"]
    assert amount.counts == [0] * reference and amount.out_of_range == 100


# ---------------------------------------------------------------- the check


def run_check(
    ports: Ports,
    window: DriftWindow = DAY_WINDOW,
    now: datetime = END,
    fault: tuple[int | str, Fault] | None = None,
    **policy: Any,
) -> Any:
    baseline = load_baseline(ARTIFACTS)
    chosen = DriftCheckPolicy(**{**POLICY.__dict__, **policy})
    wired = ports.wired() if fault is None else FaultyPorts(ports.wired(), *fault).ports
    return check_drift(window, baseline, wired, chosen, now)


def window_items(
    baseline: DriftBaseline,
    n_per_batch: int = 400,
    batches: int = 3,
    shifted: Mapping[str, list[int]] | None = None,
) -> list[dict[str, Any]]:
    return [
        hist_item(
            baseline.model_version,
            END - timedelta(hours=3 * (i + 1)),
            baseline_histograms(baseline, n_per_batch, shifted),
            n_per_batch,
            str(i),
        )
        for i in range(batches)
    ]


def test_traffic_like_the_baseline_is_ok_and_triggers_nothing(baseline: DriftBaseline) -> None:
    ports = Ports(FakeReader(window_items(baseline)))

    outcome = run_check(ports)

    assert outcome.report.status == "ok"
    assert outcome.trigger == "not_drift"
    assert all(v.status == "ok" for v in outcome.report.features.values())
    assert outcome.report.max_psi[1] < 0.01
    assert ports.events.entries == []
    assert sorted(set(ports.reader.asked)) == sorted(DAY_WINDOW.count_keys())


def test_drift_sends_both_events_once_with_the_report_location(baseline: DriftBaseline) -> None:
    n = 400
    ports = Ports(
        FakeReader(window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)}))
    )

    outcome = run_check(ports)

    report = outcome.report
    assert report.status == "drift"
    assert [v.name for v in report.drifted] == ["amount_log"]
    assert outcome.trigger == "sent"
    json_key, _ = report_keys(DAY_WINDOW)
    assert outcome.report_uri == f"s3://artifacts/{json_key}"
    assert [e["Source"] for e in ports.events.entries] == [MONITORING_SOURCE] * 2
    (detected,) = ports.events.of_type(DRIFT_DETECTED)
    (requested,) = ports.events.of_type(RETRAINING_REQUESTED)
    assert detected == requested
    assert requested["trigger_id"] == f"{baseline.model_version}/{DAY_WINDOW.window_id}"
    assert requested["report_uri"] == outcome.report_uri
    assert requested["model_version"] == baseline.model_version
    assert requested["window"] == {
        "start": "2026-03-03T12:00:00+00:00",
        "end": "2026-03-04T12:00:00+00:00",
        "minutes": 1440.0,
    }
    (amount,) = requested["drifted"]
    assert amount["name"] == "amount_log"
    assert amount["psi"] == pytest.approx(report.features["amount_log"].stats.psi, abs=1e-6)
    assert amount["js_distance"] > 0.1
    assert requested["sample"] == {
        "n": 3 * n,
        "scored": 3 * n,
        "count_items": 3,
        "records": 3 * n,
        "transactions": 3 * n,
    }


def test_a_second_run_inside_the_cooldown_sends_nothing_and_after_it_sends_again(
    baseline: DriftBaseline,
) -> None:
    n = 400
    ports = Ports(
        FakeReader(window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)}))
    )

    first = run_check(ports)
    later_window = DriftWindow(DAY_WINDOW.start + timedelta(hours=1), END + timedelta(hours=1))
    later = run_check(ports, window=later_window, now=END + timedelta(hours=23, minutes=59))
    after_window = DriftWindow(DAY_WINDOW.start + timedelta(hours=2), END + timedelta(hours=2))
    after = run_check(ports, window=after_window, now=END + timedelta(hours=24, seconds=1))

    assert [first.trigger, later.trigger, after.trigger] == ["sent", "cooldown", "sent"]
    assert [d["trigger_id"] for d in ports.events.of_type(RETRAINING_REQUESTED)] == [
        f"{baseline.model_version}/{DAY_WINDOW.window_id}",
        f"{baseline.model_version}/{after_window.window_id}",
    ]
    items = {item["pk"]: item for item in ports.monitoring.items.values()}
    start, end = later_window.recorded_bounds
    assert items[f"REPORT#{start}#{end}"]["retraining"] == "cooldown"
    assert items[f"REPORT#{start}#{end}"]["trigger_id"] == (
        f"{baseline.model_version}/{later_window.window_id}"
    )


def test_zero_cooldown_triggers_on_every_drifted_window(baseline: DriftBaseline) -> None:
    n = 400
    ports = Ports(
        FakeReader(window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)}))
    )

    outcomes = [
        run_check(
            ports,
            window=DriftWindow(DAY_WINDOW.start + timedelta(minutes=m), END + timedelta(minutes=m)),
            now=END + timedelta(minutes=m),
            cooldown_hours=0,
        )
        for m in (1, 2)
    ]

    assert [o.trigger for o in outcomes] == ["sent", "sent"]
    assert [o.sent for o in outcomes] == [TRIGGER_EVENTS, TRIGGER_EVENTS]


def test_insufficient_data_is_reported_and_triggers_nothing(baseline: DriftBaseline) -> None:
    n = 100  # 3 x 100 < 500, even though amount_log moved completely
    ports = Ports(
        FakeReader(window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)}))
    )

    outcome = run_check(ports)

    assert outcome.report.status == "insufficient_data"
    assert outcome.trigger == "not_drift"
    assert {v.status for v in outcome.report.features.values()} == {"insufficient_data"}
    assert outcome.report.max_psi is None
    assert ports.events.entries == []
    assert any("fewer than the 500" in note for note in outcome.report.notes)


def test_an_empty_window_is_insufficient_data(baseline: DriftBaseline) -> None:
    ports = Ports(FakeReader([]))

    outcome = run_check(ports)

    report = ports.reports.json(report_keys(DAY_WINDOW)[0])
    assert outcome.report.status == report["status"] == "insufficient_data"
    assert report["sample"] == {"n": 0, "scored": 0, "count_items": 0, "records": 0}
    assert report["prediction_psi"] is None
    assert report["features"]["amount_log"]["observed"] == []


def test_features_are_judged_by_psi_the_score_also_by_js(baseline: DriftBaseline) -> None:
    n = 2000
    # A small move between two equal bins: JS distance above 0.1, PSI below the warn threshold.
    amount = expected_counts(baseline.variables["amount_log"].proportions, n)
    amount[0] += 110
    amount[1] -= 110
    reference = baseline.variables["amount_log"]
    expected = [*reference.proportions, 0.0]
    observed = [c / n for c in [*amount, 0]]
    assert psi(expected, observed) < THRESHOLDS.psi_warn  # the premise
    score = expected_counts(baseline.variables[SCORE].proportions, n)
    score[1] -= 250
    score[-1] += 250
    ports = Ports(
        FakeReader(
            window_items(baseline, n, batches=1, shifted={"amount_log": amount, SCORE: score})
        )
    )

    report = run_check(ports).report

    assert report.features["amount_log"].stats.js_distance >= THRESHOLDS.js_drift
    assert report.features["amount_log"].status == "ok"
    assert report.prediction.stats.psi < THRESHOLDS.psi_drift
    assert report.prediction.stats.js_distance >= THRESHOLDS.js_drift
    assert report.prediction.status == "drift"
    assert report.status == "drift"
    assert [v.name for v in report.drifted] == [SCORE]


def test_s3_report_and_table_item_agree(baseline: DriftBaseline) -> None:
    n = 400
    items = window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)})
    items.append(stats_item(END - timedelta(hours=1), {"invalid_amount": 20, "invalid_json": 6}))
    items.append(
        hist_item(
            baseline.model_version,
            END - timedelta(hours=1),
            baseline_histograms(baseline, 50),
            50,
            "q",
        )
    )
    items.append(stats_item(END - timedelta(hours=1), {"missing_feature": 2}, "q", "score"))
    ports = Ports(FakeReader(items))

    outcome = run_check(ports)

    json_key, _ = report_keys(DAY_WINDOW)
    assert json_key == "reports/2026/03/04/20260303T120000Z--20260304T120000Z.json"
    report = ports.reports.json(json_key)
    assert ports.reports.objects[json_key][1] == "application/json"
    (item,) = ports.monitoring.items.values()
    assert item["pk"] == "REPORT#2026-03-03T12:00:00.000+00:00#2026-03-04T12:00:00.000+00:00"
    assert item["window_key"] == "REPORT#2026-03-04T12"
    assert item["recorded_at"] == "2026-03-04T12:00:00.000+00:00"
    assert item["report_uri"] == report["report_uri"] == outcome.report_uri
    shared = set(item) & set(report) - {"features", "prediction"}
    assert shared >= {
        "status",
        "max_psi",
        "drifted",
        "sample",
        "window",
        "model_version",
        "quarantine_rate",
    }
    assert {k: item[k] for k in shared} == {k: report[k] for k in shared}
    for name, stats in item["features"].items():
        assert stats == {k: report["features"][name][k] for k in stats}
    assert item["prediction"] == {k: report["prediction"][k] for k in item["prediction"]}
    # data quality: 1250 scored, 26 quarantined by preprocess, 2 by score: 1278 records
    assert report["quarantine_rate"] == pytest.approx(28 / 1278, abs=1e-6)
    assert report["data_quality"]["preprocess"]["quarantined_by_reason"] == {
        "invalid_amount": 20,
        "invalid_json": 6,
    }
    assert report["data_quality"]["score"]["quarantined_by_reason"] == {"missing_feature": 2}
    assert report["volume"]["transactions"] == 1278


def test_a_rerun_of_the_window_overwrites_its_report(baseline: DriftBaseline) -> None:
    ports = Ports(FakeReader(window_items(baseline)))

    run_check(ports, now=END + timedelta(minutes=1))
    run_check(ports, now=END + timedelta(minutes=7))

    (item,) = ports.monitoring.items.values()
    assert item["recorded_at"] == "2026-03-04T12:07:00.000+00:00"
    assert len(ports.reports.objects) == 1


def test_missing_values_and_out_of_range_shares_are_reported(baseline: DriftBaseline) -> None:
    histograms = baseline_histograms(baseline, 1000)
    histograms["amount_log"] = histograms["amount_log"] | {"missing": 10, "out_of_range": 40}
    item = hist_item(baseline.model_version, END - timedelta(hours=1), histograms, 1010)
    ports = Ports(FakeReader([item]))

    run_check(ports)

    report = ports.reports.json(report_keys(DAY_WINDOW)[0])
    amount = report["features"]["amount_log"]
    assert amount["n"] == 1040
    assert amount["missing_share"] == pytest.approx(10 / 1050, abs=1e-6)
    assert amount["out_of_range_share"] == pytest.approx(40 / 1040, abs=1e-6)
    assert amount["baseline_out_of_range_share"] == pytest.approx(
        baseline.variables["amount_log"].out_of_range_share, abs=1e-6
    )
    assert report["data_quality"]["missing_share"] == {"amount_log": amount["missing_share"]}


def test_other_model_versions_are_reported_not_compared(baseline: DriftBaseline) -> None:
    items = window_items(baseline)
    items.append(hist_item("cardfraud-previous", END - timedelta(hours=1), {}, 70, "old"))
    ports = Ports(FakeReader(items))

    outcome = run_check(ports)

    report = ports.reports.json(report_keys(DAY_WINDOW)[0])
    assert report["other_versions"] == {
        "cardfraud-previous": {"count_items": 1, "n": 70, "scored": 70}
    }
    assert report["sample"]["n"] == 1200
    assert any("cardfraud-previous" in note for note in outcome.report.notes)


def test_refused_events_fail_the_run_and_its_retry_sends_them(baseline: DriftBaseline) -> None:
    n = 400
    ports = Ports(
        FakeReader(window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)}))
    )
    ports.events.fail = True

    with pytest.raises(RetryableError, match="2 of 2 drift events"):
        run_check(ports)
    ports.events.fail = False
    retried = run_check(ports, now=END + timedelta(minutes=2))

    assert retried.trigger == "sent"
    assert len(ports.events.of_type(RETRAINING_REQUESTED)) == 1
    assert len(ports.events.of_type(DRIFT_DETECTED)) == 1


# ---------------------------------------------------------------- the trigger, effectively once


def drifted_ports(baseline: DriftBaseline, n: int = 400) -> Ports:
    return Ports(
        FakeReader(window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)}))
    )


def trigger_ids(ports: Ports, detail_type: str) -> list[str]:
    return [detail["trigger_id"] for detail in ports.events.of_type(detail_type)]


def test_regression_a_a_death_between_claim_and_put_events_is_sent_by_the_next_run(
    baseline: DriftBaseline,
) -> None:
    ports = drifted_ports(baseline)
    trigger = f"{baseline.model_version}/{DAY_WINDOW.window_id}"

    with pytest.raises(Crash):
        run_check(ports, fault=("cooldown.claim", "crash"))  # claimed, then died
    assert ports.events.calls == []
    # the window's next run, an hour later (within the cooldown): a late retry, or a re-run
    again = run_check(ports, now=END + timedelta(hours=1))

    assert again.trigger == "sent"
    assert (
        trigger_ids(ports, DRIFT_DETECTED) == trigger_ids(ports, RETRAINING_REQUESTED) == [trigger]
    )


def test_a_dead_claim_blocks_other_windows_for_the_lease_only(baseline: DriftBaseline) -> None:
    ports = drifted_ports(baseline)
    with pytest.raises(Crash):
        run_check(ports, fault=("cooldown.claim", "crash"))

    def shifted(minutes: int) -> DriftWindow:
        return DriftWindow(
            DAY_WINDOW.start + timedelta(minutes=minutes), END + timedelta(minutes=minutes)
        )

    soon = run_check(ports, window=shifted(10), now=END + timedelta(minutes=10))
    next_hour = run_check(ports, window=shifted(60), now=END + timedelta(hours=1))

    assert soon.trigger == "in_flight" and soon.sent == ()
    assert next_hour.trigger == "sent"  # the dead claim is taken over by the run's own trigger
    assert trigger_ids(ports, RETRAINING_REQUESTED) == [
        f"{baseline.model_version}/{shifted(60).window_id}"
    ]


def test_regression_b_a_lost_put_events_response_is_re_sent_with_the_same_trigger_id(
    baseline: DriftBaseline,
) -> None:
    ports = drifted_ports(baseline)
    trigger = f"{baseline.model_version}/{DAY_WINDOW.window_id}"

    with pytest.raises(RetryableError, match="response was lost"):
        run_check(ports, fault=("events.put_events", "lost"))
    retry = run_check(ports, now=END + timedelta(minutes=1))
    rerun = run_check(ports, now=END + timedelta(minutes=3))

    assert (retry.trigger, retry.sent) == ("sent", TRIGGER_EVENTS)
    assert (rerun.trigger, rerun.sent) == ("sent", ())
    assert ports.events.calls == [list(TRIGGER_EVENTS)] * 2
    assert (
        trigger_ids(ports, DRIFT_DETECTED)
        == trigger_ids(ports, RETRAINING_REQUESTED)
        == [trigger] * 2
    )


# A run's PutEvents outcome is unknown to its retry after a lost response or a death right
# after the call, and after a failed write of the outcome (the retry reads what was stored).
UNKNOWN_OUTCOME = {("events.put_events", "lost"), ("events.put_events", "crash")}
UNRECORDED_OUTCOME = UNKNOWN_OUTCOME | {("cooldown.record", "fail")}


@pytest.mark.parametrize("kind", ["fail", "lost", "crash"])
@pytest.mark.parametrize("call", PORT_CALLS)
def test_regression_b_only_an_unknown_outcome_sends_a_second_time(
    baseline: DriftBaseline, call: str, kind: Fault
) -> None:
    ports = drifted_ports(baseline)

    with pytest.raises((RetryableError, Crash)):
        run_check(ports, fault=(call, kind))
    retry = run_check(ports, now=END + timedelta(minutes=1))

    sends = 2 if (call, kind) in UNRECORDED_OUTCOME else 1
    assert retry.trigger == "sent"
    for detail_type in TRIGGER_EVENTS:
        assert (
            trigger_ids(ports, detail_type)
            == [f"{baseline.model_version}/{DAY_WINDOW.window_id}"] * sends
        )


def test_regression_c_after_a_partial_failure_the_retry_sends_only_the_refused_entry(
    baseline: DriftBaseline,
) -> None:
    ports = drifted_ports(baseline)
    ports.events.refuse = {RETRAINING_REQUESTED}

    with pytest.raises(RetryableError, match="1 of 2 drift events"):
        run_check(ports)
    ports.events.refuse = set()
    retry = run_check(ports, now=END + timedelta(minutes=1))

    assert ports.events.calls == [[DRIFT_DETECTED, RETRAINING_REQUESTED], [RETRAINING_REQUESTED]]
    assert (retry.trigger, retry.sent) == ("sent", (RETRAINING_REQUESTED,))
    assert len(trigger_ids(ports, DRIFT_DETECTED)) == len(trigger_ids(ports, RETRAINING_REQUESTED))
    assert len(trigger_ids(ports, DRIFT_DETECTED)) == 1


def test_regression_d_a_rerun_of_a_sent_window_reports_sent_and_sends_nothing(
    baseline: DriftBaseline,
) -> None:
    ports = drifted_ports(baseline)

    first = run_check(ports)
    rerun = run_check(ports, now=END + timedelta(minutes=5))
    after_the_cooldown = run_check(ports, now=END + timedelta(hours=30))

    assert [first.trigger, rerun.trigger, after_the_cooldown.trigger] == ["sent"] * 3
    assert [first.sent, rerun.sent, after_the_cooldown.sent] == [TRIGGER_EVENTS, (), ()]
    (item,) = ports.monitoring.items.values()
    assert item["retraining"] == "sent"
    assert item["trigger_id"] == f"{baseline.model_version}/{DAY_WINDOW.window_id}"
    assert len(ports.events.entries) == 2


def test_a_picture_that_cannot_be_drawn_leaves_a_note_not_a_failure(
    baseline: DriftBaseline,
) -> None:
    ports = Ports(FakeReader(window_items(baseline)))

    def broken(_: Any) -> bytes:
        raise ImportError("No module named 'matplotlib'")

    outcome = check_drift(DAY_WINDOW, baseline, ports.wired(), POLICY, END, draw=broken)

    report = ports.reports.json(report_keys(DAY_WINDOW)[0])
    assert outcome.plot_uri is None and report["plot_uri"] is None
    assert "no picture: ImportError: No module named 'matplotlib'" in report["notes"]
    assert report["status"] == "ok"


def test_a_short_window_warns_about_the_daily_rhythm(baseline: DriftBaseline) -> None:
    ports = Ports(FakeReader([]))

    outcome = run_check(ports, window=DriftWindow(END - timedelta(hours=1), END))

    assert any("shorter than a day" in note for note in outcome.report.notes)


# ---------------------------------------------------------------- property: runs with faults

POOL = tuple(
    DriftWindow(DAY_WINDOW.start + timedelta(hours=k), END + timedelta(hours=k)) for k in range(4)
)
PROPERTY_COOLDOWN = timedelta(hours=5.5)  # runs are whole hours apart: never at its edge
RETRY_AFTER = timedelta(minutes=2)  # between the attempts of a run; the lease is 20 minutes


class PoolReader:
    """The drifted items for the drifted windows of POOL, baseline-like ones for the others."""

    def __init__(self, baseline: DriftBaseline, drifted: set[int]):
        n = 400
        self.drifted = {POOL[i].recorded_bounds[0] for i in drifted}
        self.shifted = window_items(
            baseline, n, shifted={"amount_log": drifted_amount(baseline, n)}
        )
        self.like_baseline = window_items(baseline, n)

    def read(self, window_keys: Sequence[str], start: str, end: str) -> list[dict[str, Any]]:
        return list(self.shifted if start in self.drifted else self.like_baseline)


# One attempt's fault: the port call it hits (past the run's calls: none), how, and the detail
# types EventBridge refuses in that attempt.
attempt_faults = st.tuples(
    st.integers(0, len(PORT_CALLS)),
    st.sampled_from(["fail", "lost", "crash"]),
    st.frozensets(st.sampled_from(TRIGGER_EVENTS)),
)
runs = st.lists(
    st.tuples(
        st.integers(1, 8),  # hours after the previous run
        st.integers(0, len(POOL) - 1),  # its window
        st.lists(attempt_faults, max_size=3),  # faulty attempts, then a clean one...
        st.sampled_from([False, False, False, True]),  # ...unless the run is abandoned
    ),
    min_size=1,
    max_size=8,
)


@dataclass
class RunLog:
    start: datetime
    trigger_id: str
    drifted: bool
    outcome: DriftCheckOutcome | None = None  # None: every attempt failed (abandoned)
    deliveries: list[tuple[str, str, datetime]] = field(default_factory=list)


Plan = list[tuple[int, int, list[tuple[int, Fault, frozenset[str]]], bool]]


def play(
    baseline: DriftBaseline, drifted: set[int], plan: Plan
) -> tuple[list[RunLog], Counter[str], list[tuple[str, datetime]]]:
    """The runs of `plan`, each attempt with its fault; the runs' logs, the attempts per trigger
    id whose PutEvents outcome went unstored, and the triggers the cooldown committed."""
    ports = Ports(PoolReader(baseline, drifted))  # type: ignore[arg-type]
    policy = DriftCheckPolicy(THRESHOLDS, PROPERTY_COOLDOWN / timedelta(hours=1), 90)
    unrecorded: Counter[str] = Counter()
    logs: list[RunLog] = []
    start = END
    for hours, window_index, faults, abandoned in plan:
        start += timedelta(hours=hours)
        window = POOL[window_index]
        log = RunLog(start, f"{baseline.model_version}/{window.window_id}", window_index in drifted)
        logs.append(log)
        attempts = [*faults, None] if not abandoned or not faults else faults
        for attempt, fault in enumerate(attempts):
            now = start + attempt * RETRY_AFTER
            at, kind, refused = fault or (None, "fail", frozenset())
            faulty = FaultyPorts(ports.wired(), at, kind)
            ports.events.refuse = set(refused)
            sent_before = len(ports.events.entries)
            with contextlib.suppress(RetryableError, Crash):
                log.outcome = check_drift(window, baseline, faulty.ports, policy, now)
            log.deliveries += [
                (json.loads(e["Detail"])["trigger_id"], e["DetailType"], now)
                for e in ports.events.entries[sent_before:]
            ]
            unrecorded[log.trigger_id] += any(made in UNRECORDED_OUTCOME for made in faulty.made)
            if log.outcome is not None:
                break
    return logs, unrecorded, ports.cooldown.commits


def expected_trigger(log: RunLog, commits: list[tuple[str, datetime]]) -> str:
    before = [(trigger, when) for trigger, when in commits if when < log.start]
    if not log.drifted:
        return "not_drift"
    if any(trigger == log.trigger_id for trigger, _ in before):
        return "sent"  # a re-run of a window whose trigger completed: nothing to send
    if any(log.start - when <= PROPERTY_COOLDOWN for _, when in before):
        return "cooldown"
    return "send"


@settings(max_examples=200, deadline=None)
@given(drifted=st.sets(st.integers(0, len(POOL) - 1), min_size=1), plan=runs)
def test_faulty_runs_deliver_each_trigger_at_least_once_and_twice_only_when_unknown(
    baseline: DriftBaseline, drifted: set[int], plan: Plan
) -> None:
    logs, unrecorded, commits = play(baseline, drifted, plan)

    deliveries = [d for log in logs for d in log.deliveries]
    # every run that ended on a drifted window outside the cooldown of a completed trigger
    # has its trigger delivered by then; a run inside it, or on another window, sent nothing
    for i, log in enumerate(logs):
        if log.outcome is None:
            continue  # abandoned: its retries ran out
        expected = expected_trigger(log, commits)
        if expected == "send":
            so_far = {
                kind
                for earlier in logs[: i + 1]
                for t, kind, _ in earlier.deliveries
                if t == log.trigger_id
            }
            assert log.outcome.trigger == "sent"
            assert so_far >= set(TRIGGER_EVENTS)
        else:
            assert (log.outcome.trigger, log.deliveries) == (expected, [])
    # a detail type goes out twice only after an attempt whose PutEvents outcome went unstored
    sends = Counter((trigger, kind) for trigger, kind, _ in deliveries)
    for (trigger, _), count in sends.items():
        assert count <= 1 + unrecorded[trigger], (trigger, count, unrecorded)
    # a trigger commits once every detail type went out; nothing is sent within its cooldown
    for trigger, when in commits:
        out = {kind for t, kind, at in deliveries if t == trigger and at <= when}
        assert out == set(TRIGGER_EVENTS)
        for t, _, at in deliveries:
            assert not (t != trigger and when < at <= when + PROPERTY_COOLDOWN)
            assert not (t == trigger and at > when)
