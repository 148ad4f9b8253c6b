"""Which model serves a batch: the registry's champion, followed between batches, never a bad one.

`ModelFollower.current()` runs before each batch. At most every `refresh_s` seconds it reads
the registry's pointer (a `ModelSource`); when the pointer names another champion it loads that
version (the source downloads and checks its files, `load_model` its test vectors) and checks
that it scores this pipeline's feature schema. Only a version that passes every check replaces
the one serving, between two batches, model and decision policy together. Anything that fails
leaves the serving model in place and comes back as an event the handler logs and counts; a
version refused once is not tried again until the pointer changes. A pointer that names no
champion (none stored, or unset) means the model the function ships with (ModelLayer).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streamscore.scoring.batch import ScorePolicy
from streamscore.scoring.model import ScoringModel, resolve_thresholds

SWAPPED = "swapped"
REFUSED = "refused"
POINTER_UNREADABLE = "pointer_unreadable"
THRESHOLDS_NOT_APPLIED = "thresholds_not_applied"


class ModelSource(Protocol):
    def champion(self) -> tuple[str | None, int]:
        """The pointer's champion (None: none named) and the pointer's revision."""
        ...

    def load(self, version: str | None) -> ScoringModel:
        """The version loaded and checked (None: the model the function ships with); raises
        when it cannot be served."""
        ...


@dataclass(frozen=True)
class Served:
    model: ScoringModel
    policy: ScorePolicy
    version: str | None  # the registry version serving (None: the shipped model)


@dataclass(frozen=True)
class ModelEvent:
    kind: str  # SWAPPED, REFUSED, POINTER_UNREADABLE, THRESHOLDS_NOT_APPLIED
    version: str | None
    detail: str


Policy = Callable[[ScoringModel], tuple[ScorePolicy, str | None]]  # policy, and why not the stack's


class ModelFollower:
    def __init__(
        self,
        served: Served,
        source: ModelSource,
        policy_for: Policy,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._served = served
        self._source = source
        self._policy_for = policy_for
        self._refresh_s = refresh_s
        self._clock = clock
        self._next_check = float("-inf")  # the first batch reads the pointer
        self._refused: set[tuple[str | None, int]] = set()
        self.feature_schema = served.model.card.feature_schema

    def current(self) -> tuple[Served, list[ModelEvent]]:
        """The model and policy for the next batch, and what happened choosing them."""
        now = self._clock()
        if now < self._next_check:
            return self._served, []
        self._next_check = now + self._refresh_s
        try:
            wanted, revision = self._source.champion()
        except Exception as error:
            return self._served, [ModelEvent(POINTER_UNREADABLE, None, _reason(error))]
        if wanted == self._served.version or (wanted, revision) in self._refused:
            return self._served, []
        try:
            served, note = self._checked(wanted)
        except Exception as error:
            self._refused.add((wanted, revision))
            return self._served, [ModelEvent(REFUSED, wanted, _reason(error))]
        before = self._served.version or "the shipped model"
        self._served = served
        events = [ModelEvent(SWAPPED, wanted, f"replaces {before}")]
        if note:
            events.append(ModelEvent(THRESHOLDS_NOT_APPLIED, wanted, note))
        return served, events

    def _checked(self, version: str | None) -> tuple[Served, str | None]:
        model = self._source.load(version)
        if model.card.feature_schema != self.feature_schema:
            raise ValueError(
                f"it scores feature schema {model.card.feature_schema!r}, this pipeline "
                f"produces {self.feature_schema!r}"
            )
        policy, note = self._policy_for(model)
        return Served(model, policy, version), note


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def thresholds_policy(
    review: float | None,
    decline: float | None,
    alert_on_review: bool,
    thresholds_version: str,
) -> Policy:
    """Thresholds travel with the model: each version decides on its card's thresholds; the
    stack's ReviewThreshold/DeclineThreshold (`review`, `decline`) apply only to the version
    they were set for (`thresholds_version`), never to another, which gets a note saying so."""

    def policy_for(model: ScoringModel) -> tuple[ScorePolicy, str | None]:
        card = model.card.thresholds
        if review is None and decline is None:
            return ScorePolicy(card, alert_on_review), None
        if model.model_version == thresholds_version:
            thresholds = resolve_thresholds(card, review, decline)
            return ScorePolicy(thresholds, alert_on_review), None
        note = (
            f"the stack's thresholds are set for {thresholds_version}; {model.model_version} "
            f"decides on its card's (review {card.review:g}, decline {card.decline:g})"
        )
        return ScorePolicy(card, alert_on_review), note

    return policy_for
