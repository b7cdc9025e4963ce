"""Reports: HTML (parsed, images decode, titles), markdown, CSVs, stamps, old results, no re-simulation."""

import base64
import csv
import json
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

import rdusim.studies
from rdusim import __version__, cli
from rdusim.errors import InputError
from rdusim.report import plots_coe, plots_fusion, plots_kernels, plots_model
from rdusim.report.html import alt_text
from rdusim.report.markdown import esc
from rdusim.report.render import build_report, render_report, write_report
from rdusim.results import RunResult, load_result

DATA = Path(__file__).parent / "data" / "report_synthetic"
DATE = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

EXPECTED_TITLES = {
    "coe": [plots_coe.TITLE_BREAKDOWN, plots_coe.TITLE_SWEEP, plots_coe.TITLE_FOOTPRINT, plots_coe.TITLE_HIT_RATE],
    "fusion": [f"{plots_fusion.TITLE_SPEEDUP}, sn40l", f"{plots_fusion.TITLE_UTIL}, sn40l",
               f"{plots_fusion.TITLE_SPEEDUP}, dgx_h100",
               plots_kernels.title_roofline("sn40l", {"kind": "rdu"}),
               plots_kernels.title_roofline("dgx_h100", {"kind": "gpu"}), plots_kernels.TITLE_KERNEL_UTIL],
    "model": [plots_model.TITLE_BREAKDOWN, plots_model.TITLE_TOKENS],
}


