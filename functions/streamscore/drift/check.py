"""The drift check of one window: read, compare, report, and trigger retraining on drift.

The retraining trigger. EventBridge PutEvents takes no idempotency token and its
targets get at-least-once delivery, so exactly-once is not on offer. What is: a
drifted window's trigger is never lost, a detail type of it is sent again only when
the function cannot know whether PutEvents took it, and it carries a stable
`trigger_id` (model version / window) that consumers dedupe on. The cooldown item
of the model version is a small state machine, changed only by conditional writes:

- claim: `sending` with our trigger id, unless this id completed before (a re-run
  of its window: "sent", nothing sent), another trigger completed within the
  cooldown ("cooldown"), or another trigger's claim is younger than the lease
  ("in_flight"). A claim of the same id still `sending` is resumed whatever its
  age (a retry, or a run after one that died); an older claim of another id is
  dead (the lease outlives any run) and is taken over by our own trigger.
- send only the detail types not recorded as accepted for this trigger id, then
  record the accepted ones; once all are, the claim becomes `sent` and the
  cooldown starts from then.
- nothing is ever released: after a lost response, a timeout or a crash the
  outcome is unknown, so the claim stays `sending` and the retry sends what is not
  recorded as accepted (also when recording the outcome itself failed); entries
  EventBridge refused (an ErrorCode) are not recorded and the run raises
  RetryableError, so the retry sends only those.

Why not the claim-and-release this replaces: a release runs only in-process, so a
run that died after its claim blocked every trigger for a whole cooldown, and a
release after an exception re-opened the claim even when EventBridge had taken the
events. A lease bounds how long a dead claim blocks (one lease, not one cooldown)
and never lets two live runs send different triggers. Accepted detail types are
kept per trigger id (not per claim) until the trigger completes, so a trigger whose
claim was taken over still sends only what it is missing when its window runs again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from streamscore.core.errors import RetryableError, SystemicError
from streamscore.core.monitoring import MONITORING_SOURCE
from streamscore.core.registry import RegistryError
from streamscore.drift.baseline import DriftBaseline
from streamscore.drift.ports import DriftCheckPorts, ModelBaselines, Trigger
from streamscore.drift.quality import (
    QUALITY,
    QualityPolicy,
    quality_report,
    quality_report_key,
    quality_window,
    sum_quality_items,
)
from streamscore.drift.report import (
    RETRAINING_REQUESTED,
    TRIGGER_EVENTS,
    DriftReport,
    build_report,
    report_item,
    report_keys,
    trigger_detail,
    trigger_id,
)
from streamscore.drift.stats import DriftThresholds
from streamscore.drift.totals import BaselineOf, sum_items
from streamscore.drift.versions import other_versions, shadow_comparisons
from streamscore.drift.window import DriftWindow, resolve_window

# How long a claim in progress keeps other triggers out. Longer than any run (Lambda's
# maximum timeout is 900 s, plus clock skew); shorter than the hourly schedule, so the
# next scheduled run takes over the claim of a run that died.
CLAIM_LEASE_SECONDS = 1200.0


@dataclass(frozen=True)
class DriftCheckPolicy:
    thresholds: DriftThresholds
    cooldown_hours: float
    claim_lease_seconds: float = CLAIM_LEASE_SECONDS


@dataclass(frozen=True)
class DriftCheckOutcome:
    report: DriftReport
    report_uri: str
    plot_uri: str | None
    trigger: Trigger
    items_read: int
    sent: tuple[str, ...] = ()  # the detail types this run put (and EventBridge accepted)


def check_drift(
    window: DriftWindow,
    baseline: DriftBaseline,
    ports: DriftCheckPorts,
    policy: DriftCheckPolicy,
    now: datetime,
    draw: Callable[[DriftReport], bytes] | None = None,
    baseline_of: BaselineOf | None = None,
    notes: list[str] | None = None,
) -> DriftCheckOutcome:
    """Read, compare, store the report (S3 first, then the table item) and trigger retraining on drift.

    Reruns of a window overwrite its report. The trigger is claimed in the cooldown item
    before its events are sent and committed only when EventBridge accepted every one of
    them; a run that fails (or dies) in between leaves the claim for its retry, or after
    the lease for a later run (see the module docstring).
    """
    items = ports.reader.read(window.count_keys(), *window.count_bounds)
    # summed as read: memory grows with hours
    totals = sum_items(items, window, baseline_of or baseline)
    report = build_report(window, baseline, totals, policy.thresholds, now)
    if baseline_of is not None:
        report = dataclasses.replace(
            report,
            others=other_versions(
                window, totals, baseline.model_version, baseline_of, policy.thresholds, now
            ),
            shadow=shadow_comparisons(window, totals, baseline_of, policy.thresholds, now),
        )
    report.notes.extend(notes or ())  # the caller's, and those finding baselines added
    json_key, png_key = report_keys(window)
    report_uri, plot_uri = ports.reports.uri(json_key), None
    if draw is not None:
        try:
            picture = draw(report)
        except Exception as error:  # the picture is a convenience: the verdict must not wait on it
            report.notes.append(f"no picture: {type(error).__name__}: {error}")
        else:
            ports.reports.put(png_key, picture, "image/png")
            plot_uri = ports.reports.uri(png_key)
    body = json.dumps(
        report.to_dict() | {"report_uri": report_uri, "plot_uri": plot_uri},
        separators=(",", ":"),
        allow_nan=False,
    )
    ports.reports.put(json_key, body.encode(), "application/json")
    trigger, sent = _trigger(report, report_uri, plot_uri, ports, policy, now)
    ports.monitoring.put(
        report_item(
            report,
            report_uri,
            plot_uri,
            trigger,
        )
    )
    return DriftCheckOutcome(report, report_uri, plot_uri, trigger, totals.items_read, sent)


def _trigger(
    report: DriftReport,
    report_uri: str,
    plot_uri: str | None,
    ports: DriftCheckPorts,
    policy: DriftCheckPolicy,
    now: datetime,
) -> tuple[Trigger, tuple[str, ...]]:
    """The window's Trigger and the detail types this run sent (send_trigger)."""
    if report.status != "drift":
        return "not_drift", ()
    detail = trigger_detail(report, report_uri, plot_uri) | {"reason": "drift"}
    return send_trigger(
        report.model_version,
        trigger_id(report),
        detail,
        TRIGGER_EVENTS,
        ports,
        policy,
        now,
        "drift",
    )


