"""Shadow scoring: the challenger's score rides on the prediction, is counted once in its own
items, and never decides, alerts or fails anything."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamscore.core.artifacts import SCORE, Thresholds
from streamscore.core.errors import SystemicError
from streamscore.core.monitoring import PREDICTIONS, SHADOW, Counts
from streamscore.core.records import StreamRecord
from streamscore.preprocess.features import FEATURE_NAMES
from streamscore.scoring.batch import ScoreOutcome, ScorePolicy, score_batch
from streamscore.scoring.model import ScoringModel, load_model
from streamscore.scoring.shadow import Challenger
from support.builders import feature_record, stream_records
from support.fakes import MemoryScorePorts
from support.tiny_model import tiny_score, write_model_dir

STREAM = "streamscore-FeaturesStream-test"
NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
POLICY = ScorePolicy(Thresholds(0.5, 0.9), False)
# champion: sigmoid(4a - 2); challenger: sigmoid(2a - 2), on its own thresholds 0.3 / 0.6
AMOUNTS = [0.0, 0.6, 1.2, 1.8]


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    return load_model(write_model_dir(tmp_path_factory.mktemp("champion"), "champ-1"))


@pytest.fixture(scope="module")
def challenger(tmp_path_factory: pytest.TempPathFactory) -> Challenger:
    directory = tmp_path_factory.mktemp("challenger")
    # its features in another order: the columns must follow the names, not the positions
    names = list(reversed(FEATURE_NAMES))
    model = load_model(write_model_dir(directory, "chall-1", 0.3, 0.6, names=names, weight=2.0))
    return Challenger(model, model.card.thresholds)


def records(amounts: Sequence[float], first: int = 0) -> list[StreamRecord]:
    docs = [json.dumps(feature_record(first + i, a)).encode() for i, a in enumerate(amounts)]
    return stream_records(docs, STREAM, first_index=first, key="card")


def run(
    batch: list[StreamRecord],
    model: ScoringModel,
    fakes: MemoryScorePorts,
    challenger: Challenger | None,
) -> ScoreOutcome:
    return score_batch(batch, model, fakes.ports, POLICY, lambda: NOW, None, challenger)


def counts_of(fakes: MemoryScorePorts, kind: str) -> dict[tuple[str, str], Counts]:
    """The counts added per (model version, paired champion) of one kind."""
    totals: dict[tuple[str, str], Counts] = {}
    for key, counts in fakes.predictions.counts.items():
        if key.kind == kind:
            totals.setdefault((key.model_version, key.paired_with), Counts()).add(counts)
    return totals


def decision(score: float, review: float, decline: float) -> str:
    return "decline" if score >= decline else "review" if score >= review else "approve"


def test_the_challenger_is_stored_beside_the_champions_decision_and_never_replaces_it(
    champion: ScoringModel, challenger: Challenger
) -> None:
    alone, shadowed = MemoryScorePorts(), MemoryScorePorts()
    batch = records(AMOUNTS * 5)

    without = run(batch, champion, alone, None)
    with_shadow = run(batch, champion, shadowed, challenger)

    strip = ("challenger_version", "challenger_score", "challenger_decision", "shadow_versions")
    assert {
        t: {k: v for k, v in p.items() if k not in strip}
        for t, p in shadowed.predictions.items.items()
    } == alone.predictions.items
    assert shadowed.alerts.sent == alone.alerts.sent
    assert with_shadow.decisions == without.decisions
    assert counts_of(shadowed, PREDICTIONS) == counts_of(alone, PREDICTIONS)
    assert with_shadow.shadow_scored == 20 and with_shadow.shadow_version == "chall-1"
    for i, amount in enumerate(AMOUNTS * 5):
        item = shadowed.predictions.items[f"t{i:05d}"]
        expected = tiny_score(amount, weight=2.0)
        assert item["challenger_version"] == "chall-1"
        assert item["challenger_score"] == pytest.approx(expected, abs=1e-7)
        assert item["challenger_decision"] == decision(expected, 0.3, 0.6)


def test_the_challengers_counts_are_its_own_and_pair_it_with_the_champion(
    champion: ScoringModel, challenger: Challenger
) -> None:
    fakes = MemoryScorePorts()

    run(records(AMOUNTS * 5), champion, fakes, challenger)

    (shadow,) = counts_of(fakes, SHADOW).items()
    (version, paired), counts = shadow
    assert (version, paired) == ("chall-1", "champ-1") and counts.n == 20
    pairs: Counter[tuple[str, str]] = Counter()
    for amount in AMOUNTS * 5:
        mine, theirs = tiny_score(amount), tiny_score(amount, weight=2.0)
        pairs[decision(mine, 0.5, 0.9), decision(theirs, 0.3, 0.6)] += 1
    assert counts.pairs == pairs
    assert counts.decisions == Counter(theirs for _, theirs in pairs.elements())
    names = [*challenger.model.feature_names, SCORE]
    bins = len(challenger.model.edges[SCORE]) - 1
    assert sum(counts.histogram(names.index(SCORE), bins)["counts"]) == 20
    assert sum(counts.joint.values()) == 20


def test_a_replay_counts_the_challenger_once_and_so_does_a_replay_after_a_promotion(
    champion: ScoringModel, challenger: Challenger, tmp_path: Path
) -> None:
    fakes = MemoryScorePorts()
    batch = records(AMOUNTS * 2)
    run(batch, champion, fakes, challenger)
    before = counts_of(fakes, SHADOW)

    replay = run(batch, champion, fakes, challenger)
    # another champion, the same challenger: predictions rewritten, the shadow not recounted
    other = load_model(write_model_dir(tmp_path / "c2", "champ-2"))
    rewritten = run(batch, other, fakes, challenger)
    # the challenger promoted: it decides now; its shadow counts stay what they were
    promoted = run(batch, challenger.model, fakes, None)

    assert replay.scored == 0 and rewritten.scored == 8 and promoted.scored == 8
    assert counts_of(fakes, SHADOW) == before
    assert {v: c.n for (v, _), c in counts_of(fakes, PREDICTIONS).items()} == {
        "champ-1": 8,
        "champ-2": 8,
        "chall-1": 8,
    }
    for item in fakes.predictions.items.values():
        assert "challenger_version" not in item and item["shadow_versions"] == ["chall-1"]


def test_a_challenger_counts_a_transaction_once_across_any_sequence_of_rewrites(
    champion: ScoringModel, challenger: Challenger, tmp_path: Path
) -> None:
    fakes = MemoryScorePorts()
    batch = records(AMOUNTS)
    other = load_model(write_model_dir(tmp_path / "c2", "champ-2"))
    third = load_model(write_model_dir(tmp_path / "c3", "champ-3"))
    second = load_model(write_model_dir(tmp_path / "s2", "chall-2", weight=3.0))

    # champion 1 with chall-1, champion 2 with chall-2, champion 3 with chall-1 again
    run(batch, champion, fakes, challenger)
    run(batch, other, fakes, Challenger(second, second.card.thresholds))
    last = run(batch, third, fakes, challenger)

    assert last.scored == 4
    assert {k: c.n for k, c in counts_of(fakes, SHADOW).items()} == {
        ("chall-1", "champ-1"): 4,
        ("chall-2", "champ-2"): 4,
    }
    item = fakes.predictions.items["t00000"]
    assert item["shadow_versions"] == ["chall-1", "chall-2"]
    assert item["model_version"] == "champ-3" and item["challenger_version"] == "chall-1"


def test_a_new_challenger_counts_again_on_a_rewrite(
    champion: ScoringModel, challenger: Challenger, tmp_path: Path
) -> None:
    fakes = MemoryScorePorts()
    batch = records(AMOUNTS)
    run(batch, champion, fakes, challenger)
    second = load_model(write_model_dir(tmp_path / "c3", "chall-2", weight=3.0))
    other = load_model(write_model_dir(tmp_path / "c2", "champ-2"))

    run(batch, other, fakes, Challenger(second, second.card.thresholds))

    assert {k: c.n for k, c in counts_of(fakes, SHADOW).items()} == {
        ("chall-1", "champ-1"): 4,
        ("chall-2", "champ-2"): 4,
    }


def broken(model: ScoringModel) -> ScoringModel:
    """`model` whose runs fail the way a bad model's do."""
    copy = object.__new__(ScoringModel)
    copy.__dict__.update(model.__dict__)

    def predict(matrix: Any) -> Any:
        raise SystemicError(f"model {model.model_version} gave a non-finite score for 1 of 4 rows")

    copy.predict = predict  # type: ignore[method-assign]
    return copy


