"""Coverage, QD score and mean novelty of the result archive, across search algorithms.

Every algorithm gets the same evaluation budget (iterations x batch size), the same seeds,
the same archive spec (built once per archive kind) and the same classifier:
MAP-Elites with CMA-ME and with Gaussian emitters (for object genotypes: the genome
emitter), novelty search, NSLC and random search. Novelty search and NSLC use their
defaults (behaviour = the archive's measures, k = 15, adaptive threshold). Every evaluated
image of every algorithm is offered to the result archive, so the numbers compare directly.

Columns: coverage and QD score of the result archive (mean over seeds, QD's standard
deviation), QD relative to random search, and the archive's mean novelty: each elite's
mean distance to its ``--novelty-k`` nearest other elites in measure space, with every
measure axis scaled to [0, 1] by the archive's ranges (higher = elites farther apart; it
falls as coverage rises and cells fill in, so read it next to coverage). Prints a markdown
table. The CPU is shared, so keep budgets modest.

    python benchmarks/compare_algorithms.py [--archives categorical,va] [--genotype cppn]
        [--seeds 2] [--iterations 12] [--batch-size 32] [--classifier default]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from budget import run_variants

from evoemotion.archives import make_archive_spec
from evoemotion.emotion import load_model
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.scoring import Scorer
from evoemotion.search.novelty_archive import mean_novelty

#: (label, algorithm, options) for flat-vector genotypes; object genotypes replace the three
#: vector emitters by the genome emitter.
VECTOR_VARIANTS = [
    ("MAP-Elites iso-line", "map-elites", {"emitter": "iso-line"}),
    ("MAP-Elites CMA-ME", "map-elites", {"emitter": "cma-me"}),
    ("MAP-Elites Gaussian", "map-elites", {"emitter": "gaussian"}),
]
OBJECT_VARIANTS = [("MAP-Elites genome", "map-elites", {"emitter": "genome"})]
COMMON_VARIANTS = [
    ("novelty", "novelty", {}),
    ("NSLC", "nslc", {}),
    ("random", "random", {}),
]


def archive_novelty(archive, spec, k: int) -> float:
    """Mean k-NN distance among the archive's elites, measures scaled to [0, 1]."""
    if spec.kind == "per-class":
        return float("nan")
    measures = archive.data("measures")
    low = np.array([lo for lo, _ in spec.ranges])
    high = np.array([hi for _, hi in spec.ranges])
    return mean_novelty((measures - low) / (high - low), k)


def main() -> None:
    """Run every (archive, algorithm, seed) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archives", default="categorical,va", help="comma-separated kinds")
    parser.add_argument("--genotype", default="cppn", help="genotype preset")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per algorithm")
    parser.add_argument("--iterations", type=int, default=12, help="iterations per run")
    parser.add_argument("--batch-size", type=int, default=32, help="evaluations per iteration")
    parser.add_argument("--novelty-k", type=int, default=3,
                        help="neighbours for the archive's mean novelty")
    parser.add_argument("--classifier", default="default", help="checkpoint or 'default'")
    parser.add_argument("--device", default="auto", help="scoring device")
    parser.add_argument("--render-size", type=int, default=64, help="rendered side in px")
    parser.add_argument("--score-size", type=int, default=128, help="classifier input side")
    args = parser.parse_args()
    model = load_model(args.classifier)
    scorer = Scorer([model], device=args.device, batch_size=16, size=args.score_size)
    genotype = load_genotype(args.genotype)
    variants = (OBJECT_VARIANTS if genotype.solution_dim is None else VECTOR_VARIANTS)
    variants = variants + COMMON_VARIANTS
    budget = args.iterations * args.batch_size
    print(f"genotype {args.genotype}, classifier {args.classifier}, {budget} evaluations per "
          f"run ({args.iterations} x {args.batch_size}), seeds 0..{args.seeds - 1}, "
          f"render {args.render_size} px, score {args.score_size} px\n")
    print("| archive | algorithm | coverage | QD score (sd) | QD / random | mean novelty "
          "| s/run |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind in args.archives.split(","):
        spec = make_archive_spec(kind, class_names=scorer.class_names,
                                 regression_names=scorer.regression_names,
                                 scales=scorer.scales, seed=0)
        evaluator = Evaluator(genotype, scorer, render_size=args.render_size,
                              features=spec.features)
        evaluator.evaluate(genotype.random(np.random.default_rng(0), 4))  # compile kernels
        def summarize(state, row, seconds, spec=spec):
            assert row["evaluations"] == budget, row["evaluations"]
            return (row["coverage"], row["qd_score"],
                    archive_novelty(state.archive, spec, args.novelty_k), seconds)

        results = run_variants(
            variants, genotype=genotype, spec=spec, evaluator=evaluator, seeds=args.seeds,
            iterations=args.iterations, batch_size=args.batch_size, summarize=summarize,
        )
        evaluator.close()
        random_qd = statistics.mean(r[1] for r in results["random"])
        for label, runs in results.items():
            qd = [r[1] for r in runs]
            sd = statistics.stdev(qd) if len(qd) > 1 else 0.0
            print(f"| {kind} ({spec.cells} cells) | {label} "
                  f"| {statistics.mean(r[0] for r in runs):.3f} "
                  f"| {statistics.mean(qd):.2f} ({sd:.2f}) "
                  f"| {statistics.mean(qd) / random_qd:.2f} "
                  f"| {statistics.mean(r[2] for r in runs):.3f} "
                  f"| {statistics.mean(r[3] for r in runs):.0f} |", flush=True)


if __name__ == "__main__":
    main()
