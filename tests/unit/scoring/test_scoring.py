"""Scoring domain and the batch pipeline with in-memory stores: decisions, matrix, histograms, retries."""

from __future__ import annotations

import copy
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamscore.aws.scoring_stores import EventBridgeAlertPublisher
from streamscore.core.artifacts import SCORE, Thresholds
from streamscore.core.errors import SystemicError
from streamscore.core.records import StreamRecord
from streamscore.preprocess.features import FEATURE_NAMES
from streamscore.scoring.batch import (
    ALERT_DETAIL_TYPE,
    ALERT_SOURCE,
    ScoreOutcome,
    ScorePolicy,
    score_batch,
)
from streamscore.scoring.model import (
    ScoringModel,
    decide,
    feature_matrix,
    histogram,
    load_model,
    resolve_thresholds,
)
from streamscore.scoring.ports import ScorePorts
from support.builders import feature_record, stream_records
from support.fakes import MemoryEventSink, MemoryScorePorts
from support.tiny_model import tiny_score, write_model_dir

STREAM = "streamscore-FeaturesStream-test"
NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    return load_model(write_model_dir(tmp_path_factory.mktemp("model")))


# ---------------------------------------------------------------- pure functions


def test_decisions_at_the_threshold_edges() -> None:
    # given
    thresholds = Thresholds(review=0.5, decline=0.9)
    scores = np.array([0.0, np.nextafter(0.5, 0), 0.5, np.nextafter(0.9, 0), 0.9, 1.0])

    # when
    codes = decide(scores, thresholds)

    # then
    assert codes.tolist() == [0, 0, 1, 1, 2, 2]  # approve, review, decline by index


def test_equal_thresholds_leave_no_review_band() -> None:
    codes = decide(np.array([0.69, 0.7, 0.71]), Thresholds(review=0.7, decline=0.7))

    assert codes.tolist() == [0, 2, 2]


def test_thresholds_fall_back_to_the_cards_and_must_be_ordered() -> None:
    card = Thresholds(0.4, 0.8)

    assert resolve_thresholds(card, None, None) == card
    assert resolve_thresholds(card, 0.3, None) == Thresholds(0.3, 0.8)
    assert resolve_thresholds(card, None, 0.95) == Thresholds(0.4, 0.95)
    with pytest.raises(ValueError, match="review <= decline"):
        resolve_thresholds(card, 0.9, None)


def test_histogram_has_numpys_bins_plus_missing_and_out_of_range() -> None:
    edges = np.array([0.0, 1.0, 2.0, 4.0])
    values = np.array([0.0, 0.5, 1.0, 2.0, 3.9, 4.0, -0.1, 4.1, np.nan, np.nan])

    result = histogram(values, edges)

    inside = values[(values >= 0) & (values <= 4)]
    assert result["counts"] == np.histogram(inside, bins=edges)[0].tolist() == [2, 1, 3]
    assert result["missing"] == 2
    assert result["out_of_range"] == 2


def test_feature_matrix_is_in_model_order_and_names_each_problem() -> None:
    # given
    names = ("a", "b", "c")
    records: list[dict[str, Any]] = [
        {"c": 3.0, "b": 2, "a": 1.0, "extra": "ignored"},
        {"a": 1.0, "c": 3.0},
        {"a": 1.0, "b": math.nan, "c": 3.0},
        {"a": 1e39, "b": 2.0, "c": 3.0},  # finite as float64, infinite as float32
        {"a": "1.0", "b": 2.0, "c": True},
        {"a": None, "b": 2.0, "c": 3.0},
    ]

    # when
    matrix, problems = feature_matrix(records, names)

    # then
    assert matrix[0].tolist() == [1.0, 2.0, 3.0]
    assert [p.reason if p else None for p in problems] == [
        None,
        "missing_feature",
        "non_finite_feature",
        "non_finite_feature",
        "invalid_feature",
        "missing_feature",
    ]
    assert "b" in str(problems[1]) and "a" in str(problems[3])
    assert np.isnan(matrix[1, 1]) and np.isnan(matrix[3, 0]) and np.isnan(matrix[4, 2])
    assert matrix[1, 0] == 1.0  # what is usable stays, for the histograms


