"""A handler's stage built on test clients, through the module's own `build` and `handler`.

A test changes what the function runs with (flaky clients, a crashing port, a
no-op sleep, steps inline) here, on the object it built, never in the handler
module's globals.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from types import ModuleType
from typing import Any

from streamscore.aws.clients import Clients
from streamscore.aws.retry import Backoff
from streamscore.core.settings import FunctionSettings, load_settings
from streamscore.drift.settings import DriftCheckSettings
from streamscore.featurelog.settings import FeatureLogSettings
from streamscore.labels.settings import LabelSettings
from streamscore.preprocess.settings import PreprocessSettings
from streamscore.retraining.settings import RetrainStartSettings
from streamscore.scoring.settings import ScoreSettings

SERVICES = ("dynamodb", "kinesis", "events", "s3")


class InlineExecutor(Executor):
    """Runs each submitted call at once, in the caller's thread: a batch's steps in a fixed order."""

    def submit[T](self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # the future carries it, as a pool's would
            future.set_exception(error)
        return future


def no_sleep(seconds: float) -> None:
    """A Backoff's sleep that does not wait."""


def quiet_backoff(seed: int | None = None) -> Backoff:
    """A Backoff that never waits (and draws its jitter from `seed`, when given)."""
    return Backoff(sleep=no_sleep, rng=random.Random(seed) if seed is not None else None)


def moto_clients(*services: str) -> Clients:
    """boto3 clients (inside a moto mock or against a moto server), configured as in Lambda."""
    return Clients.create(*services)


class Wired:
    """`module.build(settings, clients, backoff, **options)` and `module.handler(...)` of it.

    `ports` can be replaced (a crashing port, a counting one): the stage and its handler
    are rebuilt around the new ports. Client attributes (`dynamodb`, `kinesis`, ...)
    read through to `clients`.
    """

    def __init__(
        self,
        module: ModuleType,
        settings: Any,
        clients: Clients,
        backoff: Backoff | None = None,
        **options: Any,
    ):
        self.module = module
        self.settings = settings
        self.original_clients = self.clients = clients
        self.backoff = backoff or quiet_backoff()
        self.options = options
        self.handler_options: dict[str, Any] = {}
        self.stage = module.build(settings, clients, self.backoff, **options)
        self._handle()

    @property
    def pools(self) -> list[Executor]:
        """The executors the test gave `build` (to wait on, as if a crashed container had gone)."""
        return [v for v in self.options.values() if isinstance(v, Executor)]

    def use(self, **clients: Any) -> None:
        """Rebuild on the original clients with `clients` swapped in; with none, the original ones."""
        self.clients = dataclasses.replace(self.original_clients, **clients)
        self.stage = self.module.build(self.settings, self.clients, self.backoff, **self.options)
        self._handle()

    def _handle(self) -> None:
        takes_backoff = "backoff" in self.module.handler.__code__.co_varnames
        args = (self.stage, self.backoff) if takes_backoff else (self.stage,)
        options = dict(self.handler_options)
        if hasattr(self.module, "build_promotion"):  # the drift check's second check
            options.setdefault(
                "promotion", self.module.build_promotion(self.settings, self.stage, self.clients)
            )
        self.lambda_handler = self.module.handler(*args, **options)

    def rehandle(self, **handler_options: Any) -> None:
        """The handler made again with these options (the drift check's `clock`)."""
        self.handler_options = handler_options
        self._handle()

    @property
    def ports(self) -> Any:
        return self.stage.ports

    @ports.setter
    def ports(self, ports: Any) -> None:
        self.stage = dataclasses.replace(self.stage, ports=ports)
        self._handle()

    def __getattr__(self, name: str) -> Any:
        if name in SERVICES:
            return getattr(self.clients, name)
        raise AttributeError(name)


def wire(module: ModuleType, environment: Mapping[str, str], **options: Any) -> Wired:
    """`module` (a handler module, imported with `environment`) built on moto clients, never sleeping."""
    stage = module.__name__.rsplit(".", 1)[-1]
    settings_model, services = STAGES[stage]
    return Wired(
        module, load_settings(settings_model, environment), moto_clients(*services), **options
    )


# handler module → its settings and the clients its build needs
STAGES: dict[str, tuple[type[FunctionSettings], tuple[str, ...]]] = {
    "preprocess": (PreprocessSettings, ("dynamodb", "kinesis")),
    "score": (ScoreSettings, ("dynamodb", "events")),
    "drift_check": (DriftCheckSettings, ("dynamodb", "s3", "events")),
    "labels": (LabelSettings, ("dynamodb",)),
    "feature_log": (FeatureLogSettings, ("dynamodb", "s3")),
    "retrain_start": (RetrainStartSettings, ("stepfunctions",)),
}
