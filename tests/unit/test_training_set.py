"""The point-in-time training set (models/lifecycle/training_set.py): nothing scored or labelled
after the cut-off, labels as they were known then, implicit negatives only for mature
approvals, and a sampled decline weighted for the declines it stands for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle.training_set import LoggedRow, label_as_known, training_set
from streamscore.labels.contract import Label, label_key

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CUTOFF = T0 + timedelta(days=90)
NAMES = ("a", "b")


def _row(txn: str, day: float, decision: str = "approve", guard: str | None = None) -> LoggedRow:
    at = T0 + timedelta(days=day)
    return LoggedRow(txn, at, at + timedelta(seconds=2), decision, {"a": day, "b": 1.0}, guard)


def _label(
    txn: str,
    value: str,
    day: float,
    replaced: tuple[str, float] | None = None,
    received: float | None = None,
) -> dict:
    """A LabelsTable item: labelled on `day`, received then (or on `received`); `replaced`:
    the label it replaced, received on its day."""
    label = Label(
        transaction_id=txn, label=value, labelled_at=T0 + timedelta(days=day), source="chargeback"
    )
    at = T0 + timedelta(days=day if received is None else received)
    item = {
        "transaction_id": txn,
        "label": value,
        "label_key": label_key(label),
        "received_at": at.isoformat(),
    }
    if replaced is not None:
        old = Label(
            transaction_id=txn,
            label=replaced[0],
            labelled_at=T0 + timedelta(days=replaced[1]),
            source="review",
        )
        item["replaces"] = label_key(old)
        item["replaces_received_at"] = (T0 + timedelta(days=replaced[1])).isoformat()
    return item


def test_labels_are_taken_as_they_were_known_at_the_cutoff() -> None:
    reversed_late = _label("t", "legit", 95, replaced=("fraud", 40))
    assert label_as_known(reversed_late, CUTOFF) == "fraud"  # the reversal came after
    assert label_as_known(reversed_late, CUTOFF + timedelta(days=10)) == "legit"
    assert label_as_known(_label("u", "fraud", 91), CUTOFF) is None
    # dated before the cut-off, received after it: not known then
    assert label_as_known(_label("v", "fraud", 80, received=92), CUTOFF) is None
    # a chain whose known link was replaced after the cut-off: its history is lost
    lost = _label("w", "legit", 95, replaced=("fraud", 93))
    assert label_as_known(lost, CUTOFF) == "unknown_history"


def test_the_set_keeps_what_the_cutoff_knew_and_nothing_else() -> None:
    rows = [
        _row("old-approve", 10),  # no label, mature: legitimate
        _row("young-approve", 80),  # no label, 10 days old at the cutoff: left out
        _row("charged-back", 20),
        _row("late-chargeback", 25),  # charged back after the cutoff: legitimate then
        _row("review", 50, "review"),  # no outcome known: left out
        _row("decline", 50, "decline"),  # never settles: left out
        _row("sampled", 50, "review", guard="decline_sample"),
        _row("future", 95),  # scored after the cutoff
        _row("charged-back", 21),  # a repeated log row, scored later: the first counts
    ]
    labels = {
        "charged-back": _label("charged-back", "fraud", 40),
        "late-chargeback": _label("late-chargeback", "fraud", 100),
        "sampled": _label("sampled", "fraud", 51),
        "future": _label("future", "fraud", 96),
    }

    got = training_set(rows, labels, CUTOFF, NAMES, maturity_days=60, sample_share=0.1)

    kept = dict(zip(got.features[:, 0].tolist(), got.labels.tolist(), strict=True))
    assert kept == {10.0: 0, 20.0: 1, 25.0: 0, 50.0: 1}
    assert got.weights.tolist() == [1.0, 1.0, 1.0, 10.0]  # the sampled decline stands for ten
    assert got.left_out == {
        "unknown_approve": 1,
        "unknown_review": 1,
        "unknown_decline": 1,
        "scored_after_cutoff": 1,
    }
    assert got.kept_as == {"labelled": 2, "implicit_negative": 2}


@settings(max_examples=50, deadline=None)
@given(
    days=st.lists(st.floats(0, 120), min_size=1, max_size=30),
    label_days=st.lists(st.one_of(st.none(), st.floats(0, 200)), min_size=30, max_size=30),
    cutoff_day=st.floats(30, 150),
)
def test_no_row_or_label_from_after_the_cutoff(
    days: list[float], label_days: list[float | None], cutoff_day: float
) -> None:
    cutoff = T0 + timedelta(days=cutoff_day)
    rows = [
        LoggedRow(f"t{i}", at, at + timedelta(seconds=2), "approve", {"a": i, "b": 0.0})
        for i, at in enumerate(T0 + timedelta(days=d) for d in days)
    ]
    labels = {
        f"t{i}": _label(f"t{i}", "fraud", max(d, days[i]))
        for i, d in enumerate(label_days[: len(days)])
        if d is not None
    }

    got = training_set(rows, labels, cutoff, NAMES, maturity_days=60)

    scored = got.event_times + 2  # each row was scored 2 s after its event
    assert np.all(scored <= cutoff.timestamp())
    for index, label in zip(got.features[:, 0].tolist(), got.labels.tolist(), strict=True):
        day, labelled = days[int(index)], label_days[int(index)]
        known = labelled is not None and max(labelled, day) <= cutoff_day
        assert label == int(known)
        if not known:  # an implicit negative: mature at the cutoff
            assert day <= cutoff_day - 60
