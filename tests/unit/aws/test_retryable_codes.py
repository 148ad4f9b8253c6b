"""RETRYABLE_CODES and translate_error stay in line with what botocore's standard retry mode retries.

The code lists are PRIVATE botocore class attributes (no public API lists them):
if a botocore upgrade renames or drops them, the first test fails and says so,
rather than RETRYABLE_CODES silently shrinking to our own few codes.
"""

from __future__ import annotations

import inspect
from typing import Any

import botocore.exceptions
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

from streamscore.aws.retry import RETRYABLE_CODES, translate_error
from streamscore.core.errors import RetryableError, SystemicError

# Codes of services we call (DynamoDB, Kinesis, EventBridge, KMS under SSE) that
# botocore's lists lack; they must stay retryable whatever botocore lists.
OUR_OWN_CODES = [
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSThrottlingException",
]

PRIVATE_CODE_LISTS = [
    (ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES"),
    (TransientRetryableChecker, "_TRANSIENT_ERROR_CODES"),
]


def botocore_codes(checker: type, attribute: str) -> list[str]:
    """The codes in one of botocore's private lists; fails the test, naming it, when it is gone."""
    codes = getattr(checker, attribute, None)
    if not codes or not all(isinstance(code, str) for code in codes):
        pytest.fail(
            f"botocore {botocore.__version__}: {checker.__name__}.{attribute} is gone or no longer "
            f"a list of error codes ({codes!r}); streamscore.aws.retry.RETRYABLE_CODES reads "
            "it, so find where this botocore keeps its throttling/transient codes and read that"
        )
    return list(codes)


def every_botocore_code() -> list[str]:
    return sorted({code for lst in PRIVATE_CODE_LISTS for code in botocore_codes(*lst)})


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "AnyOperation",
    )


class RetryContext:
    """The part of botocore's retry context its standard-mode checkers read."""

    def __init__(self, code: str | None = None, caught_exception: Exception | None = None):
        self.code = code
        self.http_response: Any = None
        self.caught_exception = caught_exception

    def get_error_code(self) -> str | None:
        return self.code


@pytest.mark.parametrize(("checker", "attribute"), PRIVATE_CODE_LISTS)
def test_botocore_still_has_the_private_code_lists_we_read(checker: type, attribute: str) -> None:
    codes = botocore_codes(checker, attribute)

    # the list is what the checker goes by: each of its codes is retried, an unknown one is not
    assert all(checker().is_retryable(RetryContext(code)) for code in codes)
    assert not checker().is_retryable(RetryContext("AccessDeniedException"))


def test_every_botocore_throttling_and_transient_code_is_retryable() -> None:
    missing = set(every_botocore_code()) - RETRYABLE_CODES

    assert not missing, f"botocore {botocore.__version__} retries these, we do not: {missing}"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("RequestTimeout", 400),  # S3: idle connection timed out, as an HTTP 400
        ("TooManyRequestsException", 400),
        ("ThrottledException", 400),
        ("RequestTimeoutException", 408),
    ],
)
def test_throttling_and_timeout_codes_below_500_are_retryable(code: str, status: int) -> None:
    assert code in RETRYABLE_CODES

    translated = translate_error(client_error(code, status), "S3 PutObject s3://b/k")

    assert type(translated) is RetryableError
    assert code in str(translated)


@pytest.mark.parametrize("code", OUR_OWN_CODES)
def test_our_own_codes_botocore_lacks_stay_retryable(code: str) -> None:
    assert code in RETRYABLE_CODES
    assert type(translate_error(client_error(code, 400), "DynamoDB PutItem on t")) is RetryableError


@pytest.mark.parametrize("status", [500, 502, 503, 504, 509])
def test_any_5xx_stays_retryable_whatever_its_code(status: int) -> None:
    translated = translate_error(client_error("NeverSeenBefore", status), "action")

    assert type(translated) is RetryableError


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "ValidationException", "ConditionalCheckFailedException"]
)
def test_client_faults_stay_systemic(code: str) -> None:
    assert type(translate_error(client_error(code, 400), "action")) is SystemicError


TRANSPORT_ERRORS = [
    ReadTimeoutError(endpoint_url="https://s3"),
    ConnectTimeoutError(endpoint_url="https://s3"),
    EndpointConnectionError(endpoint_url="https://s3"),
    ConnectionClosedError(endpoint_url="https://s3"),
    ProxyConnectionError(proxy_url="https://proxy"),
    SSLError(endpoint_url="https://s3", error="handshake reset"),
    ResponseStreamingError(error="IncompleteRead(10 bytes read, 90 more expected)"),
]


@pytest.mark.parametrize("error", TRANSPORT_ERRORS, ids=lambda e: type(e).__name__)
def test_botocore_timeouts_and_connection_errors_are_retryable(error: Exception) -> None:
    translated = translate_error(error, "S3 PutObject s3://b/k")

    assert type(translated) is RetryableError
    assert str(translated).startswith(f"S3 PutObject s3://b/k: {type(error).__name__}: ")


def transport_error_classes() -> list[type[Exception]]:
    """Every class in botocore.exceptions under its ConnectionError or HTTPClientError."""
    return [
        cls
        for _, cls in inspect.getmembers(botocore.exceptions, inspect.isclass)
        if issubclass(cls, (BotocoreConnectionError, HTTPClientError))
    ]


@pytest.mark.parametrize("cls", transport_error_classes(), ids=lambda c: c.__name__)
def test_every_transport_error_botocore_retries_is_retryable_for_us(
    cls: type[Exception],
) -> None:
    error = cls.__new__(cls)  # no message arguments needed: only its class matters here

    assert TransientRetryableChecker().is_retryable(RetryContext(caught_exception=error))
    assert type(translate_error(error, "action")) is RetryableError
