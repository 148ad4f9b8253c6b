"""Results on disk and for people: latest.json (previous.json rotated), the change per figure,
and docs/PERFORMANCE.md."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from bench import ROOT

RESULTS = ROOT / "bench" / "results"
LATEST = RESULTS / "latest.json"
PREVIOUS = RESULTS / "previous.json"
PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"


# ----------------------------------------------------------------------------- figures


def _figure(stat: Mapping[str, Any], unit: str, better: str) -> dict[str, Any]:
    return {
        "median": stat["median"],
        "min": stat.get("min", stat["median"]),
        "max": stat.get("max", stat["median"]),
        "unit": unit,
        "better": better,
    }


def _exact(value: float, unit: str, better: str) -> dict[str, Any]:
    return {"median": value, "min": value, "max": value, "unit": unit, "better": better}


def _cpu_figures(cpu: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for function in ("preprocess", "score"):
        sizes = {k: v for k, v in cpu[function].items() if k.isdigit()}
        for size, row in sizes.items():
            for variant, stat in row["cpu_us_per_record"].items():
                # absolute CPU moves with the machine's load: judged through the calibration
                out[f"cpu.{function}.{variant}.{size}"] = _figure(stat, "µs/record", "info")
            for variant, stat in row.get("normalised_cpu", {}).items():
                name = f"norm.{function}.{variant}.{size}"
                out[name] = _figure(stat, "x calibration", "lower")
            for name in (n for n in row if "_over_" in n):
                out[f"ratio.{function}.{name}.{size}"] = _figure(row[name], "x", "info")
        for size, row in cpu[function]["io_path"].items():
            out[f"io.{function}.{size}"] = _figure(row["io_ms_per_batch"], "ms/batch", "lower")
    for size, row in cpu["drift_check"].items():
        if size.isdigit():  # absent when the drift check was skipped
            out[f"cpu.drift_check.per_item.{size}"] = _figure(
                row["cpu_us_per_item"], "µs/item", "lower"
            )
    return out


def figures(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every tracked figure under a stable name, with its unit and which way is better."""
    out = _cpu_figures(results["cpu"])
    cold = results["cold_start"]
    for function in ("preprocess", "score", "drift_check"):
        for phase in ("imports_ms", "model_load_ms", "init_ms", "first_batch_ms", "cold_total_ms"):
            name = f"cold.{function}.{phase.removesuffix('_ms')}"
            out[name] = _figure(cold[function][phase], "ms", "lower")
    calls = results["calls"]
    for function, row in calls["per_1000_transactions"].items():
        out[f"calls.{function}.per_1000"] = _exact(row["calls_total"], "calls", "lower")
    out["calls.path.per_1000"] = _exact(
        calls["total_calls_per_1000_transactions"], "calls", "lower"
    )
    drift_calls = calls["drift_check_per_check"]["calls_total"]
    out["calls.drift_check.per_check"] = _exact(drift_calls, "calls", "lower")
    usage = results["cost"]["usage"]
    for unit in ("wru", "rru"):
        value = round(usage[f"{unit}_per_transaction"], 3)
        out[f"units.{unit}_per_transaction"] = _exact(value, unit.upper(), "lower")
    capacity = results["capacity"]
    for function, row in capacity["functions"].items():
        rate = row["records_per_second"]
        out[f"capacity.{function}.records_per_s"] = _exact(rate, "records/s", "higher")
    out["capacity.pipeline.tps_per_shard"] = _exact(
        capacity["sustained_transactions_per_second_per_shard"], "tx/s", "higher"
    )
    for key, row in results["cost"]["scenarios"].items():
        out[f"cost.{key}"] = _exact(row["total_usd_per_million"], "USD/million", "lower")
    embedded = results.get("embedded") or {}
    if "records_per_second" in embedded:
        out["embedded.records_per_s"] = _figure(
            embedded["records_per_second"], "records/s", "higher"
        )
        for p in ("p50", "p90", "p99"):
            out[f"embedded.latency_{p}"] = _figure(embedded["latency_ms"][p], "ms", "lower")
    for row in (results.get("drift_volume") or {}).get("read_side", []):
        key = f"{row['batch_size']}.{row['shards']}"
        # absolute CPU moves with the machine's load: recorded, not judged
        out[f"drift_volume.cpu_s.{key}"] = _figure(row["cpu_s"], "s", "info")
        out[f"drift_volume.items_read.{key}"] = _exact(row["items_read"], "items", "lower")
    return out


NOISE_PCT = 5.0  # a change smaller than this is not called better or worse


