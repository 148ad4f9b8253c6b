"""Registry operations on a stack: publish a version, name champion and challenger, roll back.

Each reads the pointer, computes the change (streamscore.core.registry.Pointer) and writes it
if nobody changed it meanwhile; the scoring function follows the pointer. Used by the command
line against a deployed stack and by the embedded local run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamscore.aws.registry import DynamoModelPointer, S3ModelVersions
from streamscore.core.artifacts import CARD_FILE
from streamscore.core.registry import Pointer, RegistryError
from streamscore.core.times import utc_iso_ms


@dataclass
class Registry:
    versions: S3ModelVersions
    pointer: DynamoModelPointer

    @classmethod
    def of(cls, s3: Any, dynamodb: Any, bucket: str, table: str) -> Registry:
        return cls(S3ModelVersions(s3, bucket), DynamoModelPointer(dynamodb, table))

    def publish(
        self, directory: Path, role: str | None = None, now: datetime | None = None
    ) -> tuple[str, bool, Pointer]:
        """Publish the model in `directory` (what `make model` writes) under the version its
        card names; `role` "champion" or "challenger" also points to it (a challenger's time in
        shadow counts from `now`, default the clock's). Returns the version, whether it was
        written (False: there already, same files) and the pointer after."""
        files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
        if CARD_FILE not in files:
            raise RegistryError(f"{directory} has no {CARD_FILE}")
        version = str(json.loads(files[CARD_FILE])["model_version"])
        written = self.versions.publish(version, files)
        current = self.pointer.read(consistent=True)
        if role == "champion":
            return version, written, self._change(current, current.with_champion(version))
        if role == "challenger":
            since = utc_iso_ms(now or datetime.now(UTC))
            return version, written, self._change(current, current.with_challenger(version, since))
        return version, written, current

    def promote(self) -> Pointer:
        current = self.pointer.read(consistent=True)
        return self._change(current, current.promoted())

    def rollback(self) -> Pointer:
        current = self.pointer.read(consistent=True)
        return self._change(current, current.rolled_back())

    def drop_challenger(self) -> Pointer:
        current = self.pointer.read(consistent=True)
        return self._change(current, current.dropped())

    def review_only(self, on: bool) -> Pointer:
        current = self.pointer.read(consistent=True)
        return self._change(current, current.with_review_only(on))

    def status(self) -> Pointer:
        return self.pointer.read(consistent=True)

    def _change(self, current: Pointer, new: Pointer) -> Pointer:
        for version in (new.champion, new.challenger):
            if version is not None and self.versions.read_manifest(version) is None:
                raise RegistryError(f"version {version} is not in the registry; publish it first")
        self.pointer.write(new, current.revision)
        return new
