"""Score one FeaturesStream batch: decode, quarantine, one model run, predictions and their counts, alerts.

Write order is the commit protocol. Every prediction is written first; one that
alerts is written with `alert: pending`, then its HighRiskTransaction event is put,
then the prediction is written again with `alert: sent`. A retry or replay that
finds a stored prediction writes nothing and alerts nothing, unless its alert is
still pending: then the put's outcome is unknown (a lost response, a timeout right
after it) or it failed, and the alert goes out again with the same `alert_id`,
which consumers dedupe on. An alert is never lost; it is repeated only when the
outcome of its put is unknown to the invocation that retries it (the publisher
remembers the ids it saw accepted, so a failed `sent` write alone repeats nothing).
A prediction written from another stream record of the same transaction means
preprocess forwarded it twice; that record is a duplicate: no write, no alert,
not counted. A prediction is created with what it adds to the hourly counts (its
decision, the drift bins of its features and score) in one transaction, on the
condition that it does not exist: counts move exactly once per prediction (core/monitoring.py).
FeaturesStream holds the plain records preprocess puts; a KPL aggregate put there by anyone
else is opened as on TransactionsStream (records.py): each user record is scored under its
own record id, and a redelivered aggregate finds the predictions already written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from streamscore.core.artifacts import SCORE, DecisionRates, Thresholds
from streamscore.core.errors import InvalidRecordError, RetryableError
from streamscore.core.feature_record import (
    MAX_FEATURE_RECORD_BYTES,
    SCORED_TEXT_FIELDS,
    FeatureRecord,
)
from streamscore.core.ids import TRANSACTION_ID, SequenceNumber, TransactionId
from streamscore.core.monitoring import (
    PREDICTIONS,
    SHADOW,
    CountKey,
    Fact,
    Tally,
    hour_of,
    prediction_counts,
    source_of,
)
from streamscore.core.quality import GUARD, in_decline_sample
from streamscore.core.records import StreamRecord, decode_payload, diagnose_json, quarantine_item
from streamscore.core.steps import settle, submit_or_run
from streamscore.core.times import utc_iso_ms
from streamscore.scoring.model import (
    DECISIONS,
    ScoringModel,
    bin_indexes,
    decide,
    feature_matrix,
    history_strata,
)
from streamscore.scoring.ports import ScorePorts
from streamscore.scoring.shadow import (
    CHALLENGER_VERSION,
    SHADOW_VERSIONS,
    Challenger,
    ShadowScores,
    counts_shadow,
    score_shadow,
    shadow_history,
)

if TYPE_CHECKING:
    from streamscore.scoring.serving import ModelFollower

STAGE = "score"
ALERT_SOURCE = "streamscore.scoring"
ALERT_DETAIL_TYPE = "HighRiskTransaction"
PENDING, SENT = "pending", "sent"  # a prediction's `alert`: put not yet confirmed, or confirmed
REVIEW_ONLY = "review_only"  # GUARD of a prediction whose decline the switch reviewed
DECLINE_SAMPLE = "decline_sample"  # a decline reviewed instead at random (the decline sample)
REASONS = "reasons"  # a review's or decline's top contributions (scoring/reasons.py)


@dataclass(frozen=True)
class ScorePolicy:
    thresholds: Thresholds
    alert_on_review: bool
    # the decision rates the model's card expects at these thresholds (None: not known, or
    # thresholds other than the card's)
    expected: DecisionRates | None = None
    # the registry's guard switch: no decline; what would decline is reviewed and alerts
    review_only: bool = False
    # reasons (top contributions, scoring/reasons.py) on each review and decline; 0: none
    reasons: int = 0
    # this share of would-be declines is reviewed instead, chosen by transaction id
    # (core/quality.py in_decline_sample): their labels show what declines hide
    decline_sample: float = 0.0


@dataclass
class ScoreOutcome:
    """What happened to every record: scored, already scored, duplicate, quarantined or failed."""

    records_in: int = 0
    scored: int = 0  # predictions written by this invocation
    already_scored: int = 0  # a retry or replay of a record whose prediction is stored
    duplicates: int = 0  # the same transaction from another stream record
    quarantined: Counter[str] = field(default_factory=Counter)
    failed: set[SequenceNumber] = field(default_factory=set)
    decisions: Counter[str] = field(default_factory=Counter)  # of the predictions written
    alerts: int = 0
    inference_ms: float = 0.0
    latencies_ms: list[int] = field(default_factory=list)  # of the predictions written
    model_version: str = ""  # the version that scored the batch
    model_events: list[Any] = field(default_factory=list)  # scoring.serving.ModelEvent
    # the challenger scored in shadow: its version, the predictions written with its score
    # (shadow_scored), its model run, and why it scored nothing (it never fails a batch)
    shadow_version: str = ""
    shadow_scored: int = 0
    shadow_inference_ms: float = 0.0
    shadow_error: str = ""
    capped: int = 0  # declines turned into reviews by the review-only switch
    sampled: int = 0  # declines turned into reviews by the decline sample
    # reasons: rows explained, the time it took, and why flagged predictions have none
    explained: int = 0
    explain_ms: float = 0.0
    reasons_missing: int = 0  # flagged predictions written without reasons (policy asks some)
    reasons_error: str = ""
    # decisions the serving model's card expects for the predictions written (see ScorePolicy)
    expected_reviews: float | None = None
    expected_declines: float | None = None


@dataclass(slots=True)
class _Row:
    record: StreamRecord
    doc: FeatureRecord  # checked as far as scoring relies on it
    arrived_at: float | None
    card_age_s: float  # NaN: the record has none
    hour: str  # the event time's UTC hour, the count item it adds to


def decode_feature_record(record: StreamRecord, feature_schema: str) -> _Row:
    """The record's feature record; InvalidRecordError when it is not one, or not of `feature_schema`."""
    doc = _json_object(record)
    if not (
        type(doc.get("transaction_id")) is str
        and type(doc.get("event_time")) is str
        and type(doc.get("features")) is dict
        and doc.get("feature_schema") == feature_schema
        and doc["event_time"]
        and TRANSACTION_ID.fullmatch(doc["transaction_id"])
    ):
        raise _not_a_feature_record(doc, feature_schema)
    try:
        hour = hour_of(doc["event_time"])
    except ValueError:
        raise _undecodable(
            "invalid_field", "event_time is not an ISO 8601 time with offset"
        ) from None
    arrived = doc.get("arrived_at")
    try:
        arrived_at = datetime.fromisoformat(arrived).timestamp() if arrived is not None else None
    except (TypeError, ValueError):
        raise _undecodable("invalid_field", "arrived_at is not an ISO 8601 time") from None
    return _Row(record, cast(FeatureRecord, doc), arrived_at, _card_age(doc), hour)


