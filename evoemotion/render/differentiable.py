"""A torch renderer for the flat-vector CPPN genotypes: differentiable, batched, on any device.

:func:`render_torch` evaluates the same network as the Numba kernel
(:func:`evoemotion.render.kernels.render_graphs`) for kind ``cppn`` genomes (the ``cppn`` and
``cppn-hsv`` presets and any preset of that kind): the preset's input coordinates, dense layers,
per-node activations, the output mapping ``(v - lo) / (hi - lo)`` clamped to [0, 1] and the HSV
to RGB conversion. It returns float images in [0, 1] instead of uint8, so gradients flow from
pixels back to the genome. Rounded as the Numba path rounds (``floor(255 t + 1/2)``), the two
agree within one level of 255 (``tests/test_render_torch.py``): a genome found with gradients
re-renders with the Numba path as a poster.

Activations use torch's exact functions (the Numba kernel uses float32 polynomial
approximations of them, which differ by far less than a level), with the kernel's argument
clamps, so neither path overflows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import torch

from evoemotion.errors import ConfigError
from evoemotion.render import approx as A
from evoemotion.render.ops import ACTIVATION_CODES, ACTIVATIONS
from evoemotion.render.reference import color_scale, coordinates

if TYPE_CHECKING:
    from evoemotion.genotypes.base import Genotype

__all__ = ["DIFFERENTIABLE_KINDS", "check_differentiable", "render_torch", "to_uint8"]

#: Genotype kinds :func:`render_torch` renders (flat-vector CPPNs).
DIFFERENTIABLE_KINDS = ("cppn",)

Tensor = torch.Tensor

#: torch definition of every CPPN activation, by name (clamps as in the Numba kernel).
_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": lambda z: z,
    "sin": lambda z: torch.sin(z.clamp(-float(A.TRIG_LIMIT), float(A.TRIG_LIMIT))),
    "cos": lambda z: torch.cos(z.clamp(-float(A.TRIG_LIMIT), float(A.TRIG_LIMIT))),
    "gauss": lambda z: torch.exp(-(z * z).clamp(max=float(A.GAUSS_LIMIT))),
    "sigmoid": lambda z: torch.sigmoid(z.clamp(-float(A.SIGMOID_LIMIT), float(A.SIGMOID_LIMIT))),
    "tanh": lambda z: torch.tanh(z.clamp(-float(A.TANH_LIMIT), float(A.TANH_LIMIT))),
    "abs": torch.abs,
}
_BY_CODE = tuple(_ACTIVATIONS[name] for name in ACTIVATIONS)


def check_differentiable(genotype: Genotype) -> None:
    """Raise unless ``genotype`` has a torch renderer.

    Raises:
        ConfigError: naming the genotype and the kinds that work.
    """
    if genotype.kind not in DIFFERENTIABLE_KINDS:
        raise ConfigError(
            f"genotype '{genotype.name}' (kind {genotype.kind}) has no differentiable renderer; "
            f"use a flat CPPN preset (kind {', '.join(DIFFERENTIABLE_KINDS)}: e.g. cppn, cppn-hsv)"
        )


@functools.lru_cache(maxsize=16)
def _input_grid(inputs: tuple[str, ...], height: int, width: int) -> Tensor:
    """The preset's inputs as float32 (n_in, H * W), exactly the Numba kernel's coordinates."""
    coords = coordinates(height, width)
    return torch.from_numpy(np.stack([coords[name].ravel() for name in inputs]))


def _activate(z: Tensor, codes: np.ndarray) -> Tensor:
    """Apply per-node activations: ``z`` (N, out, P), ``codes`` int (N, out).

    The rows are gathered once in code order, each activation runs on its contiguous slice
    and one gather puts them back: two row gathers per layer whatever the number of
    activations (a masked copy per activation would copy the whole layer each time, in
    the forward and the backward pass).
    """
    n, width, pixels = z.shape
    codes = codes.reshape(-1)
    present, counts = np.unique(codes, return_counts=True)
    if len(present) < 2:  # one activation for every node, or no genome at all
        return _BY_CODE[int(present[0])](z) if len(present) else z
    order = np.argsort(codes, kind="stable")
    grouped = z.reshape(n * width, pixels).index_select(0, torch.from_numpy(order).to(z.device))
    parts = grouped.split(counts.tolist())
    result = torch.cat([_BY_CODE[int(c)](part) for c, part in zip(present, parts, strict=True)])
    back = torch.from_numpy(np.argsort(order)).to(z.device)
    return result.index_select(0, back).reshape(n, width, pixels)


def _hsv_channel(n: float, h6: Tensor, s: Tensor, v: Tensor) -> Tensor:
    k = n + h6
    k = torch.where(k < 6.0, k, k - 6.0)
    m = torch.minimum(k, 4.0 - k)
    return v - v * s * m.clamp(0.0, 1.0)


def render_torch(
    genotype: Genotype,
    genomes: Tensor | np.ndarray | Sequence[Sequence[float]],
    size: int | Sequence[int],
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Render flat CPPN genomes to float RGB images, differentiably.

    Gradients: the weights (the first ``genotype.n_weights`` genes) are differentiated. The
    activation genes that follow them pick each hidden node's activation from equal bins
    of the gene's range: a step function, so they are read as discrete choices, held fixed,
    and their gradient is exactly zero. Clamps (the argument clamps of sin, cos, exp, tanh,
    sigmoid and the final clamp of each channel to [0, 1]) pass no gradient where they bind;
    ``abs`` has gradient 0 at 0.

    Args:
        genotype: a genotype of kind ``cppn`` (see :data:`DIFFERENTIABLE_KINDS`).
        genomes: (N, solution_dim) float tensor of genome vectors (numpy arrays are
            converted). The images come out on its device and in its floating dtype.
        size: side length in pixels, or ``(height, width)``.
        dtype: compute in this floating dtype instead (default: the genomes' dtype, float32
            for non-float input).
        device: move the genomes here first (default: where they are).

    Returns:
        Float tensor (N, 3, H, W) in [0, 1]; RGB whatever the preset's colour space.

    Raises:
        ConfigError: the genotype is not a flat CPPN, or ``size`` is invalid.
        GenomeError: the genomes are not (N, solution_dim).
    """
    from evoemotion.errors import GenomeError
    from evoemotion.render import image_size

    check_differentiable(genotype)
    height, width = image_size(size)
    x = torch.as_tensor(genomes, device=device)
    if dtype is None:
        dtype = x.dtype if x.is_floating_point() else torch.float32
    x = x.to(dtype)
    if x.ndim != 2 or x.shape[1] != genotype.solution_dim:
        raise GenomeError(
            f"cppn genomes must be (N, {genotype.solution_dim}) for preset '{genotype.name}', "
            f"got {tuple(x.shape)}"
        )
    n = x.shape[0]
    config = genotype.config
    hidden = genotype.hidden_codes(x.detach().cpu().numpy().astype(np.float64))
    out_code = ACTIVATION_CODES[config.output_activation]
    grid = _input_grid(tuple(config.inputs), height, width)
    h = grid.to(device=x.device, dtype=dtype).expand(n, -1, -1)
    sizes = genotype.layer_sizes
    start = 0
    for layer, (n_in, n_out) in enumerate(pairwise(sizes)):
        weights = x[:, start : start + n_in * n_out].reshape(n, n_out, n_in)
        start += n_in * n_out
        z = torch.bmm(weights, h)
        last = layer == len(sizes) - 2
        codes = (
            np.full((n, n_out), out_code)
            if last
            else hidden[:, layer * n_out : (layer + 1) * n_out]
        )
        h = _activate(z, codes)
    lo, scale = (float(v) for v in color_scale(config.output_range))
    finite = torch.where(torch.isfinite(h), h, torch.zeros((), dtype=dtype, device=x.device))
    t = ((finite - lo) * scale).clamp(0.0, 1.0)
    if config.color_space == "hsv":
        h6 = t[:, 0] * 6.0
        s, v = t[:, 1], t[:, 2]
        t = torch.stack([_hsv_channel(c, h6, s, v) for c in (5.0, 3.0, 1.0)], dim=1)
    return t.reshape(n, 3, height, width)


def to_uint8(images: Tensor) -> np.ndarray:
    """Round float images (N, 3, H, W) in [0, 1] as the Numba path does, to uint8 (N, H, W, 3).

    Args:
        images: the output of :func:`render_torch`.

    Returns:
        uint8 array (N, H, W, 3).
    """
    levels = torch.floor(images.detach().float() * 255.0 + 0.5).clamp(0, 255)
    return levels.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
