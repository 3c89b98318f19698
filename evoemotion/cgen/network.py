"""The conditional CPPN: per-pixel coordinates + latent z + condition c -> RGB.

The network is a compositional pattern-producing network (Stanley 2007) in the style of
PyTorch-NEAT and Ha's "generating large images from latent vectors": every pixel is computed
independently from its coordinates (x, y, r), so one picture renders at any resolution.
The latent vector and the condition are embedded once per image; the embedding biases the
first layer, modulates every hidden layer (feature-wise scale and shift) and tints the
output, so the condition reaches the whole network and global colour (which emotion
classifiers weigh heavily) is one step away from it. Hidden units carry a mix of CPPN
activations (sin, tanh, gauss, ... with the ``cppn`` genotype's names and definitions).

:class:`ConditionalGenerator` bundles the network with its :class:`TargetSpace` and is the
object that training, sampling, evaluation and checkpoints work with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evoemotion.cgen.config import RENDERERS, Architecture
from evoemotion.cgen.targets import TargetSpace
from evoemotion.errors import ConfigError
from evoemotion.render import image_size, render_program
from evoemotion.render.approx import GAUSS_LIMIT
from evoemotion.render.ops import ACTIVATION_CODES as RENDER_ACTIVATION_CODES
from evoemotion.render.ops import INPUT_CODES
from evoemotion.render.programs import GraphProgram
from evoemotion.render.reference import axis


def _gauss(x: torch.Tensor) -> torch.Tensor:
    # x^2 clamped as the renderers clamp it (GAUSS_LIMIT: no subnormal tails)
    return torch.exp(-(x * x).clamp(max=float(GAUSS_LIMIT)))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


#: Activation functions by the names the ``cppn`` genotype uses
#: (:data:`evoemotion.render.ops.ACTIVATIONS`, same definitions).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "gauss": _gauss,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "abs": torch.abs,
    "identity": _identity,
}

#: Weights start at N(0, gain^2 / fan_in): enough variance to survive the periodic and
#: saturating activations, so untrained generators already draw varied CPPN patterns.
_INIT_GAIN = 1.5

#: Inputs of the node programs of :meth:`ConditionalCPPN.programs`; the last is the bias.
_PROGRAM_INPUTS = ("x", "y", "r", "bias")
_BIAS_SLOT = len(_PROGRAM_INPUTS) - 1
_SIGMOID_CODE = RENDER_ACTIVATION_CODES["sigmoid"]

#: Pixels (images x pixels) evaluated at once when rendering without gradients.
RENDER_CHUNK = 1 << 18


def coordinates(
    height: int, width: int, rows: slice | None = None, *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Per-pixel CPPN inputs (x, y, r) of an image, or of a band of its rows.

    The same convention as the genotype renderers
    (:func:`evoemotion.render.reference.coordinates`): x and y run over pixel centres from
    -1 to 1 along each axis (y upwards), r is the distance from the centre.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        rows: The rows to return (default: all).
        device: Where to build the tensor.

    Returns:
        ``(n_rows * width, 3)`` float32, row-major.
    """
    ys = torch.from_numpy(-axis(height)[rows or slice(None)]).to(device)
    xs = torch.from_numpy(axis(width)).to(device)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y, torch.sqrt(x * x + y * y)], dim=-1).reshape(-1, 3)


