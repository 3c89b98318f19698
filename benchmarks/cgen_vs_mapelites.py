"""Conditional generator vs searches (MAP-Elites, DQD, random) on the ``va`` grid, equal time.

Every method gets the same wall-clock budget on the same classifier, scoring resolution and
``va`` grid (:func:`evoemotion.archives.make_archive_spec`):

* the searches (``cppn`` genotype, as ``evoemotion run --archive va``: MAP-Elites with
  ``--emitter``, default CMA-ME; DQD where this checkout has ``--algorithm dqd``, with
  ``--objective none`` since it needs a differentiable objective; the random baseline)
  step until the budget is spent; their cells are the archive's elites;
* the conditional generator (:mod:`evoemotion.cgen`, its default training options) is
  evaluated untrained on every cell centre (``--latents`` images per cell: the baseline
  row; ``--no-baseline`` skips it), trains for the budget and is evaluated again. The
  evaluations are measurement, timed apart (``eval s``) and not charged to the budget, as
  a search's archive readout is not: on a loaded machine one evaluation (400 images)
  can take longer than the budget itself. A cell is
  *reached* when an image aimed at it lands in it, *reached x4 distinct* when 4 mutually
  distinct images (embedding cosine distance >= 0.05) aimed at it do;
* with ``--refine-steps`` (default 60), the generator trains for ``1 - --refine-share`` of
  the budget only (the ``cgen trained`` row), and the rest goes to test-time refinement
  (:func:`evoemotion.cgen.refine`: every cell's images refined through the classifier
  until they are on target, the steps run out or the budget is spent; a stalled image
  starts again from a fresh latent, ``--refine-restarts`` times, where another image has
  reached its cell, and, where none has, from an on-target image of the nearest reached cell
  (``--refine-borrow``, on by default); every fresh start the best of
  ``--refine-candidates`` latents; at most
  ``--refine-width`` images stepped at a time, those nearest their targets first): the
  ``cgen trained + refined`` row, charged its training and its refinement.

Printed: per method the work done, seconds, coverage; for the generator the cells reached,
the share of the best search's cells it reaches on target (the issue's target: >= 70 %),
the mean absolute V/A error on those cells and overall, and the time to sample an 8 x 8
grid at ``--grid-size`` px; then cell-for-cell counts against every search.

Results go to ``--out`` (default ``runs/cgen_vs_mapelites/``, git-ignored): ``results.json``
(per generator row also every cell's hits and distinct hits), the trained generator
(``generator.pt``, for ``evoemotion cgen sample|evaluate``) and PNG sample grids (the
timed 8 x 8 grid, stored at 128 px per image, and every reached cell's images).
``--methods`` runs some methods only; rows of an earlier run with the same setup in
``results.json`` are kept, so a method can be added later, and ``--also DIR`` merges the
rows of methods run at the same time in other processes.

    python benchmarks/cgen_vs_mapelites.py [--budget 240] [--cells 10] [--seed 0]
        [--methods map-elites,dqd,random,cgen] [--classifier default] [--latents 4]
        [--refine-steps 60] [--refine-share 0.5] [--refine-restarts 10]
        [--refine-candidates 8] [--refine-width 32] [--no-refine-borrow]
        [--refine-distinct 0.07]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from evoemotion.archives import make_archive_spec
from evoemotion.atomic import atomic_write
from evoemotion.cgen import (
    Architecture,
    ConditionalGenerator,
    GeneratorTrainConfig,
    Refinement,
    TargetSpace,
    Trainer,
    sample_grid,
    save_generator,
)
from evoemotion.cgen import evaluate as evaluate_generator
from evoemotion.emotion import load_model
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.render.images import grid, save_png
from evoemotion.scoring import Scorer
from evoemotion.search import ALGORITHMS, make_search

SEARCHES = ("map-elites", "dqd", "random")


def run_search(algorithm: str, spec, scorer, args) -> dict:
    """Step a search until the budget is spent; return its cells and counts."""
    if algorithm == "dqd":  # DQD needs a differentiable objective: same grid, objective none
        spec = make_archive_spec("va", class_names=scorer.class_names,
                                 regression_names=scorer.regression_names, scales=scorer.scales,
                                 cells=spec.dims[0], objective="none")
    genotype = load_genotype("cppn")
    evaluator = Evaluator(genotype, scorer, render_size=args.render_size, features=spec.features)
    evaluator.evaluate(genotype.random(np.random.default_rng(0), 2))  # compile the kernels
    options = {"emitter": args.emitter} if algorithm == "map-elites" else {}
    state = make_search(algorithm, genotype=genotype, spec=spec, batch_size=args.batch_size,
                        seed=args.seed, options=options)
    start = time.perf_counter()
    while time.perf_counter() - start < args.budget:
        state.step(evaluator)
    evaluator.close()
    return {"cells": sorted(int(i) for i in state.archive.data("index")),
            "work": f"{state.evaluations:,} evaluations",
            "seconds": time.perf_counter() - start}


def generator_row(result, work: str, seconds: float) -> dict:
    """A results row from a generator evaluation."""
    summary = result.summary()
    errors = np.full(result.n_cells, np.nan)
    errors[result.cells] = result.errors().mean(axis=(1, 2))
    return {"cells": sorted({int(c) for c in result.sample_cells.ravel() if c >= 0}),
            "reached": sorted(int(c) for c in result.cells[result.reached]),
            "distinct": sorted(int(c) for c in result.cells[result.distinct_hits >= 4]),
            "hits": result.hits.sum(axis=1).tolist(),
            "distinct_hits": result.distinct_hits.tolist(),
            "cell_errors": errors.tolist(),
            "mae": summary["mae"], "diversity": summary["diversity_embedding"],
            "work": work, "seconds": seconds}


def run_generator(model, spec, scorer, args, out: Path) -> dict:
    """Evaluate the untrained generator (unless --no-baseline), train it for the budget,
    evaluate it; the evaluations are timed apart (see the module docstring)."""
    generator = ConditionalGenerator(TargetSpace.from_model(model, "va"),
                                     Architecture(seed=args.seed))
    options = {"latents": args.latents, "size": args.render_size, "seed": args.seed,
               "spec": spec}
    rows = {}
    if args.baseline:
        start = time.perf_counter()
        untrained = evaluate_generator(generator, scorer, **options)
        rows["cgen untrained"] = generator_row(untrained, "0 steps", 0.0)
        rows["cgen untrained"]["eval_seconds"] = time.perf_counter() - start
    trainer = Trainer(generator, model,
                      GeneratorTrainConfig(train_size=args.render_size,
                                           classifier_size=args.score_size, seed=args.seed),
                      device=scorer.device)
    refine_seconds = args.budget * args.refine_share if args.refine_steps else 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < args.budget - refine_seconds:
        trainer.train_step()
    seconds = time.perf_counter() - start
    save_generator(out / "generator.pt", generator, model, classifier_source=args.classifier)
    start = time.perf_counter()
    trained = evaluate_generator(generator, scorer, **options)
    rows["cgen trained"] = generator_row(trained, f"{trainer.step:,} steps", seconds)
    rows["cgen trained"]["eval_seconds"] = time.perf_counter() - start
    if args.refine_steps:
        refinement = Refinement(steps=args.refine_steps, lr=args.refine_lr,
                                restarts=args.refine_restarts, borrow=args.refine_borrow,
                                distinct=args.refine_distinct,
                                candidates=args.refine_candidates,
                                width=args.refine_width,
                                seconds=args.budget - seconds, size=args.render_size,
                                classifier_size=args.score_size)
        start = time.perf_counter()
        refined = evaluate_generator(generator, scorer, **options, refinement=refinement)
        spent = refined.refined["seconds"]
        work = (f"{trainer.step:,} steps + {refined.refined['steps']:.0f} refinement steps "
                f"({refined.refined['image_steps']:,.0f} image steps)")
        rows["cgen trained + refined"] = generator_row(refined, work, seconds + spent)
        rows["cgen trained + refined"].update(eval_seconds=time.perf_counter() - start - spent,
                                              refinement=refinement.to_dict())
        save_reached(generator, refined, out / "cgen_refined_reached_cells.png",
                     args.render_size)
    start, cpu = time.perf_counter(), time.process_time()
    images = sample_grid(generator, 8, 8, args.grid_size, seed=args.seed, shared_latent=False)
    grid_seconds, grid_cpu = time.perf_counter() - start, time.process_time() - cpu
    small = images[:, :: max(1, args.grid_size // 128), :: max(1, args.grid_size // 128)]
    save_png(out / "cgen_grid_8x8.png", grid(small, columns=8, gap=2))
    save_reached(generator, trained, out / "cgen_reached_cells.png", args.render_size)
    rows["cgen trained"].update(grid_seconds=grid_seconds, grid_cpu=grid_cpu,
                                grid_size=args.grid_size)
    return rows


def save_reached(generator, result, path: Path, size: int) -> None:
    """A PNG of every reached cell's images, one row per cell (nothing when none)."""
    picked = result.reached
    if picked.any():
        weights = torch.from_numpy(result.programs[picked])
        images = generator.render_programs(weights.reshape(-1, weights.shape[-1]), size)
        save_png(path, grid(images, columns=weights.shape[1], gap=2))


