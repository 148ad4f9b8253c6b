"""Every version against its own baseline, and a challenger beside its champion: agreement and
the rank correlation of binned scores, exact from the joint counts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import spearmanr

from streamscore.drift.versions import rank_correlation


@given(pairs=st.lists(st.tuples(st.integers(-1, 6), st.integers(-1, 6)), min_size=0, max_size=300))
def test_the_rank_correlation_is_spearmans_on_the_binned_rows(pairs: list[tuple[int, int]]) -> None:
    joint = Counter(pairs)

    rho, ranked = rank_correlation(joint)

    inside = np.array([(i, j) for i, j in pairs if i >= 0 and j >= 0]).reshape(-1, 2)
    assert ranked == len(inside)
    if len(inside) < 2 or len(set(inside[:, 0])) < 2 or len(set(inside[:, 1])) < 2:
        assert rho is None
    else:
        expected = spearmanr(inside[:, 0], inside[:, 1]).statistic
        assert rho == pytest.approx(expected, abs=1e-9)


def test_identical_orderings_correlate_fully_and_reversed_ones_negatively() -> None:
    same = Counter({(0, 0): 40, (1, 1): 30, (2, 2): 30})
    reversed_ = Counter({(0, 2): 40, (1, 1): 30, (2, 0): 30})

    assert rank_correlation(same) == (pytest.approx(1.0), 100)
    rho, _ = rank_correlation(reversed_)
    assert rho is not None and rho < -0.9
