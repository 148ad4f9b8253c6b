"""Count items: what a fact adds, as top-level numbers DynamoDB can ADD, read back the same."""

from __future__ import annotations

from collections import Counter

import hypothesis.strategies as st
from hypothesis import given

from streamscore.core.monitoring import (
    MISSING,
    OUT_OF_RANGE,
    PREDICTIONS,
    CountKey,
    Counts,
    Fact,
    prediction_counts,
    quarantine_counts,
    summed,
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


one_fact = st.one_of(
    st.builds(
        prediction_counts,
        st.sampled_from(["approve", "review", "decline"]),
        st.lists(st.sampled_from([0, 1, 5, MISSING, OUT_OF_RANGE]), max_size=6),
        st.none() | st.integers(min_value=0, max_value=10),
    ),
    st.builds(
        quarantine_counts, st.sampled_from(["preprocess", "score"]), st.sampled_from(["a", "b"])
    ),
)


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=2), one_fact), max_size=40))
def test_facts_sum_per_count_item_as_adding_their_counts_one_by_one_does(
    facts: list[tuple[int, Counts]],
) -> None:
    # given: facts spread over three count items
    keys = [CountKey(PREDICTIONS, "v1", f"2026-03-04T0{h}", "stream/shard-0") for h in range(3)]
    listed = [Fact({}, str(i), keys[k], counts) for i, (k, counts) in enumerate(facts)]

    # when
    totals = summed(listed)

    # then: the same as Counts.add, count by count
    expected: dict[CountKey, Counts] = {}
    for one in listed:
        expected.setdefault(one.count_key, Counts()).add(one.counts)
    assert totals == expected


def test_a_counts_of_more_than_one_fact_is_added_in_full() -> None:
    several = Counts(n=2, decisions=Counter({"approve": 2}), bins=Counter({(0, 1): 2}))
    total = Counts()
    total.add_fact(several)
    assert total == several
