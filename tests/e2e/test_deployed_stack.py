"""`python -m local run --stack-name`: the producer and the checks against a deployed stack.

A real deployment cannot be reached here. The checks are run against a stack deployed into
moto, with the emulator playing Lambda, through boto3's usual configuration (endpoint and
credentials from the environment), exactly as they would run against AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from embedded.cli import main
from embedded.containers import FUNCTION_OUTPUT
from embedded.remote import run_against_stack
from embedded.run import RunOptions
from embedded.server import MotoServer
from embedded.stack import EmbeddedStack


@pytest.fixture
def deployed(
    moto_server: MotoServer, moto_environment: None, stack_name: str, tmp_path: Path
) -> Iterator[EmbeddedStack]:
    """A stack in moto with the emulator running as Lambda would."""
    with (
        (tmp_path / "functions.log").open("w") as log,
        FUNCTION_OUTPUT.to(log),
        EmbeddedStack(stack_name=stack_name, server=moto_server) as stack,
    ):
        emulator = stack.emulator()
        emulator.start()
        yield stack
        emulator.stop()


def test_the_checks_find_every_record_of_a_deployed_stack_by_key(
    deployed: EmbeddedStack, tmp_path: Path
) -> None:
    options = RunOptions(
        transactions=300, invalid_rate=0.05, seed=3, timeout_s=60, out_dir=tmp_path
    )

    summary = run_against_stack(options, deployed.stack_name, None, drift_check=False)

    counts = summary["counts"]
    assert counts["in"] == 300 + counts["invalid_sent"]
    assert (counts["scored"], counts["quarantined"]) == (300, counts["invalid_sent"])
    assert (counts["not_seen"], counts["unaccounted"]) == (0, 0)
    assert summary["retraining_requests"] is None  # the queues are not read, only measured
    assert summary["failure_queue_depth"] == 0
    assert summary["quality"]["labelled"] == 300


def test_a_missing_stack_is_named(
    deployed: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--stack-name", "not-deployed", "--transactions", "10"])

    assert code == 2
    assert "stack not-deployed" in capsys.readouterr().err


def test_without_credentials_the_stack_mode_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = main(["run", "--stack-name", "prod", "--region", "eu-west-1"])

    assert code == 2
    err = capsys.readouterr().err
    assert "no AWS credentials found for --stack-name" in err
    assert "leave --stack-name out" in err
