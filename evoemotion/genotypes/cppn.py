"""Fixed-topology CPPNs encoded as flat real vectors (kind ``cppn``).

The network is dense and feed-forward: the preset's inputs (e.g. x, y, r, bias) feed
``hidden_layers`` layers of ``layer_width`` nodes, which feed 3 output nodes (the colour
channels). The genome is one float64 vector of length :attr:`CppnGenotype.solution_dim`,
so pyribs' numeric emitters (Gaussian, IsoLine, CMA-ME) can evolve it directly:

- first the weights, layer by layer, each layer's matrix (outputs x inputs) row-major;
- then, when ``activation_genes`` is true and more than one activation is allowed, one gene
  per hidden node (layer-major) that picks its activation: the bounds ``[-weight_max,
  weight_max]`` are split into equal bins, one per activation in preset order. Otherwise
  hidden activations are drawn once per preset from ``activation_seed``.

Every gene lies in ``[-weight_max, weight_max]`` (:attr:`CppnGenotype.bounds`); mutation
and crossover keep it there. Output nodes use ``output_activation``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from evoemotion.errors import GenomeError
from evoemotion.genotypes.base import Genotype, register_kind
from evoemotion.genotypes.presets import PresetConfig, option
from evoemotion.render.ops import ACTIVATION_CODES, ACTIVATIONS, INPUT_CODES
from evoemotion.render.programs import GraphProgram
from evoemotion.render.reference import eval_layers


@dataclasses.dataclass(frozen=True, kw_only=True)
class CppnConfig(PresetConfig):
    """Preset fields of the ``cppn`` kind."""

    hidden_layers: int = option(help="number of hidden layers", minimum=0, maximum=32)
    layer_width: int = option(help="nodes per hidden layer", minimum=1, maximum=256)
    activations: tuple[str, ...] = option(
        help="activations hidden nodes may use", choices=ACTIVATIONS
    )
    activation_genes: bool = option(
        True, help="one gene per hidden node picks its activation (else fixed per preset)"
    )
    activation_seed: int = option(0, help="seed of the fixed hidden activations", minimum=0)
    output_activation: str = option("tanh", help="activation of the 3 outputs", choices=ACTIVATIONS)
    weight_max: float = option(
        3.0, help="every gene lies in [-weight_max, weight_max]", minimum=1e-6
    )
    init_std: float = option(1.0, help="std of random initial weights", minimum=0.0)
    mutation_sigma: float = option(0.3, help="std of Gaussian mutation", minimum=0.0)
    mutation_rate: float = option(
        0.2, help="chance that mutation touches a gene", minimum=0.0, maximum=1.0
    )

    def check(self) -> None:
        """Check relations between fields (see :meth:`PresetConfig.check`)."""
        super().check()
        if not self.activations:
            raise ValueError("field 'activations': need at least one activation")


@register_kind
class CppnGenotype(Genotype):
    """Flat-vector CPPN genotype (see the module docstring for the vector layout)."""

    kind = "cppn"
    config_class = CppnConfig
    has_crossover = True
    config: CppnConfig

    def __init__(self, config: CppnConfig, *, name: str) -> None:
        super().__init__(config, name=name)
        c = config
        self.layer_sizes = [len(c.inputs)] + [c.layer_width] * c.hidden_layers + [3]
        self.n_weights = sum(a * b for a, b in pairwise(self.layer_sizes))
        self.n_hidden = c.layer_width * c.hidden_layers
        self.has_genes = c.activation_genes and len(c.activations) > 1
        codes = np.array([ACTIVATION_CODES[a] for a in c.activations], np.int32)
        self._codes = codes
        self._fixed = np.random.default_rng(c.activation_seed).choice(codes, self.n_hidden)
        self._dim = self.n_weights + (self.n_hidden if self.has_genes else 0)

    @property
    def solution_dim(self) -> int:
        """Length of the genome vector."""
        return self._dim

    @property
    def bounds(self) -> list[tuple[float, float]]:
        """``(-weight_max, weight_max)`` for every dimension."""
        b = self.config.weight_max
        return [(-b, b)] * self._dim

    def as_matrix(self, genomes: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Stack genomes into a float64 (n, solution_dim) array.

        Raises:
            GenomeError: if a genome is not a vector of length ``solution_dim``.
        """
        if len(genomes) == 0:
            return np.zeros((0, self._dim))
        try:
            matrix = np.asarray(genomes, dtype=np.float64).reshape(len(genomes), -1)
        except (TypeError, ValueError) as err:
            raise GenomeError(f"cppn genomes must be real vectors: {err}") from err
        if matrix.shape[1] != self._dim:
            raise GenomeError(
                f"cppn genome has {matrix.shape[1]} genes, preset '{self.name}' needs {self._dim}"
            )
        return matrix

    def hidden_codes(self, vectors: np.ndarray) -> np.ndarray:
        """Activation codes (n, n_hidden) of the hidden nodes of (n, dim) vectors."""
        if not self.has_genes:
            return np.broadcast_to(self._fixed, (len(vectors), self.n_hidden))
        b = self.config.weight_max
        genes = vectors[:, self.n_weights :]
        k = len(self._codes)
        bins = np.clip(np.floor((genes + b) / (2 * b) * k), 0, k - 1).astype(np.int64)
        return self._codes[bins]

    def layers(self, genome: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Decode a genome to ``(weights (out, in) float32, activation codes (out,))``."""
        vector = self.as_matrix([genome])
        hidden = self.hidden_codes(vector)[0]
        out_code = ACTIVATION_CODES[self.config.output_activation]
        layers = []
        start = 0
        for i, (n_in, n_out) in enumerate(pairwise(self.layer_sizes)):
            weights = vector[0, start : start + n_in * n_out].reshape(n_out, n_in)
            start += n_in * n_out
            last = i == len(self.layer_sizes) - 2
            codes = np.full(3, out_code) if last else hidden[i * n_out : (i + 1) * n_out]
            layers.append((weights.astype(np.float32), np.asarray(codes, np.int32)))
        return layers

    def random(self, rng: np.random.Generator, n: int) -> list[np.ndarray]:
        """Weights ~ N(0, init_std) and activation genes ~ U(bounds), all clipped."""
        b = self.config.weight_max
        weights = rng.normal(0.0, self.config.init_std, (n, self.n_weights))
        genes = rng.uniform(-b, b, (n, self._dim - self.n_weights))
        return list(np.clip(np.concatenate([weights, genes], axis=1), -b, b))

    def mutate(self, genome: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Add N(0, mutation_sigma) to each gene with chance ``mutation_rate`` (at least one)."""
        x = self.as_matrix([genome])[0]
        mask = rng.random(self._dim) < self.config.mutation_rate
        mask[rng.integers(self._dim)] = True
        step = rng.normal(0.0, self.config.mutation_sigma, self._dim)
        b = self.config.weight_max
        return np.clip(x + mask * step, -b, b)

    def crossover(
        self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform crossover: each gene comes from either parent with equal chance."""
        pa, pb = self.as_matrix([a, b])
        mask = rng.random(self._dim) < 0.5
        return np.where(mask, pa, pb), np.where(mask, pb, pa)

    def to_dict(self, genome: np.ndarray) -> dict[str, Any]:
        """``{"kind", "genotype", "layers": "4-8-8-3", "vector": [...]}``."""
        vector = self.as_matrix([genome])[0]
        return {
            **self._header(),
            "layers": "-".join(map(str, self.layer_sizes)),
            "vector": vector.tolist(),
        }

    def from_dict(self, data: Mapping[str, Any]) -> np.ndarray:
        """Read the ``vector`` field back (see :meth:`Genotype.from_dict`)."""
        self._check_header(data)
        vector = data.get("vector")
        if not isinstance(vector, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in vector
        ):
            raise GenomeError("field 'vector': expected a list of numbers")
        if len(vector) != self._dim:
            raise GenomeError(
                f"field 'vector': has {len(vector)} genes, preset '{self.name}' needs {self._dim}"
            )
        array = np.array(vector, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise GenomeError("field 'vector': genes must be finite")
        return array

    def to_text(self, genome: np.ndarray) -> str:
        """The architecture with each hidden layer's activations and the weight scale."""
        layers = self.layers(genome)
        parts = [",".join(self.config.inputs)]
        for _weights, codes in layers:
            parts.append(f"{len(codes)}[{' '.join(ACTIVATIONS[c] for c in codes)}]")
        scale = float(np.mean(np.abs(self.as_matrix([genome])[0, : self.n_weights])))
        return f"cppn {' -> '.join(parts)}; mean |w| = {scale:.3f}"

    def compile(self, genomes: Sequence[Any] | np.ndarray) -> GraphProgram:
        """Dense layers as node programs: node ``k`` of a layer reads every node before it."""
        vectors = self.as_matrix(genomes)
        n = len(vectors)
        sizes = self.layer_sizes
        starts = np.cumsum([0] + sizes)
        slots = int(starts[-1])
        src, ptr = [], [0] * (sizes[0] + 1)
        for layer, (n_in, n_out) in enumerate(pairwise(sizes)):
            for _ in range(n_out):
                src.extend(range(starts[layer], starts[layer] + n_in))
                ptr.append(len(src))
        act = np.zeros((n, slots), np.int32)
        act[:, sizes[0] : slots - 3] = self.hidden_codes(vectors)
        act[:, slots - 3 :] = ACTIVATION_CODES[self.config.output_activation]
        return GraphProgram(
            inputs=np.array([INPUT_CODES[x] for x in self.config.inputs], np.int32),
            act=act,
            ptr=np.tile(np.array(ptr, np.int32), (n, 1)),
            src=np.tile(np.array(src, np.int32), (n, 1)),
            weight=np.ascontiguousarray(vectors[:, : self.n_weights], dtype=np.float32),
            n_slots=np.full(n, slots, np.int32),
            outputs=np.tile(np.arange(slots - 3, slots, dtype=np.int32), (n, 1)),
        )

    def reference_channels(self, genome: np.ndarray, coords: dict[str, np.ndarray]) -> np.ndarray:
        """Evaluate with numpy matrix products (``reference.eval_layers``)."""
        return eval_layers(self.config.inputs, self.layers(genome), coords)
