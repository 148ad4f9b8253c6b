"""Part 3: AWS calls, request units and bytes per 1,000 transactions along the whole path, on moto.

Preprocess, score and the drift check run against moto with the template's own tables (and one
provisioned shard per stream, so that batches are full as on a busy shard). Every call the
handlers' clients make is counted per API with botocore's event hooks; the items they write and
read are sized as DynamoDB counts them (bench/model.py) to give write and read request units:
TransactWriteItems at twice the units of a plain write, its count-item Updates sized by the item
before and after them (a shadow of what was written, `Shadow`). What the handlers print is kept
to count log bytes and the custom metrics their EMF creates.

The drift check runs once, scheduled at the end of the hour of the latest facts (counts are
kept by event hour); `reads_count_items` says whether it read the hourly count items at all.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
from bench.expressions import apply_update
from bench.model import (
    TRANSACTIONAL_WRITE_FACTOR,
    item_size,
    kinesis_billed_kb,
    query_read_units,
    read_units,
    write_units,
)
from bench.traffic import SHARD, ledger_items, state_items, transaction_events, window
from embedded.lambda_events import KinesisEntry, kinesis_event, scheduled_event
from embedded.template import parameter_values, stream_definitions, table_definitions
from streamscore.core.monitoring import COUNT

TRANSACTIONS = 1000
TABLE_LOGICAL = {name: logical for logical, name in NAMES.items()}
COUNT_SK = COUNT  # the sort key of the hourly count items
COUNT_WINDOW_PREFIX = f"{COUNT}#"  # their WindowIndex partitions
TRANSACTIONAL = TRANSACTIONAL_WRITE_FACTOR


class Shadow:
    """The items the metered clients wrote (and the seeded ones), per table and key.

    DynamoDB bills a Put or an Update by the larger of the item before and after it, so an
    Update of a count item needs the item it changes: the shadow applies every write that
    committed (bench/expressions.py) and answers both sizes. Shared by the functions' meters.
    """

    def __init__(self, table_keys: Mapping[str, Sequence[str]]) -> None:
        self.table_keys = {TABLE_LOGICAL.get(t, t): tuple(k) for t, k in table_keys.items()}
        self.items: defaultdict[str, dict[tuple[Any, ...], dict[str, Any]]] = defaultdict(dict)
        self._lock = threading.Lock()

    def _key(self, table: str, item: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(next(iter(item[k].values())) for k in self.table_keys[table])

    def seed(self, table: str, items: Sequence[dict[str, Any]]) -> None:
        for item in items:
            self.items[table][self._key(table, item)] = item

    def size(self, table: str, key_source: Mapping[str, Any]) -> int:
        with self._lock:
            found = self.items[table].get(self._key(table, key_source))
        return item_size(found) if found else 0

    def put(self, table: str, item: dict[str, Any]) -> tuple[int, int]:
        """(bytes before, bytes after) of a Put that committed."""
        with self._lock:
            key = self._key(table, item)
            before = self.items[table].get(key)
            self.items[table][key] = item
        return (item_size(before) if before else 0), item_size(item)

    def update(self, table: str, spec: Mapping[str, Any]) -> tuple[int, int]:
        """(bytes before, bytes after) of an Update that committed."""
        with self._lock:
            key = self._key(table, spec["Key"])
            before = self.items[table].get(key)
            after = apply_update(
                before,
                spec["Key"],
                spec["UpdateExpression"],
                spec.get("ExpressionAttributeNames"),
                spec.get("ExpressionAttributeValues"),
            )
            self.items[table][key] = after
        return (item_size(before) if before else 0), item_size(after)

    def count_items(self) -> list[dict[str, Any]]:
        """The hourly count items in MonitoringTable, as they stand."""
        with self._lock:
            rows = list(self.items["MonitoringTable"].values())
        return [i for i in rows if i.get("sk", {}).get("S") == COUNT_SK]


@dataclass
class _Transactions:
    """TransactWriteItems of one function, by the table of their facts (the Puts)."""

    calls: int = 0
    puts: int = 0
    updates: int = 0
    put_wru: float = 0.0
    update_wru: float = 0.0
    cancelled: int = 0  # cancelled by a condition (not charged here: see calls.py)
    cancelled_actions: int = 0


class Meter:
    """Counts one function's AWS calls per API and what they read, write and send.

    Units are DynamoDB's: a write is billed by the larger of the item before and after it, 1 WRU
    per KB, and twice that inside TransactWriteItems (model.TRANSACTIONAL_WRITE_FACTOR), Puts and
    Updates alike; a strongly consistent read 1 RRU per 4 KB, a key not found the minimum.
    Writes are counted once they committed (after the call): a cancelled transaction writes
    nothing and is counted apart, not charged (whether DynamoDB bills a cancelled transaction's
    writes is not stated on the pages this was written from).
    """

    def __init__(self, shadow: Shadow) -> None:
        self.shadow = shadow
        self.calls: Counter[str] = Counter()
        self.wru: defaultdict[str, float] = defaultdict(float)  # by table logical id
        self.rru: defaultdict[str, float] = defaultdict(float)
        self.item_writes: dict[str, list[tuple[int, float]]] = defaultdict(list)  # (bytes, WRU)
        self.items_written: Counter[str] = Counter()  # "API.table": items
        self.keys_read: Counter[str] = Counter()  # by table: keys asked for
        self.items_found: Counter[str] = Counter()
        self.transactions: defaultdict[str, _Transactions] = defaultdict(_Transactions)
        self.queried: Counter[str] = Counter()  # window keys of the Query calls
        self.stream_records: list[int] = []  # bytes of each record put
        self.event_entries = 0
        self.objects_put = 0
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

    def _request(self, model: Any, params: dict[str, Any], context: Any, **_: Any) -> None:
        # the parameters travel with the call to its after-call event
        context["bench_params"] = params

    def _written(self, api: str, table: str, sizes: tuple[int, int], factor: int = 1) -> float:
        logical = TABLE_LOGICAL[table]
        units = write_units(max(sizes), factor)
        self.item_writes[logical].append((sizes[1], units))
        self.items_written[f"{api}.{logical}"] += 1
        self.wru[logical] += units
        return units

    def _response(self, model: Any, parsed: dict[str, Any], context: Any, **_: Any) -> None:
        params = context.get("bench_params", {})
        with self._lock:
            if "Error" in parsed:
                self._failed(model.name, params, parsed)
            else:
                self._sized(model.name, params, parsed)

    def _failed(self, name: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        if name == "TransactWriteItems":
            actions = params["TransactItems"]
            row = self.transactions[_facts_table(actions)]
            row.cancelled += 1
            row.cancelled_actions += len(actions)

    def _sized(self, name: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:  # noqa: PLR0912 - one branch per API
        if name == "BatchWriteItem":
            unprocessed = parsed.get("UnprocessedItems") or {}
            for table, requests in params["RequestItems"].items():
                left = unprocessed.get(table, [])
                for request in requests:
                    if request in left:
                        continue
                    item = request["PutRequest"]["Item"]
                    self._written(name, table, self.shadow.put(TABLE_LOGICAL[table], item))
        elif name == "PutItem":
            table = params["TableName"]
            self._written(name, table, self.shadow.put(TABLE_LOGICAL[table], params["Item"]))
        elif name == "UpdateItem":
            # the drift check's cooldown item: small, its conditions not replayed here
            self.wru[TABLE_LOGICAL[params["TableName"]]] += 1
            self.items_written[f"{name}.{TABLE_LOGICAL[params['TableName']]}"] += 1
        elif name == "TransactWriteItems":
            self._transaction(params["TransactItems"])
        elif name == "BatchGetItem":
            responses = parsed.get("Responses", {})
            for table, request in params["RequestItems"].items():
                logical = TABLE_LOGICAL[table]
                consistent = bool(request.get("ConsistentRead", False))
                # every key is charged, found or not; found ones by their size
                found = responses.get(table, [])
                self.keys_read[logical] += len(request["Keys"])
                self.items_found[logical] += len(found)
                self.rru[logical] += (len(request["Keys"]) - len(found)) * read_units(
                    None, consistent
                )
                self.rru[logical] += sum(read_units(item_size(i), consistent) for i in found)
        elif name == "Query":
            # the only Query is the drift check's, on MonitoringTable's WindowIndex
            self.queried[next(iter(params["ExpressionAttributeValues"][":key"].values()))] += 1
            sizes = [item_size(item) for item in parsed.get("Items", [])]
            self.rru["MonitoringTable"] += query_read_units(sizes)
        elif name == "PutRecords":
            self.stream_records += [len(r["Data"]) for r in params["Records"]]
        elif name == "PutEvents":
            self.event_entries += len(params["Entries"])
        elif name == "PutObject":
            self.objects_put += 1

    def _transaction(self, actions: Sequence[Mapping[str, Any]]) -> None:
        row = self.transactions[_facts_table(actions)]
        row.calls += 1
        for action in actions:
            ((kind, spec),) = action.items()
            table = spec["TableName"]
            logical = TABLE_LOGICAL[table]
            if kind == "Put":
                sizes = self.shadow.put(logical, spec["Item"])
                row.puts += 1
                row.put_wru += self._written("TransactWriteItems", table, sizes, TRANSACTIONAL)
            elif kind == "Update":
                sizes = self.shadow.update(logical, spec)
                row.updates += 1
                row.update_wru += self._written("TransactWriteItems", table, sizes, TRANSACTIONAL)
            else:
                raise NotImplementedError(f"{kind} in TransactWriteItems is not metered")

    def report(self, per: float) -> dict[str, Any]:
        scale = 1000 / per

        def scaled(counter: Mapping[str, float]) -> dict[str, float]:
            return {k: round(v * scale, 2) for k, v in sorted(counter.items())}

        return {
            "calls": scaled(self.calls),
            "calls_total": round(sum(self.calls.values()) * scale, 2),
            "wru": scaled(self.wru),
            "rru": scaled(self.rru),
            "items_written": scaled(self.items_written),
            "keys_read": scaled(self.keys_read),
            "items_found": scaled(self.items_found),
            "transactions": {
                table: {k: round(v * scale, 2) for k, v in vars(row).items()}
                for table, row in sorted(self.transactions.items())
            },
            "stream_records": round(len(self.stream_records) * scale, 2),
            "event_entries": round(self.event_entries * scale, 2),
            "objects_put": round(self.objects_put * scale, 2),
        }


def _facts_table(actions: Sequence[Mapping[str, Any]]) -> str:
    """The table a transaction creates facts in: its Puts' (the count Updates go elsewhere)."""
    for action in actions:
        if "Put" in action:
            return TABLE_LOGICAL[action["Put"]["TableName"]]
    return "none"


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


