"""The model registry on moto: publishing what `make model` writes, the pointer's compare and set,
a download that refuses altered files, and `python -m models` end to end."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from lifecycle.cli import main as cli
from lifecycle.registry import Registry
from streamscore.aws.drift_stores import RegistryBaselines
from streamscore.aws.registry import POINTER_KEY, DynamoModelPointer, S3ModelVersions
from streamscore.core.registry import Pointer, RegistryError
from streamscore.scoring.model import load_model
from support.aws_stack import LocalStack

ARTIFACTS = Path(__file__).resolve().parents[2] / "models" / "artifacts"
BUCKET = "registry-test-artifacts"


@pytest.fixture
def registry(local_stack: LocalStack) -> Iterator[Registry]:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    table = local_stack.resource_name("MonitoringTable")
    yield Registry.of(s3, boto3.client("dynamodb", region_name="us-east-1"), BUCKET, table)


def version_of(directory: Path) -> str:
    return str(json.loads((directory / "model_card.json").read_text())["model_version"])


def second_model(tmp_path: Path) -> Path:
    """The committed model under another version (the card says so; enough for the registry)."""
    directory = tmp_path / "second"
    shutil.copytree(ARTIFACTS, directory)
    card = json.loads((directory / "model_card.json").read_text())
    card["model_version"] = "cardfraud-gbdt-second"
    (directory / "model_card.json").write_text(json.dumps(card))
    return directory


def test_a_published_version_downloads_checked_and_loads(
    registry: Registry, tmp_path: Path
) -> None:
    # given
    version, written, pointer = registry.publish(ARTIFACTS, role="champion")

    # when
    downloaded = registry.versions.download(version, tmp_path / "served")

    # then: every file of the version, byte for byte, a model the score function loads
    assert written and pointer.champion == version == version_of(ARTIFACTS)
    for name in ("model.onnx", "model_card.json", "baseline.json"):
        assert (downloaded / name).read_bytes() == (ARTIFACTS / name).read_bytes()
    assert load_model(downloaded).model_version == version


def test_publishing_again_writes_nothing_and_other_files_under_a_version_are_refused(
    registry: Registry, tmp_path: Path
) -> None:
    registry.publish(ARTIFACTS)
    assert registry.publish(ARTIFACTS)[1] is False

    changed = tmp_path / "changed"
    shutil.copytree(ARTIFACTS, changed)
    (changed / "baseline.json").write_text("{}")
    with pytest.raises(RegistryError, match="in the registry with other files"):
        registry.publish(changed)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda s3, key: s3.put_object(Bucket=BUCKET, Key=key, Body=b"not onnx"), "model.onnx has"),
        (lambda s3, key: s3.delete_object(Bucket=BUCKET, Key=key), "model.onnx is missing"),
    ],
)
def test_an_altered_or_missing_file_is_never_downloaded(
    registry: Registry, tmp_path: Path, damage: Any, reason: str
) -> None:
    version, _, _ = registry.publish(ARTIFACTS)
    damage(registry.versions.client, f"models/{version}/model.onnx")

    with pytest.raises(RegistryError, match=reason):
        registry.versions.download(version, tmp_path / "served")
    assert not (tmp_path / "served").exists()


def test_a_version_not_in_the_registry_cannot_be_pointed_to(registry: Registry) -> None:
    current = registry.pointer.read()
    with pytest.raises(RegistryError, match="not in the registry; publish it first"):
        registry._change(current, current.with_champion("never-published"))
    assert registry.status() == Pointer()


def test_two_changes_from_the_same_read_cannot_both_land(registry: Registry) -> None:
    # given: two operators read revision 1
    registry.publish(ARTIFACTS, role="champion")
    pointer = DynamoModelPointer(registry.pointer.client, registry.pointer.table_name)
    first, second = pointer.read(), pointer.read()

    # when: both write a change
    pointer.write(first.with_challenger(None), first.revision)

    # then: the second is refused, not lost silently
    with pytest.raises(RegistryError, match="the pointer changed since it was read"):
        pointer.write(second.with_challenger(None), second.revision)
    assert pointer.read(consistent=True).revision == 2


def test_the_pointer_is_one_item_of_monitoring_table(registry: Registry) -> None:
    version, _, _ = registry.publish(ARTIFACTS, role="champion")
    client = registry.pointer.client
    key = {"pk": {"S": POINTER_KEY["pk"]}, "sk": {"S": POINTER_KEY["sk"]}}
    item = client.get_item(TableName=registry.pointer.table_name, Key=key)["Item"]

    assert item["champion"] == {"S": version}
    assert item["revision"] == {"N": "1"}
    assert "expires_at" not in item  # the table's TTL never removes it


def test_the_command_line_publishes_promotes_and_rolls_back(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--bucket", BUCKET, "--table", registry.pointer.table_name, "--json"]
    second = second_model(tmp_path)

    def run(*args: str) -> dict[str, Any]:
        assert cli([*args, *where]) == 0
        return dict(json.loads(capsys.readouterr().out))

    first = version_of(ARTIFACTS)
    assert run("publish", str(ARTIFACTS), "--champion")["champion"] == first
    challenged = run("publish", str(second), "--challenger")
    assert (challenged["champion"], challenged["challenger"]) == (first, "cardfraud-gbdt-second")
    promoted = run("promote")
    assert (promoted["champion"], promoted["previous"]) == ("cardfraud-gbdt-second", [first])
    assert run("rollback")["champion"] == first
    assert run("status")["revision"] == 4
    # the decision-rate guard's switch: on, then off, each a pointer change
    assert run("review-only", "on")["review_only"] is True
    assert run("review-only", "off")["review_only"] is False
    assert cli(["review-only", "off", *where]) == 2
    assert "review-only is off already" in capsys.readouterr().err

    # a change that makes no sense: an error on stderr, exit code 2, nothing written
    assert cli(["promote", *where]) == 2
    assert "no challenger to promote" in capsys.readouterr().err
    assert S3ModelVersions(registry.versions.client, BUCKET).read_manifest(first) is not None


def test_the_command_line_finds_bucket_and_table_from_the_stack_outputs(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a stack whose outputs name them, as template.yaml's do
    outputs = {"ArtifactsBucketName": BUCKET, "MonitoringTableName": registry.pointer.table_name}
    body = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    cfn.create_stack(StackName="scoring", TemplateBody=json.dumps(body))

    # when
    code = cli(["publish", str(ARTIFACTS), "--champion", "--stack-name", "scoring", "--json"])

    # then
    assert code == 0
    assert json.loads(capsys.readouterr().out)["champion"] == version_of(ARTIFACTS)
    assert registry.status().champion == version_of(ARTIFACTS)


def test_python_dash_m_models_runs_from_the_repository_root() -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    done = subprocess.run(
        [sys.executable, "-m", "models", "status", "--help"],
        cwd=ARTIFACTS.parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--stack-name" in done.stdout


def test_the_command_line_explains_any_scored_transaction(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a transaction's features and its prediction by the committed model, as stored
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    row = card["test_vectors"]["rows"][-1]  # the highest score of the card's rows
    features = dict(zip(card["feature_names"], row, strict=True))
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    features_table = local_stack.resource_name("FeaturesTable")
    predictions_table = local_stack.resource_name("PredictionsTable")
    dynamodb.Table(features_table).put_item(
        Item=json.loads(
            json.dumps({"transaction_id": "t-1", "features": features}), parse_float=Decimal
        )
    )
    dynamodb.Table(predictions_table).put_item(
        Item={
            "transaction_id": "t-1",
            "model_version": card["model_version"],
            "decision": "decline",
        }
    )
    where = ["--features-table", features_table, "--predictions-table", predictions_table]

    # when
    code = cli(["explain", "t-1", *where, "--json"])

    # then: every feature's contribution, adding up to the score's log-odds
    found = json.loads(capsys.readouterr().out)
    assert code == 0 and found["model_version"] == card["model_version"]
    assert found["score"] == pytest.approx(card["test_vectors"]["expected_scores"][-1], abs=1e-5)
    total = found["expected_log_odds"] + sum(c["contribution"] for c in found["contributions"])
    assert total == pytest.approx(found["log_odds"], abs=1e-5)
    assert 1 / (1 + math.exp(-found["log_odds"])) == pytest.approx(found["score"], abs=1e-5)
    assert len(found["contributions"]) == len(card["feature_names"])
    assert [r["feature"] for r in found["reasons"]] == [
        c["feature"] for c in found["contributions"][: len(found["reasons"])]
    ]
    # a transaction without stored features is an error, not an empty answer
    assert cli(["explain", "t-unknown", *where]) == 2
    assert "no features stored" in capsys.readouterr().err


def test_the_promotion_check_reads_a_versions_decline_share_from_its_card(
    registry: Registry,
) -> None:
    version, _, _ = registry.publish(ARTIFACTS)
    card = json.loads((ARTIFACTS / "model_card.json").read_text())
    expected = card["metrics"]["test"]["at_thresholds"]["decline"]["flagged_share"]
    cards = RegistryBaselines(registry.versions, registry.pointer)

    assert cards.decline_share(version) == pytest.approx(expected)
    assert 0 < expected < 0.05  # the shipped model declines a few percent of its test slice
    assert cards.decline_share("cardfraud-gbdt-never-published") is None
