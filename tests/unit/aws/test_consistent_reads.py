"""State and stored features are read strongly consistent: the previous batch's writes must be seen."""

from __future__ import annotations

from streamscore.aws.dynamodb import BatchTable
from support.fake_clients import MemoryDynamoDB


def test_batch_reads_are_consistent_by_default_and_can_opt_out() -> None:
    # given
    client = MemoryDynamoDB()

    # when
    BatchTable(client, "t", ["card_id"]).get_many([{"card_id": "c1"}])
    BatchTable(client, "t", ["card_id"], consistent_read=False).get_many([{"card_id": "c2"}])

    # then
    assert client.get_requests[0]["t"]["ConsistentRead"] is True
    assert client.get_requests[1]["t"]["ConsistentRead"] is False
