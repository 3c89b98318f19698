"""Genotypes: resolution-free genomes, their operators and their presets.

``load_genotype(NAME)`` reads ``genotypes/NAME.toml`` (or a path, or a resolved preset dict)
and returns a :class:`Genotype` of the kind the preset names:

- ``sims``: one DEAP expression tree per colour channel (:mod:`.sims`);
- ``cppn``: a fixed-topology CPPN as a flat real vector (:mod:`.cppn`);
- ``cppn-neat``: a CPPN graph with growing topology (:mod:`.neat`).

Genome files (JSON) are written and read by :mod:`.files`.
"""

from __future__ import annotations

from evoemotion.genotypes import cppn, neat, sims
from evoemotion.genotypes.base import KINDS, Genotype, load_genotype, register_kind
from evoemotion.genotypes.files import genome_document, read_genome, write_genome
from evoemotion.genotypes.presets import PresetConfig, available_presets

__all__ = [
    "KINDS",
    "Genotype",
    "PresetConfig",
    "available_presets",
    "cppn",
    "genome_document",
    "load_genotype",
    "neat",
    "read_genome",
    "register_kind",
    "sims",
    "write_genome",
]
