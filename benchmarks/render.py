"""Rendering speed: the Numba kernels against the numpy reference, and first-render latency.

Flat CPPN presets are also rendered with the torch renderer on the CPU (forward, and
forward + backward), next to the Numba kernel: Numba stays the CPU default where it is faster.

For each genotype preset, renders the same random genomes (default 256) with
:func:`evoemotion.render.render` (Numba, best of ``--repeat`` runs after a warm-up) and with
:func:`evoemotion.render.reference.render_reference` (plain numpy, the same float32 math,
one run) at each size, and prints images/s and their ratio as a Markdown table. Then, for
each kernel, it times the first render in a fresh Python process with a warm Numba cache
(best of ``--tries``, next to a trivial cached Numba function: Numba's own start-up), and
prints the measured deviation of the fast math from exact math.

Usage::

    python benchmarks/render.py                       # all kinds, 256 genomes, 64/128/256 px
    python benchmarks/render.py --kinds cppn --sizes 128 --count 64

The machine's load average is printed before and after: other processes on the cores make
the numbers noisy (run it on a quiet machine, or with ``nice`` when sharing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from evoemotion.genotypes import load_genotype
from evoemotion.render import reference as ref
from evoemotion.render import render
from evoemotion.render.reference import render_reference

FIRST_RENDER = """
import time
start = time.perf_counter()
import numpy as np
from evoemotion.genotypes import load_genotype
from evoemotion.render import render
g = load_genotype({kind!r})
genomes = g.random(np.random.default_rng(0), 1)
before = time.perf_counter()
render(g, genomes, 64)
done = time.perf_counter()
print(done - before, done - start)
"""

TRIVIAL = """
from numba import njit, prange


@njit(cache=True, parallel=True)
def bump(a):
    for i in prange(a.shape[0]):
        a[i] += 1
"""

FLOOR = """
import time
start = time.perf_counter()
import numpy as np
before = time.perf_counter()
from trivial import bump
bump(np.zeros(8))
done = time.perf_counter()
print(done - before, done - start)
"""


def images_per_second(fn, n: int, repeat: int) -> float:
    """Best rate of ``repeat`` calls of ``fn`` that each produce ``n`` images."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def _torch_render(genotype, genomes: np.ndarray, size: int, backward: bool) -> None:
    import torch

    from evoemotion.render.differentiable import render_torch

    x = torch.tensor(genomes, dtype=torch.float32, requires_grad=backward)
    with torch.set_grad_enabled(backward):
        images = render_torch(genotype, x, size)
        if backward:
            images.sum().backward()


def _fresh_process(code: str, cwd: str | None = None) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=cwd
    ).stdout.split()
    return float(out[0]), float(out[1])


def first_render(kind: str, tries: int) -> tuple[float, float]:
    """Best of ``tries`` fresh processes: seconds of the first ``render`` call, and of the
    whole script (imports included)."""
    return min(_fresh_process(FIRST_RENDER.format(kind=kind)) for _ in range(tries))


