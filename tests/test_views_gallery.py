"""The static HTML gallery, checked end to end in headless Chromium.

Chromium opens ``index.html#selftest`` from disk; the page's own self-test clicks every cell
at its on-screen centre and writes what the detail view then showed into the DOM, which
``--dump-dom`` hands back. Console messages (errors included) go to Chromium's stderr log.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evoemotion.views.gallery import THUMB_SIZE, GalleryElite, write_gallery
from evoemotion.views.layout import categorical_panel, grid_panels

CLASSES = ["anger", "joy", "sadness"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def browse(index: Path) -> tuple[dict, list[str]]:
    """Run the page's self-test in headless Chromium; return its report and console lines."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium chromium-driver)")
    done = subprocess.run(
        [browser, *CHROMIUM_FLAGS, "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=20000", "--window-size=1280,900", "--dump-dom",
         index.resolve().as_uri() + "#selftest"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    found = re.search(r'<pre id="selftest">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1), "the page's self-test wrote no result"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(found.group(1))), console


def make_elites(n: int, rng: np.random.Generator):
    probs = rng.dirichlet(np.ones(len(CLASSES)), n)
    images = rng.integers(0, 256, (n, 160, 160, 3), dtype=np.uint8)
    elites = [
        GalleryElite(
            stem=f"e{i:03d}",
            label=f"elite {i}",
            fields=[("objective", float(probs[i].max())), ("cell", i), ("odd", float("nan"))],
            outputs=[(c, float(probs[i, k]), 0.0, 1.0) for k, c in enumerate(CLASSES)]
            + [("valence", 4.5, 1.0, 9.0)],
            genome=f"(sin (* x {i})) </script><b>not markup</b>",
        )
        for i in range(n)
    ]
    return probs, images, elites


def check_page(folder: Path, index: Path, elites, images, n_cells: int) -> dict:
    report, console = browse(index)
    assert console == []
    assert report["errors"] == []
    assert report["cells"] == n_cells == len(elites)
    assert report["thumbs_loaded"] == n_cells
    for click in report["clicks"]:
        i = click["cell"]
        assert click["hit"] and click["open"], click
        assert click["shown"] == i
        assert click["title"] == elites[i].label
        assert click["genome"] == elites[i].genome
        assert click["outputs"] == len(elites[i].outputs)
        assert click["loaded"] and click["width"] == images[i].shape[1]
        png = np.asarray(Image.open(folder / click["png"]))
        assert np.array_equal(png, images[i])
    assert sorted(c["cell"] for c in report["clicks"]) == list(range(n_cells))
    return report


def test_categorical_gallery_opens_the_clicked_elite(tmp_path):
    probs, images, elites = make_elites(9, np.random.default_rng(0))
    folder = tmp_path / "gallery"
    index = write_gallery(folder, title="run <x>", info=[("archive", "categorical")],
                          panels=[categorical_panel(probs, CLASSES)], elites=elites,
                          image=lambda i: images[i])
    page = index.read_text()
    assert "<title>run &lt;x&gt;</title>" in page
    # Self-contained: every src/href is a relative path to a file in the folder, or "#".
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert all(link == "#" for link in links), links
    assert "http://" not in page and "https://" not in page
    assert Image.open(folder / "thumbs" / "e000.png").size == (THUMB_SIZE, THUMB_SIZE)
    check_page(folder, index, elites, images, 9)


def test_vad_gallery_draws_every_slice_with_empty_cells(tmp_path):
    rng = np.random.default_rng(1)
    cells = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]])
    _, images, elites = make_elites(len(cells), rng)
    panels = grid_panels(cells, [2, 2, 2], [(1, 9)] * 3, ["valence", "arousal", "dominance"],
                         rng.random(len(cells)))
    folder = tmp_path / "g"
    index = write_gallery(folder, title="vad", info=[], panels=panels, elites=elites,
                          image=lambda i: images[i])
    report = check_page(folder, index, elites, images, len(cells))
    assert report["empty"] == 2 * 2 * 2 - len(cells)
