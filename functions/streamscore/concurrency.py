"""Running a batch's independent steps side by side."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any


def submit_or_run(executor: Executor | None, work: Callable[..., Any], *args: Any) -> Future[Any]:
    """`work(*args)` on `executor`, or run now into a completed future when there is none."""
    if executor is not None:
        return executor.submit(work, *args)
    future: Future[Any] = Future()
    try:
        future.set_result(work(*args))
    except Exception as error:
        future.set_exception(error)
    return future
