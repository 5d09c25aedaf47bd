"""`assay report`: the HTML page, its embedded figures, and what headless Chromium renders of it."""
import os
import base64
import io
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest

from conftest import run_assay


def images(html: str):
    return [matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
            for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def non_blank(pixels: np.ndarray) -> bool:
    rgb = pixels[..., :3]
    return rgb.std() > 0.02 and (rgb < 0.5).mean() > 0.002  # some ink on the page, not one flat colour


@pytest.fixture(scope="module")
def sweep_report(sweep, tmp_path_factory):
    output = tmp_path_factory.mktemp("report") / "report.html"
    result = run_assay("report", sweep, "-o", output)
    assert str(output) in result.stdout
    return output


def test_sweep_report_has_tables_and_figures(sweep_report):
    html = sweep_report.read_text()
    for title in ("Runs", "Curves", "Across optimizer.lr", "Seed distributions", "Analyzers",
                  "train.loss over steps, by optimizer.lr", "final train.loss vs optimizer.lr",
                  "Fourier features of u"):
        assert title in html, title
    figures = images(html)
    assert len(figures) >= 8
    assert all(non_blank(f) for f in figures)
    assert "http-equiv" not in html  # no auto-refresh unless --watch


def test_single_run_report(sweep, tmp_path):
    output = tmp_path / "one.html"
    run_assay("report", sweep / "lr0.03-s0", "-o", output)
    html = output.read_text()
    assert "1 run(s)" in html and "Fourier features of w" in html
    assert all(non_blank(f) for f in images(html))


def test_watch_ends_when_runs_have_ended(sweep, tmp_path):
    output = tmp_path / "watched.html"
    run_assay("report", sweep, "-o", output, "--watch", "1")
    assert "http-equiv" not in output.read_text()


def test_missing_folder_gives_an_empty_report(tmp_path):
    output = tmp_path / "empty.html"
    run_assay("report", tmp_path, "-o", output)
    assert "No run stores found" in output.read_text()


@pytest.mark.skipif(os.environ.get("ASSAY_SKIP_CHROMIUM") == "1",
                    reason="ASSAY_SKIP_CHROMIUM=1: an image without chromium (tools/gpu-check.sh sets it)")
def test_chromium_renders_the_figures(sweep_report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed (bash tools/setup.sh installs it)"
    screenshot = tmp_path / "page.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1200,2000", f"--screenshot={screenshot}", sweep_report.as_uri()],
                   capture_output=True, check=True, timeout=120)
    page = matplotlib.image.imread(screenshot)
    assert page.shape[:2] == (2000, 1200)
    assert non_blank(page)
    # The first figure row (below the runs table) is drawn: rows with plot ink in the middle of the page.
    inked_rows = ((page[..., :3] < 0.5).mean(axis=(1, 2)) > 0.01).sum()
    assert inked_rows > 300
