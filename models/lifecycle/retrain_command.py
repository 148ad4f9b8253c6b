"""`python -m models retrain`: the stack's feature log and labels → a candidate, judged against the
champion, published as the challenger when it passes; the report (JSON and PNG) beside it.

Re-running it for the same window and seed trains the same model (the same version, the same
files): the registry keeps it once and the pointer is not changed again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lifecycle.registry import Registry
from lifecycle.retrain import RetrainPolicy, TooEarlyError, plan, retrain
from lifecycle.retrain_plot import draw_retrain
from lifecycle.sources import champion, last_trigger, read_feature_log, read_labels
from training.artifacts import dump_json
from training.pipeline import write_artifacts

REPORTS = "reports/retrain/"
NOT_YET = 3  # the exit status of a refusal by the waiting rule

_DEFAULTS = RetrainPolicy()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels-table", help="LabelsTable's name (instead of --stack-name)")
    parser.add_argument(
        "--cutoff",
        help="what the retrain may know: ISO time (default now); data end maturity before",
    )
    parser.add_argument(
        "--trigger-time",
        help="the drift the retrain answers (ISO time; default: the champion's last retraining "
        "trigger); the waiting rule counts from it",
    )
    parser.add_argument("--ignore-trigger", action="store_true", help="no waiting rule")
    parser.add_argument("--window-days", type=float, default=_DEFAULTS.window_days)
    parser.add_argument("--validation-days", type=float, default=_DEFAULTS.validation_days)
    parser.add_argument("--evaluation-days", type=float, default=_DEFAULTS.evaluation_days)
    parser.add_argument("--maturity-days", type=float, default=_DEFAULTS.maturity_days)
    parser.add_argument("--post-trigger-days", type=float, default=_DEFAULTS.post_trigger_days)
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument(
        "--pr-auc-margin",
        type=float,
        default=_DEFAULTS.gate.pr_auc_margin,
        help="the gate's PR-AUC margin: 0 (default) asks for a better candidate, 0.02 for one "
        "not worse by more than 0.02 (the in-stack runner's RetrainPrAucMargin)",
    )
    parser.add_argument(
        "--decline-sample-share",
        type=float,
        help="DeclineSampleShare while the window was scored (default: the stack's parameter)",
    )
    parser.add_argument(
        "--simulated-time",
        action="store_true",
        help="a simulated run: transactions scored when they happened, labels received when labelled",
    )
    parser.add_argument("--out", type=Path, default=Path("out/retrain"), help="report directory")
    parser.add_argument("--dry-run", action="store_true", help="judge, publish nothing")


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def policy_of(args: argparse.Namespace) -> RetrainPolicy:
    return RetrainPolicy(
        window_days=args.window_days,
        validation_days=args.validation_days,
        evaluation_days=args.evaluation_days,
        maturity_days=args.maturity_days,
        post_trigger_days=args.post_trigger_days,
        seed=args.seed,
        gate=dataclasses.replace(_DEFAULTS.gate, pr_auc_margin=args.pr_auc_margin),
    )


def run_retrain(
    args: argparse.Namespace,
    client: Callable[[str], Any],
    names: dict[str, str],
    stack_parameters: dict[str, str],
    say: Callable[[str], None] = print,
) -> tuple[int, dict[str, Any]]:
    """The command on `names` (bucket, table, labels): (exit status, report)."""
    s3, dynamodb = client("s3"), client("dynamodb")
    registry = Registry.of(s3, dynamodb, names["bucket"], names["table"])
    pointer = registry.status()
    policy = policy_of(args)
    cutoff = _moment(args.cutoff) or datetime.now(UTC)
    with tempfile.TemporaryDirectory() as work:
        served = champion(registry.versions, pointer, Path(work))
    trigger = None
    if not args.ignore_trigger:
        trigger = _moment(args.trigger_time)
        if trigger is None and not args.simulated_time:
            trigger = last_trigger(dynamodb, names["table"], served.version)
    try:
        window = plan(cutoff, policy, trigger)
    except TooEarlyError as refusal:
        say(f"not yet: {refusal}")
        return NOT_YET, {"verdict": "not_yet", "why": str(refusal)}
    # the log is partitioned by the date a transaction was scored; a simulated run scored weeks
    # of event time today, so it reads every partition to today (the window is by event time)
    first, last = window.start.date(), cutoff.date()
    if args.simulated_time:
        first, last = date(2000, 1, 1), max(last, datetime.now(UTC).date())
    rows, log_counts = read_feature_log(s3, names["bucket"], first, last, args.simulated_time, say)
    labels = read_labels(dynamodb, names["labels"], args.simulated_time)
    share = args.decline_sample_share
    if share is None:
        share = float(stack_parameters.get("DeclineSampleShare", "0") or 0)
    say(
        f"window {window.start:%Y-%m-%d} to {window.end:%Y-%m-%d} (cut-off {cutoff:%Y-%m-%d %H:%M}, "
        f"maturity {policy.maturity_days:g} days): {len(rows):,} logged transactions, "
        f"{len(labels):,} labels; champion {served.version}"
    )
    result = retrain(rows, labels, served, window, policy, share)
    report = result.report | {"feature_log": log_counts, "trigger": trigger and trigger.isoformat()}
    args.out.mkdir(parents=True, exist_ok=True)
    name = result.candidate.model_version if result.candidate else f"{window.end:%Y%m%dT%H%M%SZ}"
    if result.candidate is not None:
        model_dir = args.out / result.candidate.model_version
        model_dir.mkdir(exist_ok=True)
        write_artifacts(result.candidate, model_dir)
        report["published"] = publish_candidate(
            registry, model_dir, result.verdict, args.dry_run, cutoff
        )
    files = {"report.json": dump_json(report)}
    if "gate" in report:
        files["report.png"] = draw_retrain(report)
    for file_name, body in files.items():
        (args.out / f"{name}-{file_name}").write_bytes(body)
        s3.put_object(Bucket=names["bucket"], Key=f"{REPORTS}{name}/{file_name}", Body=body)
    say(f"verdict {report['verdict']}: {report['why']}")
    say(f"report s3://{names['bucket']}/{REPORTS}{name}/report.json and {args.out}/{name}-*")
    return 0, report


def publish_candidate(
    registry: Registry, directory: Path, verdict: str, dry_run: bool, now: datetime
) -> dict[str, Any]:
    """Name a passing candidate the challenger (in shadow from `now`: the cut-off, which is the
    clock's time unless the run is simulated)."""
    if verdict != "promote":
        return {"published": False, "why": "the gate did not pass it"}
    if dry_run:
        return {"published": False, "why": "--dry-run"}
    current = registry.status()
    version = json.loads((directory / "model_card.json").read_text())["model_version"]
    if version in (current.champion, current.challenger):
        return {"published": False, "why": f"{version} is already the {_role(current, version)}"}
    if current.challenger is not None:
        # another retrain's challenger is being judged: replacing it would restart its time in
        # shadow, and a retrain a day would keep any challenger from ever being promoted
        return {
            "published": False,
            "why": f"{current.challenger} is in shadow (since {current.challenger_since}): the "
            "promotion check decides on it first",
        }
    _, written, pointer = registry.publish(directory, "challenger", now)
    return {"published": True, "files_written": written, "revision": pointer.revision}


def _role(pointer: Any, version: str) -> str:
    return "champion" if pointer.champion == version else "challenger"
