"""MAP-Elites and random search: emitters, object genomes, per-class, rejection, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoemotion.archives import make_archive_spec
from evoemotion.emotion import build_model
from evoemotion.errors import ConfigError
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.scoring import Scorer
from evoemotion.search import MapElites, RandomSearch, make_search

CLASSES = ["anger", "fear", "joy"]


@pytest.fixture(scope="module")
def scorer():
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", ["categorical", "va"], CLASSES, weights="none")
    return Scorer([model], device="cpu", size=32, batch_size=8)


def make_spec(scorer, kind="categorical", **kwargs):
    return make_archive_spec(kind, class_names=scorer.class_names,
                             regression_names=scorer.regression_names, scales=scorer.scales,
                             **kwargs)


def run(state, scorer, iterations=2):
    evaluator = Evaluator(state.genotype, scorer, render_size=32,
                          features=state.spec.features)
    rows = [state.step(evaluator) for _ in range(iterations)]
    evaluator.close()
    return rows


def archive_content(archive):
    data = archive.data()
    order = np.argsort(data["index"])
    return data["index"][order], data["objective"][order], data["solution"][order]


@pytest.mark.parametrize("emitter", ["cma-me", "iso-line", "gaussian", "genome"])
def test_every_emitter_fills_the_archive_of_a_vector_genotype(scorer, emitter):
    spec = make_spec(scorer, cells=12, seed=0)
    state = MapElites(genotype=load_genotype("cppn"), spec=spec, batch_size=8, seed=0,
                      emitter=emitter, emitters=2)
    rows = run(state, scorer, iterations=3)
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert rows[-1]["evaluations"] == 24 == state.evaluations
    assert len(state.archive) >= 1
    assert rows[-1]["coverage"] == pytest.approx(len(state.archive) / 12)
    assert state.archive.data("solution").shape[1] == state.genotype.solution_dim


def test_same_seed_gives_the_same_archive_and_another_seed_does_not(scorer):
    spec = make_spec(scorer, cells=12, seed=0)
    results = []
    for seed in (4, 4, 5):
        state = make_search("map-elites", genotype=load_genotype("cppn"), spec=spec,
                            batch_size=8, seed=seed, options={"emitters": 2})
        run(state, scorer, iterations=3)
        results.append(archive_content(state.archive))
    for a, b in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(results[0][2], results[2][2])


@pytest.mark.parametrize("kind", ["sims", "cppn-neat"])
def test_object_genomes_evolve_with_the_genome_emitter(scorer, kind):
    genotype = load_genotype(kind)
    state = MapElites(genotype=genotype, spec=make_spec(scorer, cells=8), batch_size=6,
                      seed=1, emitters=2)
    assert state.emitter_name == "genome"
    run(state, scorer, iterations=2)
    solutions = state.archive.data("solution")
    assert solutions.dtype == object and solutions.ndim == 1 and len(solutions) >= 1
    assert all(genotype.to_dict(g)["kind"] == kind for g in solutions)


def test_vector_emitters_refuse_object_genomes(scorer):
    with pytest.raises(ConfigError, match="`emitter` genome"):
        MapElites(genotype=load_genotype("sims"), spec=make_spec(scorer, cells=4),
                  batch_size=4, seed=0, emitter="cma-me")


def test_per_class_archive_keeps_the_best_image_of_each_class(scorer):
    spec = make_spec(scorer, "per-class")
    state = MapElites(genotype=load_genotype("cppn"), spec=spec, batch_size=8, seed=2,
                      emitters=2)
    rows = run(state, scorer, iterations=2)
    assert len(state.archive) == len(CLASSES)
    data = state.archive.data()
    for index, objective, outputs in zip(data["index"], data["objective"], data["outputs"],
                                         strict=True):
        assert objective == pytest.approx(outputs[index])
    assert rows[0]["new_cells"] == len(CLASSES)


def test_rejected_images_are_counted_and_kept_out_of_the_archive(scorer):
    preset = {**load_genotype("cppn").preset, "init_std": 0.0}
    flat = load_genotype(preset)
    spec = make_spec(scorer, "va", cells=4)
    state = RandomSearch(genotype=flat, spec=spec, batch_size=5, seed=0)
    rows = run(state, scorer, iterations=2)
    assert [r["rejected"] for r in rows] == [5, 5]
    assert state.rejected == 10 and len(state.archive) == 0
    assert np.isnan(rows[-1]["max_objective"])


def test_cma_me_survives_a_batch_with_rejected_images(scorer):
    preset = {**load_genotype("cppn").preset, "init_std": 0.0}
    state = MapElites(genotype=load_genotype(preset), spec=make_spec(scorer, "va", cells=4),
                      batch_size=8, seed=0, emitter="cma-me", emitters=1, sigma=1e-9)
    rows = run(state, scorer, iterations=2)
    assert rows[0]["rejected"] == 8 and state.evaluations == 16


def test_random_search_spends_the_same_budget_in_the_same_archive(scorer):
    spec = make_spec(scorer, cells=12)
    state = make_search("random", genotype=load_genotype("cppn"), spec=spec, batch_size=8,
                        seed=0)
    rows = run(state, scorer, iterations=2)
    assert rows[-1]["evaluations"] == 16 and state.archive.cells == 12
    assert len(state.archive) >= 1


def test_make_search_rejects_unknown_algorithms_and_options(scorer):
    spec = make_spec(scorer, cells=4)
    with pytest.raises(ConfigError, match="algorithm must be one of"):
        make_search("annealing", genotype=load_genotype("cppn"), spec=spec, batch_size=4,
                    seed=0)
    with pytest.raises(ConfigError, match="emitter_count"):
        make_search("map-elites", genotype=load_genotype("cppn"), spec=spec, batch_size=4,
                    seed=0, options={"emitter_count": 3})
    with pytest.raises(ConfigError, match="`emitters`"):
        MapElites(genotype=load_genotype("cppn"), spec=spec, batch_size=4, seed=0, emitters=5)
    with pytest.raises(ConfigError, match="at least 2 genomes per emitter"):
        MapElites(genotype=load_genotype("cppn"), spec=spec, batch_size=6, seed=0, emitters=4,
                  emitter="cma-me")
