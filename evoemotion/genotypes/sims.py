"""Sims-style expression-tree images on DEAP ``gp`` (kind ``sims``).

A genome (:class:`SimsGenome`) holds one DEAP ``PrimitiveTree`` per colour channel. The
function set is the preset's choice from :data:`~evoemotion.render.ops.FUNCTIONS`
(arithmetic, protected division/log/sqrt, trigonometry, min/max/mod, atan2, value noise, a
conditional and a lerp); terminals are the preset's coordinates (x, y, r, angle) and
ephemeral constants drawn uniformly from ``constant_range`` and rounded to 3 decimals.

Random trees use ramped half-and-half; mutation applies one DEAP operator (chosen by the
preset's weights) to one channel; crossover is DEAP's one-point crossover per channel. A
child over ``max_depth`` or ``max_size`` is replaced by its parent (as
``gp.staticLimit`` does).

DEAP's operators draw from Python's global :mod:`random`. Every operator here seeds that
generator from one draw of the numpy Generator passed in and restores its previous state
afterwards, so results depend only on the numpy Generator (not thread-safe: do not run
operators of this module in parallel threads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from deap import gp

from evoemotion.errors import ConfigError, GenomeError
from evoemotion.genotypes.base import Genotype, register_kind
from evoemotion.genotypes.presets import PresetConfig, option
from evoemotion.render.ops import FUNCTIONS, OP_CONST, TERMINAL_OPS
from evoemotion.render.programs import TreeProgram
from evoemotion.render.reference import TREE_FUNCTIONS, eval_prefix

#: Mutation operators a preset can weight.
MUTATIONS = ("uniform", "node_replacement", "ephemeral", "shrink", "insert")
#: Channel labels in ``to_text``, by colour space.
CHANNEL_NAMES = {"rgb": ("R", "G", "B"), "hsv": ("H", "S", "V")}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimsConfig(PresetConfig):
    """Preset fields of the ``sims`` kind."""

    functions: tuple[str, ...] = option(help="function set of the trees", choices=FUNCTIONS)
    constant_range: tuple[float, float] = option(
        (-1.0, 1.0), help="ephemeral constants are uniform in this range"
    )
    init_depth: tuple[int, int] = option(
        (2, 5), help="depth range of random trees (ramped half-and-half)", minimum=0, maximum=17
    )
    max_depth: int = option(10, help="bloat limit: deepest tree allowed", minimum=1, maximum=17)
    max_size: int = option(80, help="bloat limit: most nodes per tree", minimum=1, maximum=2000)
    mutation: dict[str, float] = option(
        {"uniform": 0.4, "node_replacement": 0.3, "ephemeral": 0.2, "shrink": 0.1},
        help="relative weights of the DEAP mutation operators",
        choices=MUTATIONS,
        minimum=0.0,
    )
    mutation_depth: tuple[int, int] = option(
        (0, 3), help="depth range of subtrees grown by uniform mutation", minimum=0, maximum=17
    )

    def check(self) -> None:
        """Check relations between fields (see :meth:`PresetConfig.check`)."""
        super().check()
        if not set(self.inputs) <= set(TERMINAL_OPS):
            raise ValueError(f"field 'inputs': trees read only {', '.join(TERMINAL_OPS)}")
        if not self.functions:
            raise ValueError("field 'functions': need at least one function")
        lo, hi = self.init_depth
        if not lo <= hi <= self.max_depth:
            raise ValueError("field 'init_depth': need low <= high <= max_depth")
        if lo + 1 > self.max_size:
            raise ValueError(f"field 'init_depth': depth {lo} needs more nodes than 'max_size'")
        if self.mutation_depth[0] > self.mutation_depth[1]:
            raise ValueError("field 'mutation_depth': need low <= high")
        if not sum(self.mutation.values()) > 0:
            raise ValueError("field 'mutation': need a positive weight")
        if self.constant_range[0] > self.constant_range[1]:
            raise ValueError("field 'constant_range': need low <= high")


@dataclasses.dataclass(frozen=True)
class SimsGenome:
    """One DEAP expression tree per colour channel (treat as immutable).

    Attributes:
        trees: the channel trees, in colour-space order (R, G, B or H, S, V).
    """

    trees: tuple[gp.PrimitiveTree, gp.PrimitiveTree, gp.PrimitiveTree]


def uniform_constant(low: float, high: float) -> float:
    """Ephemeral constant generator (module level, so trees pickle): U(low, high), 3 decimals."""
    return round(random.uniform(low, high), 3)


@contextlib.contextmanager
def python_random(rng: np.random.Generator) -> Iterator[None]:
    """Seed Python's global :mod:`random` from ``rng`` for DEAP; restore it on exit."""
    state = random.getstate()
    random.seed(int(rng.integers(0, 2**63 - 1)))
    try:
        yield
    finally:
        random.setstate(state)


