"""The report opens in a real browser: headless Chromium renders index.html to a PNG
in which the embedded plots are visible. Slow, and skipped without Chromium."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rdusim.report.colors import platform_color
from rdusim.report.render import render_report
from rdusim.results import load_result

DATA = Path(__file__).parent / "data" / "report_synthetic"
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _pixels_near(img: np.ndarray, hex_colour: str, tol: float = 0.08) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img[..., :3] - rgb) < tol).all(axis=-1).sum())


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (apt-get install chromium)")
def test_headless_chromium_renders_the_report_with_its_plots(tmp_path):
    from matplotlib.image import imread

    index = render_report(load_result(DATA / "coe.json"), tmp_path / "report")
    shot = tmp_path / "shot.png"
    proc = subprocess.run([BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={shot}",
                           index.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    img = imread(shot)
    assert img.std() > 0.05                        # not a blank page
    # the legend patches of the first plot are drawn in the platforms' colours: the image decoded
    for platform in ("dgx_h100", "dgx_a100"):
        assert _pixels_near(img, platform_color(platform)) > 50, platform
