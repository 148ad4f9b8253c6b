"""Following the registry: when the pointer is read, what replaces the serving model, what never does."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from streamscore.core.artifacts import Thresholds
from streamscore.scoring.batch import ScorePolicy
from streamscore.scoring.model import ScoringModel, load_model
from streamscore.scoring.serving import (
    POINTER_UNREADABLE,
    REFUSED,
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
    """A registry in memory: the pointer (champion, revision) and what loading each version does."""

    def __init__(self, shipped: ScoringModel) -> None:
        self.pointer: tuple[str | None, int] = (None, 0)
        self.models: dict[str | None, Any] = {None: shipped}
        self.reads = 0
        self.loads: list[str | None] = []

    def champion(self) -> tuple[str | None, int]:
        self.reads += 1
        if isinstance(self.pointer, Exception):
            raise self.pointer
        return self.pointer

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
    source.pointer = ("m2", 1)

    served, events = following.current()

    assert served.version == "m2" and served.model.model_version == "m2"
    assert [(e.kind, e.version) for e in events] == [(SWAPPED, "m2")]


def test_a_refused_version_is_not_loaded_again_until_the_pointer_changes(
    shipped: ScoringModel,
) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.models["bad"] = ValueError("the model does not give its card's test vector scores")
    source.pointer = ("bad", 1)

    first = following.current()
    clock[0] = 31.0
    second = following.current()
    source.pointer, clock[0] = ("bad", 2), 62.0  # the pointer changed (a new revision)
    third = following.current()

    assert [served.version for served, _ in (first, second, third)] == [None, None, None]
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
    source.pointer = ("v2", 1)

    served, (event,) = following.current()

    assert served.version is None and event.kind == REFUSED
    assert "feature schema 'card-v2'" in event.detail


def test_an_unreadable_pointer_keeps_the_serving_model(shipped: ScoringModel) -> None:
    source, clock = Source(shipped), [0.0]
    following = follower(shipped, source, clock)
    source.pointer = TimeoutError("DynamoDB GetItem timed out")  # type: ignore[assignment]

    served, (event,) = following.current()

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
    assert theirs == ScorePolicy(other.card.thresholds, True)
    assert theirs_note is not None and "set for " + shipped.model_version in theirs_note
    # a swap to such a version says so
    source, clock = Source(shipped), [0.0]
    following = ModelFollower(
        Served(shipped, mine, None), source, policy, refresh_s=30, clock=lambda: clock[0]
    )
    source.models["m2"], source.pointer = other, ("m2", 1)
    served, events = following.current()
    assert served.policy.thresholds == other.card.thresholds
    assert [e.kind for e in events] == [SWAPPED, THRESHOLDS_NOT_APPLIED]
