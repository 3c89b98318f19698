"""Jacobians of the archive's objective and measures through render, scoring and classifier,
against finite differences; the torch render path of the Evaluator against the Numba one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoemotion.archives import make_archive_spec
from evoemotion.errors import ConfigError
from evoemotion.genotypes import load_genotype
from evoemotion.genotypes.presets import find_preset, read_preset
from evoemotion.gradients import outputs_and_jacobian
from evoemotion.pipeline import Evaluator
from evoemotion.render.differentiable import render_torch
from evoemotion.scoring import Scorer


def spec_for(scorer, kind, **kwargs):
    return make_archive_spec(
        kind,
        class_names=scorer.class_names,
        regression_names=scorer.regression_names,
        scales=scorer.scales,
        **kwargs,
    )


@pytest.fixture(scope="module")
def small_cppn():
    table = read_preset(find_preset("cppn-hsv"))
    return load_genotype({"name": "small", **table, "hidden_layers": 1, "layer_width": 3})


@pytest.fixture(scope="module")
def scorer64(tiny_emotion_model):
    # An ensemble of two float64 models, with two crops: every averaging step is on the path.
    models = [tiny_emotion_model(seed, torch.float64) for seed in range(2)]
    return Scorer(models, device="cpu", crops=2, size=12, batch_size=64)


@pytest.mark.parametrize(
    ("kind", "rows"), [("categorical", None), ("va", None), ("per-class", [2, 0])]
)
def test_jacobian_matches_central_finite_differences(small_cppn, scorer64, kind, rows):
    spec = spec_for(
        scorer64, kind, objective="confidence", **({"cells": 6} if kind == "categorical" else {})
    )
    genomes = np.array(small_cppn.random(np.random.default_rng(4), 2)) * 0.7
    rows = None if rows is None else np.array(rows)

    _, base, jacobian = outputs_and_jacobian(
        small_cppn, scorer64, spec, genomes, render_size=8, rows=rows, dtype=torch.float64
    )
    assert jacobian.shape == (2, 1 + len(spec.ranges), small_cppn.solution_dim)
    # Every +-eps perturbation of every weight of both genomes, in one batch.
    eps, d = 1e-5, small_cppn.n_weights
    steps = np.zeros((2, d, 2, small_cppn.solution_dim))
    steps[:, np.arange(d), 0, np.arange(d)] = eps
    steps[:, np.arange(d), 1, np.arange(d)] = -eps
    perturbed = (genomes[:, None, None, :] + steps).reshape(-1, small_cppn.solution_dim)
    wanted = None if rows is None else np.repeat(rows, 2 * d)
    _, values, _ = outputs_and_jacobian(
        small_cppn, scorer64, spec, perturbed, render_size=8, rows=wanted, dtype=torch.float64
    )
    values = values.reshape(2, d, 2, -1)
    numeric = np.zeros_like(jacobian)
    numeric[:, :, :d] = ((values[:, :, 0] - values[:, :, 1]) / (2 * eps)).transpose(0, 2, 1)
    scale = np.abs(numeric).max()
    assert scale > 1e-6
    np.testing.assert_allclose(jacobian, numeric, atol=1e-4 * scale, rtol=1e-3)
    assert np.all(jacobian[:, :, small_cppn.n_weights :] == 0)  # activation genes held fixed
    if kind == "per-class":
        # Row k of an image is p_k: the objective is the probability of the asked class.
        with torch.no_grad():
            images = render_torch(small_cppn, torch.tensor(genomes), 8)
            probs = scorer64.forward(images)["probs"].numpy()
        np.testing.assert_allclose(base[:, 0], probs[[0, 1], rows], rtol=1e-12)
        assert np.all(jacobian[:, 1] == 0)  # the cell's measure is a constant


def test_aesthetic_has_no_gradient_and_sims_no_torch_renderer(scorer64, small_cppn):
    spec = spec_for(scorer64, "va")  # objective aesthetic by default on grids
    genomes = np.zeros((1, small_cppn.solution_dim))
    with pytest.raises(ConfigError, match="'aesthetic' has no gradient"):
        outputs_and_jacobian(
            small_cppn, scorer64, spec, genomes, render_size=8, dtype=torch.float64
        )
    with pytest.raises(ConfigError, match="no differentiable renderer.*cppn-hsv"):
        outputs_and_jacobian(load_genotype("sims"), scorer64, spec, genomes, render_size=8)


def test_torch_render_path_scores_like_the_numba_path(tiny_emotion_model):
    scorer = Scorer([tiny_emotion_model()], device="cpu", size=32, batch_size=4)
    genotype = load_genotype("cppn")
    genomes = np.array(genotype.random(np.random.default_rng(0), 6))
    numba = Evaluator(genotype, scorer, render_size=32, chunk_size=4)
    on_device = Evaluator(genotype, scorer, render_size=32, chunk_size=4, renderer="torch")
    assert numba.renderer == "numba" and on_device.renderer == "torch"
    a = numba.evaluate(genomes, keep_images=True)
    b = on_device.evaluate(genomes, keep_images=True)
    assert np.abs(a.images.astype(int) - b.images).max() <= 1
    for name in a.names:
        np.testing.assert_allclose(a[name], b[name], atol=1e-3)
    numba.close()
    on_device.close()
    with pytest.raises(ConfigError, match="renderer must be one of"):
        Evaluator(genotype, scorer, renderer="opengl")
    with pytest.raises(ConfigError, match="no differentiable renderer"):
        Evaluator(load_genotype("sims"), scorer, renderer="torch")


@pytest.mark.parametrize("renderer", ["numba", "torch"])
def test_evaluator_jacobian_scores_what_evaluate_scores_in_the_same_pass(
    tiny_emotion_model, renderer
):
    from evoemotion.archives import IMAGE_FEATURES

    scorer = Scorer([tiny_emotion_model()], device="cpu", size=32, batch_size=4)
    genotype = load_genotype("cppn")
    genomes = np.array(genotype.random(np.random.default_rng(3), 6))  # two chunks of 4 and 2
    spec = spec_for(scorer, "va", objective="confidence", cells=4)
    evaluator = Evaluator(
        genotype, scorer, render_size=32, chunk_size=4, renderer=renderer, features=IMAGE_FEATURES
    )
    out, jacobian = evaluator.jacobian(genomes, spec)
    expected = evaluator.evaluate(genomes)
    assert sorted(out.names) == sorted(expected.names) and "aesthetic" in out.names
    for name in expected.names:  # the same 8-bit images, scored with gradients on
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-5, atol=1e-6)
    # The gradient at the 8-bit images is that of the unrounded renders up to the rounding.
    *_, unrounded = outputs_and_jacobian(genotype, scorer, spec, genomes, render_size=32)
    assert jacobian.shape == unrounded.shape == (6, 3, genotype.solution_dim)
    scale = np.abs(unrounded).max(axis=2, keepdims=True)
    assert np.all(scale > 0)
    assert np.abs(jacobian - unrounded).max() < 0.05 * scale.max()
    assert not np.array_equal(jacobian, unrounded)  # evaluated at the rounded images
    evaluator.close()
    plain = Evaluator(genotype, scorer, render_size=32, renderer=renderer)
    empty, none = plain.jacobian(genomes[:0], spec)
    assert len(empty) == 0 and none.shape == (0, 3, genotype.solution_dim)
    plain.close()


@pytest.mark.parametrize(
    ("kind", "objective", "passes"),
    [("va", "confidence", 3), ("va", "none", 2), ("per-class", "confidence", 1)],
)
def test_one_backward_pass_per_value_with_a_gradient(
    small_cppn, scorer64, monkeypatch, kind, objective, passes
):
    # Constants (objective none, the per-class cell measure) get their zero rows for free.
    spec = spec_for(scorer64, kind, objective=objective, **({"cells": 3} if kind == "va" else {}))
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or grad(*a, **k))
    genomes = np.array(small_cppn.random(np.random.default_rng(5), 2))
    rows = np.array([2, 2]) if kind == "per-class" else None
    _, values, jacobian = outputs_and_jacobian(
        small_cppn, scorer64, spec, genomes, render_size=8, rows=rows, dtype=torch.float64
    )
    assert len(calls) == passes
    constant = np.all(values == values[:1], axis=0)  # the same value for both genomes
    assert np.all(jacobian[:, constant] == 0)
    assert np.all(np.abs(jacobian[:, ~constant, : small_cppn.n_weights]).max(axis=2) > 0)
