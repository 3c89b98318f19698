"""The genotype protocol, the registry of genotype kinds, and :func:`load_genotype`.

Search code talks only to :class:`Genotype`: random genomes, mutation, crossover,
serialisation and compilation to a program batch for :func:`evoemotion.render.render`. A
new kind subclasses it, declares its ``kind`` and ``config_class``, and registers with
:func:`register_kind`; nothing in search or runs changes.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from evoemotion.errors import ConfigError, GenomeError
from evoemotion.genotypes.presets import (
    PresetConfig,
    config_to_dict,
    find_preset,
    parse_config,
    read_preset,
)
from evoemotion.render.programs import GraphProgram, TreeProgram

#: Genotype classes by kind name.
KINDS: dict[str, type[Genotype]] = {}


def register_kind(cls: type[Genotype]) -> type[Genotype]:
    """Class decorator: make a genotype kind loadable by its ``kind`` name."""
    KINDS[cls.kind] = cls
    return cls


class Genotype(ABC):
    """A genotype kind configured by a preset.

    Genomes are plain picklable values (an ndarray, a dataclass of DEAP trees, a graph
    dataclass); the genotype holds the operators. Operators never modify their inputs.
    All randomness comes from the numpy Generator passed in, so the same generator state
    gives the same genomes.

    Args:
        config: the validated preset (an instance of ``config_class``).
        name: the preset's name.
    """

    #: The kind name used in presets and genome files.
    kind: ClassVar[str]
    #: The preset dataclass of this kind.
    config_class: ClassVar[type[PresetConfig]]
    #: Whether :meth:`crossover` is supported.
    has_crossover: ClassVar[bool] = False

    def __init__(self, config: PresetConfig, *, name: str) -> None:
        self.config = config
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (load_genotype, (self.preset,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def preset(self) -> dict[str, Any]:
        """The resolved preset as a JSON-able dict; ``load_genotype`` accepts it back."""
        return {"name": self.name, **config_to_dict(self.config)}

    @property
    def solution_dim(self) -> int | None:
        """Length of the genome vector for flat-vector kinds; None for object genomes."""
        return None

    @property
    def bounds(self) -> list[tuple[float, float]] | None:
        """Per-dimension ``(low, high)`` bounds for flat-vector kinds; None otherwise."""
        return None

    @abstractmethod
    def random(self, rng: np.random.Generator, n: int) -> list[Any]:
        """Draw ``n`` random genomes.

        Args:
            rng: the source of randomness.
            n: how many genomes.

        Returns:
            A list of ``n`` genomes.
        """

    @abstractmethod
    def mutate(self, genome: Any, rng: np.random.Generator) -> Any:
        """Return a mutated copy of ``genome`` (the input is untouched)."""

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> tuple[Any, Any]:
        """Return two children of ``a`` and ``b`` (inputs untouched).

        Raises:
            ConfigError: if this kind has no crossover (see ``has_crossover``).
        """
        raise ConfigError(f"genotype kind '{self.kind}' has no crossover")

    @abstractmethod
    def to_dict(self, genome: Any) -> dict[str, Any]:
        """A JSON-able, human-readable dict of a genome, with ``kind`` and ``genotype``."""

    @abstractmethod
    def from_dict(self, data: Mapping[str, Any]) -> Any:
        """Rebuild a genome from :meth:`to_dict` output.

        Raises:
            GenomeError: naming the field that is missing or malformed.
        """

    @abstractmethod
    def to_text(self, genome: Any) -> str:
        """One readable line or paragraph describing a genome."""

    @abstractmethod
    def compile(self, genomes: Sequence[Any] | np.ndarray) -> TreeProgram | GraphProgram:
        """Compile a batch of genomes to the program form the kernels run.

        Raises:
            GenomeError: if a genome does not belong to this genotype.
        """

    @abstractmethod
    def reference_channels(self, genome: Any, coords: dict[str, np.ndarray]) -> np.ndarray:
        """Evaluate one genome with the plain-numpy reference (tests and benchmarks).

        Args:
            genome: the genome.
            coords: input arrays from :func:`evoemotion.render.reference.coordinates`.

        Returns:
            float32 (3, H, W) channel values before the colour mapping.
        """

    def _header(self) -> dict[str, Any]:
        return {"kind": self.kind, "genotype": self.name}

    def _check_header(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise GenomeError(
                f"a {self.kind} genome must be a JSON object, got {type(data).__name__}"
            )
        if data.get("kind") != self.kind:
            raise GenomeError(f"field 'kind': expected '{self.kind}', got {data.get('kind')!r}")


def load_genotype(spec: str | os.PathLike[str] | Mapping[str, Any]) -> Genotype:
    """Load a genotype from a preset name, a preset file, or a resolved preset dict.

    Args:
        spec: a preset name (``"cppn"``, looked up as described in
            :mod:`evoemotion.genotypes.presets`), a path to a ``.toml`` file, or a dict such
            as :attr:`Genotype.preset` (e.g. read back from a run's ``config.json``).

    Returns:
        The configured genotype.

    Raises:
        ConfigError: naming the file and field for an unknown preset or kind, a missing
            field, a wrong type or a bad value.
    """
    if isinstance(spec, Mapping):
        table = dict(spec)
        name = str(table.pop("name", "custom"))
        source = f"genotype preset '{name}'"
    else:
        path = find_preset(spec)
        table = read_preset(path)
        name = path.stem
        source = str(path)
    kind = table.get("kind")
    if kind not in KINDS:
        what = "missing field 'kind'" if kind is None else f"field 'kind': unknown kind {kind!r}"
        raise ConfigError(f"{source}: {what} (kinds: {', '.join(sorted(KINDS))})")
    cls = KINDS[kind]
    return cls(parse_config(cls.config_class, table, source), name=name)
