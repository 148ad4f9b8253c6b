"""End-to-end event latency per shard, from the producer's PutRecords to the score written: a
Monte Carlo model of the Kinesis event source mappings and the handlers' measured durations.

`python -m bench.latency [--quick] [--seed N]` writes bench/results/latency.json and prints a
table (about 30 s on a loaded 2-core machine; --quick about 2 s). Nothing here measures or calls AWS.

What is modelled, per shard and design, at 10, 100 and 1,000 transactions/s:

- Designs: two hops (PreprocessFunction on TransactionsStream, then ScoreFunction on
  FeaturesStream) with shared-throughput polling and a batching window of 0 or 1 s (1 s is the
  template's default, PreprocessMaximumBatchingWindowInSeconds and
  ScoreMaximumBatchingWindowInSeconds); two hops with enhanced fan-out (EFO), window 0; one hop
  (preprocess and score fused in one function) with EFO, window 0; one hop, polling, window 0.
- Arrivals: a Poisson process at the rate. A record becomes readable by the mapping after a
  propagation delay, a Gamma(2) random variable (assumed) with the Kinesis Developer Guide's
  average: about 200 ms for one shared-throughput consumer, 70 ms for EFO.
- The mapping (Lambda Developer Guide): one batch at a time per shard (ParallelizationFactor
  1), at most BatchSize records (the template's defaults). Polling: an idle mapping polls once
  a second (ticks on a grid of random phase); when an invocation ends with records waiting, the
  next batch follows at once, but polls stay at least 200 ms apart (5 GetRecords a second per
  shard). EFO: records are pushed, the next batch follows as soon as the function is free and a
  record has arrived. A batching window W begins when the previous invocation completes; the
  batch goes when the window ends or the batch is full. A window that ends with nothing gathered
  leaves the mapping idle, and the next one begins when it first sees a record (assumed).
- Invocations: a fixed gap per invocation (bench/prices.json, lambda_invoke_overhead_ms,
  assumed) plus the handler's duration for its n records, read at run time from
  bench/results/latest.json: CPU measured per record (median) x n / the CPU share of the
  function's memory + the time with an AWS call in flight with the p50 latencies of
  prices.json injected (the I/O path), piecewise-linear between the measured batch sizes. The
  I/O is part of the recorded figures, so no further AWS latency is added. The fused handler
  takes preprocess + score, with one invocation's gap instead of two (assumed).
- A record's features are on FeaturesStream when its preprocess invocation ends, and its score is
  written when its score invocation ends (both calls are in the handlers' last phase).

Every documented behaviour is cited in the results (`sources`, with the page's title and the
sentence); everything else is listed under `assumptions`. The design target, p99 <= 500 ms for
the fused function on EFO at 1,000 transactions/s per shard, is reported as met or not met,
never asserted.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench import ROOT
from bench.common import now_iso, write_json

RESULTS = ROOT / "bench" / "results" / "latency.json"
LATEST = ROOT / "bench" / "results" / "latest.json"
PRICES = ROOT / "bench" / "prices.json"
TEMPLATE_PATH = ROOT / "template.yaml"

RATES_TPS = (10.0, 100.0, 1000.0)
WINDOWS_S = (0.0, 1.0)  # the polling designs' batching windows
POLL_INTERVAL_S = 1.0  # "a base rate of once per second"
GET_RECORDS_PER_S = 5  # GetRecords calls per second per shard
PROPAGATION_MEAN_S = {"polling": 0.2, "efo": 0.07}
GAMMA_SHAPE = 2.0  # propagation delay's shape (assumed): 1 is exponential, larger is tighter
SENSITIVITY_SHAPES = (1.0, 2.0, 4.0)

TARGET_DESIGN = "one_hop_efo_w0"
TARGET_RATE_TPS = 1000.0
TARGET_P99_MS = 500.0

Delivery = Literal["polling", "efo"]
# When a polling mapping polls again at once after an invocation: when records are waiting
# (readable) as it ends, or only after a full batch (the older wording of the Lambda guide,
# "until it receives a batch that's smaller than the configured maximum batch size").
Repoll = Literal["records_waiting", "full_batch"]


class LatencyInputError(RuntimeError):
    """A figure the model reads from bench/results/latest.json (or prices.json) is missing."""


# ----------------------------------------------------------------------------- durations


@dataclass(frozen=True)
class Duration:
    """A handler's duration per batch: piecewise-linear through (records, seconds) points, flat
    beyond both ends (a batch smaller than the smallest measured one takes as long as it)."""

    sizes: tuple[float, ...]
    seconds: tuple[float, ...]

    def __call__(self, records: np.ndarray) -> np.ndarray:
        return np.interp(records, self.sizes, self.seconds)

    @classmethod
    def constant(cls, seconds: float) -> Duration:
        return cls((1.0,), (seconds,))

    def plus(self, other: Duration) -> Duration:
        """This handler, then the other, in one invocation: the durations added at every size
        either was measured at."""
        sizes = np.array(sorted(set(self.sizes) | set(other.sizes)))
        total = self(sizes) + other(sizes)
        return Duration(tuple(float(s) for s in sizes), tuple(float(s) for s in total))

    def line(self) -> tuple[float, float]:
        """Least-squares fixed (s) and per-record (s) parts, for the record; the model uses the
        points."""
        if len(self.sizes) < 2:
            return self.seconds[0], 0.0
        per_record, fixed = np.polyfit(self.sizes, self.seconds, 1)
        return float(fixed), float(per_record)


def _get(tree: Mapping[str, Any], path: Sequence[str], where: Path = LATEST) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise LatencyInputError(
                f"{where.name} has no {'.'.join(path)}; the latency model reads the handlers' "
                "CPU per record and I/O path per batch from bench/results/latest.json: run "
                "`make bench` (or `python -m bench`) to record them"
            )
        node = node[key]
    return node


@dataclass(frozen=True)
class HandlerProfile:
    """One handler's recorded figures per batch size and the duration they give in Lambda."""

    function: str
    sizes: tuple[int, ...]
    cpu_ms: tuple[float, ...]  # per batch, here
    io_ms: tuple[float, ...]  # per batch, with an AWS call in flight
    cpu_share: float
    duration: Duration

    def as_json(self) -> dict[str, Any]:
        fixed, per_record = self.duration.line()
        return {
            "points": [
                {
                    "records": n,
                    "cpu_ms_here": round(c, 2),
                    "io_ms": round(i, 2),
                    "duration_ms": round(d * 1e3, 2),
                }
                for n, c, i, d in zip(
                    self.sizes, self.cpu_ms, self.io_ms, self.duration.seconds, strict=True
                )
            ],
            "cpu_share": self.cpu_share,
            "line_fit": {
                "fixed_ms": round(fixed * 1e3, 2),
                "per_record_ms": round(per_record * 1e3, 4),
            },
        }


