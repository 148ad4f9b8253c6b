"""PreprocessFunction benchmark: per-record CPU of the handler, AWS calls per 1,000 records, cold start.

    PYTHONPATH=functions:local:models python bench/preprocess_bench.py [--out bench/results/preprocess.json]

- cpu/handler: the real `preprocess.app.lambda_handler` (Powertools logging and metrics to
  /dev/null) with DynamoDB and Kinesis answered in memory at botocore's HTTP layer (a
  `before-send` hook): our code, botocore's parameter validation, serialisation, signing and
  response parsing all run; only the network is gone;
- cpu/domain: `preprocess_batch` alone with in-memory ports (no item conversion, no JSON, no
  botocore), to show what the handler adds around the domain;
- the traffic is the simulator's (its card repetition), with 2% invalid records interleaved;
  state carries over from batch to batch, as on a shard; CPU is process CPU time (all
  threads) per record, median over batches (min-max alongside);
- calls: the handler against moto with the template's own tables and streams, 1,000 records
  in batches of 500, counted per API with botocore `before-call` hooks;
- cold start: a fresh interpreter timing `import preprocess.app` (imports, settings, clients,
  pools), median of 5, tracing off (as locally) and on (as in Lambda, X-Ray SDK patching
  botocore); `-X importtime` self times summed per package family; the module body alone
  (its imports already done) as "init".
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in ("functions", "local", "models"):
    if str(ROOT / _path) not in sys.path:
        sys.path.insert(0, str(ROOT / _path))

import boto3  # noqa: E402
import numpy as np  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto import mock_aws  # noqa: E402

from embedded.lambda_events import KinesisEntry, kinesis_event  # noqa: E402
from embedded.template import load_template, stream_definitions, table_definitions  # noqa: E402
from simulator import SimulationConfig, encode_transaction, inject_invalid, simulate  # noqa: E402
from streamscore.features import CardState  # noqa: E402
from streamscore.preprocess import PreprocessPorts, preprocess_batch  # noqa: E402
from streamscore.records import parse_kinesis_event  # noqa: E402

BATCH_SIZES = (100, 500, 1000)
RECORDS_PER_SIZE = 6000  # 60 batches of 100, 12 of 500, 6 of 1000
CALLS_BATCH = 500
CALLS_RECORDS = 1000
INVALID_RATE = 0.02
COLD_START_RUNS = 5
REGION = "us-east-1"
TRANSACTIONS_STREAM = "streamscore-TransactionsStream-bench"
SHARD = "shardId-000000000000"
TABLE_KEYS = {
    "bench-entity-state": ("card_id",),
    "bench-features": ("transaction_id",),
    "bench-quarantine": ("record_id",),
    "bench-monitoring": ("pk", "sk"),
}
FUNCTION_ENV = {
    "ENTITY_STATE_TABLE": "bench-entity-state",
    "FEATURES_TABLE": "bench-features",
    "QUARANTINE_TABLE": "bench-quarantine",
    "MONITORING_TABLE": "bench-monitoring",
    "FEATURES_STREAM_NAME": "bench-features-stream",
    "POWERTOOLS_SERVICE_NAME": "preprocess",
    "POWERTOOLS_METRICS_NAMESPACE": "StreamScoreBench",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}
AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
FAMILIES = {  # import-time attribution: a module's own time goes to its top package's family
    # with what botocore and urllib3 pull in when installed (CRT, pyOpenSSL)
    "boto3": {
        "boto3",
        "botocore",
        "s3transfer",
        "jmespath",
        "dateutil",
        "urllib3",
        "six",
        "awscrt",
        "_awscrt",
        "OpenSSL",
        "cryptography",
        "cffi",
        "_cffi_backend",
    },
    "powertools": {"aws_lambda_powertools", "aws_xray_sdk", "wrapt", "jsonpickle"},
    "pydantic": {
        "pydantic",
        "pydantic_core",
        "annotated_types",
        "typing_inspection",
        "typing_extensions",
    },
    "streamscore": {"streamscore"},
    "handler module body": {"preprocess"},  # settings, two boto3 clients, pools, ports
}


class LambdaContext:
    function_name = "streamscore-preprocess"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:streamscore-preprocess"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/streamscore-preprocess"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


# ----------------------------------------------------------------------------- traffic


def traffic(n_batches: int, batch_size: int, seed: int = 11) -> list[dict[str, Any]]:
    """Consecutive Kinesis batches of simulated traffic (2% invalid), sequence numbers growing."""
    needed = n_batches * batch_size
    simulated = simulate(SimulationConfig(seed=seed, n_cards=2000, days=14.0))
    payloads = [encode_transaction(t) for t in simulated.transactions]
    mixed = inject_invalid(payloads, np.random.default_rng(seed), INVALID_RATE)
    if len(mixed) < needed:
        raise SystemExit(f"the simulation has {len(mixed)} records, {needed} needed")
    entries = []
    for payload, category in mixed[:needed]:
        key = "card_bad"
        if category is None:
            key = json.loads(payload)["card_id"]
        entries.append(KinesisEntry(key, payload, arrival=1_772_442_000.0))
    return [
        kinesis_event(
            entries[start : start + batch_size], TRANSACTIONS_STREAM, SHARD, first_index=start
        )
        for start in range(0, needed, batch_size)
    ]


def distinct_cards(event: Mapping[str, Any]) -> int:
    return len({r["kinesis"]["partitionKey"] for r in event["Records"]} - {"card_bad"})


# ----------------------------------------------------------------------------- AWS in memory


# One sink for the whole run: Powertools keeps the first handler stream of its logger.
DEVNULL = open(os.devnull, "w")  # noqa: SIM115


class _Body:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class InMemoryAWS:
    """Answers DynamoDB and Kinesis JSON requests at botocore's HTTP layer, keeping items in memory."""

    def __init__(self) -> None:
        self.items: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {t: {} for t in TABLE_KEYS}
        self.stream_records = 0
        self.calls: Counter[str] = Counter()
        self.cpu_seconds = 0.0  # spent answering, to take out of the handler's CPU
        self._lock = threading.Lock()

    def attach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-send", self.respond)

    def _key(self, table: str, item: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(next(iter(item[k].values())) for k in TABLE_KEYS[table])

    def respond(self, request: Any, **_: Any) -> AWSResponse:
        started = time.thread_time()
        operation = request.headers["X-Amz-Target"].decode().split(".", 1)[1]
        body = json.loads(request.body)
        with self._lock:
            self.calls[operation] += 1
            answer = getattr(self, operation)(body)
        response = AWSResponse(request.url, 200, {}, _Body(json.dumps(answer).encode()))
        with self._lock:
            self.cpu_seconds += time.thread_time() - started
        return response

    def BatchGetItem(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        responses = {
            table: [
                self.items[table][self._key(table, k)]
                for k in request["Keys"]
                if self._key(table, k) in self.items[table]
            ]
            for table, request in body["RequestItems"].items()
        }
        return {"Responses": responses, "UnprocessedKeys": {}}

    def BatchWriteItem(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        for table, requests in body["RequestItems"].items():
            for request in requests:
                item = request["PutRequest"]["Item"]
                self.items[table][self._key(table, item)] = item
        return {"UnprocessedItems": {}}

    def PutItem(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        table = body["TableName"]
        self.items[table][self._key(table, body["Item"])] = body["Item"]
        return {}

    def PutRecords(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        results = []
        for _ in body["Records"]:
            self.stream_records += 1
            results.append(
                {
                    "SequenceNumber": str(10**20 + self.stream_records),
                    "ShardId": "shardId-000000000000",
                }
            )
        return {"FailedRecordCount": 0, "Records": results}


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
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


def load_handler() -> ModuleType:
    """preprocess.app imported afresh (its Logger writing to /dev/null)."""
    for name in ("preprocess.app", "streamscore.observability"):
        sys.modules.pop(name, None)
    with (
        environment(AWS_ENV | FUNCTION_ENV | {"POWERTOOLS_TRACE_DISABLED": "true"}),
        contextlib.redirect_stdout(DEVNULL),
    ):
        return importlib.import_module("preprocess.app")


def without_parameter_validation(app: ModuleType) -> tuple[Any, Any]:
    """Point the handler's ports at clients that skip botocore's client-side parameter validation."""
    config = app.client_config().merge(Config(parameter_validation=False))
    dynamodb = boto3.client("dynamodb", config=config)
    kinesis = boto3.client("kinesis", config=config)
    for store in (app.ports.states, app.ports.features, app.ports.quarantine):
        store.table.client = dynamodb
    app.ports.monitoring.client = dynamodb
    app.ports.forwarder.writer.client = kinesis
    return dynamodb, kinesis


# ----------------------------------------------------------------------------- CPU


class MemoryPorts:
    """The domain's ports as plain dicts and lists: nothing but the domain runs."""

    def __init__(self) -> None:
        self.states: dict[str, CardState] = {}
        self.features: dict[str, dict[str, Any]] = {}
        self.forwarded = 0
        self.quarantined: dict[str, dict[str, Any]] = {}
        self.monitoring: dict[str, dict[str, Any]] = {}

    def load(self, card_ids: Sequence[str]) -> tuple[dict[str, CardState], set[str]]:
        return {c: self.states[c] for c in card_ids if c in self.states}, set()

    def ports(self) -> PreprocessPorts:
        outer = self

        class States:
            def load(self, card_ids: Sequence[str]) -> tuple[dict[str, CardState], set[str]]:
                return outer.load(card_ids)

            def save(self, states: Sequence[CardState], now: datetime) -> set[str]:
                outer.states.update((s.card_id, s) for s in states)
                return set()

        class Features:
            def load(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
                return {
                    t: copy.deepcopy(outer.features[t]) for t in ids if t in outer.features
                }, set()

            def save(self, records: Sequence[dict[str, Any]], now: datetime) -> set[str]:
                outer.features.update((r["transaction_id"], r) for r in records)
                return set()

        class Forwarder:
            def forward(self, records: Sequence[dict[str, Any]]) -> set[str]:
                outer.forwarded += len(records)
                return set()

        class Quarantine:
            def save(self, items: Sequence[dict[str, Any]]) -> set[str]:
                outer.quarantined.update((i["record_id"], i) for i in items)
                return set()

        class Monitoring:
            def put(self, item: dict[str, Any]) -> None:
                outer.monitoring[item["pk"]] = item

        return PreprocessPorts(States(), Features(), Forwarder(), Quarantine(), Monitoring())


def _summary(per_record_us: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(per_record_us), 2),
        "min": round(min(per_record_us), 2),
        "max": round(max(per_record_us), 2),
    }


def _handler_cpu(events: list[dict[str, Any]], size: int, validate: bool) -> dict[str, Any]:
    """Per-record CPU and wall of the handler over `events` (the first one a warm-up)."""
    with environment(AWS_ENV):
        app = load_handler()
        clients = (app.dynamodb, app.kinesis) if validate else without_parameter_validation(app)
    aws = InMemoryAWS()
    aws.attach(*clients)
    cpu_us, wall_us = [], []
    for index, event in enumerate(events):
        answering = aws.cpu_seconds
        cpu, wall = time.process_time(), time.perf_counter()
        with contextlib.redirect_stdout(DEVNULL):
            result = app.lambda_handler(event, LambdaContext())
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if result["batchItemFailures"]:
            raise SystemExit(f"batch {index} failed records: {result}")
        if index:
            cpu_us.append((cpu - (aws.cpu_seconds - answering)) / size * 1e6)
            wall_us.append(wall / size * 1e6)
    return {
        "cpu": _summary(cpu_us),
        "wall": _summary(wall_us),
        "calls_per_batch": {k: round(v / len(events), 2) for k, v in sorted(aws.calls.items())},
    }


def _domain_cpu(events: list[dict[str, Any]], size: int) -> dict[str, float]:
    ports = MemoryPorts().ports()
    cpu_us = []
    for index, event in enumerate(events):
        records = parse_kinesis_event(event)
        cpu = time.process_time()
        outcome = preprocess_batch(
            records, ports, now=datetime.now(UTC), quarantine_ttl_days=30, monitoring_ttl_days=90
        )
        cpu = time.process_time() - cpu
        if outcome.failed:
            raise SystemExit("the domain failed records with in-memory ports")
        if index:
            cpu_us.append(cpu / size * 1e6)
    return _summary(cpu_us)


def measure_cpu(records_per_size: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in BATCH_SIZES:
        n_batches = max(2, records_per_size // size)
        events = traffic(n_batches + 1, size)  # the first batch warms up, uncounted
        handler = _handler_cpu(events, size, validate=True)
        unvalidated = _handler_cpu(events, size, validate=False)
        results[str(size)] = {
            "batches": n_batches,
            "distinct_cards_per_batch": round(
                statistics.mean(distinct_cards(e) for e in events[1:]), 1
            ),
            "handler_cpu_us_per_record": handler["cpu"],
            "handler_wall_us_per_record": handler["wall"],
            "handler_cpu_us_per_record_without_parameter_validation": unvalidated["cpu"],
            "domain_cpu_us_per_record": _domain_cpu(events, size),
            "aws_calls_per_batch": handler["calls_per_batch"],
        }
    return results


# ----------------------------------------------------------------------------- calls against moto


def count_calls() -> dict[str, Any]:
    template = load_template(ROOT / "template.yaml")
    logical = {
        "EntityStateTable": "ENTITY_STATE_TABLE",
        "FeaturesTable": "FEATURES_TABLE",
        "QuarantineTable": "QUARANTINE_TABLE",
        "MonitoringTable": "MONITORING_TABLE",
    }
    events = traffic(CALLS_RECORDS // CALLS_BATCH, CALLS_BATCH, seed=13)
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.service_name}.{model.name}"] += 1

    with environment(AWS_ENV), mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        kinesis = boto3.client("kinesis", region_name=REGION)
        for logical_id, kwargs in table_definitions(template).items():
            if logical_id in logical:
                dynamodb.create_table(TableName=FUNCTION_ENV[logical[logical_id]], **kwargs)
        kinesis.create_stream(
            StreamName=FUNCTION_ENV["FEATURES_STREAM_NAME"],
            **stream_definitions(template)["FeaturesStream"],
        )
        app = load_handler()
        for client in (app.dynamodb, app.kinesis):
            client.meta.events.register("before-call.*.*", count)
        for event in events:
            with contextlib.redirect_stdout(DEVNULL):
                result = app.lambda_handler(event, LambdaContext())
            if result["batchItemFailures"]:
                raise SystemExit(f"moto run failed records: {result}")
    total = sum(calls.values())
    scale = 1000 / CALLS_RECORDS
    return {
        "records": CALLS_RECORDS,
        "batch_size": CALLS_BATCH,
        "distinct_cards_per_batch": [distinct_cards(e) for e in events],
        "per_1000_records": {k: round(v * scale, 1) for k, v in sorted(calls.items())},
        "total_per_1000_records": round(total * scale, 1),
    }


# ----------------------------------------------------------------------------- cold start

_TIME_IMPORT = """
import json, sys, time
for name in {preload!r}:
    __import__(name)
started = time.perf_counter()
import preprocess.app
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""
# what preprocess.app imports, so that timing it afterwards leaves only its module body
_DEPENDENCIES = [
    "boto3",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.typing",
    "streamscore.adapters.dynamodb",
    "streamscore.adapters.kinesis",
    "streamscore.adapters.retry",
    "streamscore.observability",
    "streamscore.preprocess",
    "streamscore.records",
    "streamscore.settings",
    "streamscore.stores",
]


def _subprocess_env(tracing: bool) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "AWS_"))
    }
    env |= AWS_ENV | FUNCTION_ENV
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / p) for p in ("functions", "local", "models"))
    if tracing:  # what Lambda sets: the Tracer is enabled and patches botocore
        env |= {
            "LAMBDA_TASK_ROOT": "/var/task",
            "AWS_LAMBDA_FUNCTION_NAME": "streamscore-preprocess",
        }
    else:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def _timed_import(python: str, env: Mapping[str, str], preload: Sequence[str] = ()) -> float:
    code = _TIME_IMPORT.format(preload=list(preload))
    out = subprocess.run(
        [python, "-c", code], env=dict(env), capture_output=True, text=True, check=True
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def _import_split(python: str, env: Mapping[str, str]) -> dict[str, float]:
    """Self import time (ms) per package family, from one `-X importtime` run."""
    err = subprocess.run(
        [python, "-X", "importtime", "-c", "import preprocess.app"],
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    totals: Counter[str] = Counter()
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        root = name.split(".")[0]
        family = next((f for f, roots in FAMILIES.items() if root in roots), "other")
        totals[family] += int(self_us)
    return {family: totals[family] / 1000 for family in (*FAMILIES, "other")}


def _interpreter(python: str) -> dict[str, Any]:
    probe = (
        "import importlib.util, json, platform, boto3; print(json.dumps({'python': "
        "platform.python_version(), 'boto3': boto3.__version__, 'awscrt': "
        "importlib.util.find_spec('awscrt') is not None, 'pyopenssl': "
        "importlib.util.find_spec('OpenSSL') is not None}))"
    )
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def cold_start(runs: int, interpreters: Mapping[str, str]) -> dict[str, Any]:
    """Every configuration measured once per round, round after round, so that bursts of load
    on a shared machine fall on all of them alike."""
    configs = [
        (name, python, label, _subprocess_env(tracing))
        for name, python in interpreters.items()
        for label, tracing in (("tracing_off", False), ("tracing_on", True))
    ]
    startup: dict[str, list[float]] = {name: [] for name in interpreters}
    total: dict[tuple[str, str], list[float]] = {(c[0], c[2]): [] for c in configs}
    body: dict[tuple[str, str], list[float]] = {(c[0], c[2]): [] for c in configs}
    splits: dict[tuple[str, str], list[dict[str, float]]] = {(c[0], c[2]): [] for c in configs}
    for _ in range(runs):
        for name, python in interpreters.items():
            started = time.perf_counter()
            subprocess.run([python, "-c", "pass"], check=True)
            startup[name].append(time.perf_counter() - started)
        for name, python, label, env in configs:
            total[name, label].append(_timed_import(python, env))
            body[name, label].append(_timed_import(python, env, _DEPENDENCIES))
            splits[name, label].append(_import_split(python, env))
    results: dict[str, Any] = {}
    for name, python in interpreters.items():
        row: dict[str, Any] = _interpreter(python) | {
            "interpreter_startup_ms": round(statistics.median(startup[name]) * 1000, 1)
        }
        for label in ("tracing_off", "tracing_on"):
            times, parts = total[name, label], splits[name, label]
            row[label] = {
                "import_and_init_ms": {
                    "median": round(statistics.median(times) * 1000, 1),
                    "min": round(min(times) * 1000, 1),
                    "max": round(max(times) * 1000, 1),
                },
                "module_body_ms": round(statistics.median(body[name, label]) * 1000, 1),
                "import_self_ms_by_family": {
                    family: round(statistics.median(p[family] for p in parts), 1)
                    for family in parts[0]
                },
            }
        results[name] = row
    return results


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
    }


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"\npreprocess benchmark — {m['cpu']} x{m['cpus']}, Python {m['python']}, load {m['load_average_1m']}"
    )
    print("\nCPU per record, µs: median [min-max] over batches")
    print(
        f"{'batch':>6} {'cards':>6}  {'handler':<24}{'no param validation':<24}{'domain only':<22}{'wall':>8}"
    )
    for size, row in report["cpu"].items():
        cells = [
            row["handler_cpu_us_per_record"],
            row["handler_cpu_us_per_record_without_parameter_validation"],
            row["domain_cpu_us_per_record"],
        ]
        text = "".join(f"{c['median']:>7} [{c['min']:.0f}-{c['max']:.0f}]".ljust(24) for c in cells)
        wall = row["handler_wall_us_per_record"]["median"]
        print(f"{size:>6} {row['distinct_cards_per_batch']:>6}  {text}{wall:>6}")
    calls = report["calls"]
    print(
        f"\nAWS calls per 1,000 records (moto, batches of {calls['batch_size']}, "
        f"{calls['distinct_cards_per_batch']} distinct cards per batch)"
    )
    for api, count in calls["per_1000_records"].items():
        print(f"  {api:<28} {count:>6}")
    print(f"  {'total':<28} {calls['total_per_1000_records']:>6}")
    for name, cold in report["cold_start"].items():
        print(
            f"\nCold start, ms — {name} (boto3 {cold['boto3']}, awscrt {cold['awscrt']}, "
            f"pyOpenSSL {cold['pyopenssl']}); fresh interpreter, median of {COLD_START_RUNS}, "
            f"interpreter startup {cold['interpreter_startup_ms']} ms not included"
        )
        for label in ("tracing_off", "tracing_on"):
            row = cold[label]
            total = row["import_and_init_ms"]
            split = ", ".join(f"{k} {v}" for k, v in row["import_self_ms_by_family"].items())
            print(
                f"  {label:<12} import+init {total['median']} [{total['min']}-{total['max']}] "
                f"(module body alone {row['module_body_ms']})\n"
                f"  {'':<12} import self time: {split}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "preprocess.json")
    parser.add_argument(
        "--records", type=int, default=RECORDS_PER_SIZE, help="records per batch size"
    )
    parser.add_argument(
        "--lambda-python",
        help="an interpreter whose environment holds only what Lambda has (functions/requirements.txt"
        " + boto3): its cold start is measured too",
    )
    args = parser.parse_args()

    report = {
        "benchmark": "preprocess",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cpu": measure_cpu(args.records),
        "calls": count_calls(),
        "cold_start": cold_start(
            COLD_START_RUNS,
            {"dev venv": sys.executable}
            | ({"lambda-like venv": args.lambda_python} if args.lambda_python else {}),
        ),
        "notes": [
            "CPU: process CPU time of all threads per record; the first batch of each size is a warm-up.",
            "handler: real lambda_handler, Powertools on (logs/EMF to /dev/null), tracing off; "
            "DynamoDB and Kinesis answered in memory at botocore's HTTP layer (before-send); "
            "the CPU spent answering is measured (thread time) and taken out.",
            "no param validation: the same with clients built with parameter_validation=False.",
            "domain only: preprocess_batch with in-memory ports (no item conversion, JSON or botocore).",
            "calls: moto with the template's table and stream definitions; counted by before-call hooks.",
            "cold start: time of `import preprocess.app` in a fresh interpreter; module body = the "
            "same with its imports done beforehand; import self times from -X importtime.",
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(
        f"\nwritten to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
    )


if __name__ == "__main__":
    main()
