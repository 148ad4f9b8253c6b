"""State and stored features are read strongly consistent: the previous batch's writes must be seen."""

from __future__ import annotations

from typing import Any

from streamscore.aws.dynamodb import BatchTable


class RecordingClient:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.requests.append(RequestItems)
        return {"Responses": {"t": []}}


def test_batch_reads_are_consistent_by_default_and_can_opt_out() -> None:
    client = RecordingClient()

    BatchTable(client, "t", ["card_id"]).get_many([{"card_id": "c1"}])
    BatchTable(client, "t", ["card_id"], consistent_read=False).get_many([{"card_id": "c2"}])

    assert client.requests[0]["t"]["ConsistentRead"] is True
    assert client.requests[1]["t"]["ConsistentRead"] is False