def test_the_model_scores_in_model_order(model: ScoringModel) -> None:
    # given
    matrix = np.zeros((3, len(FEATURE_NAMES)), dtype=np.float32)
    matrix[:, 0] = [0.0, 0.5, 1.0]

    # when
    scores = model.predict(matrix)

    # then
    assert scores.dtype == np.float64
    assert scores.tolist() == pytest.approx([tiny_score(v) for v in (0.0, 0.5, 1.0)], abs=1e-7)
    assert model.model_version == "tiny-1"
    assert (model.input_name, model.output_name) == ("features", "probabilities")


def test_a_model_that_scores_nan_is_a_systemic_fault(model: ScoringModel) -> None:
    class NanSession:
        def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            return [np.full((len(feed["features"]), 2), np.nan, dtype=np.float32)]

    broken = copy.copy(model)
    broken.session = NanSession()

    with pytest.raises(SystemicError, match="non-finite score for 2 of 2 rows"):
        broken.predict(np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32))


def test_a_missing_model_fails_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(SystemicError, match=re.escape(str(tmp_path / "model_card.json"))):
        load_model(tmp_path)


def test_a_corrupt_model_fails_naming_the_path_and_the_reason(tmp_path: Path) -> None:
    # given
    write_model_dir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")

    # when
    with pytest.raises(SystemicError) as error:
        load_model(tmp_path)

    # then
    assert str(tmp_path) in str(error.value) and "model.onnx" in str(error.value)
    assert "InvalidProtobuf" in str(error.value) or "protobuf" in str(error.value).lower()


def test_a_card_that_disagrees_with_the_model_fails(tmp_path: Path) -> None:
    write_model_dir(tmp_path)
    card = json.loads((tmp_path / "model_card.json").read_text())
    card["feature_names"] = card["feature_names"][:-1]
    (tmp_path / "model_card.json").write_text(json.dumps(card))

    with pytest.raises(SystemicError, match="takes 18 features, the card names 17"):
        load_model(tmp_path)


def with_test_vectors(directory: Path, shift: float = 0.0, width: int | None = None) -> None:
    """Give the card test vectors: a few rows with the scores the model gives them (+ `shift`)."""
    model = load_model(directory)
    rows = np.random.default_rng(7).normal(size=(5, width or len(model.feature_names)))
    expected = model.predict(rows[:, : len(model.feature_names)].astype(np.float32)) + shift
    card = json.loads((directory / "model_card.json").read_text())
    card["test_vectors"] = {
        "rows": rows.astype(np.float32).astype(float).tolist(),
        "expected_scores": expected.tolist(),
        "tolerance": 1e-5,
    }
    (directory / "model_card.json").write_text(json.dumps(card))


def test_a_model_that_gives_its_cards_test_vector_scores_loads(tmp_path: Path) -> None:
    write_model_dir(tmp_path)
    with_test_vectors(tmp_path)

    model = load_model(tmp_path)

    assert model.card.vectors is not None and len(model.card.vectors.rows) == 5


def test_a_model_that_does_not_give_its_cards_test_vector_scores_fails(tmp_path: Path) -> None:
    # given: expected scores 0.001 away from what the model gives (a substituted model.onnx
    # or a runtime that computes it differently looks the same)
    write_model_dir(tmp_path)
    with_test_vectors(tmp_path, shift=1e-3)

    with pytest.raises(SystemicError, match=r"test vector scores: off by up to 0\.001 on 5 rows"):
        load_model(tmp_path)


def test_test_vectors_of_another_width_fail(tmp_path: Path) -> None:
    write_model_dir(tmp_path)
    with_test_vectors(tmp_path, width=len(FEATURE_NAMES) + 1)

    with pytest.raises(SystemicError, match="every row must have the card's 18 features"):
        load_model(tmp_path)


def test_a_baseline_of_another_model_fails(tmp_path: Path) -> None:
    write_model_dir(tmp_path)
    baseline = json.loads((tmp_path / "baseline.json").read_text())
    (tmp_path / "baseline.json").write_text(json.dumps(baseline | {"model_version": "other"}))

    with pytest.raises(SystemicError, match=r"baseline\.json is of model other"):
        load_model(tmp_path)