def handler_profile(
    latest: Mapping[str, Any],
    function: str,
    memory_mb: float,
    mb_per_vcpu: float,
    stat: str = "median",
) -> HandlerProfile:
    """Duration per batch = CPU per record (`stat` over the measured batches) x n / CPU share +
    the I/O path's median, at each batch size latest.json measured."""
    cpu = _get(latest, ("cpu", function))
    sizes = tuple(sorted(int(key) for key in cpu if str(key).isdigit()))
    if not sizes:
        raise LatencyInputError(
            f"latest.json has no batch sizes under cpu.{function}; run `make bench` first"
        )
    share = min(1.0, memory_mb / mb_per_vcpu)
    cpu_ms = tuple(
        float(_get(latest, ("cpu", function, str(n), "cpu_us_per_record", "handler", stat)))
        * n
        / 1000
        for n in sizes
    )
    io_ms = tuple(
        float(_get(latest, ("cpu", function, "io_path", str(n), "io_ms_per_batch", "median")))
        for n in sizes
    )
    seconds = tuple((c / share + i) / 1000 for c, i in zip(cpu_ms, io_ms, strict=True))
    return HandlerProfile(
        function, sizes, cpu_ms, io_ms, share, Duration(tuple(map(float, sizes)), seconds)
    )


# ----------------------------------------------------------------------------- one hop


@dataclass(frozen=True)
class Consumer:
    """One event source mapping on one shard and the function it invokes."""

    delivery: Delivery
    window_s: float
    batch_size: int
    duration: Duration
    overhead_s: float  # per invocation, besides the handler
    propagation_mean_s: float
    poll_interval_s: float = POLL_INTERVAL_S
    min_poll_gap_s: float = 1.0 / GET_RECORDS_PER_S
    repoll: Repoll = "records_waiting"

    def describe(self) -> dict[str, Any]:
        return {
            "delivery": self.delivery,
            **({"repoll": self.repoll} if self.delivery == "polling" else {}),
            "batching_window_s": self.window_s,
            "batch_size": self.batch_size,
            "propagation_mean_ms": round(self.propagation_mean_s * 1e3, 1),
            "invocation_overhead_ms": round(self.overhead_s * 1e3, 1),
        }


@dataclass(frozen=True)
class HopRun:
    """One hop's invocations, and when each record's invocation ended (in input order)."""

    out_s: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    sizes: np.ndarray


def _tick(at: float, consumer: Consumer, phase_s: float) -> float:
    """The first poll of an idle mapping at or after `at`: ticks phase + k x interval."""
    interval = consumer.poll_interval_s
    return phase_s + math.ceil((at - phase_s) / interval) * interval


def _next_start(
    available: list[float],
    k: int,
    free: float,
    last_poll: float,
    last_full: bool,
    c: Consumer,
    phase_s: float,
) -> float:
    """When the invocation of the batch beginning with record k starts (records sorted by the
    time they became readable; the function is free from `free`; the previous batch was full
    or not)."""
    first = available[k]
    gap = c.min_poll_gap_s if c.delivery == "polling" else 0.0
    if c.window_s > 0:
        if first <= free + c.window_s:
            opened = free  # the window that began when the previous invocation completed
        else:  # it ended empty: the next begins when the mapping sees a record
            idle_from = max(first, free + c.window_s, last_poll + gap)
            opened = idle_from if c.delivery == "efo" else _tick(idle_from, c, phase_s)
        last = k + c.batch_size - 1
        full = available[last] if last < len(available) else math.inf
        return min(opened + c.window_s, max(opened, full))
    if c.delivery == "efo":
        return max(free, first)
    poll = max(free, last_poll + gap)
    waiting = first <= free  # records readable when the previous invocation ended
    if waiting and (c.repoll == "records_waiting" or last_full):
        return poll  # the next batch follows at once (polls stay `gap` apart)
    return _tick(max(poll, first), c, phase_s)  # idle, or caught up: back to the base rate


