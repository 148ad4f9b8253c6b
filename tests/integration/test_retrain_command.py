"""`python -m models retrain` against moto: it reads the feature log and LabelsTable, refuses
before the waiting rule allows, and reports (S3 and --out) what it found."""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from lifecycle.registry import Registry
from lifecycle.retrain_command import NOT_YET, add_arguments, publish_candidate, run_retrain
from streamscore.aws.dynamodb import serialize
from streamscore.featurelog.rows import encode, object_key
from streamscore.preprocess.features import FEATURE_NAMES
from support.aws_stack import LocalStack

REGION = "us-east-1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "models" / "artifacts"
SCORED = datetime(2026, 6, 1, tzinfo=UTC)


def arguments(out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--out", str(out), "--cutoff", "2026-08-01T00:00:00Z", *extra])


@pytest.fixture
def stack(local_stack: LocalStack) -> dict[str, str]:
    names = {
        "bucket": local_stack.local_name("ArtifactsBucket"),
        "table": local_stack.resource_name("MonitoringTable"),
        "labels": local_stack.resource_name("LabelsTable"),
    }
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=names["bucket"])
    rows = [
        {
            "transaction_id": f"t-{n}",
            "event_time": (SCORED + timedelta(hours=n)).isoformat(),
            "scored_at": (SCORED + timedelta(hours=n, seconds=1)).isoformat(),
            "decision": "review" if n % 10 == 0 else "approve",
            "score": 0.01,
            "features": dict.fromkeys(FEATURE_NAMES, 0.5),
            "card_age_s": 86_400.0,
        }
        for n in range(40)
    ]
    key = object_key(SCORED.date().isoformat(), "1", ["e"])
    s3.put_object(Bucket=names["bucket"], Key=key, Body=encode(rows))
    local_stack.dynamodb.put_item(
        TableName=names["labels"],
        Item=serialize(
            {
                "transaction_id": "t-10",
                "label": "fraud",
                "label_key": "2026-06-03T00:00:00.000Z#1#review",
                "received_at": "2026-06-03T00:00:01+00:00",
            }
        ),
    )
    return names


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]


def test_too_few_frauds_are_reported_not_trained_on(stack: dict[str, str], tmp_path: Path) -> None:
    said: list[str] = []

    status, report = run_retrain(arguments(tmp_path), client, stack, {}, said.append)

    assert status == 0
    assert report["verdict"] == "insufficient_data"
    assert report["feature_log"] == {
        "objects": 1,
        "rows": 40,
        "transactions": 40,
        "without_features": 0,
    }
    assert report["rows"]["kept_as"] == {"implicit_negative": 36, "labelled": 1}
    assert report["rows"]["left_out"] == {"unknown_review": 3}
    (written,) = [p for p in tmp_path.iterdir() if p.name.endswith("report.json")]
    stored = client("s3").get_object(
        Bucket=stack["bucket"],
        Key=f"reports/retrain/{written.name.split('-report')[0]}/report.json",
    )
    assert json.loads(stored["Body"].read()) == json.loads(written.read_text())
    assert any("verdict insufficient_data" in line for line in said)


def test_a_retrain_right_after_a_drift_trigger_is_refused_with_the_date_to_come_back(
    stack: dict[str, str], tmp_path: Path
) -> None:
    said: list[str] = []
    args = arguments(tmp_path, "--trigger-time", "2026-07-20T00:00:00Z")

    status, report = run_retrain(args, client, stack, {}, said.append)

    assert status == NOT_YET
    assert report["verdict"] == "not_yet"
    assert "retrain at or after 2026-09-07" in said[0]
    assert list(tmp_path.iterdir()) == []


def test_a_passing_candidate_is_published_as_the_challenger_once(
    stack: dict[str, str], local_stack: LocalStack, tmp_path: Path
) -> None:
    # given: a candidate's directory (the shipped model's files stand for one)
    registry = Registry.of(client("s3"), client("dynamodb"), stack["bucket"], stack["table"])
    candidate = tmp_path / "candidate"
    shutil.copytree(ARTIFACTS, candidate)

    # when: the gate passed it twice (a re-run of the same window), and rejected another
    named = datetime(2026, 9, 7, 12, tzinfo=UTC)
    first = publish_candidate(registry, candidate, "promote", dry_run=False, now=named)
    again = publish_candidate(registry, candidate, "promote", dry_run=False, now=named)
    rejected = publish_candidate(registry, candidate, "reject", dry_run=False, now=named)

    # then: one publication, one pointer change
    assert first["published"] is True
    assert again == {
        "published": False,
        "why": f"{registry.status().challenger} is already the challenger",
    }
    assert rejected["published"] is False
    assert registry.status().revision == first["revision"]
    # its time in shadow counts from the (simulated) cut-off that named it
    assert registry.status().challenger_since == "2026-09-07T12:00:00.000+00:00"


def test_a_challenger_in_shadow_is_not_replaced_by_a_later_retrains_candidate(
    stack: dict[str, str], local_stack: LocalStack, tmp_path: Path
) -> None:
    registry = Registry.of(client("s3"), client("dynamodb"), stack["bucket"], stack["table"])
    first, later = tmp_path / "first", tmp_path / "later"
    shutil.copytree(ARTIFACTS, first)
    shutil.copytree(ARTIFACTS, later)
    card = json.loads((later / "model_card.json").read_text())
    (later / "model_card.json").write_text(json.dumps(card | {"model_version": "cardfraud-later"}))
    named = datetime(2026, 9, 7, 12, tzinfo=UTC)
    publish_candidate(registry, first, "promote", dry_run=False, now=named)

    answer = publish_candidate(
        registry, later, "promote", dry_run=False, now=named + timedelta(days=1)
    )

    assert (
        answer["published"] is False and "the promotion check decides on it first" in answer["why"]
    )
    status = registry.status()
    assert status.challenger == card["model_version"]
    assert status.challenger_since == "2026-09-07T12:00:00.000+00:00"
