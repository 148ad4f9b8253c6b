"""The labels stage on in-memory ports: the label in force and its quality counts, exactly.

The property test delivers labels as Lambda would, in batches of any size, with lost
responses, failed writes, concurrent writers and a full replay, and checks that each
transaction ends with its greatest label and that the quality counts are exactly those of
the labels in force: nothing counted twice, nothing lost.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

from streamscore.core.monitoring import NO_VERSION, QUALITY, Counts, hour_of
from streamscore.core.quality import quality_bin
from streamscore.core.records import StreamRecord
from streamscore.labels.batch import label_batch
from streamscore.labels.contract import Label, label_key
from streamscore.labels.ports import LabelPorts
from support.builders import stream_records
from support.fakes import MemoryLabelStore, MemoryPredictionStore, MemoryQuarantineStore

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
STREAM = "labels-stream"
# t0-t3 were scored; t4 never was; challenger c1 scored t0 and t1 in shadow beside v1; t3's
# decline was reviewed instead (the decline sample)
PREDICTIONS = {
    f"t{i}": {
        "transaction_id": f"t{i}",
        "model_version": "v1" if i < 3 else "v2",
        "event_time": (T0 + timedelta(hours=i)).isoformat(),
        "score": [0.001, 0.05, 0.4, 0.9][i],
        "decision": ["approve", "review", "decline", "review"][i],
    }
    | ({"guard": "decline_sample"} if i == 3 else {})
    | (
        {
            "challenger_version": "c1",
            "challenger_score": [0.3, 0.01][i],
            "challenger_decision": ["review", "approve"][i],
        }
        if i < 2
        else {}
    )
    for i in range(4)
}


class Stage:
    def __init__(self) -> None:
        self.labels = MemoryLabelStore()
        self.predictions = MemoryPredictionStore()
        self.predictions.items = {k: dict(v) for k, v in PREDICTIONS.items()}
        self.quarantine = MemoryQuarantineStore()
        self.ports = LabelPorts(self.labels, self.predictions, self.quarantine)

    def run(self, records: list[StreamRecord]) -> Any:
        return label_batch(records, self.ports, NOW)


def label(txn: str, value: str, minutes: int, source: str = "chargeback") -> dict[str, Any]:
    return {
        "transaction_id": txn,
        "label": value,
        "labelled_at": (T0 + timedelta(days=10, minutes=minutes)).isoformat(),
        "source": source,
    }


def records(labels: list[dict[str, Any]], shard: str = "shardId-000", first: int = 0) -> list[Any]:
    return stream_records([json.dumps(x).encode() for x in labels], STREAM, shard, first)


def expected_counts(stored: dict[str, dict[str, Any]]) -> dict[tuple[str, str], Counts]:
    """The quality counts of the labels in force, computed here from the predictions."""
    expected: dict[tuple[str, str], Counts] = {}
    for txn, item in stored.items():
        mark = "f" if item["label"] == "fraud" else "l"
        prediction = PREDICTIONS.get(txn)
        if prediction is None:
            key, names = (NO_VERSION, hour_of(item["labelled_at"])), [f"u_{item['label']}"]
        else:
            key = (prediction["model_version"], hour_of(prediction["event_time"]))
            names = [f"{mark}d_{prediction['decision']}"]
            if prediction["decision"] != "decline":  # declines are not binned
                names.append(f"{mark}{prediction['decision'][0]}{quality_bin(prediction['score'])}")
            if "guard" in prediction:  # a decline reviewed instead counts only as such
                names = [f"{mark}s"]
            if "challenger_version" in prediction:  # both models' bins, the pair of decisions
                pair = expected.setdefault(
                    (f"{prediction['challenger_version']}@{key[0]}", key[1]), Counts()
                )
                pair.n += 1
                pair.quality.update(
                    [
                        f"j{mark}{prediction['decision'][0]}{prediction['challenger_decision'][0]}",
                        f"c{mark}{quality_bin(prediction['score'])}",
                        f"s{mark}{quality_bin(prediction['challenger_score'])}",
                    ]
                )
        total = expected.setdefault(key, Counts())
        total.n += 1
        total.quality.update(names)
    return expected


def counted(store: MemoryLabelStore) -> dict[tuple[str, str], Counts]:
    """The store's quality counts per version (a challenger's: "<challenger>@<champion>") and hour
    (shards, slots and lanes summed), zeros dropped."""
    totals: dict[tuple[str, str], Counts] = {}
    for key, counts in store.counts.items():
        assert key.kind == QUALITY
        version = f"{key.model_version}@{key.paired_with}" if key.paired_with else key.model_version
        totals.setdefault((version, key.hour), Counts()).add(counts)
    for counts in totals.values():
        assert not -counts.quality, f"negative quality counts: {dict(counts.quality)}"
        counts.quality = +counts.quality  # drop zeros (a label taken back)
    return {k: c for k, c in totals.items() if c.n or c.quality}


def test_a_reversed_chargeback_moves_its_counts_from_fraud_to_legit() -> None:
    stage = Stage()
    stage.run(records([label("t0", "fraud", 0)]))
    outcome = stage.run(records([label("t0", "legit", 60, "reversal")], first=1))

    assert outcome.written == 1 and outcome.replaced == 1
    assert stage.labels.items["t0"]["label"] == "legit"
    assert counted(stage.labels) == expected_counts(stage.labels.items)
    assert stage.labels.total().quality["fd_approve"] == 0
    assert stage.labels.total().quality["ld_approve"] == 1


def test_a_label_counts_champion_and_challenger_on_the_same_transaction() -> None:
    stage = Stage()
    stage.run(records([label("t0", "fraud", 0)]))
    hour = hour_of(PREDICTIONS["t0"]["event_time"])

    pair = counted(stage.labels)[("c1@v1", hour)]
    # the champion approved it (a chargeback), the challenger would have reviewed it
    assert pair.n == 1 and pair.quality == Counter(
        {"jfar": 1, f"cf{quality_bin(0.001)}": 1, f"sf{quality_bin(0.3)}": 1}
    )

    # a reversal takes the pair's counts back with the champion's
    stage.run(records([label("t0", "legit", 60, "reversal")], first=1))
    pair = counted(stage.labels)[("c1@v1", hour)]
    assert pair.n == 1 and pair.quality == Counter(
        {"jlar": 1, f"cl{quality_bin(0.001)}": 1, f"sl{quality_bin(0.3)}": 1}
    )
    assert counted(stage.labels) == expected_counts(stage.labels.items)


def test_a_label_of_a_decline_reviewed_instead_counts_as_the_declines_precision() -> None:
    stage = Stage()
    stage.run(records([label("t3", "legit", 0, "review")]))

    assert stage.labels.items["t3"]["guard"] == "decline_sample"
    assert stage.labels.total().quality == Counter({"ls": 1})  # not a review's bin


def test_a_chargeback_replayed_after_its_reversal_changes_nothing() -> None:
    stage = Stage()
    stage.run(records([label("t1", "legit", 60, "reversal"), label("t1", "fraud", 0)]))
    outcome = stage.run(records([label("t1", "fraud", 0)], first=2))

    assert outcome.unchanged == 1 and outcome.written == 0
    assert stage.labels.items["t1"]["label"] == "legit"
    assert counted(stage.labels) == expected_counts(stage.labels.items)


def test_a_label_of_a_transaction_never_scored_is_kept_and_counted() -> None:
    stage = Stage()
    outcome = stage.run(records([label("t4", "fraud", 5)]))

    assert outcome.written == 1 and outcome.unmatched == 1
    assert stage.labels.items["t4"]["count_version"] == NO_VERSION
    assert stage.labels.total().quality == Counter({"u_fraud": 1})


def test_bad_labels_are_quarantined_with_their_reason_and_block_nothing() -> None:
    stage = Stage()
    bad = [
        b"not json",
        json.dumps({"transaction_id": "t0", "label": "maybe"}).encode(),
        json.dumps(label("t0", "fraud", 0) | {"labelled_at": "2026-03-10T10:00:00"}).encode(),
        json.dumps(label("t0", "fraud", 0) | {"transaction_id": "bad id!"}).encode(),
    ]
    good = json.dumps(label("t2", "fraud", 0)).encode()

    outcome = stage.run(stream_records([*bad, good], STREAM))

    assert outcome.written == 1 and not outcome.failed
    assert outcome.quarantined == Counter({"invalid_json": 1, "invalid_field": 3})
    reasons = {item["reason"] for item in stage.quarantine.items.values()}
    assert reasons == {"invalid_json", "invalid_field"}


def test_a_time_no_label_can_have_is_quarantined_not_raised() -> None:
    # past UTC's range once converted, and in the future (it would stay in force forever)
    stage = Stage()
    bad = [
        label("t0", "fraud", 0) | {"labelled_at": "9999-12-31T23:30:00-01:00"},
        label("t0", "fraud", 0) | {"labelled_at": "0001-01-01T00:30:00+01:00"},
        label("t0", "fraud", 0) | {"labelled_at": (NOW + timedelta(days=2)).isoformat()},
    ]

    outcome = stage.run(records([*bad, label("t1", "fraud", 0)]))

    assert outcome.written == 1 and not outcome.failed
    assert outcome.quarantined == Counter({"invalid_field": 3})
    assert "t0" not in stage.labels.items


def test_a_label_replacing_one_whose_prediction_expired_keeps_the_join() -> None:
    # given a chargeback joined to its prediction, which then expires (PredictionsTtlDays)
    stage = Stage()
    stage.run(records([label("t2", "fraud", 0)]))
    del stage.predictions.items["t2"]

    # when the dispute is reversed
    stage.run(records([label("t2", "legit", 60, "reversal")], first=1))

    # then the reversal counts where the chargeback did, fraud to legit
    item = stage.labels.items["t2"]
    assert (item["model_version"], item["decision"]) == ("v1", "decline")
    assert counted(stage.labels) == expected_counts(stage.labels.items)
    assert stage.labels.total().quality == Counter({"ld_decline": 1})


def test_a_write_raced_by_a_greater_label_is_done_and_by_a_smaller_one_is_retried() -> None:
    # given a stored chargeback, and a writer that changes the label between read and write
    stage = Stage()
    stage.run(records([label("t2", "fraud", 0)]))

    def concurrent(minutes: int) -> Any:
        def write_first(store: MemoryLabelStore) -> None:
            store.before_write = None
            other = Stage()
            other.labels = store
            other.ports = LabelPorts(store, stage.predictions, stage.quarantine)
            other.run(records([label("t2", "legit", minutes, "review")], shard="shardId-001"))

        return write_first

    # when ours is greater than what raced it, the record fails and its retry writes it
    stage.labels.before_write = concurrent(10)
    first = stage.run(records([label("t2", "legit", 20, "reversal")], first=1))
    assert first.failed and first.written == 0
    again = stage.run(records([label("t2", "legit", 20, "reversal")], first=1))
    assert again.written == 1 and stage.labels.items["t2"]["source"] == "reversal"

    # when what raced it is greater, the record is done
    stage.labels.before_write = concurrent(90)
    late = stage.run(records([label("t2", "fraud", 30)], first=2))
    assert not late.failed and late.unchanged == 1
    assert stage.labels.items["t2"]["source"] == "review"  # the one at 90 minutes
    assert counted(stage.labels) == expected_counts(stage.labels.items)


@dataclass(frozen=True)
class Fault:
    kind: str  # none, lose, fail_write, fail_load, quarantine, race
    txn: str = "t0"
    minutes: int = 0


_labels = st.builds(
    label,
    st.sampled_from([f"t{i}" for i in range(5)]),
    st.sampled_from(["fraud", "legit"]),
    st.integers(min_value=0, max_value=5),  # equal times happen: the key breaks the tie
    st.sampled_from(["chargeback", "review", "reversal"]),
)
_records = st.lists(
    _labels | st.just({"transaction_id": "t0", "label": "unsure"}), min_size=1, max_size=25
)
_faults = st.lists(
    st.builds(
        Fault,
        st.sampled_from(["none", "none", "lose", "fail_write", "fail_load", "quarantine", "race"]),
        st.sampled_from([f"t{i}" for i in range(5)]),
        st.integers(min_value=0, max_value=5),
    ),
    max_size=8,
)


def _inject(stage: Stage, fault: Fault, raced: list[dict[str, Any]]) -> None:
    stage.labels.lose_responses = int(fault.kind == "lose")
    stage.labels.fail_writing = {fault.txn} if fault.kind == "fail_write" else set()
    stage.labels.fail_loading = fault.kind == "fail_load"
    stage.quarantine.broken = fault.kind == "quarantine"
    stage.labels.before_write = None
    if fault.kind == "race":
        racing = label(fault.txn, "legit", fault.minutes, "review")

        def write_first(store: MemoryLabelStore) -> None:  # only when a write comes
            store.before_write = None
            raced.append(racing)
            other = LabelPorts(store, stage.predictions, MemoryQuarantineStore())
            label_batch(records([racing], shard="shardId-001"), other, NOW)

        stage.labels.before_write = write_first


@settings(max_examples=150, deadline=None)
@given(labels=_records, sizes=st.lists(st.integers(1, 6), min_size=1), faults=_faults)
def test_any_delivery_ends_with_the_greatest_label_counted_once(
    labels: list[dict[str, Any]], sizes: list[int], faults: list[Fault]
) -> None:
    stage = Stage()
    stream = records(labels)
    raced: list[dict[str, Any]] = []
    position, attempt = 0, 0
    while position < len(stream):
        size = sizes[attempt % len(sizes)]
        fault = faults[attempt] if attempt < len(faults) else Fault("none")
        _inject(stage, fault, raced)
        batch = stream[position : position + size]
        outcome = stage.run(batch)
        failed = [i for i, r in enumerate(batch) if r.sequence_number in outcome.failed]
        position += failed[0] if failed else len(batch)  # Lambda resumes at the first failure
        attempt += 1
    _inject(stage, Fault("none"), raced)
    replay = stage.run(stream)  # the whole stream again, as a replay from TRIM_HORIZON would
    assert not replay.failed and replay.written == 0

    valid = [x for x in labels if x.get("label") in ("fraud", "legit")] + raced
    greatest: dict[str, str] = {}
    for x in valid:
        key = label_key(Label.model_validate(x))
        greatest[x["transaction_id"]] = max(key, greatest.get(x["transaction_id"], key))
    assert {t: i["label_key"] for t, i in stage.labels.items.items()} == greatest
    assert counted(stage.labels) == expected_counts(stage.labels.items)
    quarantined = len(labels) - sum(1 for x in labels if x.get("label") in ("fraud", "legit"))
    assert len(stage.quarantine.items) == quarantined
