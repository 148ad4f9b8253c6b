"""The arithmetic of the drift check at volume (bench/drift_volume.py), checked by hand.

Nothing is timed here: the figures in, and the expected figures out, are fixed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is a package at the repository root, next to the import roots pytest is given.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.drift_volume import (  # noqa: E402
    batch_fill,
    chunk_sizes,
    lambda_usd,
    nearest,
    per_batch_items,
    prediction_updates_per_1000,
    quarantine_updates_per_1000,
    transactional_wru_per_1000,
    updates_per_second_per_item,
    window_items,
)


def test_a_batch_fills_up_to_its_size_or_one_window_of_the_shards_rate() -> None:
    assert batch_fill(250.0, 10, 1.0) == 10.0
    assert batch_fill(250.0, 500, 1.0) == 250.0  # 1,000/s on 4 shards: a second's records
    assert batch_fill(15.625, 500, 1.0) == 15.625  # on 64 shards
    assert batch_fill(0.2, 500, 1.0) == 1.0  # a record at least


def test_chunks_of_a_batch_are_those_the_writer_cuts() -> None:
    # 99 facts and their hour's count Update make a transaction's 100 actions
    assert chunk_sizes(10) == [10]
    assert chunk_sizes(99) == [99]
    assert chunk_sizes(100) == [99, 1]
    assert chunk_sizes(250) == [99, 99, 52]
    assert chunk_sizes(500) == [99, 99, 99, 99, 99, 5]


def test_window_items_grow_with_hours_shards_and_slots() -> None:
    # 24 h x 4 shards x (6 PRED slots of a 500-batch + QUAR of preprocess and of score)
    assert window_items(24, 4, 6, 2) == 768
    assert window_items(24, 4, 1, 2) == 288
    assert window_items(24, 64, 6, 2) == 12_288
    assert window_items(24, 64, 1, 2) == 4_608


def test_the_per_batch_design_left_two_items_per_score_batch() -> None:
    # 4 shards at 250/s, a 1 s window: batches of 250, 4 a second, 2 items each, all day
    assert per_batch_items(1000.0, 4, 500, 1.0, 24) == pytest.approx(691_200)
    # batches of 10: 100 a second
    assert per_batch_items(1000.0, 4, 10, 1.0, 24) == pytest.approx(17_280_000)
    # 64 shards at 15.625/s: one batch a second each
    assert per_batch_items(1000.0, 64, 500, 1.0, 24) == pytest.approx(11_059_200)
    assert per_batch_items(1000.0, 4, 500, 1.0, 1, items_per_batch=1) == pytest.approx(14_400)


def test_count_updates_per_1000_transactions() -> None:
    assert prediction_updates_per_1000(10.0) == pytest.approx(100.0)  # one per batch
    assert prediction_updates_per_1000(250.0) == pytest.approx(12.0)  # 4 batches x 3 chunks
    assert prediction_updates_per_1000(500.0) == pytest.approx(12.0)  # 2 batches x 6 chunks
    # 1,010 records per 1,000 transactions (1 invalid per 100), batches of 10: 101 batches,
    # 1 - (100/101)^10 = 0.094713 of them hold a bad record
    assert quarantine_updates_per_1000(1010.0, 1 / 101, 10.0) == pytest.approx(9.566, abs=1e-3)
    assert quarantine_updates_per_1000(1000.0, 0.0, 10.0) == 0.0


def test_write_units_of_count_updates_in_transactions() -> None:
    # 2 WRU per KB, the item's size rounded up to whole KB
    assert transactional_wru_per_1000(12.0, 1291) == pytest.approx(48.0)
    assert transactional_wru_per_1000(100.0, 1024) == pytest.approx(200.0)
    assert transactional_wru_per_1000(100.0, 1025) == pytest.approx(400.0)
    assert transactional_wru_per_1000(3.0, 100) == pytest.approx(6.0)


def test_one_item_takes_one_update_per_batch_of_its_shard() -> None:
    assert updates_per_second_per_item(250.0, 10.0, 0.05) == pytest.approx(20.0)  # handler-bound
    assert updates_per_second_per_item(250.0, 250.0, 0.2) == pytest.approx(1.0)  # window-bound


def test_lambda_cost_and_nearest_measured_fill() -> None:
    assert lambda_usd(2.0, 1024, 1e-5, 2e-7) == pytest.approx(2.02e-5)
    assert lambda_usd(1.0, 1769, 1.66667e-05, 0.0) == pytest.approx(2.8792e-5, rel=1e-4)
    assert nearest([10, 250], 15.625) == 10
    assert nearest([10, 250], 62.5) == 250
