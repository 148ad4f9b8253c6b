"""Chunking and concurrent fan-out shared by the batch adapters."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future


def chunked[T](items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fan_out[T, R](
    work: Callable[[Sequence[T]], R], chunks: list[Sequence[T]], executor: Executor | None
) -> list[R]:
    """`work` over every chunk, concurrently when an executor is given; the first error propagates."""
    if executor is None or len(chunks) <= 1:
        return [work(chunk) for chunk in chunks]
    return list(executor.map(work, chunks))


def streamed[T, R](
    work: Callable[[T], R], jobs: Sequence[T], executor: Executor | None, ahead: int
) -> Iterator[R]:
    """`work` over every job, results in job order as they are consumed: at most `ahead` jobs
    run (or wait to be consumed) at once, so memory holds `ahead` results, not all of them."""
    if executor is None:
        for job in jobs:
            yield work(job)
        return
    pending: deque[Future[R]] = deque()
    upcoming = iter(jobs)
    try:
        for job in upcoming:
            pending.append(executor.submit(work, job))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
