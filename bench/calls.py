"""Part 3: AWS calls, request units and bytes per 1,000 transactions along the whole path, on moto.

Preprocess, score and the drift check run against moto with the template's own tables (and one
provisioned shard per stream, so that batches are full as on a busy shard). Every call the
handlers' clients make is counted per API with botocore's event hooks; the items they write and
read are sized as DynamoDB counts them (bench/model.py) to give write and read request units.
What the handlers print is kept to count log bytes and the custom metrics their EMF creates.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws

from bench.common import (
    AWS_ENV,
    NAMES,
    SINK,
    LambdaContext,
    environment,
    into_sink,
    load_app,
    progress,
)
from bench.model import item_size, kinesis_billed_kb, query_read_units, read_units, write_units
from bench.traffic import SHARD, state_items, transaction_events, window
from embedded.lambda_events import KinesisEntry, kinesis_event, scheduled_event
from embedded.template import parameter_values, stream_definitions, table_definitions

TRANSACTIONS = 1000
TABLE_LOGICAL = {name: logical for logical, name in NAMES.items()}


class Meter:
    """Counts one function's AWS calls per API and what they read, write and send."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.wru: defaultdict[str, float] = defaultdict(float)  # by table logical id
        self.rru: defaultdict[str, float] = defaultdict(float)
        self.item_bytes: dict[str, list[int]] = defaultdict(list)  # written, by table
        self.stream_records: list[int] = []  # bytes of each record put
        self.event_entries = 0
        self.objects_put = 0
        self._consistent: dict[str, bool] = {}
        self._lock = threading.Lock()  # the handlers call from their I/O pools

    def attach(self, *clients: Any) -> None:
        for client in clients:
            events = client.meta.events
            events.register("before-call.*.*", self._count)
            events.register("before-parameter-build.*.*", self._request)
            events.register("after-call.*.*", self._response)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def _written(self, table: str, item: Mapping[str, Any]) -> None:
        size = item_size(item)
        logical = TABLE_LOGICAL[table]
        self.item_bytes[logical].append(size)
        self.wru[logical] += write_units(size)

    def _request(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self._sized_request(model.name, params)

    def _sized_request(self, name: str, params: dict[str, Any]) -> None:
        if name == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    self._written(table, request["PutRequest"]["Item"])
        elif name == "PutItem":
            self._written(params["TableName"], params["Item"])
        elif name == "UpdateItem":
            self.wru[TABLE_LOGICAL[params["TableName"]]] += 1  # a small item
        elif name == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                self._consistent[table] = bool(request.get("ConsistentRead", False))
                # every key is charged, found or not; found ones are resized in _response
                self.rru[TABLE_LOGICAL[table]] += len(request["Keys"]) * read_units(
                    None, self._consistent[table]
                )
        elif name == "PutRecords":
            self.stream_records += [len(r["Data"]) for r in params["Records"]]
        elif name == "PutEvents":
            self.event_entries += len(params["Entries"])
        elif name == "PutObject":
            self.objects_put += 1

    def _response(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self._sized_response(model, parsed)

    def _sized_response(self, model: Any, parsed: dict[str, Any]) -> None:
        if model.name == "BatchGetItem":
            for table, items in parsed.get("Responses", {}).items():
                consistent = self._consistent.get(table, True)
                for item in items:
                    extra = read_units(item_size(item), consistent) - read_units(None, consistent)
                    self.rru[TABLE_LOGICAL[table]] += extra
        elif model.name == "Query":
            # the only Query is the drift check's, on MonitoringTable's WindowIndex
            sizes = [item_size(item) for item in parsed.get("Items", [])]
            self.rru["MonitoringTable"] += query_read_units(sizes)

    def report(self, per: float) -> dict[str, Any]:
        scale = 1000 / per
        return {
            "calls": {k: round(v * scale, 2) for k, v in sorted(self.calls.items())},
            "calls_total": round(sum(self.calls.values()) * scale, 2),
            "wru": {k: round(v * scale, 2) for k, v in sorted(self.wru.items())},
            "rru": {k: round(v * scale, 2) for k, v in sorted(self.rru.items())},
            "stream_records": round(len(self.stream_records) * scale, 2),
            "event_entries": round(self.event_entries * scale, 2),
            "objects_put": round(self.objects_put * scale, 2),
        }


def _metrics(lines: list[str]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Distinct (namespace, metric, dimensions) the EMF blobs create: each is a custom metric."""
    found = set()
    for text in "".join(lines).splitlines():
        try:
            blob = json.loads(text)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"].get("CloudWatchMetrics", []):
            for dimension_set in directive.get("Dimensions", [[]]):
                dims = tuple(sorted((d, str(blob.get(d))) for d in dimension_set))
                for metric in directive.get("Metrics", []):
                    found.add((directive["Namespace"], metric["Name"], dims))
    return found


def _build_stack(template: dict[str, Any]) -> tuple[Any, Any]:
    dynamodb = boto3.client("dynamodb")
    for logical, spec in table_definitions(template).items():
        if logical in NAMES:
            dynamodb.create_table(TableName=NAMES[logical], **spec)
    kinesis = boto3.client("kinesis")
    one_shard = stream_definitions(template, {"StreamMode": "PROVISIONED", "ShardCount": "1"})
    kinesis.create_stream(StreamName=NAMES["FeaturesStream"], **one_shard["FeaturesStream"])
    boto3.client("s3").create_bucket(Bucket=NAMES["ArtifactsBucket"])
    boto3.client("events").create_event_bus(Name=NAMES["EventBus"])
    return dynamodb, kinesis


def _read_features(kinesis: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=NAMES["FeaturesStream"])["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=NAMES["FeaturesStream"],
            ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records += page["Records"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def whole_path(template: dict[str, Any]) -> dict[str, Any]:
    """About 1,000 records (1% invalid) through the three functions; figures per 1,000 valid ones."""
    values = parameter_values(template)
    pre_batch, score_batch = int(values["PreprocessBatchSize"]), int(values["ScoreBatchSize"])
    # whole batches, as on a busy shard: about 1,000 records, the invalid ones among them
    events = transaction_events(pre_batch, max(1, round(TRANSACTIONS / pre_batch)))
    sent = [base64.b64decode(r["kinesis"]["data"]) for e in events for r in e["Records"]]
    valid = sum(
        1 for e in events for r in e["Records"] if r["kinesis"]["partitionKey"] != "card_bad"
    )
    cards = {r["kinesis"]["partitionKey"] for e in events for r in e["Records"]}
    now = datetime.now(UTC)
    meters = {name: Meter() for name in ("preprocess", "score", "drift_check")}
    invocations: Counter[str] = Counter()
    SINK.keep = []
    try:
        with environment(AWS_ENV), mock_aws():
            dynamodb, kinesis = _build_stack(template)
            seed = [i for i in state_items(window().states, now) if i["card_id"]["S"] in cards]
            for start in range(0, len(seed), 25):
                dynamodb.batch_write_item(
                    RequestItems={
                        NAMES["EntityStateTable"]: [
                            {"PutRequest": {"Item": item}} for item in seed[start : start + 25]
                        ]
                    }
                )
            apps = {name: load_app(name) for name in meters}
            meters["preprocess"].attach(apps["preprocess"].dynamodb, apps["preprocess"].kinesis)
            meters["score"].attach(apps["score"].dynamodb, apps["score"].events)
            drift = apps["drift_check"]
            meters["drift_check"].attach(drift.dynamodb, drift.s3, drift.events)
            with into_sink():
                progress("whole path on moto: preprocess")
                for event in events:
                    _invoke(apps["preprocess"], event, "preprocess")
                    invocations["preprocess"] += 1
                features = _read_features(kinesis)
                entries = [
                    KinesisEntry(
                        r["PartitionKey"],
                        r["Data"],
                        sequence_number=r["SequenceNumber"],
                        arrival=r["ApproximateArrivalTimestamp"].timestamp(),
                    )
                    for r in features
                ]
                progress("whole path on moto: score")
                for start in range(0, len(entries), score_batch):
                    event = kinesis_event(
                        entries[start : start + score_batch], NAMES["FeaturesStream"], SHARD
                    )
                    _invoke(apps["score"], event, "score")
                    invocations["score"] += 1
                progress("whole path on moto: drift check")
                # the schedule's time, a second ahead: every item just written is in the window
                ahead = datetime.now(UTC) + timedelta(seconds=1)
                moment = ahead.isoformat(timespec="seconds").replace("+00:00", "Z")
                outcome = drift.lambda_handler(scheduled_event(moment), LambdaContext("drift"))
                invocations["drift_check"] += 1
        logged = list(SINK.keep)
    finally:
        SINK.keep = None
    per_function = {name: meter.report(valid) for name, meter in meters.items()}
    per_function["drift_check"] = meters["drift_check"].report(1000)  # per check, not per 1,000
    item_bytes: dict[str, list[int]] = defaultdict(list)
    for meter in meters.values():
        for table, sizes in meter.item_bytes.items():
            item_bytes[table] += sizes
    feature_bytes = meters["preprocess"].stream_records
    metrics = _metrics(logged)
    per_batch = {
        name: {
            "monitoring_wru": round(meters[name].wru["MonitoringTable"] / invocations[name], 2),
            "monitoring_bytes": round(
                sum(meters[name].item_bytes["MonitoringTable"]) / invocations[name], 1
            ),
        }
        for name in ("preprocess", "score")
    }
    return {
        "records_sent": len(sent),
        "valid_transactions": valid,
        "batch_sizes": {"preprocess": pre_batch, "score": score_batch},
        "invocations": dict(invocations),
        "per_batch": per_batch,
        "per_1000_transactions": {k: v for k, v in per_function.items() if k != "drift_check"},
        "drift_check_per_check": per_function["drift_check"] | {"outcome": outcome["status"]},
        "total_calls_per_1000_transactions": round(
            sum(per_function[f]["calls_total"] for f in ("preprocess", "score")), 2
        ),
        "item_bytes": {
            table: {
                "items": len(sizes),
                "mean": round(sum(sizes) / len(sizes), 1),
                "max": max(sizes),
                "wru_each": round(sum(write_units(s) for s in sizes) / len(sizes), 2),
            }
            for table, sizes in sorted(item_bytes.items())
        },
        "transaction_record_bytes": round(sum(len(b) for b in sent) / len(sent), 1),
        "transaction_billed_kb": round(sum(kinesis_billed_kb(len(b)) for b in sent) / len(sent), 3),
        "feature_record_bytes": round(sum(feature_bytes) / len(feature_bytes), 1),
        "feature_billed_kb": round(
            sum(kinesis_billed_kb(b) for b in feature_bytes) / len(feature_bytes), 3
        ),
        "log_bytes": len("".join(logged).encode()),
        "custom_metrics": len(metrics),
        "custom_metric_names": sorted({f"{m[1]}{dict(m[2])}" for m in metrics}),
    }


def _invoke(app: Any, event: dict[str, Any], name: str) -> None:
    result = app.lambda_handler(event, LambdaContext(name))
    if result.get("batchItemFailures"):
        raise SystemExit(f"{name} failed records on moto: {result['batchItemFailures'][:3]}")