def print_tables(results: dict, n_cells: int, grid_size: int) -> None:
    """The method table and the cell-for-cell table."""
    searches = [label for label, row in results.items() if "reached" not in row]
    best = max(searches, key=lambda label: len(results[label]["cells"]), default=None)
    best_cells = set(results[best]["cells"]) if best else set()
    print(f"| method | work | s | coverage | cells reached on target | x4 distinct | "
          f"share of {best or 'search'}'s cells reached | V/A MAE there | V/A MAE all |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, row in results.items():
        coverage = len(row["cells"]) / n_cells
        line = f"| {label} | {row['work']} | {row['seconds']:.0f} | {coverage:.2f}"
        if "reached" in row:
            reached = set(row["reached"])
            there = [row["cell_errors"][c] for c in best_cells]
            share = len(reached & best_cells) / len(best_cells) if best_cells else 0.0
            line += (f" | {len(reached)} | {len(row['distinct'])} "
                     f"| {len(reached & best_cells)}/{len(best_cells)} = {share:.0%} "
                     f"| {np.mean(there) if there else float('nan'):.2f} | {row['mae']:.2f} |")
        else:
            line += " | - | - | - | - | - |"
        print(line)
    trained = results.get("cgen trained")
    if trained and "grid_seconds" in trained:
        print(f"\n8 x 8 grid at {trained.get('grid_size', grid_size)} px sampled in "
              f"{trained['grid_seconds']:.1f} s "
              f"({trained['grid_cpu']:.1f} s of CPU time)")
    generators = [label for label in results if "reached" in results[label]]
    print(f"\n| cells (of {n_cells}) | both | search only | generator only |")
    print("|---|---:|---:|---:|")
    for search in searches:
        filled = set(results[search]["cells"])
        for label in generators:
            reached = set(results[label]["reached"])
            print(f"| {search} vs {label} (reached) | {len(filled & reached)} "
                  f"| {len(filled - reached)} | {len(reached - filled)} |")


def main() -> None:
    """Run the methods and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240, help="seconds per method")
    parser.add_argument("--cells", type=int, default=10, help="bins per axis of the va grid")
    parser.add_argument("--seed", type=int, default=0, help="seed of every method")
    parser.add_argument("--classifier", default="default", help="checkpoint or 'default'")
    parser.add_argument("--methods", default=",".join((*SEARCHES, "cgen")),
                        help="comma-separated: map-elites, dqd, random, cgen")
    parser.add_argument("--emitter", default="cma-me", help="MAP-Elites emitter")
    parser.add_argument("--latents", type=int, default=4, help="generator images per cell")
    parser.add_argument("--batch-size", type=int, default=64, help="search batch size")
    parser.add_argument("--render-size", type=int, default=64, help="rendered side in px")
    parser.add_argument("--score-size", type=int, default=128, help="classifier input side")
    parser.add_argument("--grid-size", type=int, default=1024,
                        help="side of the timed 8x8 sample grid's images")
    parser.add_argument("--out", type=Path, default=Path("runs/cgen_vs_mapelites"),
                        help="folder for results.json and the PNG grids")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="evaluate the untrained generator too (default: yes)")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="DIR",
                        help="merge the rows of another --out folder of the same setup into "
                        "the tables (e.g. methods run at the same time in other processes)")
    parser.add_argument("--refine-steps", type=int, default=60,
                        help="refinement steps per image of the 'cgen trained + refined' row, "
                        "0 = no such row (the generator then trains for the whole budget)")
    parser.add_argument("--refine-share", type=float, default=0.5,
                        help="share of the generator's budget kept for refinement: it trains "
                        "for the rest (default: %(default)s)")
    parser.add_argument("--refine-lr", type=float, default=Refinement.lr,
                        help="Adam learning rate of the refinement")
    parser.add_argument("--refine-restarts", type=int, default=Refinement.restarts,
                        help="fresh starts of a stalled image whose cell another image has "
                        "reached (default: %(default)s)")
    parser.add_argument("--refine-borrow", action=argparse.BooleanOptionalAction,
                        default=Refinement.borrow,
                        help="restart images of unreached cells from a neighbour's on-target "
                        "image (cgen evaluate --refine-borrow)")
    parser.add_argument("--refine-distinct", type=float, default=Refinement.distinct,
                        help="an on-target twin (classifier-embedding cosine distance below "
                        "this to a finished sibling) is not done (cgen evaluate "
                        "--refine-distinct; 0 = off)")
    parser.add_argument("--refine-candidates", type=int, default=Refinement.candidates,
                        help="latents screened (scored once) for each start of a refined "
                        "image; the best is refined (default: %(default)s)")
    parser.add_argument("--refine-width", type=int, default=Refinement.width,
                        help="images refined at a time, nearest their targets first "
                        "(default: %(default)s)")
    parser.add_argument("--device", default="auto", help="torch device")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - {*SEARCHES, "cgen"})
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)}")
    model = load_model(args.classifier)
    scorer = Scorer([model], device=args.device, batch_size=16, size=args.score_size)
    spec = make_archive_spec("va", class_names=scorer.class_names,
                             regression_names=scorer.regression_names, scales=scorer.scales,
                             cells=args.cells)
    setup = {"classifier": model.identity[:12], "cells": args.cells, "budget": args.budget,
             "seed": args.seed, "render": args.render_size, "score": args.score_size,
             "latents": args.latents, "emitter": args.emitter}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    results = earlier.get("rows", {}) if earlier.get("setup") == setup else {}
    print(f"classifier {args.classifier} ({setup['classifier']}), va grid {args.cells}x"
          f"{args.cells} over {spec.ranges}, budget {args.budget:.0f} s per method, render "
          f"{args.render_size} px, score {args.score_size} px, seed {args.seed}, device "
          f"{scorer.device}, load {os.getloadavg()[0]:.1f}\n")
    for method in methods:
        if method == "cgen":
            results.update(run_generator(model, spec, scorer, args, args.out))
        elif method not in ALGORITHMS:
            print(f"{method}: not available on this checkout (no --algorithm {method})")
            continue
        else:
            label = f"MAP-Elites {args.emitter}" if method == "map-elites" else method
            results[label] = run_search(method, spec, scorer, args)
        atomic_write(path, json.dumps({"setup": setup, "rows": results}, indent=1).encode())
    for other in args.also:
        document = json.loads((other / "results.json").read_text())
        if document["setup"] != setup:
            parser.error(f"--also {other}: its setup {document['setup']} differs from {setup}")
        results.update(document["rows"])
    print(f"(load after the run {os.getloadavg()[0]:.1f}; results in {path})\n")
    print_tables(results, spec.cells, args.grid_size)


if __name__ == "__main__":
    main()
