"""ScoreFunction benchmark: per-record CPU against the floor and a per-record loop, ORT threads,
cold start, and AWS calls per 1,000 records.

    python bench/score_bench.py [--model-dir models/artifacts] [--out bench/results/score.json]

- handler: the real `score.app.lambda_handler` (Powertools logging and metrics to /dev/null)
  with boto3 clients replaced by in-memory fakes that answer like the services, so every
  byte of our own code runs, but no network and no botocore serialisation;
- floor: what no scorer can avoid for the same batch — base64 + JSON decode of every record,
  the float32 matrix in model order and ONE session.run;
- per-record loop: what many samples do — decode, one session.run and one PutItem per record;
- CPU is process CPU time (all threads), per record, median over repetitions;
- cold start: a fresh interpreter timing `import score.app` (settings, onnxruntime, session,
  clients) and the first batch of 500 (fake clients);
- calls: the handler against moto with the template's tables, 1,000 records per batch size.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in ("functions", "local"):
    if str(ROOT / path) not in sys.path:
        sys.path.insert(0, str(ROOT / path))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from embedded.lambda_events import KinesisEntry, kinesis_event  # noqa: E402
from simulator import SimulationConfig, encode_transaction, simulate  # noqa: E402
from streamscore.adapters.dynamodb import serialize  # noqa: E402
from streamscore.contracts import Transaction  # noqa: E402
from streamscore.features import replay_features  # noqa: E402
from streamscore.items import to_item_value  # noqa: E402
from streamscore.preprocess import encode_feature_record, feature_record  # noqa: E402
from streamscore.records import StreamRecord  # noqa: E402

BATCH_SIZES = (100, 500, 1000)
RECORDS_PER_SIZE = 6000  # CPU repetitions: 60 x 100, 12 x 500, 6 x 1000
THREAD_BATCH = 500
FEATURES_STREAM = "streamscore-FeaturesStream-bench"
TRANSACTIONS_STREAM = "streamscore-TransactionsStream-bench"
SHARD = "shardId-000000000000"
REGION = "us-east-1"
BASE_ENV = {
    "PREDICTIONS_TABLE": "bench-predictions",
    "QUARANTINE_TABLE": "bench-quarantine",
    "MONITORING_TABLE": "bench-monitoring",
    "EVENT_BUS_NAME": "bench-bus",
    "REVIEW_THRESHOLD": "",
    "DECLINE_THRESHOLD": "",
    "ALERT_ON_REVIEW": "false",
    "PREDICTIONS_TTL_DAYS": "90",
    "QUARANTINE_TTL_DAYS": "30",
    "MONITORING_TTL_DAYS": "90",
    "POWERTOOLS_SERVICE_NAME": "score",
    "POWERTOOLS_METRICS_NAMESPACE": "StreamScoreBench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


# ----------------------------------------------------------------------------- data


def feature_payloads(n: int, seed: int = 11) -> list[bytes]:
    """`n` FeaturesStream payloads from simulated traffic, after the cards have some history."""
    simulation = simulate(SimulationConfig(seed=seed, n_cards=1500, days=10.0))
    transactions = [
        Transaction.model_validate_json(encode_transaction(t)) for t in simulation.transactions
    ]
    features = list(replay_features(transactions))
    start = max(0, len(transactions) - n)
    if len(transactions) - start < n:
        raise SystemExit(f"the simulation made only {len(transactions)} transactions, need {n}")
    payloads = []
    for index in range(start, start + n):
        txn = transactions[index]
        arrived = txn.event_time.timestamp() + 0.3
        source = StreamRecord(TRANSACTIONS_STREAM, SHARD, str(index), txn.card_id, "", arrived)
        now = datetime.fromtimestamp(arrived + 0.2, UTC)
        payloads.append(encode_feature_record(feature_record(source, txn, features[index], now)))
    return payloads


def events(payloads: list[bytes], size: int) -> list[dict[str, Any]]:
    return [
        kinesis_event(
            [KinesisEntry("card", p) for p in payloads[start : start + size]],
            FEATURES_STREAM,
            SHARD,
            first_index=start,
        )
        for start in range(0, len(payloads) - size + 1, size)
    ]


# ----------------------------------------------------------------------------- fakes


class FakeDynamoDB:
    """Answers like DynamoDB when everything succeeds (nothing stored: every record is new)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls["BatchGetItem"] += 1
        return {"Responses": {table: [] for table in RequestItems}, "UnprocessedKeys": {}}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls["BatchWriteItem"] += 1
        return {"UnprocessedItems": {}}

    def put_item(self, **_: Any) -> dict[str, Any]:
        self.calls["PutItem"] += 1
        return {}