def test_a_baseline_without_edges_fails(tmp_path: Path) -> None:
    write_model_dir(tmp_path)
    (tmp_path / "baseline.json").write_text(json.dumps({"features": {}}))

    with pytest.raises(SystemicError, match="no bin edges for 'amount_log'"):
        load_model(tmp_path)


# ---------------------------------------------------------------- the batch, with fakes


def batch(docs: Sequence[dict[str, Any] | bytes], first_index: int = 0) -> list[StreamRecord]:
    payloads = [d if isinstance(d, bytes) else json.dumps(d).encode() for d in docs]
    return stream_records(payloads, STREAM, first_index=first_index, key="card")


POLICY = ScorePolicy(Thresholds(0.5, 0.9), False)
# amount_log → score: 0.0 → 0.12 (approve), 0.6 → 0.60 (review), 1.2 → 0.94 (decline)
AMOUNTS = [0.0, 0.6, 1.2]


def run(
    records: list[StreamRecord],
    model: ScoringModel,
    fakes: MemoryScorePorts,
    policy: ScorePolicy = POLICY,
    now: datetime = NOW,
) -> ScoreOutcome:
    return score_batch(records, model, fakes.ports, policy, clock=lambda: now)


def hist_total(fakes: MemoryScorePorts, model: ScoringModel, name: str = SCORE) -> dict[str, Any]:
    """One variable's histogram over every count the predictions added."""
    names = [*model.feature_names, SCORE]
    return fakes.predictions.total().histogram(names.index(name), len(model.edges[name]) - 1)


def test_a_batch_is_scored_decided_stored_and_counted(model: ScoringModel) -> None:
    # given
    fakes = MemoryScorePorts()
    docs = [feature_record(i, AMOUNTS[i % 3]) for i in range(30)]

    # when
    outcome = run(batch(docs), model, fakes)

    # then
    assert outcome.scored == 30 and not outcome.failed
    assert outcome.decisions == {"approve": 10, "review": 10, "decline": 10}
    item = fakes.predictions.items["t00002"]
    assert item["score"] == pytest.approx(tiny_score(1.2), abs=1e-7)
    assert item["decision"] == "decline" and item["model_version"] == "tiny-1"
    assert item["latency_ms"] == 500 and item["scored_at"] == "2026-03-05T12:30:00.000+00:00"
    assert {a["transaction_id"] for a in fakes.alerts.sent} == {
        f"t{i:05d}" for i in range(2, 30, 3)
    }
    ((key, counts),) = fakes.predictions.counts.items()
    assert counts.n == 30 and key.model_version == "tiny-1" and key.hour == "2026-03-05T12"
    assert counts.decisions == {"approve": 10, "review": 10, "decline": 10}
    amount = hist_total(fakes, model, "amount_log")
    assert amount["counts"] == [0, 0, 10, 10] and amount["out_of_range"] == 10
    assert sum(hist_total(fakes, model)["counts"]) == 30


def test_alerts_cover_reviews_when_asked(model: ScoringModel) -> None:
    # given
    fakes = MemoryScorePorts()
    policy = ScorePolicy(Thresholds(0.5, 0.9), True)

    # when
    run(batch([feature_record(i, AMOUNTS[i % 3]) for i in range(6)]), model, fakes, policy)

    # then
    assert sorted(a["decision"] for a in fakes.alerts.sent) == ["decline"] * 2 + ["review"] * 2
    assert set(fakes.alerts.sent[0]) >= {"transaction_id", "score", "decision", "model_version"}


