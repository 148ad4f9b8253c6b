"""The drift check's unit tests share these: count items as the pipeline writes them, a run of the check, faults.

`hist_item` / `stats_item` build MonitoringTable count items, `window_items` a window of
them; `run_check` runs check_drift over MemoryDriftPorts, optionally through `FaultyPorts`,
which injects one fault (fail, lost, crash) at a chosen port call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from streamscore.core.artifacts import SCORE
from streamscore.core.errors import RetryableError
from streamscore.core.monitoring import (
    MISSING,
    NO_VERSION,
    OUT_OF_RANGE,
    PREDICTIONS,
    QUALITY,
    QUARANTINE,
    CountKey,
    Counts,
    prediction_counts,
    window_key,
)
from streamscore.core.quality import label_attributes
from streamscore.drift.baseline import DriftBaseline, load_baseline
from streamscore.drift.check import DriftCheckPolicy, check_drift
from streamscore.drift.ports import DriftCheckPorts
from streamscore.drift.stats import DriftThresholds
from streamscore.drift.window import DriftWindow
from support.fakes import (
    MemoryDriftPorts,
    MemoryWindowReader,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
EVENTS = ROOT / "events"
END = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
DAY_WINDOW = DriftWindow(END - timedelta(days=1), END)
THRESHOLDS = DriftThresholds()
POLICY = DriftCheckPolicy(thresholds=THRESHOLDS, cooldown_hours=24)

# Faults whose outcome the run cannot know (it may have been delivered), or cannot record.
UNKNOWN_OUTCOME = {("events.put_events", "lost"), ("events.put_events", "crash")}
UNRECORDED_OUTCOME = UNKNOWN_OUTCOME | {("cooldown.record", "fail")}


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


def count_item(
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


def quality_items(
    version: str,
    hour: datetime,
    reviewed: int,
    charged_back: int,
    unlabelled: int,
    declined: int = 0,
) -> list[dict[str, Any]]:
    """One hour's PRED and QUAL count items as scoring and labels leave them: frauds reviewed,
    frauds approved and charged back, approvals nobody labelled, and declines scored 0.9 (their
    truth never comes back)."""
    predicted, labelled = Counts(), Counts()
    rows = [("review", 0.3, True)] * reviewed + [("approve", 0.01, True)] * charged_back
    rows += [("approve", 0.001, False)] * unlabelled + [("decline", 0.9, False)] * declined
    for decision, score, fraud in rows:
        predicted.add(prediction_counts(decision, [], score=score))
        if fraud:  # a decline is never labelled
            labelled.n += 1
            labelled.quality.update(label_attributes(True, decision, score))
    return [
        count_item(PREDICTIONS, version, hour, "features/shardId-0", predicted),
        count_item(QUALITY, version, hour, "labels/shardId-0", labelled),
    ]


def hist_item(
    version: str,
    recorded_at: datetime,
    histograms: Mapping[str, Any],
    n: int,
    shard: str = "1",
) -> dict[str, Any]:
    """The prediction count item of `n` predictions with these histograms (event hour of `recorded_at`)."""
    baseline = load_baseline(ARTIFACTS)
    names = [*baseline.features, SCORE]
    counts = Counts(n=n, decisions=Counter({"approve": n}))
    if baseline.history is not None:  # the cards' ages as in the reference
        shares = expected_counts(baseline.history.reference_shares, n)
        counts.history.update({s: c for s, c in enumerate(shares) if c})
    for index, name in enumerate(names):
        histogram = histograms.get(name)
        if histogram is None:
            continue
        for b, count in enumerate(histogram["counts"]):
            counts.bins[index, b] += count
        counts.bins[index, MISSING] += histogram.get("missing", 0)
        counts.bins[index, OUT_OF_RANGE] += histogram.get("out_of_range", 0)
    return count_item(PREDICTIONS, version, recorded_at, f"shard-{shard}", counts)


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
    return count_item(QUARANTINE, NO_VERSION, recorded_at, f"shard-{shard}", counts)


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


def drifted_amount(baseline: DriftBaseline, n: int) -> list[int]:
    """amount_log with its mass moved into the top three bins."""
    bins = len(baseline.variables["amount_log"].proportions)
    counts = [n // (2 * bins)] * bins
    for i in range(bins - 3, bins):
        counts[i] += (n - sum(counts)) // (bins - i)
    counts[-1] += n - sum(counts)
    return counts


def run_check(
    ports: MemoryDriftPorts,
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
            END - timedelta(hours=(i + 1) * 24 // batches),  # spread over the day
            baseline_histograms(baseline, n_per_batch, shifted),
            n_per_batch,
            str(i),
        )
        for i in range(batches)
    ]


def drifted_ports(baseline: DriftBaseline, n: int = 400) -> MemoryDriftPorts:
    return MemoryDriftPorts(
        MemoryWindowReader(
            window_items(baseline, n, shifted={"amount_log": drifted_amount(baseline, n)})
        )
    )


def trigger_ids(ports: MemoryDriftPorts, detail_type: str) -> list[str]:
    return [detail["trigger_id"] for detail in ports.events.of_type(detail_type)]