def changes(
    current: Mapping[str, Mapping[str, Any]], previous: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Per figure: the change of the median, and a verdict. A figure is better or WORSE when its
    median moved by NOISE_PCT or more and each run's median lies outside the other's min-max."""
    result: dict[str, dict[str, Any]] = {}
    for name, now in current.items():
        before = (previous or {}).get(name)
        if before is None:
            result[name] = {"previous": None, "change_pct": None, "verdict": "new"}
            continue
        old = before["median"]
        pct = None if old == 0 else round((now["median"] - old) / abs(old) * 100, 1)
        overlap = before["min"] <= now["median"] <= before["max"] or now["min"] <= old <= now["max"]
        if now["median"] == old:
            verdict = "same"
        elif overlap or (pct is not None and abs(pct) < NOISE_PCT):
            verdict = "within noise"
        elif now["better"] == "info":
            verdict = "changed"
        else:
            improved = (now["median"] < old) == (now["better"] == "lower")
            verdict = "better" if improved else "WORSE"
        result[name] = {"previous": old, "change_pct": pct, "verdict": verdict}
    return result


# ----------------------------------------------------------------------------- files


def load_latest() -> dict[str, Any] | None:
    """The last run's results, if any: the figures the new ones are compared with."""
    if not LATEST.exists():
        return None
    previous: dict[str, Any] = json.loads(LATEST.read_text(encoding="utf-8"))
    return previous


def load_previous() -> dict[str, Any] | None:
    """The run before the latest one, if any (what a recost compares with)."""
    if not PREVIOUS.exists():
        return None
    previous: dict[str, Any] = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    return previous


def save(results: dict[str, Any], rotate: bool = True) -> None:
    """Rotate latest.json to previous.json (unless `rotate` is off: a recost of the same
    measurements), then write the new latest.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    if rotate and LATEST.exists():
        LATEST.replace(PREVIOUS)
    LATEST.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def print_changes(delta: Mapping[str, Mapping[str, Any]], current: Mapping[str, Any]) -> None:
    print(f"\n{'figure':<52}{'now':>12}{'before':>12}{'change':>9}  verdict")
    for name, row in delta.items():
        now = current[name]["median"]
        before = "—" if row["previous"] is None else f"{row['previous']:g}"
        pct = "" if row["change_pct"] is None else f"{row['change_pct']:+.1f}%"
        print(f"{name:<52}{now:>12g}{before:>12}{pct:>9}  {row['verdict']}")


# ----------------------------------------------------------------------------- markdown


def _cell(stat: Mapping[str, Any], digits: int = 0) -> str:
    fmt = f"{{:,.{digits}f}}"
    median, low, high = (fmt.format(stat[k]) for k in ("median", "min", "max"))
    return median if low == high else f"{median} [{low}-{high}]"


def _change(delta: Mapping[str, Mapping[str, Any]], name: str) -> str:
    row = delta.get(name)
    if row is None or row["change_pct"] is None:
        return "new" if row else ""
    mark = {"WORSE": " ⚠", "better": " ✓"}.get(row["verdict"], "")
    return f"{row['change_pct']:+.0f}%{mark}"


def _drift_cell(scenario: Mapping[str, Any]) -> str:
    seconds = scenario["drift_check_seconds"]
    cell = f"{scenario['drift_window_items']:,} / " + (
        "—" if seconds is None else f"{seconds:,.0f}"
    )
    return cell + (" **times out**" if scenario["drift_check_times_out"] else "")


def _drift_cpu_sentence(drift: Mapping[str, Any]) -> str:
    if "skipped" in drift:
        return f"Drift check CPU per window item: {drift['skipped']}."
    return (
        "Drift check CPU per window item read (hourly count items, fixed cost of the report "
        "and picture spread over the items): "
        + ", ".join(
            f"{n} items: {_cell(row['cpu_us_per_item'])} µs ({_cell(row['cpu_ms_per_check'])} ms a check)"
            for n, row in drift.items()
        )
        + "."
    )


def _table(header: list[str], rows: list[list[str]]) -> Iterator[str]:
    yield "| " + " | ".join(header) + " |"
    yield "|" + "|".join("---" for _ in header) + "|"
    for row in rows:
        yield "| " + " | ".join(row) + " |"


def render(results: Mapping[str, Any], delta: Mapping[str, Mapping[str, Any]]) -> str:  # noqa: PLR0915
    m, v = results["machine"], results["versions"]
    cpu, cold, calls = results["cpu"], results["cold_start"], results["calls"]
    capacity, cost, prices = results["capacity"], results["cost"], results["prices"]
    recosted = results.get("recosted")
    recost_note = (
        f" Capacity and cost (parts 4, 5 and 7) derived again on {recosted['date'][:10]} at "
        f"commit {recosted['git']['commit']}"
        f"{' (with local changes)' if recosted['git'].get('dirty') else ''} by "
        "`python -m bench --recost`: the other "
        "measurements are that run's; prices.json, the template defaults and the tables' item "
        "sizes are the recost's."
        if recosted
        else ""
    )
    lines = [
        "# Performance",
        "",
        f"Generated by `make bench` ({results['date']}, commit {results['git']['commit']}"
        f"{' with local changes' if results['git']['dirty'] else ''}); do not edit by hand."
        f"{recost_note} "
        "Figures are medians with [min-max] over batches or processes; every figure of a table "
        "was measured side by side in one run, variants interleaved batch by batch, so the "
        "ratios hold even on a loaded machine. The change column (Δ) compares the median with "
        f"the previous run ({results.get('previous_date') or 'none'}); ⚠ marks a figure that "
        "got worse by 5% or more beyond both runs' spreads, ✓ one that got better. Handler CPU "
        "changes are judged relative to a fixed calibration workload measured between the "
        "variants (CPU / calibration), so that a busier machine is not taken for slower code.",
        "",
        f"- Machine: {m['cpu']} x {m['cpus']} ({m['system']}), load average "
        f"{m['load_average'][0]} before and {results['load_average_after'][0]} after the run",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "- Template defaults: " + ", ".join(f"{k}={val}" for k, val in results["template"].items()),
        "",
        "## 1. Handler CPU per record",
        "",
        "Process CPU time (all threads) per record, µs, with AWS answered in memory at "
        "botocore's send step (our code and botocore's validation, serialisation, signing and "
        "parsing run; the CPU spent answering is taken out). Logs and EMF are formatted and "
        "written to a sink. Tracing off. Each call runs with the objects that exist before it "
        "frozen (gc.freeze), as the functions run in Lambda. Simulated traffic, 20,000 cards, "
        "1% invalid records.",
        "",
    ]
    sizes = [k for k in cpu["score"] if k.isdigit()]
    rows = []
    for function, variants in (
        ("preprocess", ("handler", "domain_only", "per_record")),
        ("score", ("handler", "domain_only", "floor", "per_record")),
    ):
        for variant in variants:
            row = [function, variant.replace("_", " ")]
            for size in sizes:
                row.append(_cell(cpu[function][size]["cpu_us_per_record"][variant]))
                row.append(_change(delta, f"norm.{function}.{variant}.{size}"))
            rows.append(row)
    header = ["function", "variant"]
    for size in sizes:
        header += [f"batch {size}", "Δ"]
    lines += _table(header, rows)
    lines += ["", "Ratios of paired measurements (same batch, moments apart):", ""]
    rows = []
    for function, names in (
        (
            "score",
            (
                "handler_over_floor",
                "domain_over_floor",
                "handler_over_domain",
                "per_record_over_handler",
            ),
        ),
        ("preprocess", ("per_record_over_handler", "handler_over_domain")),
    ):
        for name in names:
            rows.append(
                [function, name.replace("_", " ")]
                + [_cell(cpu[function][s][name], 2) for s in sizes]
            )
    lines += _table(["function", "ratio", *(f"batch {s}" for s in sizes)], rows)
    lines += [
        "",
        "- *floor*: base64 + JSON decode of the same records, the float32 matrix and one model run.",
        "- *per record*: preprocess: GetItem of the card's state, PutItem of features, PutRecord, "
        "PutItem of state, per transaction; score: one model run, one PutItem (and PutEvents "
        "when declined) per record; same item conversions and clients as the handlers. They "
        "give none of the handlers' effectively-once guarantees (no ledger read, no pending "
        "record, no conditional transactional create, no alert commit): a lower bar of work.",
        "- *domain only*: `preprocess_batch` / `score_batch` with in-memory ports (no item "
        "conversion, no botocore). Score's is the floor restated: decode and one model run, "
        "plus what scoring must do beyond them (validation, decisions, predictions, alerts, "
        "the count histograms summed per count item); the handler's CPU above it is the AWS "
        "path's.",
        "- botocore's client-side parameter validation is off in every function (it cost a "
        "quarter of preprocess's CPU); the service still validates requests.",
        "",
        _drift_cpu_sentence(cpu["drift_check"]),
        *_hot_path_lines(results.get("hot_path")),
        *_shadow_lines(results.get("shadow")),
        *_reasons_lines(results.get("reasons")),
        "",
        "## 2. Cold start",
        "",
        f"A fresh interpreter per sample, {cold['runs']} per function, functions in rotating "
        "order; tracing on as in Lambda; AWS answered in memory. The first batch is "
        f"{results['template']['PreprocessBatchSize']} records (the drift check: a "
        "window of 1,000 items, and its first run imports matplotlib). Interpreter start-up "
        f"({_cell(cold['interpreter_startup_ms'])} ms here) is not included. ms:",
        "",
    ]
    if not calls["drift_check_per_check"].get("reads_count_items", True):
        lines[-1:-1] = [
            "The drift check's window holds hourly count items, which it does not read yet: its "
            "first run here reads an empty window.",
            "",
        ]
    rows = []
    for function in ("preprocess", "score", "drift_check"):
        phases = cold[function]
        rows.append(
            [function]
            + [
                _cell(phases[p])
                for p in (
                    "imports_ms",
                    "model_load_ms",
                    "init_ms",
                    "first_batch_ms",
                    "cold_total_ms",
                    "second_batch_ms",
                )
            ]
            + [_change(delta, f"cold.{function}.cold_total")]
        )
    lines += _table(
        [
            "function",
            "imports",
            "model load",
            "init",
            "first batch",
            "cold total",
            "warm batch",
            "Δ total",
        ],
        rows,
    )
    per = calls["per_1000_transactions"]
    lines += [
        "",
        "## 3. AWS calls per 1,000 transactions",
        "",
        "moto with the template's tables, one shard per stream so batches are full (preprocess "
        f"{calls['batch_sizes']['preprocess']}, score {calls['batch_sizes']['score']}); "
        f"{calls['records_sent']} records in, "
        f"{calls['valid_transactions']} valid; counted with botocore `before-call` hooks, items "
        "sized as DynamoDB counts them.",
        "",
    ]
    apis = sorted({api for row in per.values() for api in row["calls"]})
    lines += _table(
        ["API", *per.keys()],
        [[api] + [f"{per[f]['calls'].get(api, 0):g}" for f in per] for api in apis]
        + [["**total**"] + [f"**{per[f]['calls_total']:g}**" for f in per]],
    )
    drift = calls["drift_check_per_check"]
    dead = (
        " **It queried "
        + ", ".join(f"{n} {kind}" for kind, n in drift.get("queried_kinds", {}).items())
        + " window partitions and no hourly count items: the per-batch items it looks for are "
        "no longer written, so these are the calls of an empty window.**"
        if not drift.get("reads_count_items", True)
        else ""
    )
    lines += [
        "",
        f"Whole path: **{calls['total_calls_per_1000_transactions']:g} calls per 1,000 "
        f"transactions** (Δ {_change(delta, 'calls.path.per_1000') or '—'}). The drift check, per "
        f"run (hourly, not per transaction): "
        + ", ".join(f"{api} {n:g}" for api, n in drift["calls"].items())
        + f" (window of this run: outcome {drift['outcome']}).{dead}",
        "",
    ]
    lines += _transactions_lines(calls)
    lines += [
        "Request units per 1,000 transactions and item sizes (WRU each: per item written, "
        "2 per KB inside a transaction):",
        "",
    ]
    tables = sorted({t for row in per.values() for t in (*row["wru"], *row["rru"])})
    lines += _table(
        ["table", "WRU", "RRU", "items written", "mean bytes", "WRU each"],
        [
            [
                t,
                f"{sum(per[f]['wru'].get(t, 0) for f in per):g}",
                f"{sum(per[f]['rru'].get(t, 0) for f in per):g}",
                str(calls["item_bytes"].get(t, {}).get("items", 0)),
                f"{calls['item_bytes'].get(t, {}).get('mean', 0):g}",
                f"{calls['item_bytes'].get(t, {}).get('wru_each', 0):g}",
            ]
            for t in tables
        ],
    )
    lines += [
        "",
        f"Records: transaction {calls['transaction_record_bytes']:g} B, feature record "
        f"{calls['feature_record_bytes']:g} B; logs {calls['log_bytes']:,} B for the run; "
        f"{calls['custom_metrics']} custom metrics from the EMF.",
        "",
        "## 4. Capacity of one shard",
        "",
    ]
    rows = []
    for function, row in capacity["functions"].items():
        rows.append(
            [
                function,
                f"{row['memory_mb']} MB ({row['cpu_share_vcpu']} vCPU)",
                str(row["batch_size"]),
                f"{row['cpu_ms_per_batch_here']:g}",
                f"{row['io_ms_per_batch']:g}",
                f"{row['duration_ms_per_batch']:g}",
                f"**{row['records_per_second']:,.0f}** "
                + "[{:,.0f}-{:,.0f}]".format(*row["records_per_second_range"]),
                " / ".join(f"{v:,.0f}" for v in row["records_per_second_by_batch_size"].values()),
                f"{row['per_record_version_records_per_second']:,.0f}",
                "beyond 1 vCPU"
                if row["memory_mb_to_sustain_shard_limit"] is None
                else f"{row['memory_mb_to_sustain_shard_limit']:,} MB",
            ]
        )
    lines += _table(
        [
            "function",
            "memory",
            "batch",
            "CPU ms/batch here",
            "I/O ms/batch",
            "Lambda ms/batch",
            "records/s",
            "records/s at "
            + " / ".join(capacity["functions"]["score"]["records_per_second_by_batch_size"]),
            "per-record version records/s",
            "memory for 1,000 records/s",
        ],
        rows,
    )
    limits = capacity["transactions_per_second_per_shard"]
    lines += [
        "",
        "Transactions/s one shard carries, by link: "
        + ", ".join(f"{k} {val:,.0f}" for k, val in limits.items())
        + f". **Bottleneck: {capacity['bottleneck']}** at "
        f"{capacity['sustained_transactions_per_second_per_shard']:,.0f} transactions/s per shard.",
        "",
    ]
    lines += [_drift_capacity_sentence(capacity["drift_check"]), ""]
    lines += [f"- {a}" for a in capacity["assumptions"]]
    lines += ["", "## 5. Cost per million transactions", ""]
    lines += _scenario_lines(cost["scenarios"], delta)
    lines += _storage_lines(results)
    lines += ["Always-on real-time endpoint (SageMaker, 2 instances), instance hours only:", ""]
    lines += _table(
        [
            "instance",
            "USD/month",
            *(
                f"USD/million at {r}"
                for r in next(iter(cost["endpoint"].values()))["usd_per_million"]
            ),
            "break-even vs score function",
        ],
        [
            [name, f"{row['usd_per_month']:,.0f}"]
            + [f"{x:.2f}" for x in row["usd_per_million"].values()]
            + [f"{row['break_even_tps_vs_score_function']:,.0f} tx/s"]
            for name, row in cost["endpoint"].items()
        ],
    )
    lines += [""] + [f"- {n}" for n in cost["notes"]]
    lines += _effectively_once_lines(load_effectively_once())
    lines += _drift_volume_lines(results.get("drift_volume"))
    embedded = results.get("embedded") or {}
    lines += ["", "## 6. Embedded local run", ""]
    if "records_per_second" in embedded:
        lat = embedded["latency_ms"]
        lines += [
            f"`python -m local run --transactions {embedded['transactions']:,}`, "
            f"{embedded['runs']} runs one after the other, {embedded['records_in']:,} records "
            f"each: **{_cell(embedded['records_per_second'])} records/s** "
            f"(Δ {_change(delta, 'embedded.records_per_s') or '-'}), from the first put to the "
            f"last prediction; latency from arrival to prediction p50 {_cell(lat['p50'])} ms, "
            f"p90 {_cell(lat['p90'])} ms, p99 {_cell(lat['p99'])} ms. moto (one local server "
            "process), the event-source emulator and this machine bound these numbers, not "
            "AWS; they show that the pipeline runs end to end and catch regressions of the "
            "local run, not production speed.",
        ]
    else:
        lines += [f"Not measured: {embedded.get('error', 'skipped')}."]
    lines += ["", "## Sources and assumptions", "", f"Prices: {prices['about']}", ""]
    lines += _table(
        ["price", "USD", "per", "as of", "checked", "source"],
        [
            [k, f"{s['usd']:g}", s["per"], s.get("as_of", "?"), s.get("checked", "?"), s["source"]]
            for k, s in prices["prices"].items()
        ],
    )
    lines += ["", "What each check found:", ""]
    lines += [f"- `{k}`: {s['check']}" for k, s in prices["prices"].items() if s.get("check")]
    lines += [""]
    lines += _table(
        ["call", "p50 ms (assumed)", "source"],
        [[k, f"{s['ms']:g}", s["source"]] for k, s in prices["latency_ms_p50"].items()],
    )
    lines += [""]
    lines += _table(
        ["limit", "value", "source"],
        [[k, f"{s['value']:g}", s["source"]] for k, s in prices["limits"].items()],
    )

    def listed(verdict: str) -> str:
        names = [n for n, row in delta.items() if row["verdict"] == verdict]
        return ", ".join(f"`{n}` {delta[n]['change_pct']:+.0f}%" for n in names) or "none"

    lines += [
        "",
        "## Changes since the previous run",
        "",
        f"Worse: {listed('WORSE')}.",
        "",
        f"Better: {listed('better')}.",
        "",
        "Every figure with its change and verdict is in bench/results/latest.json (`changes`); "
        "`make bench` prints them all.",
        "",
    ]
    return "\n".join(lines)


def _scenario_lines(
    scenarios: Mapping[str, Any], delta: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """One table per stream mode: USD per million by component, rate and architecture."""
    lines: list[str] = []
    modes = {
        "on_demand": "Streams on-demand (On-demand Standard, the template's default)",
        "on_demand_advantage": "Streams on-demand, account in On-demand Advantage",
        "provisioned": "Streams provisioned",
    }
    for mode, title in modes.items():
        keys = [k for k in scenarios if k.split("/")[0] == mode]
        if not keys:
            continue
        components = list(scenarios[keys[0]]["usd_per_million"])
        lines += [f"{title}, USD per million transactions:", ""]
        lines += _table(
            ["component", *(k.split("/", 1)[1] for k in keys)],
            [[c] + [f"{scenarios[k]['usd_per_million'][c]:.3f}" for k in keys] for c in components]
            + [["**total**"] + [f"**{scenarios[k]['total_usd_per_million']:.2f}**" for k in keys]]
            + [
                ["batch fill pre/score"]
                + [
                    f"{scenarios[k]['preprocess_batch_fill']:g}/{scenarios[k]['score_batch_fill']:g}"
                    for k in keys
                ]
            ]
            + [
                ["cold starts / KMS requests"]
                + [
                    f"{scenarios[k].get('cold_starts_per_million', 0):,.0f} / "
                    f"{scenarios[k].get('kms_requests_per_million', 0):,.0f}"
                    for k in keys
                ]
            ]
            + [["drift check: window items / s"] + [_drift_cell(scenarios[k]) for k in keys]]
            + [["Δ total"] + [_change(delta, f"cost.{k}") for k in keys]],
        )
        lines.append("")
    return lines


def _storage_lines(results: Mapping[str, Any]) -> list[str]:
    """What the tables keep at 1,000 tx/s (the storage and PITR components' inputs)."""
    rows = results["cost"].get("storage_at_1000tps", [])
    if not rows:
        return []
    sizes = results.get("storage") or {}
    if "kinds" in sizes:
        measured = (
            f"Item sizes from the tables of a local run of {sizes['transactions']:,} "
            "transactions (part 7: `python -m bench.storage`), card states and count items "
            "from part 3 (the local run streams weeks of traffic in a minute: its card states "
            "carry several pending records, its count items minutes of predictions)"
        )
        kinds = ", ".join(
            f"{kind} {row['mean_bytes']:g} B ({row['items']})"
            for kind, row in sizes["kinds"].items()
        )
        measured += f". The local run's tables, mean bytes (items): {kinds}."
    else:
        measured = (
            "Item sizes from part 3 (the local run's tables were not sized: "
            + str(sizes.get("error", "skipped"))
            + ")."
        )
    lines = [
        "What the tables keep at 1,000 tx/s, sustained (storage and point-in-time recovery "
        "are billed on it): " + measured,
        "",
    ]
    lines += [
        "Card states are kept per card, not per transaction: their 'kept' is the item-days "
        "one transaction accounts for (the days to the card's next transaction, plus its "
        "share of the TTL a quiet card's item waits out).",
        "",
    ]
    lines += _table(
        ["kind", "bytes", "billed bytes", "kept (days)", "in WindowIndex", "PITR", "GB held"],
        [
            [
                row["kind"],
                f"{row['bytes_per_item']:g}",
                f"{row['billed_bytes_per_item']:g}",
                f"{row['retention_days']:g}",
                f"{row['indexed_share']:.0%}",
                "yes" if row["pitr"] else "no",
                f"{row['gb_held']:,.2f}",
            ]
            for row in rows
        ],
    )
    init = results["cost"].get("init_ms", {})
    lines += [
        "",
        "INIT per cold start (part 2, medians, one vCPU here: interpreter start-up, imports, "
        "model load, module body): "
        + ", ".join(f"{f} {ms:,.0f} ms" for f, ms in init.items() if ms is not None)
        + ".",
        "",
    ]
    return lines


def _transactions_lines(calls: Mapping[str, Any]) -> list[str]:
    """What the TransactWriteItems chunks hold and the hourly count items the run left."""
    rows = []
    for function, tables in calls.get("transaction_chunks", {}).items():
        per = calls["per_invocation"][function]
        for table, row in tables.items():
            rows.append(
                [
                    function,
                    table,
                    f"{row['transactions']} ({per['transactions']:g} a batch)",
                    f"{row['puts_per_transaction']:g}",
                    f"{row['updates_per_transaction']:g}",
                    f"{row['put_wru_per_transaction']:g}",
                    f"{row['count_update_wru_per_transaction']:g}",
                    str(row["cancelled"]),
                ]
            )
    if not rows:
        return []
    lines = [
        "Facts created in transactions (TransactWriteItems, 2 WRU per KB of every item, Updates "
        "included: the DynamoDB Developer Guide, see `dynamodb_transactional_write_factor` "
        "below):",
        "",
    ]
    lines += _table(
        [
            "function",
            "facts in",
            "transactions",
            "Puts each",
            "count Updates each",
            "Put WRU each",
            "Update WRU each",
            "cancelled",
        ],
        rows,
    )
    counts = calls.get("count_items", {})
    lines += [
        "",
        "Hourly count items left by the run: "
        + ", ".join(
            f"{kind} {row['items']} (mean {row['mean_bytes']:g} B, max {row['max_bytes']} B)"
            for kind, row in counts.items()
        )
        + "; the measured records fall in one event hour, so each batch's chunks updated their "
        "own slot items, fresh ones: an item updated all hour long grows a little (larger "
        "counts), beyond 1 KB it costs 4 WRU an Update.",
        "",
    ]
    return lines


def _drift_capacity_sentence(d: Mapping[str, Any]) -> str:
    busy = (
        f"Count items the drift check reads: {d['count_items_per_hour_4_busy_shards']:g} an hour "
        f"with 4 busy shards per stream (a score batch's {d['predictions_per_chunk']}-prediction "
        "transactions each add to their own slot item), whatever the traffic beyond that."
    )
    if "skipped" in d:
        return busy + " Its time per item: not measured (see part 1)."
    return (
        busy + f" At {d['ms_per_window_item']} ms per window item ({d['memory_mb']} MB) a "
        f"{d['window_hours']:g} h window of them takes {d['seconds_at_4_busy_shards']:g} s; "
        f"the {d['timeout_s']:g} s timeout allows {d['max_window_items_within_timeout']:,} items."
    )


HOT_PATH_CHANGES = {
    "botocore_shapes": "requests and responses on the wire format path, botocore's shape walk skipped",
    "user_agent_per_call": "the User-Agent built once per client",
    "two_pass_items": "items converted in one pass",
    "unfrozen": "gc.freeze() after init",
    "jmespath_context": "the endpoint rules' table names read without JMESPath",
    "before": "all of them together",
}


def _hot_path_lines(hot: Mapping[str, Any] | None) -> list[str]:
    """Part 1c (bench/hot_path.py): each change of the hot path turned off alone."""
    lines = ["", "### 1c. Each change to the hot path, side by side", ""]
    if not hot:
        return [*lines, "Not measured in this run: `python -m bench.hot_path` measures it."]
    lines += [
        f"{len(hot.get('variants') or ())} instances of each function in one "
        f"process, {hot['batches_per_size']} measured "
        "batches per size through every one, the order rotating: the handler as it runs (*now*) "
        "and, for each change, the same handler with only that change turned off. The ratio is "
        "*now* over the variant without the change, paired batch by batch: what the change "
        "does with the others in place (below 1: cheaper).",
        "",
    ]
    sizes = list(hot["score"])
    rows = []
    for function in ("preprocess", "score"):
        for variant, change in HOT_PATH_CHANGES.items():
            row = [function, change]
            for size in sizes:
                ratio = hot[function][size]["ratios"].get(f"{variant}/now")
                row.append(
                    f"{1 / ratio['median']:.2f} [{1 / ratio['max']:.2f}-{1 / ratio['min']:.2f}]"
                    if ratio
                    else "not measured"
                )
            rows.append(row)
    lines += _table(["function", "change", *(f"batch {s}" for s in sizes)], rows)
    return lines


def _shadow_lines(shadow: Mapping[str, Any] | None) -> list[str]:
    """Part 1d (bench/shadow.py): the score handler with and without a challenger in shadow."""
    lines = ["", "### 1d. Shadow scoring: the score handler with a challenger", ""]
    if not shadow:
        return [*lines, "Not measured in this run: `python -m bench.shadow` measures it."]
    lines += [
        f"Two score handlers in one process, {shadow['batches_per_size']} measured batches per "
        "size through both, the order rotating: the champion alone, and the champion with a "
        f"challenger named in the registry ({shadow['challenger']}), which scores every batch "
        "again, adds its fields to every prediction and its SHAD counts to every transaction. "
        "CPU µs per record, median [min-max], and the paired ratio:",
        "",
    ]
    rows = []
    for size, row in shadow["score"].items():
        cpu = row["cpu_us_per_record"]
        ratio = row["ratios"]["with_challenger/champion_alone"]
        rows.append(
            [
                size,
                _cell(cpu["champion_alone"]),
                _cell(cpu["with_challenger"]),
                f"{ratio['median']:.2f} [{ratio['min']:.2f}-{ratio['max']:.2f}]",
            ]
        )
    return [*lines, *_table(["batch", "champion alone", "with challenger", "ratio"], rows)]


REASONS_TARGET = 0.10  # at most 10 % more CPU per record at a 3 % flag rate
TARGET_FLAG_RATE = 0.03


def _reasons_lines(reasons: Mapping[str, Any] | None) -> list[str]:
    """Part 1e (bench/reasons.py): CPU per explained row, and the handler with and without."""
    lines = ["", "### 1e. Reasons: CPU per explained row, the handler with and without", ""]
    if not reasons:
        return [*lines, "Not measured in this run: `python -m bench.reasons` measures it."]
    per_row = reasons["per_row"]
    counts = list(per_row["tree_path_dependent"])
    lines += [
        f"The shipped model ({per_row['trees']} trees, {per_row['leaves']} leaves): CPU µs per "
        "explained row by rows per call, median [min-max]; path-dependent TreeSHAP is what its "
        "card names, interventional (over the card's "
        f"{per_row['background_rows']} background rows) what a model without covers gets:",
        "",
    ]
    rows = [
        [method, *(_cell(per_row[method][n]) for n in counts)]
        for method in ("tree_path_dependent", "interventional")
    ]
    lines += _table(["method", *(f"{n} rows" for n in counts)], rows)
    flag_rate = reasons.get("flag_rate")
    lines += [
        "",
        f"Two score handlers side by side, {reasons['batches_per_size']} measured batches per "
        "size, ReasonCount 0 against 3, on traffic whose flag rate (reviews and declines per "
        f"prediction) was {_percent_of(flag_rate)}. CPU µs per record and the paired ratio; the "
        "last column is the cost the per-row figure predicts at a 3 % flag rate "
        "(3 % x µs per row at 15 rows / the handler's µs per record without reasons), "
        f"against a target of +{REASONS_TARGET:.0%}:",
        "",
    ]
    per_row_15 = per_row["tree_path_dependent"].get("15", {}).get("median")
    table = []
    for size, row in reasons["score"].items():
        cpu = row["cpu_us_per_record"]
        ratio = row["ratios"]["reasons_on/reasons_off"]
        predicted = (
            f"+{TARGET_FLAG_RATE * per_row_15 / cpu['reasons_off']['median']:.1%}"
            if per_row_15
            else "-"
        )
        table.append(
            [
                size,
                _cell(cpu["reasons_off"]),
                _cell(cpu["reasons_on"]),
                f"{ratio['median']:.3f} [{ratio['min']:.2f}-{ratio['max']:.2f}]",
                predicted,
            ]
        )
    return [
        *lines,
        *_table(["batch", "reasons off", "reasons on", "ratio", "at 3 % (per-row)"], table),
    ]


def _percent_of(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1%}"


def _drift_volume_lines(volume: Mapping[str, Any] | None) -> list[str]:
    """The drift check over a day of 1,000 transactions/s (bench/drift_volume.py), when measured."""
    lines = ["", "## Drift check at volume", ""]
    if not volume:
        return [
            *lines,
            "Not measured in this run (its results predate the part): "
            "`python -m bench.drift_volume` measures it on its own.",
        ]
    scenario, targets = volume["scenario"], volume["targets"]
    template = scenario["template"]
    lines += [
        f"{scenario['transactions']:,} transactions in {scenario['hours']} h "
        f"({scenario['transactions_per_s']:,.0f}/s) on the template's defaults "
        f"(StreamMode {template['StreamMode']}, DriftCheckMemorySize "
        f"{template['DriftCheckMemorySize']} MB, ParallelizationFactor "
        f"{template['ScoreParallelizationFactor']}), {scenario['shards_per_stream']} shards per "
        "stream (what a new on-demand stream is taken to start with; assumed, see "
        f"`bench/drift_volume.py`), 1 invalid record per "
        f"{1 / scenario['invalid_per_transaction']:,.0f} transactions quarantined by preprocess "
        f"and 1 feature record in {1 / scenario['score_refused_share']:,.0f} refused by score. "
        "The window's hourly count items are built as the writers leave them at the end of the "
        "day (per hour and shard one PRED item per writer slot of a full batch, one QUAR item "
        "per stage; scored simulator traffic scaled to the hour's volume) and read by the real "
        "drift-check handler from a fake AWS (Query pages of 1 MB as DynamoDB sizes items). "
        "CPU is process CPU in seconds, median [min-max]"
        f"{' (a quick run: one sample)' if volume['quick'] else ''}; the modelled duration adds "
        "the time with a call in flight at the stated p50 latencies; memory is a fresh "
        "drift-check process's RSS after init and one empty run plus this run's tracemalloc "
        f"peak. Target: {targets['seconds']:g} s and {targets['memory_mb']:g} MB.",
        "",
    ]
    rows = []
    for r in volume["read_side"]:
        memory = r["memory"]
        estimated = memory.get("estimated_lambda_mb")
        rows.append(
            [
                str(r["batch_size"]),
                str(r["shards"]),
                f"{r['items_read']:,}",
                str(r["query_calls"]),
                _cell(r["cpu_s"], 2),
                f"{r['modelled_duration_s']:,.2f}",
                (f"{estimated:,.0f}" if estimated is not None else "—")
                + f" ({memory['tracemalloc_peak_mb']:,.1f})",
                f"{r['cost_usd_per_run_total'] * 1e6:,.1f}",
                "yes" if r["meets_target"] else "**no**",
            ]
        )
    lines += _table(
        [
            "batch",
            "shards",
            "items read",
            "Query calls",
            "CPU s",
            "modelled s",
            "MB (run's peak)",
            "µUSD per run",
            "target met",
        ],
        rows,
    )
    design = volume["per_batch_design"]
    old = design["old_design"]
    lines += [
        "",
        f"The per-batch design it replaced ({design['items_per_batch']} items per score batch; "
        f"~{old['items_per_day_at_defaults']:,} a day at the defaults), extrapolated from CPU "
        "and deserialized memory per one-batch count item measured in the same run (memory "
        f"with {scenario['reader_hours_in_flight']} hours of items in flight, as the reader "
        f"streams them); *old figures*: {old['ms_per_item']} ms per item at "
        f"{old['at_memory_mb']} MB (scaled to {template['DriftCheckMemorySize']} MB) and "
        f"{old['deserialized_kb_per_hist_item']} KB per deserialized HIST item:",
        "",
    ]
    lines += _table(
        [
            "batch",
            "shards",
            "items a day",
            "modelled s",
            f"within {template['DriftCheckTimeout']} s",
            "MB streamed",
            "old figures: s / MB (whole window)",
        ],
        [
            [
                str(r["batch_size"]),
                str(r["shards"]),
                f"{r['items_per_day']:,}",
                f"{r['modelled_duration_s']:,.0f}",
                "yes" if r["fits_timeout"] else "**no**",
                f"{r['memory_mb_streamed']:,}",
                f"{r['old_figures_duration_s']:,} / {r['old_figures_memory_mb_whole_window']:,}",
            ]
            for r in design["rows"]
        ],
    )
    write = volume["write_side"]
    durations = write["score_durations"]
    lines += [
        "",
        "Write side: the count Update inside each fact transaction (2 WRU per KB of the item at "
        "the end of its hour, the larger of before and after). The busiest item is a shard's "
        "slot-0 PRED item: one Update per batch of its shard (ParallelizationFactor 1: one batch "
        "at a time), at most one per score-handler duration (measured on the fake AWS with the "
        "latencies injected: "
        + ", ".join(
            f"batch {k}: {_cell(v['duration_ms'], 1)} ms"
            for k, v in durations.items()
            if k.isdigit()
        )
        + "); *catch-up*: full batches back to back. Every Update also writes the item's "
        "WindowIndex copy, and all count items of an hour share one index partition key "
        f"(assumed 1 WRU per KB there). Against {write['partition_wcu_limit']:,.0f} WCU/s per "
        f"partition and an aim of {write['wcu_aim']:,.0f}:",
        "",
    ]
    lines += _table(
        [
            "batch",
            "shards",
            "Updates per 1,000 tx (PRED + QUAR)",
            "WRU per 1,000 tx",
            "PRED item bytes",
            "busiest item WCU/s (catch-up)",
            "WindowIndex hour WCU/s",
            "score shard keeps up",
        ],
        [
            [
                str(r["batch_size"]),
                str(r["shards"]),
                f"{r['updates_per_1000']['prediction']:g} + "
                f"{r['updates_per_1000']['quarantine_preprocess'] + r['updates_per_1000']['quarantine_score']:.1f}",
                f"{r['wru_per_1000']:,.0f}",
                f"{r['item_bytes']['prediction']:,}",
                f"{r['busiest_item']['wcu_per_s']:,.0f} ({r['busiest_item']['catch_up_wcu_per_s']:,.0f})",
                f"{r['window_index_partition_wcu_per_s']:,.0f}",
                "yes"
                if r["shard_keeps_up"]
                else f"**no** ({r['score_records_per_s_per_shard']:,}/s)",
            ]
            for r in write["rows"]
        ],
    )
    lines += [
        "",
        f"Largest count item: {write['largest_item_bytes']:,} bytes; with every attribute the "
        "model's bins allow, each at 9,999,999 (more than a full hour at 1,000/s in one item): "
        f"{write['largest_possible_item_bytes']:,} bytes "
        f"(against {write['item_watch_bytes'] // 1024} KB and the "
        f"{write['item_limit_bytes'] // 1024} KB item limit).",
        "",
    ]
    lines += [f"- {name}: {text}" for name, text in volume["sources"].items()]
    return lines


EFFECTIVELY_ONCE = RESULTS / "effectively_once.json"


def load_effectively_once() -> dict[str, Any] | None:
    """The before/after comparison of the effectively-once change, when it was measured."""
    if not EFFECTIVELY_ONCE.exists():
        return None
    found: dict[str, Any] = json.loads(EFFECTIVELY_ONCE.read_text(encoding="utf-8"))
    return found


def _effectively_once_lines(comparison: Mapping[str, Any] | None) -> list[str]:
    if not comparison:
        return []
    lines = ["", "## Effectively once: what it costs", ""]
    lines += [str(line) for line in comparison["intro"]] + [""]
    lines += _table(comparison["header"], [list(map(str, r)) for r in comparison["rows"]])
    lines += [""] + [f"- {note}" for note in comparison["notes"]]
    if comparison.get("cost_rows"):
        lines += ["", str(comparison["cost_intro"]), ""]
        lines += _table(
            comparison["cost_header"], [list(map(str, r)) for r in comparison["cost_rows"]]
        )
        lines += [""] + [f"- {note}" for note in comparison.get("cost_notes", [])]
    return lines


def write_markdown(text: str) -> None:
    PERFORMANCE_MD.parent.mkdir(parents=True, exist_ok=True)
    PERFORMANCE_MD.write_text(text, encoding="utf-8")
