"""A mapping's configuration as Lambda describes it: a mapping on an enhanced fan-out consumer
reads the consumer's stream, and its poller looks again as soon as a push would come."""

from __future__ import annotations

from embedded.emulator import IDLE_POLL_SECONDS, PUSH_POLL_SECONDS, MappingConfig

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/streamscore-TransactionsStream-X"


def _described(source: str) -> dict[str, object]:
    return {
        "UUID": "u-1",
        "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:pre",
        "EventSourceArn": source,
        "BatchSize": 500,
        "StartingPosition": "TRIM_HORIZON",
    }


def test_a_consumer_arn_is_read_as_its_stream_through_the_consumer() -> None:
    consumer = f"{STREAM}/consumer/preprocess:1796188800"

    through = MappingConfig.from_api(_described(consumer))
    polling = MappingConfig.from_api(_described(STREAM))

    assert (through.event_source_arn, through.consumer_arn) == (STREAM, consumer)
    assert through.stream_name == "streamscore-TransactionsStream-X"
    assert (polling.event_source_arn, polling.consumer_arn) == (STREAM, None)
    assert PUSH_POLL_SECONDS < IDLE_POLL_SECONDS
