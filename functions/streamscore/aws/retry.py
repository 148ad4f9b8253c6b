"""Retry policy for partial batch failures (UnprocessedItems, FailedRecordCount, FailedEntryCount).

botocore's own retries (standard mode, see `client_config`) cover whole-call
throttling and transient errors; this covers the items a successful call
hands back as not done.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

from streamscore.core.errors import RetryableError, SystemicError


def _botocore_codes(checker: type, attribute: str) -> frozenset[str]:
    """The error codes one of botocore's standard-mode retry checkers treats as retryable.

    `attribute` is a PRIVATE class attribute of botocore (no public API lists
    these codes); it is read here so that a botocore upgrade that adds codes
    keeps us in line. Should it disappear, this gives nothing (only our own
    codes and the 5xx rule would stay) and tests/unit/aws/test_retryable_codes.py
    fails: botocore is pinned (functions/requirements.txt), so an upgrade meets
    that test before a deploy.
    """
    codes = getattr(checker, attribute, ())
    return frozenset(code for code in codes if isinstance(code, str))


# What botocore's standard retry mode (see `client_config`) retries by error code.
BOTOCORE_THROTTLED_CODES = _botocore_codes(ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES")
BOTOCORE_TRANSIENT_CODES = _botocore_codes(TransientRetryableChecker, "_TRANSIENT_ERROR_CODES")

# Codes of the services we call that botocore's lists lack (server faults that may
# come with a status below 500 from some endpoints, and KMS throttling under SSE).
SERVICE_RETRYABLE_CODES = frozenset(
    {
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSThrottlingException",
    }
)

RETRYABLE_CODES = BOTOCORE_THROTTLED_CODES | BOTOCORE_TRANSIENT_CODES | SERVICE_RETRYABLE_CODES

# The transport faults botocore's standard mode retries (timeouts, refused or
# dropped connections, a response cut short), by their public base classes:
# ConnectionError covers EndpointConnectionError, ConnectTimeoutError,
# ProxyConnectionError and SSLError; HTTPClientError covers ReadTimeoutError,
# ConnectionClosedError and ResponseStreamingError.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (BotocoreConnectionError, HTTPClientError)


def client_config(
    max_attempts: int = 4, read_timeout: float = 5.0, validate_parameters: bool = False
) -> Config:
    """botocore settings for clients built once per container: standard retries, short timeouts.

    Client-side parameter validation is off by default: it was ~27 % of the
    preprocess handler's CPU per batch (measured), our requests are built by
    code under test, and the service still rejects a malformed request.
    """
    return Config(
        parameter_validation=validate_parameters,
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=2.0,
        read_timeout=read_timeout,
        tcp_keepalive=True,
        max_pool_connections=16,
    )


class Backoff:
    """Exponential backoff with full jitter; counts its pauses (a metric). `sleep` is injectable."""

    def __init__(
        self,
        attempts: int = 6,
        base_seconds: float = 0.05,
        cap_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        self.attempts = attempts
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.pauses = 0
        self._lock = threading.Lock()

    def pause(self, attempt: int) -> None:
        """Wait before retry number `attempt` (1-based)."""
        with self._lock:
            self.pauses += 1
        self.sleep(self.rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt)))

    def until_done[T](self, send: Callable[[list[T]], list[T]], pending: list[T]) -> list[T]:
        """Call `send` on what is pending until nothing comes back or the attempts run out.

        `send` makes one call and returns the part the service handed back as
        not done (UnprocessedItems, failed entries); between calls, a pause.
        Returns what is still not done.
        """
        for attempt in range(1, self.attempts + 1):
            pending = send(pending)
            if not pending:
                return []
            if attempt < self.attempts:
                self.pause(attempt)
        return pending


def translate_error(error: Exception, action: str) -> Exception:
    """The project's exception for a botocore error raised while doing `action`."""
    if isinstance(error, RETRYABLE_EXCEPTIONS):
        return RetryableError(f"{action}: {type(error).__name__}: {error}")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in RETRYABLE_CODES or status >= 500:
            return RetryableError(f"{action}: {code or status}: {error}")
        return SystemicError(f"{action}: {code}: {error}")
    return error
