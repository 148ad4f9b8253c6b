"""`python -m local`: run the pipeline locally, invoke one function, or smoke-test a deployed stack.

    python -m local run [--transactions N] [--scenario S] [--invalid-rate R] [--seed N]
                        [--input FILE] [--aggregate N] [--json FILE] [--rate N]
                        [--parameter KEY=VALUE ...]
                        [--outage FUNCTION=SECONDS ...] [--redrive] [--replay [--replay-batch-size N]]
                        [--challenger DIR [--promote-at PERCENT]] [--days N] [--retrain]
    python -m local run --stack-name NAME [--region R] [--smoke] ...  (a deployed stack, real credentials)
    python -m local redrive --stack-name NAME [--region R] [--dry-run] [--delete-lost] [--json FILE]
    python -m local resend-events --stack-name NAME [--region R] [--dry-run]
                                  [--delete-missed-checks] [--json FILE]
    python -m local invoke FUNCTION --event FILE [--parameter KEY=VALUE ...]

Exit status: 0 when the run balances (in = scored + quarantined, nothing failed, no duplicate
prediction, the drift check ran; a re-drive left nothing behind, a replay changed nothing),
1 when it finished but did not, 2 when it could not run. `redrive`: 0 when every range in
FailureQueue was re-driven whole, 1 when some were kept (still failing) or records were lost.
`resend-events`: 0 when EventsDeadLetterQueue was emptied (every event re-sent), 1 when
messages are left (refused events, missed drift checks, messages that are no event).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from embedded.closed_loop import (
    BASELINE_DAYS,
    LOOP_TIMEOUT_S,
    loop_problems,
    render_closed_loop,
)
from embedded.closed_loop import DEFAULT_DAYS as LOOP_DAYS
from embedded.closed_loop import DEFAULT_TRANSACTIONS as LOOP_TRANSACTIONS
from embedded.deploy import StackError, TemplateError
from embedded.producer import SCENARIO_SETTINGS, SIMULATED_DAYS
from embedded.redrive import ATTEMPTS, redrive_deployed, render_redrive
from embedded.remote import render_smoke, run_against_stack
from embedded.replay import replay_problems
from embedded.resend import render_resend, resend_deployed
from embedded.run import (
    DEFAULT_INVALID_RATE,
    DEFAULT_SEED,
    DEFAULT_TRANSACTIONS,
    RunError,
    RunOptions,
    invoke_function,
    run_embedded,
)
from embedded.server import ServerStartError
from embedded.summary import render_summary

EXIT_OK, EXIT_CHECKS_FAILED, EXIT_CANNOT_RUN = 0, 1, 2


def _parameter(text: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE (a template parameter)")
    return key, value


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a share from 0 to 1")
    return value


def _share(text: str) -> float:
    """A share of the run: "50%" or "0.5", more than 0 and at most 1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError("a share of the records: 50% or 0.5 (above 0, at most 1)")
    return value