def _card_age(doc: Mapping[str, Any]) -> float:
    """The record's card age in seconds, NaN when it has none; InvalidRecordError when it is not one."""
    age = doc.get("card_age_s")
    if age is None:
        return math.nan
    if type(age) not in (int, float) or not math.isfinite(age) or age < 0:
        raise _undecodable("invalid_field", "card_age_s is not a finite number of seconds >= 0")
    return float(age)


def _json_object(record: StreamRecord) -> dict[str, Any]:
    """The record's payload as a JSON object; InvalidRecordError (undecodable) when it is none."""
    try:
        payload = decode_payload(record)
    except InvalidRecordError as error:
        raise _undecodable(error.reason, str(error)) from None
    if len(payload) > MAX_FEATURE_RECORD_BYTES:
        raise _undecodable("oversized", f"payload is {len(payload)} bytes")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        problem = diagnose_json(payload)
        raise _undecodable(
            problem.reason if problem else "invalid_json", str(problem or "not JSON")
        ) from None
    if not isinstance(doc, dict):
        raise _undecodable("not_an_object", f"payload is JSON {type(doc).__name__}, not an object")
    return doc


def _not_a_feature_record(doc: dict[str, Any], feature_schema: str) -> InvalidRecordError:
    """Why a JSON object is not a feature record of `feature_schema` (the slow path)."""
    wrong = [
        name for name in SCORED_TEXT_FIELDS if not isinstance(doc.get(name), str) or not doc[name]
    ]
    if not isinstance(doc.get("features"), dict):
        wrong.append("features")
    if wrong:
        return _undecodable(
            "missing_field", f"not a feature record: bad or missing {', '.join(wrong)}"
        )
    if not TRANSACTION_ID.fullmatch(doc["transaction_id"]):
        return _undecodable("invalid_field", "transaction_id is not 1-64 of [A-Za-z0-9_-]")
    return InvalidRecordError(
        "unknown_feature_schema",
        f"feature schema {doc['feature_schema'][:64]!r} is not the model's {feature_schema!r}",
    )


