"""QD score and coverage after the same evaluation budget: MAP-Elites emitters vs random.

For each genotype and seed, every algorithm gets the same number of evaluations
(iterations x batch size) into the same archive (one spec, built once), scored by the
same classifier. Vector genotypes (``cppn``) compare CMA-ME, iso-line and Gaussian
MAP-Elites; object genotypes (``sims``, ``cppn-neat``) compare the genome emitter
(genotype mutation/crossover); all against random search. The goal is MAP-Elites >= 1.5x
random's QD score on the categorical archive. The default budget is that of a default
``evoemotion run`` (150 iterations x 64 genomes).

    python benchmarks/qd.py [--genotypes cppn,sims] [--seeds 2] [--iterations 150]
        [--batch-size 64] [--archive categorical] [--classifier default]
"""

from __future__ import annotations

import argparse
import statistics

from budget import run_variants

from evoemotion.archives import make_archive_spec
from evoemotion.emotion import load_model
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.scoring import Scorer

#: (label, algorithm, options) compared for flat-vector and for object genotypes.
VECTOR_VARIANTS = [
    ("cma-me", "map-elites", {"emitter": "cma-me"}),
    ("iso-line", "map-elites", {"emitter": "iso-line"}),
    ("gaussian", "map-elites", {"emitter": "gaussian"}),
    ("random", "random", {}),
]
OBJECT_VARIANTS = [
    ("genome", "map-elites", {"emitter": "genome"}),
    ("random", "random", {}),
]


def main() -> None:
    """Run every (genotype, algorithm, seed) and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genotypes", default="cppn,sims", help="comma-separated presets")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per algorithm")
    parser.add_argument("--iterations", type=int, default=150, help="iterations per run")
    parser.add_argument("--batch-size", type=int, default=64, help="evaluations per iteration")
    parser.add_argument("--archive", default="categorical", help="archive kind")
    parser.add_argument("--cells", type=int, default=None, help="archive cells (default: kind's)")
    parser.add_argument("--classifier", default="default", help="checkpoint or 'default'")
    parser.add_argument("--device", default="auto", help="scoring device")
    parser.add_argument("--render-size", type=int, default=64, help="rendered side in px")
    parser.add_argument("--score-size", type=int, default=128, help="classifier input side")
    args = parser.parse_args()
    model = load_model(args.classifier)
    scorer = Scorer([model], device=args.device, batch_size=16, size=args.score_size)
    spec = make_archive_spec(args.archive, class_names=scorer.class_names,
                             regression_names=scorer.regression_names, scales=scorer.scales,
                             cells=args.cells, seed=0)
    budget = args.iterations * args.batch_size
    print(f"archive {args.archive} ({spec.cells} cells, objective {spec.objective}), "
          f"classifier {args.classifier} ({model.identity[:12]}), {budget} evaluations per "
          f"run, seeds 0..{args.seeds - 1}")
    print("| genotype | algorithm | QD score | QD sd | coverage | best objective | "
          "QD / random | s per run |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.genotypes.split(","):
        genotype = load_genotype(name)
        evaluator = Evaluator(genotype, scorer, render_size=args.render_size,
                              features=spec.features)
        variants = OBJECT_VARIANTS if genotype.solution_dim is None else VECTOR_VARIANTS
        results = run_variants(
            variants, genotype=genotype, spec=spec, evaluator=evaluator, seeds=args.seeds,
            iterations=args.iterations, batch_size=args.batch_size,
            summarize=lambda _state, row, seconds: (
                row["qd_score"], row["coverage"], row["max_objective"], seconds),
        )
        random_qd = statistics.mean(r[0] for r in results["random"])
        for label, runs in results.items():
            qd = [r[0] for r in runs]
            print(f"| {name} | {label} | {statistics.mean(qd):.2f} | "
                  f"{statistics.stdev(qd) if len(qd) > 1 else 0.0:.2f} | "
                  f"{statistics.mean(r[1] for r in runs):.3f} | "
                  f"{statistics.mean(r[2] for r in runs):.3f} | "
                  f"{statistics.mean(qd) / random_qd:.2f} | "
                  f"{statistics.mean(r[3] for r in runs):.1f} |")
        evaluator.close()


if __name__ == "__main__":
    main()
