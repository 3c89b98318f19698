"""Cost of one DQD (CMA-MEGA) iteration against one iso-line MAP-Elites iteration, by stage.

Settings of ``benchmarks/dqd.py``: bundled classifier, ``cppn`` genotype, images rendered at
64 px and scored at 128 px (scorer batch 16), 64 genomes per iteration, 4 CMA-MEGA
emitters, the ``va`` archive (20 x 20; ``--archive categorical``: 1,024 cells, 7 measures),
objective ``confidence``. After ``--warmup``
untimed iterations, each search runs ``--iterations`` timed ones; the evaluator's calls
are timed as they happen, so an iteration splits into the gradient pass (``jacobian``),
the evaluations (``evaluate``) and the rest (pyribs ask/tell and archive adds).

Baseline, measured in the same run and interleaved iteration by iteration with the
current code: the previous DQD iteration, which scored the gradient points twice (once
through the unrounded torch renders for the Jacobian, once through ``evaluate`` for the
values) and grouped the renderer's activations with one masked copy per activation.
Then the parts of the Jacobian of 4 genomes: one backward pass per value (the current
choice) against one batched pass (``is_grads_batched``) and a batch repeating every genome
once per value; and the torch render's forward + backward with both activation
groupings.

    python benchmarks/dqd_iteration.py [--archive va|categorical] [--iterations 5] [--warmup 2]
        [--repeat 5] [--device cpu]

Timings are medians of wall-clock seconds; other processes on the cores make them noisy
(the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections import defaultdict

import numpy as np
import torch

import evoemotion.render.differentiable as differentiable
from evoemotion.archives import make_archive_spec
from evoemotion.emotion import load_model
from evoemotion.genotypes import load_genotype
from evoemotion.gradients import outputs_and_jacobian
from evoemotion.pipeline import Evaluator
from evoemotion.scoring import Scorer
from evoemotion.search import make_search

#: Cells (bins per axis on va) of the archive kinds this script times, as benchmarks/dqd.py.
CELLS = {"va": 20, "categorical": 1024}


def masked_copy_activate(z: torch.Tensor, codes: np.ndarray) -> torch.Tensor:
    """The previous activation grouping: one masked ``index_copy`` per activation."""
    n, width, pixels = z.shape
    flat = z.reshape(n * width, pixels)
    codes = codes.reshape(-1)
    present = np.unique(codes)
    if len(present) == 1:
        return differentiable._BY_CODE[int(present[0])](z)
    result = flat
    for code in present:
        rows = torch.from_numpy(np.flatnonzero(codes == code)).to(z.device)
        picked = differentiable._BY_CODE[int(code)](flat.index_select(0, rows))
        result = result.index_copy(0, rows, picked)
    return result.reshape(n, width, pixels)


@contextlib.contextmanager
def previous_activate():
    """Render with the previous activation grouping inside the block."""
    current = differentiable._activate
    differentiable._activate = masked_copy_activate
    try:
        yield
    finally:
        differentiable._activate = current


class Timed:
    """An evaluator that adds the seconds of each call to ``self.seconds[name]``.

    ``previous=True`` computes Jacobians as the previous DQD iteration did: unrounded
    torch renders for the gradient, then a separate ``evaluate`` for the values.
    """

    def __init__(self, evaluator: Evaluator, previous: bool = False) -> None:
        self.inner, self.previous = evaluator, previous
        self.genotype = evaluator.genotype
        self.seconds: dict[str, float] = defaultdict(float)

    def _timed(self, name: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        self.seconds[name] += time.perf_counter() - start
        return result

    def evaluate(self, genomes, **kwargs):
        return self._timed("evaluate", lambda: self.inner.evaluate(genomes, **kwargs))

    def jacobian(self, genomes, spec, rows=None):
        if not self.previous:
            return self._timed("jacobian", self.inner.jacobian, genomes, spec, rows)
        inner = self.inner

        def unrounded():
            with previous_activate():
                return outputs_and_jacobian(
                    inner.genotype,
                    inner.scorer,
                    spec,
                    genomes,
                    render_size=inner.render_size,
                    rows=rows,
                )[2]

        jacobian = self._timed("jacobian", unrounded)
        return self.evaluate(genomes), jacobian


def best_of(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls of ``fn`` after one untimed call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jacobian_variants(genotype, scorer, spec, genomes: np.ndarray, repeat: int) -> dict:
    """Seconds of the Jacobian of ``genomes`` (render, classifier, backward) three ways."""
    m = 1 + len(spec.ranges)

    def values(x):
        objective, measures = spec.rows(
            scorer.forward(differentiable.render_torch(genotype, x, 64))
        )
        return torch.cat([objective[:, 0][:, None], measures[:, 0]], dim=1)

    def leaf(array):
        return torch.tensor(array, dtype=torch.float32, requires_grad=True)

    def per_value():
        x = leaf(genomes)
        v = values(x)
        return torch.stack(
            [torch.autograd.grad(v[:, j].sum(), x, retain_graph=True)[0] for j in range(m)], dim=1
        )

    def batched():
        x = leaf(genomes)
        v = values(x)
        seeds = torch.eye(m, dtype=v.dtype)[:, None, :].expand(m, len(x), m)
        return torch.autograd.grad(v, x, seeds, is_grads_batched=True)[0].transpose(0, 1)

    def repeated():
        x = leaf(np.repeat(genomes, m, axis=0))
        v = values(x).reshape(len(genomes), m, m)
        grad = torch.autograd.grad(v.diagonal(dim1=1, dim2=2).sum(), x)[0]
        return grad.reshape(len(genomes), m, -1)

    reference = per_value()
    for fn in (batched, repeated):
        torch.testing.assert_close(fn(), reference, rtol=1e-3, atol=1e-4)

    def forward():
        values(leaf(genomes))

    return {
        "forward only (render + classifier, grad on)": best_of(forward, repeat),
        "one backward pass per value (current)": best_of(per_value, repeat),
        "one batched pass (is_grads_batched)": best_of(batched, repeat),
        "every genome repeated per value, one pass": best_of(repeated, repeat),
    }


def render_backward(genotype, genomes: np.ndarray, repeat: int) -> tuple[float, float]:
    """Seconds of the torch render's forward + backward: previous and current grouping."""

    def run():
        x = torch.tensor(genomes, dtype=torch.float32, requires_grad=True)
        torch.autograd.grad(differentiable.render_torch(genotype, x, 64).sum(), x)

    with previous_activate():
        before = best_of(run, repeat)
    return before, best_of(run, repeat)


