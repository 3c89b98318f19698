"""The torch CPPN renderer against the Numba kernel, and how gradients flow through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evoemotion.errors import ConfigError, GenomeError
from evoemotion.genotypes import load_genotype
from evoemotion.genotypes.presets import find_preset, read_preset
from evoemotion.render import render
from evoemotion.render.differentiable import render_torch, to_uint8

#: Variations of the bundled presets: every input, colour space, output range and layout.
VARIANTS = (
    {},
    {"inputs": ["x", "y", "r", "angle", "bias"], "output_activation": "sin"},
    {"hidden_layers": 0, "output_range": [0.0, 1.0], "output_activation": "sigmoid"},
    {"activations": ["gauss"], "layer_width": 5, "hidden_layers": 3},
    {"activation_genes": False, "activation_seed": 7, "output_activation": "identity"},
    {"activations": ["abs", "identity", "cos"], "output_range": [-2.0, 3.0]},
)


def _genotype(preset: str, variant: int):
    table = read_preset(find_preset(preset))
    return load_genotype({"name": f"{preset}-v{variant}", **table, **VARIANTS[variant]})


def _level_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max(initial=0))


@settings(max_examples=30, deadline=None)
@given(
    preset=st.sampled_from(["cppn", "cppn-hsv"]),
    variant=st.integers(0, len(VARIANTS) - 1),
    seed=st.integers(0, 2**32 - 1),
    spread=st.sampled_from(["init", "uniform"]),
    height=st.integers(1, 24),
    width=st.integers(1, 24),
)
def test_torch_and_numba_renders_agree_within_one_level(
    preset, variant, seed, spread, height, width
):
    genotype = _genotype(preset, variant)
    rng = np.random.default_rng(seed)
    if spread == "init":
        genomes = np.array(genotype.random(rng, 3))
    else:
        b = genotype.config.weight_max
        genomes = rng.uniform(-b, b, (3, genotype.solution_dim))
    expected = render(genotype, genomes, (height, width))
    for dtype in (torch.float32, torch.float64):
        images = render_torch(genotype, torch.tensor(genomes, dtype=dtype), (height, width))
        assert images.shape == (3, 3, height, width)
        assert images.dtype == dtype
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
        assert _level_diff(to_uint8(images), expected) <= 1


def test_weights_get_gradients_and_activation_genes_do_not():
    genotype = load_genotype("cppn-hsv")
    genomes = torch.tensor(np.array(genotype.random(np.random.default_rng(1), 4)))
    genomes.requires_grad_(True)
    render_torch(genotype, genomes, 16).mean().backward()
    grad = genomes.grad
    assert torch.all(grad[:, genotype.n_weights :] == 0)
    assert torch.count_nonzero(grad[:, : genotype.n_weights]) > genotype.n_weights
    # Each image depends only on its own genome.
    genomes.grad = None
    render_torch(genotype, genomes, 16)[2].sum().backward()
    assert torch.all(genomes.grad[[0, 1, 3]] == 0) and torch.any(genomes.grad[2] != 0)


def test_gradients_match_finite_differences():
    table = read_preset(find_preset("cppn"))
    genotype = load_genotype({"name": "small", **table, "layer_width": 3})
    genomes = torch.tensor(
        np.array(genotype.random(np.random.default_rng(2), 2)) * 0.5, requires_grad=True
    )
    weights = genomes[:, : genotype.n_weights].detach().clone().requires_grad_(True)
    genes = genomes[:, genotype.n_weights :].detach()

    def image(w):
        return render_torch(genotype, torch.cat([w, genes], dim=1), (5, 4))

    assert torch.autograd.gradcheck(image, (weights,), eps=1e-6, atol=1e-5)


def test_non_cppn_genotypes_and_bad_shapes_are_refused():
    with pytest.raises(ConfigError, match="sims.*flat CPPN preset"):
        render_torch(load_genotype("sims"), torch.zeros(1, 3), 8)
    genotype = load_genotype("cppn")
    with pytest.raises(GenomeError, match=f"\\(N, {genotype.solution_dim}\\)"):
        render_torch(genotype, torch.zeros(2, 5), 8)


@pytest.mark.parametrize("variant", [0, 3])  # mixed activations; one activation everywhere
def test_a_batch_renders_as_its_genomes_one_by_one_and_an_empty_batch_is_empty(variant):
    genotype = _genotype("cppn", variant)
    genomes = torch.tensor(np.array(genotype.random(np.random.default_rng(3), 5)))
    batch = render_torch(genotype, genomes, 6)
    alone = torch.cat([render_torch(genotype, genomes[i : i + 1], 6) for i in range(5)])
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-12)
    assert render_torch(genotype, genomes[:0], (6, 4)).shape == (0, 3, 6, 4)