def _outage(text: str) -> tuple[str, float]:
    name, separator, seconds = text.partition("=")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if not separator or not name or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected FUNCTION=SECONDS (e.g. preprocess=5), seconds above 0"
        )
    return name, value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value >= 3:
        raise argparse.ArgumentTypeError("at least 3 days")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m local",
        description="The streamscore pipeline on embedded AWS (moto): no Docker, no AWS account.",
    )
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="stream traffic through the template's stack and print a summary",
        description=(
            "Start moto on 127.0.0.1, deploy template.yaml into it, run the handlers in-process "
            "behind an emulator of the stack's event-source mappings, stream the traffic, run "
            "the drift check and print a summary. With --stack-name: the producer and the "
            "checks against a deployed stack instead."
        ),
    )
    traffic = run.add_argument_group("traffic")
    traffic.add_argument(
        "--transactions", type=_positive,
        help=f"simulated transactions to stream (default {DEFAULT_TRANSACTIONS:,}; with "
        f"--closed-loop {LOOP_TRANSACTIONS:,})",
    )  # fmt: skip
    traffic.add_argument(
        "--scenario", choices=list(SCENARIO_SETTINGS), default="baseline",
        help="simulated traffic: baseline, or drift that starts after 3/7 of the period (day 4 of 7 "
        "by default)",
    )  # fmt: skip
    traffic.add_argument(
        "--days", type=_positive_float,
        help=f"simulated days the transactions spread over (default {SIMULATED_DAYS:g}; a retrain "
        f"needs weeks: 42; with --closed-loop {LOOP_DAYS:g})",
    )  # fmt: skip
    traffic.add_argument(
        "--invalid-rate", type=_rate, default=DEFAULT_INVALID_RATE,
        help=f"share of transactions preceded by an invalid record (default {DEFAULT_INVALID_RATE})",
    )  # fmt: skip
    traffic.add_argument("--seed", type=int, default=DEFAULT_SEED, help="simulator seed")
    traffic.add_argument(
        "--input", type=Path, metavar="FILE",
        help="stream this file instead: one record payload per line, sent as the line's bytes "
        "(even when not valid JSON); partition key = its card_id when it has one",
    )  # fmt: skip
    traffic.add_argument(
        "--rate", type=float, metavar="N",
        help="records per second (default: as fast as the pipeline takes them)",
    )  # fmt: skip
    traffic.add_argument(
        "--aggregate", type=_positive, default=1, metavar="N",
        help="pack up to N records in one Kinesis record, as the Kinesis Producer Library "
        "aggregates them: records bound for one shard, in order (default 1: plain records)",
    )  # fmt: skip
    output = run.add_argument_group("output")
    output.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON too")
    output.add_argument(
        "--out", type=Path, default=Path("out"),
        help="directory of the drift picture and the functions' log (default out/)",
    )  # fmt: skip
    local = run.add_argument_group("embedded stack")
    _stack_options(local)
    local.add_argument(
        "--timeout", type=float, metavar="SECONDS",
        help="give up when the streams are not drained by then (default 1800; with "
        "--closed-loop 14400)",
    )  # fmt: skip
    recovery = run.add_argument_group("failures and recovery (embedded stack)")
    recovery.add_argument(
        "--outage", type=_outage, action="append", default=[], metavar="FUNCTION=SECONDS",
        help="the function (preprocess, score) reports every record of its batches failed for "
        "SECONDS from its first invocation, as while a dependency is down (repeatable); with the "
        "mapping's retries spent, the batches go to FailureQueue",
    )  # fmt: skip
    recovery.add_argument(
        "--redrive", action="store_true",
        help="once the streams drained, re-drive what landed in FailureQueue (as `python -m local "
        "redrive` does for a deployed stack), drain again, and show it in the summary",
    )  # fmt: skip
    recovery.add_argument(
        "--replay", action="store_true",
        help="then replay both streams from TRIM_HORIZON through a second mapping each, with "
        "another batch size, drain again, and check that the replay changed nothing",
    )  # fmt: skip
    recovery.add_argument(
        "--replay-batch-size", type=_positive, metavar="N",
        help="the replay mappings' batch size (default: about two thirds of each mapping's)",
    )  # fmt: skip
    models = run.add_argument_group("model lifecycle (embedded stack)")
    models.add_argument(
        "--challenger", type=Path, metavar="DIR",
        help="publish the model in DIR (as `make model` writes one) to the registry as the "
        "challenger before the first record: every batch is scored by it too, in shadow",
    )  # fmt: skip
    models.add_argument(
        "--promote-at", type=_share, metavar="PERCENT",
        help="promote the challenger once this share of the records was sent (50%% or 0.5): "
        "the summary shows predictions per version and the time to the first prediction of "
        "the new champion",
    )  # fmt: skip
    models.add_argument(
        "--retrain", action="store_true",
        help="once the labels are in, run `python -m models retrain --simulated-time` against the "
        "embedded stack (its window ends at the simulated period's end; the waiting rule counts "
        "from the scenario's drift start) and show its verdict",
    )  # fmt: skip
    models.add_argument(
        "--closed-loop", action="store_true",
        help="the stack's own loop in simulated time: the traffic a day at a time (the drift "
        f"starts after {BASELINE_DAYS:g} days), and at each midnight the labels received by then, "
        "the drift check, RetrainStartFunction on its RetrainingRequested, the runner's build once "
        "its wait is over, and the promotion check; the summary shows the timeline, the waits "
        "and quality before and after, with a picture",
    )  # fmt: skip
    deployed = run.add_argument_group("a deployed stack (real credentials, no emulator)")
    deployed.add_argument("--stack-name", help="smoke-test this deployed stack instead")
    deployed.add_argument("--region", help="its region (default: your AWS configuration's)")
    deployed.add_argument(
        "--drift-check", action="store_true",
        help="also invoke the deployed DriftCheckFunction over the traffic's checked days",
    )  # fmt: skip
    deployed.add_argument(
        "--smoke", action="store_true",
        help="the post-deploy smoke test: drifted traffic (channel-shift unless --scenario names "
        "another drift), the drift check over it, then pass/fail checks of the records and "
        "latency, an alert on AlertsQueue, the report in S3, a RetrainingRequested on "
        "RetrainingQueue, empty dead-letter queues (queues are peeked, never consumed)",
    )  # fmt: skip

    redrive = commands.add_parser(
        "redrive",
        help="re-drive the Kinesis ranges in a deployed stack's FailureQueue",
        description=(
            "Receive FailureQueue's messages (Lambda's on-failure records of the Kinesis batches "
            "it gave up on), read each recorded range back from its stream, invoke the mapped "
            "function with exactly those records (in batches of the mapping's BatchSize) and "
            "delete a message once its whole range succeeded. Run it once the cause of the "
            "failures is fixed, before the records expire from the stream (StreamRetentionHours). "
            "The embedded stack exists only while `python -m local run` runs: re-drive it with "
            "`python -m local run --redrive`."
        ),
    )
    redrive.add_argument("--stack-name", help="the deployed stack (real credentials)")
    redrive.add_argument("--region", help="its region (default: your AWS configuration's)")
    redrive.add_argument(
        "--attempts", type=_positive, default=ATTEMPTS,
        help=f"tries of a failing range, a backoff apart, before it is kept (default {ATTEMPTS})",
    )  # fmt: skip
    redrive.add_argument(
        "--dry-run", action="store_true",
        help="read the ranges back and report them; invoke nothing, delete nothing",
    )  # fmt: skip
    redrive.add_argument(
        "--delete-lost", action="store_true",
        help="delete the messages of ranges whose records expired from the stream, once the "
        "rest of the range is re-driven (by default they stay, as the record of the loss)",
    )  # fmt: skip
    redrive.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON too")

    resend = commands.add_parser(
        "resend-events",
        help="re-send the events in a deployed stack's EventsDeadLetterQueue to its bus",
        description=(
            "Receive EventsDeadLetterQueue's messages (the events EventBridge rule targets did "
            "not take after their retries), put each event back on the stack's bus with "
            "PutEvents (its rules deliver it again) and delete a message once its event was "
            "accepted; refused ones stay, visible again. Fix the target first: one still failing "
            "dead-letters the event again. Consumers de-duplicate on alert_id / trigger_id, so "
            "an event reaching a target twice is harmless. A missed scheduled drift check is not "
            "re-sent: the report gives the window to invoke DriftCheckFunction with. The embedded "
            "stack exists only while `python -m local run` runs, and its rule targets (moto) do "
            "not fail."
        ),
    )
    resend.add_argument("--stack-name", help="the deployed stack (real credentials)")
    resend.add_argument("--region", help="its region (default: your AWS configuration's)")
    resend.add_argument(
        "--dry-run", action="store_true",
        help="receive and report the dead letters; put nothing, delete nothing",
    )  # fmt: skip
    resend.add_argument(
        "--delete-missed-checks", action="store_true",
        help="delete the dead letters of missed scheduled drift checks (once you invoked the "
        "check over their windows, or decided the later checks cover them)",
    )  # fmt: skip
    resend.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON too")

    invoke = commands.add_parser(
        "invoke",
        help="invoke one function with an event file, like `sam local invoke`",
        description=(
            "Deploy template.yaml into a fresh embedded moto, invoke FUNCTION in-process with the "
            "event, print its response on stdout (its logs go to stderr)."
        ),
    )
    invoke.add_argument(
        "function",
        help="logical id (PreprocessFunction, ScoreFunction, DriftCheckFunction) or short name "
        "(preprocess, score, drift-check)",
    )
    invoke.add_argument("--event", "-e", type=Path, required=True, help="event JSON (see events/)")
    _stack_options(invoke)
    return root