def test_every_invalid_record_is_quarantined_with_its_reason(model: ScoringModel) -> None:
    fakes = MemoryScorePorts()
    good = feature_record(0, 0.0)
    features_without_one = {k: v for k, v in good["features"].items() if k != "hour_sin"}
    docs: list[dict[str, Any] | bytes] = [
        good,
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        b"base64 is replaced below",
        json.dumps({k: v for k, v in good.items() if k != "features"}).encode(),
        feature_record(5, 0.0, feature_schema="card-v0"),
        feature_record(6, 0.0, features=features_without_one),
        feature_record(7, 0.0, features=good["features"] | {"amount_zscore": math.inf}),
        json.dumps(feature_record(8, 0.0))
        .replace('"amount_log": 0.0', '"amount_log": NaN')
        .encode(),
        feature_record(9, 0.0, transaction_id="has spaces"),
        feature_record(10, 0.0, arrived_at="yesterday"),
    ]
    records = batch(docs)
    records[4] = StreamRecord(
        STREAM, records[4].shard_id, records[4].sequence_number, "k", "%%", 0.0
    )

    outcome = run(records, model, fakes)

    reasons = {item["sequence_number"]: item["reason"] for item in fakes.quarantine.items.values()}
    assert [reasons.get(r.sequence_number) for r in records] == [
        None,
        "undecodable",
        "undecodable",
        "undecodable",
        "undecodable",
        "undecodable",
        "unknown_feature_schema",
        "missing_feature",
        "non_finite_feature",
        "non_finite_feature",
        "undecodable",
        "undecodable",
    ]
    assert outcome.scored + sum(outcome.quarantined.values()) == outcome.records_in == 12
    assert all(item["stage"] == "score" for item in fakes.quarantine.items.values())
    # only the scored record is counted with the predictions; the rest are quarantine facts
    assert fakes.predictions.total().n == 1


def test_a_replay_writes_nothing_new_alerts_nothing_and_counts_the_same(
    model: ScoringModel,
) -> None:
    # given
    fakes = MemoryScorePorts()
    records = batch([feature_record(i, AMOUNTS[i % 3]) for i in range(12)])
    run(records, model, fakes)
    predictions, counts = dict(fakes.predictions.items), fakes.predictions.total()
    saves, alerts = fakes.predictions.saves, len(fakes.alerts.sent)

    # when
    outcome = run(records, model, fakes, now=NOW + timedelta(hours=3))

    # then
    assert outcome.already_scored == 12 and outcome.scored == 0
    assert fakes.predictions.items == predictions and fakes.predictions.saves == saves
    assert len(fakes.alerts.sent) == alerts
    assert fakes.predictions.total() == counts


def test_a_partial_failure_and_its_retry_count_every_record_once(model: ScoringModel) -> None:
    fakes = MemoryScorePorts()
    docs = [feature_record(i, AMOUNTS[i % 3]) for i in range(20)]
    records = batch(docs)
    fakes.predictions.fail_saving = {"t00007", "t00013"}  # approvals / reviews in the middle

    first = run(records, model, fakes)

    assert first.failed == {records[7].sequence_number, records[13].sequence_number}
    assert fakes.predictions.total().n == 18
    # Kinesis resumes at the lowest failed record
    fakes.predictions.fail_saving = set()
    retry = run(records[7:], model, fakes)

    assert not retry.failed and retry.scored == 2 and retry.already_scored == 11
    assert fakes.predictions.total() == _scored_once(model, records).predictions.total()
    assert fakes.predictions.total().n == 20
    assert len(fakes.predictions.items) == 20
    assert len(fakes.alerts.sent) == len({a["transaction_id"] for a in fakes.alerts.sent})


def _scored_once(model: ScoringModel, records: list[StreamRecord]) -> MemoryScorePorts:
    fakes = MemoryScorePorts()
    run(records, model, fakes)
    return fakes


def test_a_refused_alert_stays_pending_on_its_prediction_until_the_retry_sends_it(
    model: ScoringModel,
) -> None:
    # given
    fakes = MemoryScorePorts()
    records = batch([feature_record(i, 1.2) for i in range(4)])
    fakes.alerts.fail = {"t00002"}

    # when
    first = run(records, model, fakes)

    # then
    assert first.failed == {records[2].sequence_number}
    assert fakes.predictions.items["t00002"]["alert"] == "pending"
    assert {fakes.predictions.items[f"t0000{i}"]["alert"] for i in (0, 1, 3)} == {"sent"}
    fakes.alerts.fail = set()
    retry = run(records[2:], model, fakes)
    assert not retry.failed and retry.alerts == 1
    assert [a["transaction_id"] for a in fakes.alerts.sent] == [
        "t00000",
        "t00001",
        "t00003",
        "t00002",
    ]
    assert fakes.predictions.items["t00002"]["alert"] == "sent"


def real_publisher(fakes: MemoryScorePorts) -> MemoryEventSink:
    """The alerts go through the real EventBridgeAlertPublisher, to an in-memory EventSink."""
    events = MemoryEventSink()
    publisher = EventBridgeAlertPublisher(events, ALERT_SOURCE, ALERT_DETAIL_TYPE)  # type: ignore[arg-type]
    fakes.ports = ScorePorts(fakes.predictions, publisher, fakes.quarantine)
    return events