def _seeded_stack(
    template: dict[str, Any],
    shadow: Shadow,
    now: datetime,
    cards: set[str],
    challenger: Path | None,
) -> Any:
    """The stack on moto with the cards' states as preprocess leaves them and the ledger entries
    they point to, and the challenger in the registry; its Kinesis client."""
    dynamodb, kinesis = _build_stack(template)
    if challenger is not None:
        _publish_challenger(challenger, dynamodb)
    for logical, seed in (
        ("EntityStateTable", state_items(window().states, now, cards)),
        ("FeaturesTable", ledger_items(window().states, now, cards)),
    ):
        shadow.seed(logical, seed)
        for start in range(0, len(seed), 25):
            dynamodb.batch_write_item(
                RequestItems={
                    NAMES[logical]: [
                        {"PutRequest": {"Item": item}} for item in seed[start : start + 25]
                    ]
                }
            )
    return kinesis


def _publish_challenger(directory: Path, dynamodb: Any) -> None:
    """The model in `directory` in the registry, named challenger by the pointer."""
    from streamscore.aws.registry import DynamoModelPointer, S3ModelVersions  # noqa: PLC0415
    from streamscore.core.registry import Pointer  # noqa: PLC0415

    files = {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}
    version = json.loads(files["model_card.json"])["model_version"]
    S3ModelVersions(boto3.client("s3"), NAMES["ArtifactsBucket"]).publish(version, files)
    pointer = DynamoModelPointer(dynamodb, NAMES["MonitoringTable"])
    pointer.write(Pointer().with_challenger(version), 0)


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