def _undecodable(cause: str, message: str) -> InvalidRecordError:
    return InvalidRecordError(
        "undecodable", message, [{"field": "(record)", "type": cause, "message": message}]
    )


def score_batch(
    records: Sequence[StreamRecord],
    model: ScoringModel,
    ports: ScorePorts,
    policy: ScorePolicy,
    clock: Callable[[], datetime],
    executor: Executor | None = None,
    challenger: Challenger | None = None,
) -> ScoreOutcome:
    """Score one batch; never raises for bad input, raises SystemicError for broken setup.

    `executor` runs the independent steps concurrently; it must not be the pool
    the stores fan their own calls out on, or steps could wait on each other.
    `challenger`, when given, is scored in shadow (scoring/shadow.py).
    """
    outcome = ScoreOutcome(records_in=len(records))
    batch = _decode(records, model)
    unique, stored, unread = _look_up_and_score(batch, model, ports, executor, outcome)
    if challenger is not None:
        _score_shadow(batch, unique, model, challenger, outcome)
    now = clock()

    to_write = _triage(batch, unique, stored, unread, model.model_version, outcome)
    predictions = _predictions(batch, to_write, model.model_version, policy, now, stored)
    if policy.reasons > 0:
        _add_reasons(batch, to_write, predictions, model, policy.reasons, outcome)
    unconfirmed = _unconfirmed(batch, unique, set(to_write), stored, outcome.failed)
    by_txn_id = {batch.rows[i].doc["transaction_id"]: batch.rows[i].record for i in unique}
    quarantine_items = [quarantine_item(r, e, STAGE, now) for r, e in batch.invalid]
    quarantining = (
        submit_or_run(executor, ports.quarantine.save, quarantine_items)
        if quarantine_items
        else None
    )
    facts = _facts(batch, to_write, predictions, model, stored)
    if facts:
        _write(
            lambda: ports.predictions.create(facts, now)[1],
            [TransactionId(f.key) for f in facts],
            by_txn_id,
            outcome.failed,
        )
    saved = [
        p
        for p in predictions
        if by_txn_id[p["transaction_id"]].sequence_number not in outcome.failed
    ]
    _send_alerts(
        ports,
        [p for p in saved if p.get("alert") == PENDING] + unconfirmed,
        now,
        by_txn_id,
        outcome.failed,
    )
    if quarantining is not None:
        settle(quarantining, {r.record_id: r for r, _ in batch.invalid}, outcome.failed)
    _tally(outcome, batch, predictions, unconfirmed, by_txn_id)
    if policy.expected is not None:
        _expect(outcome, policy.expected, policy)
    return outcome


