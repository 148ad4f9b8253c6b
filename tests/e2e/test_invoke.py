"""`python -m local invoke FUNCTION --event FILE` with every sample event in events/.

Each invocation deploys a fresh embedded stack and runs the real handler in-process, as
`sam local invoke` does in Docker; the response is printed on stdout, the logs go to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedded.cli import main

EVENTS = Path(__file__).resolve().parents[2] / "events"
FUNCTION_OF_EVENT = {
    "preprocess_transactions.json": "PreprocessFunction",
    "preprocess_aggregated.json": "PreprocessFunction",
    "score_features.json": "ScoreFunction",
    "labels.json": "LabelsFunction",
    "drift_check_scheduled.json": "DriftCheckFunction",
    "drift_check_window.json": "drift-check",  # the name without the stack prefix works too
    "promotion_check.json": "DriftCheckFunction",
    "retraining_requested.json": "RetrainStartFunction",
}


def test_every_sample_event_has_a_function() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == set(FUNCTION_OF_EVENT)


@pytest.mark.parametrize("event_file", sorted(FUNCTION_OF_EVENT))
def test_invoke_prints_the_handler_response(
    event_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["invoke", FUNCTION_OF_EVENT[event_file], "--event", str(EVENTS / event_file)])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    response = json.loads(captured.out)
    if event_file == "promotion_check.json":
        assert response["status"] == "no_challenger"  # a fresh stack's pointer names none
    elif event_file == "retraining_requested.json":
        # one run of the runner, waiting until the window's end + 14 + 35 days
        assert response["started"] == "running"
        assert response["retrain_at"] == "2026-04-22T12:00:00Z"
    elif event_file.startswith("drift_check"):
        # the sample window (March 2026) holds no data in a fresh stack
        assert response["status"] == "insufficient_data"
        assert response["retraining"] == "not_drift"
        assert response["report_uri"].startswith("s3://")
    else:
        # every sample batch holds invalid records: they are quarantined, never retried
        assert response == {"batchItemFailures": []}
    assert "cold start" in captured.err  # the handler's report line


def test_invoke_of_an_unknown_function_lists_the_functions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["invoke", "Nope", "--event", str(EVENTS / "score_features.json")])

    assert code == 2
    err = capsys.readouterr().err
    assert "no function Nope" in err
    assert "PreprocessFunction" in err and "DriftCheckFunction" in err


def test_invoke_of_a_handler_that_raises_prints_the_error_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: an event the score handler cannot parse (a record without its kinesis part)
    event = tmp_path / "broken.json"
    event.write_text(json.dumps({"Records": [{"eventSource": "aws:kinesis"}]}))

    code = main(["invoke", "ScoreFunction", "--event", str(event)])

    captured = capsys.readouterr()
    error = json.loads(captured.out)
    assert code == 1
    assert error["errorType"] == "KeyError"
    assert any("lambda_handler" in line for line in error["stackTrace"])
    assert "ScoreFunction failed: KeyError" in captured.err