def run_hop(
    ready_s: np.ndarray, consumer: Consumer, unit_delays: np.ndarray, phase_s: float
) -> HopRun:
    """Records put on the stream at `ready_s`, readable after the propagation delay
    (`unit_delays` x the consumer's mean), through the mapping and the function, serially."""
    available = ready_s + consumer.propagation_mean_s * unit_delays
    order = np.argsort(available, kind="stable")
    readable = available[order].tolist()
    cost = (
        consumer.overhead_s + consumer.duration(np.arange(consumer.batch_size + 1, dtype=float))
    ).tolist()
    starts: list[float] = []
    ends: list[float] = []
    sizes: list[int] = []
    free = last_poll = -math.inf
    k, n = 0, len(readable)
    while k < n:
        full = bool(sizes) and sizes[-1] == consumer.batch_size
        start = max(_next_start(readable, k, free, last_poll, full, consumer, phase_s), readable[k])
        size = min(consumer.batch_size, bisect.bisect_right(readable, start, lo=k) - k)
        free = start + cost[size]
        starts.append(start)
        ends.append(free)
        sizes.append(size)
        last_poll = start
        k += size
    size_array = np.array(sizes, dtype=np.int64)
    end_array = np.array(ends)
    out = np.empty(n)
    out[order] = np.repeat(end_array, size_array)
    return HopRun(out, np.array(starts), end_array, size_array)


# ----------------------------------------------------------------------------- designs


@dataclass(frozen=True)
class Design:
    key: str
    title: str
    hops: tuple[Consumer, ...]


@dataclass(frozen=True)
class Inputs:
    """What the designs are built from: the handlers, the template's mappings, the gap."""

    preprocess: Duration
    score: Duration
    preprocess_batch: int
    score_batch: int
    preprocess_window_s: float  # the template's default
    score_window_s: float
    overhead_s: float


def build_designs(inputs: Inputs) -> tuple[Design, ...]:
    def hop(delivery: Delivery, window: float, batch: int, duration: Duration) -> Consumer:
        return Consumer(
            delivery, window, batch, duration, inputs.overhead_s, PROPAGATION_MEAN_S[delivery]
        )

    fused = inputs.preprocess.plus(inputs.score)
    designs = []
    today = (inputs.preprocess_window_s, inputs.score_window_s)
    for window in WINDOWS_S:
        note = " (today's default)" if today == (window, window) else ""
        designs.append(
            Design(
                f"two_hop_polling_w{window:g}",
                f"two hops, polling, window {window:g} s{note}",
                (
                    hop("polling", window, inputs.preprocess_batch, inputs.preprocess),
                    hop("polling", window, inputs.score_batch, inputs.score),
                ),
            )
        )
    designs += [
        Design(
            "two_hop_efo_w0",
            "two hops, enhanced fan-out, window 0",
            (
                hop("efo", 0.0, inputs.preprocess_batch, inputs.preprocess),
                hop("efo", 0.0, inputs.score_batch, inputs.score),
            ),
        ),
        Design(
            "one_hop_efo_w0",
            "one hop (fused), enhanced fan-out, window 0",
            (hop("efo", 0.0, inputs.preprocess_batch, fused),),
        ),
        Design(
            "one_hop_polling_w0",
            "one hop (fused), polling, window 0",
            (hop("polling", 0.0, inputs.preprocess_batch, fused),),
        ),
    ]
    return tuple(designs)


def full_batch_repoll(design: Design) -> Design:
    """The design with its polling mappings re-polling at once only after a full batch."""
    hops = tuple(
        replace(c, repoll="full_batch") if c.delivery == "polling" else c for c in design.hops
    )
    return Design(design.key, design.title, hops)


# ----------------------------------------------------------------------------- Monte Carlo


@dataclass(frozen=True)
class Draws:
    """One shard's random draws, shared by every design (common random numbers)."""

    arrivals_s: np.ndarray
    unit_delays: tuple[np.ndarray, ...]  # per hop, mean 1
    phases_s: tuple[float, ...]  # per hop, of the polling grid
    seconds: float


def poisson_arrivals(rng: np.random.Generator, rate: float, seconds: float) -> np.ndarray:
    return np.sort(rng.uniform(0.0, seconds, rng.poisson(rate * seconds)))


def draw(
    seed: int, key: Sequence[int], rate: float, seconds: float, shape: float = GAMMA_SHAPE
) -> Draws:
    """Arrivals and polling phases from one stream, propagation delays (Gamma(shape), mean 1)
    from another, so that a different shape keeps the arrivals."""
    timing, delays = (
        np.random.default_rng(s)
        for s in np.random.SeedSequence(seed, spawn_key=tuple(key)).spawn(2)
    )
    arrivals = poisson_arrivals(timing, rate, seconds)
    phases = tuple(float(p) for p in timing.uniform(0.0, POLL_INTERVAL_S, 2))
    units = tuple(delays.gamma(shape, 1.0 / shape, len(arrivals)) for _ in range(2))
    return Draws(arrivals, units, phases, seconds)


