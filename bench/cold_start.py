"""Part 2: cold start of each function in a fresh interpreter, split into its phases.

The parent writes one setup file per function (the first batch, the tables' keys and what they
hold) and starts `python -m bench.cold_start FUNCTION SETUP` several times, the functions in
rotating order. The child times, in this order:

- imports: the modules the handler module imports (read from its source), plus onnxruntime
  for score (load_model imports it);
- model load: score's `load_model` (ONNX session and probe run), the drift check's
  `load_baseline`; preprocess has none;
- init: the rest of the handler module's body (settings, boto3 clients, pools);
- first batch: one invocation with AWS answered in memory (bench/fake_aws.py); the drift
  check's first one also imports matplotlib to draw its picture;
- second batch: the same again, warm.

Tracing is on, as in Lambda (Tracing: Active): LAMBDA_TASK_ROOT and a trace header are set and
the X-Ray SDK emits its segments by UDP to 127.0.0.1:2000, where nothing listens.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()

ROOT = Path(__file__).resolve().parents[1]
EXTRA_IMPORTS = {"score": ["onnxruntime"], "preprocess": [], "drift_check": []}
MODEL_LOADERS = {
    "score": ("streamscore.scoring.model", "load_model"),
    "drift_check": ("streamscore.drift.baseline", "load_baseline"),
}
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def imported_modules(function: str) -> list[str]:
    """Every module the handler module imports at its top, in source order."""
    source = (ROOT / "functions" / "streamscore" / "handlers" / f"{function}.py").read_text(
        encoding="utf-8"
    )
    names: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            names.append(node.module)
    return names + EXTRA_IMPORTS[function]


def _child(function: str, setup_path: str) -> dict[str, Any]:
    for root in ("models", "local", "functions"):
        sys.path.insert(0, str(ROOT / root))
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the handler's logs, for the process's life
    phases: dict[str, float] = {}

    started = time.perf_counter()
    for name in imported_modules(function):
        importlib.import_module(name)
    phases["imports_ms"] = (time.perf_counter() - started) * 1e3

    loading = {"seconds": 0.0}
    if function in MODEL_LOADERS:
        module_name, attribute = MODEL_LOADERS[function]
        module = importlib.import_module(module_name)
        loader = getattr(module, attribute)

        def timed_loader(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return loader(*args, **kwargs)
            finally:
                loading["seconds"] += time.perf_counter() - begun

        setattr(module, attribute, timed_loader)
    started = time.perf_counter()
    app = importlib.import_module(f"streamscore.handlers.{function}")
    body = time.perf_counter() - started
    phases["model_load_ms"] = loading["seconds"] * 1e3
    phases["init_ms"] = (body - loading["seconds"]) * 1e3

    # after the measured phases: the fake AWS, the batch and a context
    from botocore.client import BaseClient  # noqa: PLC0415

    from bench.common import LambdaContext  # noqa: PLC0415
    from bench.fake_aws import FakeAWS  # noqa: PLC0415

    setup = json.loads(Path(setup_path).read_text(encoding="utf-8"))
    fake = FakeAWS(setup["table_keys"])
    fake.reset(setup["items"])
    # the clients the handler module made at init (its `clients`, as Lambda would use them)
    fake.attach(*(v for v in vars(app.clients).values() if isinstance(v, BaseClient)))
    for phase in ("first_batch_ms", "second_batch_ms"):
        started = time.perf_counter()
        app.lambda_handler(setup["event"], LambdaContext(function))
        phases[phase] = (time.perf_counter() - started) * 1e3
    phases["since_interpreter_start_ms"] = (time.perf_counter() - STARTED) * 1e3
    sys.stdout.flush()
    sys.stdout = real_stdout
    return phases


def lambda_like_env(function: str) -> dict[str, str]:
    from bench.common import function_env  # noqa: PLC0415

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POWERTOOLS_", "LAMBDA_", "AWS_", "_X_AMZN"))
    }
    env |= function_env(function)
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    env |= {
        "LAMBDA_TASK_ROOT": str(ROOT / "functions"),
        "AWS_LAMBDA_FUNCTION_NAME": f"streamscore-{function}",
        "_X_AMZN_TRACE_ID": TRACE_HEADER,
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "MPLCONFIGDIR": str(Path(os.environ.get("TMPDIR", "/tmp")) / "bench-matplotlib"),
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "functions", "local", "models")),
        "PYTHONDONTWRITEBYTECODE": "1",
        "BOTO_DISABLE_CRT": "true",
    }
    return env


def write_setups(
    directory: Path,
    table_keys: dict[str, tuple[str, ...]],
    batch_sizes: dict[str, int],
    window_items: list[dict[str, Any]],
) -> dict[str, Path]:
    """The first batch of each function and what its tables hold, one JSON file each."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from bench.common import NAMES  # noqa: PLC0415
    from bench.traffic import (  # noqa: PLC0415
        feature_events,
        ledger_items,
        state_items,
        transaction_events,
        window,
    )
    from embedded.lambda_events import scheduled_event  # noqa: PLC0415

    now = datetime.now(UTC).replace(microsecond=0)
    transactions = transaction_events(batch_sizes["preprocess"])[0]
    cards = {r["kinesis"]["partitionKey"] for r in transactions["Records"]}
    tables = {
        NAMES["EntityStateTable"]: state_items(window().states, now, cards),
        NAMES["FeaturesTable"]: ledger_items(window().states, now, cards),
    }
    setups = {
        "preprocess": (transactions, tables),
        "score": (feature_events(batch_sizes["score"], 1)[0], {}),
        "drift_check": (
            scheduled_event(now.isoformat().replace("+00:00", "Z")),
            {NAMES["MonitoringTable"]: window_items},
        ),
    }
    paths = {}
    for function, (event, items) in setups.items():
        path = directory / f"{function}.json"
        path.write_text(
            json.dumps({"event": event, "items": items, "table_keys": table_keys}),
            encoding="utf-8",
        )
        paths[function] = path
    return paths


def measure(setups: dict[str, Path], runs: int) -> dict[str, Any]:
    """Each function `runs` times in a fresh interpreter, the functions in rotating order."""
    import subprocess  # noqa: PLC0415

    from bench.common import progress, summary  # noqa: PLC0415

    samples: dict[str, list[dict[str, float]]] = {f: [] for f in setups}
    startup: list[float] = []
    names = list(setups)
    for run in range(runs):
        progress(f"cold start, round {run + 1} of {runs}")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        startup.append((time.perf_counter() - started) * 1e3)
        for function in names[run % len(names) :] + names[: run % len(names)]:
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "bench.cold_start", function, str(setups[function])],
                env=lambda_like_env(function),
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                raise SystemExit(f"cold start of {function} failed:\n{done.stderr[-3000:]}")
            sample = json.loads(done.stdout.strip().splitlines()[-1])
            sample["process_ms"] = (time.perf_counter() - started) * 1e3
            samples[function].append(sample)
    results: dict[str, Any] = {"runs": runs, "interpreter_startup_ms": summary(startup, 1)}
    for function, rows in samples.items():
        phases = {key: summary([r[key] for r in rows], 1) for key in rows[0]}
        total = [
            r["imports_ms"] + r["model_load_ms"] + r["init_ms"] + r["first_batch_ms"] for r in rows
        ]
        results[function] = phases | {"cold_total_ms": summary(total, 1)}
    return results


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2])))
