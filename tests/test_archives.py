"""Archive specs: centroids on the simplex, placement of outputs, rejection, archives."""

from __future__ import annotations

import numpy as np
import pytest

from evoemotion.archives import ArchiveSpec, make_archive_spec, simplex_centroids
from evoemotion.errors import ConfigError
from evoemotion.scoring import Outputs

CLASSES = ["anger", "fear", "joy", "sadness"]
REGRESSIONS = ["valence", "arousal", "dominance"]
SCALES = {**{c: (0.0, 1.0) for c in CLASSES}, **{r: (1.0, 9.0) for r in REGRESSIONS}}


def spec(kind: str, **kwargs) -> ArchiveSpec:
    return make_archive_spec(kind, class_names=CLASSES, regression_names=REGRESSIONS,
                             scales=SCALES, **kwargs)


def outputs(n: int, seed: int = 0, **extra: np.ndarray) -> Outputs:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=n)
    arrays = {name: probs[:, k] for k, name in enumerate(CLASSES)}
    arrays["probs"] = probs
    arrays.update({name: rng.uniform(1, 9, n) for name in REGRESSIONS})
    return Outputs({**arrays, **extra})


def test_simplex_centroids_lie_on_the_simplex_and_follow_the_seed():
    a = simplex_centroids(4, 20, seed=1)
    assert a.shape == (20, 4)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-9)
    assert (a >= 0).all()
    np.testing.assert_array_equal(a, simplex_centroids(4, 20, seed=1))
    assert not np.array_equal(a, simplex_centroids(4, 20, seed=2))


def test_categorical_rows_are_probabilities_with_top_class_objective():
    s = spec("categorical", cells=16)
    out = outputs(6)
    placed = s.objective_and_measures(out)
    np.testing.assert_array_equal(placed.measures, out["probs"])
    np.testing.assert_array_equal(placed.objective, out["probs"].max(axis=1))
    assert placed.source.tolist() == list(range(6)) and not placed.rejected.any()
    assert s.cells == 16 and s.to_dict()["objective"] == "confidence"


def test_non_finite_outputs_reject_the_image_and_nothing_else():
    out = outputs(5)
    probs = out["probs"].copy()
    probs[1, 2] = np.nan
    valence = out["valence"].copy()
    valence[3] = np.inf
    bad = out.with_arrays(probs=probs, joy=probs[:, 2], valence=valence)
    placed = spec("categorical", cells=8).objective_and_measures(bad)
    assert placed.rejected.tolist() == [False, True, False, True, False]
    assert placed.source.tolist() == [0, 2, 4]
    assert np.isfinite(placed.outputs).all()


def test_per_class_adds_every_image_to_every_class_cell():
    s = spec("per-class")
    out = outputs(7, seed=3)
    placed = s.objective_and_measures(out)
    assert len(placed.objective) == 7 * len(CLASSES)
    archive = s.build_archive(solution_dim=2, seed=0)
    solutions = np.arange(14.0).reshape(7, 2)
    archive.add(solution=solutions[placed.source], objective=placed.objective,
                measures=placed.measures, outputs=placed.outputs)
    data = archive.data()
    order = np.argsort(data["index"])
    assert data["index"][order].tolist() == list(range(len(CLASSES)))
    np.testing.assert_allclose(data["objective"][order], out["probs"].max(axis=0))
    best = out["probs"].argmax(axis=0)
    np.testing.assert_array_equal(data["solution"][order], solutions[best])


def test_va_and_vad_grids_use_the_model_scales_and_aesthetic_by_default():
    va = spec("va")
    assert va.measure_names == ["valence", "arousal"] and va.ranges == [(1.0, 9.0)] * 2
    assert va.objective == "aesthetic" and set(va.features) == {"aesthetic"}
    assert spec("vad", cells=5).cells == 125
    out = outputs(3, aesthetic=np.array([0.2, np.nan, 0.9]))
    placed = va.objective_and_measures(out)
    assert placed.rejected.tolist() == [False, True, False]
    np.testing.assert_array_equal(placed.objective, [0.2, 0.9])
    assert va.output_names[-1] == "aesthetic"


def test_measures_grid_over_two_named_outputs():
    s = spec("measures", measures=["fear", "dominance"], cells=4, objective="none")
    out = outputs(4)
    placed = s.objective_and_measures(out)
    np.testing.assert_array_equal(placed.measures[:, 0], out["fear"])
    np.testing.assert_array_equal(placed.measures[:, 1], out["dominance"])
    assert placed.objective.tolist() == [1.0] * 4
    assert s.ranges == [(0.0, 1.0), (1.0, 9.0)] and s.cells == 16


def test_object_genomes_are_stored_as_object_solutions():
    s = spec("va", cells=3)
    archive = s.build_archive(solution_dim=(), seed=0)
    genomes = np.empty(2, dtype=object)
    genomes[0], genomes[1] = ["a", "tree"], {"graph": 1}
    corners = np.array([1.5, 8.5])
    out = outputs(2, aesthetic=np.array([0.5, 0.6]), valence=corners, arousal=corners)
    placed = s.objective_and_measures(out)
    archive.add(solution=genomes[placed.source], objective=placed.objective,
                measures=placed.measures, outputs=placed.outputs)
    data = archive.data()
    stored = dict(zip(data["objective"].tolist(), data["solution"], strict=True))
    assert stored == {0.5: ["a", "tree"], 0.6: {"graph": 1}}


def test_spec_round_trips_through_its_dict():
    s = spec("categorical", cells=8)
    back = ArchiveSpec.from_dict(s.to_dict(), centroids=s.centroids)
    assert back.to_dict() == s.to_dict()
    np.testing.assert_array_equal(back.build_archive(solution_dim=3).centroids, s.centroids)


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("hexagon", {}, "archive must be one of"),
        ("measures", {"measures": ["fear"]}, "two different"),
        ("measures", {"measures": ["fear", "calm"]}, "no output 'calm'"),
        ("va", {"measures": ["fear", "joy"]}, "`measures` goes with `kind` measures"),
        ("per-class", {"cells": 9}, "one cell per class"),
        ("per-class", {"objective": "aesthetic"}, "p_k"),
        ("va", {"objective": "beauty"}, "objective must be one of"),
        ("va", {"cells": 1}, "at least 2"),
    ],
)
def test_bad_specs_fail_with_a_named_reason(kind, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        spec(kind, **kwargs)


def test_categorical_and_confidence_need_a_categorical_head():
    with pytest.raises(ConfigError, match="categorical classifier head"):
        make_archive_spec("categorical", class_names=[], regression_names=REGRESSIONS,
                          scales=SCALES)
    with pytest.raises(ConfigError, match="categorical classifier head"):
        make_archive_spec("va", class_names=[], regression_names=REGRESSIONS, scales=SCALES,
                          objective="confidence")