@dataclass(frozen=True)
class DesignRun:
    latency_s: np.ndarray  # per record, in arrival order
    hops: tuple[HopRun, ...]


def run_design(design: Design, draws: Draws) -> DesignRun:
    ready = draws.arrivals_s
    hops = []
    for index, consumer in enumerate(design.hops):
        hop = run_hop(ready, consumer, draws.unit_delays[index], draws.phases_s[index])
        hops.append(hop)
        ready = hop.out_s
    return DesignRun(ready - draws.arrivals_s, tuple(hops))


@dataclass(frozen=True)
class Settings:
    replications: int  # independent shards' runs per design and rate
    records: int  # records wanted per replication
    min_seconds: float  # ... and at least this long
    warmup_s: float = 10.0  # records arriving in the first and last seconds are not counted
    tail_s: float = 5.0

    def seconds(self, rate: float) -> float:
        return max(self.min_seconds, self.records / rate) + self.warmup_s + self.tail_s


FULL = Settings(replications=8, records=30_000, min_seconds=600.0)
QUICK = Settings(replications=2, records=3_000, min_seconds=60.0)


def _window(run: DesignRun, draws: Draws, settings: Settings) -> tuple[np.ndarray, float]:
    lo, hi = settings.warmup_s, draws.seconds - settings.tail_s
    counted = (draws.arrivals_s >= lo) & (draws.arrivals_s < hi)
    return run.latency_s[counted], hi - lo


def _hop_figures(hops: Sequence[HopRun], lo: float, hi: float) -> list[dict[str, float]]:
    figures = []
    for hop in hops:
        inside = (hop.starts >= lo) & (hop.starts < hi)
        busy = float(np.sum(hop.ends[inside] - hop.starts[inside]))
        figures.append(
            {
                "invocations_per_s": float(np.sum(inside) / (hi - lo)),
                "mean_batch_size": float(np.mean(hop.sizes[inside])) if inside.any() else 0.0,
                "max_batch_size": int(np.max(hop.sizes[inside])) if inside.any() else 0,
                "busy_share": busy / (hi - lo),
            }
        )
    return figures


def _ms(values: np.ndarray, q: float) -> float:
    return round(float(np.quantile(values, q)) * 1e3, 1)


def measure(
    design: Design,
    rate: float,
    rate_index: int,
    seed: int,
    settings: Settings,
    shape: float = GAMMA_SHAPE,
) -> dict[str, Any]:
    """One design at one rate: latencies pooled over the replications (and each one's p99)."""
    pooled: list[np.ndarray] = []
    p99s: list[float] = []
    hop_rows: list[list[dict[str, float]]] = []
    seconds = settings.seconds(rate)
    for replication in range(settings.replications):
        draws = draw(seed, (rate_index, replication), rate, seconds, shape)
        run = run_design(design, draws)
        latency, _ = _window(run, draws, settings)
        pooled.append(latency)
        p99s.append(_ms(latency, 0.99))
        hop_rows.append(_hop_figures(run.hops, settings.warmup_s, seconds - settings.tail_s))
    latency = np.concatenate(pooled)
    hops = [
        {
            name: round(float(np.mean([row[i][name] for row in hop_rows])), 3)
            for name in hop_rows[0][i]
        }
        for i in range(len(design.hops))
    ]
    return {
        "records": len(latency),
        "p50_ms": _ms(latency, 0.5),
        "p99_ms": _ms(latency, 0.99),
        "mean_ms": round(float(np.mean(latency)) * 1e3, 1),
        "max_ms": round(float(np.max(latency)) * 1e3, 1),
        "p99_ms_per_replication": {"min": min(p99s), "max": max(p99s)},
        "invocations_per_s": round(sum(h["invocations_per_s"] for h in hops), 2),
        "mean_batch_size": [h["mean_batch_size"] for h in hops],
        "hops": hops,
    }


# ----------------------------------------------------------------------------- sources


