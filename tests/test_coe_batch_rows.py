"""Served batches as result rows: the column tables' dict rows are the records' plain form
(what results.json holds), for the one-node table and the table over nodes."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.engine.coe.batches import BatchTable
from rdusim.engine.coe.placement import NodesBatchRecord
from rdusim.engine.coe.records import BatchRecord
from rdusim.results import plain
from rdusim.studies.coe_nodes import NodeRows

_num = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 10))
_int = st.integers(0, 1000)


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(type(a[k]) is type(b[k]) and (a[k] == b[k] or (
        isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))) for k in a)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_int, _int, _int, _int, _int, _num, _num, _num, _num, _num, _num, _num), max_size=6))
def test_one_node_rows_are_the_plain_records(values):
    table = BatchTable.from_records([BatchRecord(*v) for v in values])
    rows = [plain(r) for r in table.rows()]
    assert len(rows) == len(values)
    assert all(_same(a, plain(r)) for a, r in zip(rows, table.records()))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_int, _int, _int, _int, _int, _num, _num, _num, _num, _num, _num, _num, _num, _int, _int,
                          _num), max_size=6))
def test_node_rows_are_the_plain_records(values):
    table = NodeRows.from_records([NodesBatchRecord(*v) for v in values])
    rows = [plain(r) for r in table.rows()]
    assert len(rows) == len(values)
    assert all(_same(a, plain(r)) for a, r in zip(rows, table.records()))


@given(st.lists(st.lists(st.integers(1, 9), max_size=5), max_size=6))
def test_an_outcomes_histogram_and_batch_sizes_count_its_batches(counts):
    from rdusim.engine.coe.outcome import CacheOutcome

    prompts = tuple(sum(cs) for cs in counts)
    o = CacheOutcome(prompts, (), tuple(tuple(cs) for cs in counts), ())
    hist = o.count_histogram
    assert hist.shape == (len(counts), max((max(cs) for cs in counts if cs), default=0) + 1)
    for b, cs in enumerate(counts):
        assert hist[b].tolist() == [cs.count(n) for n in range(hist.shape[1])]
    sizes, which = o.batch_sizes
    assert sizes == sorted(set(prompts)) and [sizes[i] for i in which.tolist()] == list(prompts)
