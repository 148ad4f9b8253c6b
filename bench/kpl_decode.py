"""KPL de-aggregation: the hand-written reader against `aws-kinesis-agg` + protobuf, side by side.

`python -m bench.kpl_decode [--quick]` (needs the dev venv, where aws-kinesis-agg is a test
dependency) prints, in one run:

- import: a fresh interpreter imports `streamscore.core.aggregation`, or the reference module
  `aws_kinesis_agg.deaggregator` with its protobuf runtime (what a cold start would pay),
  each timed inside the child, runs interleaved, median;
- decode per user record, on aggregates of simulated transactions: our `deaggregate` (digest,
  parse, keys and data out), the protobuf runtime's parse of the same message (plus the same
  digest and the same list out), and the reference's whole path (`deaggregate_records` on
  Lambda's event shape, base64 in and out); then `parse_kinesis_event` on a plain event and
  on the same records aggregated, per user record;
- the installed size of what the reference would add to the code package.

The results chose the reader (see the docstring of functions/streamscore/core/aggregation.py);
they are printed, not asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ROOT
from embedded.aggregation import encode_aggregate
from embedded.lambda_events import KinesisEntry, kinesis_event
from simulator import SimulationConfig, encode_transaction, simulate
from streamscore.core.aggregation import MAGIC, UserRecord, deaggregate
from streamscore.core.records import parse_kinesis_event

STREAM = "bench-transactions"
_CHILD = (
    "import sys, time; {before}; t = time.perf_counter(); import {module}; "
    "sys.stdout.write(repr(time.perf_counter() - t))"
)
# What the handlers import anyway (core/records.py, preprocess/batch.py, aws/): the marginal cost
# of either decoder is what it imports beyond these.
HANDLER_ALREADY = "import base64, binascii, hashlib, json, dataclasses, inspect, typing, collections, streamscore.core.errors"


def import_seconds(module: str, runs: int, before: str = "pass") -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    times = []
    for _ in range(runs):
        child = subprocess.run(
            [sys.executable, "-c", _CHILD.format(module=module, before=before)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        times.append(float(child.stdout))
    return times


def reference() -> tuple[Any, Callable[..., list[dict[str, Any]]]]:
    """The reference's protobuf message class and `deaggregate_records`; sys.path as it was.

    The reference module puts its own folder first on sys.path when imported; it is put back.
    """
    saved = list(sys.path)
    try:
        # the deaggregator first: importing it puts the folder messages_pb2 needs on sys.path
        deaggregator = importlib.import_module("aws_kinesis_agg.deaggregator")
        messages = importlib.import_module("aws_kinesis_agg.messages_pb2")
    finally:
        sys.path[:] = saved
    return messages.AggregatedRecord, deaggregator.deaggregate_records


def per_record_us(work: Callable[[], object], records: int, number: int, repeat: int) -> float:
    """Median over `repeat` rounds of `number` calls, in microseconds per user record."""
    rounds = timeit.repeat(work, number=number, repeat=repeat)
    return statistics.median(rounds) / number / records * 1e6


def package_bytes(*packages: str) -> int:

    total = 0
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            total += sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return total


def run(quick: bool) -> dict[str, Any]:
    runs, repeat = (5, 5) if quick else (15, 9)
    imports: dict[str, list[float]] = {}
    for _ in range(runs):  # interleaved: a busy moment slows all alike
        for before in ("pass", HANDLER_ALREADY):
            for name, module in (
                ("hand_written", "streamscore.core.aggregation"),
                ("aws_kinesis_agg_protobuf", "aws_kinesis_agg.deaggregator"),
            ):
                label = f"{name}{'' if before == 'pass' else '_after_handler_imports'}"
                imports.setdefault(label, []).extend(import_seconds(module, 1, before))

    batch = simulate(SimulationConfig(seed=7, n_cards=50, days=3.0))
    payloads = [encode_transaction(t) for t in batch.transactions[:100]]
    keys = [str(t["card_id"]) for t in batch.transactions[:100]]
    users = [UserRecord(k, p) for k, p in zip(keys, payloads, strict=True)]
    data = encode_aggregate(users)
    body = data[len(MAGIC) : -16]
    message_class, deaggregate_records = reference()

    def upb() -> list[tuple[str, bytes]]:
        if hashlib.md5(body, usedforsecurity=False).digest() != data[-16:]:
            raise ValueError("digest")
        message = message_class()
        message.ParseFromString(body)
        table = message.partition_key_table
        return [(table[r.partition_key_index], r.data) for r in message.records]

    aggregated_event = kinesis_event([KinesisEntry(keys[0], data)], STREAM)
    plain_event = kinesis_event(
        [KinesisEntry(k, p) for k, p in zip(keys, payloads, strict=True)], STREAM
    )
    lambda_records = aggregated_event["Records"]
    assert [u.data for u in deaggregate(data)] == [p for _, p in upb()] == payloads
    n = len(users)
    number = 200 if quick else 1000
    return {
        "import_ms": {k: statistics.median(v) * 1000 for k, v in imports.items()},
        "decode_us_per_user_record": {
            "hand_written": per_record_us(lambda: deaggregate(data), n, number, repeat),
            "protobuf_upb_parse": per_record_us(upb, n, number, repeat),
            "aws_kinesis_agg_deaggregate_records": per_record_us(
                lambda: deaggregate_records(lambda_records), n, number, repeat
            ),
        },
        "parse_kinesis_event_us_per_record": {
            "plain": per_record_us(lambda: parse_kinesis_event(plain_event), n, number, repeat),
            "aggregated": per_record_us(
                lambda: parse_kinesis_event(aggregated_event), n, number, repeat
            ),
        },
        "user_records_per_aggregate": n,
        "mean_user_record_bytes": sum(map(len, payloads)) / n,
        "reference_installed_bytes": package_bytes("google.protobuf", "aws_kinesis_agg"),
        "protobuf_backend": _backend(),
    }


def _backend() -> str:
    saved = list(sys.path)
    try:
        from google.protobuf.internal import api_implementation  # noqa: PLC0415
    finally:
        sys.path[:] = saved
    return str(api_implementation.Type())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and rounds")
    results = run(parser.parse_args().quick)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