class FakeEvents:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls["PutEvents"] += 1
        return {
            "FailedEntryCount": 0,
            "Entries": [{"EventId": str(i)} for i in range(len(Entries))],
        }


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


class FakeHttp:
    """Answers requests at botocore's before-send step, like the services when all succeeds."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse, HTTPHeaders  # noqa: PLC0415

        operation = dict(request.headers).get("X-Amz-Target", b"")
        operation = (operation.decode() if isinstance(operation, bytes) else operation).rsplit(
            ".", 1
        )[-1]
        self.calls[operation] += 1
        body = json.loads(request.body or b"{}")
        answer: dict[str, Any] = {}
        if operation == "BatchGetItem":
            answer = {"Responses": {t: [] for t in body["RequestItems"]}, "UnprocessedKeys": {}}
        elif operation == "BatchWriteItem":
            answer = {"UnprocessedItems": {}}
        elif operation == "PutEvents":
            answer = {
                "FailedEntryCount": 0,
                "Entries": [{"EventId": str(i)} for i in range(len(body["Entries"]))],
            }
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, 200, headers, _Body(json.dumps(answer).encode()))


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def import_app(env: dict[str, str], clients: dict[str, Any] | None = None) -> ModuleType:
    """score.app imported afresh with `env`; boto3.client hands out `clients` when given."""
    import boto3  # noqa: PLC0415

    for name in ("score.app", "streamscore.observability"):
        sys.modules.pop(name, None)
    original = boto3.client
    if clients is not None:
        boto3.client = lambda service, **_: clients[service]  # type: ignore[assignment]
    try:
        with environment(env):
            return importlib.import_module("score.app")
    finally:
        boto3.client = original


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Handlers print logs and EMF: format them as in Lambda, write them to /dev/null (fd 1)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            with contextlib.redirect_stdout(sink):
                yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


class Context:
    function_name = "streamscore-bench"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:streamscore-bench"
    memory_limit_in_mb = 2048
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/streamscore-bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


# ----------------------------------------------------------------------------- measurements


def cpu_per_record(work: Callable[[], Any], records: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per record of one call of `work`."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return (
        (time.process_time() - cpu) / records * 1e6,
        (time.perf_counter() - wall) / records * 1e6,
    )


def floor_work(app: ModuleType, event: dict[str, Any]) -> Callable[[], Any]:
    """Decode every record, build the float32 matrix in model order, one session.run."""
    model = app.model
    names = model.feature_names

    def work() -> Any:
        docs = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
        matrix = np.array([[d["features"][n] for n in names] for d in docs], dtype=np.float32)
        return model.session.run([model.output_name], {model.input_name: matrix})

    return work


def loop_work(app: ModuleType, event: dict[str, Any], client: FakeDynamoDB) -> Callable[[], Any]:
    """Per record: decode, one session.run on one row, one PutItem (serialised as boto3 would)."""
    model = app.model
    names = model.feature_names
    column = model.card.positive_class_index

    def work() -> None:
        for record in event["Records"]:
            doc = json.loads(base64.b64decode(record["kinesis"]["data"]))
            row = np.array([[doc["features"][n] for n in names]], dtype=np.float32)
            (probabilities,) = model.session.run([model.output_name], {model.input_name: row})
            item = {
                "transaction_id": doc["transaction_id"],
                "score": float(probabilities[0][column]),
                "model_version": model.model_version,
                "event_time": doc["event_time"],
            }
            client.put_item(TableName="bench-predictions", Item=serialize(to_item_value(item)))

    return work


def median_pair(samples: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "cpu_us_per_record": round(statistics.median(s[0] for s in samples), 2),
        "wall_us_per_record": round(statistics.median(s[1] for s in samples), 2),
    }


def bench_cpu(model_dir: Path, payloads: list[bytes], fake: str) -> dict[str, Any]:
    """Handler, floor and per-record loop on the same batches, interleaved (same machine noise).

    fake="clients": boto3 clients replaced by FakeDynamoDB / FakeEvents (only our code runs);
    fake="http": real boto3 clients whose requests FakeHttp answers at botocore's send step
    (serialisation, signing and parsing run as in Lambda; only the network is missing).
    """
    env = BASE_ENV | {"MODEL_DIR": str(model_dir)}
    if fake == "clients":
        dynamodb, events_client = FakeDynamoDB(), FakeEvents()
        app = import_app(env, {"dynamodb": dynamodb, "events": events_client})
        loop_client: Any = FakeDynamoDB()
        counters = [dynamodb.calls, events_client.calls]
    else:
        import boto3  # noqa: PLC0415

        http = FakeHttp()
        app = import_app(env)
        with environment(BASE_ENV):
            loop_client = boto3.client("dynamodb", region_name=REGION, config=app.config)
        for client in (app.dynamodb, app.events, loop_client):
            client.meta.events.register("before-send", http)
        counters = [http.calls]
    results: dict[str, Any] = {"fake": fake}
    for size in BATCH_SIZES:
        batches = events(payloads, size)
        handler: list[tuple[float, float]] = []
        floor: list[tuple[float, float]] = []
        loop: list[tuple[float, float]] = []
        with quiet():
            app.lambda_handler(batches[0], Context())  # warm: first-call allocations
            for event in batches:
                handler.append(cpu_per_record(partial(app.lambda_handler, event, Context()), size))
                floor.append(cpu_per_record(floor_work(app, event), size))
                loop.append(cpu_per_record(loop_work(app, event, loop_client), size))
        h, f, lp = median_pair(handler), median_pair(floor), median_pair(loop)
        results[str(size)] = {
            "batches": len(batches),
            "handler": h,
            "floor": f,
            "per_record_loop": lp,
            "handler_over_floor_cpu": round(h["cpu_us_per_record"] / f["cpu_us_per_record"], 2),
            "loop_over_handler_cpu": round(lp["cpu_us_per_record"] / h["cpu_us_per_record"], 2),
        }
    results["fake_calls"] = dict(sum(counters, Counter()))
    return results


def bench_threads(model_dir: Path, payloads: list[bytes], repeats: int = 60) -> dict[str, Any]:
    """session.run at batch 500: intra-op threads 1 vs 2, on both cores and pinned to one."""
    card = json.loads((model_dir / "model_card.json").read_text())
    docs = [json.loads(p) for p in payloads[:THREAD_BATCH]]
    matrix = np.array(
        [[d["features"][n] for n in card["feature_names"]] for d in docs], dtype=np.float32
    )
    cores = sorted(os.sched_getaffinity(0))
    results: dict[str, Any] = {}
    for placement, affinity in (("2_cores", set(cores)), ("1_core", {cores[0]})):
        for threads in (1, 2):
            os.sched_setaffinity(0, affinity)  # ORT's pool threads inherit it
            try:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                session = ort.InferenceSession(
                    str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
                )
                feed = {card["input_name"]: matrix}
                session.run(None, feed)
                samples = []
                for _ in range(repeats):
                    cpu, wall = time.process_time(), time.perf_counter()
                    session.run([card["output_name"]], feed)
                    samples.append(
                        ((time.process_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3)
                    )
                del session
            finally:
                os.sched_setaffinity(0, set(cores))
            results[f"{placement}_intra_{threads}"] = {
                "wall_ms": round(statistics.median(s[1] for s in samples), 3),
                "cpu_ms": round(statistics.median(s[0] for s in samples), 3),
            }
    return results


COLD_START_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path[:0] = [{functions!r}, {local!r}, {bench!r}]
import numpy, onnxruntime
t1 = time.perf_counter()
import boto3
t2 = time.perf_counter()
import streamscore.observability
t3 = time.perf_counter()
import score.app as app
t4 = time.perf_counter()
import score_bench as bench  # the fakes, after the measured imports
dynamodb, events = bench.FakeDynamoDB(), bench.FakeEvents()
for client, fake in ((app.dynamodb, dynamodb), (app.events, events)):
    for name in ("batch_get_item", "batch_write_item", "put_item", "put_events"):
        if hasattr(fake, name):
            setattr(client, name, getattr(fake, name))
event = json.loads(sys.stdin.read())
with bench.quiet():
    t5 = time.perf_counter()
    app.lambda_handler(event, bench.Context())
    t6 = time.perf_counter()
    app.lambda_handler(event, bench.Context())
    t7 = time.perf_counter()
print(json.dumps({{
    "import_numpy_onnxruntime_ms": (t1 - t0) * 1e3,
    "import_boto3_ms": (t2 - t1) * 1e3,
    "import_powertools_xray_ms": (t3 - t2) * 1e3,
    "init_app_ms": (t4 - t3) * 1e3,
    "first_batch_ms": (t6 - t5) * 1e3,
    "second_batch_ms": (t7 - t6) * 1e3,
}}))
"""


