"""The project's exceptions: retryable faults are kept apart from bad input and broken setup."""

from __future__ import annotations


class StreamscoreError(Exception):
    """Base of the project's exceptions."""


class RetryableError(StreamscoreError):
    """An AWS fault worth retrying later (throttling, a 5xx, a timeout) that survived our retries."""


class SystemicError(StreamscoreError):
    """A fault no retry will cure (missing table, access denied, bad configuration): fail loudly."""


class InvalidRecordError(StreamscoreError):
    """A record that can never be processed; it is quarantined with `reason` and `details`."""

    def __init__(self, reason: str, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.reason = reason
        self.details = details or []