@contextlib.contextmanager
def _moto_one_call_at_a_time() -> Iterator[None]:
    """moto answers one call at a time.

    The handlers write transaction chunks side by side on their I/O pools; moto's
    TransactWriteItems copies its tables while another thread writes them ("dictionary changed
    size during iteration"). Serialising moto's answers changes no call, item or unit counted.
    """
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415

    original = BotocoreStubber.__call__
    lock = threading.Lock()

    def one_at_a_time(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    setattr(BotocoreStubber, "__call__", one_at_a_time)  # noqa: B010 - a method, for a while
    try:
        yield
    finally:
        setattr(BotocoreStubber, "__call__", original)  # noqa: B010


def _per_invocation(meter: Meter, invocations: int) -> dict[str, float]:
    rows = meter.transactions.values()
    return {
        "transactions": round(sum(r.calls for r in rows) / invocations, 2),
        "count_updates": round(sum(r.updates for r in rows) / invocations, 2),
        "count_update_wru": round(sum(r.update_wru for r in rows) / invocations, 2),
    }


def _chunks(meter: Meter) -> dict[str, dict[str, float]]:
    """Per table of facts: what one transaction (chunk) holds and what its count Updates cost."""
    return {
        table: {
            "transactions": row.calls,
            "puts_per_transaction": round(row.puts / row.calls, 2),
            "updates_per_transaction": round(row.updates / row.calls, 2),
            "put_wru_per_transaction": round(row.put_wru / row.calls, 2),
            "count_update_wru_per_transaction": round(row.update_wru / row.calls, 2),
            "cancelled": row.cancelled,
        }
        for table, row in sorted(meter.transactions.items())
        if row.calls
    }


def _count_items(shadow: Shadow) -> dict[str, dict[str, float]]:
    """The hourly count items the run left, by kind: how many and how big."""
    by_kind: dict[str, list[int]] = defaultdict(list)
    for item in shadow.count_items():
        by_kind[item.get("kind", {}).get("S", "?")].append(item_size(item))
    return {
        kind: {"items": len(sizes), "mean_bytes": round(sum(sizes) / len(sizes), 1)}
        | {"max_bytes": max(sizes), "wru_each": write_units(max(sizes), TRANSACTIONAL)}
        for kind, sizes in sorted(by_kind.items())
    }


def _drift_moment(shadow: Shadow) -> datetime:
    """The end of the hour of the latest count item (counts are kept by event hour), else now."""
    hours = [i["hour"]["S"] for i in shadow.count_items() if "hour" in i]
    if not hours:
        return datetime.now(UTC) + timedelta(seconds=1)
    return datetime.fromisoformat(max(hours) + ":00:00+00:00") + timedelta(hours=1)


def whole_path(
    template: dict[str, Any],
    observe: Callable[[Any], None] | None = None,
    challenger: Path | None = None,
) -> dict[str, Any]:
    """About 1,000 records (1% invalid) through the three functions; figures per 1,000 valid ones.

    `observe`, when given, is called with each function's clients once they exist (a test
    hooks its own recorder onto them). `challenger`, a model directory, is published to the
    registry as the challenger first, so the score function scores it in shadow."""
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
    keys = {
        logical: tuple(k["AttributeName"] for k in spec["KeySchema"])
        for logical, spec in table_definitions(template).items()
        if logical in NAMES
    }
    shadow = Shadow(keys)
    meters = {name: Meter(shadow) for name in ("preprocess", "score", "drift_check")}
    invocations: Counter[str] = Counter()
    SINK.keep = []
    try:
        with environment(AWS_ENV), mock_aws(), _moto_one_call_at_a_time():
            kinesis = _seeded_stack(template, shadow, now, cards, challenger)
            apps = {name: load_app(name) for name in meters}
            meters["preprocess"].attach(apps["preprocess"].dynamodb, apps["preprocess"].kinesis)
            meters["score"].attach(apps["score"].dynamodb, apps["score"].events)
            drift = apps["drift_check"]
            meters["drift_check"].attach(drift.dynamodb, drift.s3, drift.events)
            _observe(apps.values(), observe)
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
                # a scheduled run whose window ends with the hour of the latest facts
                moment = _drift_moment(shadow).isoformat().replace("+00:00", "Z")
                outcome = drift.lambda_handler(scheduled_event(moment), LambdaContext("drift"))
                invocations["drift_check"] += 1
        logged = list(SINK.keep)
    finally:
        SINK.keep = None
    per_function = {name: meter.report(valid) for name, meter in meters.items()}
    per_function["drift_check"] = meters["drift_check"].report(1000)  # per check, not per 1,000
    item_writes: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for meter in meters.values():
        for table, rows in meter.item_writes.items():
            item_writes[table] += rows
    feature_bytes = meters["preprocess"].stream_records
    metrics = _metrics(logged)
    queried = meters["drift_check"].queried
    return {
        "records_sent": len(sent),
        "valid_transactions": valid,
        "batch_sizes": {"preprocess": pre_batch, "score": score_batch},
        "invocations": dict(invocations),
        "per_invocation": {
            name: _per_invocation(meters[name], invocations[name])
            for name in ("preprocess", "score")
        },
        "transaction_chunks": {name: _chunks(meters[name]) for name in ("preprocess", "score")},
        "count_items": _count_items(shadow),
        "per_1000_transactions": {k: v for k, v in per_function.items() if k != "drift_check"},
        "drift_check_per_check": per_function["drift_check"]
        | {
            "outcome": outcome["status"],
            "window_end": moment,
            "queried_kinds": dict(Counter(k.split("#")[0] for k in queried)),
            "reads_count_items": any(k.startswith(COUNT_WINDOW_PREFIX) for k in queried),
        },
        "total_calls_per_1000_transactions": round(
            sum(per_function[f]["calls_total"] for f in ("preprocess", "score")), 2
        ),
        "item_bytes": {
            table: {
                "items": len(rows),
                "mean": round(sum(s for s, _ in rows) / len(rows), 1),
                "max": max(s for s, _ in rows),
                "wru_each": round(sum(u for _, u in rows) / len(rows), 2),
            }
            for table, rows in sorted(item_writes.items())
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


def _observe(apps: Iterable[Any], observe: Callable[[Any], None] | None) -> None:
    if observe is None:
        return
    for app in apps:
        for name in ("dynamodb", "kinesis", "events", "s3"):
            if getattr(app, name, None) is not None:
                observe(getattr(app, name))


def _invoke(app: Any, event: dict[str, Any], name: str) -> None:
    result = app.lambda_handler(event, LambdaContext(name))
    if result.get("batchItemFailures"):
        raise SystemExit(f"{name} failed records on moto: {result['batchItemFailures'][:3]}")
