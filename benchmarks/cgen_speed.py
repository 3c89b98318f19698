"""Conditional generator speed: a training step's profile, and an 8 x 8 sample grid.

Two tables:

* **training step** (a profile, no baseline) at ``GeneratorTrainConfig``'s defaults, ``va``
  targets, the bundled classifier, after ``--warmup`` untimed steps: generator forward,
  classifier forward (preprocessing, crops and losses included), backward, and
  optimiser/target-map bookkeeping;
* **sampling** an 8 x 8 grid (``evoemotion cgen sample``'s default) at ``--size`` px with
  the torch renderer (baseline, measured in the same run) and the Numba renderer
  (``renderer="auto"`` on a CPU).

Wall seconds and CPU seconds (all threads) are printed; on a shared machine the CPU time
is the steadier number.

    python benchmarks/cgen_speed.py [--steps 4] [--warmup 2] [--size 1024] [--grid 8]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from evoemotion.cgen import (
    Architecture,
    ConditionalGenerator,
    GeneratorTrainConfig,
    TargetSpace,
    Trainer,
    sample_grid,
)
from evoemotion.emotion import load_model


def timed(function):
    """(result, wall seconds, CPU seconds) of a call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def step_parts(trainer: Trainer) -> dict[str, tuple[float, float]]:
    """One training step, as :meth:`Trainer.train_step` does it, timed part by part."""
    batch, parts = trainer.config.batch_size, {}
    targets = trainer.sampler.sample(batch, trainer.rng)
    targets = torch.cat([targets, targets]).to(trainer.device)
    z = trainer.generator.latents(2 * batch, trainer.rng)
    images, *parts["generator forward"] = timed(
        lambda: trainer.generator(targets, z, trainer.config.train_size)
    )
    (loss, _, predicted), *parts["classifier forward + losses"] = timed(
        lambda: trainer.losses(targets, z, images)
    )
    trainer.optimizer.zero_grad(set_to_none=True)
    _, *parts["backward"] = timed(loss.backward)

    def bookkeeping():
        torch.nn.utils.clip_grad_norm_(trainer.generator.parameters(), trainer.config.grad_clip)
        trainer.optimizer.step()
        trainer.sampler.update(targets, predicted)

    _, *parts["clip + Adam + target map"] = timed(bookkeeping)
    return parts


def main() -> None:
    """Measure and print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--size", type=int, default=1024, help="side of the grid's images")
    parser.add_argument("--grid", type=int, default=8, help="grid columns and rows")
    parser.add_argument("--classifier", default="default", help="checkpoint or 'default'")
    args = parser.parse_args()
    model = load_model(args.classifier)
    space = TargetSpace.from_model(model, "va")
    config = GeneratorTrainConfig()
    print(
        f"classifier {model.identity[:12]}, {torch.get_num_threads()} torch threads, "
        f"batch {config.batch_size} x 2 latents, train {config.train_size} px, classifier "
        f"{config.classifier_size} px, load {os.getloadavg()[0]:.1f}\n"
    )

    trainer = Trainer(ConditionalGenerator(space, Architecture()), model, config)
    for _ in range(args.warmup):
        trainer.train_step()
    samples = [step_parts(trainer) for _ in range(args.steps)]
    parts = {
        part: [sum(s[part][i] for s in samples) / args.steps for i in (0, 1)] for part in samples[0]
    }
    print("| training step (profile) | wall s | CPU s | share of the step (wall) |")
    print("|---|---:|---:|---:|")
    wall, cpu = (sum(values[i] for values in parts.values()) for i in (0, 1))
    print(f"| whole step | {wall:.2f} | {cpu:.2f} | 100 % |")
    for part, (part_wall, part_cpu) in parts.items():
        print(f"| - {part} | {part_wall:.2f} | {part_cpu:.2f} | {part_wall / wall:.0%} |")

    generator = trainer.generator
    sample_grid(generator, 2, 1, 64, renderer="numba")  # compile / load the kernels
    print(
        f"\n| {args.grid} x {args.grid} grid at {args.size} px | wall s | CPU s | "
        "ratio to baseline (wall) |"
    )
    print("|---|---:|---:|---:|")
    base = None
    for renderer in ("torch", "numba"):
        _, wall, cpu = timed(
            lambda renderer=renderer: sample_grid(
                generator, args.grid, args.grid, args.size, shared_latent=False, renderer=renderer
            )
        )
        base = base or wall
        label = f"{renderer}{' (baseline)' if renderer == 'torch' else ''}"
        print(f"| {label} | {wall:.1f} | {cpu:.1f} | {wall / base:.2f} |")
    print(f"\n(load after the run {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
