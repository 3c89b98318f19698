"""``evoemotion render``: genomes to PNG at any size.

``evoemotion render GENOME.json --size 2048 -o out.png`` renders one genome file;
``evoemotion render --random cppn --seed 0 -n 16 -o grid.png`` renders random genomes of a
preset as a contact sheet. Sources are gathered by :func:`collect`, which maps the
arguments to ``(genotype, genomes, names)``; a new kind of SOURCE (e.g. a run folder)
adds a branch there and its own options in :func:`register`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from evoemotion.cli.options import add_seed, add_size, positive_int
from evoemotion.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``render`` sub-command."""
    parser = subparsers.add_parser(
        "render",
        help="render genomes to PNG at any resolution",
        description=(
            "Render a genome file (JSON written by evoemotion, with its preset embedded or "
            "named) or random genomes of a genotype preset to a PNG. Several genomes are "
            "laid out as a grid."
        ),
    )
    parser.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="a genome JSON file, or a run folder (with --cell/--top: poster renders of "
        "its elites); omit it when using --random",
    )
    parser.add_argument(
        "--random",
        metavar="PRESET",
        help="render random genomes of this genotype preset (name such as cppn, or a .toml path)",
    )
    parser.add_argument(
        "-n",
        "--count",
        type=positive_int,
        default=16,
        help="with --random: how many genomes (default 16)",
    )
    add_seed(parser, what="with --random: seed of the random genomes")
    parser.add_argument(
        "--cell",
        action="append",
        default=None,
        metavar="CELL",
        help="with a run folder: an elite to render, by archive cell index "
        "(elites.csv's cell), grid coordinates such as 3,5, or a class "
        "name (its most probable elite); repeatable",
    )
    parser.add_argument(
        "--top",
        type=positive_int,
        default=None,
        metavar="K",
        help="with a run folder: render the K elites of highest objective",
    )
    add_size(
        parser,
        what="each image",
        default=None,
        shown="512 for one genome, 128 per grid cell, 2048 for run-folder posters",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="PNG file to write (required for a genome file or --random); "
        "with a run folder, the posters' folder (default RUN/posters)",
    )
    parser.add_argument(
        "--columns",
        type=positive_int,
        default=None,
        help="grid: images per row (default about square)",
    )
    parser.add_argument(
        "--gap", type=int, default=2, help="grid: white pixels between images (default 2)"
    )
    parser.add_argument(
        "--save-genomes",
        type=Path,
        metavar="DIR",
        default=None,
        help="also write each rendered genome as JSON into DIR (re-render one later at any size)",
    )
    parser.add_argument("--text", action="store_true", help="print each genome as readable text")
    parser.set_defaults(handler=run)


def collect(args: argparse.Namespace) -> tuple[Any, list[Any], list[str]]:
    """Gather the genomes the arguments name.

    Args:
        args: the parsed ``render`` arguments.

    Returns:
        ``(genotype, genomes, names)``, one name per genome (used for saved files).

    Raises:
        ConfigError: if neither or both of SOURCE and --random are given.
    """
    import numpy as np

    from evoemotion.genotypes import load_genotype
    from evoemotion.genotypes.files import read_genome

    if (args.source is None) == (args.random is None):
        raise ConfigError("give either a SOURCE genome file or --random PRESET")
    if args.random is not None:
        genotype = load_genotype(args.random)
        genomes = genotype.random(np.random.default_rng(args.seed), args.count)
        return (
            genotype,
            genomes,
            [f"{genotype.name}_{args.seed}_{i:03d}" for i in range(len(genomes))],
        )
    genotype, genome = read_genome(args.source)
    return genotype, [genome], [Path(args.source).stem]


def run(args: argparse.Namespace) -> int:
    """Render what :func:`collect` gathers and write the PNG (and genomes)."""
    from evoemotion.cli.progress import Bars
    from evoemotion.genotypes.files import write_genome
    from evoemotion.render import render
    from evoemotion.render.images import grid, save_png

    if args.source is not None and Path(args.source).is_dir():
        from evoemotion.cli.views import render_run

        return render_run(args)
    if args.cell or args.top:
        raise ConfigError("--cell and --top need a run folder as SOURCE")
    if args.output is None:
        raise ConfigError("-o/--output PNG is required for a genome file or --random")
    genotype, genomes, names = collect(args)
    size = args.size or (512 if len(genomes) == 1 else 128)
    with Bars("px", leave=False) as bars:
        images = render(genotype, genomes, size, progress=bars)
    image = images[0] if len(images) == 1 else grid(images, columns=args.columns, gap=args.gap)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_png(args.output, image)
    if args.save_genomes is not None:
        args.save_genomes.mkdir(parents=True, exist_ok=True)
        for name, genome in zip(names, genomes, strict=True):
            write_genome(args.save_genomes / f"{name}.json", genotype, genome)
    if args.text:
        for name, genome in zip(names, genomes, strict=True):
            print(f"{name}: {genotype.to_text(genome)}")
    print(
        f"wrote {args.output} ({image.shape[1]}x{image.shape[0]}, {len(genomes)} genome(s), "
        f"{genotype.kind} preset '{genotype.name}')"
    )
    return 0
