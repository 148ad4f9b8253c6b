"""The promotion check on DriftCheckFunction against moto: the registry's pointer in the template's
MonitoringTable, shadow count items as scoring and labels leave them, its events on the bus.

It promotes a challenger as good as the champion, rejects a worse one, only recommends in Manual
mode, waits while evidence is short, and, whatever call fails or whenever the run dies, changes
the pointer once per decision and puts that decision's event until EventBridge accepted it, with
one decision id.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamscore.aws.registry import DynamoModelPointer, S3ModelVersions
from streamscore.core.errors import RetryableError
from streamscore.core.items import to_item_value
from streamscore.core.monitoring import (
    MONITORING_SOURCE,
    QUALITY,
    SHADOW,
    CountKey,
    Counts,
    shadow_counts,
    window_key,
)
from streamscore.core.quality import paired_label_attributes
from streamscore.core.registry import Pointer
from streamscore.core.times import utc_iso_ms
from streamscore.promotion.check import PromotionPorts
from support.aws_stack import REGION, LocalStack
from support.lambda_runtime import FakeLambdaContext
from support.wiring import Wired, wire

ARTIFACTS = Path(__file__).resolve().parents[2] / "models" / "artifacts"
BUCKET = "streamscore-artifacts-local"
BUS = "streamscore-local"
CHAMPION, CHALLENGER = "champion-v1", "challenger-v2"
NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
NAMED = NOW - timedelta(days=8)
DECISION_TYPES = [
    "ModelPromoted",
    "ChallengerRejected",
    "PromotionRecommended",
    "RejectionRecommended",
]
_serializer = TypeSerializer()


class Stack:
    def __init__(self, local: LocalStack):
        self.local = local
        self.table = local.tables["MonitoringTable"]
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue = self.sqs.create_queue(QueueName="decisions")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        events = boto3.client("events", region_name=REGION)
        events.create_event_bus(Name=BUS)
        pattern = {"source": [MONITORING_SOURCE], "detail-type": DECISION_TYPES}
        events.put_rule(Name="decisions", EventBusName=BUS, EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule="decisions",
            EventBusName=BUS,
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.pointer = DynamoModelPointer(local.dynamodb, self.table)

    def reset(self) -> None:
        """No pointer and no decision event (between examples; count items are put again)."""
        self.local.dynamodb.delete_item(
            TableName=self.table, Key={"pk": {"S": "MODEL"}, "sk": {"S": "POINTER"}}
        )
        self.decisions()

    def name_challenger(self) -> Pointer:
        pointer = Pointer().with_champion(CHAMPION).with_challenger(CHALLENGER, utc_iso_ms(NAMED))
        self.pointer.write(pointer, 0)
        return self.pointer.read(consistent=True)

    def put(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            self.local.dynamodb.put_item(
                TableName=self.table,
                Item={k: dict(_serializer.serialize(v)) for k, v in to_item_value(item).items()},
            )

    def decisions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])


def _item(kind: str, hour: datetime, counts: Counts) -> dict[str, Any]:
    key = CountKey(kind, CHALLENGER, f"{hour:%Y-%m-%dT%H}", "s/shardId-0", paired_with=CHAMPION)
    return {
        "pk": key.pk,
        "sk": "COUNT",
        "kind": kind,
        "model_version": CHALLENGER,
        "paired_with": CHAMPION,
        "hour": key.hour,
        "shard_id": key.shard_id,
        "window_key": window_key(key.hour),
        "recorded_at": f"{key.hour}:00:00.000+00:00",
    } | counts.attributes()


def shadow_hours(
    frauds: int, legit: int, challenger_recall: float, days: int = 7, seed: int = 0
) -> list[dict[str, Any]]:
    """`days` of shadow scoring after NAMED: per day, frauds and legit both models scored and
    labels came back for (the champion declines 85 % of frauds, the challenger mostly agrees,
    with its own recall), and unlabelled approvals both scored."""
    rnd = random.Random(seed)
    items = []
    for day in range(days):
        hour = NAMED + timedelta(days=day, hours=1)
        shadow, paired = Counts(), Counts()
        for fraud, n in ((True, frauds // days), (False, legit // days)):
            for _ in range(n):
                mine = "decline" if fraud and rnd.random() < 0.85 else "review"
                theirs = mine
                if fraud and rnd.random() < 0.3:
                    theirs = "decline" if rnd.random() < challenger_recall else "approve"
                shadow.add(shadow_counts(theirs, [], None, mine, (0, 0)))
                paired.n += 1
                paired.quality.update(paired_label_attributes(fraud, (mine, 0.5), (theirs, 0.5)))
        for _ in range(400):
            shadow.add(shadow_counts("approve", [], None, "approve", (0, 0)))
        items += [_item(SHADOW, hour, shadow), _item(QUALITY, hour, paired)]
    return items


@pytest.fixture
def stack(local_stack: LocalStack) -> Stack:
    return Stack(local_stack)


@pytest.fixture
def make_handler(load_handler: Any, stack: Stack) -> Callable[..., Wired]:
    def make(**overrides: str) -> Wired:
        environment = stack.local.function_environment(
            "DriftCheckFunction",
            {"ARTIFACTS_BUCKET": BUCKET, "EVENT_BUS_NAME": BUS, "MODEL_DIR": str(ARTIFACTS)}
            | overrides,
        )
        wired = wire(load_handler("streamscore.handlers.drift_check", environment), environment)
        wired.rehandle(clock=lambda: NOW)
        return wired

    return make


def check(wired: Wired) -> dict[str, Any]:
    return dict(wired.lambda_handler({"check": "promotion"}, FakeLambdaContext()))


def test_an_equal_challenger_is_promoted_once_and_said_once(
    stack: Stack, make_handler: Callable[..., Wired]
) -> None:
    stack.name_challenger()
    stack.put(shadow_hours(frauds=2800, legit=1400, challenger_recall=0.85))
    wired = make_handler()

    first, again = check(wired), check(wired)

    assert first["status"] == "decided", first["why"]
    assert first["verdict"] == "promote"
    assert again["status"] == "no_challenger"
    pointer = stack.pointer.read(consistent=True)
    assert (pointer.champion, pointer.challenger) == (CHALLENGER, None)
    assert pointer.previous == (CHAMPION,)
    assert pointer.decision is not None
    assert pointer.decision["events_sent"] is True
    events = stack.decisions()
    assert [e["detail-type"] for e in events] == ["ModelPromoted"]
    assert events[0]["detail"]["decision_id"] == f"{CHALLENGER}@{CHAMPION}/r2"
    assert events[0]["detail"]["figures"]["frauds"] >= 2700


def test_a_worse_challenger_is_rejected_and_the_champion_stays(
    stack: Stack, make_handler: Callable[..., Wired]
) -> None:
    stack.name_challenger()
    stack.put(shadow_hours(frauds=2800, legit=1400, challenger_recall=0.3))

    outcome = check(make_handler())

    assert outcome["verdict"] == "reject"
    assert "worse beyond tolerance" in outcome["why"]
    pointer = stack.pointer.read(consistent=True)
    assert (pointer.champion, pointer.challenger) == (CHAMPION, None)
    assert [e["detail-type"] for e in stack.decisions()] == ["ChallengerRejected"]


def publish_challenger(decline_share: float) -> None:
    """CHALLENGER in the registry: the shipped files under its name, its card expecting it to
    decline `decline_share` of transactions."""
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    baseline = json.loads((ARTIFACTS / "baseline.json").read_text())
    card["model_version"] = baseline["model_version"] = CHALLENGER
    card["metrics"]["test"]["at_thresholds"]["decline"]["flagged_share"] = decline_share
    files = {
        "model.onnx": (ARTIFACTS / "model.onnx").read_bytes(),
        "model_card.json": json.dumps(card).encode(),
        "baseline.json": json.dumps(baseline).encode(),
    }
    S3ModelVersions(boto3.client("s3", region_name=REGION), BUCKET).publish(CHALLENGER, files)


def wave_hours() -> list[dict[str, Any]]:
    """Shadow hours of an equal challenger that also declines 2,100 transactions the champion
    approves (a fraud wave the champion misses): 1.9 times the champion's declines."""
    extra = Counts()
    for _ in range(300):
        extra.add(shadow_counts("decline", [], None, "approve", (0, 0)))
    items = shadow_hours(frauds=2800, legit=1400, challenger_recall=0.85)
    for day in range(7):
        hour = NAMED + timedelta(days=day, hours=2)
        items.append(_item(SHADOW, hour, extra))
    return items