def send_trigger(
    model_version: str,
    trigger: str,
    detail: Mapping[str, Any],
    events: tuple[str, ...],
    ports: DriftCheckPorts,
    policy: DriftCheckPolicy,
    now: datetime,
    what: str,
) -> tuple[Trigger, tuple[str, ...]]:
    """Claim `trigger` in `model_version`'s cooldown item, put `events` with `detail`, and record
    what EventBridge accepted; the Trigger and the detail types this run sent.

    No exception is caught here: whatever PutEvents raised, its outcome is unknown, so the
    claim stays in progress and the retry sends the entries not recorded as accepted again.
    """
    claim = ports.cooldown.claim(
        model_version, trigger, now, policy.cooldown_hours, policy.claim_lease_seconds
    )
    if claim.state != "ours":
        return claim.state, ()
    body = json.dumps(detail, separators=(",", ":"), allow_nan=False)
    entries = [
        {"Source": MONITORING_SOURCE, "DetailType": detail_type, "Detail": body}
        for detail_type in events
        if detail_type not in claim.accepted
    ]
    failed = set(ports.events.put_events(entries)) if entries else set()
    sent = tuple(e["DetailType"] for i, e in enumerate(entries) if i not in failed)
    accepted = claim.accepted | set(sent)
    complete = accepted >= set(events)
    if sent or complete:
        ports.cooldown.record(claim, accepted, complete, now)
    if not complete:
        raise RetryableError(
            f"{len(failed)} of {len(entries)} {what} events of {claim.trigger_id} were refused; "
            "the retry sends only those"
        )
    return "sent", sent


