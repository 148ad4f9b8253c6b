"""The stack's functions as in-process "containers": each handler module imported once, with its env.

A container imports its function's handler module the first time it is invoked, with the
environment the deployed function has (its configuration in the stack) plus what the local
run needs: the model directory, the AWS endpoint of the embedded moto, dummy credentials.
Every later invocation reuses the module, its clients and its model, as a warm Lambda
container does; one invocation runs at a time. A failed import is an init error and is
retried on the next invocation, as Lambda does.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

import boto3

# A function's environment is process-wide while its module loads and while it runs (Powertools
# reads some variables per call), so one function runs at a time in this process.
_ENVIRONMENT_LOCK = threading.RLock()
# The Powertools singletons are module state; each function gets its own, as in its own container.
_PER_CONTAINER_MODULES = ("streamscore.core.observability",)


class FunctionOutput(io.TextIOBase):
    """Where the handlers' stdout (Powertools logs and EMF metrics) goes: a stream set per run.

    Powertools binds its log handler to the stream stdout is when the first Logger of a
    service is built, so the handlers are imported while stdout is this object, and each run
    points it somewhere (a log file, stderr) without re-creating any logger. Between runs it
    writes to the current stdout.
    """

    def __init__(self) -> None:
        super().__init__()
        self._target: TextIO | None = None
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            target = self._target or self._stdout()
            if target is not None:
                target.write(text)
        return len(text)

    def _stdout(self) -> TextIO | None:
        # Outside a run, whatever stdout is now (a test's capture, say), as if never redirected.
        try:
            return sys.stdout if sys.stdout is not self else sys.__stdout__
        except AttributeError:  # at interpreter exit (IOBase's finaliser flushes): sys is gone
            return None

    def flush(self) -> None:
        with self._lock:
            target = self._target or self._stdout()
            if target is not None:
                target.flush()

    @contextlib.contextmanager
    def to(self, target: TextIO) -> Iterator[None]:
        """Send function output to `target`, and route this process's stdout here meanwhile."""
        previous = self._target
        self._target = target
        try:
            with contextlib.redirect_stdout(self):
                yield
        finally:
            self.flush()
            self._target = previous


FUNCTION_OUTPUT = FunctionOutput()


@dataclass(frozen=True)
class FunctionConfig:
    """What the deployed function says about itself (get_function_configuration)."""

    name: str
    arn: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    role: str
    environment: dict[str, str]

    @classmethod
    def from_configuration(cls, configuration: Mapping[str, Any]) -> FunctionConfig:
        variables = configuration.get("Environment", {}).get("Variables", {})
        return cls(
            name=configuration["FunctionName"],
            arn=configuration["FunctionArn"],
            handler=configuration["Handler"],
            timeout_seconds=int(configuration.get("Timeout", 3)),
            memory_mb=int(configuration.get("MemorySize", 128)),
            role=configuration.get("Role", ""),
            # moto hands Number parameters back as numbers; Lambda's environment is strings.
            environment={name: str(value) for name, value in variables.items()},
        )


