"""Pipeline fuzz harness: the real handlers on moto, a model of the Kinesis event-source mapping,
AWS faults injected on the handlers' own clients, and effectively-once invariants against a reference.

The pieces, in the order an example uses them:

- `Pipeline`: moto started once, the template's tables and streams, the project's bus, and the
  preprocess and score handlers imported with their template environment (steps inline, no
  thread pools, no backoff sleeps). `reset()` recreates tables and streams between examples;
  `cold_start(stage)` imports a handler afresh: a new container, nothing kept in memory.
- `workloads()`: a hypothesis strategy of what producers put on TransactionsStream: windows of
  simulated card histories, invalid records, exact producer repeats and an optional conflicting
  duplicate (same transaction_id, other amount, or other card on the same shard), and how they
  are put: plain, or packed into KPL aggregates as the KPL packs them (records bound for one
  shard, consecutive in that shard's order, of one partition key or of any), sometimes one
  aggregate with a corrupted digest.
- `FaultInjector`: botocore `before-call` / `after-call` hooks on the handler modules' clients.
  Per AWS call it may fail the call before it takes effect, lose the response of a call that took
  effect, end the invocation (`InvocationTimeout`) just before or just after the call, or hand a
  part of a batch call back as unprocessed. It records every EventBridge entry really delivered.
- `ExampleRun`: the event-source mappings. One cursor per shard and stream follows the stream from
  its checkpoint with random batch sizes: success moves the checkpoint past the batch,
  `batchItemFailures` to the lowest failed record, a function error retries or bisects, a retry
  limit discards the rest of the batch: Lambda's on-failure record for the range goes to an SQS
  FailureQueue in moto. Operator replays re-deliver an already processed range with new
  boundaries; an operator may change the registry pointer between deliveries (the score
  function reads it before every batch; two registry versions are published at start);
  stages interleave at random; an invocation may land in a new container, and always
  does after a timeout. At the end, faults off: the mappings drain, the operator's re-drive
  command (`local/embedded/redrive.py`, `redrive()`, as `python -m local redrive` runs it) reads
  the queue and re-drives every range through the handlers, and both streams drain again.
  Then FeatureLogFunction follows PredictionsTable's stream (`_log_features`) with random batch
  boundaries, the example's faults on its first invocations, retries from its checkpoint.
- `verify()`: the invariants against a `Reference` (each distinct transaction once, its first
  valid version winning): accounting of every user record (the unit the functions process: a
  plain record, a user record of an aggregate, or a corrupted aggregate whole, which must be
  quarantined once as `invalid_aggregate`) and `in = scored + absorbed + quarantined + failed`
  over the user records produced, features and card state reproduced by a
  replay in `state_version` order, one prediction per transaction with the score of the version
  it names (and its challenger's, in shadow), alerts per version's decision, the handlers'
  contract, monitoring totals (each version's and each challenger's shadow counts), the feature
  log (each prediction's first write logged, with its features, rows repeated only identical). A broken invariant raises the subclass of
  `InvariantError` named after it, listing the transactions or cards concerned, then the
  workload, the injected faults and the invocation trace.

Every random choice of the schedule and of the faults comes from a `Dice` over hypothesis'
`st.randoms()`: examples shrink towards "no fault, batch size 1, first cursor".

Records at two levels: a `Rec` is a Kinesis record (what the cursors, batch sizes,
`batchItemFailures`, FailureQueue ranges and the re-drive deal in: a failure inside an
aggregate fails, retries and discards the whole Kinesis record); a user record is a `Rec` with
its index in the aggregate (`sub`), named `stream#shard#sequence#sub` as the functions name it,
what the reference and the invariants deal in. The harness knows each aggregate's user records
from what it put, not from the functions' reader.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import math
import os
import random
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import numpy as np
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from hypothesis import strategies as st
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler
from moto.kinesis.models import Shard
from pydantic import ValidationError

from embedded import moto_process
from embedded.aggregation import corrupt_digest, encode_aggregate
from embedded.containers import FunctionError, Invocation
from embedded.dynamodb_streams import STREAM_RECORD, DynamoStreamAsKinesis, dynamodb_event
from embedded.emulator import MappingConfig, on_failure_record
from embedded.lambda_events import KinesisEntry, kinesis_event
from embedded.redrive import redrive
from embedded.template import load_template, stream_definitions, table_definitions
from simulator import SimulationConfig, encode_transaction, invalid_payloads, simulate
from streamscore.aws.dynamodb import deserialize
from streamscore.aws.registry import DynamoModelPointer, S3ModelVersions
from streamscore.core.aggregation import INVALID_AGGREGATE, UserRecord
from streamscore.core.artifacts import Thresholds
from streamscore.core.errors import RetryableError
from streamscore.core.monitoring import (
    NO_VERSION,
    PREDICTIONS,
    QUALITY,
    QUARANTINE,
    SHADOW,
    Counts,
    hour_of,
)
from streamscore.core.quality import SCORE_UNITS, in_decline_sample, quality_bin
from streamscore.core.records import record_id_of
from streamscore.core.registry import Pointer
from streamscore.featurelog.rows import LOG_PREFIX, decode
from streamscore.labels.contract import Label, label_key
from streamscore.preprocess.contracts import Transaction
from streamscore.preprocess.features import CardState, advance_state, build_features
from streamscore.scoring.model import (
    DECISIONS,
    ScoringModel,
    decide,
    history_strata,
    load_model,
)
from support.aws_stack import FAKE_CREDENTIALS, REGION, LocalStack
from support.lambda_runtime import POWERTOOLS_TEST_ENV, FakeLambdaContext
from support.model_dirs import renamed_model
from support.tiny_model import write_model_dir
from support.wiring import InlineExecutor, Wired, quiet_backoff, wire

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
MODEL_DIR = ROOT / "models" / "artifacts"
BUS_NAME = "streamscore-EventBus-local"
# the score function's DeclineSampleShare in the harness (the template's default is 0)
DECLINE_SAMPLE_SHARE = 0.2
TRANSACTIONS = "TransactionsStream"
FEATURES = "FeaturesStream"
LABELS = "LabelsStream"
PREDICTION_CHANGES = "PredictionsTable"  # the table's stream, read by the feature log
FEATURE_LOG = "feature_log"  # its stage (handlers/feature_log.py)
FEATURE_LOG_FAULTY_SHARE = 4  # a quarter of an example's faulty invocations go to the feature log
STAGE_OF = {TRANSACTIONS: "preprocess", FEATURES: "score", LABELS: "labels"}
STAGES = tuple(STAGE_OF.values())
ACCOUNT = "123456789012"  # moto's default account
ARTIFACTS_BUCKET = "streamscore-artifacts-fuzz"
# registry versions the examples name in the pointer: the shipped model under another version
# (the same scores) and a model of its own (other scores and decisions)
SAME_SCORES, OTHER_SCORES = "fuzz-same", "fuzz-other"


def function_arn_of(stage: str) -> str:
    """The ARN the harness's FailureQueue messages name for a stage's function."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:streamscore-{stage}-local"


ALERT_DETAIL_TYPE = "HighRiskTransaction"
MAX_TRANSACTION_BYTES = 16 * 1024  # the contract's size limit (preprocess quarantines more)
MAX_BATCH = 10  # batch sizes are drawn in 1..MAX_BATCH
SCORE_TOLERANCE = 1e-6
STUCK_AFTER = 4  # fault-free failures in a row at one checkpoint: the record counts as stuck
DRAIN_LIMIT = 3000  # invocations of a fault-free drain before it counts as a livelock
HANDLER_ENV = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
# CardState fields a replay of the transactions must reproduce (the rest is bookkeeping).
STATE_FIELDS: tuple[str, ...] = (
    "card_id",
    "home_country",
    "txn_count",
    "last_event_ts",
    "last_merchant_id",
    "count_1h",
    "count_24h",
    "small_ecom_1h",
    "foreign_24h",
    "log_amount_mean",
    "log_amount_var",
)


class InvocationTimeout(BaseException):
    """Lambda's timeout between two AWS calls: the invocation ends there, whatever it was doing."""


class HarnessError(Exception):
    """The harness itself could not go on (not an invariant of the pipeline)."""


# ============================================================================ randomness


class Dice:
    """Integer choices from a (hypothesis) Random; each shrinks towards 0, the plain case."""

    def __init__(self, rnd: random.Random):
        self.rnd = rnd

    def below(self, n: int) -> int:
        return self.rnd.randrange(n) if n > 1 else 0

    def between(self, low: int, high: int) -> int:
        return low + self.below(high - low + 1)

    def permille(self, chance: int) -> bool:
        """True with probability chance/1000 (False when the choice shrinks to 0)."""
        return chance > 0 and self.below(1000) >= 1000 - chance

    def pick(self, weighted: Sequence[tuple[str, int]]) -> str | None:
        """One name with probability weight/1000 each, or None (what the choice shrinks to)."""
        total = sum(w for _, w in weighted)
        if total <= 0:
            return None
        roll = self.below(1000) - (1000 - total)
        for name, weight in weighted:
            if roll < 0:
                return None
            if roll < weight:
                return name
            roll -= weight
        return None


# ============================================================================ the workload


@dataclass(frozen=True)
class Produced:
    """One record a producer puts on TransactionsStream, and what the generator meant by it."""

    partition_key: str
    payload: bytes
    intent: str  # "valid", "invalid:<category>", "repeat of #i", "conflict (<field>) with #i"

    def describe(self) -> str:
        try:
            doc = json.loads(self.payload)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "transaction_id" in doc:
            what = (
                f"{doc.get('transaction_id')} card={doc.get('card_id')} amount={doc.get('amount')}"
            )
        else:
            what = repr(self.payload[:48])
        return f"{self.intent}: {what} (pk {self.partition_key})"


@dataclass(frozen=True)
class Put:
    """One Kinesis record to put: the workload records it carries, plain or as a KPL aggregate."""

    members: tuple[int, ...]  # workload indexes, in the aggregate's (sub-sequence) order
    aggregated: bool = False  # one member and not aggregated: a plain record
    corrupt: bool = False  # an aggregate whose MD5 digest does not match

    def describe(self) -> str:
        if not self.aggregated:
            return ""
        what = "corrupted aggregate" if self.corrupt else "aggregate"
        return f"{what} of {', '.join(f'#{i}' for i in self.members)}"


@dataclass(frozen=True)
class Workload:
    records: tuple[Produced, ...]
    # the Kinesis records to put, in put order; empty: each record plain, in order
    puts: tuple[Put, ...] = ()
    # what label producers put on LabelsStream (partition key: the transaction id), in order
    labels: tuple[Produced, ...] = ()

    def kinesis_records(self) -> tuple[Put, ...]:
        return self.puts or tuple(Put((i,)) for i in range(len(self.records)))

    def __repr__(self) -> str:
        packed = {i: put for put in self.puts if put.aggregated for i in put.members}
        lines = [
            f"  #{i} {r.describe()}" + (f" [{packed[i].describe()}]" if i in packed else "")
            for i, r in enumerate(self.records)
        ]
        lines += [f"  label #{i} {r.describe()}" for i, r in enumerate(self.labels)]
        return "Workload(\n" + "\n".join(lines) + "\n)"


@dataclass(frozen=True)
class TrafficPool:
    """Simulated card histories to cut windows from, cards with fraud first (examples shrink to them)."""

    cards: tuple[tuple[dict[str, Any], ...], ...]
    invalid: tuple[tuple[bytes, str], ...]


def traffic_pool(min_history: int = 40, n_cards: int = 24) -> TrafficPool:
    batch = simulate(
        SimulationConfig(
            seed=20260302, n_cards=150, days=14.0, fraud_rate=0.08, mean_daily_txns=3.0
        )
    )
    by_card: dict[str, list[dict[str, Any]]] = defaultdict(list)
    fraud: Counter[str] = Counter()
    for txn, label in zip(batch.transactions, batch.labels, strict=True):
        by_card[str(txn["card_id"])].append(dict(txn))
        fraud[str(txn["card_id"])] += label.is_fraud
    eligible = [c for c, txns in by_card.items() if len(txns) >= min_history]
    eligible.sort(key=lambda c: (-min(fraud[c], 1), c))
    cards = tuple(tuple(by_card[c]) for c in eligible[:n_cards])
    invalid = tuple(invalid_payloads(np.random.default_rng(7), 30))
    return TrafficPool(cards, invalid)


def shard_of_key(shards: Sequence[Mapping[str, Any]], partition_key: str) -> str:
    """The shard Kinesis puts `partition_key` on: the MD5 of the key within a hash key range."""
    point = int(hashlib.md5(partition_key.encode()).hexdigest(), 16)
    for shard in shards:
        hash_range = shard["HashKeyRange"]
        if int(hash_range["StartingHashKey"]) <= point <= int(hash_range["EndingHashKey"]):
            return str(shard["ShardId"])
    raise HarnessError(f"no shard covers partition key {partition_key!r}")