@pytest.mark.parametrize(("card_share", "verdict"), [(0.6, "promote"), (0.3, "reject")])
def test_declines_beyond_the_champions_are_judged_by_the_challengers_card(
    stack: Stack, make_handler: Callable[..., Wired], card_share: float, verdict: str
) -> None:
    publish_challenger(card_share)
    stack.name_challenger()
    stack.put(wave_hours())

    outcome = check(make_handler())

    figures = outcome["figures"]
    assert figures["decline_ratio"] > 1.5
    assert figures["challenger_card_decline_share"] == pytest.approx(card_share)
    assert outcome["verdict"] == verdict, outcome["why"]
    share = figures["challenger_decline_share"]
    assert share == figures["challenger_declines"] / figures["scored_in_shadow"]
    assert 1.25 * 0.3 < share < 1.25 * 0.6  # about half the scored: the card decides


def test_manual_mode_recommends_once_and_changes_nothing(
    stack: Stack, make_handler: Callable[..., Wired]
) -> None:
    named = stack.name_challenger()
    stack.put(shadow_hours(frauds=2800, legit=1400, challenger_recall=0.85))
    wired = make_handler(PROMOTION_MODE="Manual")

    first, again = check(wired), check(wired)

    assert first["status"] == "decided"
    assert again["status"] == "decided_before"
    pointer = stack.pointer.read(consistent=True)
    assert (pointer.champion, pointer.challenger) == (named.champion, named.challenger)
    assert [e["detail-type"] for e in stack.decisions()] == ["PromotionRecommended"]