def numba_floor(tries: int) -> tuple[float, float]:
    """The same timing for a trivial cached parallel Numba function (importing Numba
    included, as ``render`` imports it on first use): Numba's own start-up."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "trivial.py").write_text(TRIVIAL)
        _fresh_process(FLOOR, folder)  # compiles and fills the cache
        return min(_fresh_process(FLOOR, folder) for _ in range(tries))


def accuracy() -> dict[str, float]:
    """Max deviation of each fast function from exact float64 math on dense samples."""
    x = np.concatenate(
        [np.linspace(-20, 20, 400_001), np.random.default_rng(0).uniform(-1e4, 1e4, 100_000)]
    ).astype(np.float32)
    xd = x.astype(np.float64)
    e = np.linspace(-87, 88, 200_001).astype(np.float32)
    v = np.exp(np.random.default_rng(1).uniform(np.log(1e-6), np.log(1e38), 200_000))
    v = v.astype(np.float32)
    y, w = np.random.default_rng(2).uniform(-5, 5, (2, 200_000)).astype(np.float32)
    with np.errstate(over="ignore"):
        return {
            "sin (abs)": np.abs(ref.fsin(x) - np.sin(xd)).max(),
            "cos (abs)": np.abs(ref.fcos(x) - np.cos(xd)).max(),
            "tanh (abs)": np.abs(ref.ftanh(x) - np.tanh(xd)).max(),
            "sigmoid (abs)": np.abs(ref.fsigmoid(x) - 1 / (1 + np.exp(-xd))).max(),
            "gauss (abs)": np.abs(ref.fgauss(x) - np.exp(-xd * xd)).max(),
            "exp (relative)": np.abs(ref.fexp(e) / np.exp(e.astype(np.float64)) - 1).max(),
            "log (abs)": np.abs(ref.flog_abs(v) - np.log(v.astype(np.float64))).max(),
            "atan2/pi (abs)": np.abs(
                ref.fatan2pi(y, w) - np.arctan2(y.astype(np.float64), w) / np.pi
            ).max(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kinds", nargs="+", default=["sims", "cppn", "cppn-neat"], help="genotype presets to time"
    )
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=[64, 128, 256], help="image sides in pixels"
    )
    parser.add_argument("--count", type=int, default=256, help="random genomes per preset")
    parser.add_argument("--repeat", type=int, default=3, help="Numba runs per size (best kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random genomes")
    parser.add_argument(
        "--tries", type=int, default=3, help="fresh processes per first-render timing (best kept)"
    )
    args = parser.parse_args()

    import numba

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numba {numba.__version__} ({numba.get_num_threads()} threads), "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    print()
    print("| genotype | size | Numba img/s | numpy img/s | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    for kind in args.kinds:
        g = load_genotype(kind)
        genomes = g.random(np.random.default_rng(args.seed), args.count)
        render(g, genomes[:2], 8)
        for size in args.sizes:
            fast = images_per_second(partial(render, g, genomes, size), len(genomes), args.repeat)
            slow = images_per_second(partial(render_reference, g, genomes, size), len(genomes), 1)
            print(
                f"| {kind} | {size}² | {fast:,.0f} | {slow:,.1f} | {fast / slow:.1f}x |", flush=True
            )
    print()
    print("Flat CPPNs: the torch renderer (evoemotion.render.differentiable, float32 on the CPU,")
    print("forward only, and forward + backward of the image sum) against the Numba kernel:")
    print()
    print("| genotype | size | Numba img/s | torch img/s | torch fwd+bwd img/s | torch / Numba |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for kind in [k for k in args.kinds if load_genotype(k).kind == "cppn"]:
        g = load_genotype(kind)
        genomes = np.array(g.random(np.random.default_rng(args.seed), args.count))
        for size in args.sizes:
            fast = images_per_second(partial(render, g, genomes, size), len(genomes), args.repeat)
            torch_rate = images_per_second(
                partial(_torch_render, g, genomes, size, False), len(genomes), args.repeat
            )
            grad_rate = images_per_second(
                partial(_torch_render, g, genomes, size, True), len(genomes), 1
            )
            print(
                f"| {kind} | {size}² | {fast:,.0f} | {torch_rate:,.0f} | {grad_rate:,.0f} | "
                f"{torch_rate / fast:.2f}x |",
                flush=True,
            )
    print()
    print("| kernel (preset) | first render, fresh process, warm cache | whole script |")
    print("| --- | ---: | ---: |")
    for kind in args.kinds:
        call, total = first_render(kind, args.tries)
        print(f"| {kind} | {call:.2f} s | {total:.2f} s |", flush=True)
    call, total = numba_floor(args.tries)
    print(f"| baseline: trivial cached Numba function | {call:.2f} s | {total:.2f} s |")
    print()
    print("| fast function | max deviation from exact math |")
    print("| --- | ---: |")
    for name, value in accuracy().items():
        print(f"| {name} | {value:.1e} |")
    print()
    print(f"load average after: {os.getloadavg()[0]:.2f}; settings: {json.dumps(vars(args))}")


if __name__ == "__main__":
    main()