def test_a_failing_challenger_costs_its_shadow_scores_only(
    champion: ScoringModel, challenger: Challenger
) -> None:
    fakes, alone = MemoryScorePorts(), MemoryScorePorts()
    failing = Challenger(broken(challenger.model), challenger.thresholds)

    outcome = run(records(AMOUNTS), champion, fakes, failing)
    run(records(AMOUNTS), champion, alone, None)

    assert outcome.scored == 4 and not outcome.failed and outcome.shadow_scored == 0
    assert "non-finite" in outcome.shadow_error
    assert fakes.predictions.items == alone.predictions.items
    assert counts_of(fakes, SHADOW) == {}


def test_quarantined_and_duplicate_records_get_no_shadow(
    champion: ScoringModel, challenger: Challenger
) -> None:
    fakes = MemoryScorePorts()
    docs = [feature_record(0, 0.6), feature_record(0, 0.6), {"not": "a feature record"}]
    batch = stream_records([json.dumps(d).encode() for d in docs], STREAM, key="card")

    outcome = run(batch, champion, fakes, challenger)

    assert outcome.scored == 1 and outcome.duplicates == 1 and outcome.shadow_scored == 1
    assert counts_of(fakes, SHADOW)[("chall-1", "champ-1")].n == 1
    assert np.isclose(
        fakes.predictions.items["t00000"]["challenger_score"], tiny_score(0.6, weight=2.0)
    )
