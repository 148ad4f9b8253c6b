"""The adapters' fan-out helpers: streamed work keeps only a few results in memory."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from streamscore.aws._batching import streamed


def test_streamed_work_runs_at_most_ahead_jobs_beyond_what_was_consumed() -> None:
    # given 24 jobs (a day of hourly buckets) on 8 threads, 3 ahead
    started: list[int] = []
    lock = threading.Lock()

    def work(job: int) -> int:
        with lock:
            started.append(job)
        return job * 10

    with ThreadPoolExecutor(8) as executor:
        results = streamed(work, list(range(24)), executor, ahead=3)

        # when the first two results are consumed
        first = [next(results), next(results)]

        # then in order, and no more than `ahead` jobs beyond them were ever submitted
        assert first == [0, 10]
        assert len(started) <= 2 + 3
        assert list(results) == [j * 10 for j in range(2, 24)]
    assert sorted(started) == list(range(24))


def test_streamed_work_without_an_executor_runs_in_the_callers_thread() -> None:
    caller = threading.get_ident()
    seen = list(streamed(lambda job: (job, threading.get_ident()), [1, 2], None, ahead=4))

    assert seen == [(1, caller), (2, caller)]


def test_an_error_propagates_and_the_jobs_not_started_are_cancelled() -> None:
    def work(job: int) -> int:
        if job == 1:
            raise RuntimeError("query failed")
        return job

    with ThreadPoolExecutor(1) as executor, pytest.raises(RuntimeError, match="query failed"):
        list(streamed(work, list(range(50)), executor, ahead=2))