# draws a quality report's picture: (champion, its figures, its challengers' paired figures, title)
QualityDraw = Callable[[str, dict[str, Any], dict[str, Any], str], bytes]


@dataclass(frozen=True)
class QualityOutcome:
    report: dict[str, Any]
    report_uri: str
    trigger: Trigger
    items_read: int
    sent: tuple[str, ...] = ()
    early: dict[str, Any] | None = None  # the early window's report, when one was checked
    early_uri: str = ""
    plot_uri: str | None = None  # the report's picture, when one was drawn


def check_quality(
    champion: str,
    ports: DriftCheckPorts,
    policy: DriftCheckPolicy,
    quality: QualityPolicy,
    now: datetime,
    window: DriftWindow | None = None,
    draw: QualityDraw | None = None,
) -> QualityOutcome:
    """Read the mature window's count items, store the quality report (and its picture, when
    `draw` is given), and request retraining (reason quality) when the champion's recall at
    decline fell below the threshold; when it did not and `quality.early_days` is set, judge
    the early window the same way.
    The trigger is the drift check's (send_trigger): the same cooldown per model version, a
    stable id (`<version>/quality/<window>`), sent again only on an unknown outcome. `window`
    overrides the matured window (an operator's, or a local run's over its simulated days: the
    caller then vouches that its labels have come back; no early window is read then)."""
    mature = _judge_quality(
        champion, ports, policy, quality, now, window or quality_window(now, quality), draw=draw
    )
    if window is not None or not quality.early_days or mature.trigger != "not_drift":
        return mature
    early = _judge_quality(
        champion,
        ports,
        policy,
        quality,
        now,
        quality_window(now, quality, early=True),
        mature=False,
        draw=draw,
    )
    return replace(
        mature,
        trigger=early.trigger,
        sent=early.sent,
        items_read=mature.items_read + early.items_read,
        early=early.report,
        early_uri=early.report_uri,
    )


def _judge_quality(
    champion: str,
    ports: DriftCheckPorts,
    policy: DriftCheckPolicy,
    quality: QualityPolicy,
    now: datetime,
    window: DriftWindow,
    *,
    mature: bool = True,
    draw: QualityDraw | None = None,
) -> QualityOutcome:
    """One window's report stored, its picture beside it, and its retraining request when its
    recall is low."""
    items = ports.reader.read(window.count_keys(), *window.count_bounds)
    sums = sum_quality_items(items, window)
    report = quality_report(window, sums, champion, quality, now, mature=mature)
    key = quality_report_key(window, mature=mature)
    report_uri = ports.reports.uri(key)
    plot_uri = _quality_picture(report, key, ports, draw)
    report |= {"report_uri": report_uri, "plot_uri": plot_uri}
    body = json.dumps(report, separators=(",", ":"), allow_nan=False)
    ports.reports.put(key, body.encode(), "application/json")
    if report["status"] != "low_recall":
        return QualityOutcome(report, report_uri, "not_drift", sums.read, plot_uri=plot_uri)
    figures = report["versions"][champion]
    detail = {
        "trigger_id": f"{champion}/{QUALITY}/{window.window_id}",
        "reason": QUALITY,
        "model_version": champion,
        "report_uri": report_uri,
        "window": report["window"],
        "mature": mature,
        "recall_at_decline": figures["realized"]["recall_at_decline"],
        "recall_threshold": quality.recall_threshold,
        "recall_at_review": figures["realized"]["recall_at_review"],
        "estimated_recall_at_decline": figures["estimated"]["recall_at_decline"],
        "frauds_seen": figures["realized"]["frauds_seen"],
    }
    trigger, sent = send_trigger(
        champion,
        detail["trigger_id"],
        detail,
        (RETRAINING_REQUESTED,),
        ports,
        policy,
        now,
        QUALITY,
    )
    return QualityOutcome(report, report_uri, trigger, sums.read, sent, plot_uri=plot_uri)


