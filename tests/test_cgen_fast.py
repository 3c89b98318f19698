"""The conditional generator's fast rendering path: its images through the Numba renderer.

A generator's images as node programs (:meth:`ConditionalCPPN.programs`) must be what the
numpy reference evaluates from the same programs, bit for bit, and what torch renders up to
the renderer's float32 approximations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evoemotion.cgen import Architecture, ConditionalGenerator, TargetSpace
from evoemotion.errors import ConfigError
from evoemotion.render import render_program
from evoemotion.render.reference import coordinates, eval_graph, to_uint8

SPACE = TargetSpace("va", ("valence", "arousal"), ((1.0, 9.0), (1.0, 9.0)))


def _generator() -> ConditionalGenerator:
    generator = ConditionalGenerator(SPACE, Architecture(hidden=12, depth=3, embed_dim=8))
    with torch.no_grad():  # the modulation starts at zero: make it matter
        for film in generator.net.films:
            film.weight.normal_(0, 0.5)
            film.bias.normal_(0, 0.5)
    return generator


def test_programs_render_as_the_reference_evaluates_them():
    generator = _generator()
    targets = torch.tensor([[2.0, 8.0], [7.0, 3.0]])
    embedding = generator.embedding(targets, generator.latents(2, 1))
    programs = generator.net.programs(generator.program_weights(embedding))
    images = render_program(programs, (12, 20), output_range=(0.0, 1.0))
    coords = coordinates(12, 20)
    inputs = ("x", "y", "r", "bias")
    for i, image in enumerate(images):
        ptr, src, weight = programs.ptr[i], programs.src[i], programs.weight[i]
        nodes = [
            (
                k,
                int(programs.act[i, k]),
                [(int(src[e]), float(weight[e])) for e in range(ptr[k], ptr[k + 1])],
            )
            for k in range(len(inputs), programs.n_slots[i])
        ]
        channels = eval_graph(inputs, nodes, programs.outputs[i].tolist(), coords)
        np.testing.assert_array_equal(image, to_uint8(channels, "rgb", (0.0, 1.0)))


def test_numba_and_torch_renderers_agree():
    generator = _generator()
    targets = np.array([[1.5, 8.5], [5.0, 5.0], [8.0, 2.0]])
    z = generator.latents(3, 2)
    fast = generator.render(targets, z, (40, 56)).astype(int)  # auto: numba on the CPU
    exact = generator.render(targets, z, (40, 56), renderer="torch").astype(int)
    assert fast.std() > 10  # a real picture, not a flat field
    assert np.abs(fast - exact).max() <= 2
    assert np.mean(fast != exact) < 0.01


def test_unknown_renderer_is_refused():
    generator = _generator()
    with pytest.raises(ConfigError, match="renderer"):
        generator.render([[5.0, 5.0]], generator.latents(1), 8, renderer="opengl")
