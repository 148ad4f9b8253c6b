"""ScoreFunction follows the model registry on moto: a champion published between batches serves
from the next batch, a version that fails a check never serves, and no batch fails because of it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from embedded.lambda_events import KinesisEntry, kinesis_event
from lifecycle.registry import Registry
from streamscore.core.registry import Pointer
from streamscore.core.settings import load_settings
from streamscore.scoring.settings import ScoreSettings
from support.aws_stack import REGION, LocalStack
from support.handler_output import emitted_metrics, log_lines
from support.lambda_runtime import FakeLambdaContext
from support.model_dirs import renamed_model
from support.wiring import Wired, moto_clients, wire

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "artifacts"
SHIPPED = json.loads((MODEL_DIR / "model_card.json").read_text())["model_version"]
SHARD = "shardId-000000000000"
BUCKET = "hot-swap-artifacts"


@pytest.fixture
def registry(local_stack: LocalStack) -> Iterator[Registry]:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    yield Registry.of(s3, dynamodb, BUCKET, local_stack.resource_name("MonitoringTable"))


@pytest.fixture
def score(
    load_handler: Any,
    local_stack: LocalStack,
    registry: Registry,
) -> Callable[[int], dict[str, Any]]:
    """`score(first)`: one batch of 20 new transactions through the score handler that follows
    the registry (pointer read before every batch), its result."""
    environment = local_stack.function_environment(
        "ScoreFunction",
        {
            "MODEL_DIR": str(MODEL_DIR),
            "ARTIFACTS_BUCKET": BUCKET,
            "MODEL_REFRESH_SECONDS": "0",
            "EVENT_BUS_NAME": "hot-swap-bus",
        },
    )
    boto3.client("events", region_name=REGION).create_event_bus(Name="hot-swap-bus")
    built: list[Wired] = []

    def app() -> Wired:  # imported in the test's call, where its logger must write
        if not built:
            module = load_handler("streamscore.handlers.score", environment)
            settings = load_settings(ScoreSettings, environment)
            built.append(Wired(module, settings, moto_clients("dynamodb", "events", "s3")))
        return built[0]

    sample = json.loads((ROOT / "events" / "score_features.json").read_text())["Records"]
    import base64  # noqa: PLC0415

    docs = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in sample]
    docs = [d for d in docs if d["feature_schema"] == "card-v1"]

    def run(first: int) -> dict[str, Any]:
        batch = [
            docs[i % len(docs)] | {"transaction_id": f"txn-{first + i:05d}"} for i in range(20)
        ]
        entries = [KinesisEntry(d["card_id"], json.dumps(d).encode()) for d in batch]
        event = kinesis_event(entries, local_stack.streams["FeaturesStream"], SHARD, first)
        return dict(app().lambda_handler(event, FakeLambdaContext()))

    return run


def versions_by_transaction(stack: LocalStack) -> Mapping[str, str]:
    return {
        t: p["model_version"]
        for t, p in stack.items_by("PredictionsTable", "transaction_id").items()
    }


def test_a_champion_serves_from_the_next_batch_and_a_rollback_likewise(
    score: Callable[[int], dict[str, Any]],
    registry: Registry,
    local_stack: LocalStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: no pointer, the shipped model serves
    assert score(0) == {"batchItemFailures": []}

    # when: a champion is published, then rolled back
    registry.publish(renamed_model(tmp_path, "cardfraud-gbdt-next"), role="champion")
    assert score(20) == {"batchItemFailures": []}
    registry.rollback()
    assert score(40) == {"batchItemFailures": []}

    # then: every transaction has one prediction, by the version serving its batch
    versions = versions_by_transaction(local_stack)
    assert len(versions) == 60
    assert {versions[f"txn-{i:05d}"] for i in range(20)} == {SHIPPED}
    assert {versions[f"txn-{i:05d}"] for i in range(20, 40)} == {"cardfraud-gbdt-next"}
    assert {versions[f"txn-{i:05d}"] for i in range(40, 60)} == {SHIPPED}
    out = capsys.readouterr().out
    assert emitted_metrics(out)["ModelSwapped"] == 2
    swaps = [line for line in log_lines(out) if line["message"] == "model swapped"]
    # the rollback of the first champion returns to the shipped model (no registry version)
    assert [(s.get("version"), s["detail"]) for s in swaps] == [
        ("cardfraud-gbdt-next", "replaces the shipped model"),
        (None, "replaces cardfraud-gbdt-next"),
    ]


def test_a_version_that_fails_a_check_never_serves_and_no_batch_fails(
    score: Callable[[int], dict[str, Any]],
    registry: Registry,
    local_stack: LocalStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a champion whose card expects other scores than its model gives (as a substituted
    # model.onnx would), then one whose model.onnx was altered in the bucket after publishing
    vectors = json.loads((MODEL_DIR / "model_card.json").read_text())["test_vectors"]
    wrong = vectors | {"expected_scores": [min(1.0, s + 0.01) for s in vectors["expected_scores"]]}
    registry.publish(
        renamed_model(tmp_path, "cardfraud-gbdt-wrong", test_vectors=wrong), "champion"
    )

    # when
    first = score(0)
    second = score(20)  # refused once: not tried again until the pointer changes
    registry.publish(renamed_model(tmp_path, "cardfraud-gbdt-altered"), role="champion")
    registry.versions.client.put_object(
        Bucket=BUCKET, Key="models/cardfraud-gbdt-altered/model.onnx", Body=b"not a model"
    )
    third = score(40)

    # then: the shipped model served every batch, and each refusal said why
    assert first == second == third == {"batchItemFailures": []}
    assert set(versions_by_transaction(local_stack).values()) == {SHIPPED}
    out = capsys.readouterr().out
    assert emitted_metrics(out)["ModelRefused"] == 2
    refusals = [line for line in log_lines(out) if line["message"] == "model refused"]
    assert [r["version"] for r in refusals] == ["cardfraud-gbdt-wrong", "cardfraud-gbdt-altered"]
    assert "test vector scores" in refusals[0]["detail"]
    assert "model.onnx has 11 bytes" in refusals[1]["detail"]
    assert all(r["level"] == "ERROR" for r in refusals)


def test_a_pointer_to_a_model_of_another_feature_schema_is_refused(
    score: Callable[[int], dict[str, Any]],
    registry: Registry,
    local_stack: LocalStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.publish(renamed_model(tmp_path, "other-schema", feature_schema="card-v2"), "champion")

    assert score(0) == {"batchItemFailures": []}

    assert set(versions_by_transaction(local_stack).values()) == {SHIPPED}
    (refusal,) = [
        line for line in log_lines(capsys.readouterr().out) if line["message"] == "model refused"
    ]
    assert "feature schema 'card-v2'" in refusal["detail"]


def shadow_counts(stack: LocalStack) -> dict[str, int]:
    """Shadow predictions counted per `<challenger>@<champion>`, from the SHAD count items."""
    totals: dict[str, int] = {}
    for item in stack.items_by("MonitoringTable", "pk").values():
        if item.get("kind") == "SHAD":
            pair = f"{item['model_version']}@{item['paired_with']}"
            totals[pair] = totals.get(pair, 0) + int(item["n"])
    return totals


def test_a_challenger_is_scored_in_shadow_then_promoted_and_a_replay_counts_it_once(
    score: Callable[[int], dict[str, Any]],
    registry: Registry,
    local_stack: LocalStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a challenger beside the shipped model
    registry.publish(renamed_model(tmp_path, "cardfraud-gbdt-challenger"), role="challenger")

    # when: a batch in shadow, the challenger promoted, a batch, then the first batch replayed
    assert score(0) == {"batchItemFailures": []}
    registry.promote()
    assert score(20) == {"batchItemFailures": []}
    assert score(0) == {"batchItemFailures": []}

    # then: the shadow batch carries the challenger's fields; its replay was decided again by
    # the new champion (a prediction of another version), and its shadow counted only once
    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    assert len(predictions) == 40
    assert {p["model_version"] for p in predictions.values()} == {"cardfraud-gbdt-challenger"}
    replayed = predictions["txn-00000"]
    assert "challenger_version" not in replayed  # no challenger now
    assert replayed["shadow_versions"] == ["cardfraud-gbdt-challenger"]  # counted before
    assert shadow_counts(local_stack) == {f"cardfraud-gbdt-challenger@{SHIPPED}": 20}
    out = capsys.readouterr().out
    metrics = emitted_metrics(out)
    assert metrics["ShadowScored"] == 20 and "ShadowFailed" not in metrics
    swaps = [line for line in log_lines(out) if line["message"] == "model swapped"]
    assert [(s["version"], s["role"]) for s in swaps] == [
        ("cardfraud-gbdt-challenger", "challenger"),
        ("cardfraud-gbdt-challenger", "champion"),
    ]


def test_the_drift_check_compares_each_version_with_its_own_baseline_and_the_challenger_beside(
    score: Callable[[int], dict[str, Any]],
    registry: Registry,
    local_stack: LocalStack,
    load_handler: Any,
    tmp_path: Path,
) -> None:
    # given: the shipped model with a challenger in shadow, then the challenger promoted
    challenger = "cardfraud-gbdt-shadowed"
    registry.publish(renamed_model(tmp_path, challenger), role="challenger")
    assert score(0) == {"batchItemFailures": []}
    registry.promote()
    assert score(20) == {"batchItemFailures": []}

    # when: the drift check runs over the sample events' day
    environment = local_stack.function_environment(
        "DriftCheckFunction",
        {"MODEL_DIR": str(MODEL_DIR), "ARTIFACTS_BUCKET": BUCKET, "EVENT_BUS_NAME": "hot-swap-bus"},
    )
    app = wire(load_handler("streamscore.handlers.drift_check", environment), environment)
    window = {"window": {"start": "2026-03-06T12:00:00+00:00", "end": "2026-03-08T12:00:00+00:00"}}
    result = app.lambda_handler(window, FakeLambdaContext())

    # then: the verdict is the champion's (the promoted version, against its own baseline); the
    # shipped model's predictions are compared with its baseline; the challenger is shown beside
    # the champion it was scored with: the same model, so every decision and rank agrees
    key = result["report_uri"].split(f"s3://{BUCKET}/", 1)[1]
    body = registry.versions.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    report = json.loads(body)
    assert report["model_version"] == challenger and report["sample"]["n"] == 20
    shipped = report["other_versions"][SHIPPED]
    assert shipped["n"] == 20 and shipped["status"] == "insufficient_data"
    (beside,) = report["shadow"]
    assert (beside["challenger"], beside["champion"], beside["n"]) == (challenger, SHIPPED, 20)
    assert beside["agreement"] == 1.0 and beside["disagreements"] == {}
    assert beside["rank_correlation"] == pytest.approx(1.0)
    assert beside["decision_rates"]["champion"] == beside["decision_rates"]["challenger"]
    assert beside["drift"]["status"] == "insufficient_data"  # 20 rows: too few for a verdict


def test_the_review_only_switch_reviews_the_champions_declines_from_the_next_batch(
    score: Callable[[int], dict[str, Any]],
    registry: Registry,
    local_stack: LocalStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a batch decided as usual, then the guard's switch on
    assert score(0) == {"batchItemFailures": []}
    registry.review_only(True)

    # when
    assert score(20) == {"batchItemFailures": []}

    # then: the second batch declines nothing; what it would have declined is reviewed, marked
    predictions = local_stack.items_by("PredictionsTable", "transaction_id")
    first = [predictions[f"txn-{i:05d}"] for i in range(20)]
    second = [predictions[f"txn-{i:05d}"] for i in range(20, 40)]
    declined = sum(1 for p in first if p["decision"] == "decline")
    assert declined > 0  # the sample features hold declines (else this test proves nothing)
    assert not any(p["decision"] == "decline" for p in second)
    assert sum(1 for p in second if p.get("guard") == "review_only") == declined
    out = capsys.readouterr().out
    metrics = emitted_metrics(out)
    assert metrics["DecisionsCapped"] == declined and metrics["ReviewOnlySwitched"] == 1
    assert metrics["ExpectedDeclines"] > 0  # the card's rates, for the alarm


def test_a_pointer_to_a_version_missing_from_the_bucket_is_refused_and_the_model_keeps_serving(
    score: Callable[[int], dict[str, Any]],
    registry: Registry,
    local_stack: LocalStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a pointer written past the command line (which refuses it), naming no version there
    registry.pointer.write(Pointer(champion="cardfraud-gbdt-ghost", revision=1), 0)

    # when
    assert score(0) == {"batchItemFailures": []}

    # then
    assert set(versions_by_transaction(local_stack).values()) == {SHIPPED}
    out = capsys.readouterr().out
    assert emitted_metrics(out)["ModelRefused"] == 1
    (refusal,) = [line for line in log_lines(out) if line["message"] == "model refused"]
    assert "cardfraud-gbdt-ghost is not in the registry" in refusal["detail"]
