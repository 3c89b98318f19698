"""DQD (CMA-MEGA, OMG-MEGA) against iso-line MAP-Elites and random search at equal wall-clock.

Every run gets the same wall-clock budget (``--seconds``, default 300 s per run; at least one
iteration; one untimed warm-up iteration of every algorithm first) on the same
evaluator (bundled classifier, cppn genotype, images rendered at 64 px and scored at 128 px)
and fills the same archive spec; the objective is ``confidence`` everywhere (DQD needs a
differentiable one). Archives: ``va`` (20 x 20), ``categorical`` (1,024 CVT cells) and
``per-class``. For each run it prints QD score, coverage, the best probability of every class
over the archive's elites, evaluations and gradient evaluations, and ratios to iso-line and
to random. ``--algorithms ...,descent`` adds per-target descent (one genome per cell, Adam
towards the cell's centre through the same renderer and classifier, every image archived:
gradient search without QD) on ``va`` and ``categorical``. Reference rows: pixel-space
gradient ascent per class (a free 64 px image, Adam on
the class probability: the most the classifier can be pushed to at that size) and each
class's 99th-percentile probability over real Emotion6 images (``--real`` of them, when the
data is there). Targets on a 2-core CPU: va coverage >= 2x iso-line's, categorical QD >= 2x
iso-line's, per-class best image of every class >= that class's real 99th percentile.

With ``--evaluations N`` every run instead stops once it has evaluated N genomes (gradient
points included): the searches compared per evaluation, whatever an iteration costs on the
machine (what a GPU, where the backward passes are cheap, would see more of).

    python benchmarks/dqd.py [--seconds 300 | --evaluations N] [--seeds 2]
        [--archives va,categorical,per-class]
        [--algorithms cma-mega,cma-mega-paper,omg-mega,iso-line,random,descent]
        [--sigma S] [--lr L] [--optimizer O] [--restart R]
        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from evoemotion.archives import make_archive_spec
from evoemotion.choices import DQD_DEFAULTS
from evoemotion.emotion import load_model
from evoemotion.genotypes import load_genotype
from evoemotion.pipeline import Evaluator
from evoemotion.scoring import Scorer
from evoemotion.search import make_search

#: Cells (or bins per axis) of each archive kind in the comparison.
CELLS = {"va": 20, "categorical": 1024, "per-class": None}


def variants(args: argparse.Namespace) -> dict[str, tuple[str, dict]]:
    """Label -> (algorithm, options) of every compared search."""
    dqd = {"emitters": args.emitters, "sigma": args.sigma, "lr": args.lr,
           "optimizer": args.optimizer, "restart": args.restart}
    return {
        "cma-mega": ("dqd", {"emitter": "cma-mega", **dqd}),
        "cma-mega-paper": ("dqd", {"emitter": "cma-mega", **{key: DQD_DEFAULTS[key] for key in
                                                             ("emitters", "sigma", "lr",
                                                              "optimizer", "restart")}}),
        "cma-maega": ("dqd", {"emitter": "cma-maega", **dqd}),
        "omg-mega": ("dqd", {"emitter": "omg-mega", **dqd, "sigma": args.omg_sigma}),
        "iso-line": ("map-elites", {"emitter": "iso-line"}),
        "random": ("random", {}),
    }


def run_for(seconds: float, algorithm: str, options: dict, *, genotype, spec, evaluator,
            batch_size: int, seed: int, evaluations: int = 0) -> dict:
    """Step one search until ``seconds`` have passed (or, given ``evaluations``, until it
    has made that many, gradient points included); summarise its archive."""
    state = make_search(algorithm, genotype=genotype, spec=spec, batch_size=batch_size,
                        seed=seed, options=options)
    start = time.perf_counter()
    row = state.step(evaluator)
    while (row["evaluations"] < evaluations if evaluations
           else time.perf_counter() - start < seconds):
        row = state.step(evaluator)
    elapsed = time.perf_counter() - start
    data = state.archive.data()
    classes = [spec.output_names.index(c) for c in evaluator.scorer.class_names]
    best = data["outputs"][:, classes].max(axis=0) if len(data["index"]) else np.zeros(
        len(classes))
    return {"qd": row["qd_score"], "coverage": row["coverage"], "best": best,
            "evaluations": row["evaluations"],
            "gradients": row.get("gradient_evaluations", 0), "iterations": row["iteration"],
            "seconds": elapsed}


def cell_centres(spec) -> np.ndarray:
    """Every cell's centre in measure space: grid cell midpoints or the CVT centroids."""
    if spec.centroids is not None:
        return np.asarray(spec.centroids, dtype=np.float64)
    axes = [lo + (np.arange(n) + 0.5) * (hi - lo) / n
            for n, (lo, hi) in zip(spec.dims, spec.ranges, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))


