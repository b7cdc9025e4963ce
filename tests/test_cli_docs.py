"""Issue 11, items 4 and 6: the README points into the project (docs/results.md), and its
Tour is script-safe as written (sweeps resumable, validate's exit 1 allowed and explained)."""

from rdusim.config.workload import REPO_ROOT


def test_readme_points_to_the_projects_own_results_schema():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "../shared" not in readme and "docs/results.md" in readme
    doc = (REPO_ROOT / "docs" / "results.md").read_text()
    for family in ("model.<P>.latency_s", "fusion.<bench>.<mode>.time_s", "coe.<P>.bs<B>.tok<T>.latency_s",
                   "coe.speedup.<A>_vs_<C>", "manifest.json", "oom_reasons"):
        assert family in doc, family


def test_tour_is_script_safe():
    import sys
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from test_readme_commands import readme_commands

    readme = (REPO_ROOT / "README.md").read_text()
    cmds = readme_commands(readme)
    for c in cmds:
        if "rdusim sweep" in c:
            assert "--resume" in c or "--out" in c, c       # a second run must not refuse the folder
        if c.startswith("rdusim validate"):
            assert "[ $? -eq 1 ]" in c, c                    # exit 1 = a reference missed, not a failure
    assert "exits 0 when every reference is within its tolerance, 1 when any" in readme.replace("\n", " ")
