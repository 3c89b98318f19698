"""Run folders: checkpoints, resume == uninterrupted, refusals, signals, export, CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evoemotion.cli import main
from evoemotion.emotion import build_model, save_model
from evoemotion.errors import CheckpointError, ConfigError
from evoemotion.experiment import RunConfig, resume_run, start_run
from evoemotion.render import render
from evoemotion.runs import RunFolder, run_iterations, stop_on_signals
from evoemotion.snapshot import ArchiveSnapshot
from evoemotion.views.export import export_elites

CLASSES = ["anger", "fear", "joy"]


def save_classifier(path, seed: int):
    torch.manual_seed(seed)
    model = build_model("mobilenet_v3_small", ["categorical", "vad"], CLASSES, weights="none")
    return save_model(model, path)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("model") / "tiny.pt", seed=0)


def tiny_config(classifier, **changes) -> RunConfig:
    options = {"emitters": 2, **changes.pop("options", {})}
    settings = {"classifiers": [str(classifier)], "iterations": 4, "batch_size": 8,
                "chunk_size": 4, "render_size": 32, "score_size": 32, "cells": 8,
                "device": "cpu", "checkpoint_every": 1, "export_size": 24, "seed": 3,
                "options": options, **changes}
    return RunConfig(**settings)


def archive_content(state):
    data = state.archive.data()
    order = np.argsort(data["index"])
    return [data[key][order] for key in ("index", "objective", "measures", "solution")]


def without_time(rows):
    return [{k: v for k, v in row.items() if k != "wall_time"} for row in rows]


@pytest.mark.parametrize("emitter", ["cma-me", "iso-line"])
def test_resumed_run_equals_the_uninterrupted_run(classifier, tmp_path, emitter):
    config = tiny_config(classifier, options={"emitter": emitter})
    whole = start_run(config, tmp_path / "whole")
    run_iterations(whole.folder, whole.state, whole.evaluator, iterations=4)

    parted = start_run(config, tmp_path / "parted")
    run_iterations(parted.folder, parted.state, parted.evaluator, iterations=2)
    # Killed after a third iteration whose metrics were written but never checkpointed.
    parted.folder.append_metrics(parted.state.step(parted.evaluator))
    parted.close()
    resumed = resume_run(tmp_path / "parted")
    assert resumed.state.iteration == 2
    with open(resumed.folder.metrics_path) as fh:
        assert len(list(csv.DictReader(fh))) == 2
    run_iterations(resumed.folder, resumed.state, resumed.evaluator, iterations=4)

    for a, b in zip(archive_content(whole.state), archive_content(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert without_time(whole.state.metrics) == without_time(resumed.state.metrics)
    with open(resumed.folder.metrics_path) as fh:
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4]


def test_genome_emitter_runs_resume_identically_too(classifier, tmp_path):
    config = tiny_config(classifier, genotype="sims", iterations=3, batch_size=4,
                         archive="per-class", cells=None)
    whole = start_run(config, tmp_path / "whole")
    run_iterations(whole.folder, whole.state, whole.evaluator, iterations=3)
    parted = start_run(config, tmp_path / "parted")
    run_iterations(parted.folder, parted.state, parted.evaluator, iterations=1)
    parted.close()
    resumed = resume_run(tmp_path / "parted")
    run_iterations(resumed.folder, resumed.state, resumed.evaluator, iterations=3)
    a, b = archive_content(whole.state), archive_content(resumed.state)
    np.testing.assert_array_equal(a[1], b[1])
    texts = [[whole.state.genotype.to_text(g) for g in content[3]] for content in (a, b)]
    assert texts[0] == texts[1]


def test_config_records_classifier_hash_versions_and_centroids(classifier, tmp_path):
    run = start_run(tiny_config(classifier), tmp_path / "run")
    config = run.folder.config
    assert config["format"] == "evoemotion-run"
    assert config["classifiers"][0]["identity"] == run.evaluator.scorer.identities[0]
    assert {"torch", "ribs", "numpy", "evoemotion"} <= set(config["versions"])
    assert config["genotype"]["kind"] == "cppn" and config["archive"]["cells"] == 8
    np.testing.assert_array_equal(run.folder.centroids(), run.state.spec.centroids)
    run.close()
    with pytest.raises(ConfigError, match="already exists"):
        start_run(tiny_config(classifier), tmp_path / "run")


def test_resume_refuses_corrupt_truncated_and_foreign_checkpoints(classifier, tmp_path):
    run = start_run(tiny_config(classifier), tmp_path / "run")
    run_iterations(run.folder, run.state, run.evaluator, iterations=1)
    run.close()
    path = run.folder.checkpoint_path
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        resume_run(run.folder.path)
    flipped = bytearray(good)
    flipped[-10] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        resume_run(run.folder.path)
    path.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(CheckpointError, match="not an evoemotion run checkpoint"):
        resume_run(run.folder.path)
    path.unlink()
    with pytest.raises(CheckpointError, match="no checkpoint.pkl"):
        resume_run(run.folder.path)
    with pytest.raises(CheckpointError, match="not a run folder"):
        resume_run(tmp_path)


def test_resume_refuses_a_classifier_whose_hash_changed(tmp_path):
    model_path = save_classifier(tmp_path / "model.pt", seed=0)
    run = start_run(tiny_config(model_path), tmp_path / "run")
    run_iterations(run.folder, run.state, run.evaluator, iterations=1)
    run.close()
    save_classifier(model_path, seed=1)
    with pytest.raises(CheckpointError, match="has changed since the run started"):
        resume_run(run.folder.path)


def test_a_signal_stops_the_run_after_a_checkpoint(classifier, tmp_path):
    run = start_run(tiny_config(classifier, checkpoint_every=0), tmp_path / "run")
    previous = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.is_set()
        finished = run_iterations(run.folder, run.state, run.evaluator, iterations=4,
                                  stop=stop)
    assert not finished and signal.getsignal(signal.SIGTERM) is previous
    assert RunFolder.open(run.folder.path).load_checkpoint().iteration == 0


def test_export_writes_every_elite_as_png_genome_and_csv_row(classifier, tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text((Path(__file__).parents[1] / "genotypes" / "cppn.toml").read_text())
    run = start_run(tiny_config(classifier, iterations=2, genotype=str(preset)),
                    tmp_path / "run")
    run_iterations(run.folder, run.state, run.evaluator, iterations=2)
    count = export_elites(run.folder, ArchiveSnapshot.of(run.state), size=24)
    assert count == len(run.state.archive) >= 1
    with open(run.folder.elites_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == count
    assert rows[0]["measure_anger"] and "valence" in rows[0] and "objective" in rows[0]
    row = rows[0]
    genotype = run.state.genotype
    genome = genotype.from_dict(json.loads((run.folder.path / row["genome"]).read_text()))
    png = np.asarray(Image.open(run.folder.path / row["image"]))
    np.testing.assert_array_equal(png, render(genotype, [genome], 24)[0])
    index = int(row["cell"])
    data = run.state.archive.data()
    stored = data["solution"][list(data["index"]).index(index)]
    np.testing.assert_array_equal(genome, stored)
    # The genome file carries its preset: it renders after the preset file is gone.
    preset.unlink()
    poster = tmp_path / "again.png"
    assert main(["render", str(run.folder.path / row["genome"]), "--size", "24",
                 "-o", str(poster)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(poster)), png)


def test_cli_run_and_resume_write_a_complete_run_folder(classifier, tmp_path, capsys):
    out = tmp_path / "cli"
    common = ["--classifier", str(classifier), "--batch-size", "6", "--chunk-size", "3",
              "--render-size", "32", "--score-size", "32", "--cells", "6", "--device", "cpu",
              "--export-size", "16", "--emitters", "2"]
    assert main(["run", "--iterations", "2", "--out", str(out), *common]) == 0
    assert {"config.json", "metrics.csv", "checkpoint.pkl", "elites", "elites.csv",
            "centroids.npy"} <= {p.name for p in out.iterdir()}
    assert main(["resume", str(out), "--iterations", "3"]) == 0
    with open(out / "metrics.csv") as fh:
        assert [int(r["iteration"]) for r in csv.DictReader(fh)] == [1, 2, 3]
    assert main(["resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_the_readme_command_defaults_run_on_the_bundled_classifier(tmp_path):
    config = RunConfig(iterations=1, batch_size=8, chunk_size=8, render_size=32,
                       score_size=32, cells=8, device="cpu")
    assert config.classifiers == ["default"] and config.genotype == "cppn"
    run = start_run(config, tmp_path / "default")
    assert run_iterations(run.folder, run.state, run.evaluator, iterations=1)
    assert run.state.spec.measure_names == run.evaluator.scorer.class_names
    assert run.folder.config["classifiers"][0]["source"] == "default"
