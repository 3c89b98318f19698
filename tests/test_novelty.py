"""Novelty search: kNN novelty, local competition, the novelty archive and the DEAP loop."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from deap import tools

from evoemotion.errors import ConfigError
from evoemotion.search.novelty_archive import (
    NoveltyArchive,
    knn,
    mean_novelty,
    novelty_and_competition,
)
from evoemotion.search.novelty_population import NoveltyPopulation


def brute_knn(queries, reference, k, queries_in_reference=False):
    d = np.linalg.norm(queries[:, None, :] - reference[None, :, :], axis=2)
    if queries_in_reference:
        d[np.arange(len(queries)), np.arange(len(queries))] = np.inf
    order = np.argsort(d, axis=1, kind="stable")
    k = min(k, reference.shape[0] - (1 if queries_in_reference else 0))
    return np.take_along_axis(d, order, axis=1)[:, :k]


class VectorGenotype:
    """A minimal genotype over R^2 (behaviour = genome) for exercising the search loop."""

    name = "vector"
    has_crossover = True

    def __init__(self, sigma: float = 0.02) -> None:
        self.sigma = sigma

    def random(self, rng, n):
        return list(rng.uniform(-0.01, 0.01, size=(n, 2)))

    def mutate(self, genome, rng):
        return genome + rng.normal(0.0, self.sigma, size=genome.shape)

    def crossover(self, a, b, rng):
        w = rng.random()
        return w * a + (1 - w) * b, (1 - w) * a + w * b


def run_search(search, generations, objective=lambda b: -np.abs(b).sum(axis=1)):
    for _ in range(generations):
        genomes = search.ask()
        behaviors = np.array(genomes).reshape(len(genomes), -1)
        search.tell(behaviors, objective(behaviors))


def make_search(variant="novelty", seed=3, policy="threshold", **kwargs):
    archive = NoveltyArchive(dim=2, policy=policy, max_size=kwargs.pop("max_size", 200))
    return NoveltyPopulation(genotype=VectorGenotype(), archive=archive, variant=variant,
                         mu=kwargs.pop("mu", 16), lambda_=kwargs.pop("lambda_", 16), k=5,
                         seed=seed, **kwargs)


# -- kNN and novelty ---------------------------------------------------------------------

@pytest.mark.parametrize("inside", [False, True])
def test_knn_matches_brute_force(inside):
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(70, 6))
    queries = reference[:25] if inside else rng.normal(size=(25, 6))
    distances, indices = knn(queries, reference, 7, queries_in_reference=inside)
    np.testing.assert_allclose(distances, brute_knn(queries, reference, 7, inside), atol=1e-9)
    recomputed = np.linalg.norm(queries[:, None] - reference[indices], axis=2)
    np.testing.assert_allclose(distances, recomputed, atol=1e-9)
    if inside:
        assert not (indices == np.arange(25)[:, None]).any()


def test_knn_returns_fewer_neighbours_when_reference_is_small():
    points = np.array([[0.0], [1.0], [3.0]])
    distances, _ = knn(points, points, 10, queries_in_reference=True)
    np.testing.assert_allclose(distances, [[1, 3], [1, 2], [2, 3]])
    assert knn(points[:1], points[:1], 4, queries_in_reference=True)[0].shape == (1, 0)


def test_knn_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="k"):
        knn(np.zeros((2, 2)), np.zeros((3, 2)), 0)
    with pytest.raises(ConfigError, match=r"\(3, 4\)"):
        knn(np.zeros((2, 2)), np.zeros((3, 4)), 1)


def test_novelty_and_local_competition_on_a_line():
    behaviors = np.array([[0.0], [1.0], [2.0], [10.0]])
    objectives = np.array([5.0, 1.0, 3.0, 0.0])
    archive_b, archive_o = np.array([[11.0]]), np.array([7.0])
    novelty, competition = novelty_and_competition(behaviors, objectives, archive_b,
                                                   archive_o, k=2)
    # neighbours: 0 -> 1, 2 ; 1 -> 0, 2 ; 2 -> 1, 0 ; 10 -> 11, 2
    np.testing.assert_allclose(novelty, [1.5, 1.0, 1.5, 4.5])
    np.testing.assert_array_equal(competition, [2, 0, 1, 0])


def test_invalid_individuals_score_zero_and_are_nobodys_neighbour():
    behaviors = np.array([[0.0], [0.1], [np.nan], [5.0]])
    objectives = np.array([1.0, 2.0, 3.0, np.inf])
    novelty, competition = novelty_and_competition(behaviors, objectives, np.zeros((0, 1)),
                                                   np.zeros(0), k=1)
    np.testing.assert_allclose(novelty, [0.1, 0.1, 0.0, 0.0])
    np.testing.assert_array_equal(competition, [0, 1, 0, 0])


# -- the novelty archive -----------------------------------------------------------------

def test_threshold_policy_adds_novel_and_adapts_threshold():
    archive = NoveltyArchive(dim=1, threshold=1.0, add_high=2, stall_generations=2)
    rng = np.random.default_rng(0)
    b = np.arange(5.0)[:, None]
    assert archive.offer(b, np.zeros(5), np.array([0.5, 1.0, 2.0, 0.1, 3.0]), rng) == 3
    np.testing.assert_array_equal(archive.behaviors[:, 0], [1, 2, 4])
    assert archive.threshold == pytest.approx(1.2)       # 3 > add_high: raised by 20 %
    for _ in range(2):
        assert archive.offer(b, np.zeros(5), np.full(5, 0.5), rng) == 0
    assert archive.threshold == pytest.approx(1.2 * 0.95)  # two empty generations: lowered


def test_automatic_threshold_starts_at_first_mean_novelty():
    archive = NoveltyArchive(dim=1, threshold=None, add_high=10)
    archive.offer(np.zeros((4, 1)), np.zeros(4), np.array([1.0, 2.0, 3.0, 6.0]),
                  np.random.default_rng(0))
    assert archive.threshold == pytest.approx(3.0)
    assert len(archive) == 2


def test_random_policy_rate_cap_and_invalid_rows():
    archive = NoveltyArchive(dim=2, policy="random", add_prob=0.25, max_size=100)
    rng = np.random.default_rng(1)
    behaviors = rng.normal(size=(1000, 2))
    behaviors[::2, 0] = np.nan
    replay = np.random.default_rng(1)
    replay.normal(size=(1000, 2))
    chosen = np.isfinite(behaviors[:, 0]) & (replay.random(1000) < 0.25)
    added = archive.offer(behaviors, np.zeros(1000), np.ones(1000), rng)
    assert added == chosen.sum() and 90 < added < 160   # ~ 0.25 of the 500 valid rows
    np.testing.assert_array_equal(archive.behaviors, behaviors[chosen][-100:])  # capped


def test_cap_drops_oldest_entries():
    archive = NoveltyArchive(dim=1, threshold=0.5, max_size=3, add_high=100)
    rng = np.random.default_rng(0)
    for start in (0.0, 10.0):
        archive.offer(np.arange(start, start + 2)[:, None], np.zeros(2), np.ones(2), rng)
    np.testing.assert_array_equal(archive.behaviors[:, 0], [1.0, 10.0, 11.0])
    assert archive.total_added == 4


@pytest.mark.parametrize("kwargs, field", [
    ({"policy": "fifo"}, "policy"), ({"threshold": 0.0}, "threshold"),
    ({"add_prob": 1.5}, "probability"), ({"max_size": 0}, "cap"),
])
def test_archive_rejects_bad_settings(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        NoveltyArchive(dim=2, **kwargs)


# -- the DEAP loop -----------------------------------------------------------------------

def test_novelty_selection_covers_far_more_behaviour_space_than_random_selection():
    def cells_visited(search):
        visited = set()
        for _ in range(30):
            genomes = search.ask()
            behaviors = np.array(genomes)
            visited.update(map(tuple, np.floor(behaviors / 0.05).astype(int)))
            search.tell(behaviors, np.zeros(len(genomes)))
        return len(visited)

    control = make_search()
    control.toolbox.register("select", tools.selRandom)   # same loop, selection blind
    novelty = make_search()
    assert cells_visited(novelty) > 2 * cells_visited(control)
    assert len(novelty.archive) > 0 and novelty.generation == 30


def test_nslc_keeps_the_first_pareto_front_of_parents_and_offspring():
    search = make_search("nslc")
    run_search(search, 3)
    parents = list(search.population)
    genomes = search.ask()
    offspring = list(search._offspring)
    behaviors = np.array(genomes)
    objectives = -np.abs(behaviors).sum(axis=1)
    search.tell(behaviors, objectives)
    pool = parents + offspring
    fits = np.array([ind.fitness.values for ind in pool])
    assert fits.shape == (len(pool), 2)
    dominated = ((fits[None, :, :] >= fits[:, None, :]).all(2)
                 & (fits[None, :, :] > fits[:, None, :]).any(2)).any(1)
    front = [ind for ind, d in zip(pool, dominated, strict=True) if not d]
    assert len(front) <= search.mu
    assert all(any(ind is p for p in search.population) for ind in front)


def test_nslc_local_competition_favours_better_objective_than_plain_novelty():
    def objective(b):
        return -np.abs(b[:, 0])             # best on the vertical axis x = 0

    finals = {}
    for variant in ("novelty", "nslc"):
        search = make_search(variant, seed=5)
        run_search(search, 25, objective)
        finals[variant] = np.mean([ind.objective for ind in search.population])
    assert finals["nslc"] > finals["novelty"]


def test_search_is_deterministic_and_leaves_global_random_alone():
    random.seed(123)
    before = random.getstate()
    a, b = make_search("nslc", seed=9), make_search("nslc", seed=9)
    run_search(a, 6)
    assert random.getstate() == before
    run_search(b, 6)
    np.testing.assert_array_equal(np.array([i.genome for i in a.population]),
                                  np.array([i.genome for i in b.population]))
    other = make_search("nslc", seed=10)
    run_search(other, 6)
    assert not np.array_equal(np.array([i.genome for i in a.population]),
                              np.array([i.genome for i in other.population]))


@pytest.mark.parametrize("variant, policy", [("novelty", "threshold"), ("nslc", "random")])
def test_pickled_and_resumed_equals_uninterrupted(variant, policy):
    straight = make_search(variant, seed=4, policy=policy, max_size=20)
    run_search(straight, 10)
    first = make_search(variant, seed=4, policy=policy, max_size=20)
    run_search(first, 4)
    resumed = pickle.loads(pickle.dumps(first))
    random.seed(999)                       # a disturbed global stream must not matter
    run_search(resumed, 6)
    for x, y in ((straight, resumed),):
        np.testing.assert_array_equal(np.array([i.genome for i in x.population]),
                                      np.array([i.genome for i in y.population]))
        np.testing.assert_array_equal(x.archive.behaviors, y.archive.behaviors)
        assert x.archive.threshold == y.archive.threshold
        assert x.generation == y.generation == 10


def test_reproduction_copies_are_not_asked_again():
    search = make_search(crossover_prob=0.0, mutation_prob=0.5)
    run_search(search, 1)
    genomes = search.ask()
    assert 0 < len(genomes) < search.lambda_
    search.tell(np.array(genomes), np.zeros(len(genomes)))
    assert len(search.population) == search.mu


def test_loop_misuse_is_reported():
    search = make_search()
    with pytest.raises(ConfigError, match="before ask"):
        search.tell(np.zeros((1, 2)), np.zeros(1))
    genomes = search.ask()
    with pytest.raises(ConfigError, match="again before tell"):
        search.ask()
    with pytest.raises(ConfigError, match=f"asked {len(genomes)}"):
        search.tell(np.zeros((3, 2)), np.zeros(3))


def test_crossover_on_a_genotype_without_it_is_refused():
    genotype = VectorGenotype()
    genotype.has_crossover = False
    with pytest.raises(ConfigError, match="no crossover"):
        NoveltyPopulation(genotype=genotype, archive=NoveltyArchive(dim=2), crossover_prob=0.5)
    search = NoveltyPopulation(genotype=genotype, archive=NoveltyArchive(dim=2))
    assert search.crossover_prob == 0.0 and search.mutation_prob == 1.0


def test_mean_novelty_of_a_point_set():
    square = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert mean_novelty(square, 2) == pytest.approx(1.0)
    assert mean_novelty(square * 3, 1) == pytest.approx(3.0)
    assert mean_novelty(square[:1], 3) == 0.0


# -- run states on real genotypes, classifier and result archives ------------------------

CLASSES = ["anger", "fear", "joy"]


@pytest.fixture(scope="module")
def scorer():
    import torch

    from evoemotion.emotion import build_model
    from evoemotion.scoring import Scorer

    torch.manual_seed(0)
    model = build_model("resnet18", ["categorical", "vad"], CLASSES, weights="none")
    return Scorer([model], device="cpu", size=32, batch_size=8)


def make_spec(scorer, kind="categorical", **kwargs):
    from evoemotion.archives import make_archive_spec

    if kind in ("categorical", "va", "vad", "measures"):
        kwargs.setdefault("cells", 6)
    return make_archive_spec(kind, class_names=scorer.class_names,
                             regression_names=scorer.regression_names, scales=scorer.scales,
                             **kwargs)


def step_run(state, scorer, iterations):
    from evoemotion.pipeline import Evaluator

    evaluator = Evaluator(state.genotype, scorer, render_size=32, features=state.spec.features)
    rows = [state.step(evaluator) for _ in range(iterations)]
    evaluator.close()
    return rows


@pytest.mark.parametrize("genotype_name", ["cppn", "sims", "cppn-neat"])
@pytest.mark.parametrize("algorithm", ["novelty", "nslc"])
def test_novelty_runs_evolve_every_genotype_into_the_result_archive(scorer, genotype_name,
                                                                     algorithm):
    from evoemotion.genotypes import load_genotype
    from evoemotion.search import make_search

    genotype = load_genotype(genotype_name)
    state = make_search(algorithm, genotype=genotype, spec=make_spec(scorer), batch_size=6,
                        seed=1, options={"k": 3})
    rows = step_run(state, scorer, 3)
    assert [r["evaluations"] for r in rows] == [6, 12, 18]
    assert len(state.archive) >= 1 and rows[-1]["coverage"] == len(state.archive) / 6
    assert rows[-1]["novelty_archive"] == len(state.population.archive) >= 1
    assert rows[-1]["novelty_mean"] > 0
    assert len(state.population.population) == 6
    assert all(genotype.to_dict(ind.genome)["kind"] == genotype.kind
               for ind in state.population.population)
    fitness_size = 2 if algorithm == "nslc" else 1
    assert all(len(ind.fitness.values) == fitness_size for ind in state.population.population)


@pytest.mark.parametrize("kind, measures, behavior, dim", [
    ("categorical", None, "measures", 3),
    ("per-class", None, "measures", 3),
    ("va", None, "measures", 2),
    ("vad", None, "vad", 3),
    ("measures", ["fear", "dominance"], "measures", 2),
    ("va", None, "probs", 3),
    ("categorical", None, "embedding", None),
])
def test_every_archive_kind_and_behaviour(scorer, kind, measures, behavior, dim):
    from evoemotion.genotypes import load_genotype
    from evoemotion.search import NoveltySearch

    spec = make_spec(scorer, kind, measures=measures)
    state = NoveltySearch(genotype=load_genotype("cppn"), spec=spec, batch_size=5, seed=0,
                          behavior=behavior, k=2, novelty_policy="random",
                          novelty_add_prob=1.0)
    step_run(state, scorer, 2)
    behaviors = state.population.archive.behaviors
    expected = scorer.models[0].embedding_dim if dim is None else dim
    assert behaviors.shape == (10, expected)
    assert len(state.archive) >= 1


def test_behaviour_descriptors_and_objectives_come_from_the_outputs(scorer):
    from evoemotion.genotypes import load_genotype
    from evoemotion.pipeline import Evaluator
    from evoemotion.search.novelty import behavior_descriptors, solution_objectives

    genotype = load_genotype("cppn")
    evaluator = Evaluator(genotype, scorer, render_size=32)
    out = evaluator.evaluate(genotype.random(np.random.default_rng(0), 4))
    evaluator.close()
    spec = make_spec(scorer, "per-class")
    np.testing.assert_allclose(behavior_descriptors(out, spec, "measures"), out["probs"])
    np.testing.assert_allclose(behavior_descriptors(out, spec, "vad"),
                               out.table(["valence", "arousal", "dominance"]))
    placement = spec.objective_and_measures(out)
    np.testing.assert_allclose(solution_objectives(placement, 4), out["probs"].max(axis=1))
    with pytest.raises(ConfigError, match="behavior must be one of"):
        behavior_descriptors(out, spec, "pixels")


def test_rejected_images_get_no_novelty_and_stay_out_of_both_archives(scorer):
    from evoemotion.genotypes import load_genotype
    from evoemotion.search import NSLCSearch

    preset = {**load_genotype("cppn").preset, "init_std": 0.0}
    state = NSLCSearch(genotype=load_genotype(preset), spec=make_spec(scorer, "va"),
                       batch_size=4, seed=0, k=2)
    rows = step_run(state, scorer, 1)
    assert rows[0]["rejected"] == 4 and len(state.archive) == 0
    assert len(state.population.archive) == 0 and rows[0]["novelty_max"] == 0.0


@pytest.fixture(scope="module")
def classifier_path(scorer, tmp_path_factory):
    from evoemotion.emotion import save_model

    return str(save_model(scorer.models[0], tmp_path_factory.mktemp("clf") / "model.pt"))


@pytest.mark.parametrize("algorithm, genotype_name, policy", [
    ("novelty", "cppn", "threshold"), ("nslc", "sims", "random"),
])
def test_resumed_run_equals_uninterrupted_run(tmp_path, classifier_path, algorithm,
                                             genotype_name, policy):
    from evoemotion.experiment import RunConfig, resume_run, start_run
    from evoemotion.runs import run_iterations

    config = RunConfig(genotype=genotype_name, archive="va", algorithm=algorithm, cells=5,
                       classifiers=[classifier_path], device="cpu", iterations=4,
                       batch_size=5, chunk_size=5, render_size=32, score_size=32, seed=7,
                       options={"k": 3, "novelty_policy": policy, "novelty_cap": 8})

    def finish(run, iterations):
        assert run_iterations(run.folder, run.state, run.evaluator, iterations=iterations,
                              checkpoint_every=1)
        run.close()
        return run.state

    straight = finish(start_run(config, tmp_path / "straight"), 4)
    finish(start_run(config, tmp_path / "split"), 2)
    random.seed(0)                                        # another process, another state
    resumed = finish(resume_run(tmp_path / "split"), 4)
    assert resumed.iteration == straight.iteration == 4
    for name in ("index", "objective", "measures"):
        np.testing.assert_array_equal(straight.archive.data(name),
                                      resumed.archive.data(name))
    pops = [[state.genotype.to_text(i.genome) for i in state.population.population]
            for state in (straight, resumed)]
    assert pops[0] == pops[1]
    np.testing.assert_array_equal(straight.population.archive.behaviors,
                                  resumed.population.archive.behaviors)
    np.testing.assert_equal([{k: v for k, v in r.items() if k != "wall_time"}
                             for r in straight.metrics],
                            [{k: v for k, v in r.items() if k != "wall_time"}
                             for r in resumed.metrics])
    header = (tmp_path / "split" / "metrics.csv").read_text().splitlines()[0]
    assert "novelty_mean" in header and len(
        (tmp_path / "split" / "metrics.csv").read_text().splitlines()) == 5


def test_command_line_runs_and_resumes_nslc(tmp_path, classifier_path, capsys):
    import json

    from evoemotion.cli import main

    folder = tmp_path / "nslc"
    common = ["--device", "cpu", "--no-export"]
    argv = ["run", "--algorithm", "nslc", "--genotype", "cppn-neat", "--archive", "vad",
            "--cells", "3", "--behavior", "embedding", "-k", "4", "--mu", "6",
            "--novelty-archive", "random", "--novelty-add-prob", "0.5", "--novelty-cap", "none",
            "--iterations", "2", "--batch-size", "4", "--chunk-size", "4", "--render-size",
            "32", "--score-size", "32", "--out", str(folder), "--classifier", classifier_path,
            *common]
    assert main(argv) == 0
    options = json.loads((folder / "config.json").read_text())["run"]["options"]
    assert options["behavior"] == "embedding" and options["k"] == 4 and options["mu"] == 6
    assert options["novelty_cap"] is None and options["novelty_policy"] == "random"
    assert main(["resume", str(folder), "--iterations", "3", *common]) == 0
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].endswith("novelty_threshold")
    assert rows[-1].split(",")[:2] == ["3", "14"]           # mu = 6 first, then 4 a time
    capsys.readouterr()
    bad = ["run", "--algorithm", "novelty", "--behavior", "pixels", "--iterations", "1",
           "--out", str(tmp_path / "bad"), "--classifier", classifier_path, *common]
    with pytest.raises(SystemExit) as stopped:                  # argparse: the choices
        main(bad)
    assert stopped.value.code == 2
    assert "invalid choice: 'pixels'" in capsys.readouterr().err
