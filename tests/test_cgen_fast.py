"""The conditional generator's fast paths: the folded classifier and the Numba renderer.

* :func:`~evoemotion.emotion.frozen.folded_copy` must give the classifier's outputs and
  input gradients (what generator training back-propagates), leave the model itself alone,
  and refuse a fold that would change the outputs;
* a generator's images as node programs (:meth:`ConditionalCPPN.programs`) must be what the
  numpy reference evaluates from the same programs, bit for bit, and what torch renders up
  to the renderer's float32 approximations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from evoemotion.cgen import Architecture, ConditionalGenerator, TargetSpace
from evoemotion.emotion.frozen import folded_copy
from evoemotion.errors import ConfigError
from evoemotion.render import render_program
from evoemotion.render.reference import coordinates, eval_graph, to_uint8

SPACE = TargetSpace("va", ("valence", "arousal"), ((1.0, 9.0), (1.0, 9.0)))


class _ConvNet(nn.Module):
    """conv -> BN -> ReLU -> conv -> BN, pooled; ``shortcut`` also adds the first conv's
    raw output (read by something besides its batch norm: folding it would be wrong)."""

    def __init__(self, shortcut: bool) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        for bn in (self.bn1, self.bn2):  # non-trivial running statistics and affine terms
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.uniform_(bn.bias, -0.5, 0.5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        first = self.conv1(x)
        h = torch.relu(self.bn1(first))
        if self.shortcut:
            h = h + first
        return {"embedding": self.bn2(self.conv2(h)).mean(dim=(2, 3))}


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _input_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (model(x)["embedding"] ** 2).sum().backward()
    return x.grad


def test_folded_copy_keeps_outputs_and_input_gradients():
    torch.manual_seed(0)
    model = _ConvNet(shortcut=False).eval()
    x = torch.rand(4, 3, 16, 16)
    folded = folded_copy(model, x[:2])
    assert _norms(folded) == 0 and _norms(model) == 2
    assert not any(p.requires_grad for p in folded.parameters())
    with torch.no_grad():
        assert torch.allclose(folded(x)["embedding"], model(x)["embedding"], atol=1e-5)
    assert torch.allclose(_input_gradient(folded, x), _input_gradient(model, x), atol=1e-5)


def test_folded_copy_refuses_a_fold_that_changes_the_outputs():
    torch.manual_seed(0)
    model = _ConvNet(shortcut=True).eval()
    x = torch.rand(4, 3, 16, 16)
    copy = folded_copy(model, x[:2])
    assert _norms(copy) == 2 and copy is not model
    with torch.no_grad():
        assert torch.equal(copy(x)["embedding"], model(x)["embedding"])


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
    programs = generator.net.programs(generator.embedding(targets, generator.latents(2, 1)))
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
