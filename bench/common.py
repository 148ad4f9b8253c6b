"""What every benchmark shares: environments, handler loading, a log sink, statistics, the machine."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

if TYPE_CHECKING:
    from streamscore.aws.clients import ClientOptions

from bench import ROOT

REGION = "us-east-1"
MODEL_DIR = ROOT / "models" / "artifacts"
TEMPLATE_PATH = ROOT / "template.yaml"
AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Table, stream, bus and bucket names the handlers are configured with in the benchmarks.
NAMES = {
    "EntityStateTable": "bench-entity-state",
    "FeaturesTable": "bench-features",
    "QuarantineTable": "bench-quarantine",
    "MonitoringTable": "bench-monitoring",
    "PredictionsTable": "bench-predictions",
    "TransactionsStream": "bench-transactions",
    "FeaturesStream": "bench-features-stream",
    "EventBus": "bench-bus",
    "ArtifactsBucket": "bench-artifacts",
}
COMMON_FUNCTION_ENV = {
    "POWERTOOLS_METRICS_NAMESPACE": "StreamScore",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
# Each function's environment as template.yaml gives it (names replaced by NAMES).
FUNCTION_ENV: dict[str, dict[str, str]] = {
    "preprocess": {
        "POWERTOOLS_SERVICE_NAME": "preprocess",
        "ENTITY_STATE_TABLE": NAMES["EntityStateTable"],
        "FEATURES_TABLE": NAMES["FeaturesTable"],
        "QUARANTINE_TABLE": NAMES["QuarantineTable"],
        "MONITORING_TABLE": NAMES["MonitoringTable"],
        "FEATURES_STREAM_NAME": NAMES["FeaturesStream"],
    },
    "score": {
        "POWERTOOLS_SERVICE_NAME": "score",
        "PREDICTIONS_TABLE": NAMES["PredictionsTable"],
        "QUARANTINE_TABLE": NAMES["QuarantineTable"],
        "MONITORING_TABLE": NAMES["MonitoringTable"],
        "EVENT_BUS_NAME": NAMES["EventBus"],
        "MODEL_DIR": str(MODEL_DIR),
        "REVIEW_THRESHOLD": "",
        "DECLINE_THRESHOLD": "",
        "ALERT_ON_REVIEW": "false",
        "ARTIFACTS_BUCKET": NAMES["ArtifactsBucket"],  # follows the registry (an empty pointer)
    },
    "drift_check": {
        "POWERTOOLS_SERVICE_NAME": "drift-check",
        "MONITORING_TABLE": NAMES["MonitoringTable"],
        "ARTIFACTS_BUCKET": NAMES["ArtifactsBucket"],
        "EVENT_BUS_NAME": NAMES["EventBus"],
        "MODEL_DIR": str(MODEL_DIR),
    },
}
# The Lambda runtime's boto3 has no awscrt, the dev environment does: botocore would sign with
# the CRT here and in pure Python there. Read by botocore at import.
LAMBDA_LIKE_BOTOCORE = {"BOTO_DISABLE_CRT": "true"}
FUNCTIONS = ("preprocess", "score", "drift_check")
LOGICAL_IDS = {
    "preprocess": "PreprocessFunction",
    "score": "ScoreFunction",
    "drift_check": "DriftCheckFunction",
}


def prepare_process() -> None:
    """Fake credentials, region and Powertools settings for the whole process: some are read
    at call time (single_metric reads the namespace), and nothing may reach a real account."""
    os.environ.update(AWS_ENV | COMMON_FUNCTION_ENV | LAMBDA_LIKE_BOTOCORE)


def function_env(function: str) -> dict[str, str]:
    return AWS_ENV | COMMON_FUNCTION_ENV | FUNCTION_ENV[function]


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


class CountingSink(io.TextIOBase):
    """A stdout that keeps nothing and counts the UTF-8 bytes written (log and EMF volume)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.keep: list[str] | None = None  # when a list, what is written is kept too

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        if self.keep is not None:
            self.keep.append(text)
        return len(text)


# One sink for the process: Powertools' Logger keeps the stream it found at its first import.
SINK = CountingSink()


class Function:
    """A handler module's stage, built by the module's own `build` and `handler` on clients
    the benchmark meters; `dynamodb`, `kinesis`, `events` and `s3` are those clients."""

    def __init__(self, clients: Any, stage: Any, lambda_handler: Callable[..., Any]):
        self.clients = clients
        self.stage = stage
        self.lambda_handler = lambda_handler

    def __getattr__(self, name: str) -> Any:
        if name in ("dynamodb", "kinesis", "events", "s3"):
            return getattr(self.clients, name)
        raise AttributeError(name)


