"""A client's User-Agent built once per feature set is the string botocore builds each time."""

from __future__ import annotations

import boto3
from botocore.context import start_as_current_context
from botocore.useragent import register_feature_id

from streamscore.aws.retry import client_config
from streamscore.aws.wire import cache_user_agent


def _client() -> object:
    return boto3.client("dynamodb", region_name="us-east-1", config=client_config())


def test_the_kept_user_agent_is_botocores_with_and_without_request_features() -> None:
    # given a client as botocore makes it and one with its User-Agent kept
    plain, kept = _client(), cache_user_agent(_client())
    build = plain._user_agent_creator.to_string  # type: ignore[attr-defined]
    keep = kept._user_agent_creator.to_string  # type: ignore[attr-defined]

    # then outside any request, and inside requests that registered features, they agree
    assert keep() == build() == keep()
    with start_as_current_context():
        register_feature_id("RETRY_MODE_STANDARD")
        with_retry = build()
        assert keep() == with_retry
    with start_as_current_context():
        register_feature_id("WAITER")
        assert keep() == build() != with_retry