class ConditionalCPPN(nn.Module):
    """Coordinates (P, 3) and a per-image embedding -> colours (N, P, 3) in [0, 1].

    Args:
        condition_dim: Width of the encoded condition.
        arch: The architecture (widths, depth, activations, initial coordinate spread).
    """

    def __init__(self, condition_dim: int, arch: Architecture) -> None:
        super().__init__()
        self.activations = arch.activations
        base, extra = divmod(arch.hidden, len(arch.activations))
        self._groups = [base + (i < extra) for i in range(len(arch.activations))]
        hidden, embed = arch.hidden, arch.embed_dim
        self.embed = nn.Sequential(
            nn.Linear(arch.latent_dim + condition_dim, embed),
            nn.Tanh(),
            nn.Linear(embed, embed),
            nn.Tanh(),
        )
        self.coords = nn.Linear(3, hidden)
        self.code = nn.Linear(embed, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(arch.depth - 1))
        self.films = nn.ModuleList(nn.Linear(embed, 2 * hidden) for _ in range(arch.depth - 1))
        self.out = nn.Linear(hidden, 3)
        self.tint = nn.Linear(embed, 3)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=_INIT_GAIN / module.in_features**0.5)
        nn.init.normal_(self.coords.weight, std=arch.coord_scale)
        for film in self.films:
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)

    def _activate(self, h: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """The hidden activations, the units along ``dim``."""
        parts = h.split(self._groups, dim=dim)
        return torch.cat(
            [ACTIVATIONS[name](part) for name, part in zip(self.activations, parts, strict=True)],
            dim=dim,
        )

    def embedding(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Per-image embedding of latent and condition, ``(N, embed_dim)``."""
        return self.embed(torch.cat([z, condition], dim=-1))

    def logits(self, coords: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The output layer's pre-activations: :meth:`forward` before its sigmoid.

        Args:
            coords: ``(P, 3)`` pixel inputs from :func:`coordinates`.
            embedding: ``(N, embed_dim)`` from :meth:`embedding`.

        Returns:
            ``(N, P, 3)`` unbounded values; their sigmoid is the colour.
        """
        h = self._activate(self.coords(coords)[None] + self.code(embedding)[:, None])
        for layer, film in zip(self.layers, self.films, strict=True):
            scale, shift = film(embedding)[:, None].chunk(2, dim=-1)
            h = self._activate(layer(h) * (1.0 + scale) + shift)
        return self.out(h) + self.tint(embedding)[:, None]

    def forward(self, coords: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Colours of the pixels at ``coords`` for each embedded (z, c).

        Args:
            coords: ``(P, 3)`` pixel inputs from :func:`coordinates`.
            embedding: ``(N, embed_dim)`` from :meth:`embedding`.

        Returns:
            ``(N, P, 3)`` colours in [0, 1].
        """
        return torch.sigmoid(self.logits(coords, embedding))

    def program_weights(self, embedding: torch.Tensor) -> torch.Tensor:
        """Each image as the flat weights of a plain CPPN (differentiable).

        Once its embedding is fixed, every image is a CPPN of one shape: inputs x, y, r and
        a bias, one node per hidden unit (the feature-wise modulation folded into its
        incoming weights and bias, ``W (1 + scale)`` and ``b (1 + scale) + shift``), three
        output nodes. Per node its incoming weights, the bias slot's last; first-layer
        nodes first, then each hidden layer, then the outputs.

        Args:
            embedding: ``(N, embed_dim)`` from :meth:`embedding`.

        Returns:
            ``(N, W)`` weights (:meth:`program_logits` draws them, :meth:`programs` makes
            node programs of them); test-time refinement steps them.
        """
        n = len(embedding)
        code = self.code(embedding)
        blocks = [
            torch.cat(
                [self.coords.weight.expand(n, -1, -1), (self.coords.bias + code)[:, :, None]],
                dim=2,
            )
        ]
        for layer, film in zip(self.layers, self.films, strict=True):
            scale, shift = film(embedding).chunk(2, dim=-1)
            gain = 1.0 + scale
            weight = layer.weight * gain[:, :, None]
            blocks.append(torch.cat([weight, (layer.bias * gain + shift)[:, :, None]], dim=2))
        bias = self.out.bias + self.tint(embedding)
        blocks.append(torch.cat([self.out.weight.expand(n, -1, -1), bias[:, :, None]], dim=2))
        return torch.cat([block.reshape(n, -1) for block in blocks], dim=1)

    def _blocks(self, weights: torch.Tensor) -> list[torch.Tensor]:
        """Split :meth:`program_weights` into per-layer ``(N, units, inputs + 1)`` blocks."""
        hidden = self.coords.out_features
        shapes = [(hidden, 4)] + [(hidden, hidden + 1)] * len(self.layers) + [(3, hidden + 1)]
        parts = weights.split([rows * cols for rows, cols in shapes], dim=1)
        n = len(weights)
        return [part.reshape(n, *shape) for part, shape in zip(parts, shapes, strict=True)]

    def program_logits(self, coords: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The output pre-activations of the CPPNs :meth:`program_weights` describes.

        Args:
            coords: ``(P, 3)`` pixel inputs from :func:`coordinates`.
            weights: ``(N, W)`` from :meth:`program_weights` (or refined ones).

        Returns:
            ``(N, 3, P)`` unbounded values; their sigmoid is the colour.
        """
        first, *hidden, out = self._blocks(weights)
        h = self._activate(first[:, :, :3] @ coords.T + first[:, :, 3:], 1)
        for block in hidden:
            h = self._activate(block[:, :, :-1] @ h + block[:, :, -1:], 1)
        return out[:, :, :-1] @ h + out[:, :, -1:]

    @torch.no_grad()
    def colours(self, coords: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """:meth:`program_logits`' colours without gradients, in bounded memory.

        Image by image, units along the first axis (``units x pixels``), so every layer is
        one matrix product and every activation group one contiguous in-place operation.

        Args:
            coords: ``(P, 3)`` pixel inputs from :func:`coordinates`.
            weights: ``(N, W)`` from :meth:`program_weights`.

        Returns:
            ``(N, P, 3)`` colours in [0, 1].
        """
        blocks = self._blocks(weights)
        out = torch.empty((len(weights), 3, len(coords)), device=coords.device)
        for i in range(len(weights)):
            first = blocks[0][i]
            h = torch.addmm(first[:, 3:], first[:, :3], coords.T)
            self._activate_rows(h)
            for block in blocks[1:-1]:
                h = torch.addmm(block[i][:, -1:], block[i][:, :-1], h)
                self._activate_rows(h)
            last = blocks[-1][i]
            torch.addmm(last[:, -1:], last[:, :-1], h, out=out[i])
        return out.sigmoid_().transpose(1, 2)

    @torch.no_grad()
    def programs(self, weights: torch.Tensor) -> GraphProgram:
        """CPPN weights (:meth:`program_weights`) as node programs for the Numba renderer.

        Rendered with :func:`evoemotion.render.render_program` and ``output_range=(0, 1)``,
        they give the images of :meth:`colours` up to the renderer's float32
        approximations (a few levels of 255).

        Args:
            weights: ``(N, W)`` from :meth:`program_weights` (or refined ones).

        Returns:
            The batch's programs (all of one shape, the weights differ).
        """
        n = len(weights)
        blocks = self._blocks(weights)
        # Slots: x, y, r, bias, then the hidden layers' units, then the three outputs.
        unit_codes = [
            RENDER_ACTIVATION_CODES[name]
            for name, count in zip(self.activations, self._groups, strict=True)
            for _ in range(count)
        ]
        src, act, previous = [], [0] * len(_PROGRAM_INPUTS), [0, 1, 2]
        for number, block in enumerate(blocks, start=1):
            units = block.shape[1]
            src += (previous + [_BIAS_SLOT]) * units
            previous = list(range(len(act), len(act) + units))
            act += [_SIGMOID_CODE] * units if number == len(blocks) else unit_codes
        ptr = np.zeros(len(act) + 1, np.int32)
        fan_in = [block.shape[2] for block in blocks for _ in range(block.shape[1])]
        ptr[len(_PROGRAM_INPUTS) + 1 :] = np.cumsum(fan_in)
        return GraphProgram(
            inputs=np.array([INPUT_CODES[name] for name in _PROGRAM_INPUTS], np.int32),
            act=np.tile(np.array(act, np.int32), (n, 1)),
            ptr=np.tile(ptr, (n, 1)),
            src=np.tile(np.array(src, np.int32), (n, 1)),
            weight=np.ascontiguousarray(weights.float().cpu().numpy()),
            n_slots=np.full(n, len(act), np.int32),
            outputs=np.tile(np.arange(len(act) - 3, len(act), dtype=np.int32), (n, 1)),
        )

    def _activate_rows(self, h: torch.Tensor) -> None:
        start = 0
        for name, count in zip(self.activations, self._groups, strict=True):
            _IN_PLACE[name](h[start : start + count])
            start += count


def _gauss_(x: torch.Tensor) -> torch.Tensor:
    return x.square_().clamp_(max=float(GAUSS_LIMIT)).neg_().exp_()


#: In-place versions of :data:`ACTIVATIONS`, for rendering without gradients.
_IN_PLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin_,
    "cos": torch.cos_,
    "gauss": _gauss_,
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "abs": torch.abs_,
    "identity": _identity,
}


class ConditionTable(nn.Module):
    """A learned embedding offset per cell of the regression target space, interpolated.

    The condition MLP maps a 2-3 number target smoothly to the image embedding, so it
    learns slowly where the classifier's response to images is irregular. The table gives
    each region of the target space parameters of its own (like optimising one image per
    target, but shared with the neighbouring cells by (bi/tri)linear interpolation). It
    starts at zero: an untrained generator is the plain conditional CPPN.

    Args:
        dims: Dimensions of the target space (2 or 3).
        cells: Table nodes per dimension.
        width: Embedding width.
    """

    def __init__(self, dims: int, cells: int, width: int) -> None:
        super().__init__()
        self.dims = dims
        self.table = nn.Parameter(torch.zeros((1, width, *([cells] * dims))))

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        """Offsets ``(N, width)`` at encoded conditions ``(N, dims)`` in [-1, 1]."""
        # grid_sample reads the last grid coordinate as the first table axis: reverse them.
        where = condition.flip(-1).reshape(1, len(condition), *([1] * (self.dims - 1)), self.dims)
        values = F.grid_sample(self.table, where, mode="bilinear", align_corners=True)
        return values.reshape(self.table.shape[1], len(condition)).T


class ConditionalGenerator(nn.Module):
    """A conditional CPPN together with the target space it was built for.

    Args:
        space: What the condition means (see :class:`TargetSpace`).
        arch: The network's shape; its seed fixes the initial weights (the global torch
            RNG is left untouched).

    Attributes:
        space: The target space.
        arch: The architecture.
    """

    def __init__(self, space: TargetSpace, arch: Architecture | None = None) -> None:
        super().__init__()
        self.space = space
        self.arch = arch or Architecture()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.arch.seed)
            self.net = ConditionalCPPN(space.condition_dim, self.arch)
        self.table = (
            ConditionTable(space.condition_dim, self.arch.condition_cells, self.arch.embed_dim)
            if self.arch.condition_cells and not space.categorical
            else None
        )

    def embedding(self, targets: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-image embedding ``(N, embed_dim)`` of canonical targets and latents."""
        condition = self.space.encode(targets.to(self.device))
        embedding = self.net.embedding(z, condition)
        return embedding if self.table is None else embedding + self.table(condition)

    @property
    def latent_dim(self) -> int:
        """Width of the latent vector z."""
        return self.arch.latent_dim

    @property
    def device(self) -> torch.device:
        """The device the weights live on."""
        return self.net.out.weight.device

    def latents(self, n: int, seed: int | torch.Generator = 0) -> torch.Tensor:
        """Draw ``n`` standard-normal latent vectors (on the generator's device).

        Args:
            n: How many.
            seed: An int seed or a CPU ``torch.Generator`` to draw from.

        Returns:
            ``(n, latent_dim)`` float32.
        """
        generator = (
            seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
        )
        return torch.randn((n, self.latent_dim), generator=generator).to(self.device)

    def forward(
        self, targets: torch.Tensor, z: torch.Tensor, size: int | Sequence[int]
    ) -> torch.Tensor:
        """Differentiable images for canonical targets (see :meth:`TargetSpace.check`).

        Args:
            targets: ``(N, dims)`` float on the classifier's scale, or ``(N,)`` class indices.
            z: ``(N, latent_dim)`` latents.
            size: Side or ``(height, width)``.

        Returns:
            ``(N, 3, H, W)`` float images in [0, 1].
        """
        return torch.sigmoid(self.logits(self.embedding(targets, z), size))

    def logits(self, embedding: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
        """Differentiable images of per-image embeddings, before the output sigmoid.

        Training reads them to keep the colours out of the sigmoid's flat ends, where
        their gradient vanishes (``GeneratorTrainConfig.saturation_weight``); test-time
        refinement (:mod:`evoemotion.cgen.refinement`) steps each image's CPPN weights
        (:meth:`program_logits`).

        Args:
            embedding: ``(N, embed_dim)`` from :meth:`embedding`.
            size: Side or ``(height, width)``.

        Returns:
            ``(N, 3, H, W)`` unbounded values; their sigmoid is the image.
        """
        height, width = image_size(size)
        values = self.net.logits(coordinates(height, width, device=self.device), embedding)
        return values.reshape(len(embedding), height, width, 3).permute(0, 3, 1, 2)

    def program_weights(self, embedding: torch.Tensor) -> torch.Tensor:
        """Each image of an embedding as the flat weights of a plain CPPN
        (:meth:`ConditionalCPPN.program_weights`), ``(N, W)``."""
        return self.net.program_weights(embedding)

    def program_logits(self, weights: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
        """:meth:`logits` of per-image CPPN weights (:meth:`program_weights`), differentiable
        with respect to every weight.

        Args:
            weights: ``(N, W)`` CPPN weights.
            size: Side or ``(height, width)``.

        Returns:
            ``(N, 3, H, W)`` unbounded values; their sigmoid is the image.
        """
        height, width = image_size(size)
        values = self.net.program_logits(coordinates(height, width, device=self.device), weights)
        return values.reshape(len(weights), 3, height, width)

    @torch.no_grad()
    def render(
        self,
        targets: Any,
        z: torch.Tensor,
        size: int | Sequence[int],
        *,
        renderer: str = "auto",
    ) -> np.ndarray:
        """Render uint8 images in bounded memory, at any resolution.

        ``"numba"`` renders the images as node programs with the Numba CPPN renderer
        (:meth:`ConditionalCPPN.programs`: tiled, parallel, several times faster than
        torch on a CPU at large sizes, equal up to a level or two of 255); ``"torch"``
        renders them in chunks on the generator's device (:meth:`ConditionalCPPN.colours`,
        exact math); ``"auto"`` is Numba for a generator on the CPU, else torch.

        Args:
            targets: Targets in any form :meth:`TargetSpace.check` accepts, one per latent
                (or a single target for all latents).
            z: ``(N, latent_dim)`` latents.
            size: Side or ``(height, width)``.
            renderer: ``"auto"``, ``"numba"`` or ``"torch"`` (see above).

        Returns:
            ``(N, H, W, 3)`` uint8 array.

        Raises:
            ConfigError: invalid targets, size or renderer, or a target count that is
                neither 1 nor N.
        """
        values = self.space.as_tensor(targets, self.device)
        if len(values) == 1:
            values = values.expand(len(z), *values.shape[1:])
        if len(values) != len(z):
            raise ConfigError(f"got {len(values)} targets for {len(z)} latents")
        embedding = self.embedding(values, z.to(self.device))
        return self.render_programs(self.program_weights(embedding), size, renderer=renderer)

    @torch.no_grad()
    def render_programs(
        self, weights: torch.Tensor, size: int | Sequence[int], *, renderer: str = "auto"
    ) -> np.ndarray:
        """:meth:`render` for per-image CPPN weights (e.g. refined ones) instead of targets.

        Args:
            weights: ``(N, W)``, as :meth:`program_weights` gives them.
            size: Side or ``(height, width)``.
            renderer: ``"auto"``, ``"numba"`` or ``"torch"`` (see :meth:`render`).

        Returns:
            ``(N, H, W, 3)`` uint8 array.

        Raises:
            ConfigError: an invalid size or renderer.
        """
        if renderer not in RENDERERS:
            raise ConfigError(f"renderer {renderer!r} is not one of {', '.join(RENDERERS)}")
        height, width = image_size(size)
        weights = weights.detach().to(self.device)
        if renderer == "numba" or (renderer == "auto" and self.device.type == "cpu"):
            programs = self.net.programs(weights)
            return render_program(programs, (height, width), output_range=(0.0, 1.0))
        out = np.empty((len(weights), height, width, 3), dtype=np.uint8)
        per_image = max(1, RENDER_CHUNK // (height * width))
        band = max(1, RENDER_CHUNK // width)
        for start in range(0, len(weights), per_image):
            stop = min(start + per_image, len(weights))
            for row in range(0, height, band):
                rows = slice(row, min(row + band, height))
                rgb = self.net.colours(
                    coordinates(height, width, rows, device=self.device), weights[start:stop]
                )
                pixels = torch.round(rgb * 255.0).to(torch.uint8).cpu().numpy()
                out[start:stop, rows] = pixels.reshape(stop - start, -1, width, 3)
        return out
