"""The model registry on AWS: versions in the artifacts bucket, the pointer in MonitoringTable.

Why the pointer is a DynamoDB item and not an SSM parameter: a pointer change must be compare
and set (two operators, or a promotion policy and an operator, must not both change the same
pointer), which a conditional write on `revision` gives and PutParameter does not; every scoring
container will read it every few seconds, a fleet-wide rate that Parameter Store's throughput,
one per account and Region (Systems Manager API Reference, GetParameter), would share with
everything else in the account; the stack's table is already there, encrypted with
the stack key and backed up; and IAM can confine a reader to this one partition key
(dynamodb:LeadingKeys). A read costs half a read request unit (eventually consistent).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamscore.aws.dynamodb import deserialize, serialize
from streamscore.aws.retry import translate_error
from streamscore.core.registry import (
    MANIFEST_FILE,
    Pointer,
    RegistryError,
    check_files,
    manifest,
    version_prefix,
)

POINTER_KEY = {"pk": "MODEL", "sk": "POINTER"}


class S3ModelVersions:
    """Versions as objects under models/<version>/ in the artifacts bucket, written once."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def publish(self, model_version: str, files: Mapping[str, bytes]) -> bool:
        """Write a version's files, then its manifest (last: a version without one is not
        there). True when written, False when the same version with the same files is there
        already; RegistryError when the version exists with other files."""
        document = manifest(model_version, files)
        existing = self.read_manifest(model_version)
        if existing is not None:
            if existing != document:
                raise RegistryError(
                    f"version {model_version} is in the registry with other files; a version "
                    "is written once (train a new one: its version follows its content)"
                )
            return False
        prefix = version_prefix(model_version)
        for name, content in sorted(files.items()):
            self._put(prefix + name, content)
        self._put(prefix + MANIFEST_FILE, _json_bytes(document))
        return True

    def read_manifest(self, model_version: str) -> dict[str, Any] | None:
        content = self._get(version_prefix(model_version) + MANIFEST_FILE)
        return None if content is None else json.loads(content)

    def read(
        self, model_version: str, names: tuple[str, ...] | None = None
    ) -> dict[str, bytes] | None:
        """The version's files (`names` of them; None: every file its manifest lists), each
        checked against the manifest; None when the registry has no such version, RegistryError
        when a file is missing or altered."""
        document = self.read_manifest(model_version)
        if document is None:
            return None
        if document.get("model_version") != model_version:
            raise RegistryError(f"the manifest under {model_version} is of another version")
        listed = document.get("files", {})
        wanted = listed if names is None else {name: listed.get(name, {}) for name in names}
        files: dict[str, bytes] = {}
        for name in wanted:
            content = self._get(version_prefix(model_version) + name)
            if content is not None:
                files[name] = content
        check_files({"files": wanted}, files)
        return files

    def download(self, model_version: str, directory: Path) -> Path:
        """The version's files in `directory`, each checked against the manifest first;
        RegistryError naming what is wrong (no such version, a missing or altered file)."""
        files = self.read(model_version)
        if files is None:
            raise RegistryError(f"version {model_version} is not in the registry")
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (directory / name).write_bytes(content)
        return directory

    def _put(self, key: str, body: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except (ClientError, BotoCoreError) as error:
            raise translate_error(error, f"S3 PutObject s3://{self.bucket}/{key}") from error

    def _get(self, key: str) -> bytes | None:
        """The object's bytes; None when S3 says it does not exist (404). Without s3:ListBucket
        S3 answers a missing object with 403 (Amazon S3 API Reference, GetObject: "If you don't
        have the s3:ListBucket permission, Amazon S3 returns an HTTP status code 403 Access
        Denied error"): that stays an error, never taken for absent."""
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise translate_error(error, f"S3 GetObject s3://{self.bucket}/{key}") from error
        except BotoCoreError as error:
            raise translate_error(error, f"S3 GetObject s3://{self.bucket}/{key}") from error


class DynamoModelPointer:
    """The pointer item (pk MODEL, sk POINTER) in MonitoringTable, changed by compare and set."""

    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    def read(self, consistent: bool = False) -> Pointer:
        """The stored pointer; an empty one (revision 0) when none is stored."""
        try:
            found = self.client.get_item(
                TableName=self.table_name, Key=serialize(POINTER_KEY), ConsistentRead=consistent
            )
        except (ClientError, BotoCoreError) as error:
            raise translate_error(error, f"DynamoDB GetItem on {self.table_name}") from error
        return Pointer.from_item(deserialize(found["Item"])) if "Item" in found else Pointer()

    def write(self, pointer: Pointer, expected_revision: int) -> None:
        """Store `pointer` if the stored one is still at `expected_revision` (0: none stored);
        RegistryError when another change came first."""
        condition = "attribute_not_exists(pk)" if expected_revision == 0 else "revision = :expected"
        values = {} if expected_revision == 0 else {":expected": expected_revision}
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": serialize(POINTER_KEY | pointer.to_item()),
            "ConditionExpression": condition,
        }
        if values:
            request["ExpressionAttributeValues"] = serialize(values)
        try:
            self.client.put_item(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise RegistryError(
                    "the pointer changed since it was read (revision "
                    f"{expected_revision}); read it again and retry"
                ) from error
            raise translate_error(error, f"DynamoDB PutItem on {self.table_name}") from error
        except BotoCoreError as error:
            raise translate_error(error, f"DynamoDB PutItem on {self.table_name}") from error


class RegistryModelSource:
    """What the score function follows (scoring.serving.ModelSource): the pointer's champion and
    challenger, each version downloaded to `cache_dir` and checked, then loaded by `load` (load_model)."""

    def __init__(
        self,
        versions: Callable[[], S3ModelVersions],
        pointer: DynamoModelPointer,
        load: Callable[[Path], Any],
        shipped_dir: Path,
        cache_dir: Path,
    ):
        # made on the first download (a swap), not at init: an S3 client costs cold start
        self._versions_factory = versions
        self._versions: S3ModelVersions | None = None
        self.pointer_store = pointer
        self._load = load
        self.shipped_dir = shipped_dir
        self.cache_dir = cache_dir

    def pointer(self) -> tuple[str | None, str | None, int, bool]:
        pointer = self.pointer_store.read()
        return pointer.champion, pointer.challenger, pointer.revision, pointer.review_only

    def load(self, version: str | None) -> Any:
        if version is None:
            return self._load(self.shipped_dir)
        directory = self.cache_dir / version
        shutil.rmtree(directory, ignore_errors=True)  # never a half-written copy of an attempt
        if self._versions is None:
            self._versions = self._versions_factory()
        self._versions.download(version, directory)
        model = self._load(directory)
        if model.model_version != version:
            raise RegistryError(f"version {version} holds a model of version {model.model_version}")
        return model


def _json_bytes(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2) + "\n").encode()