def _expect(outcome: ScoreOutcome, rates: DecisionRates, policy: ScorePolicy) -> None:
    """What the card expects of the predictions written: the decline sample moves its share of
    the declines to reviews, the guard switch all of them."""
    share = 1.0 if policy.review_only else policy.decline_sample
    reviewed = rates.decline * share
    outcome.expected_reviews = outcome.scored * (rates.review + reviewed)
    outcome.expected_declines = outcome.scored * (rates.decline - reviewed)


def _look_up_and_score(
    batch: _Batch,
    model: ScoringModel,
    ports: ScorePorts,
    executor: Executor | None,
    outcome: ScoreOutcome,
) -> tuple[list[int], dict[TransactionId, dict[str, Any]], set[TransactionId]]:
    """Each transaction's first row, scored, and its stored prediction (unread: couldn't tell).

    The stored-prediction lookup (I/O) overlaps the model run (CPU).
    """
    first_of: dict[str, int] = {}
    for i in batch.scoreable:
        first_of.setdefault(batch.rows[i].doc["transaction_id"], i)
    unique = sorted(first_of.values())
    outcome.duplicates = len(batch.scoreable) - len(unique)
    lookup = submit_or_run(executor, ports.predictions.load, list(first_of))
    started = time.perf_counter()
    batch.scores[unique] = model.predict(batch.matrix[unique].astype(np.float32))
    outcome.inference_ms = (time.perf_counter() - started) * 1000
    try:
        stored, unread = lookup.result()
    except RetryableError:
        stored, unread = {}, set(first_of)
    return unique, stored, unread


def _score_shadow(
    batch: _Batch,
    unique: list[int],
    model: ScoringModel,
    challenger: Challenger,
    outcome: ScoreOutcome,
) -> None:
    """The challenger's scores of the rows the champion scored; whatever it raises costs the
    batch its shadow scores only (outcome.shadow_error), never a record."""
    outcome.shadow_version = challenger.model.model_version
    try:
        batch.shadow = score_shadow(
            challenger,
            batch.matrix,
            model.feature_names,
            lambda: [row.doc["features"] for row in batch.rows],
            unique,
        )
    except Exception as error:  # a challenger never fails a batch
        outcome.shadow_error = f"{type(error).__name__}: {error}"
        return
    outcome.shadow_inference_ms = batch.shadow.inference_ms


def _predictions(
    batch: _Batch,
    to_write: list[int],
    model_version: str,
    policy: ScorePolicy,
    now: datetime,
    stored: Mapping[TransactionId, dict[str, Any]],
) -> list[dict[str, Any]]:
    """The prediction items to create, alerting ones `alert: pending` (the champion's decision
    alone decides; a challenger's fields ride along, scoring/shadow.py)."""
    codes = decide(batch.scores[to_write], policy.thresholds).tolist()
    alerting = {"decline", "review"} if policy.alert_on_review else {"decline"}
    at = _Now.of(now)  # one clock reading for the batch, formatted once
    predictions = []
    for i, code in zip(to_write, codes, strict=True):
        decision = DECISIONS[code]
        guard = _guard(decision, batch.rows[i].doc["transaction_id"], policy)
        item = _prediction(
            batch.rows[i],
            float(batch.scores[i]),
            "review" if guard else decision,
            model_version,
            at,
        )
        if guard:
            item[GUARD] = guard  # a decline reviewed instead: it alerts all the same
        if decision in alerting:
            item["alert"] = PENDING
        fields = batch.shadow.fields(i) if batch.shadow is not None else {}
        item |= fields
        history = shadow_history(stored.get(item["transaction_id"]), fields.get(CHALLENGER_VERSION))
        if history:
            item[SHADOW_VERSIONS] = history
        predictions.append(item)
    return predictions


def _guard(decision: str, transaction_id: str, policy: ScorePolicy) -> str | None:
    """Why a decline is reviewed instead, if it is: the guard switch, or the decline sample."""
    if decision != "decline":
        return None
    if policy.review_only:
        return REVIEW_ONLY
    if policy.decline_sample and in_decline_sample(transaction_id, policy.decline_sample):
        return DECLINE_SAMPLE
    return None


