"""The model registry's rules: a version's manifest, and the pointer naming champion and challenger.

A version lives under `models/<version>/` in the artifacts bucket: its files (model.onnx,
model_card.json, baseline.json, and any later versions add) and `manifest.json`, which lists
every other file with its size and sha256. Objects of a version are written once and never
changed; a reader downloads them and checks each against the manifest before anything uses them.

The pointer is one item: the champion (the version that decides), an optional challenger (scored
in shadow), the champions before (newest last, for rollback) and a revision that every change
increments, so that two operators cannot both change the same pointer (compare and set).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MANIFEST_FILE = "manifest.json"
PREFIX = "models"
REQUIRED_FILES = ("model.onnx", "model_card.json", "baseline.json")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
KEPT_CHAMPIONS = 20  # earlier champions the pointer remembers for rollback


class RegistryError(Exception):
    """A registry operation that must not happen: a bad version, file or pointer change."""


def version_prefix(version: str) -> str:
    """`models/<version>/`, the key prefix of a version's objects."""
    check_version(version)
    return f"{PREFIX}/{version}/"


def check_version(version: str) -> str:
    if not VERSION.fullmatch(version):
        raise RegistryError(
            f"{version!r} is not a model version: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 128"
        )
    return version


def manifest(model_version: str, files: Mapping[str, bytes]) -> dict[str, Any]:
    """The manifest of a version's files (the manifest itself not among them)."""
    check_version(model_version)
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise RegistryError(f"version {model_version} lacks {', '.join(missing)}")
    if MANIFEST_FILE in files or any("/" in name or not name for name in files):
        raise RegistryError("a version's files are plain names, manifest.json not among them")
    return {
        "model_version": model_version,
        "files": {
            name: {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            for name, content in sorted(files.items())
        },
    }


def check_files(document: Mapping[str, Any], files: Mapping[str, bytes]) -> None:
    """RegistryError unless `files` are exactly the manifest's, each of its size and hash."""
    listed = document.get("files")
    if not isinstance(listed, Mapping) or not listed:
        raise RegistryError("the manifest lists no files")
    for name, entry in listed.items():
        content = files.get(name)
        if content is None:
            raise RegistryError(f"{name} is missing")
        if len(content) != entry.get("bytes"):
            raise RegistryError(
                f"{name} has {len(content)} bytes, the manifest {entry.get('bytes')}"
            )
        if hashlib.sha256(content).hexdigest() != entry.get("sha256"):
            raise RegistryError(f"{name} does not match its sha256 in the manifest")
    extra = sorted(set(files) - set(listed))
    if extra:
        raise RegistryError(f"{', '.join(extra)} not in the manifest")


@dataclass(frozen=True)
class Pointer:
    """Which versions serve: the champion decides, a challenger is scored in shadow."""

    champion: str | None = None
    challenger: str | None = None
    previous: tuple[str, ...] = ()  # earlier champions, newest last
    revision: int = 0  # 0: no pointer stored yet
    # the decision-rate guard's switch: the champion declines nothing, its declines are reviewed
    # (it stays through promotions and rollbacks until switched off)
    review_only: bool = False
    # when the challenger was named (ISO 8601 UTC): its time in shadow counts from there
    challenger_since: str | None = None
    # the promotion check's latest decision (promotion/check.py), kept until the next one
    decision: dict[str, Any] | None = None

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "revision": self.revision,
            "previous": list(self.previous),
            "review_only": self.review_only,
        }
        if self.champion is not None:
            item["champion"] = self.champion
        if self.challenger is not None:
            item["challenger"] = self.challenger
        if self.challenger_since is not None:
            item["challenger_since"] = self.challenger_since
        if self.decision is not None:
            # one string: the figures' floats stay floats (DynamoDB numbers would be Decimals)
            item["decision"] = json.dumps(self.decision, separators=(",", ":"), allow_nan=False)
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Pointer:
        def name(key: str) -> str | None:
            value = item.get(key)
            return None if value is None else check_version(str(value))

        return cls(
            champion=name("champion"),
            challenger=name("challenger"),
            previous=tuple(check_version(str(v)) for v in item.get("previous") or ()),
            revision=int(item.get("revision", 0)),
            review_only=bool(item.get("review_only", False)),
            challenger_since=item.get("challenger_since"),
            decision=json.loads(item["decision"]) if item.get("decision") else None,
        )

    def _next(self, **changes: Any) -> Pointer:
        return dataclasses.replace(self, revision=self.revision + 1, **changes)

    def with_champion(self, version: str) -> Pointer:
        """`version` decides from now on; the champion before it is remembered for rollback."""
        check_version(version)
        if version == self.champion:
            raise RegistryError(f"{version} is the champion already")
        previous = tuple(p for p in self.previous if p != version)
        previous += (self.champion,) if self.champion else ()
        kept = self.challenger != version
        return self._next(
            champion=version,
            challenger=self.challenger if kept else None,
            challenger_since=self.challenger_since if kept else None,
            previous=previous[-KEPT_CHAMPIONS:],
        )

    def with_challenger(self, version: str | None, since: str | None = None) -> Pointer:
        """`version` scored in shadow from `since` (ISO 8601 UTC; None: no challenger)."""
        if version is not None:
            check_version(version)
            if version == self.champion:
                raise RegistryError(f"{version} is the champion; it cannot be its own challenger")
        return self._next(challenger=version, challenger_since=since if version else None)

    def dropped(self) -> Pointer:
        """No challenger from now on."""
        if self.challenger is None:
            raise RegistryError("there is no challenger to drop")
        return self.with_challenger(None)

    def recording(self, decision: dict[str, Any], revision: int) -> Pointer:
        """This pointer with `decision` as the latest promotion decision, at `revision`."""
        return dataclasses.replace(self, decision=decision, revision=revision)

    def with_review_only(self, on: bool) -> Pointer:
        """The guard's switch on (no declines: they are reviewed) or off."""
        if on == self.review_only:
            raise RegistryError(f"review-only is {'on' if on else 'off'} already")
        return self._next(review_only=on)

    def promoted(self) -> Pointer:
        """The challenger becomes the champion."""
        if self.challenger is None:
            raise RegistryError("there is no challenger to promote")
        return self.with_champion(self.challenger)

    def rolled_back(self) -> Pointer:
        """The champion before this one decides again (before the first: none, so the model
        the score function ships with); the current one is dropped and named nowhere."""
        if self.champion is None:
            raise RegistryError("there is no champion to roll back from")
        if not self.previous:
            return self._next(champion=None)
        *earlier, last = self.previous
        kept = self.challenger != last
        return self._next(
            champion=last,
            challenger=self.challenger if kept else None,
            challenger_since=self.challenger_since if kept else None,
            previous=tuple(earlier),
        )