def test_case_3_a_failed_prediction_write_after_a_confirmed_put_sends_nothing_again(
    model: ScoringModel,
) -> None:
    # given: the alert is accepted, then marking its prediction sent fails
    fakes = MemoryScorePorts()
    events = real_publisher(fakes)
    records = batch([feature_record(i, 1.2) for i in range(3)])
    original_save = fakes.predictions.save

    def fail_marks(predictions: Sequence[dict[str, Any]], now: datetime) -> set[str]:
        if any(p.get("alert") == "sent" for p in predictions):
            return {p["transaction_id"] for p in predictions}
        return original_save(predictions, now)

    fakes.predictions.save = fail_marks  # type: ignore[method-assign]
    first = run(records, model, fakes)
    assert first.failed == {r.sequence_number for r in records}
    assert len(events.details) == 3

    # when Kinesis retries on the same container, the writes healthy again
    fakes.predictions.save = original_save  # type: ignore[method-assign]
    retry = run(records, model, fakes)

    # then no alert goes out twice, and every prediction now says sent
    assert not retry.failed
    assert len(events.details) == 3
    assert {p["alert"] for p in fakes.predictions.items.values()} == {"sent"}


def test_case_3_an_unknown_put_outcome_is_the_only_repeat_and_keeps_its_alert_id(
    model: ScoringModel,
) -> None:
    # given: PutEvents takes the alerts but the answer is lost (a timeout right after it)
    fakes = MemoryScorePorts()
    events = real_publisher(fakes)
    records = batch([feature_record(i, 1.2) for i in range(2)] + [feature_record(5, 0.0)])
    events.lose_responses = 1

    first = run(records, model, fakes)
    retry = run(records, model, fakes)
    again = run(records, model, fakes)  # a replay later: nothing pending, nothing sent

    assert first.failed == {records[0].sequence_number, records[1].sequence_number}
    assert not retry.failed and not again.failed
    ids = [d["alert_id"] for d in events.details]
    assert sorted(ids) == sorted([f"t0000{i}/{model.model_version}" for i in (0, 1)] * 2)
    assert {p.get("alert") for p in fakes.predictions.items.values()} == {"sent", None}


def test_case_3_a_prediction_write_that_fails_first_sends_no_alert_until_it_lands(
    model: ScoringModel,
) -> None:
    fakes = MemoryScorePorts()
    events = real_publisher(fakes)
    records = batch([feature_record(0, 1.2)])
    fakes.predictions.fail_saving = {"t00000"}

    assert run(records, model, fakes).failed == {records[0].sequence_number}
    assert events.details == []
    fakes.predictions.fail_saving = set()
    assert not run(records, model, fakes).failed
    assert [d["transaction_id"] for d in events.details] == ["t00000"]


def test_a_transaction_forwarded_twice_is_scored_alerted_and_counted_once(
    model: ScoringModel,
) -> None:
    # given
    fakes = MemoryScorePorts()
    run(batch([feature_record(i, 1.2) for i in range(3)]), model, fakes)
    stored = dict(fakes.predictions.items)
    # preprocess crashed after forwarding t00001 and forwards it again, later on the stream
    again = batch(
        [feature_record(1, 1.2), feature_record(3, 1.2), feature_record(3, 1.2)], first_index=10
    )

    # when
    outcome = run(again, model, fakes)

    # then
    assert outcome.duplicates == 2 and outcome.scored == 1
    assert fakes.predictions.items["t00001"] == stored["t00001"]
    assert [a["transaction_id"] for a in fakes.alerts.sent] == [
        "t00000",
        "t00001",
        "t00002",
        "t00003",
    ]
    assert fakes.predictions.total().n == 4


def test_a_new_model_version_scores_a_replay_again(model: ScoringModel, tmp_path: Path) -> None:
    # given
    fakes = MemoryScorePorts()
    records = batch([feature_record(i, 0.0) for i in range(3)])
    run(records, model, fakes)

    # when
    outcome = run(records, load_model(write_model_dir(tmp_path, version="tiny-2")), fakes)

    # then
    assert outcome.scored == 3
    assert {p["model_version"] for p in fakes.predictions.items.values()} == {"tiny-2"}


