"""End-to-end evaluation speed against its two stages alone, on the same batches.

For each classifier, times on the same genome batches: the renderer alone, the scorer
alone (on the pre-rendered images), rendering then scoring one after the other (serial),
and the :class:`~evoemotion.pipeline.Evaluator`, which renders chunk t+1 while chunk t is
scored. The goal is end-to-end >= 0.9 x scorer-only: the slower stage sets the pace. On
CPU it also times the scorer in bfloat16 autocast, with the largest probability difference
from float32 on the first batch. Every number comes from this run.

    python benchmarks/pipeline.py [--classifier default] [--classifier resnet50]
        [--device auto] [--render-size 64] [--score-size 128] [--batches 4]

A ``--classifier`` is a checkpoint, ``default``, or a backbone name (an untrained model
of that backbone is built: speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from evoemotion.emotion import available_backbones, build_model, load_model
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.render import render
from evoemotion.scoring import Scorer, resolve_device


def classifier(name: str):
    """Load a checkpoint, or build an untrained model of a backbone name."""
    if name in available_backbones():
        classes = ["amusement", "anger", "awe", "contentment", "disgust", "fear", "sadness"]
        return build_model(name, ["categorical", "vad"], classes, weights="none")
    return load_model(name)


def best_rates(stages: dict[str, Callable[[], object]], evaluations: int,
               repeats: int) -> dict[str, float]:
    """Best evaluations per second of each stage over ``repeats`` interleaved rounds.

    Rounds interleave the stages, so a slow spell of the shared machine hits them alike.
    """
    best = dict.fromkeys(stages, float("inf"))
    for _ in range(repeats):
        for name, work in stages.items():
            start = time.perf_counter()
            work()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: evaluations / seconds for name, seconds in best.items()}


def main() -> None:
    """Run the benchmark and print a markdown table, one row per classifier and precision."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", action="append", default=None,
                        help="checkpoint, 'default' or backbone name; repeatable")
    parser.add_argument("--genotype", default="cppn", help="genotype preset")
    parser.add_argument("--device", default="auto", help="scoring device")
    parser.add_argument("--render-size", type=int, default=64, help="rendered side in px")
    parser.add_argument("--score-size", type=int, default=128,
                        help="side the classifier sees (0 = its native size)")
    parser.add_argument("--batch-size", type=int, default=64, help="genomes per batch")
    parser.add_argument("--chunk-size", type=int, default=16,
                        help="genomes per render/score chunk inside a batch")
    parser.add_argument("--batches", type=int, default=4, help="batches per timing")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved timing rounds (best of)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="scoring precision timed: auto = bf16 on CUDA, fp32 and bf16 "
                        "on CPU")
    args = parser.parse_args()
    genotype = load_genotype(args.genotype)
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    batches = [np.stack(genotype.random(rng, args.batch_size)) for _ in range(args.batches)]
    evaluations = args.batches * args.batch_size
    size = args.score_size or None
    render(genotype, batches[0][:2], args.render_size)  # compile the kernels
    images = [render(genotype, b, args.render_size) for b in batches]
    print(f"genotype {args.genotype}, {args.batches} x {args.batch_size} genomes, chunks of "
          f"{args.chunk_size}, rendered at {args.render_size} px, scored at "
          f"{size or 'native'} px, torch threads {torch.get_num_threads()}")
    print("| classifier | device | precision | render | score | serial | end-to-end | "
          "e2e / score | max abs dp vs fp32 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.classifier or ["default"]:
        model = classifier(name)
        exact = Scorer([model], device=device, batch_size=args.chunk_size, size=size,
                       precision="fp32").score(images[0])["probs"]
        auto = ["bf16"] if device.type == "cuda" else ["fp32", "bf16"]
        for precision in auto if args.precision == "auto" else [args.precision]:
            scorer = Scorer([model], device=device, batch_size=args.chunk_size,
                            size=size, precision=precision)
            evaluator = Evaluator(genotype, scorer, render_size=args.render_size)
            evaluator.evaluate(batches[0][: args.chunk_size])  # warm-up
            rates = best_rates({
                "render": lambda: [render(genotype, b, args.render_size) for b in batches],
                "score": lambda s=scorer: [s.score(i) for i in images],
                "serial": lambda s=scorer: [s.score(render(genotype, b, args.render_size))
                                            for b in batches],
                "e2e": lambda e=evaluator: [e.evaluate(b) for b in batches],
            }, evaluations, args.repeats)
            evaluator.close()
            error = np.abs(scorer.score(images[0])["probs"] - exact).max()
            print(f"| {name} | {scorer.device.type} | {precision} | {rates['render']:.1f} | "
                  f"{rates['score']:.1f} | {rates['serial']:.1f} | {rates['e2e']:.1f} | "
                  f"{rates['e2e'] / rates['score']:.2f} | {error:.4f} |")
    print("(rates in evaluations per second; e2e/score = end-to-end over scorer alone, "
          "goal >= 0.9)")


if __name__ == "__main__":
    main()