def _add_reasons(
    batch: _Batch,
    rows: list[int],
    predictions: list[dict[str, Any]],
    model: ScoringModel,
    k: int,
    outcome: ScoreOutcome,
) -> None:
    """Reasons on every review and decline, from one explainer run over those rows; a model
    that cannot be explained, or an explainer that raises, leaves them without (counted)."""
    flagged = [n for n, p in enumerate(predictions) if p["decision"] != "approve"]
    if not flagged:
        return
    if model.reasoner is None:
        outcome.reasons_missing, outcome.reasons_error = len(flagged), model.reasons_note
        return
    started = time.perf_counter()
    try:
        found = model.reasoner.top(batch.matrix[[rows[n] for n in flagged]].astype(np.float32), k)
    except Exception as error:  # reasons never fail a batch
        outcome.reasons_missing = len(flagged)
        outcome.reasons_error = f"{type(error).__name__}: {error}"
        return
    outcome.explain_ms = (time.perf_counter() - started) * 1000
    outcome.explained = len(flagged)
    for n, reasons in zip(flagged, found, strict=True):
        predictions[n][REASONS] = reasons


def _unconfirmed(
    batch: _Batch,
    unique: list[int],
    rewritten: set[int],
    stored: Mapping[TransactionId, dict[str, Any]],
    failed: set[SequenceNumber],
) -> list[dict[str, Any]]:
    """Stored predictions of this batch whose alert may not have gone out (still pending)."""
    return [
        stored[batch.rows[i].doc["transaction_id"]]
        for i in unique
        if i not in rewritten
        and stored.get(batch.rows[i].doc["transaction_id"], {}).get("alert") == PENDING
        and batch.rows[i].record.sequence_number not in failed
    ]


def _tally(
    outcome: ScoreOutcome,
    batch: _Batch,
    predictions: list[dict[str, Any]],
    unconfirmed: list[dict[str, Any]],
    by_txn_id: Mapping[TransactionId, StreamRecord],
) -> None:
    """Count what each record became, leaving out the failed ones (they come back)."""

    def ok(record: StreamRecord) -> bool:
        return record.sequence_number not in outcome.failed

    written = [p for p in predictions if ok(by_txn_id[p["transaction_id"]])]
    outcome.scored = len(written)
    outcome.shadow_scored = sum(1 for p in written if CHALLENGER_VERSION in p)
    guards = Counter(p.get(GUARD) for p in written)
    outcome.capped, outcome.sampled = guards[REVIEW_ONLY], guards[DECLINE_SAMPLE]
    outcome.decisions = Counter(p["decision"] for p in written)
    outcome.latencies_ms = [p["latency_ms"] for p in written if "latency_ms" in p]
    outcome.alerts = sum(1 for p in written if "alert" in p) + sum(
        1 for p in unconfirmed if ok(by_txn_id[p["transaction_id"]])
    )
    outcome.quarantined = Counter(e.reason for r, e in batch.invalid if ok(r))


@dataclass
class _Batch:
    """The decoded batch: rows of known schema, their matrix and scores (NaN = not scored)."""

    rows: list[_Row]
    invalid: list[tuple[StreamRecord, InvalidRecordError]]
    matrix: np.ndarray
    scoreable: list[int]
    scores: np.ndarray
    shadow: ShadowScores | None = None  # the challenger's, when one is scored in shadow


