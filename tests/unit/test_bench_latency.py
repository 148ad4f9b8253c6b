"""The latency model's mechanics (bench/latency.py) on cases small enough to check by hand.

Nothing is timed here, and no figure of bench/results is read: the handlers' durations are
made up, so each test says what the mapping and the function must do with them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# bench/ is a package at the repository root, next to the import roots pytest is given.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.latency import (  # noqa: E402
    Consumer,
    Delivery,
    Duration,
    Inputs,
    LatencyInputError,
    Settings,
    build_designs,
    draw,
    handler_profile,
    markdown,
    measure,
    poisson_arrivals,
    run,
    run_design,
    run_hop,
)


def consumer(
    delivery: Delivery = "efo",
    window: float = 0.0,
    batch: int = 500,
    duration: Duration | None = None,
    overhead: float = 0.0,
    propagation: float = 0.0,
    **others: Any,
) -> Consumer:
    return Consumer(
        delivery,
        window,
        batch,
        duration or Duration.constant(0.0),
        overhead,
        propagation,
        **others,
    )


def arrivals(rate: float, seconds: float, seed: int = 7) -> np.ndarray:
    return poisson_arrivals(np.random.default_rng(seed), rate, seconds)


def test_polling_waits_for_the_next_one_second_tick_uniformly() -> None:
    # No propagation, no handler time, one record every 5 s on average: a record waits for the
    # next poll of the 1 s grid, so its latency is uniform on [0, 1) with mean 0.5.
    t = arrivals(0.2, 10_000)
    phase = 0.37
    hop = run_hop(t, consumer("polling"), np.zeros(len(t)), phase)
    latency = hop.out_s - t
    assert len(t) > 1500
    assert latency.min() >= 0.0
    assert latency.max() < 1.0
    assert latency.mean() == pytest.approx(0.5, abs=0.03)
    assert np.quantile(latency, [0.25, 0.75]) == pytest.approx([0.25, 0.75], abs=0.04)
    on_grid = (hop.starts - phase) % 1.0
    assert np.all(np.minimum(on_grid, 1.0 - on_grid) < 1e-9)


def test_enhanced_fan_out_with_no_handler_time_is_the_propagation_delay() -> None:
    t = arrivals(50.0, 100)
    units = np.random.default_rng(3).gamma(2.0, 0.5, len(t))
    hop = run_hop(t, consumer("efo", propagation=0.07), units, 0.0)
    np.testing.assert_allclose(hop.out_s - t, 0.07 * units, rtol=0, atol=1e-12)


@pytest.mark.parametrize("delivery", ["efo", "polling"])
def test_a_batching_window_adds_about_its_length_at_low_traffic(delivery: Delivery) -> None:
    # One record every 200 s: each one finds the mapping idle, its window opens when the mapping
    # sees it and the batch goes a window later; the handler takes 50 ms + a 20 ms gap.
    t = arrivals(0.005, 200_000)
    delays = np.zeros(len(t))
    handler = Duration.constant(0.05)

    def mean_latency(window: float) -> float:
        hop = run_hop(t, consumer(delivery, window, duration=handler, overhead=0.02), delays, 0.5)
        return float(np.mean(hop.out_s - t))

    assert mean_latency(1.0) - mean_latency(0.0) == pytest.approx(1.0, abs=0.02)
    assert mean_latency(2.0) - mean_latency(0.0) == pytest.approx(2.0, abs=0.04)


def test_a_window_opens_when_the_previous_invocation_completes() -> None:
    # 20 records/s, EFO, window 1 s, 70 ms per invocation: one batch every 1.07 s of about
    # 21.4 records, each waiting about half a cycle.
    t = arrivals(20.0, 600)
    hop = run_hop(
        t,
        consumer("efo", 1.0, duration=Duration.constant(0.05), overhead=0.02),
        np.zeros(len(t)),
        0,
    )
    gaps = hop.starts[1:] - hop.ends[:-1]
    assert np.median(gaps) == pytest.approx(1.0, abs=1e-9)
    assert hop.sizes[1:].mean() == pytest.approx(20.0 * 1.07, rel=0.05)
    assert np.mean(hop.out_s - t) == pytest.approx(1.07 / 2 + 0.07, abs=0.05)


def test_invocations_are_serial_and_batches_hold_at_most_the_batch_size() -> None:
    t = arrivals(1_800.0, 30)
    handler = Duration((1.0, 100.0), (0.03, 0.05))  # 2,000 records/s at full batches
    efo = consumer("efo", batch=100, duration=handler, overhead=0.002)
    hop = run_hop(t, efo, np.zeros(len(t)), 0.0)
    assert hop.sizes.max() == 100
    assert hop.sizes.sum() == len(t)
    assert np.all(hop.starts[1:] >= hop.ends[:-1])
    # each invocation: the gap besides the handler, then the handler for its records
    np.testing.assert_allclose(hop.ends - hop.starts, 0.002 + handler(hop.sizes.astype(float)))
    assert set(np.unique(hop.out_s)) <= set(hop.ends)


def test_polls_follow_at_once_but_200_ms_apart_while_records_keep_coming() -> None:
    # 100 records/s and 50 ms a batch: records are always waiting when an invocation ends, so
    # the mapping polls again at once, but at most 5 times a second (GetRecords per shard).
    t = arrivals(100.0, 60)
    hop = run_hop(t, consumer("polling", duration=Duration.constant(0.05)), np.zeros(len(t)), 0.0)
    assert np.diff(hop.starts).min() >= 0.2 - 1e-9
    assert np.median(np.diff(hop.starts)) == pytest.approx(0.2)
    assert hop.sizes[5:].mean() == pytest.approx(20.0, rel=0.05)
    # with nothing waiting when an invocation ends (no handler time), it waits for the tick
    idle = run_hop(t, consumer("polling"), np.zeros(len(t)), 0.0)
    assert np.median(np.diff(idle.starts)) == pytest.approx(1.0)


def test_after_a_batch_that_is_not_full_a_full_batch_rule_goes_back_to_the_tick() -> None:
    t = arrivals(100.0, 60)
    phase = 0.25
    handler = Duration.constant(0.05)
    waiting = run_hop(t, consumer("polling", duration=handler), np.zeros(len(t)), phase)
    full = run_hop(
        t, consumer("polling", duration=handler, repoll="full_batch"), np.zeros(len(t)), phase
    )

    def on_grid(starts: np.ndarray) -> bool:
        offset = (starts - phase) % 1.0
        return bool(np.all(np.minimum(offset, 1.0 - offset) < 1e-9))

    assert on_grid(full.starts)
    assert not on_grid(waiting.starts)
    assert np.mean(full.out_s - t) > np.mean(waiting.out_s - t) + 0.2


def inputs(pre: Duration, score: Duration, overhead: float = 0.02) -> Inputs:
    return Inputs(pre, score, 500, 500, 1.0, 1.0, overhead)


PRE = Duration((10.0, 100.0, 500.0), (0.05, 0.08, 0.3))
SCORE = Duration((10.0, 100.0, 500.0), (0.035, 0.05, 0.13))


def test_the_designs_are_the_ones_asked_for() -> None:
    designs = {d.key: d for d in build_designs(inputs(PRE, SCORE))}
    assert set(designs) == {
        "two_hop_polling_w0",
        "two_hop_polling_w1",
        "two_hop_efo_w0",
        "one_hop_efo_w0",
        "one_hop_polling_w0",
    }
    assert "today's default" in designs["two_hop_polling_w1"].title
    assert [c.window_s for c in designs["two_hop_polling_w1"].hops] == [1.0, 1.0]
    assert [c.propagation_mean_s for c in designs["two_hop_efo_w0"].hops] == [0.07, 0.07]
    assert [c.propagation_mean_s for c in designs["two_hop_polling_w0"].hops] == [0.2, 0.2]
    # fused: one invocation of preprocess + score, so one overhead instead of two
    (fused,) = designs["one_hop_efo_w0"].hops
    sizes = np.array([1.0, 10.0, 55.0, 100.0, 300.0, 500.0])
    np.testing.assert_allclose(fused.duration(sizes), PRE(sizes) + SCORE(sizes))
    two = designs["two_hop_efo_w0"].hops
    assert fused.overhead_s == two[0].overhead_s == 0.02


def test_two_hops_take_longer_than_one_on_the_same_draws() -> None:
    designs = {d.key: d for d in build_designs(inputs(PRE, SCORE))}
    draws = draw(seed=11, key=(0, 0), rate=100.0, seconds=120.0)
    two = run_design(designs["two_hop_efo_w0"], draws)
    one = run_design(designs["one_hop_efo_w0"], draws)
    assert np.all(two.hops[1].out_s >= two.hops[0].out_s)  # the second hop starts after the first
    for q in (0.5, 0.99):
        assert np.quantile(two.latency_s, q) > np.quantile(one.latency_s, q)
    assert two.latency_s.mean() > one.latency_s.mean()
    # with no handler time each record's two-hop latency is its two propagation delays
    zero = Duration.constant(0.0)
    bare = {d.key: d for d in build_designs(inputs(zero, zero, overhead=0.0))}
    two = run_design(bare["two_hop_efo_w0"], draws)
    one = run_design(bare["one_hop_efo_w0"], draws)
    np.testing.assert_allclose(two.latency_s, 0.07 * (draws.unit_delays[0] + draws.unit_delays[1]))
    assert np.all(two.latency_s >= one.latency_s)


def test_draws_are_the_same_for_a_seed_and_differ_between_seeds() -> None:
    a = draw(seed=5, key=(1, 2), rate=100.0, seconds=30.0)
    b = draw(seed=5, key=(1, 2), rate=100.0, seconds=30.0)
    c = draw(seed=6, key=(1, 2), rate=100.0, seconds=30.0)
    np.testing.assert_array_equal(a.arrivals_s, b.arrivals_s)
    np.testing.assert_array_equal(a.unit_delays[1], b.unit_delays[1])
    assert a.phases_s == b.phases_s
    assert len(a.arrivals_s) != len(c.arrivals_s) or not np.array_equal(a.arrivals_s, c.arrivals_s)
    # another shape of the propagation delay keeps the arrivals
    d = draw(seed=5, key=(1, 2), rate=100.0, seconds=30.0, shape=4.0)
    np.testing.assert_array_equal(a.arrivals_s, d.arrivals_s)
    assert d.unit_delays[0].mean() == pytest.approx(1.0, abs=0.05)
    settings = Settings(replications=2, records=300, min_seconds=20.0, warmup_s=2.0, tail_s=1.0)
    design = build_designs(inputs(PRE, SCORE))[0]
    assert measure(design, 10.0, 0, 3, settings) == measure(design, 10.0, 0, 3, settings)


def recorded(sizes: dict[int, tuple[float, float]]) -> dict[str, Any]:
    """A latest.json section: per batch size, (CPU us per record, I/O ms per batch)."""
    section: dict[str, Any] = {
        str(n): {
            "batches": 10,
            "cpu_us_per_record": {"handler": {"median": cpu, "max": 2 * cpu}},
        }
        for n, (cpu, _) in sizes.items()
    }
    section["io_path"] = {
        str(n): {"io_ms_per_batch": {"median": io, "n": 3}} for n, (_, io) in sizes.items()
    }
    return section


def test_durations_are_read_from_the_recorded_cpu_and_io_path() -> None:
    latest = {"cpu": {"preprocess": recorded({10: (500.0, 40.0), 100: (300.0, 50.0)})}}
    profile = handler_profile(latest, "preprocess", memory_mb=1769, mb_per_vcpu=1769)
    # 10 x 500 us + 40 ms = 45 ms; 100 x 300 us + 50 ms = 80 ms; flat beyond both ends
    sizes = np.array([1.0, 10.0, 55.0, 100.0, 1000.0])
    np.testing.assert_allclose(profile.duration(sizes), [0.045, 0.045, 0.0625, 0.08, 0.08])
    half = handler_profile(latest, "preprocess", memory_mb=884.5, mb_per_vcpu=1769)
    np.testing.assert_allclose(half.duration(np.array([10.0, 100.0])), [0.05, 0.11])
    slow = handler_profile(latest, "preprocess", memory_mb=1769, mb_per_vcpu=1769, stat="max")
    np.testing.assert_allclose(slow.duration(np.array([10.0])), [0.05])


def test_a_missing_figure_says_to_run_the_bench() -> None:
    latest = {"cpu": {"preprocess": recorded({10: (500.0, 40.0)})}}
    del latest["cpu"]["preprocess"]["io_path"]
    with pytest.raises(LatencyInputError, match=r"latest\.json has no cpu\.preprocess\.io_path"):
        handler_profile(latest, "preprocess", 1769, 1769)
    with pytest.raises(LatencyInputError, match="make bench"):
        handler_profile({"cpu": {}}, "score", 1769, 1769)


TEMPLATE = {
    "PreprocessBatchSize": "500",
    "ScoreBatchSize": "500",
    "PreprocessMaximumBatchingWindowInSeconds": "1",
    "ScoreMaximumBatchingWindowInSeconds": "1",
    "PreprocessParallelizationFactor": "1",
    "ScoreParallelizationFactor": "1",
    "PreprocessMemorySize": "1769",
    "ScoreMemorySize": "2048",
}
PRICES = {
    "limits": {"lambda_mb_per_vcpu": {"value": 1769}, "lambda_invoke_overhead_ms": {"value": 20}}
}
TINY = Settings(replications=1, records=200, min_seconds=15.0, warmup_s=2.0, tail_s=1.0)


@pytest.mark.parametrize(
    ("cpu_us", "io_ms", "verdict"), [(1.0, 1.0, "met"), (1_000.0, 200.0, "not met")]
)
def test_the_target_is_reported_met_or_not(cpu_us: float, io_ms: float, verdict: str) -> None:
    section = recorded({10: (cpu_us, io_ms), 100: (cpu_us, io_ms), 500: (cpu_us, io_ms)})
    latest = {"cpu": {"preprocess": section, "score": section}}
    results = run(latest, PRICES, TEMPLATE, seed=1, settings=TINY)
    target = results["target"]
    assert target["verdict"] == verdict
    assert (target["p99_ms"] <= 500.0) == (verdict == "met")
    assert target["p99_ms"] == results["designs"]["one_hop_efo_w0"]["rates"]["1000"]["p99_ms"]
    assert all(source["sentence"] and source["title"] for source in results["sources"])
    assert all(item["assumption"] is True for item in results["assumptions"])


def test_the_performance_section_shows_every_design_rate_source_and_the_verdict() -> None:
    section = recorded({10: (100.0, 20.0), 500: (100.0, 30.0)})
    results = run({"cpu": {"preprocess": section, "score": section}}, PRICES, TEMPLATE, 1, TINY)

    text = markdown(results)

    rows = [line for line in text.splitlines() if line.startswith("| ") and "tx/s" not in line]
    assert len(rows) == len(results["designs"])
    for design, row in zip(results["designs"].values(), rows, strict=True):
        assert row.startswith(f"| {design['title']} |")
        for figures in design["rates"].values():
            assert f"{figures['p50_ms']:.0f} / {figures['p99_ms']:.0f}" in row
    assert f"**{results['target']['verdict']}**" in text
    assert all(source["url"] in text for source in results["sources"])
    assert text.count("\n- ") >= len(results["assumptions"]) + len(results["sources"])
