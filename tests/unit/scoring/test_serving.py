"""Following the registry: when the pointer is read, what replaces the serving model, what never does."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamscore.core.artifacts import Thresholds
from streamscore.scoring.batch import ScorePolicy
from streamscore.scoring.model import ScoringModel, load_model
from streamscore.scoring.serving import (
    CHALLENGER,
    CHAMPION,
    POINTER_UNREADABLE,
    REFUSED,
    REVIEW_ONLY_SWITCHED,
    SWAPPED,
    THRESHOLDS_NOT_APPLIED,
    ModelFollower,
    Served,
    thresholds_policy,
)

ARTIFACTS = Path(__file__).resolve().parents[3] / "models" / "artifacts"


def versioned(model: ScoringModel, version: str, schema: str | None = None) -> ScoringModel:
    """`model` under another version (and feature schema), as a registry version would be."""
    card = dataclasses.replace(
        model.card, model_version=version, feature_schema=schema or model.card.feature_schema
    )
    copy = object.__new__(ScoringModel)
    copy.__dict__.update(model.__dict__ | {"card": card})
    return copy


class Source:
    """A registry in memory: the pointer (champion, challenger, revision) and what loading each
    version does."""

    def __init__(self, shipped: ScoringModel) -> None:
        self.state: tuple[str | None, str | None, int] | Exception = (None, None, 0)
        self.models: dict[str | None, Any] = {None: shipped}
        self.review_only = False
        self.reads = 0
        self.loads: list[str | None] = []

    def pointer(self) -> tuple[str | None, str | None, int, bool]:
        self.reads += 1
        if isinstance(self.state, Exception):
            raise self.state
        return (*self.state, self.review_only)

    def load(self, version: str | None) -> ScoringModel:
        self.loads.append(version)
        found = self.models[version]
        if isinstance(found, Exception):
            raise found
        return found  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def shipped() -> ScoringModel:
    return load_model(ARTIFACTS)


def follower(shipped: ScoringModel, source: Source, clock: list[float]) -> ModelFollower:
    policy = thresholds_policy(None, None, False, shipped.model_version)
    served = Served(shipped, policy(shipped)[0], None)
    return ModelFollower(served, source, policy, refresh_s=30, clock=lambda: clock[0])


def test_the_pointer_is_read_at_most_every_refresh_interval(shipped: ScoringModel) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)

    for now in (0.0, 10.0, 29.9, 30.0, 59.0, 61.0):
        clock[0] = now
        following.current()

    assert source.reads == 3  # at 0, 30 and 61


def test_a_new_champion_serves_from_the_next_batch(shipped: ScoringModel) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.models["m2"] = versioned(shipped, "m2")
    source.state = ("m2", None, 1)

    serving, events = following.current()
    served = serving.champion

    assert served.version == "m2" and served.model.model_version == "m2"
    assert [(e.kind, e.version) for e in events] == [(SWAPPED, "m2")]


def test_a_refused_version_is_not_loaded_again_until_the_pointer_changes(
    shipped: ScoringModel,
) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.models["bad"] = ValueError("the model does not give its card's test vector scores")
    source.state = ("bad", None, 1)

    first = following.current()
    clock[0] = 31.0
    second = following.current()
    source.state, clock[0] = ("bad", None, 2), 62.0  # the pointer changed (a new revision)
    third = following.current()

    assert [s.champion.version for s, _ in (first, second, third)] == [None, None, None]
    assert [[e.kind for e in events] for _, events in (first, second, third)] == [
        [REFUSED],
        [],
        [REFUSED],
    ]
    assert "test vector scores" in first[1][0].detail
    assert source.loads == ["bad", "bad"]


def test_a_model_of_another_feature_schema_never_serves(shipped: ScoringModel) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.models["v2"] = versioned(shipped, "v2", schema="card-v2")
    source.state = ("v2", None, 1)

    serving, (event,) = following.current()
    served = serving.champion

    assert served.version is None and event.kind == REFUSED
    assert "feature schema 'card-v2'" in event.detail


def test_an_unreadable_pointer_keeps_the_serving_model(shipped: ScoringModel) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.state = TimeoutError("DynamoDB GetItem timed out")

    serving, (event,) = following.current()
    served = serving.champion

    assert served.model is shipped and event.kind == POINTER_UNREADABLE
    assert "timed out" in event.detail


def test_the_stacks_thresholds_apply_only_to_the_version_they_were_set_for(
    shipped: ScoringModel,
) -> None:
    policy = thresholds_policy(0.2, 0.6, True, shipped.model_version)
    other = versioned(shipped, "m2")

    mine, mine_note = policy(shipped)
    theirs, theirs_note = policy(other)

    assert mine == ScorePolicy(Thresholds(0.2, 0.6), True) and mine_note is None
    # the card's expected decision rates hold at its own thresholds only
    assert theirs == ScorePolicy(other.card.thresholds, True, other.card.expected_rates)
    assert other.card.expected_rates is not None
    assert theirs_note is not None and "set for " + shipped.model_version in theirs_note
    # a swap to such a version says so
    source, clock = Source(shipped), [0.0]
    following = ModelFollower(
        Served(shipped, mine, None), source, policy, refresh_s=30, clock=lambda: clock[0]
    )
    source.models["m2"], source.state = other, ("m2", None, 1)
    serving, events = following.current()
    served = serving.champion
    assert served.policy.thresholds == other.card.thresholds
    assert [e.kind for e in events] == [SWAPPED, THRESHOLDS_NOT_APPLIED]


# ---------------------------------------------------------------- the challenger


class FreshSource(Source):
    """Each load builds a new model object; `alive_at_load` records how many of the models it
    built earlier were still referenced anywhere when each load began."""

    def __init__(self, shipped: ScoringModel) -> None:
        super().__init__(shipped)
        self.built: list[weakref.ref[ScoringModel]] = []
        self.alive_at_load: list[int] = []

    def load(self, version: str | None) -> ScoringModel:
        gc.collect()
        self.alive_at_load.append(sum(1 for ref in self.built if ref() is not None))
        self.loads.append(version)
        model = versioned(self.models[None], str(version))
        self.built.append(weakref.ref(model))
        return model


def test_a_challenger_is_loaded_beside_the_champion_and_promoted_without_a_download(
    shipped: ScoringModel,
) -> None:
    source, clock = FreshSource(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.state = ("m1", "m2", 1)

    first, first_events = following.current()
    source.state, clock[0] = ("m2", None, 2), 30.0  # promoted
    second, second_events = following.current()

    assert (first.champion.version, first.challenger and first.challenger.version) == ("m1", "m2")
    assert [(e.kind, e.version, e.role) for e in first_events] == [
        (SWAPPED, "m1", CHAMPION),
        (SWAPPED, "m2", CHALLENGER),
    ]
    assert second.champion.model is first.challenger.model and second.challenger is None
    assert [(e.kind, e.version) for e in second_events] == [(SWAPPED, "m2")]
    assert source.loads == ["m1", "m2"]


def test_at_most_champion_and_challenger_are_in_memory_while_versions_change(
    shipped: ScoringModel,
) -> None:
    source, clock = FreshSource(shipped), [0.0]
    following = follower(shipped, source, clock)
    pointers = [("a", "b", 1), ("c", "b", 2), ("c", "d", 3), ("d", None, 4), ("e", "f", 5)]

    for revision, state in enumerate(pointers):
        source.state, clock[0] = state, revision * 30.0
        serving, _ = following.current()
        assert serving.champion.version == state[0]
        assert (serving.challenger and serving.challenger.version) == state[1]
        del serving  # the test holds no model either

    # a new champion beside a kept challenger: the challenger is let go and loaded again after
    assert source.loads == ["a", "b", "c", "b", "d", "e", "f"]
    # every load began with at most one other loaded model alive: the one still serving
    assert max(source.alive_at_load) <= 1


def test_a_refused_challenger_leaves_the_champion_deciding_alone(shipped: ScoringModel) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.models["c2"] = versioned(shipped, "c2", schema="card-v2")
    source.state = (None, "c2", 1)

    first, first_events = following.current()
    clock[0] = 30.0
    second, second_events = following.current()

    assert first.challenger is None and second.challenger is None
    assert first.champion.model is shipped
    assert [(e.kind, e.role) for e in first_events] == [(REFUSED, CHALLENGER)]
    assert second_events == [] and source.loads == ["c2"]


def test_a_dropped_challenger_is_let_go(shipped: ScoringModel) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.models["c2"] = versioned(shipped, "c2")
    source.state = (None, "c2", 1)
    assert following.current()[0].challenger is not None

    source.state, clock[0] = (None, None, 2), 30.0
    serving, events = following.current()

    assert serving.challenger is None and serving.champion.model is shipped and events == []


def test_the_review_only_switch_follows_the_pointer_and_survives_a_swap(
    shipped: ScoringModel,
) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.models["m2"] = versioned(shipped, "m2")
    source.review_only = True

    first, first_events = following.current()
    source.state, clock[0] = ("m2", None, 1), 30.0
    second, second_events = following.current()
    source.review_only, clock[0] = False, 60.0
    third, third_events = following.current()

    assert (first.review_only, second.review_only, third.review_only) == (True, True, False)
    assert [(e.kind, e.detail) for e in first_events] == [(REVIEW_ONLY_SWITCHED, "on")]
    assert [e.kind for e in second_events] == [SWAPPED]
    assert [(e.kind, e.detail) for e in third_events] == [(REVIEW_ONLY_SWITCHED, "off")]


def test_a_model_whose_counts_would_not_fit_one_update_is_refused(shipped: ScoringModel) -> None:
    # given: a challenger whose score baseline has 60 bins: its joint score bins with the
    # champion's alone would be 62 x 10 attributes on one shadow count item
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    wide = versioned(shipped, "wide")
    wide.edges = dict(shipped.edges) | {"score": np.linspace(0.0, 1.0, 61)}
    source.models["wide"] = wide
    source.state = (None, "wide", 1)

    serving, (event,) = following.current()

    assert serving.challenger is None and event.kind == REFUSED and event.role == CHALLENGER
    assert "more than the 290 one DynamoDB update takes" in event.detail
