"""The local run end to end: simulated traffic through the template's stack on embedded moto.

Small runs, each with its own moto: the real handlers behind the event-source emulator, the
drift check over the checked days, the summary read back from the stack's tables and queues.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from embedded import aggregation, producer
from embedded.aggregation import Aggregate, corrupt_digest
from embedded.cli import main
from embedded.containers import FunctionContainer
from embedded.deploy import TemplateError, local_template
from embedded.producer import simulated_traffic
from embedded.run import RunError, RunOptions, run_embedded
from embedded.server import MotoServer, ServerStartError
from embedded.summary import render_summary
from streamscore.core.aggregation import deaggregate
from support.model_dirs import MODEL_DIR, renamed_model

ROOT = Path(__file__).resolve().parents[2]
TRANSACTIONS = 4_000  # ~110 cards: enough for the drift check's sample over the checked days


@pytest.mark.slow
def test_baseline_run_balances_and_asks_for_no_retraining(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    summary_path = tmp_path / "summary.json"

    # when: the command line, as `make demo` runs it
    code = main(
        [
            "run",
            "--transactions", str(TRANSACTIONS),
            "--invalid-rate", "0.03",
            "--seed", "11",
            "--json", str(summary_path),
            "--out", str(tmp_path / "out"),
        ]
    )  # fmt: skip

    # then
    out = capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    counts = summary["counts"]
    assert code == 0, out
    assert counts["in"] == TRANSACTIONS + counts["invalid_sent"]
    assert counts["invalid_sent"] > 50
    assert counts["scored"] == TRANSACTIONS
    assert counts["quarantined"] == counts["invalid_sent"]
    assert counts["in"] == counts["scored"] + counts["quarantined"]
    assert (counts["failed"], counts["duplicate_predictions"], counts["unaccounted"]) == (0, 0, 0)
    assert set(counts["quarantined_by_stage"]) == {"preprocess"}
    assert summary["latency_ms"]["n"] == TRANSACTIONS
    assert sum(summary["decisions"].values()) == TRANSACTIONS
    assert summary["quality"]["labelled"] == TRANSACTIONS
    assert summary["quality"]["pr_auc"] > 0.7
    _reasons_fit_the_patterns(summary["quality"])
    drift = summary["drift"]
    assert drift["status"] in ("ok", "warn")
    assert drift["retraining"] == "not_drift"
    assert drift["sample"]["n"] >= 500  # the checked days only
    assert summary["retraining_requests"] == 0
    assert Path(drift["picture"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["failure_queue"] == {"messages": 0, "records": 0, "conditions": {}}
    assert summary["functions"]["PreprocessFunction"]["errors"] == 0
    assert "in = scored + quarantined + failed holds" in out
    # ConsumerMode's default: every mapping polls its stream
    assert {m["consumer"] for m in summary["event_source_mappings"].values()} == {None}
    assert "Drift check" in out and drift["picture"] in out
    assert "Reasons of reviews and declines" in out and "mcc_high_risk" in out
    _labels_are_what_production_sees(summary)
    assert "Labels production would see" in out
    # the quality check over the run's window (every label back): no retraining on baseline
    check = summary["quality_check"]
    assert check["status"] in ("ok", "insufficient_labels"), check
    assert check["retraining"] == "not_drift" and "/reports/quality/" in check["report_uri"]


def _labels_are_what_production_sees(summary: dict) -> None:
    """Every review gets an analyst's outcome, declines never a label, approvals only the
    chargebacks of their frauds; every label sent is in LabelsTable."""
    labels = summary["labels"]
    rows = labels["by_decision"]
    assert labels["sent"] == labels["stored"] > 0 and labels["refused"] == 0
    assert rows["review"].get("unlabelled", 0) == 0
    assert rows["review"].get("labelled_fraud", 0) == rows["review"].get("frauds", 0)
    assert rows["decline"].get("unlabelled") == rows["decline"]["transactions"]
    approve = rows["approve"]
    assert approve.get("labelled_legit", 0) == 0
    assert approve.get("labelled_fraud", 0) + labels["unreported_frauds"] == approve.get(
        "frauds", 0
    )
    assert labels["by_source"].get("review") == rows["review"]["transactions"]
    # the count items' realized figures are the labels' (LabelsTable, joined here by the run)
    real = labels["quality"]["realized"]
    caught, missed = rows["review"].get("labelled_fraud", 0), approve.get("labelled_fraud", 0)
    assert real["recall_at_review"] == pytest.approx(caught / (caught + missed))
    assert real["precision_at_review"] == pytest.approx(caught / rows["review"]["transactions"])
    assert real["implicit_negatives"] == approve["transactions"] - missed
    assert real["pr_auc_low"] <= real["pr_auc"] <= real["pr_auc_high"]


# What the simulator's fraud patterns are made of (local/simulator/fraud.py): card testing is a
# burst of small e-commerce probes on one card; account takeover a card used at night and
# abroad, for more than its usual amounts; high-risk MCC purchases at high-risk merchants.
PATTERN_SIGNALS = {
    "card_testing": {"small_ecom_count_1h", "txn_count_1h", "seconds_since_last_log"},
    "account_takeover": {"is_night", "is_foreign", "foreign_count_24h", "amount_ratio_mean"},
    "high_risk_mcc": {"mcc_high_risk"},
}


def _reasons_fit_the_patterns(quality: dict) -> None:
    """Every flagged fraud is explained, and each pattern's most listed reason is one of the
    features its simulation moves (the first reason of high-risk MCC fraud is the MCC)."""
    by_pattern = quality["reasons_by_pattern"]
    for pattern, signals in PATTERN_SIGNALS.items():
        recall = quality["recall_by_pattern"][pattern]
        flagged = round(recall["n"] * recall["review_recall"])
        row = by_pattern[pattern]
        assert row["explained"] == flagged > 0
        top = row["features"][0]
        assert top["feature"] in signals, (pattern, row)
        assert top["share"] >= 0.5
    mcc = by_pattern["high_risk_mcc"]["features"][0]
    assert mcc["first_share"] >= 0.8


# channel-shift moves e-commerce share; cross-border e-commerce moves the foreign counter with it,
# and at ~110 cards that counter is the noisiest feature (PSI up to ~0.3 across seeds).
CHANNEL_SHIFT_MAY_DRIFT = {"channel_ecom", "foreign_count_24h"}


def test_enhanced_fan_out_reads_through_a_consumer_per_mapping_with_every_guarantee(
    tmp_path: Path,
) -> None:
    summary = run_embedded(
        RunOptions(
            transactions=600,
            invalid_rate=0.02,
            out_dir=tmp_path,
            parameters={"ConsumerMode": "EnhancedFanOut"},
        )
    )

    mappings = summary["event_source_mappings"]
    consumers = {name: m["consumer"] for name, m in mappings.items()}
    assert consumers["PreprocessFunction"].endswith("/consumer/preprocess") or (
        "/consumer/preprocess:" in consumers["PreprocessFunction"]
    )
    assert "/consumer/score" in consumers["ScoreFunction"]
    assert consumers["LabelsFunction"] is None and consumers["FeatureLogFunction"] is None
    counts = summary["counts"]
    assert counts["scored"] == 600
    assert counts["in"] == counts["scored"] + counts["quarantined"]
    assert (counts["failed"], counts["duplicate_predictions"], counts["unaccounted"]) == (0, 0, 0)


@pytest.mark.slow
def test_drift_scenario_detects_the_shift_and_requests_retraining_once(tmp_path: Path) -> None:
    # when: from the checked days on, every card moves half its channel mix to e-commerce
    summary = run_embedded(
        RunOptions(transactions=TRANSACTIONS, scenario="channel-shift", out_dir=tmp_path)
    )

    # then
    drift = summary["drift"]
    features = drift["features"]
    drifted = {name for name, v in features.items() if v["status"] == "drift"}
    assert drift["status"] == "drift"
    assert max(features, key=lambda name: features[name]["psi"]) == "channel_ecom"
    assert "channel_ecom" in drifted <= CHANNEL_SHIFT_MAY_DRIFT
    assert drift["score"]["status"] == "drift"  # the model's scores moved with it
    assert drift["retraining"] == "sent"
    assert summary["retraining_requests"] == 1
    # EventBridge's other target: one run of the in-stack runner, waiting for matured labels
    ((delivery,),) = [summary["retraining_runner"]]
    assert (delivery["function"], delivery["attempts"]) == ("RetrainStartFunction", 1)
    run = delivery["response"]
    window_end = datetime.fromisoformat(drift["window"]["end"])
    assert datetime.fromisoformat(run["retrain_at"].replace("Z", "+00:00")) == (
        window_end + timedelta(days=14 + 35)
    ).replace(microsecond=0)
    assert "waits until" in render_summary(summary)
    counts = summary["counts"]
    assert (counts["failed"], counts["duplicate_predictions"], counts["unaccounted"]) == (0, 0, 0)


@pytest.mark.slow
def test_input_file_lines_are_sent_as_their_bytes(tmp_path: Path) -> None:
    # given: two transactions, one of them twice, and two lines that are not JSON
    transaction = {
        "transaction_id": "file-1", "card_id": "card_9", "merchant_id": "m_1", "amount": 12.5,
        "currency": "EUR", "country": "DE", "mcc": "5411", "channel": "pos",
        "event_time": "2026-03-02T10:00:00+01:00",
    }  # fmt: skip
    second = transaction | {"transaction_id": "file-2", "amount": 30.0}
    lines = [
        json.dumps(transaction).encode(),
        b"not json at all \xff",
        json.dumps(second).encode(),
        b"",
        json.dumps(transaction).encode(),
        b'{"transaction_id": "file-3"',
    ]
    path = tmp_path / "records.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")

    # when
    summary = run_embedded(RunOptions(input_path=path, out_dir=tmp_path))

    # then: 5 records (the blank line is skipped), the repeat scored once
    counts = summary["counts"]
    assert (counts["in"], counts["scored"], counts["quarantined"]) == (5, 2, 2)
    assert counts["repeats_absorbed"] == 1
    assert counts["unaccounted"] == 0
    assert counts["quarantined_by_stage"] == {"preprocess": {"invalid_json": 1, "not_utf8": 1}}
    payloads = {base64.b64decode(e["payload_b64"]) for e in summary["quarantine_examples"]}
    assert payloads == {b"not json at all \xff", b'{"transaction_id": "file-3"'}


@pytest.mark.slow
def test_aggregated_input_balances_per_record_and_a_corrupted_aggregate_is_quarantined_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: 30 transactions of 3 cards, two lines that are not transactions, one repeat,
    # sent in KPL aggregates of up to 5, the first aggregate corrupted on its way
    base = {
        "merchant_id": "m_1", "currency": "EUR", "country": "DE", "mcc": "5411",
        "channel": "pos",
    }  # fmt: skip
    transactions = [
        base
        | {
            "transaction_id": f"agg-{i:02d}",
            "card_id": f"card_{i % 3}",
            "amount": 10.0 + i,
            "event_time": f"2026-03-02T10:{i:02d}:00+01:00",
        }
        for i in range(30)
    ]
    lines = [json.dumps(t).encode() for t in transactions]
    lines += [b"not json at all \xff", b'{"transaction_id": "file-3"', lines[-1]]
    path = tmp_path / "records.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    corrupted: list[Aggregate] = []

    def pack_and_corrupt_the_first(*args: Any, **kwargs: Any) -> list[Aggregate]:
        aggregates: list[Aggregate] = aggregation.pack(*args, **kwargs)
        if not corrupted:
            corrupted.append(aggregates[0])
            aggregates[0] = replace(aggregates[0], data=corrupt_digest(aggregates[0].data))
        return aggregates

    monkeypatch.setattr(producer, "pack", pack_and_corrupt_the_first)
    summary_path = tmp_path / "summary.json"

    # when
    code = main(
        ["run", "--input", str(path), "--aggregate", "5", "--json", str(summary_path),
         "--out", str(tmp_path / "out")]
    )  # fmt: skip

    # then: every record is accounted for once; the corrupted aggregate's records are
    # quarantined with it, in one item
    out = capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    counts = summary["counts"]
    lost = [user.data for user in deaggregate(corrupted[0].data)]
    lost_transactions = {t["transaction_id"] for t in map(json.loads, lost)}
    assert 2 <= len(lost) <= 5 and lines[-1] not in lost  # (the repeat's original is scored)
    assert code == 0, out
    assert counts["in"] == 33
    assert counts["scored"] == 30 - len(lost_transactions)
    assert counts["repeats_absorbed"] == 1
    assert counts["quarantined"] == len(lost) + 2
    assert (counts["failed"], counts["duplicate_predictions"], counts["unaccounted"]) == (0, 0, 0)
    assert counts["quarantined_by_stage"] == {
        "preprocess": {"invalid_aggregate": 1, "invalid_json": 1, "not_utf8": 1}
    }
    producer_section = summary["producer"]
    assert producer_section["user_records"] == 33
    # each shard has several of the records: every Kinesis record is an aggregate
    assert producer_section["aggregates"] == producer_section["kinesis_records"] <= 33 // 5 + 4
    items = {e["reason"]: e for e in summary["quarantine_examples"]}
    assert items["invalid_aggregate"]["record_id"].count("#") == 2  # a Kinesis record: no index
    assert items["invalid_json"]["record_id"].count("#") == 3  # a user record: stream#shard#seq#i
    assert items["not_utf8"]["record_id"].count("#") == 3
    aggregate_item = items["invalid_aggregate"]
    assert base64.b64decode(aggregate_item["payload_b64"]) == corrupt_digest(corrupted[0].data)
    assert "in = scored + quarantined + failed holds; duplicate prediction items: 0" in out
    assert "KPL aggregates of up to 5" in out


# ---------------------------------------------------------------- clear errors


def test_a_port_in_use_says_so_and_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(ServerStartError, match=f"port {port} on 127.0.0.1 is in use") as error:
            MotoServer(port=port).start()
        code = main(
            ["invoke", "score", "--event", str(ROOT / "events" / "score_features.json"),
             "--port", str(port)]
        )  # fmt: skip

    assert "--port" in str(error.value)
    assert code == 2
    assert f"error: port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


BAD_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/
      Handler: streamscore.handlers.preprocess.lambda_handler
      Runtime: python3.13
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: [not, a, string]
"""