@dataclass(frozen=True)
class LambdaContext:
    """The context object a handler gets: the fields Powertools and the handlers read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    deadline: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local/[$LATEST]embedded"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class FunctionError:
    """An invocation that failed: what Lambda would put in errorType / errorMessage."""

    error_type: str
    message: str
    stack_trace: list[str]
    during_init: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "errorMessage": self.message,
            "errorType": self.error_type,
            "stackTrace": self.stack_trace,
        }

    def __str__(self) -> str:
        where = "initialisation failed: " if self.during_init else ""
        return f"{where}{self.error_type}: {self.message}"


@dataclass(frozen=True)
class Invocation:
    """One invocation's outcome: the handler's response, or its error."""

    response: Any = None
    error: FunctionError | None = None
    duration_s: float = 0.0
    init_duration_s: float | None = None  # set on a cold start


Invoker = Callable[[dict[str, Any]], Invocation]


class FunctionContainer:
    """One function, imported once in this process with its deployed environment."""

    def __init__(self, config: FunctionConfig, local_environment: Mapping[str, str]):
        self.config = config
        self.environment = (
            config.environment
            | dict(local_environment)
            | {
                "AWS_LAMBDA_FUNCTION_NAME": config.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
            }
        )
        self._module: ModuleType | None = None
        self._handler: Callable[[dict[str, Any], Any], Any] | None = None
        self._lock = threading.Lock()
        self.invocations = 0
        self.errors = 0
        self.cold_starts = 0
        self.init_seconds: float | None = None
        self.busy_seconds = 0.0

    @property
    def module_name(self) -> str:
        return self.config.handler.rsplit(".", 1)[0]

    def _load(self) -> float:
        """Import the handler module afresh with the function's environment; seconds it took."""
        module_name, attribute = self.config.handler.rsplit(".", 1)
        started = time.perf_counter()
        with (
            _ENVIRONMENT_LOCK,
            _environment(self.environment),
            FUNCTION_OUTPUT.to(_current_target()),
        ):
            saved = {name: sys.modules.get(name) for name in (module_name, *_PER_CONTAINER_MODULES)}
            for name in saved:
                sys.modules.pop(name, None)
            # A fresh default session reads this function's environment (endpoint, credentials).
            boto3.DEFAULT_SESSION = None
            try:
                module = importlib.import_module(module_name)
            finally:
                boto3.DEFAULT_SESSION = None
                # The module lives on in this container only; sys.modules is left as it was.
                for name, previous in saved.items():
                    if previous is None:
                        sys.modules.pop(name, None)
                    else:
                        sys.modules[name] = previous
        self._module = module
        self._handler = getattr(module, attribute)
        return time.perf_counter() - started

    def load(self) -> FunctionError | None:
        """Start the container now (a cold start) unless it runs; the init error, if any."""
        with self._lock:
            return self._ensure_loaded()[1]

    def _ensure_loaded(self) -> tuple[float | None, FunctionError | None]:
        if self._handler is not None:
            return None, None
        try:
            seconds = self._load()
        except Exception as error:
            return None, self._logged(_function_error(error, during_init=True))
        self.cold_starts += 1
        self.init_seconds = seconds
        return seconds, None

    def _logged(self, error: FunctionError) -> FunctionError:
        """Write the error to the function's log, as the Lambda runtime does, and return it."""
        FUNCTION_OUTPUT.write(
            json.dumps({"function_name": self.config.name, **error.payload()}) + "\n"
        )
        return error

    def rewire(self, wire: Callable[[ModuleType], Callable[[dict[str, Any], Any], Any]]) -> None:
        """Serve `wire(module)` as the handler from now on: the same module's stages wired
        otherwise (the closed loop gives the drift check its simulated clock)."""
        with self._lock:
            _, error = self._ensure_loaded()
            if error is not None:
                raise RuntimeError(f"{self.config.name} failed to start: {error}")
            assert self._module is not None
            self._handler = wire(self._module)

    def __call__(self, event: dict[str, Any]) -> Invocation:
        return self.invoke(event)

    def invoke(self, event: dict[str, Any]) -> Invocation:
        with self._lock:
            self.invocations += 1
            init_seconds, init_error = self._ensure_loaded()
            if init_error is not None:
                self.errors += 1
                return Invocation(error=init_error)
            assert self._handler is not None
            context = LambdaContext(
                function_name=self.config.name,
                invoked_function_arn=self.config.arn,
                memory_limit_in_mb=self.config.memory_mb,
                deadline=time.monotonic() + self.config.timeout_seconds,
            )
            started = time.perf_counter()
            try:
                with _ENVIRONMENT_LOCK, _environment(self.environment):
                    response = self._handler(event, context)
            except Exception as error:
                self.errors += 1
                return Invocation(
                    error=self._logged(_function_error(error)),
                    duration_s=time.perf_counter() - started,
                    init_duration_s=init_seconds,
                )
            finally:
                self.busy_seconds += time.perf_counter() - started
            duration = time.perf_counter() - started
            if duration > self.config.timeout_seconds:
                # In-process code cannot be stopped; Lambda would have ended it and failed the call.
                self.errors += 1
                return Invocation(
                    error=FunctionError(
                        "Sandbox.Timedout",
                        f"Task timed out after {self.config.timeout_seconds:.2f} seconds "
                        f"(took {duration:.2f} s in-process)",
                        [],
                    ),
                    duration_s=duration,
                    init_duration_s=init_seconds,
                )
            return Invocation(response=response, duration_s=duration, init_duration_s=init_seconds)


def _function_error(error: BaseException, during_init: bool = False) -> FunctionError:
    frames = traceback.format_exception(type(error), error, error.__traceback__)
    return FunctionError(
        error_type=type(error).__name__,
        message=str(error),
        stack_trace=[line.rstrip("\n") for line in frames],
        during_init=during_init,
    )


def _current_target() -> TextIO:
    """Where function output goes while a module loads: wherever it goes now."""
    target = FUNCTION_OUTPUT._target
    return target if target is not None else sys.stderr


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `variables` set, put back as it was afterwards (other variables untouched)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