@st.composite
def workloads(
    draw: Any,
    pool: TrafficPool,
    shard_of: Callable[[str], str],
    min_txns: int = 10,
    max_txns: int = 40,
) -> Workload:
    """2-6 cards, 10-40 of their transactions interleaved, invalid records, repeats, a conflict;
    put plain or in KPL aggregates (`kinesis_puts`)."""
    n_cards = draw(st.integers(2, 6))
    chosen = draw(
        st.lists(
            st.integers(0, len(pool.cards) - 1), min_size=n_cards, max_size=n_cards, unique=True
        )
    )
    n_txns = draw(st.integers(min_txns, max_txns))
    slots = draw(st.lists(st.integers(0, n_cards - 1), min_size=n_txns, max_size=n_txns))
    taken = Counter(slots)
    windows: list[Iterator[dict[str, Any]]] = []
    for slot, card in enumerate(chosen):
        history = pool.cards[card]
        start = draw(st.integers(0, len(history) - taken[slot]))
        windows.append(iter(history[start : start + taken[slot]]))
    records = [
        Produced(str(txn["card_id"]), encode_transaction(txn), "valid")
        for txn in (next(windows[s]) for s in slots)
    ]
    card_ids = sorted({r.partition_key for r in records})

    for _ in range(draw(st.integers(0, 5))):
        payload, category = draw(st.sampled_from(pool.invalid))
        key = draw(st.sampled_from([*card_ids, "card_bad"]))
        records.insert(
            draw(st.integers(0, len(records))), Produced(key, payload, f"invalid:{category}")
        )

    def valid_positions() -> list[int]:
        return [i for i, r in enumerate(records) if r.intent == "valid"]

    source_of: dict[int, Produced] = {}  # id() of a repeat or conflict -> the record it copies
    for _ in range(draw(st.integers(0, 4))):
        positions = valid_positions()
        source = positions[draw(st.integers(0, len(positions) - 1))]
        original = records[source]
        repeat = Produced(original.partition_key, original.payload, "repeat of")
        source_of[id(repeat)] = original
        records.insert(draw(st.integers(source + 1, len(records))), repeat)

    if draw(st.booleans()):
        positions = valid_positions()
        source = positions[draw(st.integers(0, len(positions) - 1))]
        original = records[source]
        doc = json.loads(original.payload)
        home = shard_of(original.partition_key)
        same_shard = [c for c in card_ids if c != doc["card_id"] and shard_of(c) == home]
        if same_shard and draw(st.booleans()):
            doc["card_id"] = draw(st.sampled_from(same_shard))
            changed = "card"
        else:
            doc["amount"] = round(float(doc["amount"]) * 3 + 1, 2)
            changed = "amount"
        conflict = Produced(
            str(doc["card_id"]), encode_transaction(doc), f"conflict ({changed}) with"
        )
        source_of[id(conflict)] = original
        records.insert(draw(st.integers(source + 1, len(records))), conflict)

    position = {id(r): i for i, r in enumerate(records)}
    final = tuple(
        Produced(r.partition_key, r.payload, f"{r.intent} #{position[id(source_of[id(r)])]}")
        if id(r) in source_of
        else r
        for r in records
    )
    return Workload(final, draw(kinesis_puts(final, shard_of)), draw(label_puts(final)))


@st.composite
def label_puts(draw: Any, records: Sequence[Produced]) -> tuple[Produced, ...]:
    """Labels of some of the workload's transactions (up to three each, changing their mind, at
    times a minute apart so that keys tie on time), of a transaction never put, and a record that
    is no label; in any order (the greatest label must win whatever the order)."""
    ids = sorted({json.loads(r.payload)["transaction_id"] for r in records if r.intent == "valid"})
    chosen = draw(st.lists(st.sampled_from(ids), max_size=6, unique=True)) if ids else []
    if draw(st.booleans()):
        chosen.append("never-put")
    labels = []
    for txn in chosen:
        for _ in range(draw(st.integers(1, 3))):
            doc = {
                "transaction_id": txn,
                "label": draw(st.sampled_from(["fraud", "legit"])),
                "labelled_at": f"2026-04-0{draw(st.integers(1, 2))}T10:0{draw(st.integers(0, 1))}"
                ":00+00:00",
                "source": draw(st.sampled_from(["chargeback", "review", "reversal"])),
            }
            labels.append(Produced(txn, json.dumps(doc).encode(), "label"))
    if draw(st.booleans()):
        labels.append(Produced("t-bad", b'{"transaction_id": "t-bad", "label": "?"}', "invalid"))
    return tuple(draw(st.permutations(labels)))


@st.composite
def kinesis_puts(
    draw: Any, records: Sequence[Produced], shard_of: Callable[[str], str]
) -> tuple[Put, ...]:
    """How `records` are put: plain, or packed into KPL aggregates as the KPL packs them.

    The KPL aggregates the user records bound for one shard (it predicts each partition key's
    shard from the shard map), whatever their partition keys, in the order they were added,
    and puts the aggregate with a key of that shard: so an aggregate here holds records of one
    shard, consecutive in that shard's order (records of other shards may come between them
    in the workload), and is put with its first record's key, at its first record's turn.
    Either any keys share an aggregate, or (a producer aggregating per card) only one key.
    Per card, the stream order is the workload's. Sometimes one aggregate is corrupted: its
    user records never reach the pipeline, which must quarantine it whole.
    """
    rate = draw(st.one_of(st.just(0), st.integers(20, 100)))  # percent of chances taken
    any_keys = draw(st.booleans())
    most = draw(st.integers(2, 12))
    groups: list[list[int]] = []
    latest: dict[str, list[int]] = {}  # shard -> its last group, the one a record may join
    for index, record in enumerate(records):
        shard = shard_of(record.partition_key)
        group = latest.get(shard)
        joinable = (
            rate > 0
            and group is not None
            and len(group) < most
            and (any_keys or records[group[0]].partition_key == record.partition_key)
        )
        if group is not None and joinable and draw(st.integers(0, 99)) < rate:
            group.append(index)
        else:
            latest[shard] = [index]
            groups.append(latest[shard])
    corrupt = -1
    if draw(st.sampled_from([False, False, False, True])):
        corrupt = draw(st.integers(0, len(groups) - 1))
    return tuple(
        Put(tuple(group), aggregated=len(group) > 1 or n == corrupt, corrupt=n == corrupt)
        for n, group in enumerate(groups)
    )


# ============================================================================ the scenario


@dataclass(frozen=True)
class FaultRates:
    """Chance per AWS call, in per mille, of each kind of fault."""

    fail_before: int = 0  # (a) throttling or a 500 before the call takes effect
    lost_response: int = 0  # (b) the call takes effect, its response is lost
    timeout: int = 0  # (c) the invocation times out just before or just after the call
    partial: int = 0  # (d) a part of a batch call handed back unprocessed (batch calls only)

    @property
    def any(self) -> bool:
        return self.fail_before + self.lost_response + self.timeout + self.partial > 0


@dataclass(frozen=True)
class Scenario:
    """How the mappings and the weather behave in one example."""

    faults: FaultRates = FaultRates()
    retry_limit: tuple[int | None, int | None] = (None, None)  # (preprocess, score); None: none
    replay_permille: int = 0  # chance per delivery of starting an operator replay
    max_replays: int = 0
    min_replays: int = 0  # replays forced after the faulty phase when fewer happened
    recycle_permille: int = 0  # chance per invocation that it lands in a new container
    faulty_invocations: int = 150  # then the weather clears (faults off), so every example ends
    # chance per delivery of an operator changing the registry pointer (a challenger named or
    # dropped, a promotion, a rollback, a champion named), at most `max_pointer_changes` times
    pointer_permille: int = 0
    max_pointer_changes: int = 0


# ============================================================================ stream records


@dataclass(frozen=True)
class Rec:
    """One record on one of the stack's streams: a Kinesis record, or a user record of one.

    A user record of an aggregate shares its Kinesis record's position (index, sequence
    number) and has its own partition key, data and index in the aggregate (`sub`).
    """

    stream: str  # logical id
    stream_name: str
    shard_id: str
    index: int  # position of the Kinesis record in its shard, from 0
    sequence_number: str
    partition_key: str
    data: bytes
    arrival: float
    sub: int | None = None  # index in its aggregate; None: a Kinesis record as stored

    @property
    def record_id(self) -> str:
        """As the handlers name a record (QuarantineTable keys, features_record_id)."""
        return record_id_of(self.stream_name, self.shard_id, self.sequence_number, self.sub)

    @property
    def position(self) -> tuple[str, str, str]:
        """The Kinesis record it is or is in: (stream, shard, sequence number)."""
        return self.stream, self.shard_id, self.sequence_number

    def label(self) -> str:
        sub = "" if self.sub is None else f".{self.sub}"
        return f"{self.stream.removesuffix('Stream')}/{self.shard_id[-2:]}[{self.index}{sub}]"


class StreamView:
    """Every record of one stream, shard by shard, read incrementally with the harness' client."""

    def __init__(self, kinesis: Any, logical_id: str, name: str):
        self.kinesis = kinesis
        self.logical_id = logical_id
        self.name = name
        self.shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=name)["Shards"]]
        self.records: dict[str, list[Rec]] = {s: [] for s in self.shards}
        self._iterators = {
            s: kinesis.get_shard_iterator(
                StreamName=name, ShardId=s, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            for s in self.shards
        }

    def refresh(self) -> None:
        for shard in self.shards:
            while True:
                page = self.kinesis.get_records(ShardIterator=self._iterators[shard], Limit=10_000)
                self._iterators[shard] = page.get("NextShardIterator") or self._iterators[shard]
                if not page["Records"]:
                    break
                for raw in page["Records"]:
                    arrived = raw["ApproximateArrivalTimestamp"]
                    self.records[shard].append(
                        Rec(
                            self.logical_id,
                            self.name,
                            shard,
                            len(self.records[shard]),
                            raw["SequenceNumber"],
                            raw["PartitionKey"],
                            raw["Data"],
                            arrived.timestamp()
                            if isinstance(arrived, datetime)
                            else float(arrived),
                        )
                    )

    def all(self) -> list[Rec]:
        return [r for shard in self.shards for r in self.records[shard]]


# ============================================================================ faults


THROTTLING = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "kinesis": "ProvisionedThroughputExceededException",
    "events": "ThrottlingException",
    "s3": "SlowDown",
}
SERVER_ERROR = {
    "dynamodb": "InternalServerError",
    "kinesis": "InternalFailure",
    "s3": "InternalError",
}
BATCH_CALLS = frozenset(
    {"dynamodb.BatchWriteItem", "dynamodb.BatchGetItem", "kinesis.PutRecords", "events.PutEvents"}
)
PUT_EVENTS = "events.PutEvents"
TRANSACT_WRITE = "dynamodb.TransactWriteItems"


def _client_error(code: str, status: int, operation: str) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "injected by the pipeline fuzz harness"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@dataclass
class InvocationLog:
    """One handler invocation, as the trace shows it."""

    number: int
    stage: str
    cursor: str
    first: Rec
    last: Rec
    size: int
    faults: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)  # transaction ids of alerts delivered
    outcome: str = ""
    function_error: bool = False

    def __str__(self) -> str:
        span = f"{self.first.label()}..{self.last.index}"
        text = f"{self.number:>4} {self.stage:<10} {self.cursor:<7} {span:<21} n={self.size:<2} {self.outcome}"
        if self.faults:
            text += " | " + "; ".join(self.faults)
        if self.alerts:
            text += " | alerts delivered: " + ", ".join(self.alerts)
        return text


