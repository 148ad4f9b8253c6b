"""The prediction write condition as DynamoDB evaluates it (moto) against the one rule the
in-memory stores use (scoring/shadow.py creates_prediction), for every kind of stored
prediction and write: written exactly when the rule says so, counts with it."""

from __future__ import annotations

import itertools
from typing import Any

import boto3
import pytest

from streamscore.aws.dynamodb import serialize
from streamscore.aws.facts import DynamoFactWriter
from streamscore.aws.scoring_stores import prediction_condition
from streamscore.core.monitoring import (
    PREDICTIONS,
    SHADOW,
    CountKey,
    Fact,
    prediction_counts,
    shadow_counts,
)
from streamscore.scoring.shadow import creates_prediction
from support.aws_stack import REGION, LocalStack
from support.wiring import quiet_backoff

HOUR = "2026-03-05T12"
SOURCE = "features/shardId-000000000000"

STORED: list[dict[str, Any] | None] = [
    None,
    {"model_version": "champ-1"},
    {"model_version": "champ-2"},
    {"model_version": "champ-2", "shadow_versions": ["chall-1"]},
    {"model_version": "champ-2", "shadow_versions": ["chall-9", "chall-1"]},
    {"model_version": "champ-2", "shadow_versions": ["chall-9"]},
]
WRITES = [("champ-1", None), ("champ-1", "chall-1")]  # (champion, challenger in shadow)


def fact(transaction_id: str, champion: str, challenger: str | None) -> Fact:
    item: dict[str, Any] = {
        "transaction_id": transaction_id,
        "model_version": champion,
        "scored_at": "this write",
    }
    one = Fact(
        item=item,
        key=transaction_id,
        count_key=CountKey(PREDICTIONS, champion, HOUR, SOURCE),
        counts=prediction_counts("approve", [0]),
    )
    if challenger is not None:
        item |= {"challenger_version": challenger, "shadow_versions": [challenger]}
        key = CountKey(SHADOW, challenger, HOUR, SOURCE, paired_with=champion)
        one.also = ((key, shadow_counts("review", [0], None, "approve", (0, 1))),)
    return one


@pytest.mark.parametrize(("stored", "write"), list(itertools.product(STORED, WRITES)))
def test_dynamodb_writes_a_prediction_exactly_when_the_rule_says(
    local_stack: LocalStack, stored: dict[str, Any] | None, write: tuple[str, str | None]
) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    table = local_stack.resource_name("PredictionsTable")
    counts_table = local_stack.resource_name("MonitoringTable")
    if stored is not None:
        client.put_item(TableName=table, Item=serialize(stored | {"transaction_id": "t1"}))
    one = fact("t1", *write)
    expected = creates_prediction(stored, one.item, bool(one.also))
    writer = DynamoFactWriter(
        client, table, "transaction_id", counts_table, prediction_condition, quiet_backoff()
    )

    done, failed = writer.create([one], 0)

    assert (done, failed) == ({"t1"}, set())  # written or found: never a failure
    after = local_stack.items_by("PredictionsTable", "transaction_id")["t1"]
    assert (after.get("scored_at") == "this write") is expected
    counted = {item["kind"]: int(item["n"]) for item in local_stack.scan("MonitoringTable")}
    assert counted == (({PREDICTIONS: 1} | ({SHADOW: 1} if one.also else {})) if expected else {})
