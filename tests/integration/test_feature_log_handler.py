"""FeatureLogFunction's handler against moto: PredictionsTable's stream as Lambda delivers it, the
feature records read from FeaturesTable, the log written to S3 once (If-None-Match)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from embedded.dynamodb_streams import DynamoStreamAsKinesis, dynamodb_event
from streamscore.aws.dynamodb import serialize
from streamscore.core.settings import load_settings
from streamscore.featurelog.rows import decode
from streamscore.featurelog.settings import FeatureLogSettings
from support.aws_stack import LocalStack
from support.handler_output import emitted_metrics
from support.lambda_runtime import FakeLambdaContext
from support.wiring import Wired, moto_clients

REGION = "us-east-1"


@pytest.fixture
def app(load_handler: Any, local_stack: LocalStack) -> Wired:
    environment = local_stack.function_environment("FeatureLogFunction")
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=environment["ARTIFACTS_BUCKET"])
    module = load_handler("streamscore.handlers.feature_log", environment)
    settings = load_settings(FeatureLogSettings, environment)
    return Wired(module, settings, moto_clients("dynamodb", "s3"))


def scored(local_stack: LocalStack, n: int, features: bool = True) -> None:
    """What preprocess and score write for transaction `n`."""
    tid = f"txn-{n}"
    if features:
        local_stack.dynamodb.put_item(
            TableName=local_stack.resource_name("FeaturesTable"),
            Item=serialize(
                {
                    "transaction_id": tid,
                    "feature_schema": "card-v1",
                    "features": {"amount_log": 2.5 + n, "is_night": 1.0},
                    "card_age_s": 3600.0 * n,
                    "event_time": "2026-03-07T09:00:00+00:00",
                }
            ),
        )
    local_stack.dynamodb.put_item(
        TableName=local_stack.resource_name("PredictionsTable"),
        Item=serialize(
            {
                "transaction_id": tid,
                "score": 0.5,
                "decision": "decline",
                "model_version": "cardfraud-a",
                "event_time": "2026-03-07T09:00:00+00:00",
                "scored_at": "2026-03-07T09:00:01.250Z",
                "features_record_id": f"f#{n}",
            }
        ),
    )


def stream_event(local_stack: LocalStack) -> dict[str, Any]:
    """Every PredictionsTable stream record, in the event Lambda sends."""
    arn = local_stack.dynamodb.describe_table(
        TableName=local_stack.resource_name("PredictionsTable")
    )["Table"]["LatestStreamArn"]
    streams = DynamoStreamAsKinesis(boto3.client("dynamodbstreams", region_name=REGION))
    (shard,) = streams.list_shards(StreamARN=arn)["Shards"]
    iterator = streams.get_shard_iterator(
        StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    return dynamodb_event(records, arn, REGION)


def logged(app: Wired) -> dict[str, list[dict[str, Any]]]:
    s3 = app.clients.s3
    bucket = app.settings.artifacts_bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: decode(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys}


def test_first_writes_are_logged_once_with_their_features(
    app: Wired, local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: two scored transactions, one re-scored (a MODIFY), one without a feature record
    for n in (1, 2, 3):
        scored(local_stack, n, features=n != 3)
    local_stack.dynamodb.update_item(
        TableName=local_stack.resource_name("PredictionsTable"),
        Key={"transaction_id": {"S": "txn-1"}},
        UpdateExpression="SET model_version = :v",
        ExpressionAttributeValues={":v": {"S": "cardfraud-b"}},
    )
    event = stream_event(local_stack)
    assert [r["eventName"] for r in event["Records"]] == ["INSERT"] * 3 + ["MODIFY"]

    # when: delivered, then delivered again (a retry of the same batch)
    first = app.lambda_handler(event, FakeLambdaContext())
    again = app.lambda_handler(event, FakeLambdaContext())

    # then
    assert first == again == {"batchItemFailures": []}
    ((key, rows),) = logged(app).items()
    assert key.startswith("feature-log/date=2026-03-07/")
    assert [(r["transaction_id"], r["model_version"]) for r in rows] == [
        ("txn-1", "cardfraud-a"),
        ("txn-2", "cardfraud-a"),
        ("txn-3", "cardfraud-a"),
    ]
    assert rows[1]["features"] == {"amount_log": 4.5, "is_night": 1.0}
    assert rows[1]["card_age_s"] == 7200.0
    assert rows[2]["features"] is None and rows[2]["missing"] == "features_not_found"
    metrics = emitted_metrics(capsys.readouterr().out)
    assert (metrics["RowsLogged"], metrics["RowsAlreadyLogged"]) == (3, 3)
    assert (metrics["RecordsIn"], metrics["FeaturesMissing"], metrics["RecordsFailed"]) == (8, 2, 0)