def test_short_evidence_waits_and_writes_nothing(
    stack: Stack, make_handler: Callable[..., Wired]
) -> None:
    named = stack.name_challenger()
    stack.put(shadow_hours(frauds=140, legit=700, challenger_recall=0.85))

    outcome = check(make_handler())

    assert outcome["status"] == "wait"
    assert "840 of 1000 labelled" in outcome["why"]
    assert stack.pointer.read(consistent=True) == named
    assert stack.decisions() == []


class Crash(BaseException):
    """The run dies (no `except Exception` catches it)."""


class FaultyPort:
    """One port whose `at`-th call (counted over every port) fails before or after it acts."""

    def __init__(self, target: Any, calls: list[str], at: int, after: bool):
        self.target, self.calls, self.at, self.after = target, calls, at, after

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.target, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            hit = len(self.calls) == self.at
            self.calls.append(name)
            if hit and not self.after:
                raise RetryableError(f"{name} failed")
            result = method(*args, **kwargs)
            if hit:
                raise Crash(f"died after {name}")
            return result

        return call


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(at=st.integers(0, 6), after=st.booleans(), verdict=st.sampled_from(["promote", "reject"]))
def test_any_fault_changes_the_pointer_once_and_says_it_with_one_id(
    stack: Stack, make_handler: Callable[..., Wired], at: int, after: bool, verdict: str
) -> None:
    stack.reset()
    stack.name_challenger()
    recall = 0.85 if verdict == "promote" else 0.3
    stack.put(shadow_hours(frauds=2800, legit=1400, challenger_recall=recall))
    wired = make_handler()
    calls: list[str] = []
    promotion = wired.module.build_promotion(wired.settings, wired.stage, wired.clients)
    ports = promotion.ports
    promotion.ports = PromotionPorts(
        pointer=FaultyPort(ports.pointer, calls, at, after),
        reader=ports.reader,
        events=FaultyPort(ports.events, calls, at, after),
    )
    wired.rehandle(clock=lambda: NOW, promotion=promotion)

    outcomes = []
    for _ in range(4):  # the schedule's next runs
        try:
            outcomes.append(check(wired)["status"])
        except (RetryableError, Crash):
            outcomes.append("failed")

    pointer = stack.pointer.read(consistent=True)
    expected_champion = CHALLENGER if verdict == "promote" else CHAMPION
    assert (pointer.champion, pointer.challenger) == (expected_champion, None), outcomes
    assert pointer.previous.count(CHAMPION) == (verdict == "promote")
    events = stack.decisions()
    assert events, f"no decision event after {outcomes}"
    assert {e["detail"]["decision_id"] for e in events} == {f"{CHALLENGER}@{CHAMPION}/r2"}
    assert {e["detail-type"] for e in events} == {
        "ModelPromoted" if verdict == "promote" else "ChallengerRejected"
    }
    # sent again only when the run died or lost the answer after EventBridge accepted it
    assert len(events) <= 2
    assert pointer.decision is not None
    assert pointer.decision["events_sent"] is True
