"""Genome files: one genome as JSON, self-contained enough to re-render anywhere.

A genome file is :meth:`Genotype.to_dict` plus ``"preset"``, the resolved preset
(:attr:`Genotype.preset`), so ``evoemotion render GENOME.json`` needs nothing else. A file
without ``"preset"`` names its preset in ``"genotype"``, which is then looked up like
``--genotype NAME``. Extra keys (scores, archive cell, ...) are allowed and ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evoemotion.errors import ConfigError, GenomeError
from evoemotion.genotypes.base import Genotype, load_genotype


def genome_document(genotype: Genotype, genome: Any, **extra: Any) -> dict[str, Any]:
    """The JSON-able content of a genome file.

    Args:
        genotype: the genome's genotype.
        genome: the genome.
        **extra: further JSON-able keys to store (e.g. scores).

    Returns:
        ``to_dict(genome)`` with ``"preset"`` and the extra keys.
    """
    return {**genotype.to_dict(genome), "preset": genotype.preset, **extra}


def write_genome(
    path: str | os.PathLike[str], genotype: Genotype, genome: Any, **extra: Any
) -> None:
    """Write a genome file atomically (temporary file in the same folder, fsync, rename).

    Args:
        path: the ``.json`` file to write.
        genotype: the genome's genotype.
        genome: the genome.
        **extra: further JSON-able keys to store.
    """
    from evoemotion.atomic import atomic_write

    text = json.dumps(genome_document(genotype, genome, **extra), indent=1) + "\n"
    atomic_write(Path(path), text.encode())


def read_genome(path: str | os.PathLike[str]) -> tuple[Genotype, Any]:
    """Read a genome file.

    Args:
        path: a file written by :func:`write_genome` (or any JSON with ``kind`` and the
            genome fields, plus ``preset`` or ``genotype``).

    Returns:
        ``(genotype, genome)``.

    Raises:
        GenomeError: naming the file, if it cannot be read or a genome field is bad.
        ConfigError: naming the file, if its preset is invalid or unknown.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise GenomeError(f"{path}: cannot read genome file ({err.strerror})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GenomeError(
            f"{path}: not a genome file (binary data, not UTF-8 JSON text; an image?)"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GenomeError(
            f"{path}: not a genome file (not JSON: {err.msg} at line {err.lineno} "
            f"column {err.colno})"
        ) from None
    if not isinstance(data, dict):
        raise GenomeError(
            f"{path}: a genome file must hold a JSON object, got a JSON {type(data).__name__}"
        )
    preset = data.get("preset", data.get("genotype"))
    if not isinstance(preset, (dict, str)):
        raise GenomeError(f"{path}: field 'preset' (or 'genotype'): missing or not a preset")
    try:
        genotype = load_genotype(preset)
        return genotype, genotype.from_dict(data)
    except GenomeError as err:
        raise GenomeError(f"{path}: {err}") from err
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        reason = (str(err).splitlines() or [""])[0][:200]
        raise GenomeError(f"{path}: malformed genome ({type(err).__name__}: {reason})") from None