def main() -> None:
    """Time the iterations and the Jacobian variants; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per search")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of each Jacobian part")
    parser.add_argument("--device", default="cpu", help="torch device of the scorer")
    parser.add_argument("--archive", default="va", choices=sorted(CELLS), help="archive kind")
    args = parser.parse_args()
    scorer = Scorer([load_model("default")], device=args.device, batch_size=16, size=128)
    genotype = load_genotype("cppn")
    evaluator = Evaluator(genotype, scorer, render_size=64)
    spec = make_archive_spec(
        args.archive,
        class_names=scorer.class_names,
        regression_names=scorer.regression_names,
        scales=scorer.scales,
        objective="confidence",
        cells=CELLS[args.archive],
    )
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
    )
    runs = {
        "cma-mega (previous)": ("dqd", {"emitter": "cma-mega"}, True),
        "cma-mega (current)": ("dqd", {"emitter": "cma-mega"}, False),
        "iso-line": ("map-elites", {"emitter": "iso-line"}, False),
    }
    states, timers = {}, {}
    for label, (algorithm, options, previous) in runs.items():
        states[label] = make_search(
            algorithm, genotype=genotype, spec=spec, batch_size=64, seed=0, options=options
        )
        timers[label] = Timed(evaluator, previous)
        for _ in range(args.warmup):
            states[label].step(timers[label])
    stages = {label: defaultdict(list) for label in runs}
    for _ in range(args.iterations):  # interleaved, so load changes hit every search alike
        for label, state in states.items():
            timer = timers[label]
            timer.seconds.clear()
            start = time.perf_counter()
            state.step(timer)
            total = time.perf_counter() - start
            spent = dict(timer.seconds)
            spent["rest (pyribs ask/tell, archive adds)"] = total - sum(spent.values())
            spent["iteration"] = total
            for name, seconds in spent.items():
                stages[label][name].append(seconds)
    names = ["jacobian", "evaluate", "rest (pyribs ask/tell, archive adds)", "iteration"]
    iso = statistics.median(stages["iso-line"]["iteration"])
    print(f"\nms per iteration (median of {args.iterations}, after {args.warmup} warm-up)\n")
    print("| search | " + " | ".join(names) + " | iteration / iso-line |")
    print("|---|" + "---:|" * (len(names) + 1))
    for label, spent in stages.items():
        cells = [f"{1000 * statistics.median(spent[n]):.0f}" if n in spent else "-" for n in names]
        ratio = statistics.median(spent["iteration"]) / iso
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    previous = statistics.median(stages["cma-mega (previous)"]["iteration"])
    current = statistics.median(stages["cma-mega (current)"]["iteration"])
    print(f"\ncma-mega iteration, current / previous: {current / previous:.2f}")

    points = np.array(genotype.random(np.random.default_rng(1), 4))
    out, jacobian = evaluator.jacobian(points, spec)
    expected = evaluator.evaluate(points)
    *_, unrounded = outputs_and_jacobian(genotype, scorer, spec, points, render_size=64)
    gap = max(float(np.abs(out[n] - expected[n]).max()) for n in expected.names)
    shift = np.abs(jacobian - unrounded).max() / np.abs(unrounded).max()
    print(
        f"one-pass outputs vs evaluate: max |difference| {gap:.1e}; Jacobian at the 8-bit "
        f"images vs at the unrounded renders: max difference {shift:.1e} of the largest entry"
    )

    print(f"\nJacobian of 4 genomes (objective + {len(spec.ranges)} measures), ms (median)\n")
    print("| variant | ms | ratio to one pass per value |")
    print("|---|---:|---:|")
    variants = jacobian_variants(genotype, scorer, spec, points, args.repeat)
    base = variants["one backward pass per value (current)"]
    for name, seconds in variants.items():
        print(f"| {name} | {1000 * seconds:.0f} | {seconds / base:.2f} |")
    print("\ntorch render at 64 px, forward + backward, ms (median)\n")
    print(
        "| genomes | masked copy per activation (previous) | gather, split, gather (current) "
        "| current / previous |"
    )
    print("|---:|---:|---:|---:|")
    for n in (4, 64):
        genomes = np.array(genotype.random(np.random.default_rng(2), n))
        before, after = render_backward(genotype, genomes, args.repeat)
        print(f"| {n} | {1000 * before:.1f} | {1000 * after:.1f} | {after / before:.2f} |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    evaluator.close()


if __name__ == "__main__":
    main()
