"""The topological order without networkx is networkx's lexicographical order."""

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.graph.toposort import lexicographic_order


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
    st.permutations(range(n)))))
def test_same_order_as_networkx_or_none_on_a_cycle(case):
    n, edges, ranks = case
    edges = [(u, v) for u, v in edges if u != v]
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    rank = dict(enumerate(ranks))
    got = lexicographic_order(list(range(n)), edges, rank)
    if nx.is_directed_acyclic_graph(g):
        assert got == list(nx.lexicographical_topological_sort(g, key=lambda x: rank[x]))
    else:
        assert got is None


def test_a_plain_run_does_not_import_networkx():
    import subprocess
    import sys

    code = ("import sys; from rdusim.graph.model_graph import build_model_graph; from rdusim.graph.phase import Phase; from rdusim.config.model import load_model;"
            "g = build_model_graph(load_model('llama2-7b'), Phase.DECODE, 1, 128, tp=8); print('networkx' in sys.modules, len(g))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and int(out[1]) > 100