def _stack_options(group: Any) -> None:
    group.add_argument(
        "--parameter", type=_parameter, action="append", default=[], metavar="KEY=VALUE",
        help="template parameter override (repeatable), e.g. PreprocessBatchSize=100",
    )  # fmt: skip
    group.add_argument(
        "--port", type=int, default=0, help="moto's port on 127.0.0.1 (default: a free one)"
    )


def _problems(summary: dict[str, Any]) -> list[str]:
    counts = summary["counts"]
    problems = []
    if counts["unaccounted"]:
        problems.append(
            f"in = scored + quarantined + failed is off by {counts['unaccounted']:,} records"
        )
    if counts["duplicate_predictions"]:
        problems.append(f"{counts['duplicate_predictions']:,} duplicate prediction items")
    if counts["failed"]:
        errors = [
            f"{function} raised {stats['last_error']}"
            for function, stats in summary.get("event_source_mappings", {}).items()
            if stats.get("last_error")
        ]
        problems.append(
            f"{counts['failed']:,} records ended in FailureQueue"
            + (f" ({'; '.join(errors)})" if errors else "")
            + f". The tracebacks are in {summary.get('log', 'the functions log')}; fix the cause "
            "and run again"
        )
    if counts.get("not_seen"):
        problems.append(f"{counts['not_seen']:,} records were neither scored nor quarantined")
    drift = summary.get("drift") or {}
    if drift.get("error"):
        problems.append(f"the drift check failed: {drift['error']}")
    redriven = summary.get("redrive")
    if summary.get("closed_loop"):
        problems += loop_problems(summary["closed_loop"])
    if redriven and (redriven["records_kept"] or redriven["records_lost"]):
        problems.append(
            f"the re-drive kept {redriven['records_kept']:,} records (still failing) and lost "
            f"{redriven['records_lost']:,}"
        )
    if summary.get("replay"):
        problems += replay_problems(summary["replay"])
    for check in (summary.get("smoke") or {}).get("checks", []):
        if not check["passed"]:
            problems.append(f"smoke test: {check['name']} failed: {check['detail']}")
    return problems