def test_an_unreadable_prediction_table_fails_the_scoreable_records(model: ScoringModel) -> None:
    # given
    fakes = MemoryScorePorts()
    records = batch([b"junk", feature_record(1, 0.0), feature_record(2, 0.0)])
    fakes.predictions.fail_loading = True

    # when
    outcome = run(records, model, fakes)

    # then
    assert outcome.failed == {records[1].sequence_number, records[2].sequence_number}
    assert outcome.quarantined == {"undecodable": 1} and not fakes.predictions.items
    assert not fakes.predictions.counts


def test_case_2_a_create_whose_response_was_lost_counts_once_and_alerts_on_the_retry(
    model: ScoringModel,
) -> None:
    # given
    fakes = MemoryScorePorts()
    records = batch([feature_record(i, 1.2) for i in range(3)])
    fakes.predictions.lose_responses = 1

    # when
    outcome = run(records, model, fakes)

    # then
    assert outcome.failed == {r.sequence_number for r in records}
    assert fakes.alerts.sent == []  # not known to be stored: no alert yet
    retry = run(records, model, fakes)
    assert retry.already_scored == 3 and len(fakes.alerts.sent) == 3
    assert fakes.predictions.total().n == 3


def test_an_empty_batch_does_nothing(model: ScoringModel) -> None:
    # given
    fakes = MemoryScorePorts()

    # when
    outcome = run([], model, fakes)

    # then
    assert outcome.records_in == 0 and not fakes.predictions.counts and not fakes.predictions.saves


def test_a_feature_too_large_for_a_float_quarantines_its_record_not_the_batch(
    model: ScoringModel,
) -> None:
    # given
    # a 401-digit JSON integer: json reads it, float() cannot hold it
    poison = json.dumps(feature_record(1, 0.0)).replace(
        '"amount_log": 0.0', '"amount_log": ' + "9" * 401
    )
    records = batch([feature_record(0, 0.0), poison.encode(), feature_record(2, 1.2)])
    fakes = MemoryScorePorts()

    # when
    outcome = run(records, model, fakes)

    # then
    assert not outcome.failed and outcome.scored == 2
    assert outcome.quarantined == Counter({"non_finite_feature": 1})
    (item,) = fakes.quarantine.items.values()
    assert item["sequence_number"] == records[1].sequence_number
    assert "amount_log" in item["message"]


# ---------------------------------------------------------------- card-age strata


def test_each_prediction_counts_in_the_card_age_stratum_of_its_record(model: ScoringModel) -> None:
    # given a model whose baseline has strata from 0, 1 h and 1 day
    stratified = ScoringModel(
        model.session, model.card, model.edges, np.array([0.0, 3600.0, 86400.0])
    )
    fakes = MemoryScorePorts()
    ages = [0.0, 10.0, 7200, 2 * 86400.0, None]  # None: a record from before card ages
    docs = [feature_record(i, 0.0, card_age_s=age) for i, age in enumerate(ages[:-1])]
    docs.append(feature_record(4, 0.0))

    # when
    outcome = run(batch(docs), stratified, fakes)

    # then: 0 and 10 s in the first, 2 h in the second, 2 days and unknown in the oldest
    assert outcome.scored == 5
    assert fakes.predictions.total().history == Counter({0: 2, 1: 1, 2: 2})


def test_a_baseline_without_strata_counts_no_stratum(model: ScoringModel) -> None:
    fakes = MemoryScorePorts()

    run(batch([feature_record(0, 0.0, card_age_s=5.0)]), model, fakes)

    assert model.history_bounds is None
    assert fakes.predictions.total().history == Counter()


@pytest.mark.parametrize("age", [-1.0, "60", True, math.inf])
def test_a_card_age_that_is_not_seconds_is_quarantined(model: ScoringModel, age: Any) -> None:
    fakes = MemoryScorePorts()
    payload = json.dumps(feature_record(0, 0.0, card_age_s=age)).encode()  # inf as Infinity

    outcome = run(batch([payload]), model, fakes)

    (item,) = fakes.quarantine.items.values()
    assert outcome.scored == 0
    assert item["reason"] == "undecodable" and "card_age_s" in item["message"]
