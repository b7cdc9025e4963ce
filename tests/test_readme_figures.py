"""Every marked figure of README.md and docs/*.md comes from the code (rdusim/docs).

Fast (default run): the markdown holds exactly what the last `python -m rdusim.docs` wrote
(docs/figures.json), so a figure edited by hand fails here, and the marker machinery is
checked on small documents. Slow: every figure is regenerated from its command and
compared with the docs within rounding."""

import json
import shutil

import pytest

from rdusim.config.workload import REPO_ROOT
from rdusim.docs.__main__ import SNAPSHOT, doc_files, drift, generate, snapshot_problems, used_names, write
from rdusim.docs.figures import FIGURES
from rdusim.docs.markers import MarkerError, marked, replace, same_within_rounding


def test_the_docs_hold_what_the_generator_wrote():
    problems = snapshot_problems(REPO_ROOT)
    assert not problems, "\n\n".join(problems)


def test_every_marked_figure_has_a_generator_and_the_snapshot_nothing_else():
    names = used_names(REPO_ROOT)
    assert names and set(names) <= set(FIGURES)
    snap = json.loads((REPO_ROOT / SNAPSHOT).read_text())["figures"]
    assert set(snap) == set(names)
    # the figures the issue names are marked
    for name in ("coe150.summary", "validate.summary", "validate.fits", "serve.capacity", "serve_coe.ttft_low",
                 *(f"stacks.{s}" for s in ("sambanova", "sambanova_coe_2024", "nemo", "vllm", "tensorrt_llm",
                                           "jetstream")),
                 "p2p.latency_bs1_expert", "p2p.latency_bs8_overall", "p2p.ring", "p2p.ho_7b"):
        assert name in names


def _copy_docs(tmp_path):
    for f in doc_files(REPO_ROOT):
        dest = tmp_path / f.relative_to(REPO_ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest)
    (tmp_path / SNAPSHOT).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / SNAPSHOT, tmp_path / SNAPSHOT)
    return tmp_path


@pytest.mark.parametrize("name", ["serve.capacity", "coe150.summary", "validate.summary", "stacks.nemo",
                                  "p2p.latency_bs8_overall"])
def test_a_figure_edited_by_hand_fails(tmp_path, name):
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    (fig,) = [m for m in marked(text) if m.name == name]
    digit = next(i for i, c in enumerate(fig.text) if c.isdigit())
    edited = fig.text[:digit] + str((int(fig.text[digit]) + 1) % 10) + fig.text[digit + 1:]
    readme.write_text(text.replace(fig.text, edited, 1))
    problems = snapshot_problems(root)
    assert len(problems) == 1 and f"figure {name} differs" in problems[0]


def test_a_marker_with_no_generated_text_fails(tmp_path):
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\nnew <!--rdusim:serve.flat-->x<!--/rdusim--> figure\n")
    assert snapshot_problems(root) and "differs" in snapshot_problems(root)[0]


DOC = """\
# title

Speed is <!--rdusim:a-->1.50<!--/rdusim--> x and <!--rdusim:b-->old<!--/rdusim-->.

- item:

  <!-- rdusim:begin t -->
  | x |
  |---|
  <!-- rdusim:end t -->

<!-- rdusim:begin c -->
```
old
```
<!-- rdusim:end c -->
tail
"""


def test_replace_rewrites_only_inside_markers():
    new = replace(DOC, {"a": "2.25", "b": "new", "t": "| y |\n|---|\n| 1 |", "c": "```\nnew\n```"})
    assert "Speed is <!--rdusim:a-->2.25<!--/rdusim--> x and <!--rdusim:b-->new<!--/rdusim-->." in new
    assert "  <!-- rdusim:begin t -->\n  | y |\n  |---|\n  | 1 |\n  <!-- rdusim:end t -->" in new
    assert new.startswith("# title\n") and new.endswith("<!-- rdusim:end c -->\ntail\n")
    got = {m.name: m.text for m in marked(new)}
    assert got == {"a": "2.25", "b": "new", "t": "| y |\n|---|\n| 1 |", "c": "```\nnew\n```"}
    assert replace(new, got) == new          # idempotent


def test_bad_markers_are_errors():
    with pytest.raises(MarkerError, match="no figure named zzz"):
        replace("<!--rdusim:zzz-->1<!--/rdusim-->", {})
    with pytest.raises(MarkerError, match="without its partner"):
        marked("<!-- rdusim:begin t -->\nx\n")
    with pytest.raises(MarkerError, match="several lines"):
        replace("<!--rdusim:a-->1<!--/rdusim-->", {"a": "1\n2"})


def test_a_failing_figure_fails_alone(monkeypatch):
    import rdusim.docs.__main__ as docs_main

    def broken(runs):
        raise KeyError("no such metric")

    monkeypatch.setitem(FIGURES, "broken", broken)
    monkeypatch.setitem(FIGURES, "fine", lambda runs: "1.5")
    figures, failed = docs_main.generate(["broken", "fine"])
    assert figures == {"fine": "1.5"} and "no such metric" in failed["broken"]


def test_within_rounding():
    assert same_within_rounding("2.41x | 1.50x", "2.42x | 1.50x")     # one unit of the last digit
    assert not same_within_rounding("2.41x", "2.43x")
    assert not same_within_rounding("2.41x", "2.41 x")
    assert not same_within_rounding("37 | 958", "37 | 958 | 1")
    assert same_within_rounding("5.1e-05", "5.2e-05") and not same_within_rounding("5.1e-05", "5.3e-05")
    assert same_within_rounding("F1 on 24 points", "F1 on 24 points")


@pytest.mark.slow
def test_every_figure_regenerates_from_the_code(tmp_path):
    """What the README and docs print is what the commands print now (within rounding);
    regenerating writes the same docs again."""
    figures, failed = generate(used_names(REPO_ROOT))
    assert not failed, failed
    stale = drift(REPO_ROOT, figures)
    assert not stale, "\n\n".join(stale) + "\n\nrun: python -m rdusim.docs"
    root = _copy_docs(tmp_path)
    write(root, figures)
    assert not snapshot_problems(root) and not drift(root, figures)