def _sources() -> list[dict[str, str]]:
    lambda_kinesis = "https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html"
    return [
        {
            "title": "AWS Lambda Developer Guide, 'Using AWS Lambda with Amazon Kinesis'",
            "url": lambda_kinesis,
            "sentence": "For standard iterators, Lambda polls each shard in your Kinesis stream for "
            "records at a base rate of once per second. When more records are available, Lambda "
            "keeps processing batches until the function catches up with the stream.",
            "models": "polling designs: an idle mapping polls at 1 s ticks; with records waiting "
            "after an invocation, the next batch follows at once",
        },
        {
            "title": "AWS Lambda Developer Guide, 'Using AWS Lambda with Amazon Kinesis' (an "
            "older version of the page, awsdocs/aws-lambda-developer-guide on GitHub)",
            "url": "https://github.com/awsdocs/aws-lambda-developer-guide",
            "sentence": "For standard iterators, Lambda polls each shard in your Kinesis stream for "
            "records at a base rate of once per second. When more records are available, Lambda "
            "keeps processing batches until it receives a batch that's smaller than the "
            "configured maximum batch size.",
            "models": "the sensitivity `polling_repoll_sensitivity`: back to the base rate after "
            "a batch that is not full",
        },
        {
            "title": "AWS Lambda Developer Guide, 'Using AWS Lambda with Amazon Kinesis'",
            "url": lambda_kinesis,
            "sentence": "Stream consumers use HTTP/2 to reduce latency by pushing records to Lambda "
            "over a long-lived connection and by compressing request headers.",
            "models": "enhanced fan-out designs: records are pushed, no polling interval",
        },
        {
            "title": "AWS Lambda Developer Guide, 'Using AWS Lambda with Amazon Kinesis' "
            "(Configuring your data stream and function)",
            "url": lambda_kinesis,
            "sentence": "Your Lambda function is a consumer application for your data stream. It "
            "processes one batch of records at a time from each shard.",
            "models": "invocations are serial per shard (the template's ParallelizationFactor 1)",
        },
        {
            "title": "AWS Lambda Developer Guide, 'Lambda event source mappings' (Batching "
            "behavior)",
            "url": "https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventsourcemapping.html",
            "sentence": "For Kinesis, DynamoDB, and Amazon SQS event sources: The default batching "
            "window is 0 seconds. This means that Lambda sends batches to your function as "
            "quickly as possible. If you configure a MaximumBatchingWindowInSeconds, the next "
            "batching window begins as soon as the previous function invocation completes.",
            "models": "the batching window: 0 by default; it begins when the previous "
            "invocation completes",
        },
        {
            "title": "AWS Lambda Developer Guide, 'Lambda event source mappings' (Batching "
            "behavior)",
            "url": "https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventsourcemapping.html",
            "sentence": "Lambda invokes your function when one of the following three criteria is "
            "met: The batching window reaches its maximum value. [...] The batch size is met. "
            "[...] The payload size reaches 6 MB.",
            "models": "a batch goes when its window ends or it holds BatchSize records (6 MB is "
            "not reached: 500 records of about 0.2-1 KB)",
        },
        {
            "title": "AWS Lambda Developer Guide, 'Best practices for working with AWS Lambda "
            "functions' (Working with streams)",
            "url": "https://docs.aws.amazon.com/lambda/latest/dg/best-practices.html",
            "sentence": "Before invoking the function, Lambda continues to read records from the "
            "event source until it has gathered a full batch, the batching window expires, or "
            "the batch reaches the payload limit of 6 MB.",
            "models": "during a window, records are gathered as they become readable",
        },
        {
            "title": "Amazon Kinesis Data Streams Developer Guide, 'Develop enhanced fan-out "
            "consumers with dedicated throughput'",
            "url": "https://docs.aws.amazon.com/streams/latest/dev/enhanced-consumers.html",
            "sentence": "Message propagation delay: The delay averages around 200 ms if you have "
            "one consumer reading from the stream. This average goes up to around 1000 ms if "
            "you have five consumers. [Enhanced fan-out:] Typically, the delay averages 70 ms "
            "whether you have one consumer or five consumers.",
            "models": "propagation delay means: 200 ms polling (each stream has one consumer, "
            "its mapping), 70 ms enhanced fan-out",
        },
        {
            "title": "Amazon Kinesis Data Streams Developer Guide, 'Develop enhanced fan-out "
            "consumers with dedicated throughput'",
            "url": "https://docs.aws.amazon.com/streams/latest/dev/enhanced-consumers.html",
            "sentence": "Message propagation delay is defined as the time taken in milliseconds for "
            "a payload sent using the payload-dispatching APIs (like PutRecord and PutRecords) to "
            "reach the consumer application through the payload-consuming APIs (like GetRecords "
            "and SubscribeToShard).",
            "models": "a record is readable by the mapping its propagation delay after its "
            "PutRecords",
        },
        {
            "title": "Amazon Kinesis Data Streams Developer Guide, 'Improve low-latency "
            "processing'",
            "url": "https://docs.aws.amazon.com/streams/latest/dev/kinesis-low-latency.html",
            "sentence": "This enables you to have multiple consumer applications processing a "
            "stream concurrently without hitting Amazon Kinesis Data Streams limits of 5 "
            "GetRecords calls per second.",
            "models": "polls of one shard at least 200 ms apart",
        },
        {
            "title": "AWS Lambda Developer Guide, 'Configure Lambda function memory' (via "
            "bench/prices.json limits.lambda_mb_per_vcpu)",
            "url": "https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html",
            "sentence": "At 1,769 MB, a function has the equivalent of one vCPU",
            "models": "CPU share = min(1, MemorySize / 1,769 MB)",
        },
    ]