def load_app(
    function: str,
    *,
    env: Mapping[str, str] | None = None,
    **client_options: Unpack[ClientOptions],
) -> Function:
    """The function's handler module imported afresh and its stage built (settings, clients,
    model from `env`), logging to SINK; `client_options` go to Clients.create (wire_format=False,
    user_agent_once=False, direct_context=False give it clients on botocore's own paths,
    streamscore.aws.wire), for side-by-side comparisons."""
    from streamscore.aws.clients import Clients  # noqa: PLC0415 - after prepare_process
    from streamscore.aws.retry import Backoff  # noqa: PLC0415
    from streamscore.core.settings import load_settings  # noqa: PLC0415

    env = env or function_env(function)
    module_name = f"streamscore.handlers.{function}"
    for name in (module_name, "streamscore.core.observability"):
        sys.modules.pop(name, None)
    with environment(env), contextlib.redirect_stdout(SINK):
        module = importlib.import_module(module_name)
        settings_model = importlib.import_module(SETTINGS[function][0])
        settings = load_settings(getattr(settings_model, SETTINGS[function][1]), env)
        clients = Clients.create(*SERVICES[function], **client_options)
        backoff = Backoff()
        stage = module.build(settings, clients, backoff)
        takes_backoff = "backoff" in module.handler.__code__.co_varnames
        handler = module.handler(stage, backoff) if takes_backoff else module.handler(stage)
    return Function(clients, stage, handler)


# each function's settings model and the clients its build needs
SETTINGS = {
    "preprocess": ("streamscore.preprocess.settings", "PreprocessSettings"),
    "score": ("streamscore.scoring.settings", "ScoreSettings"),
    "drift_check": ("streamscore.drift.settings", "DriftCheckSettings"),
}
SERVICES = {
    "preprocess": ("dynamodb", "kinesis"),
    "score": ("dynamodb", "events"),
    "drift_check": ("dynamodb", "s3", "events"),
}


@contextlib.contextmanager
def into_sink() -> Iterator[CountingSink]:
    with contextlib.redirect_stdout(SINK):
        yield SINK


class LambdaContext:
    function_version = "$LATEST"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_stream_name = "bench"

    def __init__(self, function: str = "bench", memory_mb: int = 1024) -> None:
        self.function_name = f"streamscore-{function}"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function}"
        self.memory_limit_in_mb = memory_mb
        self.log_group_name = f"/aws/lambda/streamscore-{function}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


# ----------------------------------------------------------------------------- statistics


def summary(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    """Median and min-max (and how many samples) of one figure."""
    if not values:
        raise ValueError("no samples")
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def interleaved[T](
    variants: Mapping[str, Callable[[T], float]], items: Sequence[T], warmup: int = 1
) -> dict[str, list[float]]:
    """Every variant on every item, the variants' order rotating item by item, so that a burst
    of load on a shared machine falls on all of them alike; the first `warmup` items are
    run but not kept. Returns each variant's samples in item order (pairs line up)."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index, item in enumerate(items):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            value = variants[name](item)
            if index >= warmup:
                samples[name].append(value)
    return samples


_CALIBRATION_DOC = {f"field_{i}": i * 0.5 for i in range(200)}


def calibration_us(_: object = None) -> float:
    """CPU µs of a fixed piece of work that never changes (JSON round trips, a sort): measured
    next to the handlers, it tells a slower machine from slower code."""
    started = time.process_time()
    for _round in range(20):
        json.loads(json.dumps(_CALIBRATION_DOC))
    sorted(range(5000, 0, -1))
    return (time.process_time() - started) * 1e6


def paired_ratio(
    numerator: Sequence[float], denominator: Sequence[float], digits: int = 2
) -> dict[str, float]:
    """Ratios of samples taken side by side (same item, same moment), summarised."""
    return summary([a / b for a, b in zip(numerator, denominator, strict=True)], digits)


# ----------------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    packages = (
        "boto3",
        "botocore",
        "aws-lambda-powertools",
        "pydantic",
        "numpy",
        "onnxruntime",
        "moto",
    )
    found = {"python": platform.python_version()}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--short"))}


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
