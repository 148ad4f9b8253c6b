"""The embedded stack: moto server, template.yaml deployed into it, and the functions' containers.

`with EmbeddedStack(...) as stack:` starts moto, deploys the template, reads every function's
configuration back from the deployed stack, and builds one in-process container per function;
`stack.emulator()` wires the stack's event-source mappings to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from embedded.containers import FunctionConfig, FunctionContainer, Invoker
from embedded.deploy import DeployedStack, deploy_local_stack
from embedded.emulator import IDLE_POLL_SECONDS, EventSourceEmulator, Incident, MappingConfig
from embedded.server import DUMMY_CREDENTIALS, MotoServer
from embedded.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
MODEL_DIR = ROOT / "models" / "artifacts"
STACK_NAME = "streamscore-local"
# Outside Lambda there is no X-Ray daemon to send traces to.
LOCAL_FUNCTION_ENV = {"POWERTOOLS_TRACE_DISABLED": "true"}


class EmbeddedStack:
    """The template's stack in a private moto server, with its functions runnable in-process."""

    def __init__(
        self,
        template_path: Path = TEMPLATE_PATH,
        stack_name: str = STACK_NAME,
        parameters: Mapping[str, str] | None = None,
        port: int = 0,
        model_dir: Path = MODEL_DIR,
        server: MotoServer | None = None,
    ):
        """`server`: deploy into a running moto (left running) instead of starting one."""
        self.template_path = template_path
        self.stack_name = stack_name
        self.parameters = dict(parameters or {})
        self.model_dir = model_dir
        self._owns_server = server is None
        self.server = server or MotoServer(port=port)
        self.stack: DeployedStack | None = None
        self.functions: dict[str, FunctionContainer] = {}  # by logical id

    def __enter__(self) -> Self:
        _local_defaults(self.template_path, self.parameters)
        if self._owns_server:
            self.server.start()
        try:
            self.stack = deploy_local_stack(
                self.client, self.template_path, self.stack_name, self.parameters
            )
            self._build_containers()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._owns_server:
            self.server.stop()

    def client(self, service: str) -> Any:
        return self.server.client(service)

    @property
    def deployed(self) -> DeployedStack:
        if self.stack is None:
            raise RuntimeError("the embedded stack is not deployed yet")
        return self.stack

    def local_environment(self, function: FunctionConfig) -> dict[str, str]:
        """What a function gets on top of its deployed environment to run here."""
        environment = LOCAL_FUNCTION_ENV | DUMMY_CREDENTIALS
        environment |= {
            "AWS_ENDPOINT_URL": self.server.endpoint,
            "AWS_REGION": self.server.region,
            "AWS_DEFAULT_REGION": self.server.region,
        }
        if "MODEL_DIR" in function.environment:
            # the model layer's /opt/model is the repository's models/artifacts here
            environment["MODEL_DIR"] = str(self.model_dir)
        return environment

    def _build_containers(self) -> None:
        lambda_ = self.client("lambda")
        for resource in self.deployed.of_type("AWS::Lambda::Function"):
            configuration = lambda_.get_function_configuration(FunctionName=resource.physical_id)
            config = FunctionConfig.from_configuration(configuration)
            self.functions[resource.logical_id] = FunctionContainer(
                config, self.local_environment(config)
            )

    def function(self, name: str) -> FunctionContainer:
        """A function by logical id (ScoreFunction), short name (score, drift-check), deployed name or ARN."""
        if name in self.functions:
            return self.functions[name]
        for logical_id, container in self.functions.items():
            if name in (container.config.name, container.config.arn, short_name(logical_id)):
                return container
        known = ", ".join(sorted(self.functions))
        raise KeyError(f"no function {name} in stack {self.stack_name}; functions: {known}")

    def mappings(self) -> list[MappingConfig]:
        """The stack's event-source mappings as Lambda describes them."""
        lambda_ = self.client("lambda")
        return [
            MappingConfig.from_api(lambda_.get_event_source_mapping(UUID=resource.physical_id))
            for resource in self.deployed.of_type("AWS::Lambda::EventSourceMapping")
        ]

    def emulator(
        self,
        invokers: Mapping[str, Invoker] | None = None,
        clock: Callable[[], float] | None = None,
        idle_poll_s: float = IDLE_POLL_SECONDS,
        on_incident: Callable[[Incident], None] | None = None,
    ) -> EventSourceEmulator:
        """An emulator of every mapping; functions run in their containers unless `invokers` says otherwise."""
        by_arn = {c.config.arn: c for c in self.functions.values()}
        targets: dict[str, Invoker] = {arn: c.invoke for arn, c in by_arn.items()}
        targets |= dict(invokers or {})
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        return EventSourceEmulator(
            self.mappings(),
            targets,
            roles={arn: c.config.role for arn, c in by_arn.items()},
            clients=self.client,
            region=self.server.region,
            idle_poll_s=idle_poll_s,
            on_incident=on_incident,
            consumers=self.deployed.consumers,
            **extra,
        )


# Parameters a local stack takes unless given (a parameter given keeps its value):
# - a drain waits for every mapping's buffered records: the feature log's batching window (60 s
#   deployed, for fewer, larger objects) would add itself to every drain of a local stack, where
#   days of traffic pass in minutes (even 1 s doubled the end-to-end tests' time).
LOCAL_DEFAULTS = {"FeatureLogMaximumBatchingWindowInSeconds": "0"}


def _local_defaults(template_path: Path, parameters: dict[str, str]) -> None:
    try:
        declared = load_template(template_path).get("Parameters", {})
    except Exception:  # deploying it says what is wrong with the template
        return
    for name, value in LOCAL_DEFAULTS.items():
        if name in declared:
            parameters.setdefault(name, value)


def short_name(logical_id: str) -> str:
    """A function's short name from its logical id: DriftCheckFunction -> drift-check."""
    base = logical_id.removesuffix("Function")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", base).lower()
