"""Shared by the QD benchmarks: run search variants for the same budget over several seeds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from evoemotion.search import make_search


def run_variants(
    variants: Sequence[tuple[str, str, dict]],
    *,
    genotype: Any,
    spec: Any,
    evaluator: Any,
    seeds: int,
    iterations: int,
    batch_size: int,
    summarize: Callable[[Any, dict, float], tuple],
) -> dict[str, list[tuple]]:
    """Run every (label, algorithm, options) variant for seeds 0..seeds-1.

    Args:
        variants: (label, algorithm name, algorithm options) triples.
        genotype: The genotype every variant evolves.
        spec: The archive spec every variant fills.
        evaluator: The shared evaluator.
        seeds: How many seeds per variant.
        iterations: Iterations per run.
        batch_size: Genomes per iteration.
        summarize: ``f(state, last metrics row, seconds) -> tuple`` kept per run.

    Returns:
        For each label, the summaries of its runs in seed order.
    """
    results = {}
    for label, algorithm, options in variants:
        runs = []
        for seed in range(seeds):
            start = time.perf_counter()
            state = make_search(algorithm, genotype=genotype, spec=spec,
                                batch_size=batch_size, seed=seed, options=options)
            for _ in range(iterations):
                row = state.step(evaluator)
            runs.append(summarize(state, row, time.perf_counter() - start))
        results[label] = runs
    return results
