"""The closed loop in simulated time (`python -m local run --scenario channel-shift --closed-loop`).

The traffic is streamed one simulated day at a time. When a day has drained, the loop does what
the deployed stack would have done by that midnight, with DriftCheckFunction's clock set to it
(the container rewired with a simulated clock: its windows, retraining cooldown, hours in shadow
and decisions are in simulated time):

1. **labels**: the labels production would have received by then (simulator/outcomes.py: an
   analyst's outcome hours after a review, a chargeback days after an approved fraud, nothing
   of a decline) go on LabelsStream, and LabelsFunction drains;
2. **the drift check**, as DriftSchedule's event at midnight sends it (the stack runs it hourly;
   the loop runs one a day, over DriftWindowMinutes before midnight);
3. **the rules' deliveries**: RetrainingRequested → RetrainStartFunction → a Step Functions
   execution whose input says when it may train (`retrain_at`; one run waits per model version);
4. **the runner**: moto keeps executions but does not run them, so the loop plays the state
   machine's two states: on the first midnight at or after `retrain_at` it runs the build's own
   command (RetrainProject's buildspec line, expanded by bash with the project's variables and
   the execution's TRIGGER_TIME) in-process with `--simulated-time --cutoff <retrain_at>`, then
   ends the execution (StopExecution: moto has no other way to end one);
5. **the promotion check**, as PromotionCheckSchedule's event sends it (daily).

ScoreFunction reads the registry's pointer every ModelRefreshSeconds (2 s in this run unless
given): after a pointer change the loop waits that long, so that the next day is scored by the
new champion and challenger.

The summary's `closed_loop` section has the timeline (simulated dates), the daily drift checks,
the runs, the retrains and the promotion decisions, and quality before and after from the
simulator's truth: recall at decline and the false-decline rate of the serving model, before the
drift, after it, and after the promotion. Its picture draws them (`closed-loop.png`).
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from embedded.async_invocations import deliver, invoke_async
from embedded.buildspec import build_command, expand, project_variables
from embedded.producer import Traffic, event_time
from embedded.stack import EmbeddedStack
from embedded.summary import plain_item, read_json, transaction_id
from embedded.template import load_template, parameter_values
from lifecycle.cli import parse_args
from lifecycle.retrain_command import run_retrain
from simulator.outcomes import OutcomeConfig, production_labels
from streamscore.aws.kinesis import StreamWriter
from streamscore.aws.retry import Backoff

DAY = timedelta(days=1)
DRIFT_FUNCTION = "DriftCheckFunction"
RUNNER = "RetrainingRunnerStateMachine"
REFRESH_SECONDS = 2  # ModelRefreshSeconds of a closed-loop run, unless given
# The period a default closed loop needs at the template's defaults: a week before the drift,
# a day to find it, the waiting rule's 14 + 35 days, up to PromotionMaxDays (28) in shadow, and
# the drift check after the decision.
BASELINE_DAYS = 7.0
DEFAULT_DAYS = 7.0 + 1 + 49 + 28 + 2
DEFAULT_TRANSACTIONS = 250_000  # about 2,900 a day over the default period: 2,000 cards
# DeclineSampleShare of a closed-loop run, unless given. The gate weighs each sampled decline by
# one over the share: at 0.05 a run's 48 sampled declines stood for 1,047, and the recall
# difference's 95 % interval was 0.10 wide (new-fraud-pattern: a candidate with PR-AUC 0.96
# against 0.78 was rejected by 0.0006 on that bound). 0.2, as bench/retrain.py measures the gate.
LOOP_DECLINE_SAMPLE_SHARE = 0.2
LOOP_TIMEOUT_S = 4 * 3600.0  # --timeout of a closed-loop run, unless given
_BATCH_GET = 100  # BatchGetItem's most keys per call


def loop_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """The template parameters of a closed-loop run: `parameters`, and unless they say otherwise
    a 2 s pointer refresh, no labels batching window (the loop puts a simulated day's labels at
    once and waits for them: the 5 s window would only add wall time, once a simulated day) and
    a decline sample (without the truth of some declines a retrain's gate cannot judge the
    champion's: "declines_unobserved", lifecycle/retrain.py)."""
    return {
        "ModelRefreshSeconds": str(REFRESH_SECONDS),
        "LabelsMaximumBatchingWindowInSeconds": "0",
        "DeclineSampleShare": str(LOOP_DECLINE_SAMPLE_SHARE),
    } | dict(parameters)


class LoopError(RuntimeError):
    """The loop could not go on (a function failed in a way the stack would not retry)."""


class SimulatedClock:
    """The drift check's clock: the midnight the loop is at."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Midnight:
    index: int  # payloads before it happened before `moment`
    moment: datetime


def midnights(traffic: Traffic, ids: Sequence[str | None] | None = None) -> list[Midnight]:
    """Every simulated midnight after the first transaction, to the period's end, with the index
    of the first payload after it: the transactions (the payloads the simulator knows) are in
    event-time order; an invalid record may carry any time, or none, and goes with its place. The
    last midnight, the period's end, comes after every payload (the simulator's last transactions
    may run minutes past it). `ids`: the payloads' transaction ids, when already read."""
    if traffic.event_end is None:
        return []
    ids = ids if ids is not None else [transaction_id(p) for p in traffic.payloads]
    latest: list[float] = []
    current = -math.inf
    for payload, txn in zip(traffic.payloads, ids, strict=True):
        moment = event_time(payload) if txn in traffic.labels else None
        if moment is not None and moment <= traffic.event_end:
            current = max(current, moment.timestamp())
        latest.append(current)
    first = next((t for t in latest if t > -math.inf), None)
    if first is None:
        return []
    day = datetime.fromtimestamp(first, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    result = []
    while day < traffic.event_end:
        day += DAY
        result.append(Midnight(bisect.bisect_left(latest, day.timestamp()), day))
    result[-1] = Midnight(len(traffic), result[-1].moment)
    return result


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d}"