def test_a_template_the_translator_rejects_says_why_and_what_to_do(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(BAD_TEMPLATE)

    with pytest.raises(TemplateError) as error:
        local_template(template, {}, "us-east-1")

    message = str(error.value)
    assert "the SAM translator rejected template.yaml" in message
    assert "Property 'Schedule' should be a string" in message
    assert "make validate" in message


@pytest.mark.slow
def test_a_handler_that_fails_to_start_stops_the_run_naming_it(tmp_path: Path) -> None:
    # given: thresholds the score function refuses at cold start
    options = RunOptions(
        transactions=100,
        parameters={"ReviewThreshold": "0.9", "DeclineThreshold": "0.1"},
        out_dir=tmp_path,
    )

    with pytest.raises(RunError) as error:
        run_embedded(options)

    message = str(error.value)
    assert "ScoreFunction (streamscore.handlers.score.lambda_handler) failed to start" in message
    assert "invalid decision thresholds" in message
    assert str(tmp_path / "functions.log") in message
    assert "SystemicError" in (tmp_path / "functions.log").read_text()


@pytest.mark.slow
def test_a_handler_that_raises_on_a_record_is_bisected_and_the_run_says_what_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: the real preprocess handler, made to raise on any batch holding one transaction
    poison = f'"{next(iter(simulated_traffic(600, seed=3).labels))}"'.encode()
    load = FunctionContainer._load

    def load_with_a_bug(container: FunctionContainer) -> float:
        seconds = load(container)
        handler = container._handler
        if (
            container.config.handler.startswith("streamscore.handlers.preprocess.")
            and handler is not None
        ):

            def buggy(event: dict[str, Any], context: Any) -> Any:
                if any(poison in base64.b64decode(r["kinesis"]["data"]) for r in event["Records"]):
                    raise RuntimeError("a bug on one record")
                return handler(event, context)

            container._handler = buggy
        return seconds

    monkeypatch.setattr(FunctionContainer, "_load", load_with_a_bug)

    # when
    code = main(
        ["run", "--transactions", "600", "--seed", "3", "--invalid-rate", "0", "--out", str(tmp_path),
         "--parameter", "PreprocessMaximumRetryAttempts=1"]
    )  # fmt: skip

    # then: only the poison record is given up; the run says what raised and where to look
    captured = capsys.readouterr()
    assert code == 1
    assert "failed                1" in captured.out
    sizes = [int(n) for n in re.findall(r"raised on a batch of (\d+) records", captured.err)]
    assert sizes[0] > 100 and sizes == sorted(sizes, reverse=True)  # halved towards the record
    assert (
        "problem: 1 records ended in FailureQueue (PreprocessFunction raised "
        "RuntimeError: a bug on one record). The tracebacks are in"
    ) in captured.err
    assert "a bug on one record" in (tmp_path / "functions.log").read_text()


@pytest.mark.slow
def test_a_run_redrives_what_an_outage_failed_and_a_replay_in_other_batches_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: batches of 50, no retries, preprocess down for its first second
    summary_path = tmp_path / "summary.json"

    # when
    code = main(
        [
            "run", "--transactions", "150", "--invalid-rate", "0.03", "--seed", "7",
            "--parameter", "PreprocessBatchSize=50", "--parameter", "ScoreBatchSize=50",
            "--parameter", "PreprocessMaximumRetryAttempts=0", "--outage", "preprocess=1",
            "--redrive", "--replay", "--json", str(summary_path), "--out", str(tmp_path),
        ]
    )  # fmt: skip

    # then: what the outage sent to FailureQueue was re-driven, and everything balances
    out = capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    counts = summary["counts"]
    assert code == 0, out
    assert (counts["scored"], counts["quarantined"]) == (150, counts["invalid_sent"])
    assert counts["in"] == 150 + counts["invalid_sent"]
    assert (counts["failed"], counts["duplicate_predictions"], counts["unaccounted"]) == (0, 0, 0)
    given_up = summary["event_source_mappings"]["PreprocessFunction"]
    redrive = summary["redrive"]
    assert (
        redrive["messages"] == redrive["messages_deleted"] == given_up["failure_records_sent"] > 0
    )
    assert redrive["records_redriven"] == given_up["records_discarded"] > 0
    assert (redrive["records_kept"], redrive["records_lost"]) == (0, 0)
    assert summary["failure_queue"]["messages"] == 0
    # the replay: both streams again in batches of 33, and not one item changed
    replay = summary["replay"]
    by_function = {m["function"]: m for m in replay["mappings"].values()}
    preprocess, score = (
        by_function["PreprocessFunction"],
        by_function["ScoreFunction"],
    )
    assert preprocess["records_replayed"] == counts["in"]
    assert (preprocess["replay_batch_size"], score["replay_batch_size"]) == (33, 33)
    assert preprocess["invocations"] >= counts["in"] // 33 + 1
    assert score["records_replayed"] >= 2 * 150  # the features, and each again from the replay
    assert (
        replay["predictions_changed"],
        replay["card_states_changed"],
        replay["feature_items_changed"],
    ) == (0, 0, 0)
    assert "in = scored + quarantined + failed holds; duplicate prediction items: 0" in out
    assert "changed by the replay: 0 prediction items, 0 card states, 0 FeaturesTable items" in out
    assert f"re-driven    {redrive['records_redriven']:>8,} records" in out


@pytest.mark.slow
def test_a_challenger_scored_in_shadow_and_promoted_mid_run_loses_and_repeats_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: the shipped model under another version, deciding on other thresholds (the same
    # scores, other decisions: its disagreements are known in advance)
    card = json.loads((MODEL_DIR / "model_card.json").read_text())
    thresholds = {
        "review": card["thresholds"]["review"] / 2,
        "decline": card["thresholds"]["decline"],
    }
    challenger = renamed_model(tmp_path, "cardfraud-gbdt-lower-review", thresholds=thresholds)
    summary_path = tmp_path / "summary.json"

    # when: promoted once 60% of the records were sent
    code = main(
        [
            "run",
            "--transactions", "1500",
            "--challenger", str(challenger),
            "--promote-at", "60%",
            "--json", str(summary_path),
            "--out", str(tmp_path / "out"),
        ]
    )  # fmt: skip

    # then: every record scored once, by the version serving its batch
    out = capsys.readouterr().out
    summary = json.loads(summary_path.read_text())
    counts = summary["counts"]
    assert code == 0, out
    assert (counts["failed"], counts["duplicate_predictions"], counts["unaccounted"]) == (0, 0, 0)
    models = summary["models"]
    by_version = models["predictions_by_version"]
    assert set(by_version) == {card["model_version"], "cardfraud-gbdt-lower-review"}
    assert sum(by_version.values()) == counts["scored"] == 1500
    # the shipped model's predictions carry the challenger's score (the pointer was read before
    # the first batch); its lower review threshold only ever turns approvals into reviews
    shadow = models["shadow"]
    assert shadow["predictions"] == by_version[card["model_version"]]
    assert set(shadow["disagreements"]) <= {"approve->review"}
    assert models["promotion"]["first_prediction_after_s"] is not None
    assert "Models         challenger cardfraud-gbdt-lower-review" in out


def test_a_challenger_that_is_the_shipped_model_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["run", "--transactions", "100", "--challenger", str(MODEL_DIR)])

    assert code == 2
    assert "holds the model the stack ships with" in capsys.readouterr().err


def test_promote_at_needs_a_challenger(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--transactions", "100", "--promote-at", "50%"])

    assert code == 2
    assert "--promote-at promotes the challenger: add --challenger DIR" in capsys.readouterr().err
