"""DynamoFactWriter's count items under concurrency: lanes for a shard's concurrent batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from streamscore.aws.facts import DynamoFactWriter
from streamscore.core.monitoring import (
    MAX_COUNT_ATTRIBUTES,
    QUALITY,
    QUARANTINE,
    SHADOW,
    CountKey,
    Counts,
    Fact,
    Tally,
    prediction_attributes,
    quarantine_counts,
    shadow_attributes,
)
from support.wiring import quiet_backoff

HOUR = "2026-03-05T12"
ARTIFACTS = Path(__file__).resolve().parents[3] / "models" / "artifacts"
SOURCE = "transactions/shardId-000000000000"


class Transactions:
    """TransactWriteItems answered in memory: each call's count-item keys; the first
    `conflicts` calls cancelled as a concurrent transaction on the same item would be."""

    def __init__(self, conflicts: int = 0):
        self.conflicts = conflicts
        self.count_keys: list[list[str]] = []

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        keys = [a["Update"]["Key"]["pk"]["S"] for a in TransactItems if "Update" in a]
        self.count_keys.append(keys)
        if self.conflicts:
            self.conflicts -= 1
            reasons = [{"Code": "TransactionConflict"}] * len(TransactItems)
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        return {}


def facts(n: int = 3) -> list[Fact]:
    return [
        Fact(
            item={"record_id": f"r{i}"},
            key=f"r{i}",
            count_key=CountKey(QUARANTINE, "-", HOUR, SOURCE),
            counts=quarantine_counts("preprocess", "invalid_json"),
        )
        for i in range(n)
    ]


def writer(client: Transactions, lanes: int) -> DynamoFactWriter:
    return DynamoFactWriter(client, "q", "record_id", "m", backoff=quiet_backoff(), lanes=lanes)


def test_one_lane_keeps_the_count_item_of_shard_and_slot() -> None:
    client = Transactions(conflicts=1)

    done, failed = writer(client, lanes=1).create(facts(), 0)

    assert (len(done), failed) == (3, set())
    base = f"COUNT#QUAR#-#{HOUR}#{SOURCE}#0"
    assert client.count_keys == [[base], [base]]  # the retry after the conflict: same item


def test_concurrent_batches_of_a_shard_spread_over_its_lanes() -> None:
    client = Transactions()
    target = writer(client, lanes=4)

    for _ in range(200):
        target.create(facts(1), 0)

    lanes = {keys[0].rsplit("#", 1)[1] for keys in client.count_keys}
    assert lanes == {"0", "1.0", "2.0", "3.0"}  # lane 0 keeps the one-lane key


def test_a_conflict_moves_the_retry_to_the_next_lane() -> None:
    client = Transactions(conflicts=2)

    done, failed = writer(client, lanes=3).create(facts(), 0)

    assert (len(done), failed) == (3, set())
    slots = [keys[0].rsplit("#", 1)[1] for keys in client.count_keys]
    lane = [int(s.split(".")[0]) if "." in s else 0 for s in slots]
    assert lane[1] == (lane[0] + 1) % 3 and lane[2] == (lane[1] + 1) % 3


def test_the_largest_count_item_a_model_may_need_fits_one_update_expression() -> None:
    # given: a shadow count item with MAX_COUNT_ATTRIBUTES attributes, every one counted
    counts = Counts(n=1)
    counts.decisions.update({"approve": 1, "review": 1, "decline": 1})
    counts.pairs.update(
        {(a, b): 1 for a in ("approve", "review", "decline") for b in ("x", "y", "z")}
    )
    variable = 0
    while len(counts.attributes()) < MAX_COUNT_ATTRIBUTES:
        counts.bins[variable // 20, variable % 20] += 1
        variable += 1
    key = CountKey(SHADOW, "v" * 128, HOUR, SOURCE, slot=99, lane=9, paired_with="w" * 128)

    update = writer(Transactions(), lanes=1)._count_update(key, counts, 2_000_000_000)

    # then: under DynamoDB's 4 KB, and at most 300 operators even counting every ADD action
    expression = update["UpdateExpression"]
    assert len(counts.attributes()) == MAX_COUNT_ATTRIBUTES
    assert len(expression.encode()) <= 4096, len(expression)
    assert MAX_COUNT_ATTRIBUTES + expression.count("=") <= 300


def test_the_shipped_model_fits_as_champion_and_as_its_own_challenger() -> None:
    from streamscore.scoring.model import load_model  # noqa: PLC0415

    model = load_model(ARTIFACTS)

    model.check_countable()
    model.check_countable(champion=model)
    assert prediction_attributes(model.count_bins, model.strata) < MAX_COUNT_ATTRIBUTES
    assert shadow_attributes(model.count_bins, model.strata, model.count_bins[-1]) <= (
        MAX_COUNT_ATTRIBUTES
    )


def test_a_fact_whose_counts_cancel_out_writes_its_item_and_no_count_update() -> None:
    # given a label replacing one counted alike in the same count item: +1 and -1 on each
    key = CountKey(QUALITY, "v1", HOUR, SOURCE)
    fact = Fact(
        item={"transaction_id": "t1"},
        key="t1",
        count_key=key,
        counts=Tally(quality=("f12", "fd_approve")),
        also=((key, Tally(quality=("f12", "fd_approve"), weight=-1)),),
    )
    client = Transactions()
    sent: list[list[dict[str, Any]]] = []
    write = client.transact_write_items

    def record(TransactItems: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        sent.append(TransactItems)
        return write(TransactItems=TransactItems)

    client.transact_write_items = record  # type: ignore[method-assign]

    # when
    done, failed = DynamoFactWriter(client, "labels", "transaction_id", "monitoring").create(
        [fact], 0
    )

    # then: the label alone (an UpdateExpression of no ADD would be refused)
    assert (done, failed) == ({"t1"}, set())
    assert [list(action) for action in sent[0]] == [["Put"]]