def _decode(records: Sequence[StreamRecord], model: ScoringModel) -> _Batch:
    rows: list[_Row] = []
    invalid: list[tuple[StreamRecord, InvalidRecordError]] = []
    for record in records:
        try:
            rows.append(decode_feature_record(record, model.card.feature_schema))
        except InvalidRecordError as error:
            invalid.append((record, error))
    matrix, problems = feature_matrix([r.doc["features"] for r in rows], model.feature_names)
    invalid += [(r.record, p) for r, p in zip(rows, problems, strict=True) if p is not None]
    return _Batch(
        rows=rows,
        invalid=invalid,
        matrix=matrix,
        scoreable=[i for i, p in enumerate(problems) if p is None],
        scores=np.full(len(rows), np.nan),
    )


def _triage(
    batch: _Batch,
    unique: list[int],
    stored: Mapping[TransactionId, dict[str, Any]],
    unread: set[TransactionId],
    model_version: str,
    outcome: ScoreOutcome,
) -> list[int]:
    """Rows to write; the rest are failed (unread), already scored (this record) or duplicates."""
    to_write: list[int] = []
    for i in unique:
        row = batch.rows[i]
        previous = stored.get(row.doc["transaction_id"])
        same_record = previous is not None and (
            previous.get("features_record_id") == row.record.record_id
        )
        if row.doc["transaction_id"] in unread:
            outcome.failed.add(row.record.sequence_number)
        elif previous is None or (same_record and previous.get("model_version") != model_version):
            to_write.append(i)
        elif same_record:
            outcome.already_scored += 1
        else:
            outcome.duplicates += 1
    return to_write


@dataclass(frozen=True, slots=True)
class _Now:
    """The batch's clock reading, in the forms each prediction takes it."""

    iso: str  # scored_at
    epoch_s: float  # for latency_ms

    @classmethod
    def of(cls, now: datetime) -> _Now:
        return cls(utc_iso_ms(now), now.timestamp())


def _prediction(
    row: _Row, score: float, decision: str, model_version: str, now: _Now
) -> dict[str, Any]:
    """The Prediction contract: one PredictionsTable item per transaction."""
    item = {
        "transaction_id": row.doc["transaction_id"],
        "score": score,
        "decision": decision,
        "model_version": model_version,
        "event_time": row.doc["event_time"],
        "scored_at": now.iso,
        "features_record_id": row.record.record_id,
    }
    if row.arrived_at is not None:
        item["latency_ms"] = max(0, round((now.epoch_s - row.arrived_at) * 1000))
    return item


def alert_detail(prediction: Mapping[str, Any]) -> dict[str, Any]:
    """The HighRiskTransaction detail: enough for consumers to act and to de-duplicate (alert_id)."""
    return {
        "alert_id": alert_id(prediction),
        "transaction_id": prediction["transaction_id"],
        "score": prediction["score"],
        "decision": prediction["decision"],
        "model_version": prediction["model_version"],
        "event_time": prediction["event_time"],
        "scored_at": prediction["scored_at"],
    } | {name: prediction[name] for name in (GUARD, REASONS) if name in prediction}


def alert_id(prediction: Mapping[str, Any]) -> str:
    """The alert's stable identity: one transaction scored by one model version."""
    return f"{prediction['transaction_id']}/{prediction['model_version']}"


