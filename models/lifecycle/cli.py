"""`python -m models publish|promote|rollback|drop-challenger|review-only|status|explain|retrain` against a stack.

The stack is named by `--stack-name` (its outputs give the artifacts bucket and MonitoringTable)
or by `--bucket` and `--table`; the user's own credentials and region are used (the policy they
need is in the README, "Model lifecycle"). `--endpoint-url` points the clients elsewhere (a
moto server, for trying it out).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3

from lifecycle.explain import describe as describe_reasons
from lifecycle.explain import explain
from lifecycle.registry import Registry
from lifecycle.retrain_command import add_arguments as add_retrain_arguments
from lifecycle.retrain_command import run_retrain
from streamscore.aws.retry import client_config
from streamscore.core.errors import SystemicError
from streamscore.core.registry import Pointer, RegistryError

OUTPUTS = {"bucket": "ArtifactsBucketName", "table": "MonitoringTableName"}
# read only by `explain`
TABLE_OUTPUTS = {"features": "FeaturesTableName", "predictions": "PredictionsTableName"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__.splitlines()[0])
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--stack-name", help="the deployed stack (its outputs name bucket and table)"
    )
    where.add_argument("--bucket", help="the artifacts bucket (instead of --stack-name)")
    where.add_argument("--table", help="MonitoringTable's name (instead of --stack-name)")
    where.add_argument("--region", help="AWS region (default: your configuration's)")
    where.add_argument("--endpoint-url", help="send every AWS call here (a moto server)")
    where.add_argument("--json", action="store_true", help="print the pointer as JSON")
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser(
        "publish", parents=[where], help="publish a model directory (what `make model` writes)"
    )
    publish.add_argument("directory", type=Path)
    role = publish.add_mutually_exclusive_group()
    role.add_argument("--challenger", action="store_true", help="score it in shadow from now on")
    role.add_argument("--champion", action="store_true", help="let it decide from now on")
    commands.add_parser("promote", parents=[where], help="the challenger becomes the champion")
    commands.add_parser(
        "rollback", parents=[where], help="the champion before (or the shipped model) decides again"
    )
    commands.add_parser("drop-challenger", parents=[where], help="stop shadow scoring")
    guard = commands.add_parser(
        "review-only",
        parents=[where],
        help="the decision-rate guard's switch: `on` reviews what would be declined (it still "
        "alerts), `off` lets the champion decline again",
    )
    guard.add_argument("switch", choices=("on", "off"))
    commands.add_parser("status", parents=[where], help="print champion, challenger, history")
    why = commands.add_parser(
        "explain",
        parents=[where],
        help="every feature's contribution to one transaction's score (the model that scored it)",
    )
    why.add_argument("transaction_id")
    why.add_argument("--features-table", help="FeaturesTable's name (instead of --stack-name)")
    why.add_argument("--predictions-table", help="PredictionsTable's name (for the version)")
    why.add_argument("--model-dir", type=Path, help="explain with this model directory")
    why.add_argument("--top", type=int, default=3, help="reasons listed (default 3)")
    retrain = commands.add_parser(
        "retrain",
        parents=[where],
        help="train a candidate on the feature log and labels, judge it against the champion, "
        "publish it as the challenger when the gate passes it",
    )
    add_retrain_arguments(retrain)
    args = parser.parse_args(argv)
    if args.command == "retrain" and not args.stack_name and not args.labels_table:
        parser.error("name the stack (--stack-name) or LabelsTable (--labels-table)")
    if args.command == "explain":
        if not args.stack_name and not args.features_table:
            parser.error("name the stack (--stack-name) or FeaturesTable (--features-table)")
        return args
    if not args.stack_name and not (args.bucket and args.table):
        parser.error("name the stack (--stack-name) or its bucket and table (--bucket, --table)")
    return args


def _client(args: argparse.Namespace, service: str) -> Any:
    session = boto3.session.Session(region_name=args.region)
    return session.client(  # type: ignore[call-overload]
        service, endpoint_url=args.endpoint_url, config=client_config()
    )


def _names(args: argparse.Namespace, wanted: dict[str, str]) -> dict[str, str | None]:
    """The resources `wanted` (name -> stack output): each as given, else from the outputs."""
    names = {name: getattr(args, name, None) for name in wanted}
    if args.stack_name:
        stacks = _client(args, "cloudformation").describe_stacks(StackName=args.stack_name)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}
        missing = [key for key in wanted.values() if key not in outputs]
        if missing:
            raise RegistryError(f"stack {args.stack_name} has no output {', '.join(missing)}")
        names = {name: names[name] or outputs[key] for name, key in wanted.items()}
    return names


def _registry(args: argparse.Namespace) -> Registry:
    names = _names(args, OUTPUTS)
    return Registry.of(
        _client(args, "s3"), _client(args, "dynamodb"), str(names["bucket"]), str(names["table"])
    )


def _explain(args: argparse.Namespace) -> int:
    args.features, args.predictions = args.features_table, args.predictions_table
    wanted = TABLE_OUTPUTS | ({"bucket": OUTPUTS["bucket"]} if args.stack_name else {})
    try:
        names = _names(args, wanted) | ({} if args.stack_name else {"bucket": args.bucket})
        found = explain(
            args.transaction_id,
            _client(args, "dynamodb"),
            _client(args, "s3"),
            names,
            args.model_dir,
            args.top,
        )
    except (RegistryError, SystemicError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        json.dumps(found, sort_keys=True, default=float) if args.json else describe_reasons(found)
    )
    return 0


def describe(pointer: Pointer) -> str:
    if pointer.revision == 0:
        return "no pointer: the score function serves the model of its ModelLayer"
    lines = [
        f"champion    {pointer.champion or '(none: the ModelLayer model)'}",
        f"challenger  {pointer.challenger or '(none)'}",
        f"earlier     {', '.join(reversed(pointer.previous)) or '(none)'}",
        f"review-only {'ON: declines are reviewed' if pointer.review_only else 'off'}",
        f"revision    {pointer.revision}",
    ]
    return "\n".join(lines)


def _stack_parameters(args: argparse.Namespace) -> dict[str, str]:
    if not args.stack_name:
        return {}
    stacks = _client(args, "cloudformation").describe_stacks(StackName=args.stack_name)
    return {
        p["ParameterKey"]: p.get("ParameterValue", "")
        for p in stacks["Stacks"][0].get("Parameters", [])
    }


def _retrain(args: argparse.Namespace) -> int:
    args.labels = args.labels_table
    try:
        names = _names(args, OUTPUTS | {"labels": "LabelsTableName"})
        status, _ = run_retrain(
            args,
            lambda service: _client(args, service),
            {k: str(v) for k, v in names.items()},
            _stack_parameters(args),
        )
    except (RegistryError, SystemicError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "explain":
        return _explain(args)
    if args.command == "retrain":
        return _retrain(args)
    try:
        registry = _registry(args)
        note = ""
        if args.command == "publish":
            role = "challenger" if args.challenger else "champion" if args.champion else None
            version, written, pointer = registry.publish(args.directory, role)
            note = f"{version}: {'published' if written else 'already published, same files'}"
        elif args.command == "promote":
            pointer = registry.promote()
        elif args.command == "rollback":
            pointer = registry.rollback()
        elif args.command == "drop-challenger":
            pointer = registry.drop_challenger()
        elif args.command == "review-only":
            pointer = registry.review_only(args.switch == "on")
        else:
            pointer = registry.status()
    except RegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(pointer.to_item() | ({"note": note} if note else {}), sort_keys=True))
    else:
        print("\n".join(filter(None, [note, describe(pointer)])))
    return 0