def bench_cold_start(model_dir: Path, payloads: list[bytes], runs: int = 5) -> dict[str, Any]:
    """A fresh interpreter: imports, init (settings, session and probe, clients) and the first batch of 500.

    init_app_ms is what score.app adds on top of the libraries: pydantic settings, the model
    (ONNX session and one probe run), two boto3 clients and the thread pools.
    """
    script = COLD_START_SCRIPT.format(
        functions=str(ROOT / "functions"), local=str(ROOT / "local"), bench=str(ROOT / "bench")
    )
    event = json.dumps(events(payloads, THREAD_BATCH)[0])
    env = os.environ | BASE_ENV | {"MODEL_DIR": str(model_dir)}
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", script],
            input=event,
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        sample = json.loads(out.stdout.strip().splitlines()[-1])
        sample["process_wall_ms"] = (time.perf_counter() - started) * 1e3
        samples.append(sample)
    result = {key: round(statistics.median(s[key] for s in samples), 1) for key in samples[0]}
    result["import_and_first_batch_ms"] = round(
        sum(v for k, v in result.items() if k not in ("second_batch_ms", "process_wall_ms")), 1
    )
    result["runs"] = runs
    return result


def bench_calls(model_dir: Path, payloads: list[bytes]) -> dict[str, Any]:
    """AWS calls per 1,000 records against moto with the template's tables, per batch size."""
    import boto3  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    from embedded.template import load_template, table_definitions  # noqa: PLC0415

    definitions = table_definitions(load_template(ROOT / "template.yaml"))
    names = {
        "PredictionsTable": BASE_ENV["PREDICTIONS_TABLE"],
        "QuarantineTable": BASE_ENV["QUARANTINE_TABLE"],
        "MonitoringTable": BASE_ENV["MONITORING_TABLE"],
    }
    results: dict[str, Any] = {}
    for size in BATCH_SIZES:
        with environment(BASE_ENV), mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            for logical_id, table in names.items():
                dynamodb.create_table(TableName=table, **definitions[logical_id])
            boto3.client("events", region_name=REGION).create_event_bus(
                Name=BASE_ENV["EVENT_BUS_NAME"]
            )
            app = import_app(BASE_ENV | {"MODEL_DIR": str(model_dir)})
            counted: dict[str, Counter[str]] = {"first": Counter(), "replay": Counter()}
            alerts = 0
            for phase, counter in counted.items():

                def count(model: Any, counter: Counter[str] = counter, **_: Any) -> None:
                    counter[model.name] += 1

                for client in (app.dynamodb, app.events):
                    client.meta.events.register("before-call.*.*", count)
                with quiet():
                    for event in events(payloads[:1000], size):
                        result = app.lambda_handler(event, Context())
                        assert not result["batchItemFailures"], result
                for client in (app.dynamodb, app.events):
                    client.meta.events.unregister("before-call.*.*", count)
                if phase == "first":
                    alerts = sum(
                        1
                        for item in _scan(dynamodb, names["PredictionsTable"])
                        if item["decision"]["S"] == "decline"
                    )
            results[str(size)] = {
                "first_delivery": dict(counted["first"]),
                "first_delivery_total": sum(counted["first"].values()),
                "replay": dict(counted["replay"]),
                "replay_total": sum(counted["replay"].values()),
                "declines": alerts,
                "duplicate_lookup_calls": counted["first"]["BatchGetItem"],
            }
    return results


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    items, kwargs = [], {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "artifacts")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "score.json")
    args = parser.parse_args()
    model_dir = args.model_dir.resolve()
    card = json.loads((model_dir / "model_card.json").read_text())

    load_before = [round(x, 2) for x in os.getloadavg()]
    print("simulating feature records ...", file=sys.stderr)
    payloads = feature_payloads(RECORDS_PER_SIZE)
    print("per-record CPU (handler, floor, loop) ...", file=sys.stderr)
    cpu = {fake: bench_cpu(model_dir, payloads, fake) for fake in ("clients", "http")}
    print("ONNX Runtime threads ...", file=sys.stderr)
    threads = bench_threads(model_dir, payloads)
    print("cold start ...", file=sys.stderr)
    cold = bench_cold_start(model_dir, payloads)
    print("AWS calls against moto ...", file=sys.stderr)
    calls = bench_calls(model_dir, payloads)

    result = {
        "benchmark": "bench/score_bench.py",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "model_version": card["model_version"],
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "settings": {
            "ort_intra_op_threads": 1,
            "ort_inter_op_threads": 1,
            "io_threads": 4,
            "client_parameter_validation": False,
        },
        "cpu_per_record": cpu,
        "ort_threads_batch_500": threads,
        "cold_start": cold,
        "aws_calls_per_1000_records": calls,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