class Page(HTMLParser):
    """Collects images, figure captions, headings and checks tags are balanced."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.imgs, self.captions, self.headings, self.stack, self.errors = [], [], [], [], []
        self._in = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag in ("b", "h2", "h3"):
            self._in, self._text = tag, ""

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()
        if tag == self._in:
            (self.captions if tag == "b" else self.headings).append(self._text)
            self._in = None

    def handle_data(self, data):
        if self._in:
            self._text += data


@pytest.fixture(scope="module", autouse=True)
def no_simulation():
    """Rendering must never simulate: any call to a study fails the test."""
    def boom(*a, **k):
        raise AssertionError("the report re-simulated")
    mp = pytest.MonkeyPatch()
    mp.setattr(rdusim.studies, "run_study", boom)
    mp.setattr(rdusim.studies, "study_module", boom)
    yield
    mp.undo()


_REPORTS = {}


def report_of(kind):
    """Each synthetic report is built once per test session (matplotlib is the slow part)."""
    if kind not in _REPORTS:
        _REPORTS[kind] = build_report(load_result(DATA / f"{kind}.json"), date=DATE)
    return _REPORTS[kind]


@pytest.fixture(scope="module", params=["coe", "fusion", "model"])
def rendered(request, tmp_path_factory):
    kind = request.param
    result = load_result(DATA / f"{kind}.json")
    out = tmp_path_factory.mktemp(f"report_{kind}")
    index = write_report(report_of(kind), out)
    return kind, result, out, index


def test_html_parses_and_every_image_is_a_png_with_its_title(rendered):
    kind, result, out, index = rendered
    assert index == out / "index.html"
    page = Page()
    page.feed(index.read_text(encoding="utf-8"))
    page.close()
    assert page.errors == [] and page.stack == []
    assert page.imgs, "no figures"
    for img in page.imgs:
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
    report = report_of(kind)
    assert page.captions == report.figure_titles
    assert [img["alt"] for img in page.imgs] == [alt_text(f) for f in report.figures]
    assert all(img["alt"].startswith(f.title + ". Axes: ") for img, f in zip(page.imgs, report.figures))
    assert report.figure_titles == EXPECTED_TITLES[kind]


def test_stamp_has_version_workload_seed_date_and_specs(rendered):
    kind, result, out, index = rendered
    html = index.read_text()
    md = (out / "report.md").read_text()
    for text, name in ((html, result.workload_name), (md, esc(result.workload_name))):
        assert f"rdusim {__version__}" in text
        assert name in text
        assert "2024-05-01 12:00:00 UTC" in text
        assert "Machines" in text and "Workload as run" in text
    assert f"| seed | {result.seed} |" in md
    # arch specs with their sources
    with open(out / "tables" / "arch_sn40l.csv") as fh:
        rows = {r["key"]: r for r in csv.DictReader(fh)}
    assert rows["socket.pcu.count"]["value"] == "1040"
    assert "1,040 PCUs" in rows["socket.pcu.count"]["source"]


def test_markdown_links_files_that_exist(rendered):
    kind, result, out, index = rendered
    md = (out / "report.md").read_text()
    assert md.startswith(f"# rdusim report: {esc(result.workload_name)}")
    import re
    links = re.findall(r"\]\(((?:figures|tables)/[^)]+)\)", md)
    assert any(l.startswith("figures/") for l in links) and any(l.startswith("tables/") for l in links)
    for link in links:
        assert (out / link).is_file(), link
    for title in EXPECTED_TITLES[kind]:
        assert f"![{esc(title)}]" in md


def test_every_table_has_a_csv_and_metrics_csv_is_complete(rendered):
    kind, result, out, index = rendered
    report = report_of(kind)
    for t in report.tables:
        with open(out / "tables" / f"{t.name}.csv") as fh:
            rows = list(csv.reader(fh))
        assert tuple(rows[0]) == t.columns
        assert len(rows) == len(t.rows) + 1
    with open(out / "tables" / "metrics.csv") as fh:
        got = {r["metric"]: r["value"] for r in csv.DictReader(fh)}
    assert set(got) == set(result.metrics)
    for k, v in result.metrics.items():
        assert (got[k] == "" and v is None) or float(got[k]) == pytest.approx(v)


def test_coe_tables_carry_the_table2_numbers(tmp_path):
    result = load_result(DATA / "coe.json")
    report = report_of("coe")
    t = {t.name: t for t in report.tables}["coe_speedups"]
    row = next(r for r in t.rows if r[:3] == ("sn40l", "dgx_h100", "BS=8, 20 tok"))
    m = result.metrics
    assert row[3] == pytest.approx(m["coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall"])
    assert row[4] == "-"            # the synthetic result has one routing: no interval
    assert row[5] == pytest.approx(m["coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.expert"])
    assert row[7] == pytest.approx(m["coe.speedup.sn40l_vs_dgx_h100.switch"])
    sweep = {t.name: t for t in report.tables}["coe_sweep_bs1_tok20"]
    assert sweep.columns == ("experts", "sn40l latency (s)", "dgx_h100 latency (s)", "dgx_a100 latency (s)")
    assert dict((r[0], r[2]) for r in sweep.rows)[300] == "OOM"


def test_fusion_report_per_platform_tables_and_notes():
    report = report_of("fusion")
    tables = {t.name: t for t in report.tables}
    sn, h100 = tables["fusion_speedups_sn40l"], tables["fusion_speedups_dgx_h100"]
    assert sn.columns[1:4] == ("unfused (s)", "fused + SO (s)", "fused + HO (s)")
    assert h100.columns[1:3] == ("unfused (s)", "fused (s)") and "fused vs unfused (x)" in h100.columns
    row = next(r for r in sn.rows if r[0] == "mistral_7b_4k_decode")
    assert row[sn.columns.index("fused + HO vs unfused (x)")] == pytest.approx(24.0)
    assert "fusion_speedups" not in tables        # the unqualified copy of sn40l is not repeated
    notes = [n for s in report.sections for n in s.notes]
    assert any(n.startswith("8 record(s) do no arithmetic") for n in notes)
    assert any("1 kernel record(s) lack" in n for n in notes)
    assert any("above the compute roof" in n for n in notes)   # the synthetic data has some


def test_validation_rows_in_extra_are_shown(tmp_path):
    base = load_result(DATA / "model.json")
    rows = [{"id": "ref.ok", "source": "paper", "role": "calibration", "metric": "model.sn40l.latency_s",
             "expected": 0.03, "simulated": 0.031, "error": 0.033, "tolerance": 0.1, "status": "PASS"},
            {"id": "ref.bad", "source": "paper", "metric": "model.dgx_h100.ttft_s", "expected": 1.0,
             "simulated": None, "error": None, "tolerance": 0.1, "status": "FAIL", "note": "metric missing"}]
    result = RunResult(base.workload_name, base.kind, base.resolved, base.archs, base.seed, base.metrics,
                       base.records, extra={"validation": rows})
    html = render_report(result, tmp_path, date=DATE).read_text()
    assert "ref.ok" in html and '<tr class="FAIL">' in html and "metric missing" in html
    with open(tmp_path / "tables" / "validation.csv") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == ["ref.ok", "ref.bad"]


def test_results_without_known_metrics_still_render(tmp_path):
    result = RunResult("odd", "model", {}, {}, 0, {"something.else": 1.0, "model.x": None})
    report = build_report(result, date=DATE)
    assert report.figure_titles == []
    index = render_report(result, tmp_path, date=DATE)
    assert "something.else" in index.read_text()


def test_older_minor_version_renders_and_other_major_is_a_clear_error(tmp_path):
    data = json.loads((DATA / "model.json").read_text())
    data["rdusim_version"] = "0.0.3"
    data.pop("extra")
    data.pop("records")
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert cli.main(["report", str(tmp_path / "old.json"), "--out", str(tmp_path / "o")]) == 0
    assert "rdusim 0.0.3" in (tmp_path / "o" / "index.html").read_text()
    data["rdusim_version"] = "7.0.0"
    (tmp_path / "new.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="rdusim_version"):
        load_result(tmp_path / "new.json")


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d.__setitem__("metrics", [1, 2]), "metrics"),
    (lambda d: d["metrics"].__setitem__("model.sn40l.latency_s", "fast"), "metrics.model.sn40l.latency_s"),
    (lambda d: d.__setitem__("records", [1]), "records"),
    (lambda d: d.__setitem__("archs", {"sn40l": 3}), "archs"),
])
def test_malformed_results_exit_2_with_the_key(tmp_path, capsys, mutate, key):
    data = json.loads((DATA / "model.json").read_text())
    mutate(data)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    assert cli.main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err


def test_same_result_same_report_and_stale_files_go(tmp_path):
    result = load_result(DATA / "model.json")
    a = report_of("model")
    b = build_report(result, date=DATE)
    assert [f.png for f in a.figures] == [f.png for f in b.figures]
    write_report(a, tmp_path / "a")
    (tmp_path / "a" / "figures" / "stale.png").write_bytes(b"x")
    write_report(a, tmp_path / "a")
    write_report(b, tmp_path / "b")
    assert (tmp_path / "a" / "index.html").read_bytes() == (tmp_path / "b" / "index.html").read_bytes()
    assert not (tmp_path / "a" / "figures" / "stale.png").exists()


def test_coe_speedup_table_shows_the_interval():
    from rdusim.report.keys import coe_view
    from rdusim.report.section_coe import speedup_table

    k = "coe.speedup.sn40l_vs_dgx_h100.bs1.tok20"
    v = coe_view({f"{k}.overall": 3.2, f"{k}.overall.ci95_low": 3.1, f"{k}.overall.ci95_high": 3.3,
                  f"{k}.expert": 1.6}, ["sn40l", "dgx_h100"])
    (row,) = speedup_table(v).rows
    assert row[3] == 3.2 and row[4] == "3.1-3.3" and row[5] == 1.6 and row[6] == "-"
