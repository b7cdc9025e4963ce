"""Reports a person can read: no legend over data, axes named in words (no dotted keys),
KV occupancy one row per platform, markdown that keeps ``_`` and ``*``, row counts that say
what they count, sweep plots written once (listed in the manifest) with OOM points marked,
and the serving tables saying which row is the main point."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdusim.cli import main
from rdusim.report import plots_serve
from rdusim.report.document import Figure, Report, Section, Table
from rdusim.report.figures import finish, legend_outside, legend_over_data, new_figure
from rdusim.report.html import render_html
from rdusim.report.markdown import esc, render_markdown
from rdusim.report.render import build_report
from rdusim.results import load_result
from rdusim.sweep.plots import sweep_figures
from rdusim.sweep.point import PointRow, PointStatus

DATA = Path(__file__).parent / "data" / "report_synthetic"
ROOT = Path(__file__).resolve().parent.parent
# a dotted key: identifier.identifier (globs and placeholders included), as in results.json
DOTTED_KEY = re.compile(r"[A-Za-z_*<][\w*<>]*(?:\.[A-Za-z_*<][\w*<>]*)+")


@pytest.fixture(scope="module")
def serve_run(tmp_path_factory):
    """A cheap serving run with two load points (one at the main rate) and its report."""
    out = tmp_path_factory.mktemp("serve")
    args = ["run", str(ROOT / "workloads" / "serve_llama2_7b.yaml"), "--out", str(out), "--report", "--jobs", "1"]
    for s in ("requests=60", "warmup_requests=10", "sweep_requests=40", "rates_per_s=[4,8]", "trace_requests=5",
              "capacity.traffic_per_s=0"):
        args += ["--set", s]
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(args) == 0
    return out, buf.getvalue()


def _reports(serve_out):
    yield from (build_report(load_result(DATA / f"{k}.json")) for k in ("coe", "fusion", "model"))
    yield build_report(load_result(serve_out / "results.json"))


def test_the_check_finds_a_legend_over_a_line_and_none_beside_the_axes():
    for outside in (False, True):
        fig = new_figure(6, 4)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, 1], [0, 1], label="diagonal")
        ax.plot([0, 1], [1, 0], label="other diagonal")
        legend_outside(ax) if outside else ax.legend(loc="center")
        f = finish(fig, "t", "t")
        assert bool(f.legend_over_data) is not outside, f.legend_over_data
        if not outside:
            assert "diagonal" in f.legend_over_data[0]


def test_the_check_sees_bars_and_markers_under_a_legend():
    fig = new_figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar([0, 1, 2], [5, 5, 5], label="bars")
    ax.legend(loc="lower center")
    fig.canvas.draw()
    assert any("bars" in s or "Rectangle" in s for s in legend_over_data(fig))
    fig = new_figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter([0.5], [0.5], label="dot")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="center")
    fig.canvas.draw()
    assert legend_over_data(fig)


def test_no_report_figure_has_a_legend_over_data_or_a_dotted_key_on_an_axis(serve_run):
    out, _ = serve_run
    seen = 0
    for report in _reports(out):
        for f in report.figures:
            seen += 1
            assert f.legend_over_data == (), (f.name, f.legend_over_data)
            assert f.axis_labels, f.name
            assert not [lbl for lbl in f.axis_labels if DOTTED_KEY.search(lbl)], (f.name, f.axis_labels)
    assert seen >= 16


def test_kv_occupancy_is_one_row_of_panels_per_platform():
    series = {(p, m): [{"t_s": t, "kv_occupancy": 0.01 * t, "queue": t} for t in range(5)]
              for p in ("sn40l", "dgx_h100", "dgx_a100") for m in ("continuous", "static")}
    f = plots_serve.occupancy(series)
    assert f.axis_labels.count("requests waiting") == 3
    assert f.axis_labels.count("KV blocks in use (fraction)") == 3
    assert f.legend_over_data == ()


@given(st.text(max_size=40))
def test_markdown_escaping_reads_back_as_the_text(text):
    md = esc(text)
    assert re.sub(r"\\(.)", r"\1", md) == text.replace("\n", " ")
    assert not re.search(r"(?<!\\)[*_`|\[\]<>]", md)          # nothing left to be read as markup


def test_captions_keep_underscores_and_stars():
    key = "coe.*.bs8.tok20.latency_s"
    fig = Figure("sweep_00_x", f"{key} against experts count", b"png", caption=f"held at {key}")
    report = Report("r", (), (Section("Plots", "", (), (fig,)),))
    assert f"<b>{key} against experts count</b>. held at {key}" in render_html(report)
    md = render_markdown(report)
    assert "**coe.\\*.bs8.tok20.latency\\_s against experts count.** held at coe.\\*.bs8.tok20.latency\\_s" in md


def test_row_counts_say_what_the_page_shows_and_what_the_csv_holds():
    rows = tuple((f"k{i}", i) for i in range(786))
    report = Report("r", (), (Section("All data", "", (Table("metrics", "All metrics", ("metric", "value"), rows,
                                                               max_shown=500, collapsed=True),)),))
    html = render_html(report)
    assert "<summary>Show the first 500 of 786 rows</summary>" in html
    assert "The page shows the first 500 of 786 rows; the CSV has all 786:" in html
    assert "786 rows<" not in html.replace("of 786 rows<", "")
    assert "The first 500 of 786 rows are shown; [tables/metrics.csv](tables/metrics.csv) has all 786." in \
        render_markdown(report)


def test_wide_tables_sit_in_a_scrolling_box(serve_run):
    out, _ = serve_run
    html = (out / "index.html").read_text()
    assert html.count('<div class="wide"><table>') == html.count("<table>")
    assert ".wide{overflow-x:auto" in html


def test_serve_report_and_console_say_which_row_is_the_main_point(serve_run):
    out, printed = serve_run
    report = build_report(load_result(out / "results.json"))
    tables = {t.name: t for t in report.tables}
    main_t, sweep_t = tables["serve_main"], tables["serve_load_sweep"]
    col = main_t.columns.index("arrivals")
    # requests (+ warm-up) arrivals at the main point, sweep_requests (+ warm-up) at each load point
    assert {r[col] for r in main_t.rows} == {60 + 10} and {r[col] for r in sweep_t.rows} == {40 + 10}
    assert "separate, shorter run" in sweep_t.note
    lines = [l.split() for l in printed.splitlines() if l.startswith("  sn40l      continuous")]
    assert [(l[2], l[3]) for l in lines] == [("main", "8.00"), ("sweep", "4.00"), ("sweep", "8.00")]
    assert "point: main = the workload's arrivals" in printed


# ---------------------------------------------------------------- sweep plots
AXES = [["arch.sn40l.socket.ddr.bandwidth_bytes_per_s", [1e11, 2e11]], ["experts.count", [100, 300]]]


def _rows():
    """Two platforms; at 300 experts the GPU is out of memory (its latency null, as a study writes it)."""
    out = []
    for i, (bw, n) in enumerate((bw, n) for bw in AXES[0][1] for n in AXES[1][1]):
        gpu_oom = n == 300
        metrics = {"coe.sn40l.bs8.tok20.latency_s": 1.0 / bw * 1e11 + n / 1000, "coe.sn40l.bs8.tok20.oom": 0,
                   "coe.dgx_h100.bs8.tok20.latency_s": None if gpu_oom else 2.0 + n / 100,
                   "coe.dgx_h100.bs8.tok20.oom": int(gpu_oom),
                   "coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall": None if gpu_oom else 2.5}
        out.append(PointRow(i, {"arch.sn40l.socket.ddr.bandwidth_bytes_per_s": bw, "experts.count": n}, 0,
                            PointStatus.OOM if gpu_oom else PointStatus.OK, metrics, "", 0.1))
    return out


def test_sweep_plots_name_their_axes_and_mark_oom_points():
    plots = [{"metric": "coe.*.bs8.tok20.latency_s", "x": "experts.count", "kind": "line", "logy": True},
             {"metric": "coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall", "x": AXES[0][0], "by": "experts.count"},
             {"metric": "coe.dgx_h100.bs8.tok20.latency_s", "x": AXES[0][0], "by": "experts.count",
              "kind": "heatmap"}]
    figs = sweep_figures({"identity": {"axes": AXES}, "plots": plots}, _rows())
    assert [f.axis_labels for f in figs] == [
        ("experts count", "latency (s)"),
        ("sn40l DDR bandwidth (bytes/s)", "overall speedup (x)"),
        ("sn40l DDR bandwidth (bytes/s)", "experts count", "latency (s)")]     # the last: the colour bar
    for f in figs:
        assert not [lbl for lbl in f.axis_labels if DOTTED_KEY.search(lbl)]
        assert f.legend_over_data == ()
    assert figs[0].title == "coe.*.bs8.tok20.latency_s against experts count"      # the key kept, with its *
    assert "held at sn40l DDR bandwidth = 1e+11 bytes/s" in figs[0].caption
    assert figs[0].caption.count("1 point(s) ran out of simulated memory") == 1    # dgx_h100 at 300 experts
    assert "2 point(s) ran out of simulated memory" in figs[1].caption             # 300 experts, both bandwidths
    assert "2 point(s) ran out of simulated memory" in figs[2].caption and "OOM in its cell" in figs[2].caption
    assert figs[0].data_csv.splitlines()[0] == "experts.count,coe.dgx_h100.bs8.tok20.latency_s," \
                                               "coe.sn40l.bs8.tok20.latency_s"


def test_sweep_report_writes_each_plot_once_and_lists_it(tmp_path):
    import sys
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    import sweep_fake

    mp = pytest.MonkeyPatch()
    sweep_fake.install(mp)
    try:
        assert main(["sweep", "tests/data/sweep_model.yaml", "--grid", "batch_size=1,2", "--grid",
                     "output_tokens=4,5", "--out", str(tmp_path), "--workers", "1"]) == 0
    finally:
        mp.undo()
    assert main(["report", str(tmp_path)]) == 0
    listed = set(json.loads((tmp_path / "manifest.json").read_text())["files"])
    pngs = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    csvs = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.csv") if p.name != "sweep.csv")
    assert pngs and all(p.startswith("figures/") for p in pngs)
    assert set(pngs) <= listed and set(csvs) <= listed
    assert {Path(p).stem for p in pngs} <= {Path(c).stem for c in csvs}            # each plot's numbers beside it
    md = (tmp_path / "report.md").read_text()
    for p in pngs:
        assert md.count(f"]({p})") == 1
