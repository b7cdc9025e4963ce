"""Issue 23, item 3: the dataset model (exact padded lengths) and the largest-batch search."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rdusim.finetune.dataset import Dataset, job_time
from rdusim.finetune.search import largest_batch


def test_padded_length_distribution_matches_sampling():
    data = Dataset(queries=1000, median_tokens=300, sigma=0.8, max_tokens=2048)
    rng = np.random.default_rng(0)
    for b in (1, 4, 16):
        draws = np.minimum(np.exp(np.log(300) + 0.8 * rng.standard_normal((200_000, b))), 4096)
        draws = draws[(draws <= 2048).all(axis=1)]          # the truncated distribution
        sampled = np.ceil(draws.max(axis=1)).mean()
        exact = sum(length * p for length, p in data.padded_lengths(b, points=64))
        assert exact == pytest.approx(sampled, rel=0.02)
        assert sum(p for _, p in data.padded_lengths(b)) == pytest.approx(1.0)


def test_job_time_by_hand():
    data = Dataset(queries=10, median_tokens=100, sigma=0.0, max_tokens=100, epochs=2)
    jt = job_time(data, 4, lambda b, s: 0.001 * b * s)
    assert jt.step_s == pytest.approx(0.4)
    assert jt.steps == 6                         # ceil(10 / 4) = 3 per epoch
    assert jt.job_s == pytest.approx(2.4) and jt.queries_per_s == pytest.approx(10.0)


@settings(max_examples=80, deadline=None)
@given(fixed=st.floats(1e3, 1e10), per=st.floats(1.0, 1e9), cap=st.floats(1e3, 1e12),
       limit=st.integers(1, 5000))
def test_largest_batch_fits_and_one_more_does_not(fixed, per, cap, limit):
    parts = lambda b: {"weights": fixed, "activations": per * b}
    fit = largest_batch(parts, cap, limit=limit)
    assert fit.batch <= limit
    if fit.batch == 0:
        assert sum(parts(1).values()) > cap
    elif fit.binding != "batch limit":
        assert sum(parts(fit.batch).values()) <= cap < sum(parts(fit.batch + 1).values())
        assert fit.binding == "activations"
    else:
        assert fit.batch == limit and sum(parts(limit).values()) <= cap


def test_bad_dataset_refused():
    with pytest.raises(ValueError):
        Dataset(queries=0, median_tokens=10, sigma=1, max_tokens=100)
    with pytest.raises(ValueError):
        Dataset(queries=10, median_tokens=1000, sigma=1, max_tokens=100)
