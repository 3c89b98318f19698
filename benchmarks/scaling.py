"""Evaluation speed with 1 and 2 local Dask workers against 0, and the Dask path's cost.

Builds one run (as ``evoemotion run`` does, in a temporary folder) and evaluates the same
genome batches with its own evaluator (0 workers: everything in this process) and with a
:class:`~evoemotion.distributed.DistributedEvaluator` on a local cluster of N worker
processes (``evoemotion run --workers N``). The two are timed alternately, batch by batch,
so that load from other processes hits both alike; every time is the best over the
batches. Start-up is timed apart: cluster start plus the first batch, in which every
worker loads the classifier and the Numba kernels.

The per-batch overhead of the Dask path is measured with 1 worker, batch by batch: the
wall time of encoding a batch, submitting it as one shard and receiving its outputs, minus
the time the worker spent evaluating it (timed inside the task, on its warm evaluator);
the median over the batches is printed.

    python benchmarks/scaling.py [--classifier efficientnet_lite0] [--workers 1,2]
        [--batch-size 64] [--chunk-size 16] [--render-size 64] [--score-size 128]
        [--batches 6]

A ``--classifier`` is a checkpoint, ``default``, or a backbone name (an untrained model
of that backbone is saved to the temporary folder: speed does not depend on the weights).
Scoring runs on the CPU, where workers use this process's torch thread count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evoemotion.distributed import (
    DistributedEvaluator,
    WorkerRecipe,
    dask_client,
    evaluate_shard,
)
from evoemotion.emotion import available_backbones, build_model, save_model
from evoemotion.experiment import Run, RunConfig, start_run


def classifier_source(name: str, folder: Path) -> str:
    """A checkpoint path or ``default``; a backbone name becomes an untrained checkpoint."""
    if name not in available_backbones():
        return name
    classes = ["amusement", "anger", "awe", "contentment", "disgust", "fear", "sadness"]
    model = build_model(name, ["categorical", "vad"], classes, weights="none")
    return str(save_model(model, folder / f"{name}.pt"))


def timed_shard(plugin: str, genomes: list[dict]) -> tuple[float, object]:
    """Worker task: evaluate one shard; return the seconds it took and its outputs."""
    start = time.perf_counter()
    out = evaluate_shard(plugin, genomes, False)
    return time.perf_counter() - start, out


def overhead(client, evaluator: DistributedEvaluator, genomes: list) -> float:
    """Seconds a one-shard round trip adds to the worker's own evaluation time."""
    start = time.perf_counter()
    encoded = [evaluator.genotype.to_dict(g) for g in genomes]
    inside, _ = client.submit(timed_shard, evaluator.plugin, encoded, pure=False).result()
    return time.perf_counter() - start - inside


def seconds(evaluator, genomes) -> float:
    """Wall time of one ``evaluate``."""
    start = time.perf_counter()
    evaluator.evaluate(genomes)
    return time.perf_counter() - start


def run_case(run: Run, workers: int, batches: list, warmup: list) -> dict[str, float]:
    """Start-up, best seconds per batch in-process and on the cluster, Dask overhead."""
    start = time.perf_counter()
    with dask_client(workers=workers) as client:
        evaluator = DistributedEvaluator(client, WorkerRecipe.from_run(run), fallback=run.evaluator)
        evaluator.evaluate(warmup)  # every worker builds its evaluator on its first shard
        result = {"startup": time.perf_counter() - start}
        local, dask, extra = [], [], []
        for genomes in batches:
            local.append(seconds(run.evaluator, genomes))
            dask.append(seconds(evaluator, genomes))
            if workers == 1:
                extra.append(overhead(client, evaluator, genomes))
        evaluator.close()
    result.update(local=min(local), dask=min(dask))
    if extra:
        result["overhead"] = float(np.median(extra))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--classifier",
        default="efficientnet_lite0",
        help="checkpoint, 'default' or backbone name (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        default="1,2",
        help="comma-separated local worker counts (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="genomes per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=16,
        help="genomes per render/score chunk (default: %(default)s)",
    )
    parser.add_argument(
        "--render-size", type=int, default=64, help="render side in px (default: %(default)s)"
    )
    parser.add_argument(
        "--score-size",
        type=int,
        default=128,
        help="classifier input side in px (default: %(default)s)",
    )
    parser.add_argument(
        "--batches", type=int, default=6, help="timed batches per case (default: %(default)s)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="evoemotion-scaling-") as tmp:
        config = RunConfig(
            classifiers=[classifier_source(args.classifier, Path(tmp))],
            device="cpu",
            iterations=0,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            render_size=args.render_size,
            score_size=args.score_size,
            cells=32,
        )
        run = start_run(config, Path(tmp) / "run")
        rng = np.random.default_rng(0)
        genotype = run.state.genotype
        warmup = genotype.random(rng, args.batch_size)
        run.evaluator.evaluate(warmup)
        batches = [genotype.random(rng, args.batch_size) for _ in range(args.batches)]
        counts = [int(w) for w in args.workers.split(",")]
        results = {w: run_case(run, w, batches, warmup) for w in counts}
        run.evaluator.close()

    print(
        f"{args.classifier}, batch {args.batch_size} (chunks of {args.chunk_size}), "
        f"render {args.render_size}px, score {args.score_size}px, "
        f"torch threads {torch.get_num_threads()}, best of {args.batches} batches\n"
    )
    print(
        "| workers | start-up s | s / batch, 0 workers | s / batch, Dask | "
        "evals/s, 0 workers | evals/s, Dask | Dask vs 0 workers |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for w in counts:
        r = results[w]
        print(
            f"| {w} | {r['startup']:.1f} | {r['local']:.3f} | {r['dask']:.3f} | "
            f"{args.batch_size / r['local']:.1f} | {args.batch_size / r['dask']:.1f} | "
            f"{r['local'] / r['dask']:.2f}x |"
        )
    if 1 in results:
        r = results[1]
        print(
            f"\nDask per-batch overhead (1 worker, one shard of {args.batch_size}, median): "
            f"{1000 * r['overhead']:.0f} ms = {100 * r['overhead'] / r['dask']:.1f}% of "
            "a batch"
        )


if __name__ == "__main__":
    main()
