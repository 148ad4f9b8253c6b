"""The feature-log stage on AWS: PredictionsTable's stream event in, FeaturesTable read, S3 out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws.dynamodb import TransactionItemReader, deserialize
from streamscore.aws.retry import translate_error
from streamscore.core.errors import RetryableError
from streamscore.featurelog.batch import Change

# "If the object already exists, the write fails with 412 Precondition Failed" and a concurrent
# conditional write of the same key may get "409 Conflict" and should be retried: Amazon S3 User
# Guide, "Add preconditions to S3 operations with conditional requests" (conditional writes).
ALREADY_WRITTEN = "PreconditionFailed"


def parse_stream_event(event: Mapping[str, Any]) -> list[Change]:
    """The records of a DynamoDB stream event (Lambda's shape), images as plain Python."""
    changes = []
    for record in event.get("Records", []):
        stream = record["dynamodb"]
        image = stream.get("NewImage")
        changes.append(
            Change(
                sequence_number=str(stream["SequenceNumber"]),
                event_id=str(record["eventID"]),
                event_name=str(record["eventName"]),
                new_image=deserialize(image) if image else None,
            )
        )
    return changes


class DynamoFeatureReader(TransactionItemReader):
    """FeaturesTable read by transaction id (strongly consistent)."""


class S3LogWriter:
    """Objects under the artifacts bucket, each written once (If-None-Match: *)."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def put(self, key: str, body: bytes) -> bool:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
                IfNoneMatch="*",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == ALREADY_WRITTEN:
                return False
            action = f"S3 PutObject s3://{self.bucket}/{key}"
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 409:  # a concurrent conditional write of the key: try again later
                raise RetryableError(f"{action}: 409 conflict: {error}") from error
            raise translate_error(error, action) from error
        except BotoCoreError as error:
            raise translate_error(error, f"S3 PutObject s3://{self.bucket}/{key}") from error
        return True