def _quality_picture(
    report: dict[str, Any], key: str, ports: DriftCheckPorts, draw: QualityDraw | None
) -> str | None:
    """The champion's figures drawn and stored beside the report (its key, .png); None when
    there is nothing to draw or drawing failed (noted in the report: the verdict does not wait
    on a picture)."""
    champion = report["champion"]
    figures = report["versions"].get(champion)
    if draw is None or figures is None:
        return None
    challengers = {
        pair["challenger"]: pair
        for pair in report["challengers"].values()
        if pair["champion"] == champion
    }
    mature = "" if report["mature"] else ", early: labels still coming back"
    title = (
        f"{report['status'].upper()}  ·  quality of {champion}  ·  {report['window']['start']} "
        f"to {report['window']['end']}{mature}"
    )
    try:
        picture = draw(champion, figures, challengers, title)
    except Exception as error:  # a convenience: the verdict must not wait on it
        report["notes"] = [f"no picture: {type(error).__name__}: {error}"]
        return None
    png_key = key.removesuffix(".json") + ".png"
    ports.reports.put(png_key, picture, "image/png")
    return ports.reports.uri(png_key)


@dataclass(frozen=True)
class DriftChecker:
    """The drift stage wired (see streamscore.handlers.drift_check.build): one call per window.

    With a registry, each run compares the window with the baseline of the pointer's champion
    (the shipped model's when it names none), every other version with its own, and each
    challenger beside its champion (drift/versions.py). A version whose baseline cannot be
    read is counted, not compared, and the report says why; a champion's that cannot be read
    leaves the verdict to the shipped baseline, with a note.
    """

    baseline: DriftBaseline  # the shipped model's
    ports: DriftCheckPorts
    policy: DriftCheckPolicy
    window_minutes: int
    draw: Callable[[DriftReport], bytes] | None = None
    registry: ModelBaselines | None = None
    quality: QualityPolicy | None = None  # the quality check's, when it is configured
    draw_quality: QualityDraw | None = None

    def window(self, event: Mapping[str, Any], now: datetime) -> DriftWindow:
        """The window an invocation's event asks for (InvalidWindowError when it names none)."""
        return resolve_window(event, now, self.window_minutes)

    def check(self, window: DriftWindow, now: datetime) -> DriftCheckOutcome:
        if self.registry is None:
            return check_drift(window, self.baseline, self.ports, self.policy, now, self.draw)
        notes: list[str] = []
        baseline_of = self._baseline_of(self.registry, notes)
        champion = self.registry.champion()  # unreadable: the run fails and is retried
        compared = self.baseline if champion is None else baseline_of(champion)
        if compared is None:
            notes.append(
                f"the champion {champion}'s baseline could not be read: the verdict is against "
                f"the shipped model's ({self.baseline.model_version})"
            )
            compared = self.baseline
        return check_drift(
            window, compared, self.ports, self.policy, now, self.draw, baseline_of, notes
        )

    def check_quality(self, now: datetime, window: DriftWindow | None = None) -> QualityOutcome:
        """The quality check of the registry's champion (the shipped model when none is named)."""
        if self.quality is None:
            raise SystemicError("a quality check was asked for, and none is configured")
        champion = self.registry.champion() if self.registry is not None else None
        version = champion or self.baseline.model_version
        return check_quality(
            version, self.ports, self.policy, self.quality, now, window, self.draw_quality
        )

    def _baseline_of(self, registry: ModelBaselines, notes: list[str]) -> BaselineOf:
        found: dict[str, DriftBaseline | None] = {self.baseline.model_version: self.baseline}

        def baseline_of(version: str) -> DriftBaseline | None:
            if version not in found:
                try:
                    found[version] = registry.baseline(version)
                except RegistryError as error:
                    notes.append(f"the baseline of {version} was refused: {error}")
                    found[version] = None
            return found[version]

        return baseline_of
