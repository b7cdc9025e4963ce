"""rdusim validate end to end: a real model run (about 3 s), a wrong published value fails by name."""

import textwrap

from rdusim import cli

REFS = """\
references:
  - id: e2e.sn40l.latency.loose
    source: "test: a latency somewhere between 2 ms and 2 s"
    workload: workloads/llama2_7b_chat.yaml
    metric: model.sn40l.latency_s
    expected: 0.2
    tolerance: 0.99
  - id: e2e.sn40l.latency.wrong
    source: "test: a deliberately wrong published value"
    workload: workloads/llama2_7b_chat.yaml
    metric: model.sn40l.latency_s
    expected: 1000.0
    tolerance: 0.1
  - id: e2e.missing
    source: "test: a metric the run does not produce"
    workload: workloads/llama2_7b_chat.yaml
    metric: model.sn40l.no_such_metric
    expected: 1.0
    tolerance: 0.1
"""


def test_real_run_wrong_value_exits_1_naming_the_reference(tmp_path, capsys):
    refs = tmp_path / "refs.yaml"
    refs.write_text(textwrap.dedent(REFS))
    assert cli.main(["validate", "--refs", str(refs)]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("e2e.")}
    assert lines["e2e.sn40l.latency.loose"].rstrip().endswith("PASS")
    assert lines["e2e.sn40l.latency.wrong"].rstrip().endswith("FAIL")
    assert "FAIL e2e.sn40l.latency.wrong" in out
    assert "FAIL e2e.missing: metric model.sn40l.no_such_metric missing" in out
