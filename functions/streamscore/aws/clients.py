"""The AWS SDK clients a function talks through, made once per container and handed to `build`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import boto3
from botocore.config import Config

from streamscore.aws.retry import client_config
from streamscore.aws.wire import cache_user_agent, direct_context_params, use_wire_format


class ClientOptions(TypedDict, total=False):
    """Clients.create's switches, for benchmarks that turn one off."""

    wire_format: bool
    user_agent_once: bool
    direct_context: bool


@dataclass(frozen=True)
class Clients:
    """One client per service a function uses; the others stay None.

    Tests and benchmarks pass their own (moto, flaky wrappers, counting stubs); Lambda
    gets `Clients.create(...)`, which reads the region and credentials from the environment.
    """

    dynamodb: Any = None
    kinesis: Any = None
    events: Any = None
    s3: Any = None
    stepfunctions: Any = None

    @classmethod
    def create(
        cls,
        *services: str,
        configs: dict[str, Config] | None = None,
        wire_format: bool = True,
        user_agent_once: bool = True,
        direct_context: bool = True,
    ) -> Clients:
        """boto3 clients of `services`, each with `client_config()` unless `configs` gives its own.

        With `wire_format` (the default), DynamoDB and EventBridge calls whose parameters we
        build in wire format skip botocore's shape walk and response parser; with
        `user_agent_once`, each client builds its User-Agent once; with `direct_context`, the
        table names DynamoDB's endpoint rules take are read without JMESPath (aws/wire.py).
        All three are switches for side-by-side benchmarks.
        """
        configs = configs or {}
        made = {}
        for name in services:
            make: Any = boto3.client  # one call for every service name boto3-stubs overloads
            client = make(name, config=configs.get(name, client_config()))
            if wire_format:
                use_wire_format(client)
            if user_agent_once:
                cache_user_agent(client)
            if direct_context:
                direct_context_params(client)
            made[name] = client
        return cls(**made)

    def require(self, *services: str) -> None:
        """ValueError naming the services this function needs and was not given."""
        missing = [name for name in services if getattr(self, name) is None]
        if missing:
            raise ValueError(f"no client for {', '.join(missing)}")
