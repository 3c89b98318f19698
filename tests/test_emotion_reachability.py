"""Reachability: gradient ascent over pixels and CPPN genomes on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoemotion.emotion import build_model
from evoemotion.emotion.reachability import (
    ascend,
    genome_ascent,
    pixel_ascent,
    reachability_table,
    targets_of,
)
from evoemotion.errors import ConfigError
from evoemotion.genotypes import load_genotype
from evoemotion.render.differentiable import render_torch


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)  # real ImageNet features (offline) and random heads: outputs vary
    return build_model("efficientnet_lite0", ["categorical", "va"], ["a", "b"], weights="imagenet")


def test_pixel_ascent_moves_every_output_its_way(model):
    start = {r.target.name: r.value for r in pixel_ascent(model, size=32, steps=1, lr=0.0)}
    reached = pixel_ascent(model, size=32, steps=4, lr=0.2)
    assert [r.target.name for r in reached] == [t.name for t in targets_of(model)]
    for r in reached:
        assert r.image.shape == (32, 32, 3) and r.image.dtype == np.uint8
        if r.target.direction == "max":
            assert r.value > start[r.target.name]
        else:
            assert r.value < start[r.target.name]
    assert reached[0].value <= 1.0 and 1.0 <= reached[2].value <= 9.0  # probability, scale


def test_genome_ascent_keeps_genomes_in_bounds_and_tables_both(model):
    genotype = load_genotype("cppn")
    starts = np.stack(genotype.random(np.random.default_rng(0), 2))
    low, high = (np.array(b) for b in zip(*genotype.bounds, strict=True))
    seen = []

    def render(genomes):
        seen.append(genomes.detach().numpy().copy())
        return render_torch(genotype, genomes, 32)

    reached = genome_ascent(model, render, starts, genotype.bounds, 32, steps=3, lr=5.0)
    assert all(((g >= low - 1e-6) & (g <= high + 1e-6)).all() for g in seen)
    assert any((np.isclose(g, low) | np.isclose(g, high)).any() for g in seen[1:])  # clipped
    table = reachability_table({"pixels": reached, "cppn": reached})
    assert table[0] == {"output": "a", "direction": "max", "pixels": reached[0].value,
                        "cppn": reached[0].value}
    with pytest.raises(ConfigError, match="one row per target"):
        ascend(model, torch.zeros(3, 3, 8, 8), torch.sigmoid, targets_of(model), 1, 8, 1, 0.1)
