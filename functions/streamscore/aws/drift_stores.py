"""The drift check's ports on AWS: the window's count items, reports in S3, the retraining cooldown item."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws._batching import streamed
from streamscore.aws.dynamodb import deserialize, serialize
from streamscore.aws.registry import DynamoModelPointer, S3ModelVersions
from streamscore.aws.retry import translate_error
from streamscore.core.artifacts import BASELINE_FILE, CARD_FILE, DecisionRates, artifacts_version
from streamscore.core.errors import RetryableError, SystemicError
from streamscore.core.monitoring import COOLDOWN, RETRAIN
from streamscore.core.registry import RegistryError
from streamscore.core.times import utc_iso_ms
from streamscore.drift.baseline import DriftBaseline
from streamscore.drift.ports import TriggerClaim


class DynamoWindowReader:
    """MonitoringTable's WindowIndex: every item of some hour buckets recorded within [start, end].

    One Query per bucket, all pages, `ahead` buckets at a time on `executor`; items are
    handed out bucket by bucket as they are consumed, so the caller can sum as it reads and
    memory holds a few hours' items, never the window's.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        index_name: str = "WindowIndex",
        executor: Executor | None = None,
        page_size: int | None = None,  # items per Query page; DynamoDB stops at 1 MB anyway
        ahead: int = 8,
    ):
        self.client = client
        self.table_name = table_name
        self.index_name = index_name
        self.executor = executor
        self.page_size = page_size
        self.ahead = ahead

    def read(self, window_keys: Sequence[str], start: str, end: str) -> Iterator[dict[str, Any]]:
        def query(key: str) -> list[dict[str, Any]]:
            return self._query(key, start, end)

        for items in streamed(query, window_keys, self.executor, self.ahead):
            yield from items

    def _query(self, key: str, start: str, end: str) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": self.index_name,
            "KeyConditionExpression": "window_key = :key AND recorded_at BETWEEN :start AND :end",
            "ExpressionAttributeValues": serialize({":key": key, ":start": start, ":end": end}),
        }
        if self.page_size is not None:
            request["Limit"] = self.page_size
        items: list[dict[str, Any]] = []
        while True:
            try:
                page = self.client.query(**request)
            except (ClientError, BotoCoreError) as error:
                raise translate_error(
                    error, f"DynamoDB Query on {self.table_name}/{self.index_name}"
                ) from error
            items += [deserialize(raw) for raw in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class S3ReportStore:
    """Report objects in the artifacts bucket, encrypted by the bucket's default (the stack key).

    It sends no encryption headers on purpose: the bucket policy lets a put without them
    through and refuses any other algorithm or key (template.yaml, ArtifactsBucketPolicy).
    """

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, body: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as error:
            raise translate_error(error, f"S3 PutObject {self.uri(key)}") from error


class DynamoRetrainingCooldown:
    """One MonitoringTable item per model version: its retraining trigger, a small state machine.

    `trigger_id` and `status` (`sending`, then `sent`) are the latest claim and
    `claimed_epoch` its start (the lease runs from it); `triggered_epoch`/`triggered_at`
    the latest completed trigger (the cooldown runs from it); `sent_triggers` the latest
    completed trigger ids, newest last (a re-run of their windows sends nothing).
    `accepted` holds "trigger_id#DetailType" for each detail type EventBridge accepted of a
    trigger not completed yet: keyed by trigger id, it survives the takeover of a dead
    claim, so a later run of that trigger sends only what is missing. Every change is one
    conditional UpdateItem, so of concurrent claims one wins. The rules are those of
    `RetrainingCooldown` in streamscore.drift.ports.
    """

    SENDING = "sending"
    SENT = "sent"
    HISTORY = 50  # completed trigger ids kept (~4 KB): past them a re-run of a window sends again
    ATTEMPTS = 3  # claims tried while the item keeps changing under us
    NAMES: ClassVar[dict[str, str]] = {"#status": "status"}  # a reserved word
    FREE = (
        "NOT contains(sent_triggers, :id)"
        " AND (attribute_not_exists(trigger_id) OR trigger_id <> :id)"
        " AND (attribute_not_exists(triggered_epoch) OR triggered_epoch < :cutoff)"
        " AND (attribute_not_exists(#status) OR #status <> :sending OR claimed_epoch < :lease)"
    )
    OURS = "trigger_id = :id AND #status = :sending"

    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    @staticmethod
    def key(model_version: str) -> dict[str, Any]:
        return serialize({"pk": f"{RETRAIN}#{model_version}", "sk": COOLDOWN})

    def claim(
        self,
        model_version: str,
        trigger_id: str,
        now: datetime,
        cooldown_hours: float,
        lease_seconds: float,
    ) -> TriggerClaim:
        cutoff = now.timestamp() - cooldown_hours * 3600
        lease = now.timestamp() - lease_seconds
        ours = {":id": trigger_id, ":sending": self.SENDING}
        started = ours | {":now": now.timestamp(), ":at": utc_iso_ms(now)}
        for _ in range(self.ATTEMPTS):
            taken, item = self._update(
                model_version,
                "SET trigger_id = :id, #status = :sending, claimed_epoch = :now, "
                "claimed_at = :at, model_version = :version "
                "REMOVE claim_id, released_claim_id",  # the fields of the claims before these
                self.FREE,
                started | {":version": model_version, ":cutoff": cutoff, ":lease": lease},
            )
            if taken:
                return self._ours(model_version, trigger_id, item)
            if trigger_id in item.get("sent_triggers", []):
                return TriggerClaim(model_version, trigger_id, "sent")
            if item.get("trigger_id") == trigger_id and item.get("status") == self.SENDING:
                resumed, item = self._update(
                    model_version, "SET claimed_epoch = :now, claimed_at = :at", self.OURS, started
                )
                if resumed:
                    return self._ours(model_version, trigger_id, item)
                continue  # it changed hands in between: look again
            if float(item.get("triggered_epoch", cutoff - 1)) >= cutoff:
                return TriggerClaim(model_version, trigger_id, "cooldown")
            if item.get("status") == self.SENDING and float(item["claimed_epoch"]) >= lease:
                return TriggerClaim(model_version, trigger_id, "in_flight")
        raise RetryableError(
            f"the retraining cooldown of {model_version} kept changing while {trigger_id} "
            f"claimed it ({self.ATTEMPTS} attempts)"
        )

    def record(
        self, claim: TriggerClaim, accepted: frozenset[str], complete: bool, now: datetime
    ) -> bool:
        values: dict[str, Any] = {":id": claim.trigger_id, ":sending": self.SENDING}
        if complete:  # its accepted entries have served: the trigger is in sent_triggers now
            update = (
                "SET #status = :sent, triggered_epoch = :now, triggered_at = :at, "
                "sent_triggers = :history"
            )
            values |= {
                ":sent": self.SENT,
                ":now": now.timestamp(),
                ":at": utc_iso_ms(now),
                ":history": [*claim.history, claim.trigger_id][-self.HISTORY :],
            }
            entries = claim.accepted
            if entries:
                update += " DELETE accepted :entries"
        else:
            update = "ADD accepted :entries"
            entries = accepted - claim.accepted
            if not entries:
                return True
        string_set = {"SS": sorted(f"{claim.trigger_id}#{kind}" for kind in entries)}
        recorded, _ = self._update(
            claim.model_version,
            update,
            self.OURS,
            values,
            {":entries": string_set} if entries else {},
        )
        return recorded

    def _ours(self, model_version: str, trigger_id: str, item: dict[str, Any]) -> TriggerClaim:
        entries = (entry.rpartition("#") for entry in item.get("accepted", set()))
        return TriggerClaim(
            model_version,
            trigger_id,
            "ours",
            accepted=frozenset(kind for trigger, _, kind in entries if trigger == trigger_id),
            history=tuple(item.get("sent_triggers", [])),
        )

    def _update(
        self,
        model_version: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        wire_values: dict[str, Any] | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        """(True, the item after) when the condition held, else (False, the item it was held against).

        `wire_values` are values already in DynamoDB's format (a string set).
        """
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=self.key(model_version),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=self.NAMES,
                ExpressionAttributeValues=serialize(values) | (wire_values or {}),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                held: dict[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
                return False, deserialize(held)
            raise translate_error(error, f"DynamoDB UpdateItem on {self.table_name}") from error
        except BotoCoreError as error:
            raise translate_error(error, f"DynamoDB UpdateItem on {self.table_name}") from error
        return True, deserialize(response.get("Attributes", {}))


class RegistryBaselines:
    """The drift check's view of the model registry (drift.ports.ModelBaselines): the pointer's
    champion, and each version's baseline read from its card and baseline.json, both checked
    against the version's manifest. Versions never change once published, so each is read once
    per container."""

    def __init__(self, versions: S3ModelVersions, pointer: DynamoModelPointer):
        self.versions = versions
        self.pointer = pointer
        self._found: dict[str, DriftBaseline | None] = {}
        self._rates: dict[str, DecisionRates | None] = {}

    def champion(self) -> str | None:
        return self.pointer.read().champion

    def baseline(self, version: str) -> DriftBaseline | None:
        if version not in self._found:
            try:
                files = self.versions.read(version, (CARD_FILE, BASELINE_FILE))
            except SystemicError as error:  # denied, say: that version only goes uncompared
                raise RegistryError(str(error)) from error
            if files is None:
                return None  # not kept: it may be published later
            try:
                card, baseline = (json.loads(files[name]) for name in (CARD_FILE, BASELINE_FILE))
                named = artifacts_version(card, baseline)
                if named != version:
                    raise RegistryError(f"its card and baseline are of version {named}")
                self._found[version] = DriftBaseline.from_dicts(card, baseline)
                self._rates[version] = DecisionRates.from_card(card)
            except (ValueError, KeyError, TypeError) as error:
                raise RegistryError(f"{type(error).__name__}: {error}") from error
        return self._found[version]

    def decline_share(self, version: str) -> float | None:
        """The share of transactions `version`'s card expects it to decline (its test slice);
        None when the registry has no such version or its card does not say. The promotion
        check's port (promotion/check.py CardRates)."""
        if self.baseline(version) is None:
            return None
        rates = self._rates.get(version)
        return None if rates is None else rates.decline