def _assumptions(shape: float, overhead_ms: float) -> list[dict[str, Any]]:
    texts = [
        "Arrivals are a Poisson process at the stated rate per shard. One FeaturesStream shard "
        "receives what one TransactionsStream shard's preprocess puts (the same rate, shards "
        "one to one); in a stack with several shards a features shard gets a blend of all of "
        "them, which is smoother.",
        f"Propagation delay is Gamma(shape {shape:g}) with the documented mean (200 ms polling, "
        "70 ms enhanced fan-out), independent per record and per hop (sensitivity to the shape "
        "under `target.sensitivity`). A record is readable when its own delay has passed (no "
        "head-of-line wait behind earlier records of the shard). The documented 200 ms is "
        "measured for a consumer that may poll more often than once a second; added to 1 s "
        "polling it may count part of the polling wait twice (conservative).",
        "An idle polling mapping polls on a 1 s grid whose phase is random per shard and hop; "
        "when an invocation ends with records readable it polls at once, but polls stay at "
        "least 200 ms apart (the 5 GetRecords/s per shard, not throttled beyond that). The "
        "guide's 'until the function catches up with the stream' leaves open whether a mapping "
        "that got a batch smaller than BatchSize goes back to the base rate, as an older "
        "wording says: `polling_repoll_sensitivity` shows the window-0 polling designs so.",
        "A batching window W begins when the previous invocation completes (documented); while "
        "it is open, records are gathered as soon as they are readable. A window that ends with "
        "nothing gathered leaves the mapping idle; the next window begins when the mapping first "
        "sees a record (at a poll, or a push) and the batch goes W later (not documented for "
        "Kinesis; the rule AWS states for Amazon MQ and DocumentDB, conservative: at very low "
        "traffic each record then waits W).",
        "Handler duration per batch = CPU here (median per record over the measured batches x "
        "records) / min(1, MemorySize / 1,769 MB) + the median time with an AWS call in flight "
        "(the p50 latencies of bench/prices.json injected, as recorded in latest.json's "
        "io_path); piecewise-linear between the measured batch sizes, a batch below the "
        "smallest taking as long as it; the same for every batch of that size (no spread). A "
        "Lambda vCPU is taken as fast as the measuring machine's core. The recorded I/O path "
        "already holds the AWS calls, so no separate AWS latency is added.",
        f"Each invocation costs {overhead_ms:g} ms besides the handler (bench/prices.json "
        "limits.lambda_invoke_overhead_ms, itself an assumption: the gap between a batch's "
        "response and the next invocation of the shard).",
        "The fused function's handler takes the preprocess and the score handlers' durations "
        "added, in one invocation: preprocess + score minus one invocation overhead compared "
        "with two hops. It keeps both handlers' AWS calls, the PutRecords to FeaturesStream "
        "included (conservative); its mapping is the preprocess mapping's (BatchSize).",
        "A record's features are put on FeaturesStream when its preprocess invocation ends "
        "and its score is written when its score invocation ends (both calls are in the "
        "handlers' last phase); the event latency is from the producer's PutRecords (the "
        "record on the stream) to that end.",
        "No cold starts, function errors, retries, bisections, throttles, reshards or "
        "ParallelizationFactor above 1 (the template's 1).",
    ]
    return [{"assumption": True, "text": text} for text in texts]


# ----------------------------------------------------------------------------- the run


def load_inputs(
    latest: Mapping[str, Any],
    prices: Mapping[str, Any],
    values: Mapping[str, str],
    stat: str = "median",
) -> tuple[Inputs, dict[str, HandlerProfile]]:
    mb_per_vcpu = float(_get(prices, ("limits", "lambda_mb_per_vcpu", "value"), PRICES))
    overhead_ms = float(_get(prices, ("limits", "lambda_invoke_overhead_ms", "value"), PRICES))
    profiles = {
        name: handler_profile(latest, name, float(values[f"{prefix}MemorySize"]), mb_per_vcpu, stat)
        for name, prefix in (("preprocess", "Preprocess"), ("score", "Score"))
    }
    for prefix in ("Preprocess", "Score"):
        if int(values[f"{prefix}ParallelizationFactor"]) != 1:
            raise LatencyInputError(f"{prefix}ParallelizationFactor is not 1: not modelled")
    inputs = Inputs(
        preprocess=profiles["preprocess"].duration,
        score=profiles["score"].duration,
        preprocess_batch=int(values["PreprocessBatchSize"]),
        score_batch=int(values["ScoreBatchSize"]),
        preprocess_window_s=float(values["PreprocessMaximumBatchingWindowInSeconds"]),
        score_window_s=float(values["ScoreMaximumBatchingWindowInSeconds"]),
        overhead_s=overhead_ms / 1000,
    )
    return inputs, profiles


