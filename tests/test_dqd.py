"""DQD runs (CMA-MEGA, CMA-MAEGA, OMG-MEGA): every archive kind, per-class gradients,
rejected gradients, refusals, exact resume and the command line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from evoemotion.archives import make_archive_spec
from evoemotion.cli import main
from evoemotion.emotion import build_model, save_model
from evoemotion.errors import ConfigError
from evoemotion.experiment import RunConfig, resume_run, start_run
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.runs import run_iterations
from evoemotion.scoring import Scorer
from evoemotion.search import DqdSearch, make_search

CLASSES = ["anger", "fear", "joy"]


@pytest.fixture(scope="module")
def scorer(tiny_emotion_model):
    return Scorer([tiny_emotion_model()], device="cpu", size=16, batch_size=8)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", ["categorical", "vad"], CLASSES, weights="none")
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.pt")


def make_spec(scorer, kind, **kwargs):
    return make_archive_spec(kind, class_names=scorer.class_names,
                             regression_names=scorer.regression_names, scales=scorer.scales,
                             objective=kwargs.pop("objective", "confidence"), **kwargs)


class Recorder:
    """An evaluator that records the Jacobian requests and can spoil some gradients."""

    def __init__(self, evaluator, spoil=()):
        self.inner, self.spoil, self.requests = evaluator, set(spoil), []
        self.genotype = evaluator.genotype

    def evaluate(self, genomes, **kwargs):
        return self.inner.evaluate(genomes, **kwargs)

    def jacobian(self, genomes, spec, rows=None):
        values, jacobian = self.inner.jacobian(genomes, spec, rows)
        self.requests.append((np.array(genomes), rows, jacobian.copy()))
        for i in self.spoil:
            jacobian[i, 0, 0] = np.nan
        return values, jacobian


@pytest.mark.parametrize("kind", ["categorical", "per-class", "va", "vad", "measures"])
@pytest.mark.parametrize("emitter", ["cma-mega", "cma-maega", "omg-mega"])
def test_every_emitter_fills_every_archive_kind(scorer, kind, emitter):
    options = {"cells": 6} if kind == "categorical" else {"cells": 3} if kind != "per-class" else {}
    if kind == "measures":
        options["measures"] = ["fear", "valence"]
    spec = make_spec(scorer, kind, **options)
    state = DqdSearch(genotype=load_genotype("cppn-hsv"), spec=spec, batch_size=6, seed=1,
                      emitter=emitter, emitters=2)
    evaluator = Recorder(Evaluator(state.genotype, scorer, render_size=16))
    rows = [state.step(evaluator) for _ in range(2)]
    emitters = 3 if kind == "per-class" else 2
    assert len(state.emitters) == emitters
    points = 6 if emitter == "omg-mega" else emitters
    # OMG-MEGA starts from its initial solutions (no gradient points on an empty archive).
    expected = (points if emitter != "omg-mega" else 0) + points
    assert rows[-1]["gradient_evaluations"] == expected == state.gradient_evaluations
    assert rows[-1]["evaluations"] == expected + 12
    assert len(state.archive) >= 1 and rows[-1]["rejected_gradients"] == 0
    bounds = np.array(state.genotype.bounds)
    assert np.all(np.abs(state.archive.data("solution")) <= bounds[:, 1])
    genomes, wanted, jacobian = evaluator.requests[-1]
    assert jacobian.shape == (len(genomes), 1 + len(spec.ranges), state.genotype.solution_dim)
    if kind == "per-class":
        counts = [len(genomes) // emitters] * emitters
        np.testing.assert_array_equal(wanted, np.repeat(np.arange(emitters) % 3, counts))
    else:
        assert wanted is None


def test_each_per_class_emitter_follows_its_own_class_gradient(scorer):
    spec = make_spec(scorer, "per-class")
    state = DqdSearch(genotype=load_genotype("cppn"), spec=spec, batch_size=6, seed=0,
                      emitters=3)
    evaluator = Recorder(Evaluator(state.genotype, scorer, render_size=16))
    state.step(evaluator)
    genomes, wanted, jacobian = evaluator.requests[0]
    inner = evaluator.inner
    for k in range(3):
        _, direct = inner.jacobian(genomes[k : k + 1], spec, np.array([k]))
        np.testing.assert_allclose(jacobian[k], direct[0], rtol=1e-4, atol=1e-6)
        _, other = inner.jacobian(genomes[k : k + 1], spec, np.array([(k + 1) % 3]))
        assert not np.allclose(jacobian[k, 0], other[0, 0])


def test_per_class_cma_mega_keeps_its_points_where_the_papers_restart_rule_restarts(scorer):
    # On per-class a branch enters the archive only by beating its class's best image, so
    # restarting after an iteration without one (the paper's rule) restarts nearly always;
    # the per-class defaults (three emitters per class) restart only when CMA-ES converges.
    spec = make_spec(scorer, "per-class")
    genotype = load_genotype("cppn")
    evaluator = Evaluator(genotype, scorer, render_size=16)
    tuned = DqdSearch(genotype=genotype, spec=spec, batch_size=18, seed=0)
    paper = DqdSearch(genotype=genotype, spec=spec, batch_size=18, seed=0, emitters=9,
                      sigma=1.0, lr=1.0, optimizer="gradient_ascent", restart="no-improvement")
    for _ in range(4):
        tuned.step(evaluator)
        paper.step(evaluator)
    assert len(tuned.emitters) == len(paper.emitters) == 9
    assert sum(e.restarts for e in tuned.emitters) == 0
    assert sum(e.restarts for e in paper.emitters) >= 9
    # The per-class defaults are CMA-MEGA's: OMG-MEGA keeps 4 emitters (at least one per class).
    omg = DqdSearch(genotype=genotype, spec=spec, batch_size=18, seed=0, emitter="omg-mega")
    assert len(omg.emitters) == 4


def test_a_non_finite_gradient_is_rejected_counted_and_the_run_goes_on(scorer):
    spec = make_spec(scorer, "categorical", cells=6)
    state = DqdSearch(genotype=load_genotype("cppn"), spec=spec, batch_size=6, seed=0,
                      emitters=3)
    evaluator = Recorder(Evaluator(state.genotype, scorer, render_size=16), spoil=[1])
    rows = [state.step(evaluator)]
    # Neither the spoiled point (emitter 1's x0) nor its branches (copies of it) got in.
    spoiled = evaluator.requests[0][0][1]
    assert not np.any(np.all(state.archive.data("solution") == spoiled, axis=1))
    rows += [state.step(evaluator) for _ in range(2)]
    assert [r["rejected_gradients"] for r in rows] == [1, 1, 1]
    assert state.rejected_gradients == 3 and rows[-1]["rejected"] == 0


def test_refusals_are_one_clear_line(scorer):
    with pytest.raises(ConfigError, match="sims.*no differentiable renderer.*cppn"):
        make_search("dqd", genotype=load_genotype("sims"), spec=make_spec(scorer, "va"),
                    batch_size=4, seed=0)
    with pytest.raises(ConfigError, match="'aesthetic' has no gradient.*confidence or none"):
        DqdSearch(genotype=load_genotype("cppn"), spec=make_spec(scorer, "va",
                  objective="aesthetic"), batch_size=4, seed=0)
    with pytest.raises(ConfigError, match="dqd emitter must be one of cma-mega"):
        DqdSearch(genotype=load_genotype("cppn"), spec=make_spec(scorer, "va"), batch_size=4,
                  seed=0, emitter="me")
    with pytest.raises(ConfigError, match="dqd restart must be one of no-improvement, basic"):
        DqdSearch(genotype=load_genotype("cppn"), spec=make_spec(scorer, "va"), batch_size=4,
                  seed=0, restart="sometimes")
    with pytest.raises(ConfigError, match="batch size 16 over 9 emitters is too few"):
        DqdSearch(genotype=load_genotype("cppn"), spec=make_spec(scorer, "per-class"),
                  batch_size=16, seed=0)


@pytest.mark.parametrize("emitter", ["cma-mega", "cma-maega", "omg-mega"])
def test_resumed_dqd_run_equals_the_uninterrupted_run(classifier, tmp_path, emitter):
    config = RunConfig(classifiers=[str(classifier)], algorithm="dqd", archive="va",
                       objective="confidence", iterations=4, batch_size=4, chunk_size=4,
                       render_size=16, score_size=16, cells=4, device="cpu",
                       checkpoint_every=1, seed=2,
                       options={"emitter": emitter, "emitters": 2})
    whole = start_run(config, tmp_path / "whole")
    run_iterations(whole.folder, whole.state, whole.evaluator, iterations=4)
    parted = start_run(config, tmp_path / "parted")
    run_iterations(parted.folder, parted.state, parted.evaluator, iterations=2)
    parted.folder.append_metrics(parted.state.step(parted.evaluator))  # never checkpointed
    parted.close()
    resumed = resume_run(tmp_path / "parted")
    assert resumed.state.iteration == 2
    run_iterations(resumed.folder, resumed.state, resumed.evaluator, iterations=4)
    a, b = whole.state.archive.data(), resumed.state.archive.data()
    for key in ("index", "objective", "measures", "solution"):
        np.testing.assert_array_equal(a[key][np.argsort(a["index"])],
                                      b[key][np.argsort(b["index"])])
    strip = [{k: v for k, v in r.items() if k != "wall_time"} for r in whole.state.metrics]
    assert strip == [{k: v for k, v in r.items() if k != "wall_time"}
                     for r in resumed.state.metrics]
    assert whole.state.gradient_evaluations == resumed.state.gradient_evaluations > 0


def test_cli_dqd_run_writes_a_run_folder_and_refuses_dask(classifier, tmp_path, capsys):
    out = tmp_path / "cli"
    common = ["--classifier", str(classifier), "--batch-size", "4", "--chunk-size", "4",
              "--render-size", "16", "--score-size", "16", "--device", "cpu",
              "--export-size", "16", "--emitters", "2", "--algorithm", "dqd"]
    assert main(["run", "--archive", "per-class", "--iterations", "2", "--out", str(out),
                 "--dqd-emitter", "omg-mega", *common]) == 0
    assert {"config.json", "metrics.csv", "checkpoint.pkl", "elites", "elites.csv"} <= {
        p.name for p in out.iterdir()}
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["gradient_evaluations"]) for r in rows] == [0, 4]
    assert main(["resume", str(out), "--iterations", "3"]) == 0
    # A DQD flag left unset takes the archive kind's default, and config.json says only
    # what was chosen.
    assert main(["run", "--archive", "va", "--cells", "3", "--iterations", "1", "--out",
                 str(tmp_path / "va"), "--dqd-restart", "basic", *common]) == 0
    with open(tmp_path / "va" / "config.json") as fh:
        options = json.load(fh)["run"]["options"]
    assert options == {"emitter": "cma-mega", "emitters": 2, "restart": "basic",
                       "archive_lr": 0.1}
    assert main(["run", "--workers", "2", "--out", str(tmp_path / "d"), *common]) == 2
    assert "drop --workers" in capsys.readouterr().err
    assert main(["run", "--genotype", "sims", "--out", str(tmp_path / "s"), *common]) == 2
    assert "use a flat CPPN preset" in capsys.readouterr().err
