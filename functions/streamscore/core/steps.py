"""Running a batch's independent steps side by side, and settling what each left undone."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future
from typing import Any, Protocol

from streamscore.core.errors import RetryableError
from streamscore.core.ids import SequenceNumber


class Positioned(Protocol):
    """A record as a step reports it: by the Kinesis sequence number Lambda resumes at."""

    @property
    def sequence_number(self) -> SequenceNumber: ...


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


def settle[K: str](
    future: Future[set[K]],
    by_key: Mapping[K, Positioned],
    failed: set[SequenceNumber],
    step: Iterable[Positioned] | None = None,
) -> None:
    """Fail the records whose keys the step returned as not done, or all of the step's
    records (`step`, by default every record of `by_key`) when it raised RetryableError.

    Every port's write returns the keys it could not do; this is the one place that maps
    them back to records. Any other exception propagates (a SystemicError fails the batch).
    """
    try:
        not_done = future.result()
    except RetryableError:
        failed.update(r.sequence_number for r in (by_key.values() if step is None else step))
        return
    failed.update(by_key[key].sequence_number for key in not_done)