def _facts(
    batch: _Batch,
    rows: list[int],
    predictions: list[dict[str, Any]],
    model: ScoringModel,
    stored: Mapping[TransactionId, dict[str, Any]],
) -> list[Fact]:
    """Each new prediction with what it adds to its hour's counts: decision and drift bins, and
    its challenger's shadow counts (unless the stored prediction counted that challenger's)."""
    if not rows:
        return []
    columns = [
        bin_indexes(batch.matrix[rows, j], model.edges[name])
        for j, name in enumerate(model.feature_names)
    ]
    columns.append(bin_indexes(batch.scores[rows], model.edges[SCORE]))
    bins = np.column_stack(columns).tolist()
    ages = np.array([batch.rows[i].card_age_s for i in rows], dtype=np.float64)
    strata: list[int | None] = [None] * len(rows)
    if model.history_bounds is not None:
        strata = history_strata(ages, model.history_bounds).tolist()
    shadows: list[Tally | None] = [None] * len(rows)
    if batch.shadow is not None:
        # the champion's decisions as its model made them: a decline reviewed instead is one
        decided = ["decline" if GUARD in p else p["decision"] for p in predictions]
        shadows = batch.shadow.counts(rows, decided, [b[-1] for b in bins], ages)
    facts = []
    for i, prediction, row_bins, stratum, shadow in zip(
        rows, predictions, bins, strata, shadows, strict=True
    ):
        row = batch.rows[i]
        source = source_of(row.record.stream_name, row.record.shard_id)
        version = prediction["model_version"]
        fact = Fact(
            item=prediction,
            key=prediction["transaction_id"],
            count_key=CountKey(PREDICTIONS, version, row.hour, source),
            counts=prediction_counts(
                prediction["decision"],
                row_bins,
                stratum,
                prediction["score"],
                reviewed_decline=GUARD in prediction,
            ),
        )
        if shadow is not None and batch.shadow is not None:
            challenger = batch.shadow.version
            if counts_shadow(stored.get(TransactionId(fact.key)), challenger):
                key = CountKey(SHADOW, challenger, row.hour, source, paired_with=version)
                fact.also = ((key, shadow),)
        facts.append(fact)
    return facts


def _write(
    work: Callable[[], set[TransactionId]],
    keys: Iterable[TransactionId],
    by_txn_id: Mapping[TransactionId, StreamRecord],
    failed: set[SequenceNumber],
) -> None:
    """Run one write; the records of the keys it left unwritten (all, if it raised) fail."""
    settle(submit_or_run(None, work), {k: by_txn_id[k] for k in keys}, failed)


def _send_alerts(
    ports: ScorePorts,
    pending: list[dict[str, Any]],
    now: datetime,
    by_txn_id: Mapping[TransactionId, StreamRecord],
    failed: set[SequenceNumber],
) -> None:
    """Put the stored, pending alerts, then mark the accepted ones sent; the rest fail their records.

    A put that raised has an unknown outcome: its records fail and their retry puts
    them again under the same alert ids.
    """
    if not pending:
        return
    try:
        unsent = ports.alerts.publish([alert_detail(p) for p in pending])
    except RetryableError:
        failed.update(by_txn_id[p["transaction_id"]].sequence_number for p in pending)
        return
    failed.update(by_txn_id[t].sequence_number for t in unsent)
    sent = [p | {"alert": SENT} for p in pending if p["transaction_id"] not in unsent]
    if sent:
        _write(
            lambda: ports.predictions.save(sent, now),
            [p["transaction_id"] for p in sent],
            by_txn_id,
            failed,
        )


@dataclass(frozen=True)
class Scorer:
    """The scoring stage wired (see streamscore.handlers.score.build): one call per batch.

    `step_executor` runs a batch's independent steps; it must not be the pool the
    adapters fan their calls out on.
    """

    model: ScoringModel  # the model it was built with (the shipped one)
    ports: ScorePorts
    policy: ScorePolicy
    step_executor: Executor | None = None
    # when set, the registry's champion serves each batch (scoring.serving), else `model`
    follower: ModelFollower | None = None

    def score(self, records: Sequence[StreamRecord], clock: Callable[[], datetime]) -> ScoreOutcome:
        model, policy = self.model, self.policy
        events: list[Any] = []
        challenger = None
        if self.follower is not None:
            serving, events = self.follower.current()
            model, policy = serving.champion.model, serving.champion.policy
            if serving.review_only:
                policy = dataclasses.replace(policy, review_only=True)
            if serving.challenger is not None:
                shadow = serving.challenger
                challenger = Challenger(shadow.model, shadow.policy.thresholds)
        outcome = score_batch(
            records, model, self.ports, policy, clock, self.step_executor, challenger
        )
        outcome.model_version = model.model_version
        outcome.model_events = list(events)
        return outcome
