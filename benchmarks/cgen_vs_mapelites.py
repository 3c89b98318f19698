"""Conditional generator vs MAP-Elites on the ``va`` archive, cell for cell, equal wall clock.

Both methods get the same wall-clock budget on the same classifier, scoring resolution and
``va`` grid (:func:`evoemotion.archives.make_archive_spec`):

* MAP-Elites (``cppn`` genotype, ``--emitter``, default CMA-ME, otherwise as ``evoemotion
  run --archive va``) and the random baseline step until the budget is spent; their cells
  are the archive's elites.
* The conditional generator is first evaluated untrained on every cell (``latents``
  images per cell centre, :func:`evoemotion.cgen.evaluate`: the baseline row, which also
  times one evaluation); it then trains for the budget minus that time and is evaluated
  again the same way, so training plus final evaluation take the budget.
  Its cells are those its images land in (``coverage``), and a cell counts as *reached*
  when an image aimed at that cell lands in it.

Printed: per method the evaluations (or training steps), seconds, archive coverage, and
for the generator the fraction of cells reached and the mean absolute V/A error of its
images; then a cell-for-cell table: cells both fill, only MAP-Elites, only the generator.

    python benchmarks/cgen_vs_mapelites.py [--budget 300] [--cells 10] [--seed 0]
        [--classifier default] [--emitter cma-me] [--latents 4] [--device auto]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evoemotion.archives import make_archive_spec
from evoemotion.cgen import Architecture, ConditionalGenerator, TargetSpace, TrainConfig, Trainer
from evoemotion.cgen import evaluate as evaluate_generator
from evoemotion.emotion import load_model
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.scoring import Scorer
from evoemotion.search import make_search


def run_search(algorithm: str, options: dict, spec, scorer, args) -> dict:
    """Step a search until the budget is spent; return its cells and counts."""
    genotype = load_genotype("cppn")
    evaluator = Evaluator(genotype, scorer, render_size=args.render_size,
                          features=spec.features)
    evaluator.evaluate(genotype.random(np.random.default_rng(0), 2))  # compile the kernels
    state = make_search(algorithm, genotype=genotype, spec=spec, batch_size=args.batch_size,
                        seed=args.seed, options=options)
    start = time.perf_counter()
    while time.perf_counter() - start < args.budget:
        state.step(evaluator)
    evaluator.close()
    cells = set(int(i) for i in state.archive.data("index"))
    return {"cells": cells, "work": f"{state.evaluations} evaluations",
            "seconds": time.perf_counter() - start}


def run_generator(model, spec, scorer, args) -> tuple[dict, dict]:
    """Evaluate the untrained generator, then train + evaluate it within the budget.

    The untrained evaluation is the baseline row and also times one evaluation; the
    generator then trains for the budget minus that time and is evaluated again, so its
    training and its final evaluation together take about the budget.
    """
    generator = ConditionalGenerator(TargetSpace.from_model(model, "va"),
                                     Architecture(seed=args.seed))
    options = {"cells": spec.dims[0], "latents": args.latents, "size": args.render_size,
               "seed": args.seed}
    evaluate_generator(generator, scorer, cells=2, latents=1, size=args.render_size)  # warm up
    start = time.perf_counter()
    untrained = evaluate_generator(generator, scorer, **options)
    evaluation_time = time.perf_counter() - start
    trainer = Trainer(generator, model,
                      TrainConfig(train_size=args.render_size, classifier_size=args.score_size,
                                  diversity_weight=args.diversity_weight, seed=args.seed),
                      device=scorer.device)
    start = time.perf_counter()
    while time.perf_counter() - start < args.budget - evaluation_time:
        trainer.train_step()
    trained = evaluate_generator(generator, scorer, **options)
    seconds = time.perf_counter() - start
    rows = {}
    for label, result, work, spent in (
        ("cgen untrained", untrained, "0 steps", evaluation_time),
        ("cgen trained", trained, f"{trainer.step} steps", seconds),
    ):
        summary = result.summary()
        rows[label] = {"cells": set(int(c) for c in result.sample_cells.ravel() if c >= 0),
                       "reached": summary["reached"], "mae": summary["mae"], "work": work,
                       "seconds": spent, "diversity": summary["diversity_pixels"]}
    return rows["cgen untrained"], rows["cgen trained"]


def main() -> None:
    """Run both methods and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300, help="seconds per method")
    parser.add_argument("--cells", type=int, default=10, help="bins per axis of the va grid")
    parser.add_argument("--seed", type=int, default=0, help="seed of every method")
    parser.add_argument("--classifier", default="default", help="checkpoint or 'default'")
    parser.add_argument("--emitter", default="cma-me", help="MAP-Elites emitter")
    parser.add_argument("--latents", type=int, default=4, help="generator images per cell")
    parser.add_argument("--diversity-weight", type=float, default=TrainConfig().diversity_weight,
                        help="generator's mode-seeking weight")
    parser.add_argument("--batch-size", type=int, default=64, help="MAP-Elites batch size")
    parser.add_argument("--render-size", type=int, default=64, help="rendered side in px")
    parser.add_argument("--score-size", type=int, default=128, help="classifier input side")
    parser.add_argument("--device", default="auto", help="torch device")
    args = parser.parse_args()
    model = load_model(args.classifier)
    scorer = Scorer([model], device=args.device, batch_size=16, size=args.score_size)
    spec = make_archive_spec("va", class_names=scorer.class_names,
                             regression_names=scorer.regression_names, scales=scorer.scales,
                             cells=args.cells)
    print(f"classifier {args.classifier}, va grid {args.cells}x{args.cells} over "
          f"{spec.ranges}, budget {args.budget:.0f} s per method, render {args.render_size} "
          f"px, score {args.score_size} px, seed {args.seed}, device {scorer.device}\n")
    mapelites = f"MAP-Elites {args.emitter}"
    results = {
        mapelites: run_search("map-elites", {"emitter": args.emitter}, spec, scorer, args),
        "random": run_search("random", {}, spec, scorer, args),
    }
    results["cgen untrained"], results["cgen trained"] = run_generator(model, spec, scorer,
                                                                         args)
    print("| method | work | s | coverage | cells reached on target | V/A MAE | diversity |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, row in results.items():
        reached = f"{row['reached']:.3f}" if "reached" in row else "-"
        mae = f"{row['mae']:.2f}" if "mae" in row else "-"
        diversity = f"{row['diversity']:.3f}" if "diversity" in row else "-"
        print(f"| {label} | {row['work']} | {row['seconds']:.0f} "
              f"| {len(row['cells']) / spec.cells:.3f} | {reached} | {mae} | {diversity} |")
    print(f"\n| cells (of {spec.cells}) | both | MAP-Elites only | cgen only |")
    print("|---|---:|---:|---:|")
    elites = results[mapelites]["cells"]
    for label in ("cgen untrained", "cgen trained"):
        generated = results[label]["cells"]
        print(f"| {mapelites} vs {label} | {len(elites & generated)} "
              f"| {len(elites - generated)} | {len(generated - elites)} |")


if __name__ == "__main__":
    main()