_TOKEN = re.compile(r"[^\s(),]+")


@register_kind
class SimsGenotype(Genotype):
    """Expression-tree genotype, one tree per channel (see the module docstring)."""

    kind = "sims"
    config_class = SimsConfig
    has_crossover = True
    config: SimsConfig

    def __init__(self, config: SimsConfig, *, name: str) -> None:
        super().__init__(config, name=name)
        pset = gp.PrimitiveSet(f"sims_{name}", len(config.inputs))
        pset.renameArguments(**{f"ARG{i}": arg for i, arg in enumerate(config.inputs)})
        for fn in config.functions:
            pset.addPrimitive(TREE_FUNCTIONS[fn], FUNCTIONS[fn][1], name=fn)
        low, high = config.constant_range
        pset.addEphemeralConstant("const", functools.partial(uniform_constant, low, high))
        self.pset = pset
        self._const = pset.mapping["const"]
        names = list(config.mutation)
        self._mutation_names = names
        self._mutation_weights = [config.mutation[m] for m in names]

    # ---------------------------------------------------------------- operators

    def _fits(self, tree: gp.PrimitiveTree) -> bool:
        return tree.height <= self.config.max_depth and len(tree) <= self.config.max_size

    def _random_tree(self, tries: int = 200) -> gp.PrimitiveTree:
        lo, hi = self.config.init_depth
        for _ in range(tries):
            tree = gp.PrimitiveTree(gp.genHalfAndHalf(self.pset, min_=lo, max_=hi))
            if self._fits(tree):
                return tree
        raise ConfigError(
            f"genotype preset '{self.name}': field 'init_depth' {list(self.config.init_depth)} "
            f"grows trees over field 'max_size' {self.config.max_size}"
        )

    def random(self, rng: np.random.Generator, n: int) -> list[SimsGenome]:
        """Ramped half-and-half trees within the bloat limits.

        Raises:
            ConfigError: if ``init_depth`` almost never fits ``max_size``.
        """
        with python_random(rng):
            return [SimsGenome(tuple(self._random_tree() for _ in range(3))) for _ in range(n)]

    def _mutation(self, name: str) -> Callable[[gp.PrimitiveTree], tuple[gp.PrimitiveTree]]:
        pset = self.pset
        if name == "uniform":
            lo, hi = self.config.mutation_depth
            expr = functools.partial(gp.genHalfAndHalf, min_=lo, max_=hi)
            return functools.partial(gp.mutUniform, expr=expr, pset=pset)
        if name == "node_replacement":
            return functools.partial(gp.mutNodeReplacement, pset=pset)
        if name == "ephemeral":
            return functools.partial(gp.mutEphemeral, mode="one")
        if name == "shrink":
            return gp.mutShrink
        return functools.partial(gp.mutInsert, pset=pset)

    def mutate(self, genome: SimsGenome, rng: np.random.Generator) -> SimsGenome:
        """Apply one weighted DEAP mutation to one random channel (parent kept if too big)."""
        trees = list(self._check(genome).trees)
        with python_random(rng):
            channel = random.randrange(3)
            (name,) = random.choices(self._mutation_names, weights=self._mutation_weights)
            (child,) = self._mutation(name)(gp.PrimitiveTree(trees[channel]))
            if self._fits(child):
                trees[channel] = child
        return SimsGenome(tuple(trees))

    def crossover(
        self, a: SimsGenome, b: SimsGenome, rng: np.random.Generator
    ) -> tuple[SimsGenome, SimsGenome]:
        """One-point crossover of each channel pair with chance 1/2 (at least one channel)."""
        left, right = list(self._check(a).trees), list(self._check(b).trees)
        with python_random(rng):
            forced = random.randrange(3)
            for ch in range(3):
                if ch != forced and random.random() < 0.5:
                    continue
                x, y = gp.cxOnePoint(gp.PrimitiveTree(left[ch]), gp.PrimitiveTree(right[ch]))
                left[ch] = x if self._fits(x) else left[ch]
                right[ch] = y if self._fits(y) else right[ch]
        return SimsGenome(tuple(left)), SimsGenome(tuple(right))

    # ----------------------------------------------------------- serialisation

    def _check(self, genome: Any) -> SimsGenome:
        if not isinstance(genome, SimsGenome) or len(genome.trees) != 3:
            raise GenomeError(f"expected a SimsGenome of 3 trees, got {type(genome).__name__}")
        return genome

    def to_dict(self, genome: SimsGenome) -> dict[str, Any]:
        """``{"kind", "genotype", "trees": [expression per channel]}``."""
        return {**self._header(), "trees": [str(t) for t in self._check(genome).trees]}

    def parse_tree(self, text: str, where: str = "tree") -> gp.PrimitiveTree:
        """Parse an expression such as ``add(x, mul(y, 0.5))`` (no ``eval``).

        Raises:
            GenomeError: naming ``where`` for an unknown name or a malformed expression.
        """
        if not isinstance(text, str):
            raise GenomeError(f"field '{where}': expected an expression string")
        nodes = []
        open_args = 1
        for token in _TOKEN.findall(text):
            if open_args == 0:
                raise GenomeError(f"field '{where}': unexpected {token!r} after a complete tree")
            node = self.pset.mapping.get(token)
            if node is None or token == "const":
                try:
                    value = float(token)
                except ValueError:
                    raise GenomeError(
                        f"field '{where}': unknown name {token!r} for preset '{self.name}'"
                    ) from None
                node = self._const.__new__(self._const)
                node.value = value
            nodes.append(node)
            open_args += (node.arity if isinstance(node, gp.Primitive) else 0) - 1
        if open_args != 0 or not nodes:
            raise GenomeError(f"field '{where}': incomplete expression {text!r}")
        return gp.PrimitiveTree(nodes)

    def from_dict(self, data: Mapping[str, Any]) -> SimsGenome:
        """Parse the ``trees`` field back (see :meth:`Genotype.from_dict`)."""
        self._check_header(data)
        trees = data.get("trees")
        if not isinstance(trees, list) or len(trees) != 3:
            raise GenomeError("field 'trees': expected a list of 3 expressions")
        return SimsGenome(tuple(self.parse_tree(t, f"trees[{i}]") for i, t in enumerate(trees)))

    def to_text(self, genome: SimsGenome) -> str:
        """``R = expr; G = expr; B = expr`` (or H, S, V)."""
        names = CHANNEL_NAMES[self.config.color_space]
        trees = self._check(genome).trees
        return "; ".join(f"{c} = {t}" for c, t in zip(names, trees, strict=True))

    # ------------------------------------------------------------- evaluation

    @staticmethod
    def _tokens(tree: gp.PrimitiveTree) -> list[str | float]:
        return [
            node.name
            if isinstance(node, gp.Primitive)
            else node.value
            if isinstance(node.value, str)
            else float(node.value)
            for node in tree
        ]

    def compile(self, genomes: Sequence[SimsGenome]) -> TreeProgram:
        """Postfix programs: each channel tree in reversed prefix order, channel 0 first."""
        programs = []
        for genome in genomes:
            ops: list[int] = []
            consts: list[float] = []
            depth = 0
            for channel, tree in enumerate(self._check(genome).trees):
                sp = channel
                for token in reversed(self._tokens(tree)):
                    if isinstance(token, float):
                        code, value, arity = OP_CONST, token, 0
                    elif token in TERMINAL_OPS:
                        code, value, arity = TERMINAL_OPS[token], 0.0, 0
                    else:
                        (code, arity), value = FUNCTIONS[token], 0.0
                    ops.append(code)
                    consts.append(value)
                    sp += 1 - arity
                    depth = max(depth, sp)
            programs.append((ops, consts, depth))
        return TreeProgram.pack(programs)

    def reference_channels(self, genome: SimsGenome, coords: dict[str, np.ndarray]) -> np.ndarray:
        """Evaluate each tree with :func:`~evoemotion.render.reference.eval_prefix`."""
        return np.stack([eval_prefix(self._tokens(t), coords) for t in self._check(genome).trees])
