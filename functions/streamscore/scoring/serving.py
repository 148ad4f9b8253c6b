"""Which model serves a batch: the registry's champion, followed between batches, never a bad one.

`ModelFollower.current()` runs before each batch. At most every `refresh_s` seconds it reads
the registry's pointer (a `ModelSource`); when the pointer names another champion (or another
challenger, scored in shadow by scoring.batch) it loads that version (the source downloads and checks its files, `load_model` its test vectors) and checks
that it scores this pipeline's feature schema. Only a version that passes every check replaces
the one serving, between two batches, model and decision policy together. Anything that fails
leaves the serving model in place and comes back as an event the handler logs and counts; a
version refused once is not tried again until the pointer changes. A pointer that names no
champion (none stored, or unset) means the model the function ships with (ModelLayer).
"""

from __future__ import annotations

import dataclasses
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
REVIEW_ONLY_SWITCHED = "review_only_switched"


class ModelSource(Protocol):
    def pointer(self) -> tuple[str | None, str | None, int, bool]:
        """The pointer's champion (None: none named), challenger (None: none), revision and
        review-only switch."""
        ...

    def load(self, version: str | None) -> ScoringModel:
        """The version loaded and checked (None: the model the function ships with); raises
        when it cannot be served."""
        ...


CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Served:
    model: ScoringModel
    policy: ScorePolicy
    version: str | None  # the registry version (None: the shipped model)


@dataclass(frozen=True)
class Serving:
    """What scores the next batch: the champion decides, a challenger is scored in shadow."""

    champion: Served
    challenger: Served | None = None
    review_only: bool = False  # the pointer's guard switch: the champion declines nothing


@dataclass(frozen=True)
class ModelEvent:
    kind: str  # SWAPPED, REFUSED, POINTER_UNREADABLE, THRESHOLDS_NOT_APPLIED
    version: str | None
    detail: str
    role: str = CHAMPION  # CHAMPION or CHALLENGER


Policy = Callable[[ScoringModel], tuple[ScorePolicy, str | None]]  # policy, and why not the stack's