def data_checks(latest: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """What looks off in the recorded figures the model reads (reported, not fixed)."""
    notes = []
    for function in ("preprocess", "score"):
        cpu = latest["cpu"][function]
        sizes = sorted(int(k) for k in cpu if str(k).isdigit())
        per_record = [
            float(_get(cpu, (str(n), "cpu_us_per_record", "handler", "median"))) for n in sizes
        ]
        pairs = list(zip(sizes, per_record, strict=True))
        for (n0, c0), (n1, c1) in itertools.pairwise(pairs):
            if c1 > c0 * 1.05:
                notes.append(
                    f"cpu.{function}: CPU per record rises from {c0} us at batch {n0} to {c1} us "
                    f"at batch {n1} ({cpu[str(n1)].get('batches', '?')} batches measured at {n1})"
                )
        for n in sizes:
            io = _get(cpu, ("io_path", str(n), "io_ms_per_batch"))
            if io.get("n", 0) < 5:
                notes.append(
                    f"cpu.{function}.io_path.{n}: the I/O path's median is of {io['n']} batches"
                )
                break
    recorded = latest.get("template", {})
    for name, value in recorded.items():
        if name in values and str(value) != str(values[name]):
            notes.append(f"latest.json was measured with {name}={value}; template: {values[name]}")
    side = latest.get("drift_volume", {}).get("write_side", {}).get("score_durations", {})
    for size, row in side.items():
        if not str(size).isdigit() or size not in latest["cpu"]["score"]["io_path"]:
            continue
        here = latest["cpu"]["score"]["io_path"][size]["io_ms_per_batch"]["median"]
        there = row.get("io_ms", {}).get("median")
        if there is not None and abs(there - here) > 0.1 * here:
            notes.append(
                f"the score handler's I/O path at batch {size}: cpu.score.io_path {here} ms, "
                f"drift_volume.write_side.score_durations {there} ms (same results file)"
            )
    return notes


def run(
    latest: Mapping[str, Any],
    prices: Mapping[str, Any],
    values: Mapping[str, str],
    seed: int,
    settings: Settings,
) -> dict[str, Any]:
    started = time.perf_counter()
    inputs, profiles = load_inputs(latest, prices, values)
    designs = build_designs(inputs)
    results: dict[str, Any] = {}
    for design in designs:
        results[design.key] = {
            "title": design.title,
            "hops": [c.describe() for c in design.hops],
            "rates": {
                f"{rate:g}": measure(design, rate, index, seed, settings)
                for index, rate in enumerate(RATES_TPS)
            },
        }
    target = next(d for d in designs if d.key == TARGET_DESIGN)
    rate_index = RATES_TPS.index(TARGET_RATE_TPS)
    row = results[TARGET_DESIGN]["rates"][f"{TARGET_RATE_TPS:g}"]
    slow_inputs, _ = load_inputs(latest, prices, values, stat="max")
    slow = next(d for d in build_designs(slow_inputs) if d.key == TARGET_DESIGN)
    sensitivity = {
        f"gamma_shape_{shape:g}": measure(
            target, TARGET_RATE_TPS, rate_index, seed, settings, shape
        )["p99_ms"]
        for shape in SENSITIVITY_SHAPES
    }
    sensitivity["handler_cpu_at_recorded_max"] = measure(
        slow, TARGET_RATE_TPS, rate_index, seed, settings
    )["p99_ms"]
    repoll = {
        design.key: {
            f"{rate:g}": {
                name: measure(full_batch_repoll(design), rate, index, seed, settings)[name]
                for name in ("p50_ms", "p99_ms", "mean_ms", "invocations_per_s")
            }
            for index, rate in enumerate(RATES_TPS)
        }
        for design in designs
        if any(c.delivery == "polling" and c.window_s == 0 for c in design.hops)
    }
    overhead_ms = inputs.overhead_s * 1e3
    fused = inputs.preprocess.plus(inputs.score)
    return {
        "date": now_iso(),
        "seed": seed,
        "quick": settings is QUICK,
        "settings": {
            "replications": settings.replications,
            "records_per_replication": settings.records,
            "min_seconds": settings.min_seconds,
            "warmup_s": settings.warmup_s,
            "tail_s": settings.tail_s,
            "gamma_shape": GAMMA_SHAPE,
        },
        "how": (__doc__ or "").strip(),
        "inputs": {
            "latest_json": {
                "date": latest.get("date"),
                "git": latest.get("git"),
                "recosted": latest.get("recosted"),
            },
            "template": {
                name: values[name]
                for name in sorted(values)
                if name.startswith(("Preprocess", "Score"))
                and name.endswith(
                    (
                        "BatchSize",
                        "MaximumBatchingWindowInSeconds",
                        "ParallelizationFactor",
                        "MemorySize",
                    )
                )
            },
            "handlers": {name: p.as_json() for name, p in profiles.items()},
            "fused_duration_ms": [
                {"records": int(n), "duration_ms": round(s * 1e3, 2)}
                for n, s in zip(fused.sizes, fused.seconds, strict=True)
            ],
            "invocation_overhead_ms": overhead_ms,
            "propagation_mean_ms": {k: v * 1e3 for k, v in PROPAGATION_MEAN_S.items()},
            "poll_interval_s": POLL_INTERVAL_S,
            "min_poll_gap_s": 1.0 / GET_RECORDS_PER_S,
        },
        "sources": _sources(),
        "assumptions": _assumptions(GAMMA_SHAPE, overhead_ms),
        "designs": results,
        "target": {
            "statement": "p99 <= 500 ms for the fused function on enhanced fan-out at 1,000 "
            "transactions/s per shard",
            "design": TARGET_DESIGN,
            "rate_tps": TARGET_RATE_TPS,
            "threshold_ms": TARGET_P99_MS,
            "p99_ms": row["p99_ms"],
            "p99_ms_per_replication": row["p99_ms_per_replication"],
            "verdict": "met" if row["p99_ms"] <= TARGET_P99_MS else "not met",
            "sensitivity_p99_ms": sensitivity,
        },
        "polling_repoll_sensitivity": {
            "what": "the polling designs with window 0 when the mapping polls again at once only "
            "after a full batch (otherwise at the next 1 s tick), as the older wording of the "
            "Lambda guide reads, instead of whenever records are waiting",
            "designs": repoll,
        },
        "data_checks": data_checks(latest, values),
        "runtime_s": round(time.perf_counter() - started, 1),
    }


def table(results: Mapping[str, Any]) -> str:
    header = (
        f"{'design':<46} {'tx/s':>5} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>8} "
        f"{'p99 range':>13} {'inv/s':>6}  mean batch"
    )
    lines = [
        "event latency per shard, PutRecords to score written; p99 range: over the "
        "replications; inv/s: invocations a second, all hops; mean batch: per hop",
        header,
        "-" * len(header),
    ]
    for design in results["designs"].values():
        for rate, row in design["rates"].items():
            spread = row["p99_ms_per_replication"]
            batches = " / ".join(f"{b:.1f}" for b in row["mean_batch_size"])
            lines.append(
                f"{design['title']:<46} {rate:>5} {row['p50_ms']:>7.0f} {row['p99_ms']:>7.0f} "
                f"{row['mean_ms']:>8.0f} {spread['min']:>6.0f}-{spread['max']:<6.0f} "
                f"{row['invocations_per_s']:>6.2f}  {batches}"
            )
    target = results["target"]
    lines += [
        "",
        f"target: {target['statement']}: p99 {target['p99_ms']:.0f} ms "
        f"(replications {target['p99_ms_per_replication']['min']:.0f}-"
        f"{target['p99_ms_per_replication']['max']:.0f}) -> {target['verdict'].upper()}",
        "  sensitivity (p99 ms): "
        + ", ".join(f"{k} {v:.0f}" for k, v in target["sensitivity_p99_ms"].items()),
    ]
    lines += ["", "polling, window 0, re-polling at once only after a full batch (p50 / p99 ms):"]
    for key, rates in results["polling_repoll_sensitivity"]["designs"].items():
        cells = ", ".join(
            f"{rate} tx/s {row['p50_ms']:.0f} / {row['p99_ms']:.0f}" for rate, row in rates.items()
        )
        lines.append(f"  {results['designs'][key]['title']:<44} {cells}")
    lines += [f"data check: {note}" for note in results["data_checks"]]
    return "\n".join(lines)


def markdown(results: Mapping[str, Any]) -> str:
    """The latency model's section of docs/PERFORMANCE.md: p50 / p99 per design and rate, the
    target's verdict, the assumptions marked, and where each documented figure comes from."""
    rates = next(iter(results["designs"].values()))["rates"]
    lines = [
        "## 8. End-to-end latency per shard (a model, not a measurement)",
        "",
        f"`python -m bench.latency` ({results['date']}, seed {results['seed']}"
        f"{', quick' if results['quick'] else ''}): a Monte Carlo of PutRecords to the score "
        "written, per shard, with the handlers' durations from this run's part 1. p50 / p99 in "
        "ms.",
        "",
        "| design | " + " | ".join(f"{rate} tx/s" for rate in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for design in results["designs"].values():
        cells = [f"{row['p50_ms']:.0f} / {row['p99_ms']:.0f}" for row in design["rates"].values()]
        lines.append(f"| {design['title']} | " + " | ".join(cells) + " |")
    target = results["target"]
    lines += [
        "",
        f"Target: {target['statement']}: p99 {target['p99_ms']:.0f} ms "
        f"(replications {target['p99_ms_per_replication']['min']:.0f}-"
        f"{target['p99_ms_per_replication']['max']:.0f}): **{target['verdict']}**. "
        "Sensitivity of that p99 (ms): "
        + ", ".join(f"{k} {v:.0f}" for k, v in target["sensitivity_p99_ms"].items())
        + ".",
        "",
        "Assumptions (the model's own choices):",
    ]
    lines += [f"- {a['text']}" for a in results["assumptions"]]
    lines += ["", "Documented figures (each as the model uses it):"]
    lines += [
        f'- {x["title"]}: "{x["sentence"]}" ({x["url"]}). Used for: {x["models"]}.'
        for x in results["sources"]
    ]
    lines += [f"- data check: {note}" for note in results["data_checks"]]
    return "\n".join(lines) + "\n"


def write(latest: Mapping[str, Any], seed: int = 1, quick: bool = False) -> dict[str, Any]:
    """Run the model on `latest` (bench/results/latest.json's figures) and the template's
    defaults; write RESULTS and return them."""
    from embedded.template import load_template, parameter_values  # noqa: PLC0415

    prices = json.loads(PRICES.read_text())
    values = parameter_values(load_template(TEMPLATE_PATH))
    results = run(latest, prices, values, seed, QUICK if quick else FULL)
    write_json(RESULTS, results)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter replications")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not LATEST.exists():
        raise SystemExit(
            f"{LATEST.relative_to(ROOT)} is missing: run `make bench` (python -m bench) first"
        )
    try:
        results = write(json.loads(LATEST.read_text()), args.seed, args.quick)
    except LatencyInputError as error:
        raise SystemExit(str(error)) from error
    print(table(results))
    print(f"written: {RESULTS.relative_to(ROOT)} ({results['runtime_s']} s)")


if __name__ == "__main__":
    main()
