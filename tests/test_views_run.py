"""plot / analyze / gallery / render RUN on real tiny runs made with the run API.

The runs are made once per module by :func:`evoemotion.experiment.start_run` and
:func:`evoemotion.runs.run_iterations` (a few iterations, 32 px images), scored by an
EfficientNet-Lite0 with ImageNet features and random heads scaled up so that the outputs
spread over the archive. No run is exported: every command works from the checkpoint, as it
must on a half-finished run.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_views_gallery import browse

from evoemotion.cli import main
from evoemotion.views.runview import open_run

CLASSES = ["anger", "joy", "sadness", "fear"]


def make_classifier(path: Path, seed: int) -> Path:
    """A Lite0 classifier with ImageNet features and random heads; returns its path."""
    from evoemotion.emotion import build_model, save_model

    torch.manual_seed(seed)
    model = build_model("efficientnet_lite0", ["categorical", "vad"], CLASSES,
                        weights="imagenet")
    with torch.no_grad():
        for p in model.heads.parameters():
            p.mul_(3.0)
    return save_model(model, path)


def make_run(folder: Path, classifier: Path, archive: str, iterations: int, cells: int | None):
    from evoemotion.experiment import RunConfig, start_run
    from evoemotion.runs import run_iterations

    config = RunConfig(classifiers=[str(classifier)], archive=archive, iterations=iterations,
                       batch_size=32, chunk_size=32, render_size=32, score_size=64, cells=cells,
                       checkpoint_every=2, seed=1, device="cpu")
    run = start_run(config, folder)
    run_iterations(run.folder, run.state, run.evaluator, iterations=iterations)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("views-runs")
    classifier = make_classifier(root / "model.pt", seed=0)
    return {
        "classifier": classifier,
        "other": make_classifier(root / "other.pt", seed=1),
        "categorical": make_run(root / "cat", classifier, "categorical", 4, 32),
        "va": make_run(root / "va", classifier, "va", 4, 6),
        "vad": make_run(root / "vad", classifier, "vad", 3, 3),
        "per-class": make_run(root / "pc", classifier, "per-class", 2, None),
        "empty": make_run(root / "empty", classifier, "va", 0, 6),
    }


def test_view_reads_the_checkpoint_archive_and_its_outputs_belong_to_the_genomes(runs):
    from evoemotion.emotion import load_model
    from evoemotion.scoring import Scorer

    view = open_run(runs["va"])
    data = view.archive.data()
    assert len(view) == len(data["index"]) > 5
    assert np.all(np.diff(view.cells) > 0)
    assert view.iteration == 4 and view.evaluations == 4 * 32
    assert view.class_names == CLASSES
    order = np.argsort(data["index"])
    assert np.allclose(view.objective, data["objective"][order])
    # Re-render and re-score the elites as the run did: the recorded outputs come back.
    scorer = Scorer([load_model(runs["classifier"])], device="cpu", size=64)
    out = scorer.score(view.render(np.arange(len(view)), 32))
    for name in ["joy", "valence", "arousal"]:
        assert np.allclose(out[name], view.outputs[name], atol=1e-3), name
    grid = view.grid_index()
    (panel,) = view.panels()
    assert {(p.row, p.col) for p in panel.placements} == {(5 - a, v) for v, a in grid}


@pytest.mark.parametrize("kind", ["categorical", "va", "vad", "per-class"])
def test_plot_writes_mosaic_heatmap_and_curves(runs, kind, capsys):
    assert main(["plot", str(runs[kind]), "--thumb-size", "32"]) == 0
    folder = runs[kind] / "plots"
    for name in ("mosaic", "heatmap", "curves"):
        with Image.open(folder / f"{name}.png") as image:
            assert min(image.size) > 200
    assert "mosaic.png" in capsys.readouterr().out


def test_plot_several_runs_in_svg_draws_one_curves_figure(runs, tmp_path):
    out = tmp_path / "cmp"
    assert main(["plot", str(runs["va"]), str(runs["per-class"]), "--format", "svg",
                 "--thumb-size", "16", "-o", str(out)]) == 0
    svg = (out / "curves.svg").read_text()
    assert "va (map-elites)" in svg and "pc (map-elites)" in svg
    assert (out / "va-mosaic.svg").is_file() and (out / "pc-heatmap.svg").is_file()


def test_plot_of_a_run_without_iterations_writes_nothing_and_succeeds(runs, tmp_path):
    assert main(["plot", str(runs["empty"]), "-o", str(tmp_path / "p")]) == 0
    assert not list((tmp_path / "p").iterdir())


def test_analyze_with_a_second_classifier(runs, capsys):
    assert main(["analyze", str(runs["va"]), "--size", "48", "--confirm",
                 str(runs["other"]), "--device", "cpu"]) == 0
    report = capsys.readouterr().out
    view = open_run(runs["va"])
    folder = runs["va"] / "analysis"
    assert report.startswith((folder / "report.txt").read_text())
    one_line = " ".join(report.split())
    for equation in ("pleasure (valence): paper +0.69 B +0.22 S",
                     "arousal: paper -0.31 B +0.60 S", "dominance: paper -0.76 B +0.32 S"):
        assert equation in one_line
    assert "Elites along valence" in report and "Elites by top emotion" in report
    assert "argmax agreement" in report and "mean |difference|" in report
    with open(folder / "analysis.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(view)
    assert [int(r["cell"]) for r in rows] == view.cells.tolist()
    first = rows[0]
    assert 0.0 <= float(first["brightness"]) <= 1.0
    assert float(first["joy"]) == pytest.approx(view.outputs["joy"][0], rel=1e-5)
    agrees = [int(r["confirm_agrees"]) for r in rows]
    confirm = np.array([[float(r[f"confirm_{c}"]) for c in CLASSES] for r in rows])
    assert agrees == (confirm.argmax(1) == view.probs.argmax(1)).astype(int).tolist()
    for name in ("correlations.png", "equations.png", "hues.png"):
        assert (folder / name).is_file()


def test_analyze_refuses_the_runs_own_classifier_and_an_empty_run(runs, capsys):
    assert main(["analyze", str(runs["va"]), "--confirm", str(runs["classifier"])]) == 2
    assert "the run's own classifier" in capsys.readouterr().err
    assert main(["analyze", str(runs["empty"])]) == 2
    assert "no elites yet" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["va", "categorical"])
def test_gallery_in_headless_chromium(runs, kind, tmp_path):
    out = tmp_path / "gallery"
    assert main(["gallery", str(runs[kind]), "-o", str(out), "--size", "64"]) == 0
    view = open_run(runs[kind])
    report, console = browse(out / "index.html")
    assert console == [] and report["errors"] == []
    assert report["cells"] == len(view) == len(report["clicks"])
    assert report["thumbs_loaded"] == len(view)
    by_cell = {f"images/cell{c:05d}.png": row for row, c in enumerate(view.cells)}
    for click in report["clicks"]:
        assert click["hit"] and click["open"] and click["shown"] == click["cell"]
        row = by_cell[click["png"]]
        assert click["genome"] == view.genome_text(row)
        assert click["title"].startswith(f"cell {view.cells[row]}")
        assert click["loaded"] and click["width"] == 64
    row = len(view) // 2
    png = np.asarray(Image.open(out / "images" / f"cell{view.cells[row]:05d}.png"))
    assert np.array_equal(png, view.render([row], 64)[0])


def test_render_run_posters_reproduce_from_their_genome_files(runs, tmp_path, capsys):
    out = tmp_path / "posters"
    view = open_run(runs["categorical"])
    best = int(view.cells[np.argmax(view.objective)])
    assert main(["render", str(runs["categorical"]), "--top", "2", "--cell", "joy",
                 "--size", "80", "-o", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert out / f"cell{best:05d}-80px.png" in pngs and 2 <= len(pngs) <= 3
    joy = int(view.cells[np.argmax(view.outputs["joy"])])
    assert (out / f"cell{joy:05d}-80px.png").is_file()
    document = json.loads((out / f"cell{best:05d}.json").read_text())
    assert document["cell"] == best and document["objective"] == pytest.approx(
        view.objective.max())
    again = tmp_path / "again.png"
    assert main(["render", str(out / f"cell{best:05d}.json"), "--size", "80",
                 "-o", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(again)),
                          np.asarray(Image.open(out / f"cell{best:05d}-80px.png")))
    capsys.readouterr()
    assert main(["render", str(runs["va"]), "--cell", "nosuch"]) == 2
    assert "--cell 'nosuch'" in capsys.readouterr().err
    assert main(["render", str(runs["va"])]) == 2
    assert "--cell" in capsys.readouterr().err
    assert main(["render", str(runs["empty"]), "--top", "1"]) == 2
    assert "no elites yet" in capsys.readouterr().err