class ModelFollower:
    """Follows the pointer's champion and challenger; at most those two models in memory.

    A challenger that is not kept is let go before a new champion loads (the champion
    serving must stay until its successor passes every check), and loaded again after;
    a promotion of the challenger loaded already swaps it in without a download.
    """

    def __init__(
        self,
        served: Served,
        source: ModelSource,
        policy_for: Policy,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._serving = Serving(served)
        self._source = source
        self._policy_for = policy_for
        self._refresh_s = refresh_s
        self._clock = clock
        self._next_check = float("-inf")  # the first batch reads the pointer
        self._refused: set[tuple[str | None, int]] = set()
        self.feature_schema = served.model.card.feature_schema

    def current(self) -> tuple[Serving, list[ModelEvent]]:
        """The models and policies for the next batch, and what happened choosing them."""
        now = self._clock()
        if now < self._next_check:
            return self._serving, []
        self._next_check = now + self._refresh_s
        try:
            champion, challenger, revision, review_only = self._source.pointer()
        except Exception as error:
            return self._serving, [ModelEvent(POINTER_UNREADABLE, None, _reason(error))]
        events: list[ModelEvent] = []
        self._follow_champion(champion, revision, events)
        self._follow_challenger(challenger, revision, events)
        if review_only != self._serving.review_only:
            self._serving = dataclasses.replace(self._serving, review_only=review_only)
            events.append(ModelEvent(REVIEW_ONLY_SWITCHED, None, "on" if review_only else "off"))
        return self._serving, events

    def _follow_champion(self, wanted: str | None, revision: int, events: list[ModelEvent]) -> None:
        champion, shadow = self._serving.champion, self._serving.challenger
        if wanted == champion.version or (wanted, revision) in self._refused:
            return
        before = champion.version or "the shipped model"
        if shadow is not None and shadow.version == wanted:  # the challenger promoted
            self._serving = self._with(shadow, None)
            events.append(ModelEvent(SWAPPED, wanted, f"replaces {before} (was the challenger)"))
            return
        # at most two models in memory: the shadow is let go before the new champion loads
        # (no reference to it may stay, not even here)
        del shadow
        self._serving = self._with(champion, None)
        loaded = self._load(wanted, revision, CHAMPION, events, f"replaces {before}", None)
        if loaded is not None:
            self._serving = self._with(loaded, None)

    def _follow_challenger(
        self, wanted: str | None, revision: int, events: list[ModelEvent]
    ) -> None:
        champion, shadow = self._serving.champion, self._serving.challenger
        if shadow is not None and shadow.version == wanted:
            return
        del shadow  # the one before is let go first
        self._serving = self._with(champion, None)
        if wanted is None or wanted == champion.version or (wanted, revision) in self._refused:
            return
        beside = champion.version or "the shipped model"
        loaded = self._load(
            wanted, revision, CHALLENGER, events, f"scored in shadow of {beside}", champion.model
        )
        if loaded is not None:
            self._serving = self._with(champion, loaded)

    def _with(self, champion: Served, challenger: Served | None) -> Serving:
        return Serving(champion, challenger, self._serving.review_only)

    def _load(
        self,
        version: str | None,
        revision: int,
        role: str,
        events: list[ModelEvent],
        what: str,
        beside: ScoringModel | None,
    ) -> Served | None:
        """The version checked and with its policy, and the events saying so; None if refused.
        `beside`: the champion a challenger is scored beside."""
        try:
            served, note = self._checked(version, beside)
        except Exception as error:
            self._refused.add((version, revision))
            events.append(ModelEvent(REFUSED, version, _reason(error), role))
            return None
        events.append(ModelEvent(SWAPPED, version, what, role))
        if note:
            events.append(ModelEvent(THRESHOLDS_NOT_APPLIED, version, note, role))
        return served

    def _checked(
        self, version: str | None, beside: ScoringModel | None
    ) -> tuple[Served, str | None]:
        model = self._source.load(version)
        if model.card.feature_schema != self.feature_schema:
            raise ValueError(
                f"it scores feature schema {model.card.feature_schema!r}, this pipeline "
                f"produces {self.feature_schema!r}"
            )
        model.check_countable(beside)
        policy, note = self._policy_for(model)
        return Served(model, policy, version), note


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def thresholds_policy(
    review: float | None,
    decline: float | None,
    alert_on_review: bool,
    thresholds_version: str,
    reasons: int = 0,
    decline_sample: float = 0.0,
) -> Policy:
    """Thresholds travel with the model: each version decides on its card's thresholds; the
    stack's ReviewThreshold/DeclineThreshold (`review`, `decline`) apply only to the version
    they were set for (`thresholds_version`), never to another, which gets a note saying so.
    Every version's reviews and declines carry `reasons` reasons, and reviews `decline_sample`
    of its would-be declines instead."""

    def policy_for(model: ScoringModel) -> tuple[ScorePolicy, str | None]:
        policy, note = thresholds_for(model)
        return dataclasses.replace(policy, reasons=reasons, decline_sample=decline_sample), note

    def thresholds_for(model: ScoringModel) -> tuple[ScorePolicy, str | None]:
        card = model.card.thresholds
        rates = model.card.expected_rates  # at the card's thresholds only
        if review is None and decline is None:
            return ScorePolicy(card, alert_on_review, rates), None
        if model.model_version == thresholds_version:
            thresholds = resolve_thresholds(card, review, decline)
            same = thresholds == card
            return ScorePolicy(thresholds, alert_on_review, rates if same else None), None
        note = (
            f"the stack's thresholds are set for {thresholds_version}; {model.model_version} "
            f"decides on its card's (review {card.review:g}, decline {card.decline:g})"
        )
        return ScorePolicy(card, alert_on_review, rates), note

    return policy_for