@dataclass
class LoopState:
    """What happened, for the summary."""

    timeline: list[dict[str, Any]] = field(default_factory=list)
    drift_checks: list[dict[str, Any]] = field(default_factory=list)
    promotion_checks: Counter[str] = field(default_factory=Counter)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    labels_sent: int = 0
    errors: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)  # scheduled steps that passed on a retry
    seconds: dict[str, float] = field(default_factory=dict)  # wall-clock seconds per step


class ClosedLoop:
    """The stack's schedules and runner at each simulated midnight (see the module docstring)."""

    def __init__(
        self,
        stack: EmbeddedStack,
        clients: Callable[[str], Any],
        traffic: Traffic,
        drain: Callable[[], None],
        say: Callable[[str], None],
        out_dir: Path,
    ):
        self.stack = stack
        self.clients = clients
        self.traffic = traffic
        self.drain = drain
        self.say = say
        self.out_dir = out_dir
        self.outputs = stack.deployed.outputs
        self.state = LoopState()
        self.template = load_template(stack.template_path)
        self.parameters = parameter_values(self.template, stack.parameters)
        self.refresh_s = float(self.parameters["ModelRefreshSeconds"])
        self.clock = SimulatedClock(datetime.now(UTC))
        self.drift = stack.function(DRIFT_FUNCTION)
        self.drift.rewire(
            lambda module: module.handler(
                module.drift_stage, clock=self.clock, promotion=module.promotion_stage
            )
        )
        runner = stack.deployed.resources.get(RUNNER)
        if runner is None:
            raise LoopError(
                "the stack has no retraining runner (RetrainingRunner=None): the closed loop "
                "needs RetrainingRunner=CodeBuild"
            )
        self.machine_arn = runner.physical_id
        self.transaction_ids = [transaction_id(p) for p in traffic.payloads]
        # the midnights by the index of the first payload after them (a day without traffic
        # shares its index with the next)
        self.schedule: dict[int, list[Midnight]] = {}
        for midnight in midnights(traffic, self.transaction_ids):
            self.schedule.setdefault(midnight.index, []).append(midnight)
        self.labelled_upto = 0  # payloads whose labels were drawn
        self.pending: list[dict[str, Any]] = []  # labels not yet received, by labelled_at
        self.days = 0

    # ------------------------------------------------------------ each midnight

    def at_index(self, index: int) -> None:
        """The payloads before `index` have drained: every midnight before the next one."""
        for midnight in self.schedule.get(index, []):
            self.at(midnight)

    def at(self, midnight: Midnight) -> None:
        """Payloads before `midnight.index` have drained: the stack's work by `midnight.moment`."""
        self.clock.now = moment = midnight.moment
        self.days += 1
        self._timed("labels", self._labels, midnight.index, moment)
        self._timed("drift check", self._drift_check, moment)
        self._timed("deliveries", self._deliveries, moment)
        changed = self._timed("runner", self._runner, moment)
        changed |= self._timed("promotion check", self._promotion, moment)
        if changed:  # the next day is scored by the pointer's new versions (a container that
            # read the pointer just before the change reads it again after ModelRefreshSeconds)
            self._timed("model refresh", time.sleep, 2 * self.refresh_s + 0.5)

    def _timed(self, step: str, call: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            spent = time.perf_counter() - started
            self.state.seconds[step] = self.state.seconds.get(step, 0.0) + spent

    def end(self, index: int) -> None:
        """Every payload drained: the last midnights, then every label still to come, as if time
        ran on (the quality figures need them)."""
        self.at_index(index)
        self._labels(len(self.traffic), None)

    def _labels(self, index: int, moment: datetime | None) -> None:
        ids = sorted({t for t in self.transaction_ids[self.labelled_upto : index] if t})
        self.labelled_upto = index
        if ids:
            predictions = self._predictions(ids)
            config = OutcomeConfig(seed=OutcomeConfig().seed + self.days)
            self.pending += production_labels(predictions, self.traffic.labels, config).labels
            self.pending.sort(key=lambda x: x["labelled_at"])
        due = [
            x
            for x in self.pending
            if moment is None or datetime.fromisoformat(x["labelled_at"]) <= moment
        ]
        if not due:
            return
        self.pending = self.pending[len(due) :]
        writer = StreamWriter(self.clients("kinesis"), self.outputs["LabelsStreamName"], Backoff())
        refused = writer.put_records([(x["transaction_id"], json.dumps(x).encode()) for x in due])
        if refused:
            self.state.errors.append(f"{len(refused)} labels refused by PutRecords")
        self.state.labels_sent += len(due) - len(refused)
        self.drain()

    def _predictions(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        dynamodb, table = self.clients("dynamodb"), self.outputs["PredictionsTableName"]
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), _BATCH_GET):
            keys = [{"transaction_id": {"S": t}} for t in ids[start : start + _BATCH_GET]]
            request: dict[str, Any] = {table: {"Keys": keys}}
            while request:
                answer = dynamodb.batch_get_item(RequestItems=request)
                found += [plain_item(x) for x in answer["Responses"].get(table, [])]
                request = answer.get("UnprocessedKeys") or {}
        return found

    def _invoke(self, event: dict[str, Any], what: str) -> dict[str, Any] | None:
        """A scheduled invocation: retried as Lambda retries an asynchronous one (twice); only
        an error on every attempt is a problem of the loop."""
        invocation, attempts = invoke_async(self.drift, event)
        if invocation.error is not None:
            self.state.errors.append(
                f"{_day(self.clock.now)} {what}, {attempts} attempts: {invocation.error}"
            )
            return None
        if attempts > 1:
            self.state.retried.append(f"{_day(self.clock.now)} {what}: {attempts} attempts")
        return dict(invocation.response or {})

    def _drift_check(self, moment: datetime) -> None:
        event = {
            "version": "0",
            "id": f"closed-loop-{_iso(moment)}",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": _iso(moment),
            "region": self.stack.deployed.region,
            "resources": [],
            "detail": {},
        }
        response = self._invoke(event, "drift check")
        if response is None:
            return
        report = read_json(self.clients("s3"), response.get("report_uri")) or {}
        features = report.get("features", {})
        worst = max(
            ((n, v.get("psi")) for n, v in features.items() if v.get("psi") is not None),
            key=lambda x: x[1],
            default=(None, None),
        )
        check = {
            "day": _day(moment - DAY),
            "at": _iso(moment),
            "status": response.get("status"),
            "retraining": response.get("retraining"),
            "model_version": report.get("model_version"),
            "score_psi": (report.get("prediction") or {}).get("psi"),
            "max_psi": worst[1],
            "max_psi_feature": worst[0],
            "drifted": [d.get("name") for d in report.get("drifted", [])],
        }
        self.state.drift_checks.append(check)
        previous = (
            self.state.drift_checks[-2]["status"] if len(self.state.drift_checks) > 1 else None
        )
        if check["status"] != previous:
            self._event(
                moment, "drift check", f"{check['status']} against {check['model_version']}"
            )

    def _deliveries(self, moment: datetime) -> None:
        for delivered in deliver(
            self.clients("sqs"), self.stack.functions, self.outputs.get("FailureQueueUrl")
        ):
            response = delivered.get("response") or {}
            if "error" in delivered:
                self.state.errors.append(
                    f"{_day(moment)} {delivered['function']}: {delivered['error']}"
                )
                continue
            name = response.get("execution", "?")
            started = response.get("started")
            if started == "running" and name not in self.state.runs:
                self.state.runs[name] = {
                    "trigger_id": response.get("trigger_id"),
                    "trigger_time": response.get("trigger_time"),
                    "retrain_at": response.get("retrain_at"),
                    "started_on": _day(moment),
                }
                self._event(
                    moment,
                    "runner",
                    f"run {name} started; it waits until {response.get('retrain_at')}",
                )
            elif started == "joined":
                run = self.state.runs.get(str(response.get("joined")), {})
                run["joined"] = int(run.get("joined", 0)) + 1

    def _runner(self, moment: datetime) -> bool:
        sfn = self.clients("stepfunctions")
        changed = False
        listed = sfn.list_executions(stateMachineArn=self.machine_arn, statusFilter="RUNNING")
        for execution in listed["executions"]:
            run = json.loads(
                sfn.describe_execution(executionArn=execution["executionArn"])["input"]
            )
            if datetime.fromisoformat(run["retrain_at"]) > moment:
                continue
            changed |= self._retrain(execution["name"], run, moment)
            sfn.stop_execution(
                executionArn=execution["executionArn"],
                cause="the closed loop ran the build in-process",
            )
        return changed

    def _retrain(self, name: str, run: Mapping[str, Any], moment: datetime) -> bool:
        self._event(moment, "runner", f"{name}: the build retrains (cut-off {run['retrain_at']})")
        args = self._build_arguments(run)
        names = {
            "bucket": self.outputs["ArtifactsBucketName"],
            "table": self.outputs["MonitoringTableName"],
            "labels": self.outputs["LabelsTableName"],
        }
        status, report = run_retrain(args, self.clients, names, dict(self.parameters), self.say)
        gate = report.get("gate") or {}
        published = report.get("published") or {}
        retrain = {
            "run": name,
            "day": _day(moment),
            "at": _iso(moment),
            "exit_status": status,
            "verdict": report.get("verdict"),
            "why": report.get("why"),
            "champion": report.get("champion"),
            "candidate": report.get("candidate"),
            "pr_auc_difference": gate.get("pr_auc_difference"),
            "recall_at_decline_difference": gate.get("recall_at_decline_difference"),
            "published": bool(published.get("published")),
            "report_dir": str(args.out),
        }
        self.state.retrains.append(retrain)
        self.state.runs.setdefault(name, {})["retrained_on"] = _day(moment)
        what = f"gate {retrain['verdict']}: {retrain['why']}"
        if retrain["published"]:
            what += f"; challenger {_version(retrain['candidate'])} in shadow"
        self._event(moment, "retrain", what)
        return bool(retrain["published"])

    def _build_arguments(self, run: Mapping[str, Any]) -> argparse.Namespace:
        """The build's command line (RetrainProject's buildspec, expanded by bash with the
        project's variables and the state machine's overrides), plus the simulated cut-off."""
        variables = {v["Name"]: self._value(v["Value"]) for v in project_variables(self.template)}
        variables |= {
            "TRIGGER_ID": str(run["trigger_id"]),
            "TRIGGER_TIME": str(run["trigger_time"]),
        }
        command, *words = expand(build_command(self.template), variables)
        if command != "retrain":
            raise LoopError(
                f"RetrainProject's build runs `python -m models {command}`, not retrain"
            )
        out = self.out_dir / "closed-loop" / "retrain"
        simulated = ["--simulated-time", "--cutoff", str(run["retrain_at"]), "--out", str(out)]
        return parse_args([command, *words, *simulated])

    def _value(self, node: Any) -> str:
        """A project variable's value: a parameter's, or a resource's physical id."""
        if isinstance(node, Mapping) and "Ref" in node:
            name = node["Ref"]
            if name in self.parameters:
                return str(self.parameters[name])
            resource = self.stack.deployed.resources.get(name)
            return resource.physical_id if resource is not None else ""
        return str(node)

    def _promotion(self, moment: datetime) -> bool:
        response = self._invoke({"check": "promotion"}, "promotion check")
        if response is None:
            return False
        status = str(response.get("status"))
        self.state.promotion_checks[status] += 1
        if status != "decided":
            return False
        decision = {
            "day": _day(moment),
            "at": _iso(moment),
            "verdict": response.get("verdict"),
            "why": response.get("why"),
            "decision_id": response.get("decision_id"),
            "events_sent": response.get("events_sent"),
            "figures": response.get("figures"),
        }
        self.state.decisions.append(decision)
        self._event(moment, "promotion", f"{decision['verdict']}: {decision['why']}")
        return True

    def _event(self, moment: datetime, kind: str, what: str) -> None:
        self.state.timeline.append({"at": _iso(moment), "kind": kind, "what": what})
        self.say(f"{_day(moment)} {kind}: {what}")

    # ------------------------------------------------------------ the summary

    def summary(self, predictions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        state = self.state
        promoted = next((d for d in state.decisions if d["verdict"] == "promote"), None)
        after = None
        if promoted is not None:
            after = next((c for c in state.drift_checks if c["day"] >= promoted["day"]), None)
        return {
            "days": self.days,
            "end": _iso(self.clock.now),
            "drift_from": _iso(self.traffic.drift_from) if self.traffic.drift_from else None,
            "timeline": state.timeline,
            "waits": _waits(state, self.traffic.drift_from),
            "runs": state.runs,
            "retrains": state.retrains,
            "decisions": state.decisions,
            "promotion_checks": dict(state.promotion_checks),
            "drift_after_promotion": after,
            "drift_checks": state.drift_checks,
            "labels_sent": state.labels_sent,
            "quality": truth_quality(
                predictions, self.traffic, promoted["at"] if promoted else None
            ),
            "errors": state.errors,
            "retried": state.retried,
            "seconds": {k: round(v, 1) for k, v in state.seconds.items()},
        }


def _version(candidate: Any) -> str:
    if isinstance(candidate, Mapping):
        return str(candidate.get("model_version", "?"))
    return str(candidate)


def _waits(state: LoopState, drift_from: datetime | None) -> dict[str, Any]:
    """Days between the loop's steps (simulated time): the drift's start, the first check that
    found it, the first retrain, the first promotion decision."""

    def first_at(entries: list[dict[str, Any]]) -> datetime | None:
        return datetime.fromisoformat(entries[0]["at"]) if entries else None

    found = first_at([c for c in state.drift_checks if c["status"] == "drift"])
    retrained = first_at(state.retrains)
    decided = first_at(state.decisions)
    steps = {
        "drift_to_found": (drift_from, found),
        "found_to_retrain": (found, retrained),
        "retrain_to_decision": (retrained, decided),
    }
    return {
        name: round((b - a).total_seconds() / 86400, 2) if a and b else None
        for name, (a, b) in steps.items()
    }


def truth_quality(
    predictions: Mapping[str, Mapping[str, Any]], traffic: Traffic, promoted_at: str | None
) -> dict[str, Any]:
    """The serving model's decisions against the simulator's truth, per period (by event time):
    before the drift, after it, after the promotion. Recall at decline: frauds declined over
    frauds; caught: declined or reviewed; false declines: legitimate transactions declined over
    legitimate ones."""
    periods: dict[str, Counter[str]] = {}
    promoted = datetime.fromisoformat(promoted_at) if promoted_at else None
    for txn, prediction in predictions.items():
        known = traffic.labels.get(txn)
        if known is None:
            continue
        moment = datetime.fromisoformat(str(prediction["event_time"]))
        if promoted is not None and moment >= promoted:
            period = "after promotion"
        elif traffic.drift_from is not None and moment >= traffic.drift_from:
            period = "after drift"
        else:
            period = "before drift"
        row = periods.setdefault(f"{period}: {prediction['model_version']}", Counter())
        _tally(row, prediction.get("decision"), known.is_fraud)
    return {
        "periods": {k: _figures(row) for k, row in periods.items()},
        "weekly": weekly_recall(predictions, traffic),
    }


def _tally(row: Counter[str], decision: Any, fraud: bool) -> None:
    row["transactions"] += 1
    row["frauds" if fraud else "legit"] += 1
    if decision == "decline":
        row["declined_frauds" if fraud else "declined_legit"] += 1
    if fraud and decision in ("decline", "review"):
        row["caught_frauds"] += 1


def _figures(row: Counter[str]) -> dict[str, Any]:
    frauds, legit = row["frauds"], row["legit"]
    return {
        "transactions": row["transactions"],
        "frauds": frauds,
        "recall_at_decline": round(row["declined_frauds"] / frauds, 4) if frauds else None,
        "caught": round(row["caught_frauds"] / frauds, 4) if frauds else None,
        "false_decline_rate": round(row["declined_legit"] / legit, 5) if legit else None,
    }


def weekly_recall(
    predictions: Mapping[str, Mapping[str, Any]], traffic: Traffic
) -> list[dict[str, Any]]:
    """Recall at decline per simulated week and serving version (truth), for the picture."""
    rows: dict[tuple[str, str], Counter[str]] = {}
    for txn, prediction in predictions.items():
        known = traffic.labels.get(txn)
        if known is None:
            continue
        moment = datetime.fromisoformat(str(prediction["event_time"])).astimezone(UTC)
        week = moment.date() - timedelta(days=moment.weekday())
        key = (week.isoformat(), str(prediction["model_version"]))
        _tally(rows.setdefault(key, Counter()), prediction.get("decision"), known.is_fraud)
    return [
        {"week": week, "model_version": version} | _figures(row)
        for (week, version), row in sorted(rows.items())
    ]


def loop_problems(section: Mapping[str, Any]) -> list[str]:
    """What makes a closed-loop run fail: a function error, a run that never retrained."""
    problems = [f"closed loop: {e}" for e in section.get("errors", [])]
    for name, run in section.get("runs", {}).items():
        if "retrained_on" not in run and run.get("retrain_at", "9999") <= section["end"]:
            problems.append(
                f"closed loop: run {name} was due at {run['retrain_at']} and never retrained"
            )
    return problems


def render_closed_loop(section: Mapping[str, Any]) -> list[str]:
    lines = [
        f"Closed loop    {section['days']} simulated days; the drift starts {section.get('drift_from') or '-'}"
    ]
    for entry in section["timeline"]:
        lines.append(f"  {entry['at'][:10]}  {entry['kind']:<12} {entry['what']}")
    waits = section["waits"]
    lines.append(
        "  waits (days): drift to found "
        f"{_n(waits['drift_to_found'])}, found to retrain {_n(waits['found_to_retrain'])}, "
        f"retrain to decision {_n(waits['retrain_to_decision'])}"
    )
    after = section.get("drift_after_promotion")
    if after:
        lines.append(
            f"  drift check after the promotion ({after['day']}): {after['status']} against "
            f"{after['model_version']} (score PSI {_n(after['score_psi'])})"
        )
    lines.append(
        "  quality (simulator's truth)     transactions  frauds  recall@decline  caught  false declines"
    )
    for period, row in section["quality"]["periods"].items():
        lines.append(
            f"  {period[:60]:<60} {row['transactions']:>8,} {row['frauds']:>7,} "
            f"{_n(row['recall_at_decline']):>8} {_n(row['caught']):>7} {_n(row['false_decline_rate']):>8}"
        )
    for retried in section.get("retried", []):
        lines.append(f"  retried: {retried}")
    if section.get("picture"):
        lines.append(f"  picture {section['picture']}")
    return lines


def _n(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