def _run(args: argparse.Namespace) -> int:
    loop = args.closed_loop
    options = RunOptions(
        transactions=args.transactions or (LOOP_TRANSACTIONS if loop else DEFAULT_TRANSACTIONS),
        scenario=args.scenario,
        invalid_rate=args.invalid_rate,
        seed=args.seed,
        input_path=args.input,
        rate=args.rate,
        aggregate=args.aggregate,
        parameters=dict(args.parameter),
        port=args.port,
        out_dir=args.out,
        timeout_s=args.timeout or (LOOP_TIMEOUT_S if loop else 1800.0),
        redrive=args.redrive,
        replay=args.replay,
        replay_batch_size=args.replay_batch_size,
        outages=dict(args.outage),
        challenger=args.challenger,
        promote_at=args.promote_at,
        days=args.days or (LOOP_DAYS if loop else SIMULATED_DAYS),
        retrain=args.retrain,
        closed_loop=loop,
    )
    if loop and (args.input or args.retrain or args.challenger):
        raise RunError(
            "--closed-loop streams simulated traffic and retrains and promotes by itself: "
            "leave out --input, --retrain and --challenger"
        )
    if args.promote_at is not None and args.challenger is None:
        raise RunError("--promote-at promotes the challenger: add --challenger DIR")
    if args.replay_batch_size and not args.replay:
        raise RunError("--replay-batch-size is the replay's batch size: add --replay")
    if args.stack_name and args.aggregate > 1:
        raise RunError("--aggregate: embedded stack only (a deployed stack gets plain records)")
    if args.stack_name:
        local_only = [
            name
            for name, given in (
                ("--outage", args.outage),
                ("--redrive", args.redrive),
                ("--replay", args.replay),
                ("--challenger", args.challenger),
                ("--retrain", args.retrain),
                ("--closed-loop", args.closed_loop),
            )
            if given
        ]
        if local_only:
            raise RunError(
                f"{', '.join(local_only)}: embedded stack only; for a deployed stack's "
                "FailureQueue run `python -m local redrive --stack-name NAME`, for its registry "
                "`python -m models publish|promote --stack-name NAME`"
            )
        summary = run_against_stack(
            options, args.stack_name, args.region, args.drift_check, smoke=args.smoke
        )
    elif args.smoke:
        raise RunError("--smoke tests a deployed stack: give its --stack-name")
    else:
        summary = run_embedded(options)
    print(render_summary(summary))
    if summary.get("closed_loop"):
        print("\n".join([*render_closed_loop(summary["closed_loop"]), ""]))
    if summary.get("smoke"):
        print("\n".join([*render_smoke(summary["smoke"]), ""]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"summary written to {args.json}")
    problems = _problems(summary)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return EXIT_CHECKS_FAILED if problems else EXIT_OK


def _invoke(args: argparse.Namespace) -> int:
    try:
        event = json.loads(args.event.read_text(encoding="utf-8"))
    except OSError as error:
        raise RunError(f"cannot read the event {args.event}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise RunError(f"the event {args.event} is not JSON: {error}") from None
    try:
        _container, invocation = invoke_function(
            args.function, event, dict(args.parameter), args.port
        )
    except KeyError as error:
        raise RunError(str(error.args[0])) from None
    name = args.function  # as the user named it; CloudFormation generates the deployed name
    if invocation.error is not None:
        print(json.dumps(invocation.error.payload(), indent=2))
        print(
            f"{name} failed: {invocation.error}. The traceback is above (stackTrace); the "
            "handler's logs are on stderr.",
            file=sys.stderr,
        )
        return EXIT_CHECKS_FAILED
    print(json.dumps(invocation.response, indent=2, default=str))
    print(
        f"{name}: {invocation.duration_s * 1000:.0f} ms"
        + (
            f" (cold start {invocation.init_duration_s * 1000:.0f} ms)"
            if invocation.init_duration_s
            else ""
        ),
        file=sys.stderr,
    )
    return EXIT_OK


def _redrive(args: argparse.Namespace) -> int:
    if not args.stack_name:
        raise RunError(
            "the embedded stack exists only while `python -m local run` runs: re-drive it with "
            "`python -m local run --redrive`; for a deployed stack, give --stack-name"
        )
    try:
        report = redrive_deployed(
            args.stack_name,
            args.region,
            attempts=args.attempts,
            dry_run=args.dry_run,
            delete_lost=args.delete_lost,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (ClientError, BotoCoreError) as error:
        raise RunError(
            f"the re-drive of {args.stack_name} stopped: {error}. Nothing is lost: a message "
            "not yet deleted is re-driven by the next run (re-driving twice changes nothing)"
        ) from None
    section = report.as_dict()
    print("\n".join(["", *render_redrive(section), ""]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(section, indent=2) + "\n", encoding="utf-8")
        print(f"report written to {args.json}")
    return EXIT_OK if report.ok else EXIT_CHECKS_FAILED


def _resend_events(args: argparse.Namespace) -> int:
    if not args.stack_name:
        raise RunError(
            "the embedded stack exists only while `python -m local run` runs, and its rule "
            "targets (moto's) take every event: its EventsDeadLetterQueue stays empty; for a "
            "deployed stack, give --stack-name"
        )
    try:
        report = resend_deployed(
            args.stack_name,
            args.region,
            dry_run=args.dry_run,
            delete_missed_checks=args.delete_missed_checks,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (ClientError, BotoCoreError) as error:
        raise RunError(
            f"the re-send of {args.stack_name}'s dead letters stopped: {error}. Nothing is lost: "
            "a message not yet deleted is visible again after its visibility timeout and is "
            "re-sent by the next run (consumers de-duplicate an event sent twice)"
        ) from None
    section = report.as_dict()
    print("\n".join(["", *render_resend(section), ""]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(section, indent=2) + "\n", encoding="utf-8")
        print(f"report written to {args.json}")
    return EXIT_OK if report.ok else EXIT_CHECKS_FAILED


COMMANDS = {
    "run": _run,
    "invoke": _invoke,
    "redrive": _redrive,
    "resend-events": _resend_events,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (RunError, ServerStartError, TemplateError, StackError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