class FaultInjector:
    """botocore hooks on the handlers' clients: faults per call, and what EventBridge really got."""

    def __init__(self) -> None:
        self.enabled = False
        self.dice: Dice | None = None
        self.rates = FaultRates()
        self.invocation: InvocationLog | None = None
        self.reset()

    def reset(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()  # (kind, "service.Operation")
        self.calls: Counter[str] = Counter()
        self.delivered: list[tuple[int, dict[str, Any]]] = []  # (invocation, event detail)
        self.putevents_unknown = 0  # PutEvents that took effect, and whose response was lost
        # every prediction a TransactWriteItems that took effect created (with its counts)
        self.created: list[dict[str, Any]] = []

    def attach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-call.*.*", self._before_call)
            client.meta.events.register("after-call.*.*", self._after_call)

    def detach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", self._before_call)
            client.meta.events.unregister("after-call.*.*", self._after_call)

    def summary(self) -> dict[str, dict[str, int]]:
        summary: dict[str, dict[str, int]] = defaultdict(dict)
        for (kind, operation), count in sorted(self.counts.items()):
            summary[kind][operation] = count
        return dict(summary)

    def _note(self, kind: str, operation: str, detail: str = "") -> None:
        self.counts[kind, operation] += 1
        if self.invocation is not None:
            self.invocation.faults.append(f"{kind} {operation}{' ' + detail if detail else ''}")

    # ------------------------------------------------------------------ before the call

    def _before_call(
        self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> Any:
        service = model.service_model.service_name
        operation = f"{service}.{model.name}"
        context["fuzz_operation"] = operation
        self.calls[operation] += 1
        if operation == PUT_EVENTS:
            context["fuzz_sent"] = json.loads(params["body"]).get("Entries", [])
        if operation == TRANSACT_WRITE:
            context["fuzz_puts"] = [
                deserialize(action["Put"]["Item"])
                for action in json.loads(params["body"]).get("TransactItems", [])
                if "Put" in action and "PredictionsTable" in action["Put"]["TableName"]
            ]
        if not self.enabled or self.dice is None:
            return None
        rates = self.rates
        kinds = [
            ("fail_before", rates.fail_before),
            ("lost_response", rates.lost_response),
            ("timeout", rates.timeout),
        ]
        if operation in BATCH_CALLS:
            kinds.append(("partial", rates.partial))
        kind = self.dice.pick(kinds)
        if kind is None:
            return None
        if kind == "fail_before":
            if self.dice.below(2) == 0:
                code, status = THROTTLING[service], 400
            else:
                code, status = SERVER_ERROR.get(service, "InternalException"), 500
            self._note(kind, operation, code)
            raise _client_error(code, status, model.name)
        if kind == "timeout":
            if self.dice.below(2) == 0:
                self._note("timeout_before", operation)
                raise InvocationTimeout(f"timed out before {operation}")
            context["fuzz_after"] = "timeout_after"
            return None
        if kind == "lost_response":
            context["fuzz_after"] = "lost_response"
            return None
        return self._partial(operation, params, context)

    def _partial(self, operation: str, params: dict[str, Any], context: dict[str, Any]) -> Any:
        """Hand a run of the batch back as unprocessed: the rest is sent, or nothing is."""
        assert self.dice is not None
        body = json.loads(params["body"])
        table, spec = next(iter(body.get("RequestItems", {"": None}).items()))
        if operation == "dynamodb.BatchWriteItem":
            entries = spec
        elif operation == "dynamodb.BatchGetItem":
            entries = spec["Keys"]
        else:
            entries = body["Records" if operation == "kinesis.PutRecords" else "Entries"]
        if not entries:
            return None
        n = len(entries)
        dropped = self.dice.between(1, n)
        start = self.dice.below(n - dropped + 1)
        drop = set(range(start, start + dropped))
        kept = [e for i, e in enumerate(entries) if i not in drop]
        self._note("partial", operation, f"{dropped}/{n} unprocessed")
        context["fuzz_partial"] = (n, drop, [entries[i] for i in sorted(drop)], table, spec)
        if operation == "dynamodb.BatchWriteItem":
            body["RequestItems"][table] = kept
        elif operation == "dynamodb.BatchGetItem":
            body["RequestItems"][table] = spec | {"Keys": kept}
        elif operation == "kinesis.PutRecords":
            body["Records"] = kept
        else:
            body["Entries"] = kept
            context["fuzz_sent"] = kept
        if kept:
            params["body"] = json.dumps(body).encode()
            return None
        # nothing left to send: answer as the service would, nothing takes effect
        context["fuzz_short_circuit"] = True
        return AWSResponse(params.get("url", ""), 200, HTTPHeaders(), None), _nothing_done(
            operation, table
        )

    # ------------------------------------------------------------------ after the call

    def _after_call(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        operation = context.get("fuzz_operation", "")
        executed = not context.get("fuzz_short_circuit") and http_response.status_code < 300
        if operation == PUT_EVENTS and executed:
            self._record_delivered(context.get("fuzz_sent", []), parsed.get("Entries", []))
        if operation == TRANSACT_WRITE and executed:
            self.created += context.get("fuzz_puts", [])
        if "fuzz_partial" in context:
            self._merge_unprocessed(operation, parsed, context["fuzz_partial"])
        after = context.get("fuzz_after")
        if after is None or not executed:
            return
        if operation == PUT_EVENTS:
            self.putevents_unknown += 1
        if after == "timeout_after":
            self._note("timeout_after", operation)
            raise InvocationTimeout(f"timed out after {operation} took effect")
        self._note("lost_response", operation)
        if self.dice is not None and self.dice.below(2) == 0:
            raise ReadTimeoutError(endpoint_url=f"https://{operation}.fuzz.invalid")
        raise _client_error("InternalServerError", 500, operation.split(".", 1)[1])

    def _record_delivered(self, sent: Sequence[Mapping[str, Any]], results: Sequence[Any]) -> None:
        number = self.invocation.number if self.invocation is not None else -1
        for entry, result in zip(sent, results, strict=False):
            if result.get("ErrorCode") or not result.get("EventId"):
                continue
            try:
                detail = json.loads(entry.get("Detail", "{}"))
            except ValueError:
                detail = {"unparsable": entry.get("Detail")}
            if not isinstance(detail, dict):
                detail = {"value": detail}
            detail = detail | {
                "_detail_type": entry.get("DetailType"),
                "_source": entry.get("Source"),
            }
            self.delivered.append((number, detail))
            if self.invocation is not None:
                self.invocation.alerts.append(str(detail.get("transaction_id")))

    @staticmethod
    def _merge_unprocessed(
        operation: str, parsed: dict[str, Any], partial: tuple[Any, ...]
    ) -> None:
        n, drop, dropped, table, spec = partial
        if operation == "dynamodb.BatchWriteItem":
            unprocessed = parsed.setdefault("UnprocessedItems", {})
            unprocessed[table] = list(unprocessed.get(table, [])) + dropped
        elif operation == "dynamodb.BatchGetItem":
            unprocessed = parsed.setdefault("UnprocessedKeys", {})
            previous = unprocessed.get(table, {}).get("Keys", [])
            unprocessed[table] = spec | {"Keys": list(previous) + dropped}
        else:
            name, count = (
                ("Records", "FailedRecordCount")
                if operation == "kinesis.PutRecords"
                else ("Entries", "FailedEntryCount")
            )
            code = THROTTLING[operation.split(".", 1)[0]]
            answered = iter(parsed.get(name, []))
            parsed[name] = [
                {"ErrorCode": code, "ErrorMessage": "injected"} if i in drop else next(answered)
                for i in range(n)
            ]
            parsed[count] = int(parsed.get(count, 0) or 0) + len(drop)


def _nothing_done(operation: str, table: str) -> dict[str, Any]:
    """The parsed response of a batch call none of whose entries was processed (before the merge)."""
    parsed: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": 200}}
    if operation == "dynamodb.BatchWriteItem":
        return parsed | {"UnprocessedItems": {}}
    if operation == "dynamodb.BatchGetItem":
        return parsed | {"Responses": {table: []}, "UnprocessedKeys": {}}
    if operation == "kinesis.PutRecords":
        return parsed | {"FailedRecordCount": 0, "Records": []}
    return parsed | {"FailedEntryCount": 0, "Entries": []}


# ============================================================================ the stack


class Pipeline:
    """moto with the template's tables and streams, and the two handlers' containers against it."""

    def __init__(self) -> None:
        self.template = load_template(TEMPLATE_PATH)
        self.injector = FaultInjector()
        self.model: ScoringModel = load_model(MODEL_DIR, 1, 1)
        self.models: dict[str, ScoringModel] = {self.model.model_version: self.model}
        self._registry_dir = Path(tempfile.mkdtemp(prefix="fuzz-registry-"))
        self.environments: dict[str, dict[str, str]] = {}
        self.streams: dict[str, StreamView] = {}
        self._containers: dict[str, Wired] = {}
        self._saved_environ: dict[str, str] | None = None
        self._saved_modules: dict[str, ModuleType | None] = {}
        self._mock: Any = None
        self._moto_methods: tuple[Any, Any] | None = None
        self._shards: list[dict[str, Any]] = []
        self.failure_queue_url = ""
        self.stack: LocalStack

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Pipeline:
        # the local run's speed-ups of moto that keep its answers (JSON of DynamoDB item calls,
        # constant-time shard appends): a third of an example's time; undone by close()
        self._moto_methods = (DynamoHandler.serialized, Shard.get_max_sequence_number)
        moto_process._dump_dynamodb_items_directly()
        moto_process._constant_time_stream_appends()
        self._saved_environ = dict(os.environ)
        os.environ.update(FAKE_CREDENTIALS | POWERTOOLS_TEST_ENV | HANDLER_ENV)
        self._mock = mock_aws()
        self._mock.start()
        self.stack = LocalStack(
            template=self.template,
            dynamodb=boto3.client("dynamodb", region_name=REGION),
            kinesis=boto3.client("kinesis", region_name=REGION),
        )
        boto3.client("events", region_name=REGION).create_event_bus(Name=BUS_NAME)
        self._publish_versions()
        for logical_id in table_definitions(self.template):
            self.stack.tables[logical_id] = f"streamscore-{logical_id}-local"
        for logical_id in stream_definitions(self.template):
            self.stack.streams[logical_id] = f"streamscore-{logical_id}-local"
        self.reset()
        self.environments = {
            "preprocess": self.stack.function_environment("PreprocessFunction", HANDLER_ENV),
            "score": self.stack.function_environment(
                "ScoreFunction",
                HANDLER_ENV
                | {
                    "EVENT_BUS_NAME": BUS_NAME,
                    "MODEL_DIR": str(MODEL_DIR),
                    "ARTIFACTS_BUCKET": ARTIFACTS_BUCKET,
                    "MODEL_REFRESH_SECONDS": "0",  # the pointer read before every batch
                    # a fifth of the would-be declines reviewed instead: their predictions, alerts,
                    # counts and labels are checked as such
                    "DECLINE_SAMPLE_SHARE": str(DECLINE_SAMPLE_SHARE),
                },
            ),
            "labels": self.stack.function_environment("LabelsFunction", HANDLER_ENV),
            FEATURE_LOG: self.stack.function_environment(
                "FeatureLogFunction", HANDLER_ENV | {"ARTIFACTS_BUCKET": ARTIFACTS_BUCKET}
            ),
        }
        for name in (
            "streamscore.handlers.preprocess",
            "streamscore.handlers.score",
            "streamscore.handlers.labels",
            "streamscore.handlers.feature_log",
            "streamscore.core.observability",
        ):
            self._saved_modules[name] = sys.modules.get(name)
        sys.modules.pop(
            "streamscore.core.observability", None
        )  # its singletons read the environment
        for stage in (*STAGES, FEATURE_LOG):
            self.cold_start(stage)
        return self

    def _publish_versions(self) -> None:
        """The registry's versions in the artifacts bucket (the pointer names none yet)."""
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
        versions = S3ModelVersions(s3, ARTIFACTS_BUCKET)
        # the other model: sigmoid(0.4 * amount_log - 2), a mix of decisions on real amounts
        for directory in (
            renamed_model(self._registry_dir, SAME_SCORES),
            write_model_dir(self._registry_dir / OTHER_SCORES, OTHER_SCORES, 0.4, 0.6, weight=0.4),
        ):
            files = {f.name: f.read_bytes() for f in directory.iterdir() if f.is_file()}
            model = load_model(directory, 1, 1)
            versions.publish(model.model_version, files)
            self.models[model.model_version] = model

    def pointer(self) -> DynamoModelPointer:
        return DynamoModelPointer(self.stack.dynamodb, self.stack.tables["MonitoringTable"])

    def close(self) -> None:
        shutil.rmtree(self._registry_dir, ignore_errors=True)
        for app in self._containers.values():
            self.injector.detach(*self._clients(app))
            self._shutdown(app)
        self._containers.clear()
        for name, module in self._saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if self._mock is not None:
            self._mock.stop()
        if self._moto_methods is not None:
            serialized, max_sequence_number = self._moto_methods
            setattr(DynamoHandler, "serialized", serialized)  # noqa: B010 - a method
            setattr(Shard, "get_max_sequence_number", max_sequence_number)  # noqa: B010
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)

    def cold_start(self, stage: str) -> Wired:
        """A new container for `stage`: its handler module imported afresh, nothing in memory.

        The stage is built with its steps and the adapters' calls inline (determinism), a
        backoff that does not sleep, and on clients the fault hooks are attached to.
        """
        previous = self._containers.pop(stage, None)
        if previous is not None:
            self.injector.detach(*self._clients(previous))
            self._shutdown(previous)
        module_name = f"streamscore.handlers.{stage}"
        os.environ.update(self.environments[stage])
        sys.modules.pop(module_name, None)
        module = importlib.import_module(module_name)
        executors = {"io_executor": InlineExecutor()}
        if "step_executor" in inspect.signature(module.build).parameters:
            executors["step_executor"] = InlineExecutor()
        app = wire(module, self.environments[stage], backoff=quiet_backoff(seed=0), **executors)
        self.injector.attach(*self._clients(app))
        self._containers[stage] = app
        return app

    def handler(self, stage: str) -> Wired:
        return self._containers[stage]

    @property
    def score(self) -> Wired:
        return self._containers["score"]

    @staticmethod
    def _clients(app: Wired) -> list[Any]:
        return [c for c in (app.dynamodb, app.kinesis, app.events, app.s3) if c is not None]

    @staticmethod
    def _shutdown(app: Wired) -> None:
        for executor in app.pools:
            executor.shutdown(wait=False)

    def prediction_changes(self) -> tuple[str, list[dict[str, Any]]]:
        """PredictionsTable's stream: its ARN and every record (as the emulator reads one)."""
        table = self.stack.tables["PredictionsTable"]
        arn = self.stack.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        streams = DynamoStreamAsKinesis(boto3.client("dynamodbstreams", region_name=REGION))
        records: list[dict[str, Any]] = []
        for shard in streams.list_shards(StreamARN=arn)["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while True:
                page = streams.get_records(ShardIterator=iterator)
                if not page["Records"]:
                    break
                records += [r | {"ShardId": shard["ShardId"]} for r in page["Records"]]
                iterator = page["NextShardIterator"]
        return arn, records

    def feature_log(self) -> list[dict[str, Any]]:
        """Every row of every feature-log object."""
        s3 = boto3.client("s3", region_name=REGION)
        rows: list[dict[str, Any]] = []
        listing = s3.list_objects_v2(Bucket=ARTIFACTS_BUCKET, Prefix=LOG_PREFIX)
        for entry in listing.get("Contents", []):
            rows += decode(s3.get_object(Bucket=ARTIFACTS_BUCKET, Key=entry["Key"])["Body"].read())
        return rows

    def reset(self) -> None:
        """Fresh tables and streams (same names: the handlers' clients are bound to them)."""
        s3 = boto3.client("s3", region_name=REGION)
        for entry in s3.list_objects_v2(Bucket=ARTIFACTS_BUCKET, Prefix=LOG_PREFIX).get(
            "Contents", []
        ):
            s3.delete_object(Bucket=ARTIFACTS_BUCKET, Key=entry["Key"])
        dynamodb, kinesis = self.stack.dynamodb, self.stack.kinesis
        existing_tables = set(dynamodb.list_tables()["TableNames"])
        for logical_id, kwargs in table_definitions(self.template).items():
            name = self.stack.tables[logical_id]
            if name in existing_tables:
                dynamodb.delete_table(TableName=name)
            dynamodb.create_table(TableName=name, **kwargs)
        existing_streams = set(kinesis.list_streams()["StreamNames"])
        for logical_id, kwargs in stream_definitions(self.template).items():
            name = self.stack.streams[logical_id]
            if name in existing_streams:
                kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
            kinesis.create_stream(StreamName=name, **kwargs)
        self.streams = {
            logical_id: StreamView(kinesis, logical_id, self.stack.streams[logical_id])
            for logical_id in (TRANSACTIONS, FEATURES, LABELS)
        }
        self._shards = kinesis.list_shards(StreamName=self.stack.streams[TRANSACTIONS])["Shards"]
        sqs = boto3.client("sqs", region_name=REGION)
        if self.failure_queue_url:
            sqs.delete_queue(QueueUrl=self.failure_queue_url)
        self.failure_queue_url = sqs.create_queue(QueueName="streamscore-FailureQueue-local")[
            "QueueUrl"
        ]
        self.injector.reset()

    def shard_of(self, partition_key: str) -> str:
        return shard_of_key(self._shards, partition_key)

    def run(self, workload: Workload, scenario: Scenario, dice: Dice) -> ExampleRun:
        """Fresh stack and containers, then one example played to its end; `verify` it after."""
        self.reset()
        for stage in STAGES:
            self.cold_start(stage)
        example = ExampleRun(self, workload, scenario, dice)
        example.execute()
        return example


# ============================================================================ the event-source mappings


@dataclass
class FailureEntry:
    """What the on-failure destination received: a discarded range of one shard."""

    stream: str
    shard_id: str
    first: int  # indexes in the shard, inclusive
    last: int
    first_sequence_number: str
    last_sequence_number: str
    cursor: str
    fault_free: bool  # discarded while no fault was injected: nothing re-drives it

    def covers(self, record: Rec) -> bool:
        return (
            record.stream == self.stream
            and record.shard_id == self.shard_id
            and self.first <= record.index <= self.last
        )

    def __str__(self) -> str:
        fate = "fault-free: never re-driven" if self.fault_free else "re-driven at the end"
        return (
            f"{self.stream}/{self.shard_id} [{self.first}..{self.last}] seq "
            f"{self.first_sequence_number}..{self.last_sequence_number} ({self.cursor}; {fate})"
        )


@dataclass
class Cursor:
    """One mapping (or an operator's replay or re-drive) on one shard: a checkpoint, its retries."""

    stream: str
    shard_id: str
    kind: str  # "main", "replay", "redrive"
    position: int
    stop: int | None  # exclusive end; None: follow the stream
    retry_limit: int | None
    attempts: int = 0
    halves: list[int] = field(default_factory=list)  # batch ends still to deliver after a bisect
    fault_free_failures: int = 0

    @property
    def stage(self) -> str:
        return STAGE_OF[self.stream]


@dataclass
class Attempt:
    failed_from: int | None  # shard index of the lowest failed record; None: all succeeded
    error: str | None = None  # a function error (raised, timed out, or an invalid response)


class ExampleRun:
    """One example: produce, deliver with faults and replays, then re-drive and drain fault-free."""

    def __init__(self, pipeline: Pipeline, workload: Workload, scenario: Scenario, dice: Dice):
        self.pipeline = pipeline
        self.workload = workload
        self.scenario = scenario
        self.dice = dice
        self.injector = pipeline.injector
        self.streams = pipeline.streams
        # What the functions process of TransactionsStream, in workload order: each plain record,
        # each user record of an aggregate, each corrupted aggregate whole (at its first record)
        self.produced: list[Rec] = []
        self.placed: list[Rec] = []  # per workload record: the record of `produced` it is (in)
        self.members: dict[str, int] = {}  # record id of `produced` -> workload records it holds
        self.corrupt: set[str] = set()  # record ids of the corrupted aggregates
        self.users: dict[tuple[str, str, str], list[Rec]] = {}  # Kinesis record -> its records
        self.failures: list[FailureEntry] = []
        self.redrive_report: dict[str, Any] | None = None  # the re-drive command's report
        self.trace: list[InvocationLog] = []
        self.unsettled_alerts: set[str] = set()  # alerts delivered, their record not settled
        self.contract: list[Violation] = []
        self.cursors: list[Cursor] = []
        self.replays = 0
        self.bisects = 0
        self.pointer_changes: list[str] = []  # the operator's, in order, with the pointer after
        self.containers: Counter[str] = Counter(dict.fromkeys(STAGES, 1))

    # ------------------------------------------------------------------ the example

    def execute(self) -> None:
        self._produce()
        self.cursors = [
            Cursor(stream, shard, "main", 0, None, self._limit(stream))
            for stream in (TRANSACTIONS, FEATURES, LABELS)
            for shard in self.streams[stream].shards
        ]
        self.injector.dice = self.dice
        self.injector.rates = self.scenario.faults
        self.injector.enabled = self.scenario.faults.any
        try:
            while len(self.trace) < self.scenario.faulty_invocations:
                if self.replays < self.scenario.max_replays and self.dice.permille(
                    self.scenario.replay_permille
                ):
                    self._start_replay()
                if len(self.pointer_changes) < self.scenario.max_pointer_changes and (
                    self.dice.permille(self.scenario.pointer_permille)
                ):
                    self._change_pointer()
                active = self._active()
                if not active:
                    break
                self._step(active[self.dice.below(len(active))])
            while self.replays < self.scenario.min_replays and self._start_replay():
                pass
        finally:
            # the weather clears: drain, re-drive what was discarded, drain again
            self.injector.enabled = False
        calm = Dice(random.Random(self.dice.below(1 << 16)))  # fault-free, off the choice budget
        self._drain(calm)
        self._redrive(calm)
        self._drain(calm)
        self._log_features(calm)

    def _log_features(self, calm: Dice) -> None:
        """FeatureLogFunction on PredictionsTable's stream, once the other stages drained.

        The stream is append-only and the feature records it joins are written once, before
        their record reaches scoring: a consumer that follows it during the run sees a prefix
        of what it holds now, so delivering it afterwards covers every schedule of the log's
        own. Batches of 1 to 12 records from the checkpoint; a function error retries from it
        (with another size: Lambda's bisection, or a retry); batchItemFailures moves the
        checkpoint to the failed record. The weather of the example blows on the log's calls
        (FeaturesTable reads, S3 writes) for its first invocations, then clears.
        """
        arn, raw = self.pipeline.prediction_changes()
        records = [
            Rec(
                PREDICTION_CHANGES,
                self.pipeline.stack.tables["PredictionsTable"],
                r["ShardId"],
                i,
                r["SequenceNumber"],
                "",
                r["Data"],
                float(r["ApproximateArrivalTimestamp"]),
            )
            for i, r in enumerate(raw)
        ]
        faulty = self.scenario.faulty_invocations // FEATURE_LOG_FAULTY_SHARE
        self.injector.enabled = self.scenario.faults.any and faulty > 0
        position = invocations = 0
        try:
            while position < len(records):
                if invocations >= faulty:
                    self.injector.enabled = False
                if invocations > faulty + DRAIN_LIMIT:
                    raise HarnessError(f"the feature log did not drain{self.describe()}")
                dice = self.dice if self.injector.enabled else calm
                batch = records[position : position + calm.between(1, 12)]
                event = dynamodb_event([raw[r.index] for r in batch], arn, REGION)
                attempt, _ = self._call(FEATURE_LOG, "main", batch, event, dice)
                invocations += 1
                if attempt.failed_from is None:
                    position += len(batch)
                elif attempt.error is None:
                    position = attempt.failed_from
        finally:
            self.injector.enabled = False

    def _redrive(self, dice: Dice) -> None:
        """The operator's re-drive command (`local.embedded.redrive`) on the example's FailureQueue."""
        report = redrive(
            self.pipeline.failure_queue_url,
            lambda service: boto3.client(service, region_name=REGION),
            lambda function_arn, event: self._redrive_invoke(function_arn, event, dice),
            attempts=3,
            sleep=lambda _seconds: None,
        )
        self.redrive_report = report.as_dict()
        if not report.ok or report.messages != len(self.failures):
            self.contract.append(
                Violation(
                    "redrive",
                    self.pipeline.failure_queue_url.rsplit("/", 1)[-1],
                    f"{report.messages} messages for {len(self.failures)} discarded ranges; "
                    f"re-drive report: {json.dumps(self.redrive_report)[:2000]}",
                )
            )

    def _limit(self, stream: str) -> int | None:
        return self.scenario.retry_limit[0 if stream == TRANSACTIONS else 1]

    def _produce(self) -> None:
        """Put the workload (one PutRecords, in put order); know each Kinesis record's user records."""
        view = self.streams[TRANSACTIONS]
        records = self.workload.records
        puts = self.workload.kinesis_records()
        entries = []
        for put in puts:
            data = records[put.members[0]].payload
            if put.aggregated:
                data = encode_aggregate(
                    [UserRecord(records[i].partition_key, records[i].payload) for i in put.members]
                )
                data = corrupt_digest(data) if put.corrupt else data
            entries.append({"PartitionKey": records[put.members[0]].partition_key, "Data": data})
        response = self.pipeline.stack.kinesis.put_records(StreamName=view.name, Records=entries)
        if response.get("FailedRecordCount"):
            raise HarnessError(f"moto refused records: {response}")
        view.refresh()
        by_position = {(r.shard_id, r.sequence_number): r for r in view.all()}
        placed: dict[int, Rec] = {}
        for put, entry in zip(puts, response["Records"], strict=True):
            kinesis = by_position[(entry["ShardId"], entry["SequenceNumber"])]
            strays = [
                i
                for i in put.members
                if self.pipeline.shard_of(records[i].partition_key) != kinesis.shard_id
            ]
            if strays:
                raise HarnessError(
                    f"{put.describe()} landed on {kinesis.shard_id}, not the shard of #{strays[0]}"
                )
            if put.aggregated and not put.corrupt:
                users = [
                    replace(
                        kinesis,
                        partition_key=records[i].partition_key,
                        data=records[i].payload,
                        sub=sub,
                    )
                    for sub, i in enumerate(put.members)
                ]
                holders = users  # each workload record is a user record of its own
            else:  # a plain record, or a corrupted aggregate: one record stands for them all
                users = [kinesis]
                holders = users * len(put.members)
                if put.corrupt:
                    self.corrupt.add(kinesis.record_id)
            self.users[kinesis.position] = users
            for i, holder in zip(put.members, holders, strict=True):
                placed[i] = holder
                self.members[holder.record_id] = self.members.get(holder.record_id, 0) + 1
        self.placed = [placed[i] for i in range(len(records))]
        self.produced = list(dict.fromkeys(self.placed))  # each once, at its first record
        if self.workload.labels:
            labels = self.streams[LABELS]
            response = self.pipeline.stack.kinesis.put_records(
                StreamName=labels.name,
                Records=[
                    {"PartitionKey": r.partition_key, "Data": r.payload}
                    for r in self.workload.labels
                ],
            )
            if response.get("FailedRecordCount"):
                raise HarnessError(f"moto refused labels: {response}")
            labels.refresh()

    def _records(self, cursor: Cursor) -> list[Rec]:
        return self.streams[cursor.stream].records[cursor.shard_id]

    def _end(self, cursor: Cursor) -> int:
        available = len(self._records(cursor))
        return available if cursor.stop is None else min(cursor.stop, available)

    def _active(self) -> list[Cursor]:
        self.cursors = [c for c in self.cursors if c.kind == "main" or c.position < self._end(c)]
        return [c for c in self.cursors if c.position < self._end(c)]

    def _drain(self, dice: Dice) -> None:
        start = len(self.trace)
        while active := self._active():
            if len(self.trace) - start > DRAIN_LIMIT:
                raise HarnessError(
                    f"a fault-free drain did not end in {DRAIN_LIMIT} invocations{self.describe()}"
                )
            self._step(active[dice.below(len(active))], dice)

    def _change_pointer(self) -> None:
        """An operator's registry command between two deliveries: a challenger named or dropped,
        the challenger promoted, the champion rolled back, or a champion named."""
        store = self.pipeline.pointer()
        current = store.read(consistent=True)
        registry = [v for v in (SAME_SCORES, OTHER_SCORES) if v != current.champion]
        options: list[tuple[str, Callable[[], Pointer]]] = [
            (f"challenger {v}", functools.partial(current.with_challenger, v))
            for v in registry
            if v != current.challenger
        ]
        options += [
            (f"champion {v}", functools.partial(current.with_champion, v)) for v in registry
        ]
        if current.challenger is not None:
            options += [
                ("promote", current.promoted),
                ("drop challenger", functools.partial(current.with_challenger, None)),
            ]
        if current.champion is not None:
            options.append(("rollback", current.rolled_back))
        what, change = options[self.dice.below(len(options))]
        new = change()
        store.write(new, current.revision)
        self.pointer_changes.append(
            f"before invocation {len(self.trace) + 1}: {what} -> champion "
            f"{new.champion or 'shipped'}, challenger {new.challenger or 'none'}"
        )

    def _start_replay(self) -> bool:
        """An operator replay: an already processed range of one shard, with new batch boundaries."""
        mains = [c for c in self.cursors if c.kind == "main" and c.position > 0]
        if not mains:
            return False
        main = mains[self.dice.below(len(mains))]
        start = self.dice.below(main.position)
        stop = start + 1 + self.dice.below(main.position - start)
        self.cursors.append(
            Cursor(main.stream, main.shard_id, "replay", start, stop, self._limit(main.stream))
        )
        self.replays += 1
        return True

    # ------------------------------------------------------------------ one delivery

    def _step(self, cursor: Cursor, dice: Dice | None = None) -> None:
        dice = dice or self.dice
        end = (
            cursor.halves[-1]
            if cursor.halves
            else min(cursor.position + dice.between(1, MAX_BATCH), self._end(cursor))
        )
        batch = self._records(cursor)[cursor.position : end]
        attempt = self._invoke(cursor, batch, dice)
        if attempt.failed_from is None:
            cursor.position = end
            cursor.attempts = 0
            cursor.fault_free_failures = 0
            if cursor.halves and cursor.halves[-1] == end:
                cursor.halves.pop()
            return
        if attempt.error is None:
            # ReportBatchItemFailures: the records below the lowest failure are done
            if attempt.failed_from > cursor.position:
                cursor.fault_free_failures = 0
            cursor.position = attempt.failed_from
        elif len(batch) > 1 and dice.below(2):
            # BisectBatchOnFunctionError: each half on its own, no retry consumed
            if not cursor.halves or cursor.halves[-1] != end:
                cursor.halves.append(end)
            cursor.halves.append(cursor.position + len(batch) // 2)
            self.bisects += 1
            return
        if not self.injector.enabled:
            cursor.fault_free_failures += 1
        cursor.attempts += 1
        limit = cursor.retry_limit
        stuck = cursor.fault_free_failures >= STUCK_AFTER
        if stuck:
            self.contract.append(
                Violation(
                    "handler",
                    f"{cursor.stream}/{cursor.shard_id} [{cursor.position}..{end - 1}]",
                    f"failed {STUCK_AFTER} fault-free deliveries in a row ({cursor.kind} "
                    "cursor): a record that never succeeds without faults; discarded",
                )
            )
        if stuck or (limit is not None and cursor.attempts > limit):
            self._discard(cursor, end)

    def _discard(self, cursor: Cursor, end: int) -> None:
        records = self._records(cursor)
        first, last = records[cursor.position], records[end - 1]
        self.failures.append(
            FailureEntry(
                cursor.stream,
                cursor.shard_id,
                first.index,
                last.index,
                first.sequence_number,
                last.sequence_number,
                cursor.kind,
                fault_free=not self.injector.enabled,
            )
        )
        self._send_to_failure_queue(cursor, records[cursor.position : end])
        cursor.position = end
        cursor.attempts = 0
        cursor.fault_free_failures = 0
        if cursor.halves and cursor.halves[-1] == end:
            cursor.halves.pop()

    def _send_to_failure_queue(self, cursor: Cursor, discarded: Sequence[Rec]) -> None:
        """Lambda's on-failure record for the discarded range, as the mapping's destination gets it."""
        region_account = f"{REGION}:{ACCOUNT}"
        mapping = MappingConfig(
            uuid=f"harness-{cursor.stage}",
            function_arn=function_arn_of(cursor.stage),
            event_source_arn=f"arn:aws:kinesis:{region_account}:stream/{discarded[0].stream_name}",
            batch_size=MAX_BATCH,
            batching_window_s=0.0,
            parallelization_factor=1,
            bisect_on_error=True,
            maximum_retry_attempts=cursor.retry_limit if cursor.retry_limit is not None else -1,
            maximum_record_age_s=-1,
            report_batch_item_failures=True,
            on_failure_destination=f"arn:aws:sqs:{region_account}:streamscore-FailureQueue-local",
            starting_position="TRIM_HORIZON",
            enabled=True,
        )
        body = on_failure_record(
            mapping,
            cursor.shard_id,
            [
                {"SequenceNumber": r.sequence_number, "ApproximateArrivalTimestamp": r.arrival}
                for r in discarded
            ],
            "RetryAttemptsExhausted",
            cursor.attempts,
            None,
            datetime.now(UTC),
        )
        boto3.client("sqs", region_name=REGION).send_message(
            QueueUrl=self.pipeline.failure_queue_url, MessageBody=json.dumps(body)
        )

    def _invoke(self, cursor: Cursor, batch: Sequence[Rec], dice: Dice) -> Attempt:
        view = self.streams[cursor.stream]
        event = kinesis_event(
            [
                KinesisEntry(
                    r.partition_key, r.data, sequence_number=r.sequence_number, arrival=r.arrival
                )
                for r in batch
            ],
            view.name,
            cursor.shard_id,
            region=REGION,
        )
        return self._call(cursor.stage, cursor.kind, batch, event, dice)[0]

    def _redrive_invoke(self, function_arn: str, event: dict[str, Any], dice: Dice) -> Invocation:
        """The re-drive command's invoker: its event (from the stream) through the harness's handler."""
        stage = next((s for s in STAGES if function_arn == function_arn_of(s)), None)
        if stage is None:
            return Invocation(error=FunctionError("ResourceNotFoundException", function_arn, []))
        stream = next(name for name, s in STAGE_OF.items() if s == stage)
        by_position = {(r.shard_id, r.sequence_number): r for r in self.streams[stream].all()}
        batch = [
            by_position[(raw["eventID"].split(":", 1)[0], raw["kinesis"]["sequenceNumber"])]
            for raw in event["Records"]
        ]
        attempt, response = self._call(stage, "redrive", batch, event, dice)
        if attempt.error is not None:
            return Invocation(error=FunctionError("HandlerError", attempt.error, []))
        return Invocation(response=response)

    def _call(
        self, stage: str, kind: str, batch: Sequence[Rec], event: dict[str, Any], dice: Dice
    ) -> tuple[Attempt, Any]:
        log = InvocationLog(len(self.trace) + 1, stage, kind, batch[0], batch[-1], len(batch))
        self.trace.append(log)
        if dice.permille(self.scenario.recycle_permille):
            self._new_container(stage)
            log.faults.append("new container")
        app = self.pipeline.handler(stage)
        puts_before = self.injector.calls["kinesis.PutRecords"]
        self.injector.invocation = log
        response: Any = None
        try:
            response = app.lambda_handler(event, FakeLambdaContext())
        except InvocationTimeout as timeout:
            attempt = Attempt(batch[0].index, f"timeout: {timeout}")
            self._new_container(stage)  # Lambda restarts the runtime after a timeout
        except (RetryableError, ClientError, BotoCoreError) as error:
            attempt = Attempt(batch[0].index, f"raised {type(error).__name__}")
        except Exception as error:
            attempt = Attempt(batch[0].index, f"raised {type(error).__name__}: {error}")
            self.contract.append(
                Violation(
                    "handler",
                    f"{stage} invocation {log.number}",
                    f"raised {type(error).__name__}: {error}",
                )
            )
        else:
            attempt = self._response(stage, batch, response, log)
        finally:
            self.injector.invocation = None
            metrics = getattr(app, "metrics", None)
            if metrics is not None:
                metrics.clear_metrics()  # Powertools clears them only when it prints them
        if self.injector.calls["kinesis.PutRecords"] != puts_before:
            self.streams[FEATURES].refresh()
        log.function_error = attempt.error is not None
        log.outcome = (
            "ok"
            if attempt.failed_from is None
            else attempt.error or f"batchItemFailures from [{attempt.failed_from}]"
        )
        if log.alerts:
            unsettled = {
                _transaction_id(user)
                for r in batch
                if attempt.failed_from is not None and r.index >= attempt.failed_from
                for user in self.users_of(r)
            }
            self.unsettled_alerts.update(t for t in log.alerts if t in unsettled)
        return attempt, response

    def users_of(self, record: Rec) -> list[Rec]:
        """The records the functions process of Kinesis record `record` (itself when plain)."""
        return self.users.get(record.position, [record])

    def _new_container(self, stage: str) -> None:
        self.pipeline.cold_start(stage)
        self.containers[stage] += 1

    def _response(
        self, stage: str, batch: Sequence[Rec], response: Any, log: InvocationLog
    ) -> Attempt:
        failures = response.get("batchItemFailures") if isinstance(response, Mapping) else None
        if not failures:
            return Attempt(None)
        index_of = {r.sequence_number: r.index for r in batch}
        identifiers = [
            str(f.get("itemIdentifier")) if isinstance(f, Mapping) else repr(f) for f in failures
        ]
        repeated = sorted(i for i, n in Counter(identifiers).items() if n > 1)
        if repeated:
            # Lambda takes it; the functions promise one entry per failed Kinesis record
            self.contract.append(
                Violation(
                    "handler",
                    f"{stage} invocation {log.number}",
                    f"batchItemFailures names {repeated!r} more than once (one entry per "
                    "failed Kinesis record, however many of its user records failed)",
                )
            )
        unknown = [i for i in identifiers if i not in index_of]
        if unknown:
            self.contract.append(
                Violation(
                    "handler",
                    f"{stage} invocation {log.number}",
                    f"batchItemFailures names {unknown!r}, not sequence numbers of its batch "
                    "(Lambda fails the whole batch)",
                )
            )
            return Attempt(batch[0].index, "invalid batchItemFailures response")
        return Attempt(min(index_of[i] for i in identifiers))

    # ------------------------------------------------------------------ reporting

    def describe(self, trace_lines: int = 150) -> str:
        function_errors = sum(1 for log in self.trace if log.function_error)
        partials = sum(1 for log in self.trace if log.outcome.startswith("batchItemFailures"))
        stages = Counter(log.stage for log in self.trace)
        lines = [
            "",
            "--- the example ---",
            f"scenario: {self.scenario}",
            f"faults injected: {self.injector.summary() or 'none'}",
            f"EventBridge PutEvents that took effect with an unknown outcome: "
            f"{self.injector.putevents_unknown}",
            f"invocations: {len(self.trace)} {dict(stages)}, function errors {function_errors}, "
            f"partial batch responses {partials}, bisections {self.bisects}, "
            f"replays {self.replays}, containers {dict(self.containers)}",
            "FailureQueue: " + ("; ".join(str(f) for f in self.failures) or "empty"),
            "registry pointer changes: " + ("; ".join(self.pointer_changes) or "none"),
            "TransactionsStream, in put order (#workload index, stream/shard[index.sub]):",
        ]
        packed = {
            i: put.describe()
            for put in self.workload.kinesis_records()
            if put.aggregated
            for i in put.members
        }
        for i, (record, produced) in enumerate(
            zip(self.placed, self.workload.records, strict=True)
        ):
            line = f"  #{i:<3} {record.label():<17} {produced.describe()}"
            lines.append(line + (f" [{packed[i]}]" if i in packed else ""))
        lines.append("invocations (number, stage, cursor, records, size, outcome | faults):")
        shown = self.trace[-trace_lines:]
        if len(self.trace) > len(shown):
            lines.append(f"  ... {len(self.trace) - len(shown)} earlier invocations left out")
        lines += [f"  {log}" for log in shown]
        return "\n".join(lines)


def _transaction_id(record: Rec) -> str | None:
    try:
        doc = json.loads(record.data)
    except ValueError:
        return None
    value = doc.get("transaction_id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


# ============================================================================ invariants


@dataclass(frozen=True)
class Violation:
    invariant: str  # a key of INVARIANTS
    subject: str  # the transaction, card or record concerned
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.subject}: {self.detail}"


class InvariantError(AssertionError):
    """An effectively-once invariant of the pipeline does not hold (the message says which)."""


class AccountingError(InvariantError):
    """A TransactionsStream record is not exactly one of: applied, absorbed, quarantined."""


class FeatureStateError(InvariantError):
    """Feature items or card state differ from a replay of the distinct transactions."""


class ApplicationOrderError(InvariantError):
    """A card's transactions were applied out of stream order."""


class PredictionError(InvariantError):
    """Not exactly one prediction per distinct transaction, or not the model's score."""


class AlertError(InvariantError):
    """A decline without an alert, an alert repeated without an unknown outcome, a stray alert."""


class HandlerContractError(InvariantError):
    """A handler broke Lambda's contract (unexpected exception, invalid response, stuck record)."""


class StateVersionMissingError(InvariantError):
    """FeaturesTable items do not carry their integer state_version."""


class MonitoringTotalsError(InvariantError):
    """The hourly count items do not count each prediction and each quarantined record once."""


class FeatureLogError(InvariantError):
    """A prediction's first write is not in the feature log with the features it was scored
    from, or the log holds a row of no first write, or two rows of one transaction differ."""


class LabelError(InvariantError):
    """A transaction's label in force is not its greatest, or the quality counts are not the
    labels in force, each once."""


# In the order a failure names them: the first broken one gives the exception's class.
INVARIANTS: dict[str, tuple[type[InvariantError], str]] = {
    "accounting": (AccountingError, "each record applied, absorbed or quarantined, once"),
    "features": (FeatureStateError, "features and card state reproduce a replay"),
    "order": (ApplicationOrderError, "per card, the stream order of first versions"),
    "predictions": (PredictionError, "one prediction per transaction, the model's score"),
    "alerts": (AlertError, "an alert per decline, repeated only after an unknown outcome"),
    "handler": (HandlerContractError, "the handlers keep Lambda's contract"),
    "state_version": (StateVersionMissingError, "feature items carry state_version"),
    "totals": (MonitoringTotalsError, "count items count each prediction and bad record once"),
    "labels": (LabelError, "each transaction's greatest label in force, counted once"),
    "feature_log": (FeatureLogError, "each prediction's first write logged with its features"),
}
CORE_CHECKS = (
    "accounting",
    "features",
    "order",
    "predictions",
    "alerts",
    "handler",
    "state_version",
    "totals",
    "labels",
    "feature_log",
)


@dataclass
class Reference:
    """The stream as the pipeline must take it: each distinct transaction once, first version wins."""

    records: list[Rec]  # TransactionsStream, in put order
    kind: dict[str, str]  # record_id -> "invalid" | "first" | "repeat" | "conflict"
    transaction: dict[str, Transaction]  # record_id -> its transaction (valid records)
    winner: dict[str, Rec]  # transaction_id -> the record whose version is applied
    distinct: list[str]  # transaction ids, in stream order of their winners
    discarded: list[FailureEntry]  # TransactionsStream ranges discarded at some point
    members: dict[str, int] = field(default_factory=dict)  # record_id -> user records it holds
    corrupt: set[str] = field(default_factory=set)  # record ids of corrupted aggregates

    def card(self, txn_id: str) -> str:
        return self.txn(txn_id).card_id

    def txn(self, txn_id: str) -> Transaction:
        return self.transaction[self.winner[txn_id].record_id]

    def in_discarded(self, record: Rec) -> bool:
        return any(entry.covers(record) for entry in self.discarded)


def parse_transaction(payload: bytes) -> Transaction | None:
    """The record's Transaction when the contract accepts it, else None."""
    if len(payload) > MAX_TRANSACTION_BYTES:
        return None
    try:
        return Transaction.model_validate_json(payload)
    except (ValidationError, ValueError):
        return None


def build_reference(run: ExampleRun, stored_features: Mapping[str, Mapping[str, Any]]) -> Reference:
    discarded = [f for f in run.failures if f.stream == TRANSACTIONS]
    ref = Reference(list(run.produced), {}, {}, {}, [], discarded, run.members, run.corrupt)
    versions: dict[str, list[Rec]] = defaultdict(list)
    for record in ref.records:
        txn = parse_transaction(record.data)
        if txn is None:
            ref.kind[record.record_id] = "invalid"
            continue
        ref.transaction[record.record_id] = txn
        versions[txn.transaction_id].append(record)
    for txn_id, records in versions.items():
        # The first version wins. A discarded version comes back late, through the re-drive, in
        # any order: so a later version may rightly win when every version before it was
        # discarded (the pipeline met it first). The candidates run up to the first version
        # outside the discarded ranges; the stored features tell which one won.
        candidates: list[Rec] = []
        for record in records:
            candidates.append(record)
            if not ref.in_discarded(record):
                break
        winner = _matching(candidates, ref.transaction, stored_features.get(txn_id))
        ref.winner[txn_id] = winner
        won = ref.transaction[winner.record_id]
        for record in records:
            if record is winner:
                ref.kind[record.record_id] = "first"
            elif ref.transaction[record.record_id] == won:
                ref.kind[record.record_id] = "repeat"
            else:
                ref.kind[record.record_id] = "conflict"
    order = {record.record_id: i for i, record in enumerate(ref.records)}
    ref.distinct = sorted(ref.winner, key=lambda t: order[ref.winner[t].record_id])
    return ref


def _matching(
    candidates: Sequence[Rec],
    transactions: Mapping[str, Transaction],
    stored: Mapping[str, Any] | None,
) -> Rec:
    """The candidate version the stored feature item was computed from (the first when unsure)."""
    if len(candidates) == 1 or stored is None:
        return candidates[0]
    features = stored.get("features") or {}
    for record in candidates:
        txn = transactions[record.record_id]
        if stored.get("card_id") == txn.card_id and features.get("amount_log") == math.log1p(
            txn.amount
        ):
            return record
    return candidates[0]


@dataclass
class Snapshot:
    """The tables and FeaturesStream as the example left them."""

    features: dict[str, dict[str, Any]]
    states: dict[str, dict[str, Any]]
    predictions: dict[str, dict[str, Any]]
    quarantine: dict[str, dict[str, Any]]
    monitoring: list[dict[str, Any]]
    feature_records: dict[str, Rec]  # record_id -> FeaturesStream record


def take_snapshot(pipeline: Pipeline) -> Snapshot:
    stack = pipeline.stack
    pipeline.streams[FEATURES].refresh()
    return Snapshot(
        features=stack.items_by("FeaturesTable", "transaction_id"),
        states=stack.items_by("EntityStateTable", "card_id"),
        predictions=stack.items_by("PredictionsTable", "transaction_id"),
        quarantine=stack.items_by("QuarantineTable", "record_id"),
        monitoring=stack.scan("MonitoringTable"),
        feature_records={r.record_id: r for r in pipeline.streams[FEATURES].all()},
    )


def verify(run: ExampleRun, checks: Iterable[str] = CORE_CHECKS) -> set[str]:
    """Check the example's invariants; raise the first broken one's InvariantError subclass.
    Returns the checks it ran (a name it does not know runs nothing)."""
    wanted = set(checks)
    snapshot = take_snapshot(run.pipeline)
    ref = build_reference(run, snapshot.features)
    violations: list[Violation] = []
    ran: set[str] = set()

    def running(*names: str) -> bool:
        ran.update(wanted.intersection(names))
        return bool(wanted.intersection(names))

    if running("accounting"):
        violations += check_accounting(run, ref, snapshot)
    if running("features", "order", "state_version"):
        found, applied = check_features_and_state(ref, snapshot)
        violations += found
        if "order" in wanted:
            violations += check_order(ref, applied)
    if running("predictions"):
        violations += check_predictions(run.pipeline, ref, snapshot)
    if running("alerts"):
        violations += check_alerts(run, snapshot)
    if running("handler"):
        violations += run.contract
    if running("totals"):
        violations += check_totals(run, ref, snapshot)
    if running("labels"):
        violations += check_labels(run, snapshot)
    if running("feature_log"):
        violations += check_feature_log(run, snapshot)
    violations = [v for v in violations if v.invariant in wanted]
    if violations:
        raise_violations(run, ref, violations)
    return ran


def _check_prediction_totals(
    predicted: Mapping[tuple[str, str], Counts], want: ExpectedCounts
) -> list[Violation]:
    """Per version: n is the predictions it created; per version and hour: their decisions,
    card-age strata, and one bin per variable each."""
    found: list[Violation] = []
    counted: Counter[str] = Counter()
    for (version, _), counts in predicted.items():
        counted[version] += counts.n
    if +counted != +want.per_version:
        found.append(
            Violation(
                "totals",
                "prediction counts per version",
                f"counted {dict(counted)}, predictions created {dict(want.per_version)}",
            )
        )
    for key in sorted(set(want.decisions) | set(predicted)):
        counts = predicted.get(key, Counts())
        subject = f"version {key[0]} hour {key[1]}"
        if +counts.decisions != want.decisions[key]:
            found.append(
                Violation(
                    "totals",
                    subject,
                    f"decisions counted {dict(counts.decisions)}, "
                    f"predictions {dict(want.decisions[key])}",
                )
            )
        if +counts.quality != +want.quality[key]:
            found.append(
                Violation(
                    "totals",
                    subject,
                    f"quality counts {dict(counts.quality)}, the predictions' "
                    f"{dict(want.quality[key])}",
                )
            )
        if +counts.history != want.strata[key]:
            found.append(
                Violation(
                    "totals",
                    subject,
                    f"card-age strata counted {dict(counts.history)}, "
                    f"the predictions' feature records {dict(want.strata[key])}",
                )
            )
        wrong = _binned_once(counts)
        if wrong:
            found.append(
                Violation(
                    "totals", subject, f"variables binned other than n={counts.n} times: {wrong}"
                )
            )
    return found


def _check_shadow_totals(
    shadowed: Mapping[tuple[str, str], Counts], snap: Snapshot
) -> list[Violation]:
    """Each challenger counts each transaction it scored in shadow once: its SHAD items' n is
    the number of predictions listing it in shadow_versions; every pair, joint bin and
    variable of them adds up to n."""
    found: list[Violation] = []
    listed: Counter[str] = Counter(
        v for p in snap.predictions.values() for v in p.get("shadow_versions", ())
    )
    counted: Counter[str] = Counter()
    for (challenger, champion), counts in sorted(shadowed.items()):
        counted[challenger] += counts.n
        sums = {
            "decisions": sum(counts.decisions.values()),
            "decision pairs": sum(counts.pairs.values()),
            "score-bin pairs": sum(counts.joint.values()),
        }
        wrong: dict[str, Any] = {k: v for k, v in sums.items() if v != counts.n}
        wrong |= {f"variable {v}": n for v, n in _binned_once(counts).items()}
        if wrong:
            found.append(
                Violation(
                    "totals",
                    f"shadow counts of {challenger} beside {champion}",
                    f"other than n={counts.n}: {wrong}",
                )
            )
    if +counted != +listed:
        found.append(
            Violation(
                "totals",
                "shadow counts per challenger",
                f"counted {dict(counted)}, predictions listing each {dict(listed)}",
            )
        )
    return found


def raise_violations(run: ExampleRun, ref: Reference, violations: Sequence[Violation]) -> None:
    names = list(INVARIANTS)
    violations = sorted(violations, key=lambda v: names.index(v.invariant))
    first = violations[0].invariant
    error, title = INVARIANTS[first]
    broken = ", ".join(dict.fromkeys(v.invariant for v in violations))
    shown = violations[:40]
    lines = [
        f"invariant broken: {first} ({title}); all broken in this example: {broken}",
        f"{len(violations)} violation(s); {len(ref.distinct)} distinct valid transactions, "
        f"{len(ref.records)} TransactionsStream records; faults {run.injector.summary() or 'none'}",
        *[f"  {v}" for v in shown],
    ]
    if len(violations) > len(shown):
        lines.append(f"  ... and {len(violations) - len(shown)} more")
    raise error("\n".join(lines) + run.describe())


# ---------------------------------------------------------------------------- the checks


def check_accounting(run: ExampleRun, ref: Reference, snap: Snapshot) -> list[Violation]:
    """Each TransactionsStream user record: its first version applied, absorbed, or quarantined.

    Then the balance over the user records produced: in = scored + absorbed + quarantined +
    failed, each term counted from the tables (a corrupted aggregate's quarantine item stands
    for every user record it held).
    """
    found: list[Violation] = []
    # labels' quarantine items are check_labels' to account for
    quarantine = {k: v for k, v in snap.quarantine.items() if v.get("stage") != "labels"}
    lost = [f for f in run.failures if f.fault_free and f.stream != LABELS]
    failed = 0
    for record in ref.records:
        kind = ref.kind[record.record_id]
        item = quarantine.pop(record.record_id, None)
        txn = ref.transaction.get(record.record_id)
        subject = f"record {record.label()} ({kind}"
        subject += f" {txn.transaction_id}, card {txn.card_id})" if txn else ")"
        if record.record_id in ref.corrupt:
            subject = (
                f"corrupted aggregate {record.label()} ({ref.members[record.record_id]} records)"
            )
        lost_in = [entry for entry in lost if entry.covers(record)]
        failed += ref.members[record.record_id] if lost_in and item is None else 0
        found += [
            Violation("accounting", subject, f"lost: discarded to FailureQueue ({entry})")
            for entry in lost_in
        ]
        problem = _quarantine_problem(kind, item, ref, txn, record.record_id in ref.corrupt)
        if problem:
            found.append(Violation("accounting", subject, problem))
    found += _balance(run, ref, snap, failed)
    for record_id, item in sorted(quarantine.items()):
        found.append(
            Violation(
                "accounting",
                f"quarantine item {record_id}",
                f"is not a bad TransactionsStream record (stage {item.get('stage')!r}, reason "
                f"{item.get('reason')!r}): only bad input may be quarantined",
            )
        )
    return found


def _balance(run: ExampleRun, ref: Reference, snap: Snapshot, failed: int) -> list[Violation]:
    """in = scored + absorbed + quarantined + failed, over the user records the workload put."""
    produced = len(run.workload.records)
    if sum(ref.members.values()) != produced:
        raise HarnessError(f"{sum(ref.members.values())} user records placed of {produced}")
    scored = sum(1 for t in ref.distinct if t in snap.predictions)
    absorbed = sum(
        1
        for r in ref.records
        if ref.kind[r.record_id] == "repeat"
        and ref.transaction[r.record_id].transaction_id in snap.predictions
    )
    quarantined = sum(
        ref.members.get(record_id, 0)
        for record_id, item in snap.quarantine.items()
        if item.get("stage") == "preprocess"
    )
    if produced == scored + absorbed + quarantined + failed:
        return []
    return [
        Violation(
            "accounting",
            "the user records put",
            f"in {produced} != scored {scored} + repeats absorbed {absorbed} + quarantined "
            f"{quarantined} + failed {failed} (from the tables: predictions of distinct "
            "transactions, repeats of a scored transaction, the records preprocess's quarantine "
            "items stand for, records lost in FailureQueue)",
        )
    ]


def _quarantine_problem(
    kind: str,
    item: Mapping[str, Any] | None,
    ref: Reference,
    txn: Transaction | None,
    corrupt: bool = False,
) -> str | None:
    """What is wrong with the record's quarantine item (or its absence), if anything."""
    problem: str | None = None
    if kind == "invalid":
        if item is None:
            problem = "invalid record is not quarantined"
        elif item.get("stage") != "preprocess":
            problem = f"quarantined by stage {item.get('stage')!r}, not by preprocess"
        elif corrupt != (item.get("reason") == INVALID_AGGREGATE):
            problem = (
                f"quarantined as {item.get('reason')!r}; want {INVALID_AGGREGATE!r}"
                if corrupt
                else f"quarantined as {INVALID_AGGREGATE!r}, yet it is no corrupted aggregate"
            )
    elif kind == "conflict":
        first = ref.winner[txn.transaction_id].label() if txn else "?"
        if item is None:
            problem = f"conflicting duplicate of {first} is not quarantined"
        elif item.get("reason") != "conflicting_duplicate":
            problem = f"conflicting duplicate of {first} quarantined as {item.get('reason')!r}"
        if problem:
            problem += " (want reason conflicting_duplicate)"
    elif item is not None:
        role = "first valid version" if kind == "first" else "exact producer repeat"
        problem = (
            f"{role} was quarantined (stage {item.get('stage')!r}, reason {item.get('reason')!r})"
        )
    return problem


def check_features_and_state(
    ref: Reference, snap: Snapshot
) -> tuple[list[Violation], dict[str, list[str]]]:
    """FeaturesTable and EntityStateTable against a replay in state_version order, per card.

    Returns the violations and each card's application order (by state_version; inferred
    from the features when items have none).
    """
    found = _check_feature_items(ref, snap)
    features = snap.features
    per_card: dict[str, list[str]] = defaultdict(list)
    for txn_id in ref.distinct:
        if txn_id in features:
            per_card[ref.card(txn_id)].append(txn_id)
    ghosts = _ghosts(ref)
    applied: dict[str, list[str]] = {}
    for card, txn_ids in per_card.items():
        extra: dict[int, Transaction] = {}
        if all(type(features[t].get("state_version")) is int for t in txn_ids):
            order = sorted(txn_ids, key=lambda t: features[t]["state_version"])
            versions = [features[t]["state_version"] for t in order]
            stored_count = (snap.states.get(card) or {}).get("txn_count")
            extra = _fill_gaps(versions, ghosts.get(card, []), stored_count)
            if sorted([*versions, *extra]) != list(range(1, len(order) + len(extra) + 1)):
                numbering = ", ".join(f"{t}={features[t]['state_version']}" for t in order)
                found.append(
                    Violation(
                        "features",
                        f"card {card}",
                        f"state_versions {versions} of its {len(order)} transactions are not "
                        f"1..{len(order)} ({numbering})",
                    )
                )
        else:
            order = _infer_order(txn_ids, ref, features)
        applied[card] = order
        found += _replay_card(card, order, ref, features, snap.states.get(card), extra)
    cards = {ref.card(t) for t in ref.distinct}
    found += [
        Violation("features", f"card {card}", "has an EntityStateTable item but no transaction")
        for card in sorted(set(snap.states) - cards)
    ]
    return found, applied


def _ghosts(ref: Reference) -> dict[str, list[Transaction]]:
    """Per card, in stream order: its versions of ids another card's version won, discarded.

    The documented limit (README, "Effectively once"): a record in a range Lambda discarded
    may have been applied to its card before the failure (a lost response of the state
    write); when its transaction id was meanwhile applied with another card's version,
    which then owns FeaturesTable and the prediction, this card's state counts it too, and
    the record is quarantined as a conflicting duplicate when it is re-driven.
    """
    found: dict[str, list[Transaction]] = defaultdict(list)
    for record in ref.records:
        if ref.kind.get(record.record_id) != "conflict" or not ref.in_discarded(record):
            continue
        txn = ref.transaction[record.record_id]
        if txn.card_id != ref.card(txn.transaction_id):
            found[txn.card_id].append(txn)
    return found


def _fill_gaps(
    versions: Sequence[int], ghosts: Sequence[Transaction], state_count: Any = None
) -> dict[int, Transaction]:
    """The ghosts (in stream order) at the state versions the card's feature items skip: between
    them, and after the last one up to the card's stored `txn_count` (a ghost applied last, its
    re-drive quarantined after another card's version had taken the id)."""
    if not ghosts or not versions:
        return {}
    top = max(*versions, state_count if type(state_count) is int else 0)
    gaps = sorted(set(range(1, top + 1)) - set(versions))
    return dict(zip(gaps, ghosts, strict=False)) if len(gaps) <= len(ghosts) else {}


def _check_feature_items(ref: Reference, snap: Snapshot) -> list[Violation]:
    found: list[Violation] = []
    features = snap.features
    for txn_id in ref.distinct:
        item = features.get(txn_id)
        subject = f"transaction {txn_id} (card {ref.card(txn_id)})"
        if item is None:
            found.append(Violation("features", subject, "no FeaturesTable item"))
        elif item.get("card_id") != ref.card(txn_id):
            found.append(
                Violation("features", subject, f"feature item is of card {item.get('card_id')}")
            )
    found += [
        Violation("features", f"FeaturesTable item {t}", "is no valid transaction of the stream")
        for t in sorted(set(features) - set(ref.distinct))
    ]
    stored = [t for t in ref.distinct if t in features]
    missing = [t for t in stored if type(features[t].get("state_version")) is not int]
    if missing:
        found.append(
            Violation(
                "state_version",
                f"{len(missing)} of {len(stored)} feature items",
                f"have no integer state_version (e.g. {missing[0]}: "
                f"{features[missing[0]].get('state_version')!r}); the application order is "
                "inferred from their features instead",
            )
        )
    return found


def _infer_order(txn_ids: Sequence[str], ref: Reference, features: Mapping[str, Any]) -> list[str]:
    """Without state_version: the order whose replay reproduces the stored features (stream first)."""
    remaining = list(txn_ids)
    state: CardState | None = None
    order: list[str] = []
    while remaining:
        chosen = next(
            (
                t
                for t in remaining
                if build_features(ref.txn(t), state) == features[t].get("features")
            ),
            remaining[0],
        )
        remaining.remove(chosen)
        order.append(chosen)
        state = advance_state(state, ref.txn(chosen))
    return order


def _replay_card(
    card: str,
    order: Sequence[str],
    ref: Reference,
    features: Mapping[str, Mapping[str, Any]],
    stored_state: Mapping[str, Any] | None,
    ghosts: Mapping[int, Transaction] | None = None,
) -> list[Violation]:
    """Replay the card: its transactions in `order`, and `ghosts` (see `_ghosts`) at their
    state versions, counted in the state but with no feature item of their own to check."""
    found: list[Violation] = []
    state: CardState | None = None
    version = 0
    for position, txn_id in enumerate(order, start=1):
        while ghosts and version + 1 in ghosts:
            version += 1
            state = advance_state(state, ghosts[version])
        version += 1
        txn = ref.txn(txn_id)
        expected = build_features(txn, state)
        stored = features[txn_id].get("features") or {}
        if stored != expected:
            differences = [
                f"{name}: stored {stored.get(name)!r}, replay {expected.get(name)!r}"
                for name in sorted(set(expected) | set(stored))
                if stored.get(name) != expected.get(name)
            ]
            found.append(
                Violation(
                    "features",
                    f"transaction {txn_id} (card {card}, applied #{position}, "
                    f"state_version {features[txn_id].get('state_version')!r})",
                    "features differ from a replay of the card's distinct transactions in "
                    f"application order: {'; '.join(differences[:6])}",
                )
            )
        state = advance_state(state, txn)
    while ghosts and version + 1 in ghosts:
        version += 1
        state = advance_state(state, ghosts[version])
    if state is None:
        return found
    if stored_state is None:
        return [*found, Violation("features", f"card {card}", "no EntityStateTable item")]
    differences = [
        f"{name}: stored {stored_state.get(name)!r}, replay {getattr(state, name)!r}"
        for name in STATE_FIELDS
        if stored_state.get(name) != getattr(state, name)
    ]
    if differences:
        found.append(
            Violation(
                "features",
                f"card {card} ({len(order)} distinct transactions)",
                f"EntityStateTable item differs from a replay: {'; '.join(differences)}",
            )
        )
    return found


def check_order(ref: Reference, applied: Mapping[str, list[str]]) -> list[Violation]:
    """Per card, the application order is the stream order of first versions.

    When the example discarded records (a retry limit), those come back late through the
    re-drive: then only the transactions outside the discarded ranges must keep stream order.
    """
    found: list[Violation] = []
    position = {t: i for i, t in enumerate(ref.distinct)}
    for card, order in sorted(applied.items()):
        kept = [t for t in order if not (ref.discarded and ref.in_discarded(ref.winner[t]))]
        expected = sorted(kept, key=position.__getitem__)
        if kept != expected:
            scope = " (outside the discarded ranges)" if ref.discarded else ""
            found.append(
                Violation(
                    "order",
                    f"card {card}",
                    f"applied as {kept}; the stream order of first versions{scope} is {expected}",
                )
            )
    return found


def check_predictions(pipeline: Pipeline, ref: Reference, snap: Snapshot) -> list[Violation]:
    """One PredictionsTable item per distinct transaction: its features' record, the model's score."""
    predictions = snap.predictions
    found = [
        Violation(
            "predictions", f"prediction {t}", "is no distinct valid transaction of the stream"
        )
        for t in sorted(set(predictions) - set(ref.distinct))
    ]
    found += [
        Violation(
            "predictions", f"transaction {t} (card {ref.card(t)})", "no PredictionsTable item"
        )
        for t in ref.distinct
        if t not in predictions
    ]
    scored = [t for t in ref.distinct if t in predictions and t in snap.features]
    reasons = int(pipeline.score.settings.reason_count)
    for txn_id in scored:
        subject = f"transaction {txn_id} (card {ref.card(txn_id)})"
        prediction = predictions[txn_id]
        model = pipeline.models.get(str(prediction.get("model_version")))
        problem = (
            f"model_version {prediction.get('model_version')!r} is no version the pointer named"
            if model is None
            else _prediction_problem(prediction, snap, txn_id, model)
        )
        if problem is None and "challenger_version" in prediction:
            problem = _shadow_problem(prediction, snap.features[txn_id], pipeline.models)
        if problem is None and model is not None:
            problem = _reasons_problem(
                prediction, snap.features[txn_id]["features"], model, reasons
            )
        if problem:
            found.append(Violation("predictions", subject, problem))
    return found


def _reasons_problem(
    prediction: Mapping[str, Any], features: Mapping[str, Any], model: ScoringModel, k: int
) -> str | None:
    """A review or decline carries its model's top-k reasons for the stored features (none when
    the model cannot be explained); an approval carries none."""
    stored = prediction.get("reasons")
    if prediction.get("decision") == "approve" or k == 0 or model.reasoner is None:
        return None if stored is None else f"reasons {stored!r} on a prediction that has none"
    row = np.array([[float(features[n]) for n in model.feature_names]], dtype=np.float32)
    (expected,) = model.reasoner.top(row, k)
    if not isinstance(stored, list) or [r.get("feature") for r in stored] != [
        r["feature"] for r in expected
    ]:
        return f"reasons {stored!r}, {model.model_version} gives {expected!r}"
    for got, want in zip(stored, expected, strict=True):
        if abs(float(got["contribution"]) - want["contribution"]) > SCORE_TOLERANCE:
            return f"reason {got!r}, {model.model_version} gives {want!r}"
    return None


def _decided(
    model: ScoringModel, features: Mapping[str, Any], thresholds: Thresholds | None = None
) -> tuple[float, str]:
    """The model's score of the stored features and its decision (on its card's thresholds)."""
    row = [float(features.get(n, math.nan)) for n in model.feature_names]
    (score,) = model.predict(np.array([row], dtype=np.float32)).tolist()
    (code,) = decide(np.array([score]), thresholds or model.card.thresholds).tolist()
    return score, DECISIONS[code]


def _shadow_problem(
    prediction: Mapping[str, Any], stored: Mapping[str, Any], models: Mapping[str, ScoringModel]
) -> str | None:
    """The challenger's fields: its version listed, its score and decision on the same features."""
    version = prediction["challenger_version"]
    if version not in models or version == prediction.get("model_version"):
        return f"challenger_version {version!r} beside model_version {prediction.get('model_version')!r}"
    if version not in prediction.get("shadow_versions", ()):
        return f"challenger {version} not in shadow_versions {prediction.get('shadow_versions')!r}"
    score, decision = _decided(models[version], stored["features"])
    got = prediction.get("challenger_score")
    if not isinstance(got, (int, float)) or abs(float(got) - score) > SCORE_TOLERANCE:
        return f"challenger_score {got!r}, challenger {version} gives {score!r}"
    if prediction.get("challenger_decision") != decision:
        return f"challenger_decision {prediction.get('challenger_decision')!r}, want {decision!r}"
    return None


def _prediction_problem(
    prediction: Mapping[str, Any],
    snap: Snapshot,
    txn_id: str,
    model: ScoringModel,
) -> str | None:
    expected, decision = _decided(model, snap.features[txn_id]["features"])
    record_id = str(prediction.get("features_record_id"))
    record = snap.feature_records.get(record_id)
    if record is None:
        return f"features_record_id {record_id!r} names no FeaturesStream record"
    doc = json.loads(record.data)
    if doc.get("transaction_id") != txn_id:
        return f"features_record_id names {record.label()}, a record of {doc.get('transaction_id')}"
    if doc.get("features") != snap.features[txn_id]["features"]:
        return f"scored from {record.label()}, whose features differ from the FeaturesTable item's"
    score = prediction.get("score")
    if not isinstance(score, (int, float)) or abs(float(score) - expected) > SCORE_TOLERANCE:
        return f"score {score!r}, {model.model_version} gives {expected!r} on the stored features"
    guard = None
    if decision == "decline" and in_decline_sample(txn_id, DECLINE_SAMPLE_SHARE):
        decision, guard = "review", "decline_sample"
    if prediction.get("decision") != decision or prediction.get("guard") != guard:
        return (
            f"decision {prediction.get('decision')!r} (guard {prediction.get('guard')!r}) for "
            f"score {score!r}, want {decision!r} (guard {guard!r})"
        )
    return None


def check_alerts(run: ExampleRun, snap: Snapshot) -> list[Violation]:
    """An alert per alerting prediction; two only when an alert's outcome was unknown.

    An alert's outcome is unknown when the invocation that delivered it did not settle the
    record it was for: the PutEvents response was lost, the invocation timed out or failed
    afterwards, or the record was reported failed. Only then may the mapping's retry send the
    alert again. (The brief's "PutEvents with an unknown outcome" is included: its invocation
    always fails the record.)

    An alert is one version's decision of one transaction (its alert id). With registry
    changes a transaction can be decided by more than one version: a replay, or the retry of a
    record whose alert was still pending, after a swap writes it again. The stored prediction's
    alert must have gone out; a superseded version's alert may not have (its retry was decided
    by the next version), and at most once all the same.
    """
    alert_on_review = bool(run.pipeline.score.settings.alert_on_review)
    alerting = {"decline", "review"} if alert_on_review else {"decline"}
    delivered: Counter[str] = Counter()
    for _, detail in run.injector.delivered:
        if detail.get("_detail_type") == ALERT_DETAIL_TYPE:
            delivered[str(detail.get("alert_id"))] += 1
    decided = {f"{p['transaction_id']}/{p['model_version']}": p for p in run.injector.created}
    stored = {f"{t}/{p.get('model_version')}" for t, p in snap.predictions.items()}
    found: list[Violation] = []
    for alert_id, prediction in sorted(decided.items()):
        if not _alerts(prediction, alerting):
            continue
        subject = (
            f"alert {alert_id} ({prediction.get('decision')}, score {prediction.get('score')!r})"
        )
        count = delivered[alert_id]
        if count == 0 and alert_id in stored:
            found.append(Violation("alerts", subject, "no HighRiskTransaction event delivered"))
        elif count > 1 and prediction["transaction_id"] not in run.unsettled_alerts:
            found.append(
                Violation(
                    "alerts",
                    subject,
                    f"{count} HighRiskTransaction events delivered although each invocation that "
                    "delivered one settled its record (no unknown outcome for this alert; "
                    f"PutEvents with an unknown outcome in the example: "
                    f"{run.injector.putevents_unknown})",
                )
            )
    for _, detail in run.injector.delivered:
        if detail.get("_detail_type") != ALERT_DETAIL_TYPE:
            continue
        stored_prediction = snap.predictions.get(str(detail.get("transaction_id")), {})
        same = stored_prediction.get("model_version") == detail.get("model_version")
        if same and detail.get("reasons") != stored_prediction.get("reasons"):
            found.append(
                Violation(
                    "alerts",
                    f"alert {detail.get('alert_id')}",
                    f"reasons {detail.get('reasons')!r}, its prediction's "
                    f"{stored_prediction.get('reasons')!r}",
                )
            )
    for alert_id in sorted(delivered):
        decision = decided.get(alert_id, {}).get("decision", "no prediction")
        if not _alerts(decided.get(alert_id, {}), alerting):
            found.append(
                Violation(
                    "alerts",
                    f"alert {alert_id}",
                    f"{delivered[alert_id]} HighRiskTransaction event(s) for {decision!r}",
                )
            )
    return found


def _alerts(prediction: Mapping[str, Any], alerting: set[str]) -> bool:
    """Whether a prediction alerts: its decision does, or it is a decline reviewed instead."""
    return prediction.get("decision") in alerting or "guard" in prediction


@dataclass
class ExpectedCounts:
    """What the count items must add up to, per (model version, event hour)."""

    decisions: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    strata: dict[tuple[str, str], Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    per_version: Counter[str] = field(default_factory=Counter)  # predictions written
    # approvals per quality bin, each decision's scores summed in millionths
    quality: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )


def _expected_counts(run: ExampleRun, snap: Snapshot) -> ExpectedCounts:
    """Every prediction each version created (once per transaction and version: a replay after
    a swap writes a transaction again under another version, and counts it there too), with
    its decision and card-age stratum (of the feature record it was scored from) in its hour."""
    want = ExpectedCounts()
    created = {(p["transaction_id"], p["model_version"]): p for p in run.injector.created}
    for (txn_id, version), prediction in created.items():
        key = (version, hour_of(prediction["event_time"]))
        want.per_version[version] += 1
        want.decisions[key][prediction["decision"]] += 1
        score = float(prediction["score"])
        decided = prediction["decision"]
        if "guard" in prediction:  # a decline reviewed instead: a decline for quality
            decided = "decline"
            want.quality[key]["s"] += 1
        if decided == "approve":
            want.quality[key][f"a{quality_bin(score)}"] += 1
        want.quality[key][f"p_{decided}"] += round(score * SCORE_UNITS)
        model = run.pipeline.models.get(version)
        bounds = model.history_bounds if model is not None else None
        if bounds is not None:
            age = snap.features.get(txn_id, {}).get("card_age_s")
            ages = np.array([math.nan if age is None else float(age)])
            want.strata[key][int(history_strata(ages, bounds)[0])] += 1
    return want


def _binned_once(counts: Counts) -> dict[int, int]:
    """Variables binned a number of times other than n (each fact bins each variable once)."""
    per_variable: Counter[int] = Counter()
    for (variable, _), count in counts.bins.items():
        per_variable[variable] += count
    return {v: n for v, n in per_variable.items() if n != counts.n}


def check_totals(run: ExampleRun, ref: Reference, snap: Snapshot) -> list[Violation]:
    """The hourly count items add up to the facts: every prediction once per version that wrote
    it, in its event hour, with its decision and one bin per variable; every challenger's shadow
    score once per transaction; every quarantine item once, by stage and reason."""
    found: list[Violation] = []
    predicted: dict[tuple[str, str], Counts] = defaultdict(Counts)
    shadowed: dict[tuple[str, str], Counts] = defaultdict(Counts)
    quarantined = Counts()
    for item in snap.monitoring:
        if item.get("sk") != "COUNT":
            continue
        key = (str(item.get("model_version")), str(item.get("hour")))
        if item.get("kind") == PREDICTIONS:
            predicted[key].add(Counts.from_item(item))
        elif item.get("kind") == SHADOW:
            shadowed[str(item["model_version"]), str(item["paired_with"])].add(
                Counts.from_item(item)
            )
        elif item.get("kind") == QUARANTINE:
            quarantined.add(Counts.from_item(item))
    want = _expected_counts(run, snap)
    total = sum(c.n for c in predicted.values())
    if not run.pointer_changes and total != len(ref.distinct):
        found.append(
            Violation(
                "totals",
                "prediction counts",
                f"n sums to {total}, want {len(ref.distinct)} (distinct valid transactions)",
            )
        )
    found += _check_prediction_totals(predicted, want)
    found += _check_shadow_totals(shadowed, snap)
    bad = Counter(f"{i['stage']}/{i['reason']}" for i in snap.quarantine.values())
    if +quarantined.reasons != bad or quarantined.n != len(snap.quarantine):
        found.append(
            Violation(
                "totals",
                "quarantine counts",
                f"counted {quarantined.n} {dict(quarantined.reasons)}, "
                f"{len(snap.quarantine)} quarantine items {dict(bad)}",
            )
        )
    return found


# ============================================================================ labels


def check_feature_log(run: ExampleRun, snap: Snapshot) -> list[Violation]:
    """Every prediction's first write (its INSERT on PredictionsTable's stream) is in the log,
    with the prediction's fields as first written and the features of its FeaturesTable item;
    every row is of such a write; a transaction logged twice (a retry with other boundaries)
    has the same row twice. And every prediction of the table was logged."""
    found: list[Violation] = []
    _, raw = run.pipeline.prediction_changes()
    first: dict[str, dict[str, Any]] = {}
    for record in raw:
        change = record[STREAM_RECORD]
        if change["eventName"] == "INSERT":
            image = deserialize(change["dynamodb"]["NewImage"])
            first.setdefault(str(image["transaction_id"]), image)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in run.pipeline.feature_log():
        rows[str(row["transaction_id"])].append(row)
    for txn in sorted(set(first) | set(rows) | set(snap.predictions)):
        logged, image = rows.get(txn, []), first.get(txn)
        problem = None
        if image is None:
            problem = "logged, but no prediction was first written" if logged else "no INSERT"
        elif not logged:
            problem = "a prediction's first write is not in the feature log"
        elif any(row != logged[0] for row in logged):
            problem = f"logged {len(logged)} times with different rows"
        else:
            problem = _feature_log_row_problem(logged[0], image, snap.features.get(txn))
        if problem:
            found.append(Violation("feature_log", f"transaction {txn}", problem))
    return found


def _feature_log_row_problem(
    row: Mapping[str, Any], image: Mapping[str, Any], features: Mapping[str, Any] | None
) -> str | None:
    for name in ("event_time", "scored_at", "decision", "score", "model_version"):
        if row.get(name) != image.get(name):
            return f"{name} {row.get(name)!r}, first written {image.get(name)!r}"
    expected = None if features is None else {k: float(v) for k, v in features["features"].items()}
    if row.get("features") != expected:
        return f"features {row.get('features')!r}, FeaturesTable holds {expected!r}"
    return None


def check_labels(run: ExampleRun, snap: Snapshot) -> list[Violation]:
    """Every LabelsStream record is a label in force, a lesser label, or quarantined once; each
    transaction holds its greatest label (labels/contract.py); the quality count items add up to
    exactly what the labels in force say they counted; a label joined to a prediction of the
    version it names carries that prediction's score and decision."""
    found: list[Violation] = []
    view = run.pipeline.streams[LABELS]
    view.refresh()
    greatest: dict[str, str] = {}
    invalid: set[str] = set()
    for record in view.all():
        try:
            label = Label.model_validate_json(record.data)
        except ValidationError:
            invalid.add(record.record_id)
            continue
        key = label_key(label)
        greatest[label.transaction_id] = max(key, greatest.get(label.transaction_id, key))
    found += [
        Violation("labels", f"LabelsStream range {entry}", "discarded without faults: lost")
        for entry in run.failures
        if entry.fault_free and entry.stream == LABELS
    ]
    stored = run.pipeline.stack.items_by("LabelsTable", "transaction_id")
    in_force = {t: str(item["label_key"]) for t, item in stored.items()}
    for txn in sorted(set(greatest) | set(in_force)):
        if in_force.get(txn) != greatest.get(txn):
            found.append(
                Violation(
                    "labels",
                    f"transaction {txn}",
                    f"label in force {in_force.get(txn)}, greatest sent {greatest.get(txn)}",
                )
            )
    quarantined = {k for k, v in snap.quarantine.items() if v.get("stage") == "labels"}
    if quarantined != invalid:
        found.append(
            Violation(
                "labels",
                "quarantine",
                f"quarantined {sorted(quarantined)}, records that are no label {sorted(invalid)}",
            )
        )
    found += _label_counts(stored, snap)
    found += _label_joins(stored, snap)
    return found


def _label_counts(stored: Mapping[str, Mapping[str, Any]], snap: Snapshot) -> list[Violation]:
    """Each version's quality counts (and each challenger's paired with its champion: key
    "<challenger>@<champion>") per hour are what the labels in force counted."""
    counted: dict[tuple[str, str], Counts] = defaultdict(Counts)
    for item in snap.monitoring:
        if item.get("sk") == "COUNT" and item.get("kind") == QUALITY:
            version = str(item["model_version"])
            if item.get("paired_with"):
                version = f"{version}@{item['paired_with']}"
            counted[version, str(item["hour"])].add(Counts.from_item(item))
    want: dict[tuple[str, str], Counts] = defaultdict(Counts)
    for item in stored.values():
        total = want[str(item["count_version"]), str(item["count_hour"])]
        total.n += 1
        total.quality.update(item["counted"])
        if "paired_counted" in item:
            pair = f"{item['challenger_version']}@{item['count_version']}"
            total = want[pair, str(item["count_hour"])]
            total.n += 1
            total.quality.update(item["paired_counted"])
    found = []
    for key in sorted(set(counted) | set(want)):
        got, expected = counted.get(key, Counts()), want.get(key, Counts())
        if got.n != expected.n or +got.quality != +expected.quality or -got.quality:
            found.append(
                Violation(
                    "labels",
                    f"quality counts of {key[0]} in {key[1]}",
                    f"n {got.n}, {dict(got.quality)}; the labels in force counted n "
                    f"{expected.n}, {dict(expected.quality)}",
                )
            )
    return found


def _joined_fields(prediction: Mapping[str, Any], label: Mapping[str, Any]) -> tuple[str, ...]:
    """What a label must have copied from the prediction it names: the score and decision, and
    the challenger's when it names the same challenger."""
    names = ("score", "decision", "guard")
    if prediction.get("challenger_version", "") == label.get("challenger_version", None):
        names += ("challenger_score", "challenger_decision")
    return names


def _paired_join(txn: str, item: Mapping[str, Any], mark: str) -> list[Violation]:
    """A label joined to a challenger's shadow score counts both models' bins and decisions."""
    if "challenger_version" not in item:
        return (
            [Violation("labels", f"label of {txn}", "paired counts without a challenger")]
            if "paired_counted" in item
            else []
        )
    decided = "decline" if "guard" in item else item["decision"]
    names = [
        f"j{mark}{decided[0]}{item['challenger_decision'][0]}",
        f"c{mark}{quality_bin(float(item['score']))}",
        f"s{mark}{quality_bin(float(item['challenger_score']))}",
    ]
    if list(item.get("paired_counted", [])) != names:
        return [
            Violation(
                "labels",
                f"label of {txn}",
                f"paired counts {item.get('paired_counted')}, its join {names}",
            )
        ]
    return []


def _label_joins(stored: Mapping[str, Mapping[str, Any]], snap: Snapshot) -> list[Violation]:
    found = []
    for txn, item in sorted(stored.items()):
        if item["count_version"] == NO_VERSION:
            continue
        mark = "f" if item["label"] == "fraud" else "l"
        names = [f"{mark}d_{item['decision']}"]
        if item["decision"] != "decline":  # declines are not binned
            names.insert(0, f"{mark}{item['decision'][0]}{quality_bin(float(item['score']))}")
        if "guard" in item:  # a decline reviewed instead counts only as such
            names = [f"{mark}s"]
        if list(item["counted"]) != names:
            found.append(
                Violation(
                    "labels", f"label of {txn}", f"counted {item['counted']}, its join {names}"
                )
            )
        found += _paired_join(txn, item, mark)
        prediction = snap.predictions.get(txn)
        if prediction is None:
            found.append(Violation("labels", f"label of {txn}", "joined to no prediction"))
        elif prediction["model_version"] == item["count_version"] and any(
            prediction.get(name) != item.get(name) for name in _joined_fields(prediction, item)
        ):
            found.append(
                Violation(
                    "labels",
                    f"label of {txn}",
                    f"joined score {item['score']} / {item['decision']}, the prediction of "
                    f"{item['count_version']} has {prediction['score']} / {prediction['decision']}",
                )
            )
    return found