def run_descent(seconds: float, *, genotype, spec, scorer, render_size: int, seed: int,
                evaluations: int = 0, lr: float = 0.05, chunk: int = 64) -> dict:
    """Per-target descent, the reference of gradient search without QD: one random genome
    per archive cell, each moved by Adam towards its cell's centre (squared distance of the
    measures, through the torch renderer, the 8-bit rounding passed straight through, and
    the classifier), clipped into the genome bounds; every image of every step goes into an
    archive of the spec, as a search's would. Stops as :func:`run_for` does."""
    from evoemotion.render.differentiable import render_torch
    from evoemotion.scoring import Outputs
    from evoemotion.search.archive_search import add_rows

    archive = spec.build_archive(solution_dim=int(genotype.solution_dim), seed=seed)
    targets = torch.from_numpy(cell_centres(spec))
    start = genotype.random(np.random.default_rng(seed), len(targets))
    genomes = torch.tensor(np.asarray(start), dtype=torch.float32, requires_grad=True)
    low, high = (torch.tensor(b, dtype=torch.float32) for b in zip(*genotype.bounds, strict=True))
    optimiser = torch.optim.Adam([genomes], lr=lr)
    frozen = [p for m in scorer.models for p in m.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    begin, done, steps = time.perf_counter(), 0, 0
    try:
        while not steps or (done < evaluations if evaluations
                            else time.perf_counter() - begin < seconds):
            optimiser.zero_grad()
            for rows in torch.arange(len(targets)).split(chunk):
                images = render_torch(genotype, genomes[rows], render_size)
                images = images + (torch.floor(images * 255 + 0.5) / 255 - images).detach()
                out = scorer.forward(images.to(scorer.device))
                _, measures = spec.rows(out)
                ((measures[:, 0].cpu() - targets[rows]) ** 2).sum().backward()
                placement = spec.objective_and_measures(
                    Outputs({k: v.detach().cpu().numpy() for k, v in out.items()}))
                add_rows(archive, genomes[rows].detach().double().numpy(), placement)
            done += len(targets)
            steps += 1
            optimiser.step()
            with torch.no_grad():
                genomes.copy_(torch.maximum(torch.minimum(genomes, high), low))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    data = archive.data()
    classes = [spec.output_names.index(c) for c in scorer.class_names]
    return {"qd": float(archive.stats.qd_score), "coverage": float(archive.stats.coverage),
            "best": data["outputs"][:, classes].max(axis=0), "evaluations": done,
            "gradients": done, "iterations": steps, "seconds": time.perf_counter() - begin}


def pixel_ascent(scorer: Scorer, size: int, steps: int) -> np.ndarray:
    """Best class probability reached by Adam on free images (one per class)."""
    k = len(scorer.class_names)
    logits = torch.zeros((k, 3, size, size), device=scorer.device, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        probs = scorer.forward(torch.sigmoid(logits))["probs"]
        loss = -probs[torch.arange(k), torch.arange(k)].sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        images = torch.floor(torch.sigmoid(logits) * 255 + 0.5) / 255
        return np.diag(scorer.score_tensor(images)["probs"])


def real_percentile(scorer: Scorer, count: int, size: int) -> np.ndarray | None:
    """Each class's 99th-percentile probability over ``count`` Emotion6 images, or None."""
    from PIL import Image

    from evoemotion.emotion.datasets import load_emotion6, read_image
    from evoemotion.errors import EvoEmotionError

    try:
        data = load_emotion6()
    except EvoEmotionError:
        return None
    picked = np.linspace(0, len(data) - 1, min(count, len(data))).astype(int)
    images = np.stack([np.asarray(Image.fromarray(read_image(data.path(int(i)))).resize(
        (size, size), Image.BILINEAR)) for i in picked])
    return np.percentile(scorer.score(images)["probs"], 99, axis=0)


def main() -> None:
    """Run every (archive, algorithm, seed) for the same wall-clock; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="wall-clock per run")
    parser.add_argument("--evaluations", type=int, default=0,
                        help="equal evaluations instead of equal wall-clock: every run stops "
                        "once it has evaluated this many genomes (gradient points included)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per algorithm")
    parser.add_argument("--archives", default="va,categorical,per-class")
    parser.add_argument("--algorithms", default="cma-mega,omg-mega,iso-line,random",
                        help="comma-separated: cma-mega, cma-mega-paper (the paper's settings "
                        "on every kind: DQD_DEFAULTS), cma-maega, omg-mega, iso-line, "
                        "random, descent (per-target descent; not on per-class)")
    parser.add_argument("--batch-size", type=int, default=64, help="genomes per iteration")
    parser.add_argument("--emitters", type=int, default=None,
                        help="DQD emitters (default: the archive kind's, DqdSearch)")
    parser.add_argument("--sigma", type=float, default=None,
                        help="CMA-MEGA sigma0 (default: the archive kind's)")
    parser.add_argument("--omg-sigma", type=float, default=1.0, help="OMG-MEGA sigma_g")
    parser.add_argument("--lr", type=float, default=None,
                        help="CMA-MEGA solution-point lr (default: the archive kind's)")
    parser.add_argument("--optimizer", default=None,
                        help="adam|gradient_ascent (default: the archive kind's)")
    parser.add_argument("--restart", default=None,
                        help="no-improvement|basic (default: the archive kind's)")
    parser.add_argument("--classifier", default="default", help="checkpoint or 'default'")
    parser.add_argument("--genotype", default="cppn", help="flat CPPN preset")
    parser.add_argument("--render-size", type=int, default=64)
    parser.add_argument("--score-size", type=int, default=128)
    parser.add_argument("--ascent-steps", type=int, default=100, help="pixel-space Adam steps")
    parser.add_argument("--real", type=int, default=400, help="Emotion6 images for the p99 row")
    parser.add_argument("--device", default="cpu", help="torch device of the scorer (cpu, cuda)")
    args = parser.parse_args()
    model = load_model(args.classifier)
    scorer = Scorer([model], device=args.device, batch_size=16, size=args.score_size)
    genotype = load_genotype(args.genotype)
    evaluator = Evaluator(genotype, scorer, render_size=args.render_size)
    names = scorer.class_names
    budget = (f"{args.evaluations} evaluations per run" if args.evaluations
              else f"{args.seconds:.0f} s per run")
    print(f"classifier {args.classifier} ({model.identity[:12]}), genotype {args.genotype}, "
          f"{args.render_size} px scored at {args.score_size} px, {budget}, "
          f"seeds 0..{args.seeds - 1}, batch {args.batch_size}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, device {args.device}")
    table = variants(args)
    for kind in args.archives.split(","):
        spec = make_archive_spec(kind, class_names=names, regression_names=scorer.regression_names,
                                 scales=scorer.scales, objective="confidence", cells=CELLS[kind])
        labels = [label for label in args.algorithms.split(",")
                  if label != "descent" or kind != "per-class"]  # per-class: ascent rows below
        for label in labels:  # untimed: torch/oneDNN set-up per shape
            if label == "descent":
                run_descent(0.0, genotype=genotype, spec=spec, scorer=scorer,
                            render_size=args.render_size, seed=99)
            else:
                algorithm, options = table[label]
                run_for(0.0, algorithm, options, genotype=genotype, spec=spec,
                        evaluator=evaluator, batch_size=args.batch_size, seed=99)
        results = {}
        for label in labels:
            if label == "descent":
                results[label] = [run_descent(args.seconds, genotype=genotype, spec=spec,
                                              scorer=scorer, render_size=args.render_size,
                                              seed=seed, evaluations=args.evaluations)
                                  for seed in range(args.seeds)]
                continue
            algorithm, options = table[label]
            results[label] = [run_for(args.seconds, algorithm, options, genotype=genotype,
                                      spec=spec, evaluator=evaluator,
                                      batch_size=args.batch_size, seed=seed,
                                      evaluations=args.evaluations)
                              for seed in range(args.seeds)]
        mean = {label: {key: statistics.mean(r[key] for r in runs) for key in
                        ("qd", "coverage", "evaluations", "gradients", "iterations", "seconds")}
                for label, runs in results.items()}
        print(f"\n{kind} ({spec.cells} cells)\n")
        print("| algorithm | QD score | coverage | QD / iso-line | coverage / iso-line | "
              "QD / random | evaluations | gradient evals | iterations | s | "
              + " | ".join(f"best {c}" for c in names) + " |")
        print("|---|" + "---:|" * (10 + len(names)))
        for label, runs in results.items():
            m = mean[label]
            iso, rnd = mean.get("iso-line"), mean.get("random")
            best = np.mean([r["best"] for r in runs], axis=0)
            print(f"| {label} | {m['qd']:.2f} | {m['coverage']:.3f} | "
                  f"{m['qd'] / iso['qd'] if iso else float('nan'):.2f} | "
                  f"{m['coverage'] / iso['coverage'] if iso else float('nan'):.2f} | "
                  f"{m['qd'] / rnd['qd'] if rnd else float('nan'):.2f} | "
                  f"{m['evaluations']:.0f} | {m['gradients']:.0f} | {m['iterations']:.0f} | "
                  f"{m['seconds']:.0f} | "
                  + " | ".join(f"{b:.3f}" for b in best) + " |")
        if args.seeds > 1:  # a mean can hide the seed that missed a class
            print(f"\n{kind}: best probability per class, each seed\n")
            print("| algorithm | seed | " + " | ".join(names) + " |")
            print("|---|---:|" + "---:|" * len(names))
            for label, runs in results.items():
                for seed, run in enumerate(runs):
                    print(f"| {label} | {seed} | " + " | ".join(f"{b:.3f}" for b in run["best"])
                          + " |")
    print("\nreference rows (best probability per class)\n")
    print("| reference | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    ascent = pixel_ascent(scorer, args.render_size, args.ascent_steps)
    print(f"| pixel-space ascent ({args.ascent_steps} Adam steps, {args.render_size} px) | "
          + " | ".join(f"{p:.3f}" for p in ascent) + " |")
    real = real_percentile(scorer, args.real, args.score_size)
    if real is None:
        print("| real Emotion6 p99 | data not found (set EVOEMOTION_DATA) |")
    else:
        print(f"| real Emotion6 p99 ({args.real} images) | "
              + " | ".join(f"{p:.3f}" for p in real) + " |")
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
