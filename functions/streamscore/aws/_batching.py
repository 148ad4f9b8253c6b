"""Chunking and concurrent fan-out shared by the batch adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor


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
