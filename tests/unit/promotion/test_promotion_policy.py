"""The promotion policy: the paired recall bound covers the truth, equal challengers pass,
worse or more declining ones are rejected, short evidence waits and then is rejected."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from streamscore.core.monitoring import COUNT, QUALITY, SHADOW
from streamscore.promotion.policy import (
    PROMOTE,
    REJECT,
    WAIT,
    PromotionPolicy,
    judge,
    paired_recall_bounds,
    sum_shadow_items,
)

CHALLENGER, CHAMPION = "m-new", "m-old"
POLICY = PromotionPolicy()


def _decision(flagged: bool, rnd: random.Random) -> str:
    if flagged:
        return "decline"
    return "review" if rnd.random() < 0.2 else "approve"


def _items(
    rnd: random.Random,
    *,
    frauds: int,
    legit: int,
    champion_recall: float,
    challenger_recall: float,
    agreement: float = 0.9,
    scored: int = 20_000,
    champion_decline_rate: float = 0.02,
    challenger_decline_rate: float = 0.02,
    hour: str = "2026-03-02T00",
) -> list[dict[str, Any]]:
    """A paired QUAL item and a SHAD item as the label and score functions write them."""
    quality: Counter[str] = Counter()
    for _ in range(frauds):
        champion = rnd.random() < champion_recall
        # the challenger agrees with the champion most of the time, with its own recall
        if rnd.random() < agreement:
            challenger = champion if rnd.random() < 0.5 else rnd.random() < challenger_recall
        else:
            challenger = rnd.random() < challenger_recall
        quality[f"qjf{_decision(champion, rnd)[0]}{_decision(challenger, rnd)[0]}"] += 1
    for _ in range(legit):
        quality[f"qjl{_decision(False, rnd)[0]}{_decision(False, rnd)[0]}"] += 1
    pairs: Counter[str] = Counter()
    for _ in range(scored):
        mine = "decline" if rnd.random() < champion_decline_rate else "approve"
        theirs = "decline" if rnd.random() < challenger_decline_rate else "approve"
        pairs[f"a_{mine}_{theirs}"] += 1
    common = {"sk": COUNT, "model_version": CHALLENGER, "paired_with": CHAMPION, "hour": hour}
    return [
        {"pk": f"{COUNT}#QUAL#x#{hour}", "kind": QUALITY, **common, **quality},
        {"pk": f"{COUNT}#SHAD#x#{hour}", "kind": SHADOW, "n": scored, **common, **pairs},
    ]


def test_the_paired_lower_bound_covers_the_true_difference() -> None:
    """Over 400 draws of 120 frauds (true recall 0.80 against 0.84, dependent pairs), the two
    one-sided 95 % bounds hold the truth in at least 88 % of them (90 % nominal)."""
    rnd = random.Random(3)
    covered = 0
    runs = 400
    for _ in range(runs):
        b = c = n = 0
        for _ in range(120):
            champion = rnd.random() < 0.84
            challenger = champion if rnd.random() < 0.7 else rnd.random() < 0.80
            n += 1
            b += champion and not challenger
            c += challenger and not champion
        truth = 0.7 * 0.84 + 0.3 * 0.80 - 0.84
        low, high = paired_recall_bounds(b, c, n, POLICY.z)
        covered += low <= truth <= high
    assert covered / runs >= 0.88


def test_an_equal_challenger_is_promoted_once_the_evidence_is_conclusive() -> None:
    rnd = random.Random(1)
    few = _items(rnd, frauds=300, legit=2000, champion_recall=0.85, challenger_recall=0.85)
    early = judge(sum_shadow_items(few, CHALLENGER, CHAMPION), 200.0, POLICY)
    assert early.verdict == WAIT
    assert early.why.startswith("inconclusive")
    assert judge(sum_shadow_items(few, CHALLENGER, CHAMPION), 28 * 24, POLICY).verdict == REJECT
    many = _items(rnd, frauds=3000, legit=2000, champion_recall=0.85, challenger_recall=0.85)
    judgement = judge(sum_shadow_items(many, CHALLENGER, CHAMPION), 200.0, POLICY)
    assert judgement.verdict == PROMOTE, judgement.why
    assert judgement.figures["recall_difference_bounds"][0] >= -POLICY.recall_tolerance


def test_a_worse_challenger_is_rejected() -> None:
    rnd = random.Random(2)
    items = _items(rnd, frauds=1500, legit=2000, champion_recall=0.85, challenger_recall=0.70)
    judgement = judge(sum_shadow_items(items, CHALLENGER, CHAMPION), 200.0, POLICY)
    assert judgement.verdict == REJECT
    assert "recall at decline" in judgement.why


def test_a_challenger_that_buys_recall_with_declines_is_rejected() -> None:
    rnd = random.Random(4)
    items = _items(
        rnd,
        frauds=400,
        legit=2000,
        champion_recall=0.85,
        challenger_recall=0.90,
        challenger_decline_rate=0.04,
    )
    judgement = judge(sum_shadow_items(items, CHALLENGER, CHAMPION), 200.0, POLICY)
    assert judgement.verdict == REJECT
    assert "declines" in judgement.why
    assert judgement.figures["decline_ratio"] > 1 + POLICY.decline_rate_tolerance


def _wave(rnd: random.Random) -> list[dict[str, Any]]:
    """A fraud wave the champion misses: the challenger catches twice the frauds and declines
    three times as many transactions (6 % against 2 %)."""
    return _items(
        rnd,
        frauds=3000,
        legit=2000,
        champion_recall=0.3,
        challenger_recall=0.6,
        champion_decline_rate=0.02,
        challenger_decline_rate=0.06,
    )


@pytest.mark.parametrize("card_share", [0.055, 0.06, 0.07])
def test_a_challenger_that_declines_the_wave_its_card_foresaw_is_promoted(
    card_share: float,
) -> None:
    counts = sum_shadow_items(_wave(random.Random(7)), CHALLENGER, CHAMPION)

    judgement = judge(counts, 200.0, POLICY, card_decline_share=card_share)

    assert judgement.figures["decline_ratio"] > 2  # the champion-only rule would reject it
    assert judgement.verdict == PROMOTE, judgement.why
    assert judgement.figures["declines_judged_by"] == "card"
    assert "as its card expects" in judgement.why


@pytest.mark.parametrize("card_share", [None, 0.02, 0.045])
def test_declines_beyond_the_champions_and_its_card_are_rejected(
    card_share: float | None,
) -> None:
    counts = sum_shadow_items(_wave(random.Random(7)), CHALLENGER, CHAMPION)

    judgement = judge(counts, 200.0, POLICY, card_decline_share=card_share)

    assert judgement.verdict == REJECT
    assert judgement.why.startswith("declines ")
    share = judgement.figures["challenger_decline_share"]
    assert card_share is None or share > (1 + POLICY.decline_rate_tolerance) * card_share


@pytest.mark.parametrize(
    ("frauds", "legit", "hours", "short"),
    [
        (3000, 2000, 100.0, "hours"),
        (30, 2000, 200.0, "frauds"),
        (60, 300, 200.0, "labelled"),
    ],
)
def test_short_evidence_waits_then_is_rejected(
    frauds: int, legit: int, hours: float, short: str
) -> None:
    rnd = random.Random(5)
    counts = sum_shadow_items(
        _items(rnd, frauds=frauds, legit=legit, champion_recall=0.8, challenger_recall=0.8),
        CHALLENGER,
        CHAMPION,
    )
    waiting = judge(counts, hours, POLICY)
    assert waiting.verdict == WAIT
    assert short in waiting.why
    too_late = judge(counts, POLICY.max_days * 24 + 1, POLICY)
    if short == "hours":  # past max_days the hours are there: judged on its figures
        assert too_late.verdict == PROMOTE
    else:
        assert too_late.verdict == REJECT
        assert too_late.why.startswith("insufficient_labels")


def test_only_the_pairs_items_count_each_once() -> None:
    rnd = random.Random(6)
    items = _items(rnd, frauds=100, legit=900, champion_recall=0.8, challenger_recall=0.8)
    other = [dict(item, paired_with="m-other", pk=item["pk"] + "o") for item in items]
    later = _items(
        rnd, frauds=50, legit=100, champion_recall=0.8, challenger_recall=0.8, hour="2026-03-02T05"
    )
    once = sum_shadow_items(items + later, CHALLENGER, CHAMPION)
    twice = sum_shadow_items(items + items + other + later, CHALLENGER, CHAMPION)
    assert once == twice
    assert sum(v for k, v in once.paired.quality.items() if k.startswith("jf")) == 150
    assert once.first_hour == "2026-03-02T00"


def test_the_policy_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match="min_hours"):
        PromotionPolicy(min_hours=800, max_days=28)
    with pytest.raises(ValueError, match="tolerances"):
        PromotionPolicy(recall_tolerance=1.5)
