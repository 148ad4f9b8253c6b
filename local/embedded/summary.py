"""What a run did, from the stack's own tables and queues: counts, speed, decisions, quality, drift.

`observe_stack` reads a fresh local stack whole (scans), and reads the records of every
FailureQueue range back from its stream; `build_summary` joins what it saw with what was
sent (and the simulator's labels); `render_summary` prints it for people, and the same dict
is the `--json` summary.

Every sent record is accounted for once, by what the tables hold for it, never by counting
deliveries: a replay, a retry or a re-drive delivers a record again, and the tables (keyed by
transaction id and by record id) hold it once. A sent record is, in this order: quarantined
(its TransactionsStream record id is in QuarantineTable), a repeat (its transaction id was
accounted for by an earlier record), scored (a prediction of its transaction id), quarantined
by score (its transaction's feature record is in QuarantineTable: a preprocess replay forwards
it again under a new FeaturesStream record id, and it counts once), failed (it, or its
transaction's feature record, is in a FailureQueue range) or unaccounted.

A record sent in a KPL aggregate is a user record, with its own record id
(`stream#shard#sequence#index`): it is accounted for on its own, like a plain record, except
that an aggregate quarantined whole (`invalid_aggregate`: its user records never reached the
pipeline) stands for each record sent in it, and a FailureQueue range holds every user record
of the aggregates in it.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from boto3.dynamodb.types import TypeDeserializer

from embedded.producer import Traffic
from embedded.redrive import read_range, render_redrive
from streamscore.core.aggregation import deaggregate, is_aggregated
from streamscore.core.errors import InvalidRecordError
from streamscore.core.items import from_item_value
from streamscore.core.records import record_id_of

_deserializer = TypeDeserializer()
PATTERN_ORDER = ("card_testing", "account_takeover", "high_risk_mcc", "moto_burst")
QUARANTINE_EXAMPLES = 5  # quarantined records shown whole in the JSON summary
PREPROCESS_STAGE = "preprocess"  # the stage of a TransactionsStream record's quarantine item


@dataclass
class Observed:
    """What the stack holds after a run."""

    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by transaction_id
    prediction_items: int = 0  # items read, before keying them by transaction_id
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    # on-failure metadata and RetrainingRequested events; None where the queue was not read
    failure_records: list[dict[str, Any]] | None = field(default_factory=list)
    retraining_requests: list[dict[str, Any]] | None = field(default_factory=list)
    not_seen: int | None = None  # remote checks: sent records found nowhere (yet)
    # the records of the FailureQueue ranges, read back from their streams; None: not read
    failed_records: list[FailedRecord] | None = None


@dataclass(frozen=True)
class FailedRecord:
    """A record of a range Lambda gave up on, as its stream still holds it."""

    stream_name: str
    shard_id: str
    sequence_number: str
    data: bytes

    @property
    def record_id(self) -> str:
        return record_id_of(self.stream_name, self.shard_id, self.sequence_number)

    def user_records(self) -> list[tuple[str, bytes]]:
        """(record id, data) of each user record of an aggregate; the record itself when plain."""
        if not is_aggregated(self.data):
            return [(self.record_id, self.data)]
        try:
            users = deaggregate(self.data)
        except InvalidRecordError:
            return [(self.record_id, self.data)]  # quarantined whole, under its own id
        return [
            (record_id_of(self.stream_name, self.shard_id, self.sequence_number, i), user.data)
            for i, user in enumerate(users)
        ]


def plain_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return dict(from_item_value({k: _deserializer.deserialize(v) for k, v in raw.items()}))


def scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items += [plain_item(item) for item in page["Items"]]
    return items


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_json(s3: Any, uri: str | None) -> dict[str, Any] | None:
    """The JSON object at an s3:// URI (None without one)."""
    if not uri:
        return None
    bucket, key = split_s3(uri)
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def drain_queue(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message body on the queue (JSON), received once and left in place."""
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            try:
                bodies.append(json.loads(message["Body"]))
            except json.JSONDecodeError:
                bodies.append({"unparsed": message["Body"]})


def observe_stack(clients: Any, outputs: Mapping[str, str]) -> Observed:
    """A local stack's predictions, quarantine, failure and retraining queues, read whole."""
    dynamodb, sqs = clients("dynamodb"), clients("sqs")
    items = scan(dynamodb, outputs["PredictionsTableName"])
    failure_records = drain_queue(sqs, outputs["FailureQueueUrl"])
    return Observed(
        predictions={item["transaction_id"]: item for item in items},
        prediction_items=len(items),
        quarantine=scan(dynamodb, outputs["QuarantineTableName"]),
        failure_records=failure_records,
        retraining_requests=[
            body
            for body in drain_queue(sqs, outputs["RetrainingQueueUrl"])
            if body.get("detail-type") == "RetrainingRequested"
        ],
        failed_records=read_failed_records(clients("kinesis"), failure_records),
    )


def read_failed_records(
    kinesis: Any, failure_records: Sequence[Mapping[str, Any]]
) -> list[FailedRecord]:
    """The records of every FailureQueue range (each distinct range read once)."""
    ranges = {
        (i["streamArn"], i["shardId"], i["startSequenceNumber"], i["endSequenceNumber"])
        for body in failure_records
        if isinstance(i := body.get("KinesisBatchInfo"), dict)
    }
    found: dict[str, FailedRecord] = {}
    for stream_arn, shard_id, start, end in sorted(ranges):
        for record in read_range(kinesis, stream_arn, shard_id, start, end):
            failed = FailedRecord(
                stream_arn.rsplit("/", 1)[-1], shard_id, record["SequenceNumber"], record["Data"]
            )
            found[failed.record_id] = failed
    return list(found.values())


def sent_record_ids(
    stream_name: str,
    positions: Mapping[int, tuple[str, str]],
    sub_sequence: Mapping[int, int] | None = None,
) -> dict[int, str]:
    """Each sent payload's record id on the stream (as quarantine items name it), by index.

    `sub_sequence`: the index of each payload sent in a KPL aggregate in it (ProducerResult's).
    """
    subs = sub_sequence or {}
    return {
        index: record_id_of(stream_name, shard, sequence, subs.get(index))
        for index, (shard, sequence) in positions.items()
    }


def kinesis_record_id(record_id: str) -> str:
    """The id of the Kinesis record a record id names (a user record's aggregate; else itself)."""
    return "#".join(record_id.split("#")[:3])  # stream names and shard ids hold no '#'


def transaction_id(payload: bytes) -> str | None:
    """The transaction_id of a JSON payload (a transaction or a feature record), if it has one."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    value = document.get("transaction_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else None


def _quarantined(items: Sequence[Mapping[str, Any]]) -> tuple[set[str], set[str]]:
    """Record ids quarantined by preprocess; transaction ids quarantined by score."""
    preprocess_quarantined: set[str] = set()
    score_quarantined: set[str] = set()
    for item in items:
        if item.get("stage") == PREPROCESS_STAGE:
            preprocess_quarantined.add(str(item.get("record_id")))
        elif txn := transaction_id(base64.b64decode(item.get("payload_b64") or "")):
            score_quarantined.add(txn)
    return preprocess_quarantined, score_quarantined


def _failed(records: Sequence[FailedRecord]) -> tuple[set[str], set[str]]:
    """Kinesis record ids of the FailureQueue ranges' records, transaction ids of their user records."""
    users = [data for r in records for _, data in r.user_records()]
    return {r.record_id for r in records}, {t for data in users if (t := transaction_id(data))}


def account(traffic: Traffic, record_ids: Mapping[int, str], observed: Observed) -> Counter[str]:
    """Each sent record's one outcome (see the module docstring), counted."""
    preprocess_quarantined, score_quarantined = _quarantined(observed.quarantine)
    failed_record_ids, failed_transactions = _failed(observed.failed_records or [])
    outcomes: Counter[str] = Counter()
    accounted: set[str] = set()  # transaction ids with an outcome
    for index in sorted(record_ids):
        record_id = record_ids[index]
        kinesis_id = kinesis_record_id(record_id)  # its aggregate's, for a user record
        txn = transaction_id(traffic.payloads[index])
        if record_id in preprocess_quarantined or kinesis_id in preprocess_quarantined:
            outcome = "quarantined"
        elif txn is not None and txn in accounted:
            outcome = "repeats"
        elif txn is not None and txn in observed.predictions:
            outcome = "scored"
        elif txn is not None and txn in score_quarantined:
            outcome = "quarantined"
        elif kinesis_id in failed_record_ids or (txn is not None and txn in failed_transactions):
            outcome = "failed"
        else:
            outcome = "unaccounted"
        if txn is not None and outcome != "unaccounted":
            accounted.add(txn)
        outcomes[outcome] += 1
    return outcomes


# ---------------------------------------------------------------- the numbers


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    array = np.asarray(values, dtype=float)
    p50, p90, p99 = np.percentile(array, [50, 90, 99])
    return {
        "n": len(values),
        "p50": round(float(p50)),
        "p90": round(float(p90)),
        "p99": round(float(p99)),
        "max": round(float(array.max())),
    }


def average_precision(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the precision-recall curve as a step sum (scikit-learn's average_precision)."""
    labels = np.asarray(positive, dtype=bool)
    if not labels.any():
        return None
    values = np.asarray(scores, dtype=float)
    order = np.argsort(-values, kind="mergesort")
    values, labels = values[order], labels[order]
    # one point per distinct score: ties count together
    last_of_tie = np.r_[np.flatnonzero(np.diff(values)), len(values) - 1]
    true_positives = np.cumsum(labels)[last_of_tie]
    flagged = last_of_tie + 1
    precision = true_positives / flagged
    recall = true_positives / labels.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def quality(traffic: Traffic, predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Fraud detection against the simulator's labels, at the decisions the pipeline made."""
    joined = [
        (label, predictions[txn_id])
        for txn_id, label in traffic.labels.items()
        if txn_id in predictions
    ]
    if not joined:
        return {"labelled": 0}
    fraud = [label.is_fraud for label, _ in joined]
    total_fraud = sum(fraud)
    result: dict[str, Any] = {"labelled": len(joined), "fraud": total_fraud}
    for level, decisions in (("review", {"review", "decline"}), ("decline", {"decline"})):
        flagged = [p["decision"] in decisions for _, p in joined]
        caught = sum(f and y for f, y in zip(flagged, fraud, strict=True))
        result[level] = {
            "flagged": sum(flagged),
            "precision": _rate(caught, sum(flagged)),
            "recall": _rate(caught, total_fraud),
        }
    ap = average_precision([float(p["score"]) for _, p in joined], fraud)
    result["pr_auc"] = round(ap, 4) if ap is not None else None
    by_pattern: dict[str, dict[str, Any]] = {}
    for pattern in sorted(
        {label.pattern for label, _ in joined if label.is_fraud},
        key=lambda p: (PATTERN_ORDER.index(p) if p in PATTERN_ORDER else 99, p),
    ):
        rows = [p for label, p in joined if label.pattern == pattern]
        by_pattern[pattern] = {
            "n": len(rows),
            "review_recall": _rate(sum(p["decision"] != "approve" for p in rows), len(rows)),
            "decline_recall": _rate(sum(p["decision"] == "decline" for p in rows), len(rows)),
        }
    result["recall_by_pattern"] = by_pattern
    result["reasons_by_pattern"] = reasons_by_pattern(joined)
    return result


REASONS_SHOWN = 3  # features per pattern in the summary


def reasons_by_pattern(joined: Sequence[tuple[Any, Mapping[str, Any]]]) -> dict[str, Any]:
    """Per fraud pattern (and for flagged legitimate transactions), the features most often
    among the reasons of its reviewed and declined transactions: their share of those
    transactions, and how often each was the first reason."""
    groups: dict[str, list[list[Mapping[str, Any]]]] = {}
    for label, prediction in joined:
        reasons = prediction.get("reasons")
        if prediction["decision"] != "approve" and reasons:
            name = label.pattern if label.is_fraud else "legit (flagged)"
            groups.setdefault(name, []).append(reasons)
    order = [*PATTERN_ORDER, "legit (flagged)"]
    result: dict[str, Any] = {}
    for name in sorted(groups, key=lambda p: (order.index(p) if p in order else 99, p)):
        lists = groups[name]
        anywhere = Counter(r["feature"] for reasons in lists for r in reasons)
        first = Counter(reasons[0]["feature"] for reasons in lists)
        result[name] = {
            "explained": len(lists),
            "features": [
                {
                    "feature": feature,
                    "share": _rate(n, len(lists)),
                    "first_share": _rate(first[feature], len(lists)),
                }
                for feature, n in anywhere.most_common(REASONS_SHOWN)
            ],
        }
    return result


def build_summary(
    traffic: Traffic,
    record_ids: Mapping[int, str],
    observed: Observed,
    seconds: float,
    drift: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's summary as plain JSON-ready values; `record_ids`: payload index -> record id."""
    by_stage: dict[str, Counter[str]] = {}
    for item in observed.quarantine:
        by_stage.setdefault(str(item.get("stage", "?")), Counter())[str(item.get("reason"))] += 1
    failure_records = observed.failure_records or []
    failed_in_queue = sum(
        int(r.get("KinesisBatchInfo", {}).get("batchSize", 0)) for r in failure_records
    )
    outcomes = account(traffic, record_ids, observed)
    sent = len(record_ids)
    counts: dict[str, Any] = {
        "in": sent,
        "scored": outcomes["scored"],
        "quarantined": outcomes["quarantined"],
        "failed": outcomes["failed"],
        "duplicate_predictions": observed.prediction_items - len(observed.predictions),
        "repeats_absorbed": outcomes["repeats"],
        "unaccounted": outcomes["unaccounted"],
        "quarantined_by_stage": {
            stage: dict(sorted(reasons.items())) for stage, reasons in sorted(by_stage.items())
        },
    }
    if traffic.invalid is not None:
        counts["invalid_sent"] = traffic.invalid
    if observed.not_seen is not None:
        counts["not_seen"] = observed.not_seen
    predictions = list(observed.predictions.values())
    summary: dict[str, Any] = {
        "traffic": traffic.description,
        "counts": counts,
        "throughput": {
            "seconds": round(seconds, 2),
            "records_per_second": round(sent / seconds, 1) if seconds > 0 else None,
        },
        "latency_ms": percentiles([p["latency_ms"] for p in predictions if "latency_ms" in p]),
        "decisions": dict(sorted(Counter(p["decision"] for p in predictions).items())),
        "model_versions": dict(Counter(p.get("model_version", "?") for p in predictions)),
        "quality": quality(traffic, observed.predictions),
        "failure_queue": None
        if observed.failure_records is None
        else {
            "messages": len(failure_records),
            "records": failed_in_queue,
            "conditions": dict(
                Counter(r.get("requestContext", {}).get("condition", "?") for r in failure_records)
            ),
        },
        "retraining_requests": None
        if observed.retraining_requests is None
        else len(observed.retraining_requests),
    }
    summary["quarantine_examples"] = [
        {k: item.get(k) for k in ("record_id", "stage", "reason", "message", "payload_b64")}
        for item in observed.quarantine[:QUARANTINE_EXAMPLES]
    ]
    if drift is not None:
        summary["drift"] = dict(drift)
    summary.update(extra or {})
    return summary


def drift_summary(
    response: Mapping[str, Any], report: Mapping[str, Any] | None, picture: str | None
) -> dict[str, Any]:
    """The drift check's answer and the per-feature verdicts of its report."""
    result: dict[str, Any] = {
        "status": response.get("status"),
        "retraining": response.get("retraining"),
        "report_uri": response.get("report_uri"),
        "picture": picture,
    }
    if report:
        result["window"] = report.get("window")
        result["sample"] = report.get("sample")
        result["features"] = {
            name: {"status": v.get("status"), "psi": v.get("psi")}
            for name, v in report.get("features", {}).items()
        }
        prediction = report.get("prediction", {})
        result["score"] = {
            "status": prediction.get("status"),
            "psi": prediction.get("psi"),
            "js_distance": prediction.get("js_distance"),
        }
        result["drifted"] = [d.get("name") for d in report.get("drifted", [])]
        result["model_version"] = report.get("model_version")
        result["other_versions"] = report.get("other_versions", {})
        result["shadow"] = [
            {k: v for k, v in c.items() if k != "score_bins"} for c in report.get("shadow", [])
        ]
        result["notes"] = report.get("notes", [])
    return result


# ---------------------------------------------------------------- for people


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def render_summary(summary: Mapping[str, Any]) -> str:
    """The summary for people: records, speed, decisions, detection quality, drift."""
    lines = ["", f"streamscore local run: {summary['traffic']}", ""]
    records = _records(summary["counts"])
    producer = summary.get("producer")
    if producer:  # after the "in" line
        records.insert(
            2,
            f"               (in {producer['kinesis_records']:,} Kinesis records, "
            f"{producer['aggregates']:,} of them KPL aggregates of up to "
            f"{producer['most_per_aggregate']:,})",
        )
    lines += records
    if summary.get("redrive"):
        lines += ["", *render_redrive(summary["redrive"])]
    if summary.get("replay"):
        lines += ["", *render_replay(summary["replay"])]
    if summary.get("models"):
        lines += ["", *render_models(summary["models"])]
    lines += ["", *_speed(summary), "", *_quality(summary["quality"])]
    if summary.get("labels"):
        lines += ["", *render_labels(summary["labels"])]
    check = summary.get("quality_check")
    if check:
        lines.append(
            f"Quality check  {check.get('status', check.get('error'))}; retraining: "
            f"{check.get('retraining', '-')}; report {check.get('report_uri', '-')}"
        )
    if summary.get("feature_log"):
        lines.append(render_feature_log(summary["feature_log"]))
    if summary.get("retrain"):
        lines += render_retrain(summary["retrain"])
    lines += ["", *_drift(summary)]
    lines += render_runner(summary.get("retraining_runner") or [])
    lines += [f"Note           {line}" for line in summary.get("notes", [])]
    return "\n".join([*lines, ""])


def render_runner(deliveries: list[Mapping[str, Any]]) -> list[str]:
    """What the rules' function targets did with the run's events (RetrainStartFunction)."""
    lines = []
    for delivery in deliveries:
        response = delivery.get("response") or {}
        if delivery.get("error"):
            lines.append(
                f"Runner         {delivery['function']} failed {delivery.get('attempts', 0)} times "
                f"on {delivery.get('detail_type')}: {delivery['error']}"
            )
        elif "retrain_at" in response:
            lines.append(
                f"Runner         {delivery['function']}: run {response['execution']} "
                f"({response['started']}) waits until {response['retrain_at']}, then retrains "
                "(CodeBuild; the local run does not run the build)"
            )
        else:
            lines.append(f"Runner         {delivery['function']}: {response}")
    return lines


def render_feature_log(log: Mapping[str, Any]) -> str:
    head = f"Feature log    {log['rows']:,} rows in {log['objects']:,} objects"
    problems = [
        f"{log[key]:,} {text}"
        for key, text in (
            ("scored_not_logged", "scored transactions not logged"),
            ("logged_not_scored", "logged transactions not scored"),
            ("without_features", "rows without features"),
        )
        if log[key]
    ]
    repeated = (
        f" ({log['repeated_rows']:,} rows repeated by retries)" if log["repeated_rows"] else ""
    )
    return (
        f"{head}: "
        + ("; ".join(problems) or "every scored transaction, with its features")
        + repeated
    )


def render_retrain(section: Mapping[str, Any]) -> list[str]:
    lines = [f"Retrain        {section['verdict']}: {section['why']}"]
    if section.get("candidate"):
        lines.append(f"  candidate    {section['candidate']} against {section['champion']}")
    for key, name in (
        ("pr_auc_difference", "PR-AUC"),
        ("recall_at_decline_difference", "recall at the champion's decline rate"),
    ):
        figure = section.get(key)
        if figure:
            low, high = figure["interval"]
            lines.append(
                f"  {name}: candidate - champion {figure['value']:+.3f} (95% {low:+.3f} to {high:+.3f})"
            )
    published = section.get("published") or {}
    if published:
        lines.append(
            "  published    "
            + ("as the challenger" if published.get("published") else published.get("why", "-"))
        )
    lines.append(f"  report       {section['report_dir']}")
    return lines


def render_labels(section: Mapping[str, Any]) -> list[str]:
    sources = ", ".join(f"{n:,} {s}" for s, n in section["by_source"].items()) or "none"
    lines = [
        "Labels production would see (LabelsStream):",
        f"  sent {section['sent']:,} ({sources}); LabelsTable holds {section['stored']:,}"
        + (f"; {section['refused']:,} refused by PutRecords" if section["refused"] else ""),
        "  per decision: transactions, frauds (truth), and what the labels show",
    ]
    width = max(8, *(len(d) for d in section["by_decision"]))
    for decision, row in section["by_decision"].items():
        lines.append(
            f"    {decision:<{width}} {row.get('transactions', 0):>7,} txns, "
            f"{row.get('frauds', 0):>5,} frauds | labelled fraud {row.get('labelled_fraud', 0):,}, "
            f"legit {row.get('labelled_legit', 0):,}, unlabelled {row.get('unlabelled', 0):,}"
        )
    lines += _label_quality(section.get("quality") or {})
    lines.append(
        f"  unseen: {section['unreported_frauds']:,} approved frauds never charged back, "
        f"{section['declined_frauds']:,} declined frauds and {section['declined_legit']:,} "
        "declined legitimate transactions (a decline never settles, so never gets a chargeback)"
    )
    if section.get("picture"):
        lines.append(f"  picture    {section['picture']}")
    return lines


def _label_quality(quality_: Mapping[str, Any]) -> list[str]:
    if not quality_:
        return []
    real, expect = quality_["realized"], quality_["estimated"]
    area = (
        f"{_percent(real['pr_auc'])} (bins' order unknown: {_percent(real['pr_auc_low'])}-"
        f"{_percent(real['pr_auc_high'])}, the figure their midpoint)"
        if real["pr_auc"] is not None
        else "n/a"
    )
    return [
        f"  quality of {quality_['model_version']} from the labels (among transactions not "
        "declined; unlabelled approvals count as legit) | estimated from the scores:",
        f"    recall at review     {_percent(real['recall_at_review']):>7} | "
        f"{_percent(expect['recall_at_review'])}",
        f"    precision at review  {_percent(real['precision_at_review']):>7} | "
        f"{_percent(expect['precision_at_review'])}",
        f"    PR-AUC               {area}",
        f"    recall at decline    {_percent(real['recall_at_decline']):>7} (the declines' frauds "
        f"from {_DECLINED_FROM[real.get('declined_frauds_from', 'scores')]}: no chargeback comes "
        f"back) | "
        f"{_percent(expect['recall_at_decline'])}; "
        f"precision at decline | {_percent(expect['precision_at_decline'])}",
        *_sample_quality(real),
        *(
            line
            for name, figures in sorted((quality_.get("challengers") or {}).items())
            for line in _challenger_quality(name, figures)
        ),
    ]


_DECLINED_FROM = {"scores": "their scores", "sample": "the declines reviewed instead"}


def _sample_quality(real: Mapping[str, Any]) -> list[str]:
    sample = real.get("decline_sample") or {}
    if not sample.get("reviewed"):
        return []
    interval = sample.get("precision_at_decline_95")
    precision = (
        f"{_percent(sample['precision_at_decline'])} [{_percent(interval[0])}-"
        f"{_percent(interval[1])}]"
        if interval
        else "n/a"
    )
    return [
        f"    declines reviewed instead {sample['reviewed']:,}: analysts labelled "
        f"{sample['labelled']:,}, {sample['frauds']:,} fraud: precision at decline {precision}; "
        "recall at decline takes the declines' frauds from "
        f"{_DECLINED_FROM[real['declined_frauds_from']]}"
    ]


def _challenger_quality(name: str, figures: Mapping[str, Any]) -> list[str]:
    mine, theirs = figures["champion"], figures["challenger"]
    review = figures["discordant_frauds"]["review"]
    cells = ", ".join(
        f"{label} {_percent(mine[key])} | {_percent(theirs[key])}"
        for key, label in (
            ("recall_at_review", "recall at review"),
            ("recall_at_decline", "recall at decline"),
            ("pr_auc", "PR-AUC"),
        )
    )
    return [
        f"  champion | challenger {name} on the same {mine['frauds'] + mine['legit']:,} labelled "
        f"transactions ({mine['frauds']:,} frauds; the champion's declines are labelled only "
        "when reviewed instead):",
        f"    {cells}",
        f"    frauds flagged at review by the challenger only {review['frauds_only_challenger_flags']:,}"
        f", by the champion only {review['frauds_only_champion_flags']:,} "
        f"(McNemar p = {review['mcnemar_p']:.2g})",
    ]


def render_models(section: Mapping[str, Any]) -> list[str]:
    """The challenger's lines (see challenger.ModelLifecycle.summary)."""
    by_version = ", ".join(f"{v} {n:,}" for v, n in section["predictions_by_version"].items())
    shadow = section["shadow"]
    disagreements = ", ".join(f"{k} {n:,}" for k, n in shadow["disagreements"].items())
    lines = [
        f"Models         challenger {section['challenger']} beside {section['champion_before']}",
        f"               predictions by version: {by_version}",
        f"               in shadow: {shadow['predictions']:,} predictions carry the challenger's "
        f"score; decisions agree {_percent(shadow['agreement'])}"
        + (f" ({disagreements})" if disagreements else ""),
    ]
    promotion = section.get("promotion")
    if promotion:
        delay = promotion["first_prediction_after_s"]
        lines.append(
            f"               promoted after {promotion['after_records_sent']:,} records sent; "
            + (
                "no prediction by it since"
                if delay is None
                else f"its first prediction as champion {delay:.2f} s later"
            )
        )
    return lines


def render_replay(section: Mapping[str, Any]) -> list[str]:
    """The replay's lines (see replay.replay)."""
    lines = [f"Replay         both streams again from TRIM_HORIZON ({section['seconds']:.1f} s)"]
    for stream, m in section["mappings"].items():
        lines.append(
            f"  {stream:<20} {m['records_replayed']:>8,} records in batches of "
            f"{m['replay_batch_size']:,} (the mapping's: {m['batch_size']:,}; "
            f"{m['invocations']:,} invocations of {m['function']})"
        )
    lines.append(
        f"  changed by the replay: {section['predictions_changed']} prediction items, "
        f"{section['card_states_changed']} card states, "
        f"{section['feature_items_changed']} FeaturesTable items"
    )
    moved = section.get("monitoring", {})
    if moved:
        lines.append(
            "  MonitoringTable items the replay added or changed: "
            + ", ".join(
                f"{kind} {v['items_added']:,} added, {v['items_changed']:,} changed"
                + (f" ({v['records']:,} records counted in them)" if v["records"] else "")
                for kind, v in moved.items()
            )
        )
        lines.append(
            "    (a drift check over a window with both passes counts what they count twice)"
        )
    return lines


def _records(counts: Mapping[str, Any]) -> list[str]:
    stages = "; ".join(
        f"{stage}: " + ", ".join(f"{reason} {n}" for reason, n in reasons.items())
        for stage, reasons in counts["quarantined_by_stage"].items()
    )
    lines = [
        "Records",
        f"  in           {_number(counts['in']):>10}",
        f"  scored       {_number(counts['scored']):>10}",
        f"  quarantined  {_number(counts['quarantined']):>10}"
        + (f"   ({stages})" if stages else ""),
        f"  failed       {_number(counts['failed']):>10}   (their batches' metadata is in FailureQueue)",
    ]
    if counts.get("repeats_absorbed"):
        lines.append(
            f"  repeats      {_number(counts['repeats_absorbed']):>10}   (producer duplicates, scored once)"
        )
    if "not_seen" in counts:
        lines.append(
            f"  not seen     {_number(counts['not_seen']):>10}   (neither scored nor quarantined when the checks ended)"
        )
    balance = "holds" if counts["unaccounted"] == 0 else f"is off by {counts['unaccounted']:,}"
    lines.append(
        f"  in = scored + quarantined + failed {balance}; "
        f"duplicate prediction items: {counts['duplicate_predictions']}"
    )
    return lines


def _speed(summary: Mapping[str, Any]) -> list[str]:
    throughput, latency = summary["throughput"], summary["latency_ms"]
    lines = [
        f"Throughput     {_number(throughput['records_per_second'])} records/s "
        f"({_number(summary['counts']['in'])} records in {throughput['seconds']:.1f} s, "
        "first put to last prediction)"
    ]
    if latency["n"]:
        lines.append(
            f"Latency        p50 {latency['p50']:,} ms, p90 {latency['p90']:,} ms, "
            f"p99 {latency['p99']:,} ms, max {latency['max']:,} ms "
            "(arrival on TransactionsStream to prediction written)"
        )
    decisions = summary["decisions"]
    total = sum(decisions.values())
    if total:
        mix = ", ".join(f"{name} {n:,} ({n / total * 100:.1f}%)" for name, n in decisions.items())
        lines.append(f"Decisions      {mix}")
    return lines


def _quality(quality_: Mapping[str, Any]) -> list[str]:
    if not quality_.get("labelled"):
        return ["Fraud detection: no labels for this traffic"]
    lines = [
        f"Fraud detection against the simulator's labels "
        f"({quality_['fraud']:,} fraud in {quality_['labelled']:,})"
    ]
    for level, title in (("review", "review or above"), ("decline", "decline")):
        q = quality_[level]
        lines.append(
            f"  {title:<16} precision {_percent(q['precision'])}, "
            f"recall {_percent(q['recall'])}  ({q['flagged']:,} flagged)"
        )
    lines.append(f"  PR-AUC           {_number(quality_['pr_auc'])}")
    for pattern, row in quality_["recall_by_pattern"].items():
        lines.append(
            f"  {pattern:<16} {row['n']:>5,} fraud, recall {_percent(row['review_recall'])} "
            f"at review, {_percent(row['decline_recall'])} at decline"
        )
    reasons = quality_.get("reasons_by_pattern") or {}
    if reasons:
        lines.append(
            "Reasons of reviews and declines (share of them listing the feature; first reason)"
        )
    for pattern, row in reasons.items():
        shown = ", ".join(
            f"{f['feature']} {_percent(f['share'])} ({_percent(f['first_share'])})"
            for f in row["features"]
        )
        lines.append(f"  {pattern:<16} {row['explained']:>5,}: {shown}")
    return lines


def _drift(summary: Mapping[str, Any]) -> list[str]:
    drift = summary.get("drift")
    requests = summary["retraining_requests"]
    retraining = (
        "Retraining     RetrainingQueue not read"
        if requests is None
        else f"Retraining     {requests} RetrainingRequested message{'s' if requests != 1 else ''} "
        "in RetrainingQueue"
    )
    if drift is None:
        return ["Drift check    not run", retraining]
    if drift.get("error"):
        return [f"Drift check    failed: {drift['error']}", retraining]
    sample = drift.get("sample") or {}
    lines = [
        f"Drift check    {str(drift.get('status')).upper()} over {_number(sample.get('n'))} scored "
        f"transactions; retraining: {drift.get('retraining')}"
    ]
    by_status: dict[str, list[str]] = {}
    features = drift.get("features", {})
    for name, v in sorted(features.items(), key=lambda kv: -(kv[1].get("psi") or 0)):
        by_status.setdefault(str(v.get("status")), []).append(f"{name} {v.get('psi') or 0:.3f}")
    for status in ("drift", "warn", "ok", "insufficient_data"):
        if status in by_status:
            lines.append(f"  {status:<10} PSI {', '.join(by_status[status])}")
    if features:
        score = drift.get("score", {})
        lines.append(
            f"  score      {score.get('status')} (PSI {score.get('psi') or 0:.3f}, "
            f"JS distance {score.get('js_distance') or 0:.3f})"
        )
    for version, other in (drift.get("other_versions") or {}).items():
        verdict = other.get("status", "counted, not compared")
        lines.append(f"  version    {version}: {_number(other.get('n'))} predictions, {verdict}")
    for c in drift.get("shadow") or []:
        rho = c.get("rank_correlation")
        lines.append(
            f"  shadow     {c['challenger']} beside {c['champion']}: {_number(c['n'])} scored, "
            f"decisions agree {_percent(c.get('agreement'))}, rank correlation "
            f"{'-' if rho is None else f'{rho:.3f}'}, its drift "
            f"{(c.get('drift') or {}).get('status', 'not compared')}"
        )
    if drift.get("picture"):
        lines.append(f"  picture    {drift['picture']}")
    return [*lines, retraining]


def functions_summary(stats: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Per function: invocations, errors, cold start, time in the handler."""
    return {
        name: {
            "invocations": c.invocations,
            "errors": c.errors,
            "cold_start_s": round(c.init_seconds, 3) if c.init_seconds is not None else None,
            "handler_s": round(c.busy_seconds, 2),
        }
        for name, c in stats
    }
