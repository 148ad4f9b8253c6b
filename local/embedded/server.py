"""moto in server mode on 127.0.0.1, in its own process, for the embedded run.

Its own process, so the AWS emulation and the handlers run on separate cores; it listens on
a free port unless one is asked for, and it goes away with the process that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import boto3
from botocore.config import Config

LOCAL_DIR = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
# moto accepts any credentials; these make sure nothing here ever signs with real ones.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
START_TIMEOUT_SECONDS = 60.0


class ServerStartError(RuntimeError):
    """moto could not start; the message says why and what to do."""


class MotoServer:
    """A moto server subprocess: `with MotoServer() as server: server.client("kinesis")`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, region: str = REGION):
        self.host = host
        self.requested_port = port
        self.region = region
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        env = {
            k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
        }
        env |= DUMMY_CREDENTIALS | {"AWS_DEFAULT_REGION": self.region}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(LOCAL_DIR), *filter(None, [env.get("PYTHONPATH")])]
        )
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "embedded.moto_process",
                "--host",
                self.host,
                "--port",
                str(self.requested_port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self._first_line(self._process.stdout, START_TIMEOUT_SECONDS)
        if ready is None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # still running: it hangs
                self._process.wait(timeout=2)
            exited = self._process.poll() is not None
            tail = self._stderr_tail()
            self.stop()
            raise ServerStartError(
                (
                    f"moto exited at start: {tail or 'no message'}"
                    if exited
                    else f"moto did not start within {START_TIMEOUT_SECONDS:.0f} s"
                )
                + "; is the environment complete? (`make venv` installs the pinned moto[server])"
            )
        try:
            status = json.loads(ready)
        except json.JSONDecodeError:
            status = {"error": ready.strip() or self._stderr_tail()}
        if "port" not in status:
            self.stop()
            raise ServerStartError(self._explain(status))
        self.port = int(status["port"])
        # moto prints warnings (resource types it skips) and tracebacks of failed requests:
        # keep both pipes drained, or a full pipe would block the server.
        for stream in (self._process.stdout, self._process.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()
        return self

    def _explain(self, status: dict[str, object]) -> str:
        reason = status.get("error") or self._stderr_tail() or "no reason given"
        if status.get("errno") == 98 or "in use" in str(reason):
            return (
                f"port {self.requested_port} on {self.host} is in use ({reason}). Stop the "
                "program that holds it, pick another with --port, or leave --port out to use "
                "a free one."
            )
        return f"moto could not listen on {self.host}:{self.requested_port}: {reason}"

    @staticmethod
    def _first_line(stream: IO[str] | None, timeout: float) -> str | None:
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(stream.readline() if stream else ""), daemon=True
        )
        reader.start()
        reader.join(timeout)
        return line[0] if line and line[0] else None

    def _stderr_tail(self) -> str:
        if self._process is None or self._process.stderr is None or self._process.poll() is None:
            return ""
        return self._process.stderr.read()[-2000:].strip()

    @staticmethod
    def _drain(stream: IO[str] | None) -> None:
        if stream is not None:
            for _ in stream:
                pass

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()  # the server exits when its stdin closes
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client of this server, with dummy credentials."""
        session: Any = boto3.session.Session(
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        )
        return session.client(
            service,
            endpoint_url=self.endpoint,
            config=Config(max_pool_connections=16, **config),
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
