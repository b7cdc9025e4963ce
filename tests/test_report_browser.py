"""The report opens in a real browser: headless Chromium loads index.html of every report
kind (CoE, fusion, model run, serving, sweep) in a 1400 px wide window and the test checks,
in the page as rendered, that every table has rows on screen, every plot decodes to an image
with a size, every link leads somewhere (an anchor on the page, or a file beside it), the
page does not overflow sideways (a wide table scrolls in its own box), no plot's axis is
labelled with a dotted key (the image's alt text names its axes) and no legend covers data
(figures.legend_over_data, recorded when each plot was drawn); a screenshot shows the plots'
colours. Slow, and skipped without Chromium (.ci/run installs Debian's chromium)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from rdusim.report.colors import platform_color
from rdusim.report.render import build_report, render_report, write_report
from rdusim.results import load_result

DATA = Path(__file__).parent / "data" / "report_synthetic"
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
WIDTH = 1400
DOTTED_KEY = re.compile(r"[A-Za-z_*<][\w*<>]*(?:\.[A-Za-z_*<][\w*<>]*)+")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(BROWSER is None, reason="no Chromium installed "
                                                   "(apt-get install chromium; .ci/run does)")]

# runs in the page once it has loaded; writes what the browser rendered into the DOM
PROBE = """<script>
window.addEventListener('load', () => {
  const shown = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  for (const d of document.querySelectorAll('details')) d.open = true;
  const imgs = [...document.images];
  const tables = [...document.querySelectorAll('table')];
  const out = {
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0 && shown(i)).length,
    tables: tables.length,
    tables_with_rows_shown: tables.filter(t => [...t.rows].some(r => shown(r))).length,
    anchors_missing: [...document.querySelectorAll('a[href^="#"]')]
      .map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id)),
    file_links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))
      .filter(h => !h.startsWith('#')),
    viewport: window.innerWidth,
    page_width: document.documentElement.scrollWidth,
    // a table wider than the page must scroll inside a box that itself fits
    cut_tables: tables.filter(t => t.getBoundingClientRect().right > window.innerWidth)
      .filter(t => { const box = t.closest('.wide');
                     return !box || getComputedStyle(box).overflowX !== 'auto'
                            || box.getBoundingClientRect().right > window.innerWidth; })
      .map(t => (t.previousElementSibling || t.parentElement).textContent.slice(0, 80)),
    alts: imgs.map(i => i.alt),
  };
  const pre = document.createElement('pre');
  pre.id = 'rdusim-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _render_sweep(out: Path) -> tuple[Path, list]:
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    import sweep_fake
    import rdusim.studies
    from rdusim.cli import main
    from rdusim.sweep.plots import sweep_figures
    from rdusim.sweep.store import SweepStore

    orig = rdusim.studies.run_study
    sweep_fake.install()
    try:
        assert main(["sweep", str(Path(__file__).parent / "data" / "sweep_model.yaml"), "--grid",
                     "batch_size=1,2,4", "--grid", "output_tokens=4,5", "--out", str(out), "--workers", "1"]) == 0
    finally:
        rdusim.studies.run_study = orig
    assert main(["report", str(out)]) == 0
    with SweepStore.open(out, lock=False) as store:
        figures = sweep_figures(store.definition(), store.rows())
    return out / "index.html", figures


def _render_serve(out: Path) -> tuple[Path, list]:
    """A cheap serving run (two load points) and its report."""
    from rdusim.cli import main

    run = out.parent / "serve_run"
    args = ["run", str(Path(__file__).parent.parent / "workloads" / "serve_llama2_7b.yaml"), "--out", str(run),
            "--jobs", "1"]
    for s in ("requests=60", "warmup_requests=10", "sweep_requests=40", "rates_per_s=[4,8]", "trace_requests=5",
              "capacity.traffic_per_s=0"):
        args += ["--set", s]
    assert main(args) == 0
    return _render_result(load_result(run / "results.json"), out)


def _render_result(result, out: Path) -> tuple[Path, list]:
    report = build_report(result)
    return write_report(report, out), list(report.figures)


def _probe(index: Path) -> dict:
    probe = index.with_name("probe.html")
    probe.write_text(index.read_text().replace("</body>", PROBE + "</body>"))
    proc = subprocess.run([BROWSER, *FLAGS, f"--window-size={WIDTH},1000", "--virtual-time-budget=10000", "--dump-dom",
                           probe.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="rdusim-probe">(.*?)</pre>', proc.stdout, flags=re.S)
    assert found, proc.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.parametrize("kind", ["coe", "fusion", "model", "serve", "sweep"])
def test_tables_plots_and_links_render_in_chromium(tmp_path, kind):
    if kind == "sweep":
        index, figures = _render_sweep(tmp_path / "report")
    elif kind == "serve":
        index, figures = _render_serve(tmp_path / "report")
    else:
        index, figures = _render_result(load_result(DATA / f"{kind}.json"), tmp_path / "report")
    seen = _probe(index)
    assert seen["viewport"] == WIDTH and seen["page_width"] <= WIDTH, seen["page_width"]   # no sideways overflow
    assert seen["cut_tables"] == [], seen["cut_tables"]
    assert len(seen["alts"]) == len(figures) > 0
    for alt, fig in zip(seen["alts"], figures):
        assert alt.startswith(fig.title + ". Axes: "), alt
        axes = alt[len(fig.title + ". Axes: "):].split("; ")
        assert not [a for a in axes if DOTTED_KEY.search(a)], alt                  # names and units, not keys
        assert fig.legend_over_data == (), (fig.name, fig.legend_over_data)
    assert seen["images"] > 0 and seen["decoded"] == seen["images"], seen        # every plot decoded and on screen
    assert seen["tables"] > 1 and seen["tables_with_rows_shown"] == seen["tables"], seen
    assert seen["anchors_missing"] == [], seen
    assert seen["file_links"], seen
    for href in seen["file_links"]:
        assert (index.parent / unquote(href)).is_file(), href                      # e.g. tables/<name>.csv


def test_headless_chromium_screenshot_shows_the_plots(tmp_path):
    from matplotlib.image import imread

    index = render_report(load_result(DATA / "coe.json"), tmp_path / "report")
    shot = tmp_path / "shot.png"
    proc = subprocess.run([BROWSER, *FLAGS, "--window-size=1280,1600", f"--screenshot={shot}",
                           index.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    img = imread(shot)
    assert img.std() > 0.05                        # not a blank page
    # the legend patches of the first plot are drawn in the platforms' colours: the image decoded
    for platform in ("dgx_h100", "dgx_a100"):
        assert _pixels_near(img, platform_color(platform)) > 50, platform


def _pixels_near(img: np.ndarray, hex_colour: str, tol: float = 0.08) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img[..., :3] - rgb) < tol).all(axis=-1).sum())
