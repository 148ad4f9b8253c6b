"""Count items: what a fact adds, as top-level numbers DynamoDB can ADD, read back the same."""

from __future__ import annotations

from collections import Counter

from streamscore.core.monitoring import (
    MISSING,
    OUT_OF_RANGE,
    Counts,
    prediction_counts,
    quarantine_counts,
)


def test_every_kind_of_count_reads_back_from_its_item_attributes() -> None:
    # given the counts of a few predictions (bins, decisions, strata) and a quarantined record
    counts = Counts()
    counts.add(prediction_counts("approve", [0, 3, MISSING], stratum=0))
    counts.add(prediction_counts("decline", [1, 3, OUT_OF_RANGE], stratum=4))
    counts.add(prediction_counts("approve", [1, 2, 0], stratum=4))
    counts.add(quarantine_counts("score", "undecodable"))

    # when they go through an item's attributes
    attributes = counts.attributes()
    again = Counts.from_item({"pk": "COUNT#...", "sk": "COUNT", "kind": "PRED"} | attributes)

    # then nothing is lost or invented
    assert again == counts
    assert attributes["h0"] == 1 and attributes["h4"] == 2
    assert again.history == Counter({0: 1, 4: 2})
    assert all(isinstance(v, int) and v > 0 for v in attributes.values())


def test_a_prediction_without_a_stratum_adds_no_history_attribute() -> None:
    attributes = prediction_counts("review", [2, 2]).attributes()

    assert not any(name.startswith("h") for name in attributes)
    assert attributes["n"] == 1 and attributes["d_review"] == 1
