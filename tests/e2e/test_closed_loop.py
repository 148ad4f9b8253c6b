"""`python -m local run --closed-loop` end to end, in simulated time, with shortened waits.

The real handlers, the real RetrainStartFunction and Step Functions on moto, the build's command
line as the buildspec expands it; the build's training itself is stood in for by a candidate that
is the shipped model under another version (a real retrain needs weeks of simulated traffic: the
README's closed-loop figures come from the full run). What the test holds the loop to:

- the drift is found at the first midnight after it starts, one run waits, later triggers join it;
- the build runs at the first midnight at or after the run's `retrain_at`, with the buildspec's
  options and the simulated cut-off, and sees no label from after it;
- the challenger is scored in shadow, the promotion check decides on it in simulated time, the
  new champion serves from the next day, and the next drift check compares against it;
- the run balances: every record scored or quarantined once, no duplicate prediction.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from embedded import closed_loop
from embedded.cli import main
from lifecycle.registry import Registry
from lifecycle.retrain_command import publish_candidate
from support.model_dirs import renamed_model

CANDIDATE = "cardfraud-gbdt-retrained"
SHORT_WAITS = {
    "RetrainPostTriggerDays": "1",
    "RetrainMaturityDays": "2",
    # a week of evidence would need weeks of traffic: a day, a few frauds, a wide tolerance
    "PromotionMinHours": "24",
    "PromotionMinLabelled": "20",
    "PromotionMinFrauds": "1",
    "PromotionMaxDays": "6",
    "PromotionRecallTolerance": "0.5",
}


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.slow
def test_the_loop_finds_the_drift_waits_retrains_shadows_and_promotes_in_simulated_time(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    builds: list[dict[str, Any]] = []
    candidate = renamed_model(tmp_path, CANDIDATE)

    def build(
        args: argparse.Namespace,
        client: Callable[[str], Any],
        names: dict[str, str],
        parameters: dict[str, str],
        say: Callable[[str], None],
    ) -> tuple[int, dict[str, Any]]:
        """The build's command: its options recorded, the labels it could read, a candidate."""
        cutoff = _moment(args.cutoff)
        labels = client("dynamodb").scan(TableName=names["labels"])["Items"]
        registry = Registry.of(client("s3"), client("dynamodb"), names["bucket"], names["table"])
        published = publish_candidate(registry, candidate, "promote", False, cutoff)
        builds.append(
            {
                "args": vars(args),
                "latest_label": max(_moment(x["labelled_at"]["S"]) for x in labels),
                "labels": len(labels),
            }
        )
        report = {"verdict": "promote", "why": "stand-in", "published": published}
        return 0, report | {"candidate": {"model_version": CANDIDATE}}

    monkeypatch.setattr(closed_loop, "run_retrain", build)
    out, summary_file = tmp_path / "out", tmp_path / "summary.json"
    parameters = [a for k, v in SHORT_WAITS.items() for a in ("--parameter", f"{k}={v}")]

    # when
    code = main(
        [
            "run", "--scenario", "channel-shift", "--closed-loop", "--days", "16",
            "--transactions", "16000", "--out", str(out), "--json", str(summary_file),
            *parameters,
        ]
    )  # fmt: skip

    # then: the run balances
    summary = json.loads(summary_file.read_text())
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    counts = summary["counts"]
    assert counts["scored"] + counts["quarantined"] == counts["in"]
    assert counts["duplicate_predictions"] == counts["failed"] == 0
    loop = summary["closed_loop"]
    assert loop["errors"] == []
    # the drift is found at the first midnight after it starts
    drift_from = _moment(loop["drift_from"])
    found = next(e for e in loop["timeline"] if e["what"].startswith("drift against"))
    assert _moment(found["at"]) == drift_from + timedelta(days=1)
    # one run, waiting the shortened rule: trigger + 1 + 2 days; later triggers joined it, and
    # the next run started only once it had ended
    run, *later = sorted(loop["runs"].values(), key=lambda r: r["started_on"])
    trigger = _moment(run["trigger_time"])
    assert trigger == drift_from + timedelta(days=1)
    assert _moment(run["retrain_at"]) == trigger + timedelta(days=3)
    assert run.get("joined", 0) >= 1
    assert all(r["started_on"] > run["retrained_on"] for r in later)
    # the build ran at the first midnight at or after retrain_at, with the buildspec's options
    built = builds[0]
    args = built["args"]
    assert args["cutoff"] == run["retrain_at"] and run["retrained_on"] == run["retrain_at"][:10]
    assert args["trigger_time"] == run["trigger_time"] and args["simulated_time"]
    assert (args["post_trigger_days"], args["maturity_days"]) == (1.0, 2.0)
    assert args["pr_auc_margin"] == 0.02  # RetrainPrAucMargin's default
    assert args["decline_sample_share"] == closed_loop.LOOP_DECLINE_SAMPLE_SHARE
    # it saw labels, none received after its cut-off
    assert built["labels"] > 0 and built["latest_label"] <= _moment(args["cutoff"])
    # the challenger in shadow, then promoted by the promotion check
    assert loop["decisions"], (loop["promotion_checks"], loop["timeline"])
    (decision,) = loop["decisions"]
    assert decision["verdict"] == "promote"
    assert decision["decision_id"].startswith(f"{CANDIDATE}@")
    assert decision["events_sent"] == ["ModelPromoted"]
    assert decision["day"] >= (_moment(run["retrain_at"]) + timedelta(hours=24)).date().isoformat()
    # served by the new champion from the next day; the next drift check compares against it
    periods = loop["quality"]["periods"]
    assert f"after promotion: {CANDIDATE}" in periods
    assert not any(k.startswith("after promotion:") and CANDIDATE not in k for k in periods)
    assert loop["drift_after_promotion"]["model_version"] == CANDIDATE
    assert Path(loop["picture"]).read_bytes().startswith(b"\x89PNG")
    assert "Closed loop" in printed.out
